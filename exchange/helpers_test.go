package exchange_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
	"github.com/medx/medx/privacy"
)

// refDate is the generated datasets' reference date.
var refDate = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// studyOptions shape a test study.
type studyOptions struct {
	noise    bool
	minCell  int64   // default 10
	budget   float64 // epsilon budget, default 10
	epsilon  float64 // the exchange's default per query, default 0.25
	patients int     // generated patients per custodian, default 200
	criteria string  // default "age >= 18"
	// datasets, if set, are the custodians' Parquet files (one each)
	// instead of generated ones.
	datasets []string
	// feasibility is the exchange's feasibility policy (zero: defaults).
	feasibility exchange.FeasibilityPolicy
}

// study is a real setup in t.TempDir(): an embedded ledger, custodians with
// their datasets, link stores and key shares, the ethics board's key share,
// the key ceremony, a sponsor with its own BGV key, and an approved request
// that every matching patient accepted.
type study struct {
	ex       *exchange.Exchange
	led      *ledger.Client
	params   privacy.Params
	operator ledger.Signer
	sponsor  ledger.Signer
	board    ledger.Signer
	key      *privacy.SponsorKey
	pub      []byte
	req      ledger.Request
	custs    []*exchange.Custodian
	accepted []*exchange.Patient
	licences map[*exchange.Patient]ledger.Licence
}

