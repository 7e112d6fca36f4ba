package main

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/notebooks"
	"github.com/medx/medx/privacy"
)

// The demo's cast.
const (
	demoOperator = ledger.ParticipantID("medx-operator")
	demoSponsor  = ledger.ParticipantID("acme-pharma")
	demoBoard    = ledger.ParticipantID("northfield-irb")
)

var demoCustodians = []ledger.ParticipantID{"st-marys-hospital", "riverside-clinic"}

// demoRefDate is the datasets' reference date for ages: fixed, so that
// results do not depend on the day the demo runs.
var demoRefDate = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	demoCriteria = "age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006')"
	demoQuery    = "SELECT COUNT(*) AS patients, AVG(hba1c) AS mean_hba1c, AVG(bmi) AS mean_bmi, " +
		"HISTOGRAM(sbp, 60, 120, 140, 160, 260) AS sbp FROM cohort GROUP BY sex"
	demoNotebook = "# Type 2 diabetes, adults 40-75: first look\n\n" +
		"Baseline characteristics of the licensed cohort, by sex.\n\n" +
		"```medx name=baseline chart=bar\nSELECT COUNT(*) AS patients, AVG(age) AS mean_age, AVG(bmi) AS mean_bmi, AVG(sbp) AS mean_sbp\nFROM cohort GROUP BY sex\n```\n\n" +
		"How well controlled is glucose? HbA1c distribution (%).\n\n" +
		"```medx name=hba1c chart=histogram\nSELECT HISTOGRAM(hba1c, 3, 6.5, 7, 8, 9, 10, 20) AS hba1c FROM cohort\n```\n"
)

type demoOptions struct {
	dir         string
	seed        uint64
	patients    int
	acceptShare float64
	noise       bool
	epsilon     float64
	places      int64
	ledger      ledgerOpener // nil: the embedded ledger in dir
	// randomKeys draws the cast's and the node's signing keys from
	// crypto/rand instead of the seed: 'medx serve' directories are
	// reachable over the network, and a seeded key is a public one.
	randomKeys bool
}

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	var o demoOptions
	fs.StringVar(&o.dir, "dir", "", "data directory to create (default: a new temporary directory)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for the synthetic data, the participants' demo keys and the patients' decisions")
	fs.IntVar(&o.patients, "patients", 20000, "patients in the generated dataset, split between the custodians")
	fs.Float64Var(&o.acceptShare, "accept", 0.7, "share of matching patients who accept the offer")
	fs.BoolVar(&o.noise, "noise", true, "add disclosure noise (turn off only to compare with plaintext)")
	fs.Float64Var(&o.epsilon, "epsilon", 0.5, "privacy budget each query spends")
	fs.Int64Var(&o.places, "places", 3000, "places in the study (maximum participants)")
	level := fs.String("log", "warn", "log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.places < 1 {
		return fmt.Errorf("%w: --places %d: want at least 1", errUsage, o.places)
	}
	if o.patients < 100 || o.patients > 5_000_000 {
		return fmt.Errorf("%w: --patients %d: want 100 to 5000000", errUsage, o.patients)
	}
	if o.acceptShare <= 0 || o.acceptShare > 1 {
		return fmt.Errorf("%w: --accept %g: want a share in (0, 1]", errUsage, o.acceptShare)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "medx-demo-"); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	start := time.Now()
	s, err := createDemoSite(ctx, o, log)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := tellStory(ctx, s, o, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nDone in %.1fs. The data directory %s holds the ledger, datasets and keys;\n'medx audit verify --dir %s' verifies it again.\n",
		time.Since(start).Seconds(), o.dir, o.dir)
	return nil
}

// demoKey derives a participant's demo signing key from the seed, so that
// two demo runs with one seed tell the same story. Real participants
// generate their keys with crypto/rand.
func demoKey(seed uint64, name string) ed25519.PrivateKey {
	h := sha256.New()
	fmt.Fprintf(h, "medx-demo/v1/%d/%s", seed, name)
	return ed25519.NewKeyFromSeed(h.Sum(nil))
}

