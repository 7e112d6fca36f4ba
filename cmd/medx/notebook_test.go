package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/notebooks"
)

// startServe runs 'medx serve' on a new directory at 127.0.0.1:0 and
// returns its base URL, its output so far and a function that stops it;
// extra flags follow the defaults.
func startServe(t *testing.T, dir string, patients string, extra ...string) (string, *syncBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		args := append([]string{"serve", "--dir", dir, "--addr", "127.0.0.1:0", "--patients", patients, "--log", "error"}, extra...)
		done <- run(ctx, args,
			func(string) string { return "" }, out, &bytes.Buffer{})
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("serve did not shut down")
		}
	}
	listening := regexp.MustCompile(`listening on (http://[0-9.:]+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			return m[1], out, stop
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start:\n%s", out.String())
		}
	}
}

// medx1 runs one command and returns its stdout and error.
func medx1(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := medx(t, args...)
	return out, err
}

// TestNotebookRunAndVerify runs the example notebooks one after another
// against 'medx serve' over HTTP with the sponsor's key, verifies every
// report and notebook against the ledger (over the API, and from the data
// directory once the server has stopped), and checks that an edited number
// and a failing cell are caught.
func TestNotebookRunAndVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	base, _, stop := startServe(t, dir, "1500")
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	// The examples spend 3.75 of the budget; the test runs one again.
	out, err := medx1(t, "notebook", "demo-study", "--dir", dir, "--exchange", base, "--epsilon-budget", "6")
	if err != nil {
		t.Fatalf("demo-study: %v", err)
	}
	req := strings.TrimSpace(out)
	sponsorTok, err := medx1(t, "token", "--dir", dir, "--role", "sponsor", "--sub", string(demoSponsor))
	if err != nil {
		t.Fatal(err)
	}
	boardTok, err := medx1(t, "token", "--dir", dir, "--role", "ethics_board", "--sub", string(demoBoard))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "sponsors", string(demoSponsor), "bgv.key")
	reports := t.TempDir()
	runNB := func(file string, out ...string) (string, error) {
		if len(out) == 0 {
			out = []string{reports}
		}
		return medx1(t, "notebook", "run", file, "--exchange", base, "--token", strings.TrimSpace(sponsorTok),
			"--key", key, "--request", req, "--out", out[0])
	}
	verify := func(file string, by ...string) (string, error) {
		if len(by) == 0 {
			by = []string{"--exchange", base, "--token", strings.TrimSpace(boardTok)}
		}
		return medx1(t, append([]string{"notebook", "verify", file}, by...)...)
	}

	examples, err := filepath.Glob(filepath.Join("..", "..", "notebooks", "examples", "*.md"))
	if err != nil || len(examples) < 3 {
		t.Fatalf("examples: %v, %v", examples, err)
	}
	for _, ex := range examples {
		out, err := runNB(ex)
		if err != nil {
			t.Fatalf("notebook run %s: %v\n%s", ex, err, out)
		}
		name := strings.TrimSuffix(filepath.Base(ex), ".md")
		for _, ext := range []string{".html", ".ipynb"} {
			if out, err := verify(filepath.Join(reports, name+ext)); err != nil || !strings.Contains(out, "verified:") {
				t.Errorf("verify %s%s = %v\n%s", name, ext, err, out)
			}
		}
	}

	// A written notebook runs again as a Jupyter notebook.
	again := t.TempDir()
	if out, err := runNB(filepath.Join(reports, "t2d-baseline.ipynb"), again); err != nil {
		t.Fatalf("notebook run of the written .ipynb: %v\n%s", err, out)
	}
	if out, err := verify(filepath.Join(again, "t2d-baseline.html")); err != nil {
		t.Errorf("verify of the .ipynb run's report = %v\n%s", err, out)
	}

	// An edited number fails, naming the cell.
	page := filepath.Join(reports, "t2d-baseline.html")
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	edited := regexp.MustCompile(`<td>(\d+)</td>`).ReplaceAllStringFunc(string(b), func(s string) string {
		return strings.Replace(s, "</td>", "0</td>", 1)
	})
	forged := filepath.Join(t.TempDir(), "forged.html")
	os.WriteFile(forged, []byte(edited), 0o644)
	out, err = verify(forged)
	if !errors.Is(err, notebooks.ErrNotVerified) || !strings.Contains(err.Error(), `cell "demographics": the numbers shown are not those recorded`) ||
		!strings.Contains(out, "NOT VERIFIED") {
		t.Errorf("verify of an edited report = %v\n%s", err, out)
	}

	// A notebook with a syntax error and an over-budget cell: both fail in
	// place, the good cell runs, everything is recorded, and the command
	// fails.
	bad := filepath.Join(t.TempDir(), "bad.md")
	os.WriteFile(bad, []byte("# Bad\n\n```medx name=rows\nSELECT hba1c FROM cohort\n```\n\n"+
		"```medx name=greedy epsilon=9\nSELECT COUNT(*) FROM cohort\n```\n\n```medx name=fine epsilon=0.1\nSELECT COUNT(*) AS n FROM cohort GROUP BY sex\n```\n"), 0o644)
	out, err = runNB(bad)
	if !errors.Is(err, notebooks.ErrCellsFailed) {
		t.Errorf("run of a failing notebook = %v, want ErrCellsFailed\n%s", err, out)
	}
	if !strings.Contains(out, "rows             FAILED") || !strings.Contains(out, "greedy           FAILED") || !strings.Contains(out, "fine             ok") {
		t.Errorf("run output:\n%s", out)
	}
	b, _ = os.ReadFile(filepath.Join(reports, "bad.html"))
	if n := strings.Count(string(b), `class="error"`); n != 2 || !strings.Contains(string(b), "budget") {
		t.Errorf("report shows %d failed cells (want 2, one naming the budget)", n)
	}
	if out, err := verify(filepath.Join(reports, "bad.ipynb")); err != nil {
		t.Errorf("verify of a run with failed cells = %v\n%s", err, out)
	}

	// Bad input changes nothing and says why.
	for _, args := range [][]string{
		{"notebook"},
		{"notebook", "run", bad},
		{"notebook", "run", "--exchange", base},
		{"notebook", "verify", page},
		{"notebook", "verify", page, "--dir", dir, "--exchange", base, "--token", "x"},
		{"notebook", "demo-study", "--dir", dir},
	} {
		if _, err := medx1(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("medx %q = %v, want a usage error", args, err)
		}
	}
	if _, err := runNB(filepath.Join(reports, "bad.ipynb")); err == nil || !strings.Contains(err.Error(), "would overwrite") {
		t.Errorf("running a notebook onto itself = %v", err)
	}

	// Once the server has stopped, the board verifies from the directory.
	stop()
	stopped = true
	if out, err := verify(page, "--dir", dir); err != nil {
		t.Errorf("verify --dir = %v\n%s", err, out)
	}
	if _, err := verify(forged, "--dir", dir); !errors.Is(err, notebooks.ErrNotVerified) {
		t.Errorf("verify --dir of an edited report = %v", err)
	}
}
