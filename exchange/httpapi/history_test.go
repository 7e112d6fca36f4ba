package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

type movementJSON struct {
	Height  uint64           `json:"height"`
	Kind    string           `json:"kind"`
	Request ledger.RequestID `json:"request"`
	Amount  ledger.Amount    `json:"amount"`
	Balance ledger.Amount    `json:"balance"`
}

// checkHistoryAndExport runs, inside TestAPIFlow, the token history of a
// patient and a sponsor against their balances, the audit export in both
// formats with filters, and live criteria validation.
func checkHistoryAndExport(t *testing.T, e *env, r1 ledger.Request, aliceTok, sponsorTok, boardTok string, aliceLic ledger.Licence) {
	t.Helper()
	for _, who := range []struct {
		name, tok string
		kinds     []string
	}{
		{"alice", aliceTok, []string{"reward"}},
		{"sponsor", sponsorTok, []string{"mint", "escrow", "escrow", "escrow", "escrow", "refund", "refund", "refund"}},
	} {
		var hist []movementJSON
		e.ok(t, 200, "GET", "/v1/tokens/history", "", who.tok, nil, &hist)
		var bal struct{ Balance ledger.Amount }
		e.ok(t, 200, "GET", "/v1/tokens/balance", "", who.tok, nil, &bal)
		var kinds []string
		var sum ledger.Amount
		for _, m := range hist {
			kinds = append(kinds, m.Kind)
			sum += m.Amount
			if m.Balance != sum {
				t.Errorf("%s: history balance %d after %+v, want running sum %d", who.name, m.Balance, m, sum)
			}
		}
		if !slices.Equal(kinds, who.kinds) || sum != bal.Balance {
			t.Errorf("%s: token history %v sums to %d, want kinds %v summing to the balance %d", who.name, kinds, sum, who.kinds, bal.Balance)
		}
	}

	// CSV of r1: a header, and only r1's records.
	r := e.call(t, "GET", "/v1/audit/export?format=csv&request="+string(r1.ID), "", boardTok, nil)
	if r.status != 200 || r.ctype != "text/csv; charset=utf-8; header=present" {
		t.Fatalf("CSV export = %d %s %s", r.status, r.ctype, r.body)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(rows) < 2 || !slices.Equal(rows[0], ledger.TrailCSVHeader()) {
		t.Fatalf("CSV export: %d rows, %v", len(rows), err)
	}
	for _, row := range rows[1:] {
		if row[8] != string(r1.ID) {
			t.Errorf("CSV export for %s has a row of %q", r1.ID, row[8])
		}
	}
	// JSON Lines of alice's pseudonym: her grant, her revocation, and the
	// query that used her licence.
	r = e.call(t, "GET", "/v1/audit/export?format=jsonl&patient="+string(aliceLic.Patient)+"&from=2000-01-01T00:00:00Z", "", boardTok, nil)
	if r.status != 200 || r.ctype != "application/jsonl" {
		t.Fatalf("JSONL export = %d %s %s", r.status, r.ctype, r.body)
	}
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var rec ledger.TrailRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("JSONL line %s: %v", sc.Bytes(), err)
		}
		events = append(events, rec.Event)
	}
	for _, want := range []string{ledger.EventLicenceGranted, ledger.EventQueryCompleted, ledger.EventLicenceRevoked} {
		if !slices.Contains(events, want) {
			t.Errorf("alice's export %v has no %s", events, want)
		}
	}
	before := e.f.Ledger.Height()
	for _, bad := range []string{"?format=xml", "?from=yesterday", "?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "?sponsor=acme"} {
		if r := e.call(t, "GET", "/v1/audit/export"+bad, "", boardTok, nil); r.status != 400 || r.problemType() != "invalid" {
			t.Errorf("export%s = %d %s, want 400 invalid", bad, r.status, r.body)
		}
	}

	// Criteria as the sponsor types them.
	type check struct {
		Valid      bool     `json:"valid"`
		Normalised string   `json:"normalised"`
		Categories []string `json:"categories"`
		Errors     []struct {
			Line, Column int
			Message      string
		} `json:"errors"`
	}
	var c check
	e.ok(t, 200, "POST", "/v1/criteria/validate", "", sponsorTok, map[string]any{"criteria": "age between 40 and 75 and hba1c > 7", "scope": []string{"demographics", "labs"}}, &c)
	if !c.Valid || c.Normalised != "age BETWEEN 40 AND 75 AND hba1c > 7" || !slices.Equal(c.Categories, []string{"demographics", "labs"}) {
		t.Errorf("valid criteria = %+v", c)
	}
	c = check{}
	e.ok(t, 200, "POST", "/v1/criteria/validate", "", boardTok, map[string]any{"criteria": "age > 40 AND\n  hba1c >", "scope": []string{"demographics", "labs"}}, &c)
	if c.Valid || len(c.Errors) != 1 || c.Errors[0].Line != 2 || c.Errors[0].Column == 0 {
		t.Errorf("syntax error = %+v, want one error on line 2 with a column", c)
	}
	c = check{}
	e.ok(t, 200, "POST", "/v1/criteria/validate", "", sponsorTok, map[string]any{"criteria": "hba1c > 7", "scope": []string{"demographics"}}, &c)
	if c.Valid || len(c.Errors) != 1 || c.Errors[0].Line != 0 {
		t.Errorf("criteria outside the scope = %+v, want one error without position", c)
	}
	if r := e.call(t, "POST", "/v1/criteria/validate", "", sponsorTok, []byte(`{"criteria": 5}`)); r.status != 400 {
		t.Errorf("criteria of the wrong type = %d, want 400", r.status)
	}
	if after := e.f.Ledger.Height(); after != before {
		t.Errorf("ledger height %d -> %d after exports and validations", before, after)
	}
}