// createDemoSite lays out a new data directory with the demo's cast,
// datasets and key shares, registers them on a new ledger, and opens it.
func createDemoSite(ctx context.Context, o demoOptions, log *slog.Logger) (*site, error) {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if entries, err := os.ReadDir(o.dir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("%w: --dir %s is not empty: the demo creates a new data directory", errUsage, o.dir)
	}
	d := &site{dir: o.dir}
	crs := sha256.Sum256(fmt.Appendf(nil, "medx-demo/v1/%d/ceremony", o.seed))
	d.cfg = siteConfig{
		Version: siteVersion, Operator: demoOperator,
		Sponsors: []ledger.ParticipantID{demoSponsor}, Boards: []ledger.ParticipantID{demoBoard},
		Custodians: demoCustodians, CRS: hex.EncodeToString(crs[:]), Params: privacy.DefaultParams(),
	}
	params, err := privacy.NewParams(d.cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("privacy parameters: %w", err)
	}
	ids := append([]ledger.ParticipantID{demoOperator, demoSponsor, demoBoard}, demoCustodians...)
	for _, id := range append(ids, "node") {
		k := demoKey(o.seed, string(id))
		if o.randomKeys {
			if _, k, err = ed25519.GenerateKey(crand.Reader); err != nil {
				return nil, fmt.Errorf("key of %s: %w", id, err)
			}
		}
		if err := writeKey(d.path("keys", string(id)+".key"), k); err != nil {
			return nil, err
		}
	}
	// Datasets, one per custodian.
	var holders []*privacy.KeyHolder
	per := o.patients / len(demoCustodians)
	manifests := make([]cohorts.Manifest, len(demoCustodians))
	for i, id := range demoCustodians {
		n := per
		if i == len(demoCustodians)-1 {
			n = o.patients - per*(len(demoCustodians)-1)
		}
		path := d.path("custodians", string(id), "patients.parquet")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("custodian directory: %w", err)
		}
		m, err := cohorts.Generate(ctx, path, cohorts.GenerateOptions{
			Patients: n, Seed: o.seed*1000 + uint64(i), RefDate: demoRefDate, IDPrefix: fmt.Sprintf("c%d-", i+1),
		})
		if err != nil {
			return nil, fmt.Errorf("generate %s dataset: %w", id, err)
		}
		manifests[i] = m
		h, err := privacy.NewKeyHolder(params, string(id))
		if err != nil {
			return nil, fmt.Errorf("custodian %s key share: %w", id, err)
		}
		holders = append(holders, h)
		if err := saveKeyHolder(d.path("custodians", string(id), "keyshare.bin"), h); err != nil {
			return nil, err
		}
	}
	bh, err := privacy.NewKeyHolder(params, string(demoBoard))
	if err != nil {
		return nil, fmt.Errorf("board key share: %w", err)
	}
	holders = append(holders, bh)
	if err := saveKeyHolder(d.path("boards", string(demoBoard), "keyshare.bin"), bh); err != nil {
		return nil, err
	}
	pk, err := exchange.KeyCeremony(params, crs[:], holders)
	if err != nil {
		return nil, err
	}
	pkb, err := pk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("collective public key: %w", err)
	}
	if err := writeFile(d.path("privacy", "collective.pk"), pkb); err != nil {
		return nil, err
	}
	sk, err := privacy.NewSponsorKey(params)
	if err != nil {
		return nil, fmt.Errorf("sponsor key: %w", err)
	}
	skb, err := sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("sponsor key: %w", err)
	}
	if err := writeFile(d.path("sponsors", string(demoSponsor), "bgv.key"), skb); err != nil {
		return nil, err
	}
	cfg, err := json.MarshalIndent(d.cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode medx.json: %w", err)
	}
	if err := writeFile(d.path("medx.json"), append(cfg, '\n')); err != nil {
		return nil, err
	}

	excfg := exchange.DefaultConfig()
	excfg.Noise = o.noise
	excfg.DefaultEpsilon = o.epsilon
	s, err := openSiteOn(ctx, o.dir, excfg, o.ledger, log)
	if err != nil {
		return nil, err
	}
	// Register the cast and the datasets on the new ledger.
	if err := func() error {
		op, err := s.signer(demoOperator)
		if err != nil {
			return err
		}
		if err := s.client.Bootstrap(ctx, op, "MedX exchange operator"); err != nil {
			return fmt.Errorf("bootstrap ledger: %w", err)
		}
		for _, p := range []struct {
			id   ledger.ParticipantID
			role ledger.Role
			name string
		}{
			{demoSponsor, ledger.RoleSponsor, "Acme Pharma Research"},
			{demoBoard, ledger.RoleEthicsBoard, "Northfield Research Ethics Board"},
			{demoCustodians[0], ledger.RoleCustodian, "St Mary's Hospital"},
			{demoCustodians[1], ledger.RoleCustodian, "Riverside Clinic"},
		} {
			sg, err := s.signer(p.id)
			if err != nil {
				return err
			}
			if err := s.client.RegisterParticipant(ctx, op, ledger.Participant{ID: p.id, Role: p.role, Name: p.name, PublicKey: sg.Public()}); err != nil {
				return fmt.Errorf("register %s: %w", p.id, err)
			}
		}
		for i, c := range s.custs {
			m := manifests[i]
			if _, err := s.client.RegisterDataset(ctx, c.Signer(), ledger.DatasetManifest{
				ContentHash: m.ContentHash, SchemaHash: m.SchemaHash, Rows: m.Rows,
				RefDate: m.RefDate.Format(time.DateOnly), Location: "custodians/" + string(c.ID()) + "/patients.parquet",
			}); err != nil {
				return fmt.Errorf("register %s dataset: %w", c.ID(), err)
			}
		}
		return nil
	}(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func saveKeyHolder(path string, h *privacy.KeyHolder) error {
	b, err := h.MarshalBinary()
	if err != nil {
		return fmt.Errorf("key share %s: %w", h.ID(), err)
	}
	return writeFile(path, b)
}

// demoPatient is a patient of the demo: the wallet on the patient's device.
func demoPatient(seed uint64, custodian ledger.ParticipantID, record string) *exchange.Patient {
	master := sha256.Sum256(fmt.Appendf(nil, "medx-demo/v1/%d/patient-devices", seed))
	p, err := exchange.NewPatient(custodian, record, exchange.DeriveSeed(master[:], custodian, record))
	if err != nil {
		panic(err) // DeriveSeed always returns 32 bytes
	}
	return p
}

// story is what happened in a demo run, for the end-to-end test.
type story struct {
	request     ledger.Request
	sponsor     ledger.Signer
	key         *privacy.SponsorKey
	board       ledger.Signer
	accepted    []*exchange.Patient
	late        int // accepted after the study was full, and so refused
	licences    map[*exchange.Patient]ledger.Licence
	revoked     *exchange.Patient
	feasibility []*exchange.Feasibility // before posting: the criteria, asked again, a narrower cohort
	results     []*exchange.QueryResult // before and after the revocation
	tables      []*cohorts.Table
	run         *notebooks.Run
	audit       exchange.AuditSummary
	tokens      []ledger.TokenSummary // after every step
}

func tellStory(ctx context.Context, s *site, o demoOptions, w io.Writer) (*story, error) {
	st := &story{licences: map[*exchange.Patient]ledger.Licence{}}
	ex, led := s.ex, s.client
	var err error
	if st.sponsor, err = s.signer(demoSponsor); err != nil {
		return nil, err
	}
	if st.board, err = s.signer(demoBoard); err != nil {
		return nil, err
	}
	if st.key, err = s.sponsorKey(demoSponsor); err != nil {
		return nil, err
	}
	sponsorPub, err := st.key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("sponsor public key: %w", err)
	}
	op, err := s.signer(demoOperator)
	if err != nil {
		return nil, err
	}
	checkpoint := func() error {
		t, err := led.Tokens(ctx)
		if err != nil {
			return fmt.Errorf("token summary: %w", err)
		}
		st.tokens = append(st.tokens, t)
		if t.Balances+t.Escrow != t.Minted {
			return fmt.Errorf("MedTokens not conserved: balances %d + escrow %d != minted %d", t.Balances, t.Escrow, t.Minted)
		}
		return nil
	}

	fmt.Fprintf(w, "MedX demo: one study, end to end, on the embedded ledger\ndata directory %s, seed %d\n", s.dir, o.seed)
	section(w, "Setup")
	for _, c := range s.custs {
		m := c.Dataset().Manifest()
		fmt.Fprintf(w, "  custodian %-18s %6d patients, dataset %s… (signed manifest on the ledger)\n", c.ID(), m.Rows, m.ContentHash[:12])
	}
	fmt.Fprintf(w, "  collective key: %d key holders (%d custodians + ethics board %s), BGV N=%d, log QP %.0f\n",
		len(s.custs)+len(s.boards), len(s.custs), demoBoard, s.params.Slots(), s.params.LogQP())
	const minted = 100_000
	if err := led.Mint(ctx, op, demoSponsor, minted); err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	fmt.Fprintf(w, "  operator minted %d MED to %s\n", minted, demoSponsor)
	if err := checkpoint(); err != nil {
		return nil, err
	}

	if err := checkFeasibility(ctx, ex, st, w); err != nil {
		return nil, err
	}

	section(w, "Sponsor "+string(demoSponsor)+" posts a cohort request")
	st.request, err = ex.PostRequest(ctx, st.sponsor, ledger.RequestDraft{
		Title:            "Glycaemic control in type 2 diabetes, adults 40-75",
		Purpose:          "Describe HbA1c, BMI and blood pressure in adults with type 2 diabetes to plan a phase III trial of a new GLP-1 agonist.",
		Criteria:         demoCriteria,
		Scope:            []string{cohorts.CatDemographics, cohorts.CatConditions, cohorts.CatLabs, cohorts.CatVitals},
		RewardPerPatient: 25,
		MaxParticipants:  o.places,
		LicenceSeconds:   365 * 24 * 3600,
	})
	if err != nil {
		return nil, err
	}
	r := st.request
	fmt.Fprintf(w, "  %s %q\n  criteria: %s\n  scope: %s; licence %d days; reward %d MED x up to %d patients = %d MED in escrow\n  status: %s\n",
		r.ID, r.Title, r.Criteria, strings.Join(r.Scope, ", "), r.LicenceSeconds/86400, r.RewardPerPatient, r.MaxParticipants, r.Escrow, r.Status)
	if err := checkpoint(); err != nil {
		return nil, err
	}

	// Before approval no patient sees the request.
	var matching []*exchange.Patient
	for _, c := range s.custs {
		ids, err := c.Dataset().Match(ctx, mustCriteria(r.Criteria))
		if err != nil {
			return nil, fmt.Errorf("match: %w", err)
		}
		for _, id := range ids {
			matching = append(matching, demoPatient(o.seed, c.ID(), id))
		}
	}
	if len(matching) == 0 {
		return nil, errors.New("no patient matches the demo criteria: use more --patients")
	}
	offers, err := ex.Offers(ctx, matching[0])
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  before approval, offers shown to a matching patient: %d\n", len(offers))

	section(w, "Ethics board "+string(demoBoard)+" approves")
	if st.request, err = ex.Approve(ctx, st.board, r.ID, ledger.ApprovalTerms{
		MinCell: 10, EpsilonBudget: ledger.EpsilonFromFloat(3.0), Reason: "Aggregate-only analysis of consented patients; proportionate to purpose.",
	}); err != nil {
		return nil, err
	}
	a := st.request.Approval
	fmt.Fprintf(w, "  status: %s; disclosure limits: minimum cell %d, privacy budget epsilon %.2f\n", st.request.Status, a.MinCell, a.EpsilonBudget.Float())

	section(w, "Patients decide")
	rng := rand.New(rand.NewPCG(o.seed, 0x70617469656e7473))
	var deciders []*exchange.Patient
	for _, p := range matching {
		if rng.Float64() < o.acceptShare {
			deciders = append(deciders, p)
		}
	}
	// Patients arrive in two waves so that, with one seed, the same
	// patients take the places: as many as there are places, then the rest.
	first := deciders[:min(len(deciders), int(st.request.MaxParticipants))]
	if err := acceptAll(ctx, ex, first, st); err != nil {
		return nil, err
	}
	if err := acceptAll(ctx, ex, deciders[len(first):], st); err != nil {
		return nil, err
	}
	if err := checkpoint(); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  %d patients match across custodians and were notified; %d accepted, each signing the licence terms with their own per-study key; %d declined\n",
		len(matching), len(st.accepted), len(matching)-len(st.accepted)-st.late)
	if st.late > 0 {
		fmt.Fprintf(w, "  %d more wanted to accept after all %d places were taken: the ledger refused them, nothing was paid\n", st.late, st.request.MaxParticipants)
	}
	sample := st.accepted[rng.IntN(len(st.accepted))]
	lic := st.licences[sample]
	fmt.Fprintf(w, "  e.g. patient %s of %s is %s on the ledger: licence %s until %s, paid %d MED\n",
		sample.RecordID, sample.Custodian, lic.Patient, lic.ID, lic.Expires.Format(time.DateOnly), lic.Reward)

	res, tbl, err := sponsorQuery(ctx, ex, st, sponsorPub, demoQuery, o.epsilon)
	if err != nil {
		return nil, err
	}
	section(w, "Sponsor "+string(demoSponsor)+" sees (decrypted locally with its own key)")
	printResult(w, res, tbl)
	if err := checkpoint(); err != nil {
		return nil, err
	}

	st.revoked = sample
	section(w, "Patient "+sample.RecordID+" revokes")
	rl, err := ex.Revoke(ctx, sample, lic.ID)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  licence %s revoked at %s: every later query excludes it; released results stay released\n", rl.ID, rl.Revoked.Format(time.RFC3339))

	res2, tbl2, err := sponsorQuery(ctx, ex, st, sponsorPub, demoQuery, o.epsilon)
	if err != nil {
		return nil, err
	}
	section(w, "Sponsor sees the same query again")
	printResult(w, res2, tbl2)
	fmt.Fprintf(w, "  licences in force: %d before, %d now\n", res.Record.Licences, res2.Record.Licences)
	if err := checkpoint(); err != nil {
		return nil, err
	}

	section(w, "Sponsor runs a notebook")
	nb, err := notebooks.Parse("t2dm-first-look.md", []byte(demoNotebook))
	if err != nil {
		return nil, fmt.Errorf("demo notebook: %w", err)
	}
	runner := &exchangeRunner{ex: ex, sponsor: st.sponsor, key: st.key, pub: sponsorPub, req: r.ID, epsilon: o.epsilon}
	st.run, err = notebooks.Execute(ctx, nb, runner, time.Now)
	if err != nil {
		return nil, fmt.Errorf("notebook: %w", err)
	}
	report := s.path("reports", "t2dm-first-look.html")
	if err := writeReport(report, st.run); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  %d cells run; report %s\n  run %s recorded on the ledger: notebook %s…, each cell's query and result hash\n",
		len(st.run.Results), report, st.run.RecordID, nb.Hash[:12])
	if err := checkpoint(); err != nil {
		return nil, err
	}

	section(w, "Patient "+sample.RecordID+" sees")
	pv, err := ex.Patient(ctx, sample)
	if err != nil {
		return nil, err
	}
	for _, l := range pv.Licences {
		state := "active"
		if l.Revoked != nil {
			state = "revoked " + l.Revoked.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  licence %s for %s (%s): %s; scope %s\n", l.ID, l.Request, r.Title, state, strings.Join(l.Scope, ", "))
	}
	fmt.Fprintf(w, "  balance: %d MED\n  access history: %d queries used this patient's data\n", pv.Balance, len(pv.Accesses))
	for _, q := range pv.Accesses {
		fmt.Fprintf(w, "    %s by %s at %s, query %s…\n", q.ID, q.Sponsor, q.Authorized.Format(time.RFC3339), q.QueryHash[:12])
	}

	section(w, "Ethics board "+string(demoBoard)+" audits")
	if st.audit, err = ex.Audit(ctx, time.Now()); err != nil {
		return nil, err
	}
	_, verifiable := s.backend.(ledger.Auditor)
	printAudit(w, st.audit, verifiable)
	if verifiable && (!st.audit.Report.StateMatches || len(st.audit.Report.Problems) > 0) || !st.audit.Conserved() {
		return st, fmt.Errorf("ledger verification failed: %v", st.audit.Report.Problems)
	}
	fmt.Fprintf(w, "\nstory fingerprint (equal for equal --seed): %s\n", fingerprint(s, st))
	return st, nil
}

