package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGenerateCommand(t *testing.T) {
	dir := t.TempDir()
	hash := regexp.MustCompile(`content hash  ([0-9a-f]{64})`)
	gen := func(name string, args ...string) string {
		t.Helper()
		out, stderr, err := medx(t, append([]string{"generate", "--out", filepath.Join(dir, name)}, args...)...)
		if err != nil {
			t.Fatalf("medx generate: %v\n%s", err, stderr)
		}
		m := hash.FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "generated 2000 synthetic patients") || !strings.Contains(out, "rows          2000") {
			t.Fatalf("generate output:\n%s", out)
		}
		return m[1]
	}
	a := gen("a", "--patients", "2000", "--seed", "9", "--id-prefix", "c1-")
	if b := gen("b", "--patients", "2000", "--seed", "9", "--id-prefix", "c1-"); b != a {
		t.Errorf("one seed gave two datasets: %s, %s", a, b)
	}
	if c := gen("c", "--patients", "2000", "--seed", "10"); c == a {
		t.Error("two seeds gave one dataset")
	}
	out, stderr, err := medx(t, "query", "--dataset", filepath.Join(dir, "a"), "SELECT COUNT(*) FROM cohort WHERE age >= 18")
	if err != nil || !tableRow(out, "2000") {
		t.Errorf("query of the generated dataset: %v\n%s%s", err, out, stderr)
	}

	// Bad input: a usage error or a clear message, and nothing written.
	for _, args := range [][]string{
		{"generate"},
		{"generate", "--out", filepath.Join(dir, "d"), "--patients", "0"},
		{"generate", "--out", filepath.Join(dir, "d"), "--ref-date", "2026-13-01"},
		{"generate", "--out", filepath.Join(dir, "d"), "stray"},
	} {
		if _, _, err := medx(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("medx %v = %v, want a usage error", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused generate left %s behind", filepath.Join(dir, "d"))
	}
	if _, _, err := medx(t, "generate", "--out", filepath.Join(dir, "a")); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("generate over a dataset = %v, want already exists", err)
	}
}