// checkCustodialQuery runs, inside TestAPIFlow, the custodial result key:
// refused before the sponsor chooses one, then a decrypted count.
func checkCustodialQuery(t *testing.T, e *env, r1 ledger.Request, sponsorTok string, licensed int) {
	t.Helper()
	body := map[string]any{"query": flowQuery, "epsilon": 0.5}
	if r := e.call(t, "POST", "/v1/requests/{id}/custodial-queries", string(r1.ID), sponsorTok, body); r.status != 403 || r.problemType() != "no-custodial-key" {
		t.Errorf("custodial query before choosing a key = %d %s, want 403 no-custodial-key", r.status, r.body)
	}
	var k struct{ Created bool }
	e.ok(t, 201, "POST", "/v1/custodial-sponsor-key", "", sponsorTok, nil, &k)
	e.ok(t, 200, "POST", "/v1/custodial-sponsor-key", "", sponsorTok, nil, &k)
	if k.Created {
		t.Error("second custodial key request made another key")
	}
	var res struct {
		Table struct {
			Columns []string
			Rows    []struct {
				Values []struct {
					Value      float64
					Suppressed bool
				}
			}
		}
		Disclosure struct{ EpsilonSpent float64 }
		Record     ledger.QueryRecord
	}
	e.ok(t, 201, "POST", "/v1/requests/{id}/custodial-queries", string(r1.ID), sponsorTok, body, &res)
	if len(res.Table.Rows) != 1 || res.Table.Rows[0].Values[0].Value != float64(licensed) || res.Record.Licences != int64(licensed) {
		t.Errorf("custodial result = %+v, want COUNT(*) %d", res, licensed)
	}
	other := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor2))
	if r := e.call(t, "POST", "/v1/requests/{id}/custodial-queries", string(r1.ID), other, body); r.status != 403 {
		t.Errorf("another sponsor's custodial query = %d %s, want 403", r.status, r.body)
	}
}

// TestEventsResume reconnects with Last-Event-ID: the stream goes on
// after that event, without gaps or repeats; a malformed id is 400.
func TestEventsResume(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sponsorTok := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor))
	boardTok := e.token(t, ledger.RoleEthicsBoard, string(exchangetest.Board))
	first, _ := e.listen(t, ctx, boardTok)
	for range 3 {
		e.ok(t, 201, "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(5), nil)
	}
	got := drain(t, first, func(evs []sseEvent) bool { return len(evs) >= 3 })
	resumed, _ := e.listenAfter(t, ctx, boardTok, got[0].id)
	e.ok(t, 201, "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(5), nil)
	again := drain(t, resumed, func(evs []sseEvent) bool { return len(evs) >= 3 })
	more := drain(t, first, func(evs []sseEvent) bool { return len(evs) >= 1 })
	want := []string{got[1].id, got[2].id, more[0].id}
	var ids []string
	for _, ev := range again {
		ids = append(ids, ev.id)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("resumed after %s: ids %v, want %v", got[0].id, ids, want)
	}
	select {
	case ev := <-resumed:
		t.Errorf("resumed stream repeated or invented %s", ev.id)
	case <-time.After(200 * time.Millisecond):
	}
	for _, bad := range []string{"x", "0-abc", "12", "-3-x"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+boardTok)
		req.Header.Set("Last-Event-ID", bad)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("Last-Event-ID %q = %d, want 400", bad, res.StatusCode)
		}
	}
}
