package ledgertest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

func testAcceptOffer(t *testing.T, open Opener) {
	e := newEnv(t, open)
	r := e.openRequest(e.sponsor, draft())
	pn, l := e.accept(r, "alice-study-1")

	if l.Request != r.ID || l.Patient != pn.ID || l.Custodian != e.cust.ID || l.Reward != 10 || l.Revoked != nil || l.ID == "" {
		t.Errorf("AcceptOffer = %+v, want a licence of %s on %s certified by %s", l, pn.ID, r.ID, e.cust.ID)
	}
	if !sameStrings(l.Scope, r.Scope) {
		t.Errorf("licence scope = %v, want the request's %v", l.Scope, r.Scope)
	}
	if got, want := l.Expires.Sub(l.Granted), time.Duration(r.LicenceSeconds)*time.Second; got != want {
		t.Errorf("licence length = %v, want %v", got, want)
	}
	if !l.ActiveAt(l.Granted) || l.ActiveAt(l.Expires) {
		t.Errorf("licence %+v: want active from Granted until (not at) Expires", l)
	}
	if got := e.balance(pn.ID); got != 10 {
		t.Errorf("Balance(%s) = %d, want the reward 10", pn.ID, got)
	}
	got := e.request(r.ID)
	if got.Escrow != 40 || got.Participants != 1 {
		t.Errorf("request after accept: escrow %d, participants %d; want 40, 1", got.Escrow, got.Participants)
	}
	p, err := e.c.Participant(e.ctx, pn.ID)
	if err != nil {
		t.Fatalf("Participant(%s): %v", pn.ID, err)
	}
	if p.Role != ledger.RolePatient || p.Custodian != e.cust.ID || string(p.PublicKey) != string(pn.Public()) || p.Name != "" {
		t.Errorf("Participant(%s) = %+v, want a patient pseudonym of %s", pn.ID, p, e.cust.ID)
	}
	for name, f := range map[string]func() ([]ledger.Licence, error){
		"Licences":        func() ([]ledger.Licence, error) { return e.c.Licences(e.ctx, r.ID) },
		"PatientLicences": func() ([]ledger.Licence, error) { return e.c.PatientLicences(e.ctx, pn.ID) },
	} {
		ls, err := f()
		if err != nil || len(ls) != 1 || !jsonEqual(ls[0], l) {
			t.Errorf("%s = %+v, %v; want [%+v]", name, ls, err, l)
		}
	}
	if got, err := e.c.Licence(e.ctx, l.ID); err != nil || !jsonEqual(got, l) {
		t.Errorf("Licence(%s) = %+v, %v; want %+v", l.ID, got, err, l)
	}
	if _, err := e.c.Licence(e.ctx, "lic-0000000000000000"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Licence(absent) error = %v, want ErrNotFound", err)
	}
	if _, err := e.c.Licences(e.ctx, "req-0000000000000000"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Licences(absent request) error = %v, want ErrNotFound", err)
	}
	if _, err := e.c.PatientLicences(e.ctx, "pn-nobody"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("PatientLicences(absent) error = %v, want ErrNotFound", err)
	}

	// The same patient joins a second study under a second pseudonym,
	// certified by another custodian.
	r2 := e.openRequest(e.sponsor2, draft())
	pn2 := pseudonym("alice-study-2")
	l2, err := e.c.AcceptOffer(e.ctx, pn2, acceptance(r2, pn2, e.cust2))
	e.must(err)
	if l2.Custodian != e.cust2.ID || l2.Request != r2.ID {
		t.Errorf("second AcceptOffer = %+v", l2)
	}
	// Terms listing the scope in another order are the same terms.
	pn3 := pseudonym("bob-study-2")
	a := acceptance(r2, pn3, e.cust)
	a.Terms.Scope = []string{r2.Scope[1], r2.Scope[0]}
	_, err = e.c.AcceptOffer(e.ctx, pn3, a)
	e.must(err)
}

