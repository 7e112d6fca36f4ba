package ledgertest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/medx/medx/ledger"
)

func testBootstrap(t *testing.T, open Opener) {
	e := newBare(t, open)
	ps, err := e.c.Participants(e.ctx)
	if err != nil || len(ps) != 0 {
		t.Fatalf("Participants on an empty ledger = %v, %v; want none", ps, err)
	}
	// Before bootstrap nobody is registered, so nobody may act.
	err = e.c.RegisterParticipant(e.ctx, e.op, ledger.Participant{ID: "early-bird", Role: ledger.RoleSponsor, PublicKey: e.sponsor.Public()})
	e.refused("RegisterParticipant before Bootstrap", err, ledger.ErrForbidden)

	// A bootstrap action signed by a key other than the one it registers.
	forged := ledger.Signer{ID: e.op.ID, Key: e.sponsor.Key}
	a, err := forged.Sign(ledger.FnBootstrap, ledger.BootstrapArgs{ID: e.op.ID, Name: "x", PublicKey: e.op.Public()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.SubmitAction(e.ctx, a)
	e.refused("forged Bootstrap", err, ledger.ErrBadSignature)

	// An invalid operator id.
	bad := signer("Not_Valid")
	e.refused("Bootstrap with a bad id", e.c.Bootstrap(e.ctx, bad, "x"), ledger.ErrInvalid)

	e.must(e.c.Bootstrap(e.ctx, e.op, "MedX Exchange"))
	p, err := e.c.Participant(e.ctx, e.op.ID)
	if err != nil {
		t.Fatalf("Participant(%s): %v", e.op.ID, err)
	}
	if p.Role != ledger.RoleOperator || p.Name != "MedX Exchange" || string(p.PublicKey) != string(e.op.Public()) {
		t.Errorf("Participant(%s) = %+v, want the operator", e.op.ID, p)
	}
	e.refused("second Bootstrap", e.c.Bootstrap(e.ctx, e.op, "again"), ledger.ErrExists)
	e.refused("Bootstrap by another key", e.c.Bootstrap(e.ctx, signer("usurper"), "usurper"), ledger.ErrExists)
}

func testParticipants(t *testing.T, open Opener) {
	e := newEnv(t, open)
	stranger := signer("stranger")
	valid := func(id string, role ledger.Role) ledger.Participant {
		return ledger.Participant{ID: ledger.ParticipantID(id), Role: role, Name: "Someone", PublicKey: signer(id).Public()}
	}
	tests := []struct {
		name string
		by   ledger.Signer
		p    ledger.Participant
		want error
	}{
		{"duplicate id", e.op, valid(string(e.sponsor.ID), ledger.RoleSponsor), ledger.ErrExists},
		{"upper case id", e.op, valid("Acme", ledger.RoleSponsor), ledger.ErrInvalid},
		{"short id", e.op, valid("ab", ledger.RoleSponsor), ledger.ErrInvalid},
		{"long id", e.op, valid(strings.Repeat("a", 65), ledger.RoleSponsor), ledger.ErrInvalid},
		{"underscore id", e.op, valid("a_b_c", ledger.RoleSponsor), ledger.ErrInvalid},
		{"slash id", e.op, valid("a/b/c", ledger.RoleSponsor), ledger.ErrInvalid},
		{"pseudonym prefix", e.op, valid("pn-abcdef", ledger.RoleSponsor), ledger.ErrInvalid},
		{"patient role", e.op, valid("some-patient", ledger.RolePatient), ledger.ErrInvalid},
		{"unknown role", e.op, valid("some-king", "king"), ledger.ErrInvalid},
		{"short key", e.op, ledger.Participant{ID: "short-key", Role: ledger.RoleSponsor, PublicKey: []byte{1, 2, 3}}, ledger.ErrInvalid},
		{"small-order key", e.op, ledger.Participant{ID: "small-key", Role: ledger.RoleSponsor, PublicKey: smallOrderKey()}, ledger.ErrInvalid},
		{"long name", e.op, ledger.Participant{ID: "long-name", Role: ledger.RoleSponsor, Name: strings.Repeat("n", 1000), PublicKey: signer("x").Public()}, ledger.ErrInvalid},
		{"by a sponsor", e.sponsor, valid("new-sponsor", ledger.RoleSponsor), ledger.ErrForbidden},
		{"by a board", e.board, valid("new-sponsor", ledger.RoleSponsor), ledger.ErrForbidden},
		{"by a stranger", stranger, valid("new-sponsor", ledger.RoleSponsor), ledger.ErrForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			e.refused("RegisterParticipant", e.c.RegisterParticipant(e.ctx, tc.by, tc.p), tc.want)
			e.unchanged("a refused registration", before)
		})
	}

	// A second operator may be registered and may then act.
	op2 := signer("second-operator")
	e.must(e.c.RegisterParticipant(e.ctx, e.op, valid(string(op2.ID), ledger.RoleOperator)))
	e.must(e.c.Mint(e.ctx, op2, e.cust.ID, 5))

	got, err := e.c.Participant(e.ctx, e.sponsor.ID)
	if err != nil {
		t.Fatalf("Participant(%s): %v", e.sponsor.ID, err)
	}
	if got.ID != e.sponsor.ID || got.Role != ledger.RoleSponsor || got.Name != "Acme Pharma" || string(got.PublicKey) != string(e.sponsor.Public()) || got.Custodian != "" {
		t.Errorf("Participant(%s) = %+v", e.sponsor.ID, got)
	}
	if _, err := e.c.Participant(e.ctx, "nobody-here"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Participant(nobody-here) error = %v, want ErrNotFound", err)
	}
	ps, err := e.c.Participants(e.ctx)
	if err != nil {
		t.Fatalf("Participants: %v", err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, string(p.ID))
	}
	want := []string{"acme-pharma", "city-lab", "ethics-board", "globex-bio", "operator", "second-operator", "st-marys"}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("Participants = %v, want %v (sorted)", ids, want)
	}
}

