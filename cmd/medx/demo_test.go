package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/notebooks"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// storyOptions is a small demo: big enough for cells above the minimum.
func storyOptions(t *testing.T, seed uint64, noise bool) demoOptions {
	return demoOptions{dir: t.TempDir(), seed: seed, patients: 3000, acceptShare: 0.7, noise: noise, epsilon: 0.25, places: 3000}
}

// expected computes q in plaintext over exactly the given patients' rows,
// custodian by custodian, without the ledger or any encryption, and applies
// the small-cell rule to the exact counts (with noise off the gate sees
// exact counts): a count-like slot under minCell is withheld, and so is
// everything gated on a withheld slot.
func expected(t *testing.T, s *site, q string, patients []*exchange.Patient, minCell int64) *cohorts.Table {
	t.Helper()
	query, err := cohorts.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	total := plainVector(t, s, query, patients)
	tbl, err := query.Finalize(total, exchangetest.SmallCells(query, total, minCell))
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func without(ps []*exchange.Patient, drop *exchange.Patient) []*exchange.Patient {
	var out []*exchange.Patient
	for _, p := range ps {
		if p != drop {
			out = append(out, p)
		}
	}
	return out
}

func totalCount(t *testing.T, tbl *cohorts.Table) float64 {
	t.Helper()
	var n float64
	for _, r := range tbl.Rows {
		n += r.Values[0].Float
	}
	return n
}

func TestStoryEndToEnd(t *testing.T) {
	ctx := t.Context()
	o := storyOptions(t, 7, false)
	s, err := createDemoSite(ctx, o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	st, err := tellStory(ctx, s, o, &out)
	if err != nil {
		t.Fatalf("story: %v\n%s", err, out.String())
	}

	t.Run("encrypted result equals plaintext over the licensed rows", func(t *testing.T) {
		minCell := st.request.Approval.MinCell
		before := expected(t, s, demoQuery, st.accepted, minCell)
		if diff := cmp.Diff(before, st.tables[0]); diff != "" {
			t.Errorf("first query (-plaintext +decrypted):\n%s", diff)
		}
		after := expected(t, s, demoQuery, without(st.accepted, st.revoked), minCell)
		if diff := cmp.Diff(after, st.tables[1]); diff != "" {
			t.Errorf("query after revocation (-plaintext +decrypted):\n%s", diff)
		}
		// STDDEV and SUM too, over the licences in force now.
		const q = "SELECT COUNT(*) AS n, SUM(sbp) AS total_sbp, AVG(hba1c) AS a1c, STDDEV(hba1c) AS sd, STDDEV(bmi) AS sd_bmi FROM cohort WHERE age >= 50 GROUP BY sex"
		res := storyQuery(t, s, st, q)
		got, err := res.Decrypt(st.key)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(expected(t, s, q, without(st.accepted, st.revoked), minCell), got); diff != "" {
			t.Errorf("%s (-plaintext +decrypted):\n%s", q, diff)
		}
		if got, want := totalCount(t, st.tables[0]), float64(len(st.accepted)); got != want {
			t.Errorf("first query counts %v patients, %d accepted", got, len(st.accepted))
		}
	})

	t.Run("feasibility before posting is the plaintext count, rounded", func(t *testing.T) {
		var plain int64
		for _, c := range s.custs {
			ids, err := c.Dataset().Match(ctx, mustCriteria(demoCriteria))
			if err != nil {
				t.Fatal(err)
			}
			plain += int64(len(ids))
		}
		if len(st.feasibility) != 3 {
			t.Fatalf("%d feasibility answers, want 3", len(st.feasibility))
		}
		f, again, narrow := st.feasibility[0], st.feasibility[1], st.feasibility[2]
		if d := f.Count - plain; f.BelowThreshold || d < -2 || d > 2 || f.Count%5 != 0 || f.Record.Request != "" {
			t.Errorf("feasibility = %d (%+v), want %d rounded to 5", f.Count, f.Record, plain)
		}
		if !again.Cached || again.Count != f.Count || again.EpsilonSpent != 0 {
			t.Errorf("repeat = %+v, want the cached answer", again)
		}
		if !narrow.BelowThreshold || narrow.Count != 0 {
			t.Errorf("narrow cohort = %+v, want withheld", narrow)
		}
		recs, err := s.client.Feasibilities(ctx, demoSponsor)
		if err != nil || len(recs) != 3 {
			t.Errorf("sponsor's feasibility records = %d, %v; want 3", len(recs), err)
		}
	})

	t.Run("revocation drops exactly the revoked patient", func(t *testing.T) {
		if d := totalCount(t, st.tables[0]) - totalCount(t, st.tables[1]); d != 1 {
			t.Errorf("count dropped by %v after one revocation, want 1", d)
		}
		if d := st.results[0].Record.Licences - st.results[1].Record.Licences; d != 1 {
			t.Errorf("licences in force dropped by %d, want 1", d)
		}
	})

	t.Run("tokens conserved after every step", func(t *testing.T) {
		if len(st.tokens) < 5 {
			t.Fatalf("only %d checkpoints", len(st.tokens))
		}
		for i, tk := range st.tokens {
			if tk.Balances+tk.Escrow != tk.Minted || tk.Minted == 0 {
				t.Errorf("step %d: %+v not conserved", i, tk)
			}
		}
		want := ledger.Amount(len(st.accepted)) * st.request.RewardPerPatient
		if got := st.request.Budget - mustRequest(t, s, st.request.ID).Escrow; got != want {
			t.Errorf("escrow paid out %d, want %d for %d acceptances", got, want, len(st.accepted))
		}
	})

	t.Run("unapproved request is invisible and cannot be accepted", func(t *testing.T) {
		r, err := s.ex.PostRequest(ctx, st.sponsor, ledger.RequestDraft{
			Title: "Pending study", Purpose: "test", Criteria: demoCriteria,
			Scope:            []string{cohorts.CatDemographics, cohorts.CatConditions},
			RewardPerPatient: 5, MaxParticipants: 10, LicenceSeconds: 3600,
		})
		if err != nil {
			t.Fatal(err)
		}
		p := without(st.accepted, st.revoked)[0]
		offers, err := s.ex.Offers(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, of := range offers {
			if of.Request.ID == r.ID {
				t.Errorf("patient was offered pending request %s", r.ID)
			}
		}
		before := snapshot(t, s)
		if _, err := s.ex.Accept(ctx, p, r.ID); !errors.Is(err, exchange.ErrNotOffered) {
			t.Errorf("Accept(pending) = %v, want ErrNotOffered", err)
		}
		// Even with a genuine certificate, the ledger refuses.
		key := p.StudyKey(r.ID)
		cust := s.custs[0]
		for _, c := range s.custs {
			if c.ID() == p.Custodian {
				cust = c
			}
		}
		_, err = s.client.AcceptOffer(ctx, key, ledger.Acceptance{
			Terms: exchange.TermsOf(r), PublicKey: key.Public(), Certificate: cust.Signer().Certify(r.ID, key.Public()),
		})
		if !errors.Is(err, ledger.ErrState) {
			t.Errorf("ledger AcceptOffer(pending) = %v, want ErrState", err)
		}
		if diff := cmp.Diff(before, snapshot(t, s)); diff != "" {
			t.Errorf("refused acceptance changed the ledger:\n%s", diff)
		}
	})

	t.Run("forged or missing signature refused and changes nothing", func(t *testing.T) {
		var fresh *exchange.Patient
		for _, c := range s.custs {
			ids, err := c.Dataset().Match(ctx, mustCriteria(st.request.Criteria))
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				p := demoPatient(o.seed, c.ID(), id)
				if _, ok := st.licences[p]; !ok && !accepted(st, c.ID(), id) {
					fresh = p
					break
				}
			}
			if fresh != nil {
				break
			}
		}
		if fresh == nil {
			t.Fatal("no matching patient left who declined")
		}
		key := fresh.StudyKey(st.request.ID)
		var cert ledger.Certificate
		for _, c := range s.custs {
			if c.ID() == fresh.Custodian {
				cert = c.Signer().Certify(st.request.ID, key.Public())
			}
		}
		acc := ledger.Acceptance{Terms: exchange.TermsOf(st.request), PublicKey: key.Public(), Certificate: cert}
		good, err := key.Sign(ledger.FnAcceptOffer, acc)
		if err != nil {
			t.Fatal(err)
		}
		forger := fresh.StudyKey("another-request") // a key that is not the pseudonym's
		forged := good
		forged.Sig = mustSign(t, forger, good)
		missing := good
		missing.Sig = nil
		otherTerms := acc
		otherTerms.Terms.Reward = 1000
		tampered := good
		tampered.Payload = mustJSON(t, otherTerms) // signature no longer covers the payload
		before := snapshot(t, s)
		for name, a := range map[string]ledger.Action{"forged": forged, "missing": missing, "tampered": tampered} {
			if _, err := s.client.SubmitAction(ctx, a); !errors.Is(err, ledger.ErrBadSignature) {
				t.Errorf("%s signature: SubmitAction = %v, want ErrBadSignature", name, err)
			}
		}
		if diff := cmp.Diff(before, snapshot(t, s)); diff != "" {
			t.Errorf("refused acceptances changed the ledger:\n%s", diff)
		}
		// The genuine one goes through, once.
		if _, err := s.client.SubmitAction(ctx, good); err != nil {
			t.Fatalf("genuine acceptance: %v", err)
		}
		if _, err := s.client.SubmitAction(ctx, good); err == nil {
			t.Error("replayed acceptance accepted")
		}
	})

	t.Run("bad input is refused and changes nothing", func(t *testing.T) {
		pub, err := st.key.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		queriesBefore := len(mustQueries(t, s, st.request.ID))
		before := snapshot(t, s)
		draft := func(criteria string, scope ...string) ledger.RequestDraft {
			return ledger.RequestDraft{Title: "x", Purpose: "y", Criteria: criteria, Scope: scope, RewardPerPatient: 1, MaxParticipants: 1, LicenceSeconds: 60}
		}
		for _, tc := range []struct {
			name string
			call func() error
			want error
		}{
			{"criteria syntax", func() error {
				_, err := s.ex.PostRequest(ctx, st.sponsor, draft("age >>> 3", cohorts.CatDemographics))
				return err
			}, exchange.ErrInvalid},
			{"criteria outside scope", func() error {
				_, err := s.ex.PostRequest(ctx, st.sponsor, draft("hba1c > 7", cohorts.CatDemographics))
				return err
			}, exchange.ErrInvalid},
			{"query syntax", func() error {
				_, err := s.ex.Query(ctx, st.sponsor, pub, st.request.ID, "SELECT hba1c FROM cohort", exchange.QueryOptions{})
				return err
			}, exchange.ErrInvalid},
			{"overspend", func() error {
				_, err := s.ex.Query(ctx, st.sponsor, pub, st.request.ID, demoQuery, exchange.QueryOptions{Epsilon: 50})
				return err
			}, ledger.ErrBudget},
			{"not the sponsor", func() error {
				_, err := s.ex.Query(ctx, st.board, pub, st.request.ID, demoQuery, exchange.QueryOptions{})
				return err
			}, ledger.ErrForbidden},
			{"revoke another patient's licence", func() error {
				other := without(st.accepted, st.revoked)[1]
				_, err := s.client.RevokeLicence(ctx, st.revoked.StudyKey(st.request.ID), st.licences[other].ID)
				return err
			}, ledger.ErrForbidden},
		} {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
		if diff := cmp.Diff(before, snapshot(t, s)); diff != "" {
			t.Errorf("refused calls changed the ledger:\n%s", diff)
		}
		if n := len(mustQueries(t, s, st.request.ID)); n != queriesBefore {
			t.Errorf("refused queries left %d query records", n-queriesBefore)
		}
	})

	t.Run("a notebook with a failing cell is still recorded", func(t *testing.T) {
		pub, err := st.key.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		nb, err := notebooks.Parse("mixed.md", []byte("```medx name=ok\nSELECT COUNT(*) FROM cohort\n```\n```medx name=bad\nSELECT MAX(bmi) FROM cohort\n```\n"))
		if err != nil {
			t.Fatal(err)
		}
		runner := &exchangeRunner{ex: s.ex, sponsor: st.sponsor, key: st.key, pub: pub, req: st.request.ID, epsilon: 0.1}
		run, err := notebooks.Execute(ctx, nb, runner, time.Now)
		if !errors.Is(err, notebooks.ErrCellsFailed) {
			t.Fatalf("Execute = %v, want ErrCellsFailed", err)
		}
		rec, err := s.client.NotebookRun(ctx, ledger.NotebookRunID(run.RecordID))
		if err != nil {
			t.Fatalf("run %q not on the ledger: %v", run.RecordID, err)
		}
		if len(rec.Cells) != 2 || rec.Cells[0].ResultHash != notebooks.Publish(run.Results[0].Output.Table).Hash() || rec.Cells[1].Error == "" {
			t.Errorf("recorded cells %+v", rec.Cells)
		}
	})

	t.Run("cells under the minimum are suppressed, never released", func(t *testing.T) {
		// Few patients are over 73: some cells fall under the minimum of 10.
		const q = "SELECT COUNT(*) AS n, AVG(hba1c) AS a1c, HISTOGRAM(bmi, 25, 30, 35, 40) AS bmi FROM cohort WHERE age > 72 GROUP BY sex"
		res := storyQuery(t, s, st, q)
		raw, err := st.key.Decrypt(res.Ciphertext, len(res.Suppressed))
		if err != nil {
			t.Fatal(err)
		}
		query, _ := cohorts.ParseQuery(q)
		plain := plainVector(t, s, query, without(st.accepted, st.revoked))
		lay := query.Layout()
		var suppressedCount int
		want := exchangetest.SmallCells(query, plain, st.request.Approval.MinCell)
		for i, sl := range lay.Slots {
			if under := want[i]; res.Suppressed[i] != under {
				t.Errorf("slot %d %s: suppressed=%v, gate count %d (min %d)", i, sl.Name, res.Suppressed[i], plain[sl.Gate], st.request.Approval.MinCell)
			}
			if res.Suppressed[i] {
				suppressedCount++
				if raw[i] != 0 {
					t.Errorf("suppressed slot %d %s released value %d", i, sl.Name, raw[i])
				}
			} else if raw[i] != plain[i] {
				t.Errorf("slot %d %s = %d, plaintext %d", i, sl.Name, raw[i], plain[i])
			}
		}
		if suppressedCount == 0 {
			t.Fatalf("query suppressed nothing; plaintext %v: pick a narrower query", plain)
		}
	})
}

// storyQuery runs q on the story's request as its sponsor, released to
// the sponsor's own key.
func storyQuery(t *testing.T, s *site, st *story, q string) *exchange.QueryResult {
	t.Helper()
	pub, err := st.key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.ex.Query(t.Context(), st.sponsor, pub, st.request.ID, q, exchange.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func accepted(st *story, c ledger.ParticipantID, id string) bool {
	for _, p := range st.accepted {
		if p.Custodian == c && p.RecordID == id {
			return true
		}
	}
	return false
}

func plainVector(t *testing.T, s *site, q *cohorts.Query, ps []*exchange.Patient) []int64 {
	t.Helper()
	var total []int64
	for _, c := range s.custs {
		var ids []string
		for _, p := range ps {
			if p.Custodian == c.ID() {
				ids = append(ids, p.RecordID)
			}
		}
		vec, err := c.Dataset().Aggregate(t.Context(), q, cohorts.NewPatientSet(ids))
		if err != nil {
			t.Fatal(err)
		}
		if total == nil {
			total = make([]int64, len(vec))
		}
		for i := range vec {
			total[i] += vec[i]
		}
	}
	return total
}

type ledgerSnapshot struct {
	Tokens   ledger.TokenSummary
	Requests []ledger.Request
	Licences int
}

func snapshot(t *testing.T, s *site) ledgerSnapshot {
	t.Helper()
	var snap ledgerSnapshot
	var err error
	if snap.Tokens, err = s.client.Tokens(t.Context()); err != nil {
		t.Fatal(err)
	}
	if snap.Requests, err = s.client.Requests(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range snap.Requests {
		lics, err := s.client.Licences(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		snap.Licences += len(lics)
	}
	return snap
}

func mustQueries(t *testing.T, s *site, id ledger.RequestID) []ledger.QueryRecord {
	t.Helper()
	qs, err := s.client.Queries(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

func mustRequest(t *testing.T, s *site, id ledger.RequestID) ledger.Request {
	t.Helper()
	r, err := s.client.Request(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDemoCommand(t *testing.T) {
	run1 := func(dir string, seed string, noise string) string {
		var out, errb bytes.Buffer
		err := run(t.Context(), []string{"demo", "--dir", dir, "--seed", seed, "--patients", "2000", "--noise=" + noise}, func(string) string { return "" }, &out, &errb)
		if err != nil {
			t.Fatalf("medx demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
		}
		return out.String()
	}
	a := run1(t.TempDir(), "3", "true")
	for _, want := range []string{
		"== Setup", "checks feasibility before posting", "discrete-laplace noise of scale 2", "fewer than 10 patients", "posts a cohort request", "approves", "Patients decide", "sees (decrypted locally",
		"revokes", "runs a notebook", "Patient c", "audits", "noise discrete-laplace", "conserved", "verified",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	b := run1(t.TempDir(), "3", "true")
	fp := regexp.MustCompile(`story fingerprint \(equal for equal --seed\): ([0-9a-f]+)`)
	fa, fb := fp.FindStringSubmatch(a), fp.FindStringSubmatch(b)
	if fa == nil || fb == nil || fa[1] != fb[1] {
		t.Errorf("fingerprints of two runs with one seed differ: %v vs %v", fa, fb)
	}
	c := run1(t.TempDir(), "4", "true")
	if fc := fp.FindStringSubmatch(c); fc == nil || fc[1] == fa[1] {
		t.Errorf("a different seed gave the same fingerprint %v", fc)
	}
	// Without noise, two runs with one seed release identical tables.
	tables := regexp.MustCompile(`(?s)== Sponsor acme-pharma sees.*?disclosure control`)
	x, y := run1(t.TempDir(), "5", "false"), run1(t.TempDir(), "5", "false")
	if tx, ty := tables.FindString(x), tables.FindString(y); tx == "" || stripQueryIDs(tx) != stripQueryIDs(ty) {
		t.Errorf("noise-free results differ between runs with one seed:\n%s\n---\n%s", tx, ty)
	}
}

var idsRe = regexp.MustCompile(`(qry|req|lic)-[0-9a-z]+|\d{4}-\d\d-\d\dT[0-9:]+Z`)

func stripQueryIDs(s string) string { return idsRe.ReplaceAllString(s, "ID") }

func TestDemoRefusesBadInput(t *testing.T) {
	nonEmpty := t.TempDir()
	if err := writeFile(nonEmpty+"/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"no command":      {},
		"unknown command": {"frobnicate"},
		"bad flag":        {"demo", "--no-such-flag"},
		"few patients":    {"demo", "--patients", "5"},
		"bad share":       {"demo", "--accept", "1.5"},
		"non-empty dir":   {"demo", "--dir", nonEmpty},
		"stray argument":  {"demo", "extra"},
		"no places":       {"demo", "--places", "0"},
		"audit no dir":    {"audit", "verify"},
		"audit bad dir":   {"audit", "verify", "--dir", t.TempDir()},
		"audit not medx":  {"audit", "verify", "--dir", t.TempDir()},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := run(t.Context(), args, func(string) string { return "" }, &out, &errb); err == nil {
				t.Errorf("run(%q) succeeded, want an error", args)
			}
		})
	}
}

func mustSign(t *testing.T, s ledger.Signer, a ledger.Action) []byte {
	t.Helper()
	return ed25519.Sign(s.Key, a.SigningBytes())
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	env := func(string) string { return "" }
	if err := run(t.Context(), []string{"demo", "--dir", dir, "--patients", "1000"}, env, &out, &errb); err != nil {
		t.Fatalf("demo: %v\n%s", err, errb.String())
	}
	audit := func(args ...string) (string, error) {
		var o, e bytes.Buffer
		err := run(t.Context(), append([]string{"audit"}, args...), env, &o, &e)
		return o.String(), err
	}
	got, err := audit("verify", "--dir", dir)
	if err != nil || !strings.Contains(got, "verified") || !strings.Contains(got, ": conserved") || !strings.Contains(got, "revoked 1") {
		t.Fatalf("audit verify --dir: %v\n%s", err, got)
	}
	// A bare copy of the ledger file verifies on its own.
	raw, err := os.ReadFile(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := audit("verify", "--ledger", cp); err != nil || !strings.Contains(got, "verified") {
		t.Errorf("audit verify --ledger copy: %v\n%s", err, got)
	}
	// An altered copy fails, naming the block. Every copy of the event name
	// is altered: bbolt's free pages may hold stale copies of earlier
	// pages, which no reader uses, so altering only one could miss the
	// live block.
	bad := bytes.Clone(raw)
	n := 0
	for i := bytes.Index(bad, []byte("licence_granted")); i >= 0; i = bytes.Index(bad, []byte("licence_granted")) {
		bad[i+2] ^= 0x01
		n++
	}
	if n == 0 {
		t.Fatal("no licence event found in the ledger file")
	}
	badPath := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(badPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := audit("verify", "--ledger", badPath); err == nil || strings.Count(err.Error(), "first bad block ") != 1 {
		t.Errorf("audit verify of an altered file = %v, want a failure naming the first bad block (once)", err)
	}

	// Export, whole and filtered.
	jl := filepath.Join(t.TempDir(), "trail.jsonl")
	if _, err := audit("export", "--dir", dir, "--out", jl); err != nil {
		t.Fatal(err)
	}
	all, err := os.ReadFile(jl)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(all)), "\n")
	var first struct {
		Request string `json:"request"`
	}
	var req string
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &first); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if first.Request != "" {
			req = first.Request
		}
	}
	csvOut, err := audit("export", "--dir", dir, "--format", "csv", "--request", req)
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(csvOut), "\n")
	if len(rows) < 3 || len(rows)-1 >= len(lines) || !strings.HasPrefix(rows[0], "height,time,tx") {
		t.Errorf("csv export for %s: %d rows of %d records; header %q", req, len(rows)-1, len(lines), rows[0])
	}
	for _, bad := range [][]string{
		{"verify"},
		{"verify", "--dir", dir, "--ledger", cp},
		{"export", "--dir", dir, "--format", "xml"},
		{"export", "--dir", dir, "--from", "yesterday"},
		{"frobnicate"},
	} {
		if _, err := audit(bad...); err == nil {
			t.Errorf("audit %q succeeded, want an error", bad)
		}
	}
}
