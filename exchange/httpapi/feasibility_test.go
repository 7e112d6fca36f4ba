package httpapi

import (
	"strings"
	"testing"

	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

// checkFeasibility asks feasibility counts before posting and for request
// r (whose criteria are exchangetest.Criteria): the fixture has noise off,
// so the count is the plaintext count rounded to 5; the request's ask is
// the same criteria, answered from the cache; bad criteria are 400 with
// their position; another sponsor cannot ask for or see r's counts.
func checkFeasibility(t *testing.T, e *env, r ledger.Request, sponsorTok, otherSponsorTok, boardTok string) {
	t.Helper()
	var plain int64
	for _, c := range exchangetest.Custodians {
		plain += int64(len(e.f.MatchingPatients(t, c, exchangetest.Criteria, 1<<30)))
	}
	var f feasibilityResponse
	e.ok(t, 200, "POST", "/v1/feasibility", "", sponsorTok, map[string]string{"criteria": exchangetest.Criteria}, &f)
	if d := f.Count - plain; f.BelowThreshold || d < -2 || d > 2 || f.Count%5 != 0 || f.Mechanism != "none" || f.Threshold != 10 || f.Cached ||
		f.Record.Status != ledger.FeasibilityReleased || !strings.Contains(f.Answer, "counts under 10 withheld") {
		t.Errorf("POST /v1/feasibility = %+v, want %d rounded to 5, no noise", f, plain)
	}
	var rf feasibilityResponse
	e.ok(t, 200, "POST", "/v1/requests/{id}/feasibility", string(r.ID), sponsorTok, nil, &rf)
	if !rf.Cached || rf.Count != f.Count || rf.EpsilonSpent != 0 || rf.Record.Request != r.ID {
		t.Errorf("POST /v1/requests/{id}/feasibility = %+v, want the cached count %d", rf, f.Count)
	}
	var list []feasibilityResponse
	e.ok(t, 200, "GET", "/v1/requests/{id}/feasibility", string(r.ID), boardTok, nil, &list)
	if len(list) != 2 || list[0].Record.ID != f.Record.ID || list[1].Record.ID != rf.Record.ID {
		t.Errorf("board's GET feasibility = %+v, want both asks", list)
	}
	res := e.call(t, "POST", "/v1/feasibility", "", sponsorTok, map[string]string{"criteria": "age BETWEEN 30 AND"})
	if res.status != 400 || !strings.Contains(string(res.body), "1:19") {
		t.Errorf("bad criteria = %d %s, want 400 naming 1:19", res.status, res.body)
	}
	for _, m := range []string{"GET", "POST"} {
		if res := e.call(t, m, "/v1/requests/{id}/feasibility", string(r.ID), otherSponsorTok, nil); res.status != 404 {
			t.Errorf("other sponsor %s feasibility = %d %s, want 404", m, res.status, res.body)
		}
	}
}