func testTokens(t *testing.T, open Opener) {
	e := newEnv(t, open)
	if s, err := e.c.Tokens(e.ctx); err != nil || s != (ledger.TokenSummary{Minted: 2 * sponsorFunds, Balances: 2 * sponsorFunds}) {
		t.Fatalf("Tokens = %+v, %v; want %d minted, all in balances", s, err, 2*sponsorFunds)
	}
	mints := []struct {
		name string
		by   ledger.Signer
		to   ledger.ParticipantID
		amt  ledger.Amount
		want error
	}{
		{"by a sponsor", e.sponsor, e.sponsor.ID, 100, ledger.ErrForbidden},
		{"by a custodian", e.cust, e.cust.ID, 100, ledger.ErrForbidden},
		{"zero", e.op, e.sponsor.ID, 0, ledger.ErrInvalid},
		{"negative", e.op, e.sponsor.ID, -5, ledger.ErrInvalid},
		{"to nobody", e.op, "nobody-here", 5, ledger.ErrNotFound},
		{"overflowing supply", e.op, e.sponsor.ID, 1<<63 - 1, ledger.ErrInvalid},
	}
	for _, tc := range mints {
		t.Run("Mint "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			e.refused("Mint", e.c.Mint(e.ctx, tc.by, tc.to, tc.amt), tc.want)
			e.unchanged("a refused mint", before)
		})
	}

	e.must(e.c.Transfer(e.ctx, e.sponsor, e.cust.ID, 2_500))
	if got := e.balance(e.sponsor.ID); got != sponsorFunds-2_500 {
		t.Errorf("Balance(sponsor) = %d, want %d", got, sponsorFunds-2_500)
	}
	if got := e.balance(e.cust.ID); got != 2_500 {
		t.Errorf("Balance(custodian) = %d, want 2500", got)
	}
	// The whole balance may move, leaving exactly zero.
	e.must(e.c.Transfer(e.ctx, e.cust, e.board.ID, 2_500))
	if got := e.balance(e.cust.ID); got != 0 {
		t.Errorf("Balance(custodian) = %d, want 0", got)
	}

	transfers := []struct {
		name string
		from ledger.Signer
		to   ledger.ParticipantID
		amt  ledger.Amount
		want error
	}{
		{"more than the balance", e.sponsor, e.cust.ID, sponsorFunds, ledger.ErrFunds},
		{"from an empty balance", e.cust, e.sponsor.ID, 1, ledger.ErrFunds},
		{"zero", e.sponsor, e.cust.ID, 0, ledger.ErrInvalid},
		{"negative", e.sponsor, e.cust.ID, -100, ledger.ErrInvalid},
		{"to itself", e.sponsor, e.sponsor.ID, 1, ledger.ErrInvalid},
		{"to nobody", e.sponsor, "nobody-here", 1, ledger.ErrNotFound},
		{"from a stranger", signer("stranger"), e.sponsor.ID, 1, ledger.ErrForbidden},
	}
	for _, tc := range transfers {
		t.Run("Transfer "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			e.refused("Transfer", e.c.Transfer(e.ctx, tc.from, tc.to, tc.amt), tc.want)
			e.unchanged("a refused transfer", before)
		})
	}
	if _, err := e.c.Balance(e.ctx, "nobody-here"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Balance(nobody-here) error = %v, want ErrNotFound", err)
	}
	e.must(e.c.Mint(e.ctx, e.op, e.cust.ID, 7))
	if s, _ := e.c.Tokens(e.ctx); s.Minted != 2*sponsorFunds+7 {
		t.Errorf("Tokens().Minted = %d, want %d", s.Minted, 2*sponsorFunds+7)
	}
}

