package httpapi

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

const flowQuery = "SELECT COUNT(*) AS n, AVG(sbp) AS mean_sbp FROM cohort"

// sseEvent is one server-sent event as a client reads it.
type sseEvent struct {
	id   string
	name string
	data eventData
}

// listen reads the caller's event stream until ctx ends.
func (e *env) listen(t *testing.T, ctx context.Context, token string) (<-chan sseEvent, <-chan struct{}) {
	t.Helper()
	return e.listenAfter(t, ctx, token, "")
}

// listenAfter reads the caller's event stream resumed after event id
// lastID (none if empty) until ctx ends.
func (e *env) listenAfter(t *testing.T, ctx context.Context, token, lastID string) (<-chan sseEvent, <-chan struct{}) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /v1/events = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	e.openapi.check(t, "GET", "/v1/events", resp{status: 200, ctype: res.Header.Get("Content-Type")})
	e.mu.Lock()
	e.covered["GET /v1/events"] = true
	e.mu.Unlock()
	out := make(chan sseEvent, 256)
	ready := make(chan struct{})
	go func() {
		defer res.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		first := true
		for sc.Scan() {
			line := sc.Text()
			switch {
			case first && strings.HasPrefix(line, ":"):
				first = false
				close(ready)
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("event stream did not start")
	}
	return out, ready
}

// drain collects the events that arrived so far, waiting for want names.
func drain(t *testing.T, ch <-chan sseEvent, until func([]sseEvent) bool) []sseEvent {
	t.Helper()
	var got []sseEvent
	deadline := time.After(15 * time.Second)
	for !until(got) {
		select {
		case ev, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("events: timed out with %d events", len(got))
		}
	}
	return got
}

// TestAPIFlow walks a whole study over HTTP through every route, and
// validates every response against the OpenAPI document.
func TestAPIFlow(t *testing.T) {
	e := newEnv(t)
	f := e.f
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sponsorTok := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor))
	otherSponsorTok := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor2))
	boardTok := e.token(t, ledger.RoleEthicsBoard, string(exchangetest.Board))
	opTok := e.token(t, ledger.RoleOperator, string(exchangetest.Operator))
	cust := exchangetest.Custodians[0]
	custTok := e.token(t, ledger.RoleCustodian, string(cust))

	// Public routes and identity.
	e.ok(t, 200, "GET", "/healthz", "", "", nil, nil)
	e.ok(t, 200, "GET", "/openapi.json", "", "", nil, nil)
	for _, p := range []string{"/", "/ui/app.js", "/ui/app.css"} {
		if r := e.call(t, "GET", p, "", "", nil); r.status != 200 || len(r.body) == 0 {
			t.Errorf("GET %s = %d (%d bytes)", p, r.status, len(r.body))
		}
	}
	var me struct{ Role, ID string }
	e.ok(t, 200, "GET", "/v1/me", "", boardTok, nil, &me)
	if me.Role != string(ledger.RoleEthicsBoard) || me.ID != string(exchangetest.Board) {
		t.Errorf("GET /v1/me = %+v", me)
	}

	// The operator registers a sponsor and mints it tokens.
	pub, _, _ := ed25519.GenerateKey(nil)
	e.ok(t, 201, "POST", "/v1/participants", "", opTok, map[string]any{"id": "initech", "role": "sponsor", "name": "Initech", "publicKey": []byte(pub)}, nil)
	e.ok(t, 200, "POST", "/v1/tokens/mint", "", opTok, map[string]any{"to": "initech", "amount": 500}, nil)
	var part ledger.Participant
	e.ok(t, 200, "GET", "/v1/participants/{id}", "initech", custTok, nil, &part)
	if part.Role != ledger.RoleSponsor {
		t.Errorf("participant initech = %+v", part)
	}

	// Records: two custodial patients, one on her own device, one who
	// declines, one who does not match.
	recs := f.MatchingPatients(t, cust, exchangetest.Criteria, 14)
	recs2 := f.MatchingPatients(t, exchangetest.Custodians[1], exchangetest.Criteria, 8)
	alice, bob, carol := recs[0], recs[1], recs[2]
	aliceTok := e.patientToken(t, cust, alice)
	bobTok := e.patientToken(t, cust, bob)
	carolTok := e.patientToken(t, cust, carol)
	daveTok := e.patientToken(t, cust, f.NonMatchingPatient(t, cust, exchangetest.Criteria))
	aliceEvents, _ := e.listen(t, ctx, aliceTok)
	sponsorEvents, _ := e.listen(t, ctx, sponsorTok)

	// Requests: r1 runs; r2 is rejected, r3 closed, r4 halted.
	var r1, r2, r3, r4 ledger.Request
	for _, r := range []*ledger.Request{&r1, &r2, &r3, &r4} {
		e.ok(t, 201, "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(40), r)
	}
	var seen []ledger.Request
	e.ok(t, 200, "GET", "/v1/requests", "", aliceTok, nil, &seen)
	if len(seen) != 0 {
		t.Errorf("patient sees %d requests before approval, want 0", len(seen))
	}
	if r := e.call(t, "GET", "/v1/requests/{id}", string(r1.ID), aliceTok, nil); r.status != 404 {
		t.Errorf("patient GET pending request = %d, want 404", r.status)
	}
	if r := e.call(t, "GET", "/v1/requests/{id}", string(r1.ID), otherSponsorTok, nil); r.status != 404 {
		t.Errorf("other sponsor GET request = %d, want 404", r.status)
	}
	checkFeasibility(t, e, r1, sponsorTok, otherSponsorTok, boardTok)
	approve := map[string]any{"minCell": 2, "epsilonBudget": 5.0, "reason": "proportionate"}
	e.ok(t, 200, "POST", "/v1/requests/{id}/approve", string(r1.ID), boardTok, approve, nil)
	e.ok(t, 200, "POST", "/v1/requests/{id}/reject", string(r2.ID), boardTok, map[string]string{"reason": "too broad"}, nil)
	e.ok(t, 200, "POST", "/v1/requests/{id}/close", string(r3.ID), sponsorTok, nil, nil)
	e.ok(t, 200, "POST", "/v1/requests/{id}/approve", string(r4.ID), boardTok, approve, nil)
	var halted ledger.Request
	e.ok(t, 200, "POST", "/v1/requests/{id}/halt", string(r4.ID), boardTok, map[string]string{"reason": "safety signal"}, &halted)
	if halted.Status != ledger.StatusHalted || halted.Escrow != 0 {
		t.Errorf("halted request = %s escrow %d", halted.Status, halted.Escrow)
	}
	var r1Seen ledger.Request
	e.ok(t, 200, "GET", "/v1/requests/{id}", string(r1.ID), sponsorTok, nil, &r1Seen)
	if r1Seen.Status != ledger.StatusOpen {
		t.Fatalf("r1 status %s", r1Seen.Status)
	}

	// Offers.
	var offers []struct {
		Request ledger.Request      `json:"request"`
		Terms   ledger.LicenceTerms `json:"terms"`
	}
	e.ok(t, 200, "GET", "/v1/offers", "", aliceTok, nil, &offers)
	if len(offers) != 1 || offers[0].Request.ID != r1.ID || offers[0].Terms.Reward != r1.RewardPerPatient {
		t.Fatalf("alice's offers = %+v, want r1 only", offers)
	}
	e.ok(t, 200, "GET", "/v1/offers", "", daveTok, nil, &offers)
	if len(offers) != 0 {
		t.Errorf("non-matching patient has %d offers", len(offers))
	}

	// Alice accepts through the custodial keystore.
	var aliceLic ledger.Licence
	e.ok(t, 201, "POST", "/v1/requests/{id}/accept", string(r1.ID), aliceTok, nil, &aliceLic)
	aliceWallet, _ := f.Keystore.Patient(cust, alice)
	if aliceLic.Patient != aliceWallet.Pseudonym(r1.ID) {
		t.Errorf("alice's licence is for %s, want her pseudonym", aliceLic.Patient)
	}
	if r := e.call(t, "POST", "/v1/requests/{id}/accept", string(r1.ID), aliceTok, nil); r.status != 409 {
		t.Errorf("accept twice = %d %s, want 409", r.status, r.body)
	}

	// Bob signs on his own device: certificate, then the signed action.
	bobKey := exchangetest.Wallet(t, cust, bob).StudyKey(r1.ID)
	var cert struct {
		Certificate  ledger.Certificate  `json:"certificate"`
		Terms        ledger.LicenceTerms `json:"terms"`
		Action       ledger.Action       `json:"action"`
		SigningBytes []byte              `json:"signingBytes"`
	}
	e.ok(t, 200, "POST", "/v1/requests/{id}/certificate", string(r1.ID), bobTok, map[string]any{"publicKey": []byte(bobKey.Public())}, &cert)
	if string(cert.SigningBytes) != string(cert.Action.SigningBytes()) || cert.Action.Actor != bobKey.ID {
		t.Fatalf("certificate response: signing bytes or actor do not match the action")
	}
	act := cert.Action
	act.Sig = ed25519.Sign(bobKey.Key, act.SigningBytes())
	// Carol cannot submit Bob's signed acceptance as hers.
	if r := e.call(t, "POST", "/v1/requests/{id}/accept", string(r1.ID), carolTok, map[string]any{"action": act}); r.status != 403 {
		t.Errorf("carol submits bob's action = %d %s, want 403", r.status, r.body)
	}
	tampered := act
	tampered.Nonce = strings.Repeat("0", 32)
	if r := e.call(t, "POST", "/v1/requests/{id}/accept", string(r1.ID), bobTok, map[string]any{"action": tampered}); r.status != 400 || r.problemType() != "bad-signature" {
		t.Errorf("tampered action = %d %s, want 400 bad-signature", r.status, r.body)
	}
	var bobLic ledger.Licence
	e.ok(t, 201, "POST", "/v1/requests/{id}/accept", string(r1.ID), bobTok, map[string]any{"action": act}, &bobLic)
	if bobLic.Patient != bobKey.ID {
		t.Errorf("bob's licence is for %s, want %s", bobLic.Patient, bobKey.ID)
	}
	if r := e.call(t, "POST", "/v1/requests/{id}/accept", string(r1.ID), bobTok, map[string]any{"action": act}); r.status != 409 {
		t.Errorf("replayed acceptance = %d %s, want 409", r.status, r.body)
	}

	// Carol declines; Dave's record does not match.
	e.ok(t, 204, "POST", "/v1/requests/{id}/decline", string(r1.ID), carolTok, nil, nil)
	e.ok(t, 200, "GET", "/v1/offers", "", carolTok, nil, &offers)
	if len(offers) != 0 {
		t.Errorf("carol still offered %d after declining", len(offers))
	}
	if r := e.call(t, "POST", "/v1/requests/{id}/certificate", string(r1.ID), daveTok, map[string]any{"publicKey": []byte(bobKey.Public())}); r.status != 409 || r.problemType() != "not-offered" {
		t.Errorf("non-matching patient certificate = %d %s, want 409 not-offered", r.status, r.body)
	}

	// More patients accept, at both custodians.
	accepted := 2
	for _, rec := range append(recs[3:], recs2...) {
		c := cust
		if slices.Contains(recs2, rec) {
			c = exchangetest.Custodians[1]
		}
		e.ok(t, 201, "POST", "/v1/requests/{id}/accept", string(r1.ID), e.patientToken(t, c, rec), nil, nil)
		accepted++
	}

	// The sponsor queries and decrypts locally.
	count := func() float64 {
		t.Helper()
		var qr struct {
			Record     ledger.QueryRecord `json:"record"`
			Query      string             `json:"query"`
			Ciphertext []byte             `json:"ciphertext"`
			Suppressed []bool             `json:"suppressed"`
		}
		skPub, _ := f.SponsorSK.PublicKey()
		e.ok(t, 201, "POST", "/v1/requests/{id}/queries", string(r1.ID), sponsorTok,
			map[string]any{"query": flowQuery, "epsilon": 0.5, "sponsorPublicKey": skPub}, &qr)
		res := &exchange.QueryResult{Query: qr.Query, Ciphertext: qr.Ciphertext, Suppressed: qr.Suppressed}
		tbl, err := res.Decrypt(f.SponsorSK)
		if err != nil {
			t.Fatalf("decrypt: %v", err)
		}
		if int(qr.Record.Licences) != len(tbl.Rows)*0+int(qr.Record.Licences) {
			t.Fatal("unreachable")
		}
		return tbl.Rows[0].Values[0].Float
	}
	if got := count(); got != float64(accepted) {
		t.Errorf("COUNT(*) = %v, want %d licensed patients", got, accepted)
	}
	var qrecs []ledger.QueryRecord
	e.ok(t, 200, "GET", "/v1/requests/{id}/queries", string(r1.ID), sponsorTok, nil, &qrecs)
	if len(qrecs) != 1 || qrecs[0].Status != ledger.QueryCompleted {
		t.Errorf("query records = %+v", qrecs)
	}
	if r := e.call(t, "GET", "/v1/requests/{id}/queries", string(r1.ID), otherSponsorTok, nil); r.status != 404 {
		t.Errorf("other sponsor's query records = %d, want 404", r.status)
	}
	var nbRun ledger.NotebookRun
	e.ok(t, 201, "POST", "/v1/requests/{id}/notebook-runs", string(r1.ID), sponsorTok,
		map[string]any{"notebookHash": strings.Repeat("ab", 32), "cells": []map[string]any{{"name": "c1", "query": qrecs[0].ID, "queryHash": qrecs[0].QueryHash}}}, &nbRun)
	// The recorded run reads back for its sponsor and the board, not for
	// another sponsor.
	for _, tok := range []string{sponsorTok, boardTok} {
		var got ledger.NotebookRun
		e.ok(t, 200, "GET", "/v1/notebook-runs/{id}", string(nbRun.ID), tok, nil, &got)
		if got.ID != nbRun.ID || got.NotebookHash != strings.Repeat("ab", 32) || len(got.Cells) != 1 || got.Cells[0].Query != qrecs[0].ID {
			t.Errorf("GET notebook run = %+v, want %+v", got, nbRun)
		}
	}
	if r := e.call(t, "GET", "/v1/notebook-runs/{id}", string(nbRun.ID), otherSponsorTok, nil); r.status != 404 {
		t.Errorf("other sponsor's notebook run = %d, want 404", r.status)
	}
	if r := e.call(t, "GET", "/v1/notebook-runs/{id}", "nb-doesnotexist", boardTok, nil); r.status != 404 && r.status != 400 {
		t.Errorf("missing notebook run = %d, want 404 or 400", r.status)
	}

	// Alice sees her licence, the query that used it and her earnings.
	var lics []ledger.Licence
	e.ok(t, 200, "GET", "/v1/licences", "", aliceTok, nil, &lics)
	if len(lics) != 1 || lics[0].ID != aliceLic.ID {
		t.Errorf("alice's licences = %+v", lics)
	}
	var acc []ledger.QueryRecord
	e.ok(t, 200, "GET", "/v1/accesses", "", aliceTok, nil, &acc)
	if len(acc) != 1 || acc[0].ID != qrecs[0].ID {
		t.Errorf("alice's access history = %+v", acc)
	}
	var bal struct{ Balance ledger.Amount }
	e.ok(t, 200, "GET", "/v1/tokens/balance", "", aliceTok, nil, &bal)
	if bal.Balance != r1.RewardPerPatient {
		t.Errorf("alice's balance = %d, want %d", bal.Balance, r1.RewardPerPatient)
	}

	// Revocations: Carol cannot revoke Alice's licence; Alice revokes via
	// the keystore, Bob with his own signature.
	if r := e.call(t, "POST", "/v1/licences/{id}/revoke", string(aliceLic.ID), carolTok, nil); r.status != 403 {
		t.Errorf("carol revokes alice's licence = %d %s, want 403", r.status, r.body)
	}
	var rev ledger.Licence
	e.ok(t, 200, "POST", "/v1/licences/{id}/revoke", string(aliceLic.ID), aliceTok, nil, &rev)
	if rev.Revoked == nil {
		t.Error("alice's licence not revoked")
	}
	revAct, err := bobKey.Sign(ledger.FnRevokeLicence, ledger.RevokeArgs{Licence: bobLic.ID})
	if err != nil {
		t.Fatal(err)
	}
	e.ok(t, 200, "POST", "/v1/licences/{id}/revoke", string(bobLic.ID), bobTok, map[string]any{"action": revAct}, &rev)
	if got := count(); got != float64(accepted-2) {
		t.Errorf("COUNT(*) after two revocations = %v, want %d", got, accepted-2)
	}

	// The board audits.
	var supply ledger.TokenSummary
	e.ok(t, 200, "GET", "/v1/tokens/supply", "", boardTok, nil, &supply)
	if supply.Balances+supply.Escrow != supply.Minted {
		t.Errorf("tokens not conserved: %+v", supply)
	}
	var trail []struct {
		Request  ledger.Request       `json:"request"`
		Licences []ledger.Licence     `json:"licences"`
		Queries  []ledger.QueryRecord `json:"queries"`
	}
	e.ok(t, 200, "GET", "/v1/audit/trail?status=open", "", boardTok, nil, &trail)
	e.ok(t, 200, "GET", "/v1/audit/trail", "", boardTok, nil, &trail)
	if len(trail) != 4 {
		t.Errorf("trail has %d requests, want 4", len(trail))
	}
	var sum struct {
		Verified, Conserved bool
		LicencesRevoked     int
		Queries             int
	}
	e.ok(t, 200, "GET", "/v1/audit/summary", "", boardTok, nil, &sum)
	if !sum.Verified || !sum.Conserved || sum.LicencesRevoked != 2 || sum.Queries != 2 {
		t.Errorf("audit summary = %+v", sum)
	}
	var parts []ledger.Participant
	e.ok(t, 200, "GET", "/v1/participants", "", sponsorTok, nil, &parts)
	for _, p := range parts {
		if p.Role == ledger.RolePatient {
			t.Errorf("sponsor sees pseudonym %s", p.ID)
		}
	}
	e.ok(t, 200, "GET", "/v1/participants", "", boardTok, nil, &parts)
	if !slices.ContainsFunc(parts, func(p ledger.Participant) bool { return p.ID == aliceLic.Patient }) {
		t.Error("board does not see alice's pseudonym")
	}
	e.ok(t, 200, "GET", "/metrics", "", "", nil, nil)
	checkHistoryAndExport(t, e, r1, aliceTok, sponsorTok, boardTok, aliceLic)
	checkCustodialQuery(t, e, r1, sponsorTok, accepted-2)

	// Notifications: Alice got her own licence's events and no one
	// else's; the sponsor got its requests' events.
	got := drain(t, aliceEvents, func(evs []sseEvent) bool {
		return slices.ContainsFunc(evs, func(ev sseEvent) bool { return ev.name == ledger.EventLicenceRevoked })
	})
	for _, ev := range got {
		if ev.data.Payload.Patient != "" && ev.data.Payload.Patient != aliceLic.Patient {
			t.Errorf("alice was notified of %s for %s", ev.name, ev.data.Payload.Patient)
		}
	}
	if !slices.ContainsFunc(got, func(ev sseEvent) bool { return ev.name == ledger.EventLicenceGranted }) {
		t.Error("alice was not notified of her licence")
	}
	sg := drain(t, sponsorEvents, func(evs []sseEvent) bool {
		return slices.ContainsFunc(evs, func(ev sseEvent) bool { return ev.name == ledger.EventQueryCompleted })
	})
	for _, ev := range sg {
		if ev.data.Payload.Sponsor != exchangetest.Sponsor {
			t.Errorf("sponsor was notified of %s of %s", ev.name, ev.data.Payload.Sponsor)
		}
	}

	// Every route answered successfully at least once.
	for _, rt := range (&Server{}).routes() {
		if !e.covered[rt.method+" "+rt.pattern] {
			t.Errorf("route %s %s was not exercised successfully", rt.method, rt.pattern)
		}
	}
}

