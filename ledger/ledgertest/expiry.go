package ledgertest

import (
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// testRequestExpiry: a request's recruitment deadline, by ledger time,
// stops licences and queries; ExpireRequest then settles it, refunding the
// unspent escrow; an expired request accepts and answers nothing.
func testRequestExpiry(t *testing.T, open Opener) {
	e := newEnv(t, open)
	withDeadline := func(d time.Duration) ledger.RequestDraft {
		dr := draft()
		dr.RecruitUntil = e.clock.Now().Add(d)
		return dr
	}

	// A deadline must lie ahead of the posting.
	for _, tc := range []struct {
		name string
		d    time.Duration
	}{{"in the past", -time.Hour}, {"at the posting time", 0}, {"centuries ahead", 200 * 365 * day}} {
		t.Run("PostRequest deadline "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.PostRequest(e.ctx, e.sponsor, withDeadline(tc.d))
			e.refused("PostRequest", err, ledger.ErrInvalid)
			e.unchanged("a refused request", before)
		})
	}

	// The deadline is kept, in UTC, and shapes the request's status.
	local := draft()
	deadline := e.clock.Now().Add(10 * day)
	local.RecruitUntil = deadline.In(time.FixedZone("CEST", 2*3600))
	r := e.openRequest(e.sponsor, local)
	if !r.RecruitUntil.Equal(deadline) || r.RecruitUntil.Location() != time.UTC {
		t.Errorf("RecruitUntil = %v, want %v in UTC", r.RecruitUntil, deadline)
	}
	if got := e.request(r.ID); !jsonEqual(got, r) {
		t.Errorf("Request(%s) = %+v, want %+v", r.ID, got, r)
	}
	if r.StatusAt(deadline.Add(-time.Second)) != ledger.StatusOpen || r.StatusAt(deadline) != ledger.StatusExpired {
		t.Errorf("StatusAt around the deadline = %s, %s; want open, expired", r.StatusAt(deadline.Add(-time.Second)), r.StatusAt(deadline))
	}
	pn1, l1 := e.accept(r, "expiry-1")
	e.accept(r, "expiry-2")
	qa, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT COUNT(*)", 100_000))
	e.must(err)
	if qa.Query.Licences != 2 {
		t.Errorf("query before the deadline used %d licences, want 2", qa.Query.Licences)
	}

	// Before the deadline nobody can expire it.
	before := e.snapshot()
	_, err = e.c.ExpireRequest(e.ctx, e.board, r.ID)
	e.refused("ExpireRequest before the deadline", err, ledger.ErrState)
	_, err = e.c.ExpireRequest(e.ctx, signer("unregistered"), r.ID)
	e.refused("ExpireRequest by an unregistered actor", err, ledger.ErrForbidden)
	_, err = e.c.ExpireRequest(e.ctx, e.board, "req-0000000000000000")
	e.refused("ExpireRequest of an absent request", err, ledger.ErrNotFound)
	e.unchanged("refused expiries", before)

	// At the deadline, by ledger time, it takes no licence and no query,
	// even before anyone settles it.
	e.clock.Advance(10 * day)
	before = e.snapshot()
	pn3 := pseudonym("expiry-late")
	_, err = e.c.AcceptOffer(e.ctx, pn3, acceptance(r, pn3, e.cust))
	e.refused("AcceptOffer after the deadline", err, ledger.ErrState)
	_, err = e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT 1", 1000))
	e.refused("AuthorizeQuery after the deadline", err, ledger.ErrState)
	e.unchanged("refusals after the deadline", before)

	// Anyone registered settles it (here, one of its own patients): the
	// places left are refunded; the rewards paid stay paid.
	sponsorBefore := e.balance(e.sponsor.ID)
	x, err := e.c.ExpireRequest(e.ctx, pn1, r.ID)
	e.must(err)
	if x.Status != ledger.StatusExpired || x.Escrow != 0 || x.Participants != 2 || x.Decision == nil || x.Decision.By != pn1.ID || !x.Decision.At.Equal(e.clock.Now()) {
		t.Errorf("ExpireRequest = %+v (decision %+v), want expired by %s with escrow 0", x, x.Decision, pn1.ID)
	}
	if got, want := e.balance(e.sponsor.ID), sponsorBefore+30; got != want {
		t.Errorf("sponsor balance after expiry = %d, want %d (3 places of 10 refunded)", got, want)
	}
	if got := e.balance(pn1.ID); got != 10 {
		t.Errorf("patient balance after expiry = %d, want its reward 10", got)
	}
	if got, err := e.c.Licence(e.ctx, l1.ID); err != nil || got.Revoked != nil {
		t.Errorf("Licence(%s) after expiry = %+v, %v; want it kept, unrevoked", l1.ID, got, err)
	}

	// An expired request is final: no licence, no query, no other decision.
	before = e.snapshot()
	_, err = e.c.ExpireRequest(e.ctx, e.board, r.ID)
	e.refused("ExpireRequest twice", err, ledger.ErrState)
	_, err = e.c.CloseRequest(e.ctx, e.sponsor, r.ID, "")
	e.refused("CloseRequest of an expired request", err, ledger.ErrState)
	_, err = e.c.HaltRequest(e.ctx, e.board, r.ID, "")
	e.refused("HaltRequest of an expired request", err, ledger.ErrState)
	_, err = e.c.AcceptOffer(e.ctx, pn3, acceptance(r, pn3, e.cust))
	e.refused("AcceptOffer on an expired request", err, ledger.ErrState)
	_, err = e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT 2", 1000))
	e.refused("AuthorizeQuery on an expired request", err, ledger.ErrState)
	e.unchanged("refusals on an expired request", before)

	// A pending request past its deadline cannot be approved; its expiry
	// refunds the whole budget.
	p, err := e.c.PostRequest(e.ctx, e.sponsor2, withDeadline(day))
	e.must(err)
	e.clock.Advance(day)
	before = e.snapshot()
	_, err = e.c.ApproveRequest(e.ctx, e.board, p.ID, terms())
	e.refused("ApproveRequest after the deadline", err, ledger.ErrState)
	e.unchanged("a refused approval", before)
	sponsor2Before := e.balance(e.sponsor2.ID)
	p, err = e.c.ExpireRequest(e.ctx, e.cust, p.ID)
	e.must(err)
	if p.Status != ledger.StatusExpired || e.balance(e.sponsor2.ID) != sponsor2Before+50 {
		t.Errorf("ExpireRequest of a pending request = %+v, sponsor balance %d; want expired and 50 refunded", p, e.balance(e.sponsor2.ID))
	}

	// Without a deadline a request never expires.
	n := e.openRequest(e.sponsor, draft())
	e.clock.Advance(1000 * day)
	before = e.snapshot()
	_, err = e.c.ExpireRequest(e.ctx, e.board, n.ID)
	e.refused("ExpireRequest of a request without a deadline", err, ledger.ErrState)
	e.unchanged("a refused expiry", before)
	if n.StatusAt(e.clock.Now()) != ledger.StatusOpen {
		t.Errorf("StatusAt of a request without a deadline = %s, want open", n.StatusAt(e.clock.Now()))
	}
}
