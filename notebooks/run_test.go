package notebooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/privacy"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeRunner answers with real cohorts tables finalised from fixed
// aggregate vectors, and refuses queries that do not parse.
type fakeRunner struct {
	recorded []Provenance
}

func (f *fakeRunner) Query(_ context.Context, src string) (*Output, error) {
	q, err := cohorts.ParseQuery(src)
	if err != nil {
		return nil, err
	}
	lay := q.Layout()
	vec := make([]int64, len(lay.Slots))
	for i := range vec {
		vec[i] = int64(40 + 3*i) // counts and centred sums alike
	}
	sup := make([]bool, len(vec))
	sup[len(sup)-1] = true
	t, err := q.Finalize(vec, sup)
	if err != nil {
		return nil, err
	}
	return &Output{Table: t, QueryID: "qry-0001", QueryHash: strings.Repeat("ab", 32),
		Disclosure: privacy.Disclosure{MinCell: 10, SuppressedSlots: []int{len(sup) - 1}, Mechanism: "discrete-laplace", EpsilonSpent: 0.5, EpsilonLeft: 1.5, KeyHolders: 3}}, nil
}

func (f *fakeRunner) Record(_ context.Context, p Provenance) (string, error) {
	f.recorded = append(f.recorded, p)
	return "nb-0001", nil
}

func TestExecuteAndReport(t *testing.T) {
	src := "# Baseline\n\nText with <script>alert(1)</script> and **bold**.\n\n" +
		"```medx name=counts\nSELECT COUNT(*) AS n, AVG(hba1c) AS a1c FROM cohort GROUP BY sex\n```\n\n" +
		"```medx name=broken\nSELECT hba1c FROM cohort\n```\n"
	nb, err := Parse("baseline.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{}
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run, err := Execute(t.Context(), nb, r, func() time.Time { return clock })
	if !errors.Is(err, ErrCellsFailed) {
		t.Fatalf("Execute = %v, want ErrCellsFailed for the broken cell", err)
	}
	if run.Failed() != 1 || run.RecordID != "nb-0001" {
		t.Errorf("failed %d, record %q", run.Failed(), run.RecordID)
	}
	if len(r.recorded) != 1 {
		t.Fatalf("recorded %d runs, want 1", len(r.recorded))
	}
	prov := r.recorded[0]
	want := Provenance{NotebookHash: nb.Hash, Cells: []CellProvenance{
		{Name: "counts", QueryID: "qry-0001", QueryHash: strings.Repeat("ab", 32), ResultHash: run.Results[0].Output.Table.Hash()},
		{Name: "broken", QueryHash: sha256hex("SELECT hba1c FROM cohort"), Error: run.Results[1].Err.Error()},
	}}
	if diff := cmp.Diff(want, prov); diff != "" {
		t.Errorf("provenance (-want +got):\n%s", diff)
	}

	var b bytes.Buffer
	if err := WriteHTML(&b, run); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, s := range []string{"<script>alert(1)</script>"} {
		if strings.Contains(html, s) {
			t.Errorf("report contains unescaped %q", s)
		}
	}
	if n := strings.Count(html, "<table"); n != 1 {
		t.Errorf("report has %d tables, want 1 (one per successful cell)", n)
	}
	golden := filepath.Join("testdata", "report.golden.html")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if diff := cmp.Diff(string(g), html); diff != "" {
		t.Errorf("report differs from %s (-golden +got):\n%s", golden, diff)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
