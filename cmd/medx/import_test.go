package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sharedData returns the path of outside test material, skipping the test
// if it is absent.
func sharedData(t *testing.T, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "..", "..", "shared", "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s: %v", p, err)
	}
	return p
}

// medx runs the command line and returns stdout, stderr and the error.
func medx(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, func(string) string { return "" }, &out, &errb)
	return out.String(), errb.String(), err
}

// tableRow finds a row of a printed table: its cells separated by spaces.
func tableRow(out string, cells ...string) bool {
	var quoted []string
	for _, c := range cells {
		quoted = append(quoted, regexp.QuoteMeta(c))
	}
	return regexp.MustCompile(`(?m)^` + strings.Join(quoted, `\s+`) + `\s*$`).MatchString(out)
}

func TestImportAndQueryCommands(t *testing.T) {
	synthea := sharedData(t, "synthea-fhir-r4", "synthfhir.zip")
	dir := filepath.Join(t.TempDir(), "site")

	// The acceptance: import the Synthea bundles, then count by sex.
	out, stderr, err := medx(t, "import", "fhir", synthea, "--out", dir)
	if err != nil {
		t.Fatalf("medx import fhir: %v\n%s", err, stderr)
	}
	if stderr != "" {
		t.Errorf("import wrote to stderr (no progress bar off a terminal): %q", stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "patients.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	for _, want := range []string{
		"imported 30 patients from " + synthea, "rows          30", "content hash  " + hex.EncodeToString(sum[:]),
		"ref date      " + defaultRefDate, "30 files, 36.0 MB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	out, stderr, err = medx(t, "query", "--dataset", dir, "SELECT COUNT(*) FROM cohort GROUP BY sex")
	if err != nil {
		t.Fatalf("medx query: %v\n%s", err, stderr)
	}
	if !tableRow(out, "sex", "count") || !tableRow(out, "F", "21") || !tableRow(out, "M", "9") {
		t.Errorf("query output lacks F 21 and M 9:\n%s", out)
	}

	// More of the language, flags after the query, the file itself as --dataset.
	out, stderr, err = medx(t, "query", "SELECT COUNT(*) AS n, AVG(sbp) FROM cohort WHERE HAS_CONDITION('59621000') GROUP BY vital_status",
		"--dataset", filepath.Join(dir, "patients.parquet"))
	if err != nil {
		t.Fatalf("medx query: %v\n%s", err, stderr)
	}
	if !tableRow(out, "vital_status", "n", "avg(sbp)") || !strings.Contains(out, "30 patients in") {
		t.Errorf("query output:\n%s", out)
	}

	// A refused query says why and where.
	_, _, err = medx(t, "query", "--dataset", dir, "SELECT hba1c FROM cohort")
	if err == nil || !strings.Contains(err.Error(), "1:8: expected an aggregate") {
		t.Errorf("medx query (raw column) = %v, want the parser's refusal at 1:8", err)
	}

	// OMOP, with the data's own export date and flags before the input.
	omop := sharedData(t, "omop-synthea27nj", "Synthea27NjParquet_5.4.zip")
	dir2 := filepath.Join(t.TempDir(), "omop")
	out, stderr, err = medx(t, "import", "omop", "--ref-date", "2022-10-10", "--out", dir2, omop)
	if err != nil {
		t.Fatalf("medx import omop: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "imported 28 patients") || strings.Contains(out, "note: the data states") {
		t.Errorf("import omop output:\n%s", out)
	}
	// Born 1938 (2), 1953 (2), 1964, 1967, 1968, 1970 (2), 1971: ten are 50
	// or older on 2022-10-10.
	out, _, err = medx(t, "query", "--dataset", dir2, "SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(50)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]string{{"0-49", "18"}, {"50-99", "10"}, {"100+", "0"}} {
		if !tableRow(out, r...) {
			t.Errorf("query output lacks %v:\n%s", r, out)
		}
	}

	// CSV with a mapping file.
	csvDir := t.TempDir()
	mapping := filepath.Join(csvDir, "map.json")
	input := filepath.Join(csvDir, "in.csv")
	write(t, mapping, `{"fields": {"id": {"column": "id"}, "sex": {"column": "sex"}, "birth_year": {"column": "yob"}, "hba1c": {"column": "a1c", "unit": "%"}}}`)
	write(t, input, "id,sex,yob,a1c\na,F,1970,7.5\nb,M,1980,\nc,F,1990,6.5\n")
	dir3 := filepath.Join(csvDir, "out")
	if out, stderr, err = medx(t, "import", "csv", input, "--mapping", mapping, "--out", dir3, "--ref-date", "2024-06-30"); err != nil {
		t.Fatalf("medx import csv: %v\n%s", err, stderr)
	}
	out, _, err = medx(t, "query", "--dataset", dir3, "SELECT COUNT(*), AVG(hba1c), VARIANCE(hba1c) FROM cohort WHERE age IN (34, 54)")
	if err != nil {
		t.Fatal(err)
	}
	if !tableRow(out, "2", "7", "0.5000") {
		t.Errorf("query over the CSV import:\n%s", out)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportCommandRefusesBadInput(t *testing.T) {
	synthea := sharedData(t, "synthea-fhir-r4", "synthfhir.zip")
	in := t.TempDir()
	truncated := filepath.Join(in, "truncated.json")
	write(t, truncated, `{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "gender": "fem`)
	badUnit := filepath.Join(in, "unit.ndjson")
	write(t, badUnit, `{"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-01-01"}
{"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}, "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}]}, "effectiveDateTime": "2020-01-01", "valueQuantity": {"value": 31, "unit": "lb/in2"}}
`)
	dup := filepath.Join(in, "dup.ndjson")
	write(t, dup, `{"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-01-01"}
{"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1961-01-01"}
`)
	mapping := filepath.Join(in, "map.json")
	write(t, mapping, `{"fields": {"id": {"column": "id"}, "sex": {"column": "sex"}, "birth_year": {"column": "yob"}}`)
	csvIn := filepath.Join(in, "in.csv")
	write(t, csvIn, "id,sex,yob\na,F,1970\n")

	tests := []struct {
		name string
		args []string // DIR stands for the output directory
		want string
	}{
		{"no format", []string{"import"}, "usage"},
		{"unknown format", []string{"import", "hl7v2", synthea, "--out", "DIR"}, `unknown import format "hl7v2"`},
		{"no out", []string{"import", "fhir", synthea}, "--out DIR is required"},
		{"no input", []string{"import", "fhir", "--out", "DIR"}, "want one INPUT, got 0"},
		{"two inputs", []string{"import", "fhir", synthea, synthea, "--out", "DIR"}, "want one INPUT, got 2"},
		{"bad ref date", []string{"import", "fhir", synthea, "--out", "DIR", "--ref-date", "01/01/2020"}, `--ref-date "01/01/2020": want YYYY-MM-DD`},
		{"missing input", []string{"import", "fhir", filepath.Join(in, "nope.zip"), "--out", "DIR"}, "no such file"},
		{"csv without mapping", []string{"import", "csv", csvIn, "--out", "DIR"}, "import csv needs --mapping FILE"},
		{"mapping for fhir", []string{"import", "fhir", synthea, "--mapping", mapping, "--out", "DIR"}, "--mapping is for csv imports only"},
		{"truncated mapping", []string{"import", "csv", csvIn, "--mapping", mapping, "--out", "DIR"}, "map.json:1:95: truncated JSON"},
		{"truncated JSON", []string{"import", "fhir", truncated, "--out", "DIR"}, "truncated.json:1:105: truncated JSON: unexpected end of input"},
		{"unknown unit", []string{"import", "fhir", badUnit, "--out", "DIR"}, `unit.ndjson:2:1: Observation "o1": unknown unit "lb/in2" for bmi`},
		{"duplicate patient", []string{"import", "fhir", dup, "--out", "DIR"}, `dup.ndjson:2:1: duplicate Patient "p1" (first at `},
		{"OMOP input that is FHIR", []string{"import", "omop", synthea, "--out", "DIR"}, "no .parquet files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "site")
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "DIR", dir)
			}
			_, _, err := medx(t, args...)
			if err == nil {
				t.Fatalf("medx %q succeeded, want an error", args)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("medx %q error = %v, want one containing %q", args, err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "patients.parquet")); !os.IsNotExist(err) {
				t.Errorf("a failed import left %s/patients.parquet (%v)", dir, err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a failed import left the directory it created (%v)", err)
			}
		})
	}

	// An existing dataset is never replaced.
	dir := t.TempDir()
	existing := filepath.Join(dir, "patients.parquet")
	write(t, existing, "keep me")
	if _, _, err := medx(t, "import", "fhir", synthea, "--out", dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("import over an existing dataset = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("the existing dataset changed: %q", b)
	}

	// Queries that cannot run.
	for _, args := range [][]string{
		{"query", "SELECT COUNT(*) FROM cohort"},                                   // no dataset
		{"query", "--dataset", dir},                                                // no query
		{"query", "--dataset", t.TempDir(), "SELECT COUNT(*) FROM cohort"},         // no dataset file there
		{"query", "--dataset", existing, "SELECT COUNT(*) FROM cohort"},            // not Parquet
		{"query", "--dataset", dir, "SELECT COUNT(*) FROM cohort GROUP BY age"},    // refused by the language
		{"query", "--dataset", dir, "SELECT COUNT(*) FROM cohort", "--frobnicate"}, // unknown flag
	} {
		if _, _, err := medx(t, args...); err == nil {
			t.Errorf("medx %q succeeded, want an error", args)
		}
	}
}
