package exchange_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// plainCount counts, in the clear, every custodian's patients who meet
// criteria: what a feasibility count estimates.
func (s *study) plainCount(t *testing.T, criteria string) int64 {
	t.Helper()
	crit, err := cohorts.ParseCriteria(criteria)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range s.custs {
		ids, err := c.Dataset().Match(t.Context(), crit)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(ids))
	}
	return n
}

// TestFeasibilityNoiseOff checks that with noise off (and no rounding) the
// released count is the plaintext count over all custodians' patients,
// licensed or not, before posting and for a posted request; that a count
// under the threshold is withheld; and that each ask is on the ledger.
func TestFeasibilityNoiseOff(t *testing.T) {
	s := newStudy(t, studyOptions{criteria: "age >= 70", feasibility: exchange.FeasibilityPolicy{Rounding: 1, Epsilon: 0.5}})
	ctx := t.Context()
	const crit = "age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006')"
	want := s.plainCount(t, crit)
	if want < exchange.DefaultMinCell {
		t.Fatalf("fixture: only %d patients match %s", want, crit)
	}
	f, err := s.ex.Feasibility(ctx, s.sponsor, crit)
	if err != nil {
		t.Fatal(err)
	}
	if f.Count != want || f.BelowThreshold || f.Mechanism != privacy.MechanismNone || f.NoiseScale != 0 || f.Threshold != exchange.DefaultMinCell || f.EpsilonSpent != 0.5 {
		t.Errorf("Feasibility(%s) = %+v, want count %d without noise", crit, f, want)
	}
	if f.Record.Status != ledger.FeasibilityReleased || f.Record.Count != want || f.Record.CriteriaHash != exchange.HashQuery(f.Criteria) || f.Record.Request != "" {
		t.Errorf("ledger record = %+v", f.Record)
	}
	if !strings.Contains(f.String(), fmt.Sprintf("about %d patients", want)) || !strings.Contains(f.String(), "no noise") {
		t.Errorf("String() = %q", f.String())
	}

	// The request's own criteria: every matching patient, licensed or not
	// (the fixture's patients all accepted; there are more above 18).
	rf, err := s.ex.RequestFeasibility(ctx, s.sponsor, s.req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.plainCount(t, s.req.Criteria); rf.Count != want || rf.Record.Request != s.req.ID {
		t.Errorf("RequestFeasibility = %d (request %q), want %d", rf.Count, rf.Record.Request, want)
	}

	// A count under the threshold is withheld: "fewer than 10".
	small := ""
	for age := 18; age < 100 && small == ""; age++ {
		c := fmt.Sprintf("age = %d AND sex = 'F'", age)
		if n := s.plainCount(t, c); n > 0 && n < exchange.DefaultMinCell {
			small = c
		}
	}
	if small == "" {
		t.Fatal("fixture: no small cohort found")
	}
	b, err := s.ex.Feasibility(ctx, s.sponsor, small)
	if err != nil {
		t.Fatal(err)
	}
	if !b.BelowThreshold || b.Count != 0 || !b.Record.BelowThreshold || b.Record.Count != 0 || !strings.Contains(b.String(), "fewer than 10 patients") {
		t.Errorf("Feasibility(%s) = %+v (%s), want withheld", small, b, b)
	}

	// The sponsor and the board see the request's counts; another sponsor
	// does not.
	board := exchange.Principal{Role: ledger.RoleEthicsBoard, ID: string(s.board.ID)}
	recs, err := s.ex.FeasibilityRecords(ctx, board, s.req.ID)
	if err != nil || len(recs) != 1 || recs[0].Record.ID != rf.Record.ID {
		t.Errorf("FeasibilityRecords(board) = %v, %v; want the request's one count", recs, err)
	}
	other := exchange.Principal{Role: ledger.RoleSponsor, ID: "someone-else"}
	if _, err := s.ex.FeasibilityRecords(ctx, other, s.req.ID); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("FeasibilityRecords(other sponsor) = %v, want ErrNotFound", err)
	}
}