// TestConcurrentAcceptsForLastPlaces races more patients than places:
// exactly MaxParticipants licences are granted, the rest get 409.
func TestConcurrentAcceptsForLastPlaces(t *testing.T) {
	e := newEnv(t)
	sponsorTok := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor))
	boardTok := e.token(t, ledger.RoleEthicsBoard, string(exchangetest.Board))
	const places = 3
	var r ledger.Request
	e.ok(t, 201, "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(places), &r)
	e.ok(t, 200, "POST", "/v1/requests/{id}/approve", string(r.ID), boardTok, map[string]any{"minCell": 2, "epsilonBudget": 1.0}, nil)
	cust := exchangetest.Custodians[0]
	recs := e.f.MatchingPatients(t, cust, exchangetest.Criteria, 10)
	statuses := make([]int, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.call(t, "POST", "/v1/requests/{id}/accept", string(r.ID), e.patientToken(t, cust, rec), nil).status
		}()
	}
	wg.Wait()
	var created, conflict int
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
			conflict++
		}
	}
	lics, err := e.f.Client.Licences(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if created != places || conflict != len(recs)-places || len(lics) != places {
		t.Errorf("racing accepts: %d created, %d conflicts, %d licences on the ledger; want %d, %d, %d (statuses %v)",
			created, conflict, len(lics), places, len(recs)-places, places, statuses)
	}
}
