package main

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/client"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeEndToEnd runs 'medx serve' on a new directory and walks a study
// over HTTP with the Go client: post, approve, offers, accept in both
// signing modes, query decrypted locally, revoke, audit; then shuts down.
func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	base, out, stop := startServe(t, dir, "1200")
	tokens := map[string]string{} // "role sub" -> token
	var patients []string
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "token" {
			tokens[f[1]+" "+f[2]] = f[3]
			if f[1] == string(ledger.RolePatient) {
				patients = append(patients, f[2])
			}
		}
	}
	if len(patients) != 2 {
		t.Fatalf("serve printed %d patient tokens, want 2:\n%s", len(patients), out.String())
	}
	as := func(role ledger.Role, sub string) *client.Client {
		tok, ok := tokens[string(role)+" "+sub]
		if !ok {
			var b bytes.Buffer
			if err := run(ctx, []string{"token", "--dir", dir, "--role", string(role), "--sub", sub}, nil, &b, &b); err != nil {
				t.Fatalf("medx token: %v", err)
			}
			tok = strings.TrimSpace(b.String())
		}
		return client.New(base, tok, nil)
	}
	sponsor := as(ledger.RoleSponsor, string(demoSponsor))
	board := as(ledger.RoleEthicsBoard, string(demoBoard))
	r, err := sponsor.PostRequest(ctx, ledger.RequestDraft{Title: "T2D", Purpose: "Plan a trial.", Criteria: demoCriteria,
		Scope: []string{"demographics", "conditions", "labs", "vitals"}, RewardPerPatient: 5, MaxParticipants: 100, LicenceSeconds: 3600 * 24})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := board.Approve(ctx, r.ID, 1, 3, "fine"); err != nil {
		t.Fatal(err)
	}
	custodial := as(ledger.RolePatient, patients[0])
	device := as(ledger.RolePatient, patients[1])
	for _, p := range []*client.Client{custodial, device} {
		offers, err := p.Offers(ctx)
		if err != nil || len(offers) != 1 || offers[0].Request.ID != r.ID {
			t.Fatalf("Offers = %+v, %v", offers, err)
		}
	}
	if _, err := custodial.Accept(ctx, r.ID); err != nil {
		t.Fatalf("custodial accept: %v", err)
	}
	cust, rec, _ := strings.Cut(patients[1], "/")
	wallet, err := exchange.NewPatient(ledger.ParticipantID(cust), rec, exchange.DeriveSeed([]byte("a phone"), ledger.ParticipantID(cust), rec))
	if err != nil {
		t.Fatal(err)
	}
	lic, err := device.AcceptSigned(ctx, r.ID, wallet)
	if err != nil {
		t.Fatalf("signed accept: %v", err)
	}
	if lic.Patient != wallet.Pseudonym(r.ID) {
		t.Errorf("licence pseudonym %s, want the device key's %s", lic.Patient, wallet.Pseudonym(r.ID))
	}
	if _, err := device.AcceptSigned(ctx, r.ID, wallet); err == nil {
		t.Error("accepting twice succeeded")
	}

	// The sponsor's BGV key stays on the sponsor's side (here: read from
	// the directory by the test, never sent).
	s, err := openSiteForKey(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sponsor.Query(ctx, r.ID, "SELECT COUNT(*) AS n FROM cohort", 0.5, s)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(res.Table.Rows) != 1 || res.Record.Licences != 2 || res.Disclosure.Mechanism != privacy.MechanismDiscreteLaplace {
		t.Errorf("query result: rows %d, licences %d, mechanism %s", len(res.Table.Rows), res.Record.Licences, res.Disclosure.Mechanism)
	}
	if _, err := device.RevokeSigned(ctx, lic.ID, r.ID, wallet); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	acc, err := device.Accesses(ctx)
	if err != nil || len(acc) != 1 {
		t.Errorf("access history = %v, %v; want the query", acc, err)
	}
	sum, err := board.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Verified || !sum.Conserved || sum.LicencesRevoked != 1 || sum.Queries != 1 {
		t.Errorf("audit = %+v", sum)
	}
	if _, err := as(ledger.RolePatient, patients[0]).Audit(ctx); !errors.Is(err, ledger.ErrForbidden) {
		t.Errorf("patient audit: %v, want forbidden", err)
	}
	stop()
}

// openSiteForKey reads the demo sponsor's BGV key from dir, as the
// sponsor's own machine would.
func openSiteForKey(t *testing.T, dir string) (*privacy.SponsorKey, error) {
	t.Helper()
	s := &site{dir: dir}
	p, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		return nil, err
	}
	s.params = p
	return s.sponsorKey(demoSponsor)
}

func TestTokenRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"token"},
		{"token", "--dir", dir, "--role", "admin", "--sub", "x"},
		{"token", "--dir", dir, "--role", "patient", "--sub", "no-custodian"},
		{"token", "--dir", dir, "--role", "sponsor", "--sub", "acme"}, // not a data directory
	} {
		var b bytes.Buffer
		if err := run(t.Context(), args, nil, &b, &b); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
