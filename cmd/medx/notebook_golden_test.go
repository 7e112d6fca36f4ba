package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/medx/medx/notebooks"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// volatile matches what differs between two runs of the same study: ids
// derived from transaction ids, hashes that cover them, and times.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b(req|qry|nb|lic|fea)-[0-9a-f]{16}\b`), "$1-ID"},
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "HASH"},
	{regexp.MustCompile(`\b[0-9a-f]{12}…`), "HASH…"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "TIME"},
}

// TestNotebookGolden runs an example notebook through the whole system
// ('medx serve' with noise off, a seeded demo study, the sponsor's client
// decrypting locally) and compares the HTML report and the .ipynb with the
// golden files, after replacing ids, hashes and times. With noise off the
// released numbers are the exact aggregates over the licensed patients, so
// any change to the query path, the disclosure gate, the renderer or the
// notebook writer shows up here. go test -run NotebookGolden -update
// rewrites them.
func TestNotebookGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	base, _, stop := startServe(t, dir, "1500", "--noise=false")
	defer stop()
	out, err := medx1(t, "notebook", "demo-study", "--dir", dir, "--exchange", base)
	if err != nil {
		t.Fatalf("demo-study: %v", err)
	}
	req := strings.TrimSpace(out)
	tok, err := medx1(t, "token", "--dir", dir, "--role", "sponsor", "--sub", string(demoSponsor))
	if err != nil {
		t.Fatal(err)
	}
	reports := t.TempDir()
	if out, err := medx1(t, "notebook", "run", filepath.Join("..", "..", "notebooks", "examples", "t2d-baseline.md"),
		"--exchange", base, "--token", strings.TrimSpace(tok), "--key", filepath.Join(dir, "sponsors", string(demoSponsor), "bgv.key"),
		"--request", req, "--out", reports); err != nil {
		t.Fatalf("notebook run: %v\n%s", err, out)
	}
	for _, name := range []string{"t2d-baseline.html", "t2d-baseline.ipynb"} {
		b, err := os.ReadFile(filepath.Join(reports, name))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		for _, v := range volatile {
			got = v.re.ReplaceAllString(got, v.with)
		}
		if !strings.Contains(got, "no noise") && !strings.Contains(got, "none") {
			t.Errorf("%s does not state that noise was off", name)
		}
		path := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -run NotebookGolden -update creates it)", err)
		}
		if diff := cmp.Diff(string(want), got); diff != "" {
			t.Errorf("%s differs from %s (-golden +got):\n%s", name, path, diff)
		}
	}

	// A licence failure shows in place: a study whose ethics board set a
	// minimum cell above its licences in force refuses every cell before
	// charging anything.
	out, err = medx1(t, "notebook", "demo-study", "--dir", dir, "--exchange", base, "--min-cell", "100000")
	if err != nil {
		t.Fatalf("demo-study: %v", err)
	}
	small := t.TempDir()
	out, err = medx1(t, "notebook", "run", filepath.Join("..", "..", "notebooks", "examples", "t2d-baseline.md"),
		"--exchange", base, "--token", strings.TrimSpace(tok), "--key", filepath.Join(dir, "sponsors", string(demoSponsor), "bgv.key"),
		"--request", strings.TrimSpace(out), "--out", small)
	if !errors.Is(err, notebooks.ErrCellsFailed) {
		t.Fatalf("notebook run on too few licences = %v, want ErrCellsFailed\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(small, "t2d-baseline.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `class="error"`); n != 3 || !strings.Contains(string(b), "Too few licences in force") {
		t.Errorf("report shows %d failed cells (want all 3, naming the licences in force)", n)
	}
}
