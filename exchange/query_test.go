package exchange_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// exactGate is the small-cell rule on exact counts, which is what the gate
// sees with noise off: a count-like slot under minCell is withheld, and so
// is every slot gated on a withheld one.
func exactGate(t *testing.T, src string, vec []int64, minCell int64) []bool {
	t.Helper()
	q, err := cohorts.ParseQuery(src)
	if err != nil {
		t.Fatal(err)
	}
	return exchangetest.SmallCells(q, vec, minCell)
}

// checkExact compares an encrypted result, decrypted by the sponsor over
// every slot of the ciphertext, with the plaintext over the same patients.
func checkExact(t *testing.T, s *study, src string, patients []*exchange.Patient, minCell int64) *exchange.QueryResult {
	t.Helper()
	res, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{})
	if err != nil {
		t.Fatalf("Query(%s) = %v", src, err)
	}
	all, err := s.key.Decrypt(res.Ciphertext, s.params.Slots())
	if err != nil {
		t.Fatal(err)
	}
	plain := s.plain(t, src, patients)
	sup := exactGate(t, src, plain, minCell)
	if diff := cmp.Diff(sup, res.Suppressed); diff != "" {
		t.Errorf("%s: suppressed slots (-exact gate +got):\n%s", src, diff)
	}
	want := make([]int64, len(plain))
	released := 0
	for i, v := range plain {
		if !sup[i] {
			want[i] = v
			released++
		}
	}
	if diff := cmp.Diff(want, all[:len(plain)]); diff != "" {
		t.Errorf("%s: decrypted (-plaintext +encrypted):\n%s", src, diff)
	}
	if released == 0 {
		t.Errorf("%s: released nothing; the comparison is empty", src)
	}
	for i := len(plain); i < len(all); i++ {
		if all[i] != 0 {
			t.Fatalf("%s: slot %d beyond the layout of %d reaches the sponsor as %d", src, i, len(plain), all[i])
		}
	}
	// The sponsor's table is the plaintext table.
	q, _ := cohorts.ParseQuery(src)
	wantTbl, err := q.Finalize(plain, sup)
	if err != nil {
		t.Fatal(err)
	}
	gotTbl, err := res.Decrypt(s.key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantTbl, gotTbl); diff != "" {
		t.Errorf("%s: table (-plaintext +encrypted):\n%s", src, diff)
	}
	return res
}

// TestEncryptedEqualsPlaintext runs queries with noise off through the
// whole encrypted path (ledger, custodians, collective key, gate, release to
// the sponsor) on generated data and compares them with plaintext
// aggregation over the licensed patients' rows.
func TestEncryptedEqualsPlaintext(t *testing.T) {
	s := newStudy(t, studyOptions{})
	for _, src := range []string{
		"SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c), HISTOGRAM(bmi, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 80) FROM cohort " +
			"WHERE age BETWEEN 30 AND 85 AND sbp > 90 AND NOT HAS_CONDITION('195967001') GROUP BY sex",
		"SELECT COUNT(*), SUM(sbp), AVG(bmi), STDDEV(ldl) FROM cohort",
		"SELECT COUNT(*), AVG(dbp), HISTOGRAM(age, 18, 40, 65, 120) FROM cohort WHERE HAS_CONDITION('59621000') GROUP BY sex",
		"SELECT COUNT(*), VARIANCE(ldl) FROM cohort WHERE age >= 25 GROUP BY AGE_BAND(20), sex",
	} {
		checkExact(t, s, src, s.active(t), s.req.Approval.MinCell)
	}
}

