package exchange

import (
	"crypto/ed25519"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

func TestLabelCondition(t *testing.T) {
	tests := []struct {
		name, label, want string
		bad               bool
	}{
		{name: "sex", label: "F", want: "sex = 'F'"},
		{name: "sex", label: "o'k", want: "sex = 'o''k'"},
		{name: "age_band(10)", label: "40-49", want: "age BETWEEN 40 AND 49"},
		{name: "age_band(10)", label: "110+", want: "age >= 110"},
		{name: "age_band(10)", label: "forty", bad: true},
		{name: "age_band(10)", label: "x+", bad: true},
		{name: "age_band(10)", label: "40-", bad: true},
	}
	for _, tt := range tests {
		got, err := labelCondition(tt.name, tt.label)
		if tt.bad {
			if err == nil {
				t.Errorf("labelCondition(%q, %q) = %q, want an error", tt.name, tt.label, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("labelCondition(%q, %q) = %q, %v, want %q", tt.name, tt.label, got, err, tt.want)
		}
	}
	if got, err := cellCriteria("age >= 40", []string{"sex", "age_band(20)"}, []string{"M", "40-59"}); err != nil || got != "(age >= 40) AND sex = 'M' AND age BETWEEN 40 AND 59" {
		t.Errorf("cellCriteria = %q, %v", got, err)
	}
	if _, err := cellCriteria("", []string{"sex"}, nil); err == nil {
		t.Error("cellCriteria with a label missing succeeded")
	}
}

// TestCompareCohorts checks the counts of every pair of released sets on
// two small cohorts grouped by sex.
func TestCompareCohorts(t *testing.T) {
	// New query: a, b in F; c in M; d fails the WHERE; e is not licensed.
	// Earlier: a in F; b, c in M; e in F (licensed then, revoked since);
	// d was not licensed then.
	a := &cohort{Licensed: []string{"a", "b", "c", "d"}, Cells: []int32{0, 0, 1, -1}, NumCells: 2, GroupBy: []string{"sex"}}
	b := &cohort{Licensed: []string{"a", "b", "c", "e"}, Cells: []int32{0, 1, 1, 0}, NumCells: 2, GroupBy: []string{"sex"}}
	got := compareCohorts(a, b, "q1", 100)
	type row struct{ cell, other, size, esize, differ, shared int64 }
	want := []row{
		// F={a,b} vs F={a,e}: b (shared), e (not licensed now).
		{0, 0, 2, 2, 2, 1},
		// F={a,b} vs M={b,c}: a, c, both shared.
		{0, 1, 2, 2, 2, 2},
		// F={a,b} vs all={a,b,c,e}: c shared, e not.
		{0, -1, 2, 4, 2, 1},
		{1, 0, 1, 2, 3, 2},
		// M={c} vs M={b,c}: b.
		{1, 1, 1, 2, 1, 1},
		{1, -1, 1, 4, 3, 2},
		{-1, 0, 3, 2, 3, 2},
		{-1, 1, 3, 2, 1, 1},
		// all={a,b,c} vs all={a,b,c,e}: e only, a licence change.
		{-1, -1, 3, 4, 1, 0},
	}
	var rows []row
	for _, c := range got {
		if c.Earlier != "q1" || c.SameShape != (c.Cell == c.EarlierCell) {
			t.Errorf("comparison %+v: wrong earlier id or shape", c)
		}
		rows = append(rows, row{int64(c.Cell), int64(c.EarlierCell), c.Size, c.EarlierSize, c.Differ, c.Shared})
	}
	if diff := cmp.Diff(want, rows, cmp.AllowUnexported(row{})); diff != "" {
		t.Errorf("compareCohorts (-want +got):\n%s", diff)
	}

	// Capped at the minimum cell size; withheld cells drop out, and with a
	// single released cell there is no separate union.
	b.Withheld = []int{1}
	got = compareCohorts(a, b, "q1", 2)
	for _, c := range got {
		if c.EarlierCell == 1 || c.EarlierCell == privacy.AllCells {
			t.Errorf("comparison with withheld cell or union of one cell: %+v", c)
		}
		if c.Size > 2 || c.EarlierSize > 2 || c.Differ > 2 {
			t.Errorf("comparison %+v not capped at 2", c)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d comparisons, want 3 (F, M, all against F)", len(got))
	}
	// Different GROUP BY: no pair has the same shape.
	b.GroupBy = nil
	for _, c := range compareCohorts(a, b, "q1", 10) {
		if c.SameShape {
			t.Errorf("differently grouped queries compared as the same shape: %+v", c)
		}
	}
}

// TestCohortStoreFailsClosed: a custodian with no record, or a corrupt
// record, of an earlier released query cannot vouch for the difference and
// the check fails instead of passing.
func TestCohortStoreFailsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.parquet")
	if _, err := cohorts.Generate(t.Context(), path, cohorts.GenerateOptions{Patients: 60, Seed: 1, RefDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), IDPrefix: "x-"}); err != nil {
		t.Fatal(err)
	}
	ds, err := cohorts.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	params, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	h, err := privacy.NewKeyHolder(params, "c")
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	c, err := OpenCustodian(ledger.Signer{ID: "c", Key: key}, ds, h, filepath.Join(dir, "links.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q, err := cohorts.ParseQuery("SELECT COUNT(*) FROM cohort WHERE age >= 30 GROUP BY sex")
	if err != nil {
		t.Fatal(err)
	}
	records := ds.PatientIDs()[:40]
	slices.Sort(records)
	co, err := c.cohortOf(t.Context(), q, records)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.comparisons(co, []ledger.QueryID{"qry-unknown"}, 10); err == nil {
		t.Error("comparison with an unrecorded query passed")
	}
	if err := c.rememberCohort("qry-1", co); err != nil {
		t.Fatal(err)
	}
	got, err := c.comparisons(co, []ledger.QueryID{"qry-1"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, c := range got {
		if c.SameShape {
			same++
			if c.Differ != 0 {
				t.Errorf("a cohort compared with itself differs: %+v", c)
			}
		}
	}
	if same == 0 {
		t.Error("no corresponding sets compared")
	}
	if err := c.links.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(cohortsBucket).Put([]byte("qry-2"), []byte(`{"licensed":["b","a"],"cells":[0,0],"numCells":1}`))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.comparisons(co, []ledger.QueryID{"qry-2"}, 10); err == nil {
		t.Error("comparison with a corrupt record passed")
	}
}