func testDatasets(t *testing.T, open Opener) {
	e := newEnv(t, open)
	m := ledger.DatasetManifest{ContentHash: hash("content"), SchemaHash: hash("schema"), Rows: 1200, RefDate: "2030-01-01", Location: "medx://st-marys/cohort-2030"}
	ds, err := e.c.RegisterDataset(e.ctx, e.cust, m)
	e.must(err)
	if ds.Custodian != e.cust.ID || ds.DatasetManifest != m || ds.ID == "" {
		t.Errorf("RegisterDataset = %+v, want custodian %s and manifest %+v", ds, e.cust.ID, m)
	}
	got, err := e.c.Dataset(e.ctx, ds.ID)
	if err != nil || !jsonEqual(got, ds) {
		t.Errorf("Dataset(%s) = %+v, %v; want %+v", ds.ID, got, err, ds)
	}
	bad := func(f func(*ledger.DatasetManifest)) ledger.DatasetManifest {
		c := m
		f(&c)
		return c
	}
	tests := []struct {
		name string
		by   ledger.Signer
		m    ledger.DatasetManifest
		want error
	}{
		{"by a sponsor", e.sponsor, m, ledger.ErrForbidden},
		{"by the operator", e.op, m, ledger.ErrForbidden},
		{"no content hash", e.cust, bad(func(m *ledger.DatasetManifest) { m.ContentHash = "" }), ledger.ErrInvalid},
		{"no schema hash", e.cust, bad(func(m *ledger.DatasetManifest) { m.SchemaHash = "" }), ledger.ErrInvalid},
		{"no location", e.cust, bad(func(m *ledger.DatasetManifest) { m.Location = "" }), ledger.ErrInvalid},
		{"bad date", e.cust, bad(func(m *ledger.DatasetManifest) { m.RefDate = "01/02/2030" }), ledger.ErrInvalid},
		{"negative rows", e.cust, bad(func(m *ledger.DatasetManifest) { m.Rows = -1 }), ledger.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.RegisterDataset(e.ctx, tc.by, tc.m)
			e.refused("RegisterDataset", err, tc.want)
			e.unchanged("a refused dataset", before)
		})
	}
	ds2, err := e.c.RegisterDataset(e.ctx, e.cust2, bad(func(m *ledger.DatasetManifest) { m.Rows = 0 }))
	e.must(err)
	list, err := e.c.Datasets(e.ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Datasets = %v, %v; want 2", list, err)
	}
	ids := map[ledger.DatasetID]bool{list[0].ID: true, list[1].ID: true}
	if !ids[ds.ID] || !ids[ds2.ID] || list[0].ID > list[1].ID {
		t.Errorf("Datasets ids = %s, %s; want %s and %s sorted", list[0].ID, list[1].ID, ds.ID, ds2.ID)
	}
	if _, err := e.c.Dataset(e.ctx, "ds-0000000000000000"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Dataset(absent) error = %v, want ErrNotFound", err)
	}
}

// jsonEqual compares two values by their JSON encoding, which is what
// crosses every backend (times lose their monotonic reading).
func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