// TestEncryptedEqualsPlaintextSynthea does the same on the Synthea sample
// (30 FHIR R4 bundles) imported by a custodian beside a generated dataset.
func TestEncryptedEqualsPlaintextSynthea(t *testing.T) {
	zip := sharedTestdata(t, "synthea-fhir-r4", "synthfhir.zip")
	dir := t.TempDir()
	synthea := filepath.Join(dir, "synthea.parquet")
	if _, err := cohorts.ImportFHIR(t.Context(), zip, synthea, cohorts.ImportOptions{RefDate: time.Date(2019, 9, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	generated := filepath.Join(dir, "generated.parquet")
	if _, err := cohorts.Generate(t.Context(), generated, cohorts.GenerateOptions{Patients: 60, Seed: 5, RefDate: refDate, IDPrefix: "g-"}); err != nil {
		t.Fatal(err)
	}
	s := newStudy(t, studyOptions{datasets: []string{synthea, generated}, minCell: 3, criteria: "age >= 0"})
	var fromSynthea int
	for _, p := range s.accepted {
		if p.Custodian == s.custs[0].ID() {
			fromSynthea++
		}
	}
	if fromSynthea < 20 {
		t.Fatalf("only %d Synthea patients in the study", fromSynthea)
	}
	for _, src := range []string{
		"SELECT COUNT(*), AVG(sbp), STDDEV(sbp), AVG(bmi), HISTOGRAM(bmi, 10, 20, 25, 30, 35, 80) FROM cohort GROUP BY sex",
		"SELECT COUNT(*), AVG(hba1c), SUM(dbp) FROM cohort WHERE HAS_CONDITION('59621000') OR HAS_CONDITION('15777000')",
	} {
		checkExact(t, s, src, s.active(t), s.req.Approval.MinCell)
	}
}

func isRefusedDifferencing(err error) bool {
	return errors.Is(err, exchange.ErrRefused) && errors.Is(err, privacy.ErrDifferencing)
}

// TestDifferencingPair runs the classic attack: the same question twice, the
// second time without one patient. The second query is refused before
// anything is charged, noise or not, and the ledger is unchanged.
func TestDifferencingPair(t *testing.T) {
	for _, noise := range []bool{false, true} {
		t.Run(fmt.Sprintf("noise=%v", noise), func(t *testing.T) {
			s := newStudy(t, studyOptions{noise: noise})
			const base = "age >= 40"
			first, _ := s.query(t, "SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c) FROM cohort WHERE "+base)
			_, pred := s.isolate(t, base)
			_, younger := s.isolate(t, "age < 40")
			before := s.state(t)
			for _, src := range []string{
				// The same question without the patient.
				"SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c) FROM cohort WHERE " + base + " AND NOT (" + pred + ")",
				// Other statistics, the same cohorts.
				"SELECT SUM(sbp) FROM cohort WHERE " + base + " AND NOT (" + pred + ")",
				// The cohort plus one patient the first query lacked is as
				// bad, from the other side.
				"SELECT COUNT(*) FROM cohort WHERE (" + base + ") OR (" + younger + ")",
			} {
				_, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{})
				if !isRefusedDifferencing(err) {
					t.Fatalf("Query(%s) = %v, want a differencing refusal", src, err)
				}
				if !errorsMention(err, string(first.Record.ID)) {
					t.Errorf("refusal %q does not name the earlier query %s", err, first.Record.ID)
				}
			}
			if diff := cmp.Diff(before, s.state(t)); diff != "" {
				t.Errorf("refused queries changed the ledger (-before +after):\n%s", diff)
			}
			// A difference of MinCell or more is no attack.
			res, _ := s.query(t, "SELECT COUNT(*), AVG(hba1c) FROM cohort WHERE age >= 50")
			if d := res.Disclosure.Differencing; d == nil || d.Compared != 1 || d.Rule != privacy.DifferencingRule {
				t.Errorf("Differencing = %+v, want a subset check against 1 earlier query", d)
			}
		})
	}
}

func errorsMention(err error, s string) bool {
	return err != nil && len(s) > 0 && contains(err.Error(), s)
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestComplementaryCells recovers one patient as the difference between a
// released cell and a differently grouped cohort: refused with noise off,
// where it would be exact; with noise on each release is differentially
// private and the pair is allowed, and listed as noised.
func TestComplementaryCells(t *testing.T) {
	for _, noise := range []bool{false, true} {
		t.Run(fmt.Sprintf("noise=%v", noise), func(t *testing.T) {
			s := newStudy(t, studyOptions{noise: noise})
			first, _ := s.query(t, "SELECT COUNT(*), AVG(bmi) FROM cohort WHERE age >= 30 GROUP BY sex")
			// Women aged 30+, plus one man: one cell, which differs from the
			// first query's F cell by that man.
			_, pred := s.isolate(t, "age >= 30 AND sex = 'M'")
			src := "SELECT COUNT(*), AVG(bmi) FROM cohort WHERE (age >= 30 AND sex = 'F') OR (age >= 30 AND " + pred + ")"
			before := s.state(t)
			res, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{})
			if !noise {
				if !isRefusedDifferencing(err) {
					t.Fatalf("Query = %v, want a differencing refusal", err)
				}
				if diff := cmp.Diff(before, s.state(t)); diff != "" {
					t.Errorf("refused query changed the ledger (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Query = %v, want it allowed under noise", err)
			}
			d := res.Disclosure
			if d.Mechanism != privacy.MechanismDiscreteLaplace || d.Differencing == nil ||
				!cmp.Equal(d.Differencing.Noised, []string{string(first.Record.ID)}) {
				t.Errorf("Disclosure = %+v (differencing %+v), want noise and %s listed as noised", d, d.Differencing, first.Record.ID)
			}
		})
	}
}

// TestLicenceChangeOnly is the demo's story: the same query before and after
// one patient revokes. The cohorts differ by that patient alone, through a
// licence change no sponsor controls: allowed, and recorded.
func TestLicenceChangeOnly(t *testing.T) {
	for _, noise := range []bool{false, true} {
		t.Run(fmt.Sprintf("noise=%v", noise), func(t *testing.T) {
			s := newStudy(t, studyOptions{noise: noise})
			const src = "SELECT COUNT(*), AVG(bmi), HISTOGRAM(sbp, 60, 120, 140, 160, 260) FROM cohort GROUP BY sex"
			first, v1 := s.query(t, src)
			gone := s.accepted[7]
			if _, err := s.ex.Revoke(t.Context(), gone, s.licences[gone].ID); err != nil {
				t.Fatal(err)
			}
			second, v2 := s.query(t, src)
			d := second.Disclosure.Differencing
			if d == nil || !cmp.Equal(d.LicenceChangeOnly, []string{string(first.Record.ID)}) || len(d.Noised) != 0 {
				t.Fatalf("Differencing = %+v, want %s listed as a licence change only", d, first.Record.ID)
			}
			if second.Record.Licences != first.Record.Licences-1 {
				t.Errorf("licences %d then %d, want one fewer", first.Record.Licences, second.Record.Licences)
			}
			if !noise {
				if got := (v1[0] + v1[len(v1)/2]) - (v2[0] + v2[len(v2)/2]); got != 1 {
					t.Errorf("patients counted dropped by %d, want 1", got)
				}
			}
		})
	}
}

// TestSingleCellNeverReleased queries a cohort of exactly one patient, again
// and again: with noise on the noisy count would sometimes pass the gate,
// but a cell under the minimum is withheld on its exact size.
func TestSingleCellNeverReleased(t *testing.T) {
	for _, noise := range []bool{false, true} {
		t.Run(fmt.Sprintf("noise=%v", noise), func(t *testing.T) {
			s := newStudy(t, studyOptions{noise: noise, epsilon: 0.5})
			_, pred := s.isolate(t, "age >= 18")
			for _, src := range []string{
				"SELECT COUNT(*), AVG(hba1c), SUM(bmi), HISTOGRAM(sbp, 60, 260) FROM cohort WHERE " + pred,
				"SELECT COUNT(*), AVG(ldl) FROM cohort WHERE (" + pred + ") OR age >= 18 AND sex != '" + sexOf(pred) + "' GROUP BY sex",
			} {
				q, _ := cohorts.ParseQuery(src)
				lay := q.Layout()
				for range 6 {
					res, vec := s.query(t, src)
					for i, sl := range lay.Slots {
						single := len(lay.Cells) == 1 || lay.Cells[sl.Cell].Labels[0] == sexOf(pred)
						if single && (!res.Suppressed[i] || vec[i] != 0) {
							t.Fatalf("%s: slot %d %s of the single-patient cell released as %d", src, i, sl.Name, vec[i])
						}
					}
					if got := res.Disclosure.Differencing.SmallCells; len(got) != 1 {
						t.Errorf("SmallCells = %v, want the single-patient cell", got)
					}
				}
			}
		})
	}
}

func sexOf(pred string) string {
	if contains(pred, "'F'") {
		return "F"
	}
	return "M"
}

// TestOverspendRefusedRecordsNothing spends the budget and then asks for
// more than is left: refused before any work, and the ledger unchanged.
func TestOverspendRefusedRecordsNothing(t *testing.T) {
	s := newStudy(t, studyOptions{budget: 1})
	const src = "SELECT COUNT(*), AVG(hba1c) FROM cohort GROUP BY sex"
	if _, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{Epsilon: 0.75}); err != nil {
		t.Fatal(err)
	}
	before := s.state(t)
	_, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{Epsilon: 0.5})
	if !errors.Is(err, ledger.ErrBudget) {
		t.Fatalf("overspending Query = %v, want ErrBudget", err)
	}
	if diff := cmp.Diff(before, s.state(t)); diff != "" {
		t.Errorf("refused query changed the ledger (-before +after):\n%s", diff)
	}
	// What is left can still be spent, exactly.
	res, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{Epsilon: 0.25})
	if err != nil {
		t.Fatalf("spending the rest: %v", err)
	}
	if res.Disclosure.EpsilonLeft != 0 {
		t.Errorf("EpsilonLeft = %g, want 0", res.Disclosure.EpsilonLeft)
	}
	_, err = s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, src, exchange.QueryOptions{Epsilon: 0.01})
	if !errors.Is(err, ledger.ErrBudget) {
		t.Errorf("Query with the budget spent = %v, want ErrBudget", err)
	}
}

