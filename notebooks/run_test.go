package notebooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testNotebook = "# Baseline\n\nText with <script>alert(1)</script> and **bold**.\n\n" +
	"```medx name=counts epsilon=0.1\nSELECT COUNT(*) AS n, AVG(hba1c) AS a1c FROM cohort GROUP BY sex\n```\n\n" +
	"HbA1c by sex.\n\n" +
	"```medx name=a1c-hist\nSELECT HISTOGRAM(hba1c, 3, 6.5, 8, 20) AS hba1c FROM cohort GROUP BY sex\n```\n\n" +
	"```medx name=broken\nSELECT hba1c FROM cohort\n```\n"

// executeTest runs testNotebook through a real exchange at a fixed time.
func executeTest(t *testing.T) (*Run, *exchangeRunner) {
	t.Helper()
	nb, err := Parse("baseline.md", []byte(testNotebook))
	if err != nil {
		t.Fatal(err)
	}
	r := newExchangeRunner(t)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run, err := Execute(t.Context(), nb, r, func() time.Time { return clock })
	if !errors.Is(err, ErrCellsFailed) {
		t.Fatalf("Execute = %v, want ErrCellsFailed for the broken cell", err)
	}
	run.Request = string(r.req)
	return run, r
}

// volatile matches what differs between two runs of one story: ids derived
// from transaction ids.
var volatile = regexp.MustCompile(`\b(req|qry|nb)-[0-9a-f]{16}\b`)

func TestExecuteAndReport(t *testing.T) {
	run, r := executeTest(t)
	if run.Failed() != 1 || run.RecordID == "" {
		t.Fatalf("failed %d, record %q", run.Failed(), run.RecordID)
	}
	// Each cell asked for its own epsilon or the exchange's default, as the
	// ledger's query records show.
	var spent []ledger.Epsilon
	for _, res := range run.Results[:2] {
		q, err := r.f.Client.Query(t.Context(), ledger.QueryID(res.Output.QueryID))
		if err != nil {
			t.Fatal(err)
		}
		spent = append(spent, q.EpsilonCharged)
	}
	if diff := cmp.Diff([]ledger.Epsilon{ledger.EpsilonFromFloat(0.1), ledger.EpsilonFromFloat(0.1)}, spent); diff != "" {
		t.Errorf("epsilon charged per cell (-want +got):\n%s", diff)
	}
	rec := r.recorded(t, run.RecordID)
	want := Provenance{NotebookHash: run.Notebook.Hash, Cells: []CellProvenance{
		{Name: "counts", QueryID: run.Results[0].Output.QueryID, QueryHash: run.Results[0].Output.QueryHash, ResultHash: Publish(run.Results[0].Output.Table).Hash()},
		{Name: "a1c-hist", QueryID: run.Results[1].Output.QueryID, QueryHash: run.Results[1].Output.QueryHash, ResultHash: Publish(run.Results[1].Output.Table).Hash()},
		{Name: "broken", QueryHash: hashText("SELECT hba1c FROM cohort"), Error: run.Results[2].Err.Error()},
	}}
	if diff := cmp.Diff(want, rec.Provenance); diff != "" {
		t.Errorf("provenance on the ledger (-want +got):\n%s", diff)
	}
	if rec.Request != string(r.req) || rec.Sponsor != string(exchangetest.Sponsor) {
		t.Errorf("recorded on %s by %s", rec.Request, rec.Sponsor)
	}

	var b bytes.Buffer
	if err := WriteHTML(&b, run); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	if strings.Contains(html, "<script>alert(1)</script>") {
		t.Error("report contains the notebook's raw HTML unescaped")
	}
	for _, s := range []string{`<section class="cell" id="cell-broken"`, `class="error" role="alert">This cell failed:`, "<svg", "Histogram of hba1c"} {
		if !strings.Contains(html, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if n := strings.Count(html, "<table"); n != 2 {
		t.Errorf("report has %d tables, want 2 (one per successful cell)", n)
	}
	golden(t, "report.golden.html", volatile.ReplaceAll(b.Bytes(), []byte("$1-ID")))

	var nbb bytes.Buffer
	if err := WriteIPYNB(&nbb, run); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.ipynb", volatile.ReplaceAll(nbb.Bytes(), []byte("$1-ID")))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("output differs from %s (-golden +got):\n%s", path, diff)
	}
}

// TestIPYNBValidates checks the written notebook against the official
// nbformat 4 schema (testdata/nbformat, see SOURCE.md there).
func TestIPYNBValidates(t *testing.T) {
	run, _ := executeTest(t)
	var b bytes.Buffer
	if err := WriteIPYNB(&b, run); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "nbformat", "nbformat.v4.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "https://medx.test/nbformat.v4.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Errorf("written notebook is not valid nbformat 4: %v", err)
	}
	// The schema must be able to fail: a code cell without outputs.
	var broken map[string]any
	json.Unmarshal(b.Bytes(), &broken)
	for _, c := range broken["cells"].([]any) {
		if c := c.(map[string]any); c["cell_type"] == "code" {
			delete(c, "outputs")
			break
		}
	}
	bb, _ := json.Marshal(broken)
	inst, _ = jsonschema.UnmarshalJSON(bytes.NewReader(bb))
	if schema.Validate(inst) == nil {
		t.Error("a code cell without outputs validated")
	}
}

