package ledgertest

import (
	"errors"
	"strings"
	"testing"

	"github.com/medx/medx/ledger"
)

func testRequestLifecycle(t *testing.T, open Opener) {
	e := newEnv(t, open)
	mod := func(f func(*ledger.RequestDraft)) ledger.RequestDraft {
		d := draft()
		f(&d)
		return d
	}
	invalid := []struct {
		name string
		d    ledger.RequestDraft
	}{
		{"no title", mod(func(d *ledger.RequestDraft) { d.Title = "" })},
		{"no purpose", mod(func(d *ledger.RequestDraft) { d.Purpose = "" })},
		{"no criteria", mod(func(d *ledger.RequestDraft) { d.Criteria = "" })},
		{"huge purpose", mod(func(d *ledger.RequestDraft) { d.Purpose = strings.Repeat("p", 100_000) })},
		{"no scope", mod(func(d *ledger.RequestDraft) { d.Scope = nil })},
		{"unknown scope", mod(func(d *ledger.RequestDraft) { d.Scope = []string{"genome"} })},
		{"repeated scope", mod(func(d *ledger.RequestDraft) { d.Scope = []string{"labs", "labs"} })},
		{"zero reward", mod(func(d *ledger.RequestDraft) { d.RewardPerPatient = 0 })},
		{"negative reward", mod(func(d *ledger.RequestDraft) { d.RewardPerPatient = -1 })},
		{"zero participants", mod(func(d *ledger.RequestDraft) { d.MaxParticipants = 0 })},
		{"zero licence", mod(func(d *ledger.RequestDraft) { d.LicenceSeconds = 0 })},
		{"negative licence", mod(func(d *ledger.RequestDraft) { d.LicenceSeconds = -60 })},
		{"budget overflow", mod(func(d *ledger.RequestDraft) { d.RewardPerPatient = 1 << 40; d.MaxParticipants = 1 << 40 })},
	}
	for _, tc := range invalid {
		t.Run("PostRequest "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.PostRequest(e.ctx, e.sponsor, tc.d)
			e.refused("PostRequest", err, ledger.ErrInvalid)
			e.unchanged("a refused request", before)
		})
	}
	before := e.snapshot()
	_, err := e.c.PostRequest(e.ctx, e.board, draft())
	e.refused("PostRequest by a board", err, ledger.ErrForbidden)
	_, err = e.c.PostRequest(e.ctx, e.sponsor, mod(func(d *ledger.RequestDraft) { d.MaxParticipants = 10_000 }))
	e.refused("PostRequest over the balance", err, ledger.ErrFunds)
	e.unchanged("refused requests", before)

	r, err := e.c.PostRequest(e.ctx, e.sponsor, draft())
	e.must(err)
	d := draft()
	if r.Status != ledger.StatusPending || r.Sponsor != e.sponsor.ID || r.Budget != 50 || r.Escrow != 50 ||
		r.Participants != 0 || r.Approval != nil || r.Title != d.Title || r.Criteria != d.Criteria {
		t.Errorf("PostRequest = %+v, want pending with budget and escrow 50", r)
	}
	if got := e.balance(e.sponsor.ID); got != sponsorFunds-50 {
		t.Errorf("sponsor balance after posting = %d, want %d", got, sponsorFunds-50)
	}
	if got := e.request(r.ID); !jsonEqual(got, r) {
		t.Errorf("Request(%s) = %+v, want %+v", r.ID, got, r)
	}
	if _, err := e.c.Request(e.ctx, "req-0000000000000000"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Request(absent) error = %v, want ErrNotFound", err)
	}

	approvals := []struct {
		name string
		by   ledger.Signer
		id   ledger.RequestID
		at   ledger.ApprovalTerms
		want error
	}{
		{"by the sponsor", e.sponsor, r.ID, terms(), ledger.ErrForbidden},
		{"by a custodian", e.cust, r.ID, terms(), ledger.ErrForbidden},
		{"zero minimum cell", e.board, r.ID, ledger.ApprovalTerms{MinCell: 0, EpsilonBudget: 1_000_000}, ledger.ErrInvalid},
		{"zero epsilon", e.board, r.ID, ledger.ApprovalTerms{MinCell: 5, EpsilonBudget: 0}, ledger.ErrInvalid},
		{"absent request", e.board, "req-0000000000000000", terms(), ledger.ErrNotFound},
		{"malformed id", e.board, "../etc", terms(), ledger.ErrNotFound},
	}
	for _, tc := range approvals {
		t.Run("ApproveRequest "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.ApproveRequest(e.ctx, tc.by, tc.id, tc.at)
			e.refused("ApproveRequest", err, tc.want)
			e.unchanged("a refused approval", before)
		})
	}
	r, err = e.c.ApproveRequest(e.ctx, e.board, r.ID, ledger.ApprovalTerms{MinCell: 7, EpsilonBudget: 2_500_000, Reason: "sound design"})
	e.must(err)
	if r.Status != ledger.StatusOpen || r.Approval == nil || r.Approval.Board != e.board.ID || r.Approval.MinCell != 7 ||
		r.Approval.EpsilonBudget != 2_500_000 || r.Approval.EpsilonSpent != 0 || r.Approval.Reason != "sound design" {
		t.Errorf("ApproveRequest = %+v (approval %+v), want open with the board's terms", r, r.Approval)
	}
	if got := e.request(r.ID); !jsonEqual(got, r) {
		t.Errorf("Request(%s) = %+v, want %+v", r.ID, got, r)
	}

	before = e.snapshot()
	_, err = e.c.ApproveRequest(e.ctx, e.board, r.ID, terms())
	e.refused("ApproveRequest twice", err, ledger.ErrState)
	_, err = e.c.RejectRequest(e.ctx, e.board, r.ID, "too late")
	e.refused("RejectRequest of an open request", err, ledger.ErrState)
	_, err = e.c.CloseRequest(e.ctx, e.sponsor2, r.ID, "not mine")
	e.refused("CloseRequest by another sponsor", err, ledger.ErrForbidden)
	_, err = e.c.CloseRequest(e.ctx, e.board, r.ID, "")
	e.refused("CloseRequest by a board", err, ledger.ErrForbidden)
	_, err = e.c.HaltRequest(e.ctx, e.sponsor, r.ID, "")
	e.refused("HaltRequest by the sponsor", err, ledger.ErrForbidden)
	e.unchanged("refused decisions", before)

	r, err = e.c.HaltRequest(e.ctx, e.board, r.ID, "safety signal")
	e.must(err)
	if r.Status != ledger.StatusHalted || r.Escrow != 0 || r.Decision == nil || r.Decision.By != e.board.ID || r.Decision.Reason != "safety signal" {
		t.Errorf("HaltRequest = %+v (decision %+v), want halted with escrow refunded", r, r.Decision)
	}
	if got := e.balance(e.sponsor.ID); got != sponsorFunds {
		t.Errorf("sponsor balance after halt = %d, want %d (refunded)", got, sponsorFunds)
	}
	before = e.snapshot()
	_, err = e.c.HaltRequest(e.ctx, e.board, r.ID, "")
	e.refused("HaltRequest twice", err, ledger.ErrState)
	_, err = e.c.CloseRequest(e.ctx, e.sponsor, r.ID, "")
	e.refused("CloseRequest of a halted request", err, ledger.ErrState)
	_, err = e.c.ApproveRequest(e.ctx, e.board, r.ID, terms())
	e.refused("ApproveRequest of a halted request", err, ledger.ErrState)
	e.unchanged("refused decisions on a halted request", before)

	rs, err := e.c.Requests(e.ctx)
	if err != nil || len(rs) != 1 || rs[0].ID != r.ID {
		t.Errorf("Requests = %v, %v; want just %s", rs, err, r.ID)
	}
}