// TestDisclosureOnLedger reads the query record back from the ledger: it
// holds what the sponsor was told was applied, and the result's hash.
func TestDisclosureOnLedger(t *testing.T) {
	s := newStudy(t, studyOptions{noise: true})
	s.query(t, "SELECT COUNT(*) FROM cohort")
	res, _ := s.query(t, "SELECT COUNT(*), AVG(hba1c), HISTOGRAM(bmi, 10, 16, 25, 30, 80) FROM cohort WHERE age > 60 GROUP BY sex")
	rec, err := s.led.Query(t.Context(), res.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != ledger.QueryCompleted {
		t.Errorf("record status %s, want completed", rec.Status)
	}
	sum := sha256.Sum256(res.Ciphertext)
	if rec.ResultHash != hex.EncodeToString(sum[:]) {
		t.Errorf("record result hash %s, want the ciphertext's", rec.ResultHash)
	}
	var d privacy.Disclosure
	if err := json.Unmarshal(rec.Disclosure, &d); err != nil {
		t.Fatalf("disclosure on the ledger: %v", err)
	}
	if diff := cmp.Diff(res.Disclosure, d); diff != "" {
		t.Errorf("disclosure on the ledger differs from the sponsor's (-sponsor +ledger):\n%s", diff)
	}
	r, err := s.led.Request(t.Context(), s.req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Mechanism != privacy.MechanismDiscreteLaplace || d.EpsilonSpent != 0.25 ||
		d.EpsilonLeft != (r.Approval.EpsilonBudget-r.Approval.EpsilonSpent).Float() || d.KeyHolders != 3 ||
		len(d.NoiseScales) != len(res.Suppressed) || d.MinCell != 10 {
		t.Errorf("disclosure %+v does not state what was applied", d)
	}
	if d.Differencing == nil || d.Differencing.Rule != privacy.DifferencingRule || d.Differencing.Compared != 1 {
		t.Errorf("differencing account %+v, want a check against the first query", d.Differencing)
	}
	if len(d.SuppressedSlots) == 0 {
		t.Errorf("a histogram with a bin of underweight patients suppressed nothing: %+v", d)
	}
}

// TestTooFewLicencesRefusedBeforeCharging asks a query of a study whose
// licences in force are fewer than the minimum cell: every value would be
// suppressed, so it is refused before the budget is charged, and the
// ledger is unchanged.
func TestTooFewLicencesRefusedBeforeCharging(t *testing.T) {
	s := newStudy(t, studyOptions{minCell: 1000})
	if n := len(s.active(t)); n == 0 || n >= 1000 {
		t.Fatalf("%d licences in force, want between 1 and 999", n)
	}
	before := s.state(t)
	_, err := s.ex.Query(t.Context(), s.sponsor, s.pub, s.req.ID, "SELECT COUNT(*) FROM cohort GROUP BY sex", exchange.QueryOptions{})
	if !errors.Is(err, exchange.ErrTooFewLicences) || !errors.Is(err, exchange.ErrRefused) {
		t.Fatalf("Query = %v, want ErrTooFewLicences (an ErrRefused)", err)
	}
	if diff := cmp.Diff(before, s.state(t)); diff != "" {
		t.Errorf("refused query changed the ledger (-before +after):\n%s", diff)
	}
}