func signer(id string) ledger.Signer {
	seed := sha256.Sum256([]byte("medx exchange test/" + id))
	return ledger.Signer{ID: ledger.ParticipantID(id), Key: ed25519.NewKeyFromSeed(seed[:])}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newStudy builds a study. It takes about a second.
func newStudy(t *testing.T, o studyOptions) *study {
	t.Helper()
	ctx := t.Context()
	if o.minCell == 0 {
		o.minCell = 10
	}
	if o.budget == 0 {
		o.budget = 10
	}
	if o.epsilon == 0 {
		o.epsilon = 0.25
	}
	if o.patients == 0 {
		o.patients = 200
	}
	if o.criteria == "" {
		o.criteria = "age >= 18"
	}
	dir := t.TempDir()
	if o.datasets == nil {
		for i := range 2 {
			path := filepath.Join(dir, fmt.Sprintf("c%d.parquet", i+1))
			if _, err := cohorts.Generate(ctx, path, cohorts.GenerateOptions{
				Patients: o.patients, Seed: uint64(77 + i), RefDate: refDate, IDPrefix: fmt.Sprintf("c%d-", i+1),
			}); err != nil {
				t.Fatal(err)
			}
			o.datasets = append(o.datasets, path)
		}
	}

	s := &study{
		operator: signer("operator"), sponsor: signer("sponsor"), board: signer("board"),
		licences: map[*exchange.Patient]ledger.Licence{},
	}
	var err error
	if s.params, err = privacy.NewParams(privacy.DefaultParams()); err != nil {
		t.Fatal(err)
	}
	node := signer("node")
	el, err := embedded.Open(filepath.Join(dir, "ledger.db"), node.Key, embedded.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	s.led = ledger.NewClient(el)
	if err := s.led.Bootstrap(ctx, s.operator, "operator"); err != nil {
		t.Fatal(err)
	}

	var holders []*privacy.KeyHolder
	for i, path := range o.datasets {
		sg := signer(fmt.Sprintf("custodian-%d", i+1))
		ds, err := cohorts.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := privacy.NewKeyHolder(s.params, string(sg.ID))
		if err != nil {
			t.Fatal(err)
		}
		c, err := exchange.OpenCustodian(sg, ds, h, filepath.Join(dir, string(sg.ID)+"-links.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.custs = append(s.custs, c)
		holders = append(holders, h)
	}
	boardHolder, err := privacy.NewKeyHolder(s.params, string(s.board.ID))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := exchange.KeyCeremony(s.params, []byte("medx exchange test ceremony"), append(holders, boardHolder))
	if err != nil {
		t.Fatal(err)
	}
	if s.key, err = privacy.NewSponsorKey(s.params); err != nil {
		t.Fatal(err)
	}
	if s.pub, err = s.key.PublicKey(); err != nil {
		t.Fatal(err)
	}
	cfg := exchange.Config{Noise: o.noise, DefaultEpsilon: o.epsilon, Feasibility: o.feasibility}
	s.ex = exchange.New(s.led, s.operator, s.params, pk, s.custs, []*privacy.KeyHolder{boardHolder}, cfg, quiet())

	type reg struct {
		sg   ledger.Signer
		role ledger.Role
	}
	regs := []reg{{s.sponsor, ledger.RoleSponsor}, {s.board, ledger.RoleEthicsBoard}}
	for _, c := range s.custs {
		regs = append(regs, reg{c.Signer(), ledger.RoleCustodian})
	}
	for _, r := range regs {
		if err := s.led.RegisterParticipant(ctx, s.operator, ledger.Participant{ID: r.sg.ID, Role: r.role, Name: string(r.sg.ID), PublicKey: r.sg.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.led.Mint(ctx, s.operator, s.sponsor.ID, 1_000_000); err != nil {
		t.Fatal(err)
	}
	req, err := s.ex.PostRequest(ctx, s.sponsor, ledger.RequestDraft{
		Title: "test study", Purpose: "tests of the query path", Criteria: o.criteria,
		Scope:            []string{cohorts.CatDemographics, cohorts.CatConditions, cohorts.CatLabs, cohorts.CatVitals},
		RewardPerPatient: 1, MaxParticipants: 100_000, LicenceSeconds: 365 * 24 * 3600,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.req, err = s.ex.Approve(ctx, s.board, req.ID, ledger.ApprovalTerms{
		MinCell: o.minCell, EpsilonBudget: ledger.EpsilonFromFloat(o.budget), Reason: "test",
	}); err != nil {
		t.Fatal(err)
	}

	// Every matching patient accepts, from their own devices.
	crit, err := cohorts.ParseCriteria(s.req.Criteria)
	if err != nil {
		t.Fatal(err)
	}
	var matching []*exchange.Patient
	for _, c := range s.custs {
		ids, err := c.Dataset().Match(ctx, crit)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			matching = append(matching, patient(t, c.ID(), id))
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(matching))
	sem := make(chan struct{}, 16)
	for _, p := range matching {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			lic, err := s.ex.Accept(ctx, p, s.req.ID)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			s.licences[p] = lic
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.accepted = matching
	return s
}

func patient(t *testing.T, c ledger.ParticipantID, record string) *exchange.Patient {
	t.Helper()
	seed := sha256.Sum256([]byte("medx exchange test patient/" + string(c) + "/" + record))
	p, err := exchange.NewPatient(c, record, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// query runs src as the sponsor and returns the result and the sponsor's
// decryption of every slot of the layout.
func (s *study) query(t *testing.T, src string) (*exchange.QueryResult, []int64) {
	t.Helper()
	res, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{})
	if err != nil {
		t.Fatalf("Query(%s) = %v", src, err)
	}
	vec, err := s.key.Decrypt(res.Ciphertext, len(res.Suppressed))
	if err != nil {
		t.Fatal(err)
	}
	return res, vec
}

// plain is src's aggregate vector in the clear over the given patients,
// custodian by custodian, without the ledger or any encryption.
func (s *study) plain(t *testing.T, src string, patients []*exchange.Patient) []int64 {
	t.Helper()
	q, err := cohorts.ParseQuery(src)
	if err != nil {
		t.Fatal(err)
	}
	total := make([]int64, len(q.Layout().Slots))
	for _, c := range s.custs {
		var ids []string
		for _, p := range patients {
			if p.Custodian == c.ID() {
				ids = append(ids, p.RecordID)
			}
		}
		vec, err := c.Dataset().Aggregate(t.Context(), q, cohorts.NewPatientSet(ids))
		if err != nil {
			t.Fatal(err)
		}
		for i := range vec {
			total[i] += vec[i]
		}
	}
	return total
}

// active are the accepted patients whose licence is not revoked.
func (s *study) active(t *testing.T) []*exchange.Patient {
	t.Helper()
	var out []*exchange.Patient
	for _, p := range s.accepted {
		l, err := s.led.Licence(t.Context(), s.licences[p].ID)
		if err != nil {
			t.Fatal(err)
		}
		if l.Revoked == nil {
			out = append(out, p)
		}
	}
	return out
}

// isolate finds a predicate that, within base, only one licensed patient
// meets: that patient, and the predicate.
func (s *study) isolate(t *testing.T, base string) (*exchange.Patient, string) {
	t.Helper()
	active := s.active(t)
	for year := 1930; year <= 2007; year++ {
		for _, sex := range []string{"F", "M"} {
			pred := fmt.Sprintf("birth_year = %d AND sex = '%s'", year, sex)
			crit, err := cohorts.ParseCriteria("(" + base + ") AND " + pred)
			if err != nil {
				t.Fatal(err)
			}
			var hits []*exchange.Patient
			for _, c := range s.custs {
				ids, err := c.Dataset().Match(t.Context(), crit)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range active {
					if p.Custodian == c.ID() && slices.Contains(ids, p.RecordID) {
						hits = append(hits, p)
					}
				}
			}
			if len(hits) == 1 {
				return hits[0], pred
			}
		}
	}
	t.Fatal("no predicate isolates a single patient")
	return nil, ""
}

// ledgerState is what a refused call must leave unchanged.
type ledgerState struct {
	Request ledger.Request
	Queries []ledger.QueryRecord
	Tokens  ledger.TokenSummary
}

func (s *study) state(t *testing.T) ledgerState {
	t.Helper()
	ctx := t.Context()
	var st ledgerState
	var err error
	if st.Request, err = s.led.Request(ctx, s.req.ID); err != nil {
		t.Fatal(err)
	}
	if st.Queries, err = s.led.Queries(ctx, s.req.ID); err != nil {
		t.Fatal(err)
	}
	if st.Tokens, err = s.led.Tokens(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// sharedTestdata is a file of the project's outside test material.
func sharedTestdata(t *testing.T, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "..", "shared", "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s: %v", p, err)
	}
	return p
}