// TestFeasibilityNoise checks the noisy path: the answer states the noise
// scale and threshold applied, the count is rounded, and repeating the
// same criteria returns the same answer at no charge.
func TestFeasibilityNoise(t *testing.T) {
	s := newStudy(t, studyOptions{noise: true, patients: 300})
	ctx := t.Context()
	const crit = "age >= 40"
	want := s.plainCount(t, crit)
	f, err := s.ex.Feasibility(ctx, s.sponsor, crit)
	if err != nil {
		t.Fatal(err)
	}
	// Scale 2 at epsilon 0.5: 64 scales is a bound no honest draw exceeds.
	if f.Mechanism != privacy.MechanismDiscreteLaplace || f.NoiseScale != 2 || f.Rounding != 5 || f.Count%5 != 0 ||
		f.Count < want-130 || f.Count > want+130 || f.Cached {
		t.Errorf("Feasibility = %+v, want a noisy count near %d rounded to 5", f, want)
	}
	if !strings.Contains(f.String(), "discrete-laplace noise of scale 2") || !strings.Contains(f.String(), "counts under 10 withheld") {
		t.Errorf("String() = %q: it must state the noise and threshold", f.String())
	}
	// The criteria are normalised: the same cohort written differently is
	// the same ask.
	again, err := s.ex.Feasibility(ctx, s.sponsor, "  age>=40 ")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Count != f.Count || again.EpsilonSpent != 0 || again.Record.CachedFrom != f.Record.ID ||
		again.EpsilonLeft != f.EpsilonLeft || again.AsksLeft != f.AsksLeft-1 {
		t.Errorf("repeat = %+v, want the cached answer %d of %s, free", again, f.Count, f.Record.ID)
	}
}

// TestFeasibilityRefusals: overspending the allowance, bad criteria and the
// wrong role are refused, and the ledger is unchanged.
func TestFeasibilityRefusals(t *testing.T) {
	s := newStudy(t, studyOptions{feasibility: exchange.FeasibilityPolicy{Epsilon: 2}})
	ctx := t.Context()
	for _, c := range []string{"age >= 20", "age >= 30"} {
		if _, err := s.ex.Feasibility(ctx, s.sponsor, c); err != nil {
			t.Fatal(err)
		}
	}
	before := s.feasibilityState(t)
	if _, err := s.ex.Feasibility(ctx, s.sponsor, "age >= 40"); !errors.Is(err, ledger.ErrBudget) {
		t.Errorf("third ask at epsilon 2 of 5 = %v, want ErrBudget", err)
	}
	for _, tc := range []struct {
		name     string
		sg       ledger.Signer
		criteria string
		want     error
		msg      string
	}{
		{"syntax", s.sponsor, "age >=", exchange.ErrInvalid, "1:7"},
		{"unknown column", s.sponsor, "age > 3 AND\n  weight > 80", exchange.ErrInvalid, "2:3"},
		{"an aggregate", s.sponsor, "COUNT(*) > 3", exchange.ErrInvalid, "1:1"},
		{"board", s.board, "age >= 50", ledger.ErrForbidden, "not a sponsor"},
	} {
		_, err := s.ex.Feasibility(ctx, tc.sg, tc.criteria)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: Feasibility(%q) = %v, want %v mentioning %q", tc.name, tc.criteria, err, tc.want, tc.msg)
		}
	}
	if _, err := s.ex.RequestFeasibility(ctx, s.board, s.req.ID); !errors.Is(err, ledger.ErrForbidden) {
		t.Errorf("RequestFeasibility by the board = %v, want ErrForbidden", err)
	}
	if diff := cmp.Diff(before, s.feasibilityState(t)); diff != "" {
		t.Errorf("refused asks changed the ledger (-before +after):\n%s", diff)
	}
}

// feasibilityState is what a feasibility ask could change on the ledger.
func (s *study) feasibilityState(t *testing.T) any {
	t.Helper()
	var out []any
	for _, id := range []ledger.ParticipantID{s.sponsor.ID, s.board.ID} {
		recs, err := s.led.Feasibilities(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recs)
	}
	tok, err := s.led.Tokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return append(out, tok)
}
