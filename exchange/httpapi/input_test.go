package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

// TestBadInput sends malformed, oversize and invalid bodies: each gets the
// right 4xx problem and the ledger does not change.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	sponsorTok := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor))
	boardTok := e.token(t, ledger.RoleEthicsBoard, string(exchangetest.Board))
	opTok := e.token(t, ledger.RoleOperator, string(exchangetest.Operator))
	var r ledger.Request
	e.ok(t, 201, "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(5), &r)
	bad := exchangetest.Draft(5)
	bad.Criteria = "age BETWEEN AND 7"
	uncovered := exchangetest.Draft(5)
	uncovered.Scope = []string{"demographics"}
	uncovered.Criteria = "hba1c > 7"
	cases := []struct {
		name, method, pattern, id, token string
		body                             any
		ctype                            string
		want                             int
		problem                          string
	}{
		{"malformed JSON", "POST", "/v1/requests", "", sponsorTok, []byte(`{"title": `), "", 400, "invalid"},
		{"wrong type", "POST", "/v1/requests", "", sponsorTok, []byte(`{"title": 5}`), "", 400, "invalid"},
		{"unknown field", "POST", "/v1/requests", "", sponsorTok, []byte(`{"title": "x", "admin": true}`), "", 400, "invalid"},
		{"trailing data", "POST", "/v1/requests", "", sponsorTok, []byte(`{"title": "x"} {}`), "", 400, "invalid"},
		{"empty body", "POST", "/v1/requests", "", sponsorTok, nil, "", 400, "invalid"},
		{"oversize body", "POST", "/v1/requests", "", sponsorTok, []byte(`{"title": "` + strings.Repeat("x", DefaultMaxBody) + `"}`), "", 413, "too-large"},
		{"not JSON", "POST", "/v1/requests", "", sponsorTok, []byte(`title=x`), "text/plain", 415, "unsupported-media-type"},
		{"invalid criteria", "POST", "/v1/requests", "", sponsorTok, bad, "", 400, "invalid"},
		{"criteria outside the scope", "POST", "/v1/requests", "", sponsorTok, uncovered, "", 400, "invalid"},
		{"no places", "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(0), "", 400, "invalid"},
		{"negative epsilon budget", "POST", "/v1/requests/{id}/approve", string(r.ID), boardTok, map[string]any{"minCell": 10, "epsilonBudget": -1}, "", 400, "invalid"},
		{"approve unknown request", "POST", "/v1/requests/{id}/approve", "req-0000", boardTok, map[string]any{"minCell": 10, "epsilonBudget": 1}, "", 404, "not-found"},
		{"query a pending request", "POST", "/v1/requests/{id}/queries", string(r.ID), sponsorTok, map[string]any{"query": flowQuery, "sponsorPublicKey": []byte{1, 2, 3}}, "", 409, "state"},
		{"query without key", "POST", "/v1/requests/{id}/queries", string(r.ID), sponsorTok, map[string]any{"query": flowQuery}, "", 400, "invalid"},
		{"mint nothing", "POST", "/v1/tokens/mint", "", opTok, map[string]any{"to": "acme", "amount": -5}, "", 400, "invalid"},
		{"register a patient", "POST", "/v1/participants", "", opTok, map[string]any{"id": "pn-abc", "role": "patient", "publicKey": make([]byte, 32)}, "", 400, ""},
		{"overspend", "POST", "/v1/requests", "", sponsorTok, func() ledger.RequestDraft { d := exchangetest.Draft(1_000_000); d.RewardPerPatient = 1000; return d }(), "", 402, "insufficient-funds"},
		{"unknown route", "GET", "/v1/nothing", "", sponsorTok, nil, "", 404, "no-route"},
		{"wrong method", "DELETE", "/v1/requests", "", sponsorTok, nil, "", 405, "method-not-allowed"},
	}
	before := e.f.Ledger.Height()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader
			switch b := c.body.(type) {
			case nil:
			case []byte:
				rd = bytes.NewReader(b)
			default:
				got := e.call(t, c.method, c.pattern, c.id, c.token, c.body)
				check(t, got, c.want, c.problem)
				return
			}
			path := strings.ReplaceAll(c.pattern, "{id}", c.id)
			req, _ := http.NewRequest(c.method, e.srv.URL+path, rd)
			req.Header.Set("Authorization", "Bearer "+c.token)
			ct := c.ctype
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			got := resp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: b}
			if !strings.HasPrefix(got.ctype, "application/problem+json") {
				t.Errorf("content type %q, want application/problem+json", got.ctype)
			}
			check(t, got, c.want, c.problem)
		})
	}
	if after := e.f.Ledger.Height(); after != before {
		t.Errorf("ledger height %d -> %d after refused input", before, after)
	}
}

func check(t *testing.T, got resp, want int, problem string) {
	t.Helper()
	if got.status != want || (problem != "" && got.problemType() != problem) {
		t.Errorf("= %d %s, want %d %s", got.status, got.body, want, problem)
	}
}