// demoNarrow is a cohort too small to count: its feasibility is withheld.
const demoNarrow = demoCriteria + " AND age = 40 AND bmi > 45"

// checkFeasibility has the sponsor ask, before posting, how many patients
// meet the criteria across custodians; asks again (the same answer, free);
// and asks for a cohort too small to release.
func checkFeasibility(ctx context.Context, ex *exchange.Exchange, st *story, w io.Writer) error {
	section(w, "Sponsor "+string(demoSponsor)+" checks feasibility before posting")
	for i, c := range []string{demoCriteria, demoCriteria, demoNarrow} {
		f, err := ex.Feasibility(ctx, st.sponsor, c)
		if err != nil {
			return err
		}
		st.feasibility = append(st.feasibility, f)
		switch i {
		case 0:
			fmt.Fprintf(w, "  criteria: %s\n  across custodians: %s\n", f.Criteria, f)
		case 1:
			fmt.Fprintf(w, "  asked again: %s\n", f)
		default:
			fmt.Fprintf(w, "  a narrower cohort (%s): %s\n", f.Criteria, f)
		}
		if i == 2 {
			fmt.Fprintf(w, "  feasibility %s on the ledger; allowance left: epsilon %.2f of %.2f and %d asks in %d days\n",
				f.Record.ID, f.EpsilonLeft, ledger.FeasibilityAllowance.Float(), f.AsksLeft, ledger.FeasibilityWindow/(24*time.Hour))
		}
	}
	return nil
}