func testAcceptOfferRefusals(t *testing.T, open Opener) {
	e := newEnv(t, open)
	d := draft()
	d.MaxParticipants = 2
	r := e.openRequest(e.sponsor, d)
	pending, err := e.c.PostRequest(e.ctx, e.sponsor, draft())
	e.must(err)
	halted := e.openRequest(e.sponsor2, draft())
	_, err = e.c.HaltRequest(e.ctx, e.board, halted.ID, "halt")
	e.must(err)
	halted = e.request(halted.ID)

	taken, _ := e.accept(r, "first-patient")
	forger := pseudonym("forger")

	submit := func(c accept) error {
		s := c.pn
		if c.signWith.Key != nil {
			s = ledger.Signer{ID: c.pn.ID, Key: c.signWith.Key}
		}
		act, err := s.Sign(ledger.FnAcceptOffer, c.a)
		if err != nil {
			t.Fatal(err)
		}
		if c.mutate != nil {
			c.mutate(&act)
		}
		_, err = e.c.SubmitAction(e.ctx, act)
		return err
	}
	fresh := func(name string) (ledger.Signer, ledger.Acceptance) {
		pn := pseudonym(name)
		return pn, acceptance(r, pn, e.cust)
	}
	with := func(name string, f func(*ledger.Acceptance)) accept {
		pn, a := fresh(name)
		f(&a)
		return accept{pn: pn, a: a}
	}
	pnForged, aForged := fresh("victim")
	pnNoSig, aNoSig := fresh("no-sig")
	tests := []struct {
		name string
		c    accept
		want error
	}{
		{"forged signature", accept{pn: pnForged, a: aForged, signWith: forger}, ledger.ErrBadSignature},
		// A small-order key "signs" anything under ZIP-215 (R = identity,
		// S = 0): refused even when a custodian certified it.
		{"small-order pseudonym key", with("small-order", func(a *ledger.Acceptance) {
			a.PublicKey = smallOrderKey()
			a.Certificate = e.cust.Certify(r.ID, a.PublicKey)
		}).withMutate(func(a *ledger.Action) {
			a.Actor = ledger.PseudonymID(smallOrderKey())
			a.Sig = append(smallOrderKey(), make([]byte, 32)...)
		}), ledger.ErrInvalid},
		{"missing signature", accept{pn: pnNoSig, a: aNoSig, mutate: func(a *ledger.Action) { a.Sig = nil }}, ledger.ErrBadSignature},
		{"terms altered after signing", with("altered", func(*ledger.Acceptance) {}).withMutate(func(a *ledger.Action) {
			var acc ledger.Acceptance
			if err := json.Unmarshal(a.Payload, &acc); err != nil {
				t.Fatal(err)
			}
			acc.Terms.LicenceSeconds *= 2
			a.Payload = mustJSON(t, acc)
		}), ledger.ErrBadSignature},
		{"certificate for another request", with("cert-other-req", func(a *ledger.Acceptance) {
			a.Certificate = e.cust.Certify(pending.ID, a.PublicKey)
		}), ledger.ErrBadSignature},
		{"certificate for another key", with("cert-other-key", func(a *ledger.Acceptance) {
			a.Certificate = e.cust.Certify(r.ID, forger.Public())
		}), ledger.ErrBadSignature},
		{"certificate signed by another custodian's key", with("cert-wrong-key", func(a *ledger.Acceptance) {
			a.Certificate = ledger.Certificate{Custodian: e.cust.ID, Signature: e.cust2.Certify(r.ID, a.PublicKey).Signature}
		}), ledger.ErrBadSignature},
		{"certificate missing", with("cert-missing", func(a *ledger.Acceptance) { a.Certificate = ledger.Certificate{} }), ledger.ErrBadSignature},
		{"certified by a sponsor", with("cert-sponsor", func(a *ledger.Acceptance) {
			a.Certificate = e.sponsor.Certify(r.ID, a.PublicKey)
		}), ledger.ErrBadSignature},
		{"certified by a stranger", with("cert-stranger", func(a *ledger.Acceptance) {
			a.Certificate = signer("rogue-clinic").Certify(r.ID, a.PublicKey)
		}), ledger.ErrBadSignature},
		{"pending request", with("on-pending", func(a *ledger.Acceptance) {
			a.Terms.Request = pending.ID
			a.Certificate = e.cust.Certify(pending.ID, a.PublicKey)
		}), ledger.ErrState},
		{"halted request", with("on-halted", func(a *ledger.Acceptance) {
			a.Terms = ledger.LicenceTerms{Request: halted.ID, Scope: halted.Scope, LicenceSeconds: halted.LicenceSeconds, Reward: halted.RewardPerPatient}
			a.Certificate = e.cust.Certify(halted.ID, a.PublicKey)
		}), ledger.ErrState},
		{"absent request", with("on-absent", func(a *ledger.Acceptance) {
			a.Terms.Request = "req-0000000000000000"
			a.Certificate = e.cust.Certify(a.Terms.Request, a.PublicKey)
		}), ledger.ErrNotFound},
		{"wrong reward", with("wrong-reward", func(a *ledger.Acceptance) { a.Terms.Reward = 11 }), ledger.ErrInvalid},
		{"wrong scope", with("wrong-scope", func(a *ledger.Acceptance) { a.Terms.Scope = []string{ledger.CategoryDemographics} }), ledger.ErrInvalid},
		{"wider scope", with("wider-scope", func(a *ledger.Acceptance) {
			a.Terms.Scope = []string{ledger.CategoryDemographics, ledger.CategoryLabs, ledger.CategoryVitals}
		}), ledger.ErrInvalid},
		{"wrong licence length", with("wrong-length", func(a *ledger.Acceptance) { a.Terms.LicenceSeconds++ }), ledger.ErrInvalid},
		{"actor is not the key's pseudonym", with("actor-mismatch", func(*ledger.Acceptance) {}).withMutate(func(a *ledger.Action) {
			a.Actor = taken.ID
		}), ledger.ErrInvalid},
		{"same pseudonym twice", accept{pn: taken, a: acceptance(r, taken, e.cust)}, ledger.ErrExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			e.refused("AcceptOffer", submit(tc.c), tc.want)
			e.unchanged("a refused acceptance", before)
		})
	}

	// The client refuses a signer whose id is not its key's pseudonym.
	wrong := pseudonym("client-side")
	wrong.ID = "pn-not-this-one"
	_, err = e.c.AcceptOffer(e.ctx, wrong, acceptance(r, wrong, e.cust))
	e.refused("AcceptOffer with a mismatched signer id", err, ledger.ErrInvalid)

	// The second place goes; a third patient finds the study full.
	e.accept(r, "second-patient")
	before := e.snapshot()
	pn, a := fresh("third-patient")
	_, err = e.c.AcceptOffer(e.ctx, pn, a)
	e.refused("AcceptOffer over max participants", err, ledger.ErrState)
	e.unchanged("a refused acceptance", before)
	if got := e.request(r.ID); got.Participants != 2 || got.Escrow != 0 {
		t.Errorf("full request: participants %d, escrow %d; want 2, 0", got.Participants, got.Escrow)
	}
}

