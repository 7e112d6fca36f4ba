// Package exchangetest builds a small but real MedX exchange for tests of
// the packages above exchange (httpapi, client): an embedded bbolt ledger,
// a generated Parquet dataset per custodian, a collective BGV key held by
// the custodians and an ethics board, and a custodial keystore. Nothing in
// it is a fake.
package exchangetest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
	"github.com/medx/medx/privacy"
)

// The cast.
const (
	Operator = ledger.ParticipantID("operator")
	Sponsor  = ledger.ParticipantID("acme")
	Sponsor2 = ledger.ParticipantID("globex")
	Board    = ledger.ParticipantID("irb")
)

// Custodians are the fixture's custodians.
var Custodians = []ledger.ParticipantID{"st-marys", "riverside"}

// Criteria match a good share of the generated patients.
const Criteria = "age BETWEEN 30 AND 90"

// Fixture is a running exchange and what tests need around it.
type Fixture struct {
	Ledger    *embedded.Ledger
	Client    *ledger.Client
	Exchange  *exchange.Exchange
	Keystore  *exchange.Keystore
	Params    privacy.Params
	SponsorSK *privacy.SponsorKey
	signers   map[ledger.ParticipantID]ledger.Signer
	master    []byte
}

func key(name string) ed25519.PrivateKey {
	sum := sha256.Sum256([]byte("exchangetest/" + name))
	return ed25519.NewKeyFromSeed(sum[:])
}