func section(w io.Writer, title string) { fmt.Fprintf(w, "\n== %s\n", title) }

func mustCriteria(src string) *cohorts.Criteria {
	c, err := cohorts.ParseCriteria(src)
	if err != nil {
		panic(fmt.Sprintf("criteria from the ledger no longer parse: %v", err))
	}
	return c
}

// acceptAll has the patients accept concurrently, as they would from their
// own devices; the ledger batches their transactions into blocks.
func acceptAll(ctx context.Context, ex *exchange.Exchange, ps []*exchange.Patient, st *story) error {
	type out struct {
		p   *exchange.Patient
		lic ledger.Licence
		err error
	}
	jobs := make(chan *exchange.Patient)
	results := make(chan out)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				lic, err := ex.Accept(ctx, p, st.request.ID)
				results <- out{p, lic, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, p := range ps {
			select {
			case jobs <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var errs []error
	var refused []*exchange.Patient
	for o := range results {
		if o.err != nil {
			refused = append(refused, o.p)
			errs = append(errs, fmt.Errorf("patient %s: %w", o.p.RecordID, o.err))
			continue
		}
		st.licences[o.p] = o.lic
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(errs) > 0 {
		// Patients who came after the last place was taken are refused
		// by the ledger (ErrState); that is the study filling up, not a
		// failure. Anything else is.
		r, err := ex.Ledger().Request(ctx, st.request.ID)
		if err != nil {
			return fmt.Errorf("request after acceptances: %w", err)
		}
		for _, e := range errs {
			if !errors.Is(e, ledger.ErrState) || r.Participants < r.MaxParticipants {
				return errors.Join(errs...)
			}
		}
		st.late += len(refused)
	}
	for _, p := range ps {
		if _, ok := st.licences[p]; ok {
			st.accepted = append(st.accepted, p)
		}
	}
	return nil
}

func sponsorQuery(ctx context.Context, ex *exchange.Exchange, st *story, pub []byte, q string, eps float64) (*exchange.QueryResult, *cohorts.Table, error) {
	res, err := ex.Query(ctx, st.sponsor, pub, st.request.ID, q, exchange.QueryOptions{Epsilon: eps})
	if err != nil {
		return nil, nil, err
	}
	tbl, err := res.Decrypt(st.key)
	if err != nil {
		return nil, nil, err
	}
	st.results = append(st.results, res)
	st.tables = append(st.tables, tbl)
	return res, tbl, nil
}

func printResult(w io.Writer, res *exchange.QueryResult, t *cohorts.Table) {
	fmt.Fprintf(w, "  %s\n\n", res.Query)
	printTable(w, t)
	d := res.Disclosure
	fmt.Fprintf(w, "\n  query %s over %d licences in force at ledger time %s\n", res.Record.ID, res.Record.Licences, res.Record.Authorized.Format(time.RFC3339))
	fmt.Fprintf(w, "  disclosure control: minimum cell %d, %d values suppressed; ", d.MinCell, len(d.SuppressedSlots))
	if d.Mechanism == "none" {
		fmt.Fprintf(w, "no noise added (noise turned off)\n")
	} else {
		fmt.Fprintf(w, "noise %s %s\n", d.Mechanism, noiseSummary(res))
	}
	if df := d.Differencing; df != nil {
		fmt.Fprintf(w, "  differencing check: compared with %d earlier queries", df.Compared)
		if df.LicenceChangeOnlyCount > 0 {
			fmt.Fprintf(w, "; %d differ only by licence changes under the minimum cell, protected by the noise", df.LicenceChangeOnlyCount)
		}
		if df.NoisedCount > 0 {
			fmt.Fprintf(w, "; %d differently grouped ones differ by under the minimum cell, protected by the noise", df.NoisedCount)
		}
		if len(df.SmallCells) > 0 {
			fmt.Fprintf(w, "; %d cells withheld for having under %d patients", len(df.SmallCells), d.MinCell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  privacy budget: epsilon %.2f spent, %.2f left\n", d.EpsilonSpent, d.EpsilonLeft)
}

// noiseSummary states the noise scale of each statistic of the first cell.
func noiseSummary(res *exchange.QueryResult) string {
	q, err := cohorts.ParseQuery(res.Query)
	if err != nil {
		return ""
	}
	var parts []string
	for i, s := range q.Layout().Slots {
		if s.Cell != 0 || i >= len(res.Disclosure.NoiseScales) {
			continue
		}
		if strings.HasPrefix(s.Name, "bin(") && len(parts) > 0 && strings.HasPrefix(parts[len(parts)-1], "bins") {
			continue
		}
		name := s.Name
		if strings.HasPrefix(name, "bin(") {
			name = "bins"
		}
		parts = append(parts, fmt.Sprintf("%s ±%.3g", name, res.Disclosure.NoiseScales[i]))
	}
	return "(Laplace scale per statistic, sums in fixed point with the column's decimals: " + strings.Join(parts, ", ") + ")"
}

func printTable(w io.Writer, t *cohorts.Table) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  \t%s\t\n", strings.Join(t.Columns, "\t"))
	for _, r := range t.Rows {
		cells := slices.Clone(r.Group)
		for _, v := range r.Values {
			switch {
			case v.Suppressed:
				cells = append(cells, "suppressed")
			case v.Float == math.Trunc(v.Float):
				cells = append(cells, fmt.Sprintf("%.0f", v.Float))
			default:
				cells = append(cells, fmt.Sprintf("%.2f", v.Float))
			}
		}
		fmt.Fprintf(tw, "  \t%s\t\n", strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// printAudit prints an audit; verifiable says whether the backend verified
// its own history (the embedded ledger) or left that to its peers (Fabric).
func printAudit(w io.Writer, a exchange.AuditSummary, verifiable bool) {
	rep := a.Report
	verdict := "verified: hash chain, block signatures and transaction roots intact; replaying every transaction reproduces the state"
	if !rep.StateMatches || len(rep.Problems) > 0 {
		verdict = "FAILED: " + strings.Join(rep.Problems, "; ")
	}
	if verifiable {
		fmt.Fprintf(w, "  ledger %s\n  %d blocks, %d transactions, head %s…\n", verdict, rep.Blocks, rep.Transactions, headPrefix(rep.Head))
	} else {
		fmt.Fprintf(w, "  ledger on Fabric: every block validated by the peers (endorsement policy, MVCC); verify it with the peers' tools\n")
	}
	fmt.Fprintf(w, "  requests %d; licences active %d, revoked %d, expired %d; queries %d\n",
		a.Requests, a.LicencesActive, a.LicencesRevoked, a.LicencesExpired, a.Queries)
	ok := "conserved"
	if !a.Conserved() {
		ok = "NOT CONSERVED"
	}
	fmt.Fprintf(w, "  MedTokens: balances %d + escrow %d = %d, minted %d: %s\n",
		a.Tokens.Balances, a.Tokens.Escrow, a.Tokens.Balances+a.Tokens.Escrow, a.Tokens.Minted, ok)
}

func headPrefix(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// fingerprint digests what --seed determines: the datasets, who accepted on
// which terms, and who revoked. Ledger ids (and so pseudonyms, which are
// per request) derive from transaction ids and differ between runs.
func fingerprint(s *site, st *story) string {
	h := sha256.New()
	for _, c := range s.custs {
		fmt.Fprintln(h, c.ID(), c.Dataset().Manifest().ContentHash)
	}
	var lines []string
	for p, l := range st.licences {
		lines = append(lines, fmt.Sprintf("%s %s %d %s %s", p.Custodian, p.RecordID, l.Reward, strings.Join(l.Scope, ","), l.Expires.Sub(l.Granted)))
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	fmt.Fprintln(h, "revoked", st.revoked.RecordID)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(lines)))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func writeReport(path string, run *notebooks.Run) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create report: %w", err)
	}
	if err := notebooks.WriteHTML(f, run); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// exchangeRunner runs notebook cells as a sponsor against an in-process
// exchange, decrypting each result with the sponsor's own key.
type exchangeRunner struct {
	ex      *exchange.Exchange
	sponsor ledger.Signer
	key     *privacy.SponsorKey
	pub     []byte
	req     ledger.RequestID
	epsilon float64
}

func (r *exchangeRunner) Query(ctx context.Context, src string, epsilon float64) (*notebooks.Output, error) {
	if epsilon == 0 {
		epsilon = r.epsilon
	}
	res, err := r.ex.Query(ctx, r.sponsor, r.pub, r.req, src, exchange.QueryOptions{Epsilon: epsilon})
	if err != nil {
		return nil, err
	}
	t, err := res.Decrypt(r.key)
	if err != nil {
		return nil, err
	}
	return &notebooks.Output{Table: t, QueryID: string(res.Record.ID), QueryHash: res.Record.QueryHash, Disclosure: res.Disclosure}, nil
}

func (r *exchangeRunner) Record(ctx context.Context, p notebooks.Provenance) (string, error) {
	d := ledger.NotebookRunDraft{Request: r.req, NotebookHash: p.NotebookHash, Cells: p.LedgerCells()}
	run, err := r.ex.Ledger().RecordNotebookRun(ctx, r.sponsor, d)
	if err != nil {
		return "", err
	}
	return string(run.ID), nil
}