// accept is an acceptance to submit: signed by pn (or by signWith's key,
// if set), then changed by mutate.
type accept struct {
	pn       ledger.Signer
	a        ledger.Acceptance
	signWith ledger.Signer
	mutate   func(*ledger.Action)
}

// withMutate returns c with mutate set.
func (c accept) withMutate(f func(*ledger.Action)) accept { c.mutate = f; return c }

func testRevoke(t *testing.T, open Opener) {
	e := newEnv(t, open)
	r := e.openRequest(e.sponsor, draft())
	pn, l := e.accept(r, "revoker")
	other, _ := e.accept(r, "bystander")

	before := e.snapshot()
	_, err := e.c.RevokeLicence(e.ctx, other, l.ID)
	e.refused("RevokeLicence by another patient", err, ledger.ErrForbidden)
	_, err = e.c.RevokeLicence(e.ctx, e.sponsor, l.ID)
	e.refused("RevokeLicence by the sponsor", err, ledger.ErrForbidden)
	_, err = e.c.RevokeLicence(e.ctx, e.op, l.ID)
	e.refused("RevokeLicence by the operator", err, ledger.ErrForbidden)
	_, err = e.c.RevokeLicence(e.ctx, pn, "lic-0000000000000000")
	e.refused("RevokeLicence of an absent licence", err, ledger.ErrNotFound)
	e.unchanged("refused revocations", before)

	e.clock.Advance(day)
	rl, err := e.c.RevokeLicence(e.ctx, pn, l.ID)
	e.must(err)
	if rl.Revoked == nil || rl.Revoked.Before(rl.Granted) || rl.ID != l.ID {
		t.Fatalf("RevokeLicence = %+v, want revoked after granting", rl)
	}
	if rl.ActiveAt(*rl.Revoked) || !rl.ActiveAt(rl.Granted) {
		t.Errorf("revoked licence %+v: want active before the revocation only", rl)
	}
	if got, err := e.c.Licence(e.ctx, l.ID); err != nil || !jsonEqual(got, rl) {
		t.Errorf("Licence(%s) = %+v, %v; want %+v", l.ID, got, err, rl)
	}
	if got := e.balance(pn.ID); got != 10 {
		t.Errorf("Balance(%s) after revoking = %d, want 10 (the reward stays paid)", pn.ID, got)
	}
	before = e.snapshot()
	_, err = e.c.RevokeLicence(e.ctx, pn, l.ID)
	e.refused("RevokeLicence twice", err, ledger.ErrState)

	// Past its expiry, by ledger time, a licence can no longer be revoked.
	e.clock.Advance(time.Duration(r.LicenceSeconds) * time.Second)
	_, err = e.c.RevokeLicence(e.ctx, other, licenceOf(t, e, other.ID).ID)
	e.refused("RevokeLicence after expiry", err, ledger.ErrState)
	e.unchanged("refused revocations", before)
}

func licenceOf(t *testing.T, e *env, pn ledger.ParticipantID) ledger.Licence {
	t.Helper()
	ls, err := e.c.PatientLicences(e.ctx, pn)
	if err != nil || len(ls) != 1 {
		t.Fatalf("PatientLicences(%s) = %v, %v; want one", pn, ls, err)
	}
	return ls[0]
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