// New builds a fixture with patients generated patients per custodian
// (at least 100) in t.TempDir(); the sponsors hold 1,000,000 MED each.
func New(t testing.TB, patients int) *Fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	led, err := embedded.Open(filepath.Join(dir, "ledger.db"), key("node"), embedded.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	f := &Fixture{Ledger: led, Client: ledger.NewClient(led), signers: map[ledger.ParticipantID]ledger.Signer{}}
	for _, id := range append([]ledger.ParticipantID{Operator, Sponsor, Sponsor2, Board}, Custodians...) {
		f.signers[id] = ledger.Signer{ID: id, Key: key(string(id))}
	}
	if f.Params, err = privacy.NewParams(privacy.DefaultParams()); err != nil {
		t.Fatal(err)
	}
	op := f.signers[Operator]
	if err := f.Client.Bootstrap(ctx, op, "operator"); err != nil {
		t.Fatal(err)
	}
	for id, role := range map[ledger.ParticipantID]ledger.Role{Sponsor: ledger.RoleSponsor, Sponsor2: ledger.RoleSponsor, Board: ledger.RoleEthicsBoard,
		Custodians[0]: ledger.RoleCustodian, Custodians[1]: ledger.RoleCustodian} {
		if err := f.Client.RegisterParticipant(ctx, op, ledger.Participant{ID: id, Role: role, Name: string(id), PublicKey: f.signers[id].Public()}); err != nil {
			t.Fatal(err)
		}
	}
	var holders []*privacy.KeyHolder
	var custs []*exchange.Custodian
	for i, id := range Custodians {
		path := filepath.Join(dir, string(id)+".parquet")
		if _, err := cohorts.Generate(ctx, path, cohorts.GenerateOptions{Patients: patients, Seed: uint64(i + 1),
			RefDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), IDPrefix: fmt.Sprintf("c%d-", i+1)}); err != nil {
			t.Fatal(err)
		}
		ds, err := cohorts.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := privacy.NewKeyHolder(f.Params, string(id))
		if err != nil {
			t.Fatal(err)
		}
		c, err := exchange.OpenCustodian(f.signers[id], ds, h, filepath.Join(dir, string(id)+"-links.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		holders = append(holders, h)
		custs = append(custs, c)
	}
	bh, err := privacy.NewKeyHolder(f.Params, string(Board))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := exchange.KeyCeremony(f.Params, []byte("exchangetest ceremony"), append(holders, bh))
	if err != nil {
		t.Fatal(err)
	}
	cfg := exchange.Config{Noise: false, DefaultEpsilon: 0.1}
	f.Exchange = exchange.New(f.Client, op, f.Params, pk, custs, []*privacy.KeyHolder{bh}, cfg, log)
	f.master = []byte("exchangetest patient master")
	var ss []ledger.Signer
	for _, s := range f.signers {
		ss = append(ss, s)
	}
	f.Keystore = exchange.NewKeystore(ss, f.master)
	for _, id := range []ledger.ParticipantID{Sponsor, Sponsor2} {
		if err := f.Client.Mint(ctx, op, id, 1_000_000); err != nil {
			t.Fatal(err)
		}
	}
	if f.SponsorSK, err = privacy.NewSponsorKey(f.Params); err != nil {
		t.Fatal(err)
	}
	return f
}

// Signer is a cast member's signer.
func (f *Fixture) Signer(id ledger.ParticipantID) ledger.Signer { return f.signers[id] }

// MatchingPatients returns up to n record ids of custodian c that match
// criteria, in dataset order.
func (f *Fixture) MatchingPatients(t testing.TB, c ledger.ParticipantID, criteria string, n int) []string {
	t.Helper()
	for _, cu := range f.Exchange.Custodians() {
		if cu.ID() != c {
			continue
		}
		crit, err := cohorts.ParseCriteria(criteria)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := cu.Dataset().Match(context.Background(), crit)
		if err != nil {
			t.Fatal(err)
		}
		return ids[:min(n, len(ids))]
	}
	t.Fatalf("no custodian %s", c)
	return nil
}

// NonMatchingPatient returns a record id of custodian c that does not
// match criteria.
func (f *Fixture) NonMatchingPatient(t testing.TB, c ledger.ParticipantID, criteria string) string {
	t.Helper()
	match := map[string]bool{}
	for _, id := range f.MatchingPatients(t, c, criteria, 1<<30) {
		match[id] = true
	}
	for i := 0; ; i++ {
		id := fmt.Sprintf("c%d-%06d", custodianIndex(c)+1, i)
		if !match[id] {
			return id
		}
	}
}

func custodianIndex(c ledger.ParticipantID) int {
	for i, x := range Custodians {
		if x == c {
			return i
		}
	}
	return -1
}

// Wallet is a patient's own device wallet, independent of the keystore.
func Wallet(t testing.TB, c ledger.ParticipantID, record string) *exchange.Patient {
	t.Helper()
	p, err := exchange.NewPatient(c, record, exchange.DeriveSeed([]byte("device of "+record), c, record))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Draft is a request on Criteria with max places.
func Draft(max int64) ledger.RequestDraft {
	return ledger.RequestDraft{
		Title: "Blood pressure in adults", Purpose: "Plan a trial.", Criteria: Criteria,
		Scope:            []string{cohorts.CatDemographics, cohorts.CatConditions, cohorts.CatLabs, cohorts.CatVitals},
		RewardPerPatient: 10, MaxParticipants: max, LicenceSeconds: 365 * 24 * 3600,
	}
}

// SmallCells is the small-cell rule of query q on an exact slot vector,
// as an independent check of the disclosure gate: a count slot under
// minCell is withheld, and so is every slot gated on a withheld one.
func SmallCells(q *cohorts.Query, vec []int64, minCell int64) []bool {
	slots := q.Layout().Slots
	sup := make([]bool, len(slots))
	var withheld func(i int) bool
	withheld = func(i int) bool {
		s := slots[i]
		if s.Kind == cohorts.SlotCount && vec[i] < minCell {
			return true
		}
		return s.Gate != i && withheld(s.Gate)
	}
	for i := range slots {
		sup[i] = withheld(i)
	}
	return sup
}

// Notices adapts the embedded ledger's block events to exchange notices.
func Notices(l *embedded.Ledger) func(ctx context.Context) <-chan exchange.Notice {
	return func(ctx context.Context) <-chan exchange.Notice { return NoticesOf(ctx, l) }
}

// NoticesFrom adapts the embedded ledger's block events from a height on
// (replayed, then live) to exchange notices, for resumed event streams.
func NoticesFrom(l *embedded.Ledger) func(ctx context.Context, from uint64) <-chan exchange.Notice {
	return func(ctx context.Context, from uint64) <-chan exchange.Notice {
		return noticesOf(ctx, l.Events(ctx, from))
	}
}

// NoticesOf subscribes to l's committed events as exchange notices.
func NoticesOf(ctx context.Context, l *embedded.Ledger) <-chan exchange.Notice {
	return noticesOf(ctx, l.Subscribe(ctx))
}

func noticesOf(ctx context.Context, in <-chan embedded.BlockEvent) <-chan exchange.Notice {
	out := make(chan exchange.Notice)
	go func() {
		defer close(out)
		for b := range in {
			for _, tx := range b.Txs {
				if tx.Event == nil {
					continue
				}
				n := exchange.Notice{Height: b.Height, Time: b.Time, TxID: tx.TxID, Name: tx.Event.Name}
				if err := jsonUnmarshal(tx.Event.Payload, &n.Payload); err != nil {
					continue
				}
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
