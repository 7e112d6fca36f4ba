package ledgertest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
)

func testFeasibility(t *testing.T, open Opener) {
	e := newEnv(t, open)
	crit, data := hash("age BETWEEN 40 AND 75"), hash("datasets v1")
	ask := func(s ledger.Signer, d ledger.FeasibilityDraft) (ledger.FeasibilityRecord, error) {
		e.clock.Advance(time.Minute) // records list in ask time order
		return e.c.AskFeasibility(e.ctx, s, d)
	}
	disc := json.RawMessage(`{"mechanism":"discrete-laplace","noiseScales":[0.5]}`)

	// A fresh ask is charged and waits for the exchange's count.
	a, err := ask(e.sponsor, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: data, Epsilon: 2_000_000})
	e.must(err)
	if a.Status != ledger.FeasibilityAsked || a.EpsilonCharged != 2_000_000 || a.Sponsor != e.sponsor.ID || !a.Asked.Equal(e.clock.Now()) {
		t.Errorf("fresh ask = %+v", a)
	}
	done, err := e.c.CompleteFeasibility(e.ctx, e.op, ledger.FeasibilityCompletion{Feasibility: a.ID, Count: 120, Threshold: 10, Rounding: 5, Disclosure: disc})
	e.must(err)
	if done.Status != ledger.FeasibilityReleased || done.Count != 120 || done.Threshold != 10 || done.Completed == nil {
		t.Errorf("completed = %+v", done)
	}

	// The same criteria over the same data: the first answer, free, for
	// any sponsor.
	for _, s := range []ledger.Signer{e.sponsor, e.sponsor2} {
		c, err := ask(s, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: data, Epsilon: 2_000_000})
		e.must(err)
		if c.Status != ledger.FeasibilityReleased || c.CachedFrom != a.ID || c.Count != 120 || c.EpsilonCharged != 0 || c.Threshold != 10 ||
			string(c.Disclosure) != string(disc) {
			t.Errorf("repeat by %s = %+v, want the cached release of %s", s.ID, c, a.ID)
		}
	}

	// New data counts afresh; a count below the threshold is withheld.
	b, err := ask(e.sponsor, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: hash("datasets v2"), Epsilon: 2_000_000})
	e.must(err)
	below, err := e.c.CompleteFeasibility(e.ctx, e.op, ledger.FeasibilityCompletion{Feasibility: b.ID, BelowThreshold: true, Threshold: 10})
	e.must(err)
	if !below.BelowThreshold || below.Count != 0 {
		t.Errorf("below threshold = %+v", below)
	}
	_, spent := ledger.FeasibilityUsage(e.feasibilities(e.sponsor.ID), e.clock.Now())
	if spent != 4_000_000 {
		t.Errorf("FeasibilityUsage spent = %d, want 4000000", spent)
	}

	// Overspend and bad asks or completions change nothing.
	before := e.snapshot()
	_, err = ask(e.sponsor, ledger.FeasibilityDraft{CriteriaHash: hash("other"), DataDigest: data, Epsilon: 1_500_000})
	e.refused("overspend", err, ledger.ErrBudget)
	e.unchanged("overspend", before)
	r, err := e.c.PostRequest(e.ctx, e.sponsor, draft())
	e.must(err)
	before = e.snapshot()
	for _, tc := range []struct {
		name string
		s    ledger.Signer
		d    ledger.FeasibilityDraft
		want error
	}{
		{"board asks", e.board, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: data, Epsilon: 1}, ledger.ErrForbidden},
		{"bad criteria hash", e.sponsor, ledger.FeasibilityDraft{CriteriaHash: "x", DataDigest: data, Epsilon: 1}, ledger.ErrInvalid},
		{"bad data digest", e.sponsor, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: "", Epsilon: 1}, ledger.ErrInvalid},
		{"zero epsilon", e.sponsor, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: data}, ledger.ErrInvalid},
		{"epsilon over the allowance", e.sponsor2, ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: data, Epsilon: ledger.FeasibilityAllowance + 1}, ledger.ErrInvalid},
		{"another sponsor's request", e.sponsor2, ledger.FeasibilityDraft{Request: r.ID, CriteriaHash: hash(r.Criteria), DataDigest: data, Epsilon: 1}, ledger.ErrForbidden},
		{"criteria not the request's", e.sponsor, ledger.FeasibilityDraft{Request: r.ID, CriteriaHash: crit, DataDigest: data, Epsilon: 1}, ledger.ErrInvalid},
		{"unknown request", e.sponsor, ledger.FeasibilityDraft{Request: "req-0000000000000000", CriteriaHash: crit, DataDigest: data, Epsilon: 1}, ledger.ErrNotFound},
	} {
		_, err := ask(tc.s, tc.d)
		e.refused(tc.name, err, tc.want)
	}
	e.unchanged("refused asks", before)

	// For the sponsor's own request: its criteria's hash.
	ra, err := ask(e.sponsor, ledger.FeasibilityDraft{Request: r.ID, CriteriaHash: hash(r.Criteria), DataDigest: data, Epsilon: 500_000})
	e.must(err)
	if ra.Request != r.ID || ra.Status != ledger.FeasibilityAsked {
		t.Errorf("ask for request = %+v", ra)
	}
	before = e.snapshot()
	for _, tc := range []struct {
		name string
		s    ledger.Signer
		d    ledger.FeasibilityCompletion
		want error
	}{
		{"sponsor completes", e.sponsor, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 50, Threshold: 10}, ledger.ErrForbidden},
		{"count under the threshold", e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 9, Threshold: 10}, ledger.ErrInvalid},
		{"withheld count given", e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 9, BelowThreshold: true, Threshold: 10}, ledger.ErrInvalid},
		{"no threshold", e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 50}, ledger.ErrInvalid},
		{"not a multiple of the rounding", e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 52, Threshold: 10, Rounding: 5}, ledger.ErrInvalid},
		{"disclosure not JSON", e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 50, Threshold: 10, Disclosure: json.RawMessage(`{`)}, ledger.ErrInvalid},
		{"failure with a count", e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Count: 50, Error: "boom"}, ledger.ErrInvalid},
		{"already released", e.op, ledger.FeasibilityCompletion{Feasibility: a.ID, Count: 50, Threshold: 10}, ledger.ErrState},
		{"unknown", e.op, ledger.FeasibilityCompletion{Feasibility: "fea-0000000000000000", Count: 50, Threshold: 10}, ledger.ErrNotFound},
	} {
		_, err := e.c.CompleteFeasibility(e.ctx, tc.s, tc.d)
		e.refused(tc.name, err, tc.want)
	}
	e.unchanged("refused completions", before)
	failed, err := e.c.CompleteFeasibility(e.ctx, e.op, ledger.FeasibilityCompletion{Feasibility: ra.ID, Error: "custodian unreachable"})
	e.must(err)
	if failed.Status != ledger.FeasibilityFailed || failed.EpsilonCharged != 500_000 {
		t.Errorf("failed = %+v: the epsilon stays spent", failed)
	}

	// Records, in ask order; the allowance refills after the window.
	recs := e.feasibilities(e.sponsor.ID)
	var ids []ledger.FeasibilityID
	for _, x := range recs {
		ids = append(ids, x.ID)
	}
	if len(recs) != 4 || ids[0] != a.ID || ids[2] != b.ID || ids[3] != ra.ID {
		t.Errorf("sponsor's records = %v, want %s, its repeat, %s, %s", ids, a.ID, b.ID, ra.ID)
	}
	if got, err := e.c.Feasibility(e.ctx, b.ID); err != nil || !cmp.Equal(got, recs[2]) {
		t.Errorf("Feasibility(%s) = %+v, %v; want %+v", b.ID, got, err, recs[2])
	}
	if len(e.feasibilities(e.sponsor2.ID)) != 1 {
		t.Errorf("sponsor2 has %d records, want its one cached ask", len(e.feasibilities(e.sponsor2.ID)))
	}
	_, err = ask(e.sponsor, ledger.FeasibilityDraft{CriteriaHash: hash("other"), DataDigest: data, Epsilon: 1_500_000})
	e.refused("overspend, later", err, ledger.ErrBudget)
	e.clock.Advance(ledger.FeasibilityWindow + 1)
	_, err = ask(e.sponsor, ledger.FeasibilityDraft{CriteriaHash: hash("other"), DataDigest: data, Epsilon: ledger.FeasibilityAllowance})
	e.must(err)
	if _, err := e.c.Feasibilities(e.ctx, "nobody"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Feasibilities(nobody) = %v, want ErrNotFound", err)
	}
}

func (e *env) feasibilities(id ledger.ParticipantID) []ledger.FeasibilityRecord {
	e.t.Helper()
	rs, err := e.c.Feasibilities(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Feasibilities(%s): %v", id, err)
	}
	return rs
}
