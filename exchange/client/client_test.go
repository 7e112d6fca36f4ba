package client_test

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/client"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/exchange/httpapi"
	"github.com/medx/medx/ledger"
)

func TestClientStudy(t *testing.T) {
	ctx := t.Context()
	f := exchangetest.New(t, 300)
	_, jwtKey, _ := ed25519.GenerateKey(nil)
	srv := httptest.NewServer(httpapi.New(f.Exchange, httpapi.Options{
		Auth:     httpapi.NewAuthenticator("iss", "aud", httpapi.StaticKey(jwtKey.Public())),
		Keystore: f.Keystore, Log: slog.New(slog.DiscardHandler),
	}))
	defer srv.Close()
	as := func(role ledger.Role, sub string) *client.Client {
		now := time.Now()
		tok, err := httpapi.IssueToken(jwtKey, "", httpapi.TokenClaims{Issuer: "iss", Audience: "aud", Subject: sub, Role: role, IssuedAt: now, Expires: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return client.New(srv.URL, tok, srv.Client())
	}
	sponsor := as(ledger.RoleSponsor, string(exchangetest.Sponsor))
	board := as(ledger.RoleEthicsBoard, string(exchangetest.Board))
	cust := exchangetest.Custodians[0]
	recs := f.MatchingPatients(t, cust, exchangetest.Criteria, 6)

	// Feasibility before posting, then for the request: the same criteria,
	// answered from the cache.
	feas, err := sponsor.Feasibility(ctx, exchangetest.Criteria)
	if err != nil {
		t.Fatal(err)
	}
	if feas.BelowThreshold || feas.Count < 10 || feas.Threshold != 10 || feas.Record.Status != ledger.FeasibilityReleased {
		t.Errorf("Feasibility = %+v (%s)", feas, feas)
	}
	if _, err := sponsor.Feasibility(ctx, "age >"); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("Feasibility of bad criteria: %v, want ErrInvalid", err)
	}
	if _, err := board.Feasibility(ctx, exchangetest.Criteria); !errors.Is(err, ledger.ErrForbidden) {
		t.Errorf("board Feasibility: %v, want ErrForbidden", err)
	}
	r, err := sponsor.PostRequest(ctx, exchangetest.Draft(10))
	if err != nil {
		t.Fatal(err)
	}
	if rf, err := sponsor.RequestFeasibility(ctx, r.ID); err != nil || !rf.Cached || rf.Count != feas.Count {
		t.Errorf("RequestFeasibility = %+v, %v; want the cached %d", rf, err, feas.Count)
	}
	fs, err := board.FeasibilityRecords(ctx, r.ID)
	if err != nil || len(fs) != 2 {
		t.Errorf("board FeasibilityRecords = %v, %v; want 2", fs, err)
	}
	// Field for field what the exchange returns: no field is lost on the wire.
	want, err := f.Exchange.FeasibilityRecords(ctx, exchange.Principal{Role: ledger.RoleEthicsBoard, ID: string(exchangetest.Board)}, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fs, want) {
		t.Errorf("board FeasibilityRecords:\n got %+v\nwant %+v", fs, want)
	}
	if _, err := as(ledger.RolePatient, string(cust)+"/"+recs[0]).Accept(ctx, r.ID); !errors.Is(err, exchange.ErrNotOffered) {
		t.Errorf("Accept before approval: %v, want ErrNotOffered", err)
	}
	if _, err := sponsor.Approve(ctx, r.ID, 1, 2, "ok"); !errors.Is(err, ledger.ErrForbidden) {
		t.Errorf("sponsor Approve: %v, want ErrForbidden", err)
	}
	if _, err := board.Approve(ctx, r.ID, 1, 2, "ok"); err != nil {
		t.Fatal(err)
	}
	// Half accept custodially, half sign on their own device.
	var signed *exchange.Patient
	var signedLic ledger.Licence
	for i, rec := range recs {
		p := as(ledger.RolePatient, string(cust)+"/"+rec)
		offers, err := p.Offers(ctx)
		if err != nil || len(offers) != 1 {
			t.Fatalf("Offers = %v, %v", offers, err)
		}
		if i%2 == 0 {
			_, err = p.Accept(ctx, r.ID)
		} else {
			signed = exchangetest.Wallet(t, cust, rec)
			signedLic, err = p.AcceptSigned(ctx, r.ID, signed)
		}
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	res, err := sponsor.Query(ctx, r.ID, "SELECT COUNT(*) FROM cohort", 0.5, f.SponsorSK)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Table.Rows[0].Values[0].Float; got != float64(len(recs)) {
		t.Errorf("COUNT(*) = %v, want %d", got, len(recs))
	}
	last := as(ledger.RolePatient, string(cust)+"/"+recs[len(recs)-1])
	if _, err := last.RevokeSigned(ctx, signedLic.ID, r.ID, signed); err != nil {
		t.Fatalf("RevokeSigned: %v", err)
	}
	acc, err := last.Accesses(ctx)
	if err != nil || len(acc) != 1 {
		t.Errorf("Accesses = %v, %v; want the one query", acc, err)
	}
	res, err = sponsor.Query(ctx, r.ID, "SELECT COUNT(*) FROM cohort", 0.5, f.SponsorSK)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Table.Rows[0].Values[0].Float; got != float64(len(recs)-1) {
		t.Errorf("COUNT(*) after a revocation = %v, want %d", got, len(recs)-1)
	}
	if _, err := sponsor.Query(ctx, r.ID, "SELECT COUNT(*) FROM cohort", 5, f.SponsorSK); !errors.Is(err, ledger.ErrBudget) {
		t.Errorf("overspending query: %v, want ErrBudget", err)
	}
	sum, err := board.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Verified || !sum.Conserved || sum.Queries != 2 {
		t.Errorf("Audit = %+v", sum)
	}
}