func testRequestRefunds(t *testing.T, open Opener) {
	e := newEnv(t, open)

	// Rejecting a pending request refunds it all.
	r1, err := e.c.PostRequest(e.ctx, e.sponsor, draft())
	e.must(err)
	r1, err = e.c.RejectRequest(e.ctx, e.board, r1.ID, "criteria too broad")
	e.must(err)
	if r1.Status != ledger.StatusRejected || r1.Escrow != 0 || r1.Decision == nil || r1.Decision.Reason != "criteria too broad" {
		t.Errorf("RejectRequest = %+v, want rejected with escrow 0", r1)
	}
	if got := e.balance(e.sponsor.ID); got != sponsorFunds {
		t.Errorf("sponsor balance after reject = %d, want %d", got, sponsorFunds)
	}
	_, err = e.c.ApproveRequest(e.ctx, e.board, r1.ID, terms())
	e.refused("ApproveRequest of a rejected request", err, ledger.ErrState)

	// The sponsor may close its own pending request.
	r2, err := e.c.PostRequest(e.ctx, e.sponsor, draft())
	e.must(err)
	r2, err = e.c.CloseRequest(e.ctx, e.sponsor, r2.ID, "changed plans")
	e.must(err)
	if r2.Status != ledger.StatusClosed || r2.Escrow != 0 || e.balance(e.sponsor.ID) != sponsorFunds {
		t.Errorf("CloseRequest of a pending request = %+v, balance %d; want closed and refunded", r2, e.balance(e.sponsor.ID))
	}

	// Closing an open request refunds only the places not taken; the
	// patients keep their rewards.
	r3 := e.openRequest(e.sponsor, draft())
	p1, _ := e.accept(r3, "refund-1")
	p2, _ := e.accept(r3, "refund-2")
	r3, err = e.c.CloseRequest(e.ctx, e.sponsor, r3.ID, "enough data")
	e.must(err)
	if r3.Status != ledger.StatusClosed || r3.Escrow != 0 || r3.Participants != 2 {
		t.Errorf("CloseRequest of an open request = %+v, want closed, 2 participants, escrow 0", r3)
	}
	if got, want := e.balance(e.sponsor.ID), sponsorFunds-20; got != want {
		t.Errorf("sponsor balance after close = %d, want %d", got, want)
	}
	for _, p := range []ledger.Signer{p1, p2} {
		if got := e.balance(p.ID); got != 10 {
			t.Errorf("Balance(%s) after close = %d, want 10", p.ID, got)
		}
	}
	// A patient may spend its reward.
	e.must(e.c.Transfer(e.ctx, p1, e.cust.ID, 4))
	if got := e.balance(p1.ID); got != 6 {
		t.Errorf("Balance(%s) after spending = %d, want 6", p1.ID, got)
	}
}