// TestIPYNBRoundTrip reads a written notebook back as a notebook: the same
// cells, so that a run's notebook can be run again in Jupyter's format.
func TestIPYNBRoundTrip(t *testing.T) {
	run, _ := executeTest(t)
	var b bytes.Buffer
	if err := WriteIPYNB(&b, run); err != nil {
		t.Fatal(err)
	}
	nb, err := Read("out.ipynb", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cellSummary(run.Notebook.Cells()), cellSummary(nb.Cells())); diff != "" {
		t.Errorf("cells after a round trip (-want +got):\n%s", diff)
	}
}

func cellSummary(cs []*Cell) []string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Name+" "+c.Chart+" "+c.Query)
	}
	return s
}

func TestVerify(t *testing.T) {
	run, r := executeTest(t)
	rec := r.recorded(t, run.RecordID)
	var h, nb bytes.Buffer
	if err := WriteHTML(&h, run); err != nil {
		t.Fatal(err)
	}
	if err := WriteIPYNB(&nb, run); err != nil {
		t.Fatal(err)
	}
	n0 := run.Results[0].Output.Table.Rows[0].Values[0].Float // counts, F, n
	shown := formatNumber(n0)
	for _, tc := range []struct {
		name, file string
		src        []byte
		edit       func(string) string
		want       string // "" = verifies
	}{
		{"html as written", "r.html", h.Bytes(), nil, ""},
		{"ipynb as written", "r.ipynb", nb.Bytes(), nil, ""},
		{"html number edited", "r.html", h.Bytes(), func(s string) string {
			return strings.Replace(s, "<td>"+shown+"</td>", "<td>"+shown+"1</td>", 1)
		}, `cell "counts": the numbers shown are not those recorded`},
		{"html suppressed value filled in", "r.html", h.Bytes(), func(s string) string {
			return strings.Replace(s, "<td>suppressed</td>", "<td>12</td>", 1)
		}, `: the numbers shown are not those recorded`},
		{"html query edited", "r.html", h.Bytes(), func(s string) string {
			return strings.Replace(s, "GROUP BY sex</code>", "GROUP BY vital_status</code>", 1)
		}, `cell "counts": the query shown is not the notebook's`},
		{"html failure hidden", "r.html", h.Bytes(), func(s string) string {
			return strings.Replace(s, `class="error"`, `class="fine"`, 1)
		}, `cell "broken": the ledger recorded it as failed`},
		{"ipynb number edited", "r.ipynb", nb.Bytes(), func(s string) string {
			return strings.Replace(s, `\u003ctd\u003e`+shown+`\u003c/td\u003e`, `\u003ctd\u003e`+shown+`9\u003c/td\u003e`, 1)
		}, `cell "counts": the numbers shown are not those recorded`},
		{"ipynb plain text edited", "r.ipynb", nb.Bytes(), func(s string) string {
			return strings.Replace(s, "\"F  "+strings.Repeat(" ", 0), "\"F ", 1)
		}, `the text/plain output differs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := string(tc.src)
			if tc.edit != nil {
				src = tc.edit(src)
				if src == string(tc.src) {
					t.Fatal("the edit changed nothing")
				}
			}
			rep, err := ReadReport(tc.file, []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			err = Verify(rep, rec)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Verify = %v, want nil", err)
			case tc.want != "" && (!errors.Is(err, ErrNotVerified) || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Verify = %v, want ErrNotVerified naming %q", err, tc.want)
			}
		})
	}
	// A record that differs from the report fails too.
	rep, _ := ReadReport("r.html", h.Bytes())
	other := rec
	other.Cells = append([]CellProvenance{}, rec.Cells...)
	other.Cells[1].ResultHash = strings.Repeat("0", 64)
	if err := Verify(rep, other); err == nil || !strings.Contains(err.Error(), `cell "a1c-hist"`) {
		t.Errorf("Verify against another result hash = %v", err)
	}
	other = rec
	other.NotebookHash = strings.Repeat("0", 64)
	if err := Verify(rep, other); err == nil || !strings.Contains(err.Error(), "the notebook carried in the report") {
		t.Errorf("Verify against another notebook hash = %v", err)
	}
	if _, err := ReadReport("x.html", []byte("<html><body>hello</body></html>")); err == nil {
		t.Error("ReadReport accepted a page without provenance")
	}
}
