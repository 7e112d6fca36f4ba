package cohorts

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sharedTestdata returns the path of outside test material, skipping the test
// if it is absent (it is present on CI and development machines).
func sharedTestdata(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{"..", "..", "shared", "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s: %v", p, err)
	}
	return p
}

// row is a patient as a test compares it.
type row struct {
	ID, Sex          string
	BirthYear, Age   int
	Deceased         bool
	Conditions, Meds []string
	Measures         map[string]float64
}

// datasetRows reads a dataset back, keyed by patient id.
func datasetRows(t *testing.T, path string) map[string]row {
	t.Helper()
	d, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out := map[string]row{}
	for _, p := range refRows(t, d) {
		r := row{ID: p.id, Sex: p.sex, BirthYear: int(p.ints["birth_year"]), Age: int(p.ints["age"]),
			Deceased: p.cats["vital_status"] == VitalDeceased, Conditions: p.conditions, Meds: p.medications, Measures: map[string]float64{}}
		for name, v := range p.floats {
			if v != nil {
				r.Measures[name] = *v
			}
		}
		if _, dup := out[r.ID]; dup {
			t.Fatalf("patient %s twice", r.ID)
		}
		out[r.ID] = r
	}
	return out
}

// ageAt is the age in whole years on ref of someone born on birth, computed
// here independently of AgeAt.
func ageAt(birth, ref time.Time) int {
	age := ref.Year() - birth.Year()
	if ref.Month()*100+time.Month(ref.Day()) < birth.Month()*100+time.Month(birth.Day()) {
		age--
	}
	return age
}

// synthea is an independent reading of the Synthea bundles: each file is
// unmarshalled whole into generic maps and the resources counted directly.
type synthea struct {
	resources map[string]int                  // by resourceType
	patients  map[string]map[string]any       // Patient resources by id
	conds     map[string]map[string]time.Time // patient -> SNOMED code -> earliest onset
	meds      map[string]map[string]time.Time // patient -> RxNorm code -> earliest authoredOn
	obs       map[string][]syntheaObs         // patient -> observations of table LOINC codes
}

type syntheaObs struct {
	loinc string
	at    time.Time
	value float64
	unit  string
}

func readSynthea(t *testing.T, zipPath string) *synthea {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	s := &synthea{resources: map[string]int{}, patients: map[string]map[string]any{},
		conds: map[string]map[string]time.Time{}, meds: map[string]map[string]time.Time{}, obs: map[string][]syntheaObs{}}
	loincs := map[string]bool{"4548-4": true, "39156-5": true, "8480-6": true, "8462-4": true, "18262-6": true, "2089-1": true}
	str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
	obj := func(m map[string]any, k string) map[string]any { v, _ := m[k].(map[string]any); return v }
	arr := func(m map[string]any, k string) []any { v, _ := m[k].([]any); return v }
	when := func(v string) time.Time {
		if v == "" {
			return time.Time{}
		}
		for _, l := range []string{time.RFC3339, "2006-01-02"} {
			if x, err := time.Parse(l, v); err == nil {
				return x
			}
		}
		t.Fatalf("date %q", v)
		return time.Time{}
	}
	codes := func(concept map[string]any, system string) []string {
		var out []string
		for _, c := range arr(concept, "coding") {
			c := c.(map[string]any)
			if str(c, "system") == system {
				out = append(out, str(c, "code"))
			}
		}
		return out
	}
	keep := func(m map[string]map[string]time.Time, pid, code string, at time.Time) {
		if m[pid] == nil {
			m[pid] = map[string]time.Time{}
		}
		if prev, ok := m[pid][code]; !ok || at.Before(prev) {
			m[pid][code] = at
		}
	}
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		var bundle struct {
			Entry []struct {
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if err := json.NewDecoder(r).Decode(&bundle); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		r.Close()
		for _, e := range bundle.Entry {
			res := e.Resource
			typ := str(res, "resourceType")
			s.resources[typ]++
			pid := strings.TrimPrefix(str(obj(res, "subject"), "reference"), "urn:uuid:")
			switch typ {
			case "Patient":
				s.patients[str(res, "id")] = res
			case "Condition":
				for _, c := range codes(obj(res, "code"), "http://snomed.info/sct") {
					keep(s.conds, pid, c, when(str(res, "onsetDateTime")))
				}
			case "MedicationRequest":
				for _, c := range codes(obj(res, "medicationCodeableConcept"), "http://www.nlm.nih.gov/research/umls/rxnorm") {
					keep(s.meds, pid, c, when(str(res, "authoredOn")))
				}
			case "Observation":
				at := when(str(res, "effectiveDateTime"))
				add := func(concept, q map[string]any) {
					for _, c := range codes(concept, "http://loinc.org") {
						if loincs[c] && q != nil {
							s.obs[pid] = append(s.obs[pid], syntheaObs{c, at, q["value"].(float64), str(q, "unit")})
						}
					}
				}
				add(obj(res, "code"), obj(res, "valueQuantity"))
				for _, c := range arr(res, "component") {
					c := c.(map[string]any)
					add(obj(c, "code"), obj(c, "valueQuantity"))
				}
			}
		}
	}
	return s
}

// expected derives the patient table at ref from the independent reading.
func (s *synthea) expected(t *testing.T, ref time.Time) map[string]row {
	t.Helper()
	column := map[string]string{"4548-4": "hba1c", "39156-5": "bmi", "8480-6": "sbp", "8462-4": "dbp", "18262-6": "ldl", "2089-1": "ldl"}
	unit := map[string]string{"hba1c": "%", "bmi": "kg/m2", "sbp": "mm[Hg]", "dbp": "mm[Hg]", "ldl": "mg/dL"}
	endOfRef := ref.AddDate(0, 0, 1)
	before := func(at time.Time) bool {
		y, m, d := at.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Before(endOfRef)
	}
	out := map[string]row{}
	for id, p := range s.patients {
		birth, err := time.Parse("2006-01-02", p["birthDate"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if birth.After(ref) {
			continue
		}
		r := row{ID: id, Sex: map[string]string{"female": "F", "male": "M"}[p["gender"].(string)],
			BirthYear: birth.Year(), Age: ageAt(birth, ref), Measures: map[string]float64{}}
		if d, ok := p["deceasedDateTime"].(string); ok {
			died, err := time.Parse(time.RFC3339, d)
			if err != nil {
				t.Fatal(err)
			}
			r.Deceased = before(died)
		}
		for c, at := range s.conds[id] {
			if before(at) {
				r.Conditions = append(r.Conditions, c)
			}
		}
		for c, at := range s.meds[id] {
			if before(at) {
				r.Meds = append(r.Meds, c)
			}
		}
		slices.Sort(r.Conditions)
		slices.Sort(r.Meds)
		latest := map[string]time.Time{}
		for _, o := range s.obs[id] {
			col := column[o.loinc]
			if o.unit != unit[col] {
				t.Fatalf("patient %s: %s in %q", id, o.loinc, o.unit)
			}
			if before(o.at) && !o.at.Before(latest[col]) {
				latest[col] = o.at
				r.Measures[col] = o.value
			}
		}
		out[id] = r
	}
	return out
}

func TestImportFHIRSynthea(t *testing.T) {
	zipPath := sharedTestdata(t, "synthea-fhir-r4", "synthfhir.zip")
	s := readSynthea(t, zipPath)

	// The independent reading agrees with what the test data's README
	// says the archive holds.
	var female, male, deceased int
	for _, p := range s.patients {
		switch p["gender"] {
		case "female":
			female++
		case "male":
			male++
		}
		if _, ok := p["deceasedDateTime"]; ok {
			deceased++
		}
	}
	withCond := func(code string) int {
		n := 0
		for _, cs := range s.conds {
			if _, ok := cs[code]; ok {
				n++
			}
		}
		return n
	}
	withObs := func(loinc string) int {
		n := 0
		for _, os := range s.obs {
			if slices.ContainsFunc(os, func(o syntheaObs) bool { return o.loinc == loinc }) {
				n++
			}
		}
		return n
	}
	readme := map[string]int{
		"patients": 30, "female": 21, "male": 9, "deceased": 5, "observations": 6557, "conditions": 247, "medication requests": 391,
		"type 2 diabetes": 4, "hypertension": 11, "prediabetes": 8, "with systolic BP": 30, "with BMI": 29, "with HbA1c": 11,
	}
	got := map[string]int{
		"patients": len(s.patients), "female": female, "male": male, "deceased": deceased,
		"observations": s.resources["Observation"], "conditions": s.resources["Condition"], "medication requests": s.resources["MedicationRequest"],
		"type 2 diabetes": withCond(CodeType2Diabetes), "hypertension": withCond(CodeHypertension), "prediabetes": withCond(CodePrediabetes),
		"with systolic BP": withObs("8480-6"), "with BMI": withObs("39156-5"), "with HbA1c": withObs("4548-4"),
	}
	if diff := cmp.Diff(readme, got); diff != "" {
		t.Fatalf("independent reading of %s differs from its README (-readme +got):\n%s", zipPath, diff)
	}

	for _, tt := range []struct {
		name string
		ref  time.Time
	}{
		// The export date: every record counts.
		{"at export", time.Date(2019, 9, 1, 0, 0, 0, 0, time.UTC)},
		// Earlier: later records, births and deaths do not count yet.
		{"in 2012", time.Date(2012, 3, 15, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "patients.parquet")
			res, err := ImportFHIR(t.Context(), zipPath, out, ImportOptions{RefDate: tt.ref})
			if err != nil {
				t.Fatal(err)
			}
			want := s.expected(t, tt.ref)
			if res.Manifest.Rows != int64(len(want)) || res.Stats.Patients != int64(len(want)) {
				t.Errorf("imported %d rows (stats %d), want %d", res.Manifest.Rows, res.Stats.Patients, len(want))
			}
			if res.Stats.Files != 30 || res.Stats.Bytes != 36019316 {
				t.Errorf("read %d files, %d bytes; want 30 files, 36019316 bytes", res.Stats.Files, res.Stats.Bytes)
			}
			if diff := cmp.Diff(want, datasetRows(t, out)); diff != "" {
				t.Errorf("imported patients differ from the independent reading (-want +got):\n%s", diff)
			}
			if born := 30 - len(want); int64(born) != res.Stats.Skipped[SkipBornAfterRef] {
				t.Errorf("skipped %d as born after the reference date, want %d", res.Stats.Skipped[SkipBornAfterRef], born)
			}
		})
	}

	// The acceptance: 21 women and 9 men.
	out := filepath.Join(t.TempDir(), "patients.parquet")
	if _, err := ImportFHIR(t.Context(), zipPath, out, ImportOptions{RefDate: time.Date(2019, 9, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	tbl := queryTable(t, out, "SELECT COUNT(*) FROM cohort GROUP BY sex")
	if got := tableText(tbl); got != "F 21|M 9" {
		t.Errorf("COUNT(*) GROUP BY sex = %s, want F 21|M 9", got)
	}
}

// queryTable evaluates src over the dataset at path without disclosure control.
func queryTable(t *testing.T, path, src string) *Table {
	t.Helper()
	d, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q, err := ParseQuery(src)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := d.Aggregate(t.Context(), q, AllPatients())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := q.Finalize(vec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// tableText renders a table's rows compactly: "F 21|M 9".
func tableText(tbl *Table) string {
	var rows []string
	for _, r := range tbl.Rows {
		parts := append([]string{}, r.Group...)
		for _, v := range r.Values {
			parts = append(parts, v.text())
		}
		rows = append(rows, strings.Join(parts, " "))
	}
	return strings.Join(rows, "|")
}

// writeFiles writes name -> content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeZip writes name -> content into a new zip archive at path.
func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	// Written in reverse order: the importer must not depend on archive order.
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	})
	slices.Reverse(names)
	for _, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// fhirFiles is a small FHIR input in both forms the importer reads: a
// Bundle file and an NDJSON file whose resources come before the Patients
// they are about.
var fhirFiles = map[string]string{
	"a-bundle.json": `{
  "resourceType": "Bundle",
  "type": "collection",
  "entry": [
    {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-07-01"}},
    {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}, {"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]},
      "clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": "2010-01-01T10:00:00+01:00"}},
    {"resource": {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p1"},
      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]}}},
    {"resource": {"resourceType": "Condition", "id": "c3", "subject": {"reference": "urn:uuid:p1"},
      "verificationStatus": {"coding": [{"code": "refuted"}]},
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195967001"}]}}},
    {"resource": {"resourceType": "Condition", "id": "c4", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "431855005"}]}, "onsetDateTime": "2024-07-01"}},
    {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": "2020-01-01T08:00:00Z",
      "valueQuantity": {"value": 53, "unit": "mmol/mol", "system": "http://unitsofmeasure.org", "code": "mmol/mol"}}},
    {"resource": {"resourceType": "Observation", "id": "o2", "status": "final", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": "2019-01-01",
      "valueQuantity": {"value": 9.9, "unit": "%"}}},
    {"resource": {"resourceType": "Observation", "id": "o3", "status": "final", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "effectiveDateTime": "2021-05-05T10:00:00-04:00",
      "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 141, "unit": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 12, "unit": "kPa"}}]}},
    {"resource": {"resourceType": "Observation", "id": "o4", "status": "entered-in-error", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "effectiveDateTime": "2022-01-01",
      "valueQuantity": {"value": 200, "unit": "mmHg"}}},
    {"resource": {"resourceType": "Observation", "id": "o5", "status": "final", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "2089-1"}]}, "effectiveDateTime": "2023-01-01",
      "valueQuantity": {"value": 3, "unit": "mmol/L"}}},
    {"resource": {"resourceType": "Observation", "id": "o6", "status": "final", "subject": {"reference": "urn:uuid:p1"},
      "code": {"coding": [{"system": "http://loinc.org", "code": "2089-1"}]}, "effectiveDateTime": "2024-12-01",
      "valueQuantity": {"value": 5, "unit": "mmol/L"}}},
    {"fullUrl": "urn:uuid:med-1", "resource": {"resourceType": "Medication", "id": "med-1",
      "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]}}},
    {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "subject": {"reference": "urn:uuid:p1"},
      "medicationReference": {"reference": "urn:uuid:med-1"}, "authoredOn": "2015-01-01"}},
    {"resource": {"resourceType": "MedicationRequest", "id": "m2", "status": "cancelled", "subject": {"reference": "urn:uuid:p1"},
      "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "106892"}]}}},
    {"resource": {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "urn:uuid:p1"}}}
  ]
}
`,
	"b-bulk.ndjson": `{"resourceType": "Observation", "id": "o7", "status": "final", "subject": {"reference": "Patient/p2"}, "code": {"coding": [{"system": "http://loinc.org", "code": "39156-5"}]}, "effectiveDateTime": "2020-02-02", "valueQuantity": {"value": 31.25, "unit": "kg/m2"}}
{"resourceType": "MedicationRequest", "id": "m3", "status": "stopped", "subject": {"reference": "Patient/p2"}, "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314076"}]}, "authoredOn": "2001-01-01"}
{"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1950-12-31", "deceasedDateTime": "2023-03-01T00:00:00Z"}
{"resourceType": "Patient", "id": "p3", "gender": "unknown", "birthDate": "1970-01-01"}
{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "p4", "gender": "female", "birthDate": "2025-01-01"}}, {"resource": {"resourceType": "Patient", "id": "p5", "gender": "female", "birthDate": "1990", "deceasedBoolean": true}}]}
`,
}

func TestImportFHIRForms(t *testing.T) {
	ref := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	want := map[string]row{
		// c3 refuted, c4 and o6 after the reference date, o4 entered in error,
		// m2 cancelled; 53 mmol/mol is 6.99 %, 12 kPa 90 mmHg, 3 mmol/L LDL
		// 116 mg/dL; the Medication reference resolves to metformin.
		"p1": {ID: "p1", Sex: "F", BirthYear: 1960, Age: 63, Conditions: []string{"44054006", "I10"}, Meds: []string{"860975"},
			Measures: map[string]float64{"hba1c": 0.09148*53 + 2.152, "sbp": 141, "dbp": 12 * 7.50062, "ldl": 3 * 38.67}},
		// Read before its Patient; died before the reference date.
		"p2": {ID: "p2", Sex: "M", BirthYear: 1950, Age: 73, Deceased: true, Meds: []string{"314076"}, Measures: map[string]float64{"bmi": 31.25}},
		// A year alone stands for its first day.
		"p5": {ID: "p5", Sex: "F", BirthYear: 1990, Age: 34, Deceased: true, Measures: map[string]float64{}},
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	writeFiles(t, in, fhirFiles)
	writeFiles(t, in, map[string]string{"notes.txt": "not FHIR", "__MACOSX/._a-bundle.json": "junk", ".hidden.json": "junk"})
	zipPath := filepath.Join(dir, "in.zip")
	writeZip(t, zipPath, fhirFiles)

	var hashes []string
	for _, input := range []string{in, zipPath} {
		out := filepath.Join(dir, filepath.Base(input)+".parquet")
		var calls []int64
		res, err := ImportFHIR(t.Context(), input, out, ImportOptions{RefDate: ref, Progress: func(done, total int64) {
			calls = append(calls, done)
			if total >= 0 && done > total {
				t.Errorf("progress %d of %d", done, total)
			}
		}})
		if err != nil {
			t.Fatalf("ImportFHIR(%s): %v", input, err)
		}
		if diff := cmp.Diff(want, datasetRows(t, out)); diff != "" {
			t.Errorf("ImportFHIR(%s) mismatch (-want +got):\n%s", input, diff)
		}
		wantSkipped := map[string]int64{
			SkipSexUnknown: 1, SkipBornAfterRef: 1, SkipStatus: 3, SkipAfterRef: 2, SkipUnusedResource: 1,
		}
		if diff := cmp.Diff(wantSkipped, res.Stats.Skipped); diff != "" {
			t.Errorf("skipped (-want +got):\n%s", diff)
		}
		if res.Stats.Files != 2 || res.Stats.Records != 21 {
			t.Errorf("read %d files, %d records; want 2, 21", res.Stats.Files, res.Stats.Records)
		}
		total := int64(len(fhirFiles["a-bundle.json"]) + len(fhirFiles["b-bulk.ndjson"]))
		if len(calls) == 0 || calls[len(calls)-1] != total || !slices.IsSorted(calls) {
			t.Errorf("progress calls %v, want non-decreasing up to %d", calls, total)
		}
		hashes = append(hashes, res.Manifest.ContentHash)
	}
	if hashes[0] != hashes[1] {
		t.Errorf("a directory and a zip of the same files give different datasets: %s, %s", hashes[0], hashes[1])
	}

	// A lone resource file is a patient too.
	lone := filepath.Join(dir, "lone.json")
	writeFiles(t, dir, map[string]string{"lone.json": `{"resourceType": "Patient", "id": "solo", "gender": "male", "birthDate": "2000-02-29"}`})
	out := filepath.Join(dir, "lone.parquet")
	if _, err := ImportFHIR(t.Context(), lone, out, ImportOptions{RefDate: ref}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]row{"solo": {ID: "solo", Sex: "M", BirthYear: 2000, Age: 24, Measures: map[string]float64{}}}, datasetRows(t, out)); diff != "" {
		t.Errorf("lone Patient (-want +got):\n%s", diff)
	}
}

func TestImportFHIRErrors(t *testing.T) {
	patient := `{"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-07-01"}`
	bundle := func(entries ...string) string {
		return "{\n  \"resourceType\": \"Bundle\",\n  \"entry\": [\n    " + strings.Join(entries, ",\n    ") + "\n  ]\n}\n"
	}
	entry := func(res string) string { return `{"resource": ` + res + `}` }
	obs := func(value, unit string) string {
		return `{"resourceType": "Observation", "id": "o1", "subject": {"reference": "urn:uuid:p1"}, ` +
			`"code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": "2020-01-01", ` +
			`"valueQuantity": {"value": ` + value + `, "unit": "` + unit + `"}}`
	}
	tests := []struct {
		name  string
		files map[string]string
		file  string // the file the error names
		line  int    // and its position, 0 if none
		col   int
		want  string
	}{
		{"truncated", map[string]string{"b.json": bundle(entry(patient))[:60]},
			"b.json", 4, 18, "truncated JSON: unexpected end of input"},
		{"trailing comma", map[string]string{"b.json": bundle(entry(patient), `{"resource": {"resourceType": "Patient", "id": "p2",}}`)},
			"b.json", 5, 57, "malformed JSON: invalid character '}'"},
		{"bad literal in a skipped value", map[string]string{"b.json": bundle(`{"fullUrl": "x", "request": {"method": tru}}`)},
			"b.json", 4, 47, "malformed JSON: invalid character '}' in literal true"},
		{"gender is a number", map[string]string{"b.json": bundle(entry(`{"resourceType": "Patient", "id": "p1", "gender": 5}`))},
			"b.json", 4, 68, "wrong type: gender is a JSON number, want a string"},
		{"value is a string", map[string]string{"b.json": bundle(entry(patient), entry(obs(`"7.1"`, "%")))},
			"b.json", 5, 237, "wrong type: valueQuantity.value is a JSON string, want a number"},
		{"unknown unit", map[string]string{"b.json": bundle(entry(patient), entry(obs("7.1", "g/dL")))},
			"b.json", 5, 18, `Observation "o1": unknown unit "g/dL" for hba1c (LOINC 4548-4): want %, mmol/mol`},
		{"no unit", map[string]string{"b.json": bundle(entry(patient), entry(obs("7.1", "")))},
			"b.json", 5, 18, `Observation "o1": hba1c (LOINC 4548-4) has no unit`},
		{"duplicate patient", map[string]string{"a.json": bundle(entry(patient)), "b.ndjson": "\n\n  " + patient + "\n"},
			"b.ndjson", 3, 3, `duplicate Patient "p1" (first at `},
		{"reference to a missing patient", map[string]string{"b.json": bundle(entry(patient), entry(strings.Replace(obs("7", "%"), "urn:uuid:p1", "urn:uuid:p9", 1)))},
			"b.json", 5, 18, `reference to Patient "p9", which the input does not contain`},
		{"subject is not a patient", map[string]string{"b.json": bundle(entry(strings.Replace(obs("7", "%"), "urn:uuid:p1", "Group/g1", 1)))},
			"b.json", 4, 18, `subject "Group/g1" is not a Patient reference`},
		{"top level array", map[string]string{"b.json": "[1, 2]"},
			"b.json", 1, 1, "expected a JSON object (a FHIR Bundle or resource)"},
		{"no resourceType", map[string]string{"b.json": bundle(entry(`{"id": "x"}`))},
			"b.json", 4, 18, "resource without a resourceType"},
		{"not a bundle with entries", map[string]string{"b.json": `{"resourceType": "List", "entry": []}`},
			"b.json", 1, 1, `resource of type "List" has entries: only a Bundle does`},
		{"data after the bundle", map[string]string{"b.json": bundle(entry(patient)) + "{}"},
			"b.json", 7, 1, `unexpected "{" after the Bundle`},
		{"ndjson line not an object", map[string]string{"b.ndjson": patient + "\n42\n"},
			"b.ndjson", 2, 1, "expected a JSON object"},
		{"bad date", map[string]string{"b.json": bundle(entry(`{"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "12/01/1970"}`))},
			"b.json", 4, 18, `Patient "p1": birthDate: "12/01/1970" is not a FHIR date`},
		{"bad gender", map[string]string{"b.json": bundle(entry(`{"resourceType": "Patient", "id": "p1", "gender": "f", "birthDate": "1970-01-01"}`))},
			"b.json", 4, 18, `gender "f" is not a FHIR administrative gender`},
		{"bad code", map[string]string{"b.json": bundle(entry(patient), entry(`{"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:p1"}, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "4405 4006"}]}}`))},
			"b.json", 5, 18, `code "4405 4006" contains ' '`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in")
			writeFiles(t, in, tt.files)
			outDir := filepath.Join(dir, "out")
			if err := os.Mkdir(outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := ImportFHIR(t.Context(), in, filepath.Join(outDir, "patients.parquet"), ImportOptions{RefDate: testRefDate})
			if err == nil {
				t.Fatal("ImportFHIR succeeded, want an error")
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("ImportFHIR error %T %v, want an *InputError", err, err)
			}
			if filepath.Base(ie.File) != tt.file || ie.Line != tt.line || ie.Col != tt.col || !strings.Contains(ie.Msg, tt.want) {
				t.Errorf("ImportFHIR error\n got %s (file %s, %d:%d)\nwant %s:%d:%d: ...%s...", err, filepath.Base(ie.File), ie.Line, ie.Col, tt.file, tt.line, tt.col, tt.want)
			}
			assertEmptyDir(t, outDir)
		})
	}

	// A real Synthea bundle cut short.
	zipPath := sharedTestdata(t, "synthea-fhir-r4", "synthfhir.zip")
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	r, err := zr.File[2].Open()
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	cut := data[:len(data)*3/5]
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cut.json": string(cut)})
	_, err = ImportFHIR(t.Context(), filepath.Join(dir, "cut.json"), filepath.Join(dir, "out.parquet"), ImportOptions{RefDate: testRefDate})
	var ie *InputError
	wantLine := 1 + strings.Count(string(cut), "\n")
	if !errors.As(err, &ie) || ie.Line != wantLine || !strings.Contains(ie.Msg, "truncated JSON") {
		t.Errorf("ImportFHIR(truncated Synthea bundle) = %v, want a truncation error at line %d", err, wantLine)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.parquet")); !os.IsNotExist(err) {
		t.Errorf("a failed import left its output: %v", err)
	}
}

// peakHeap samples the heap's object bytes until stop is closed and returns
// the largest value seen.
func peakHeap(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// writeBigBundle writes a Bundle of 40 patients and as many blood pressure
// Observations as make it about size bytes.
func writeBigBundle(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString(`{"resourceType": "Bundle", "type": "collection", "entry": [`)
	const patients = 40
	for p := range patients {
		fmt.Fprintf(w, `{"resource": {"resourceType": "Patient", "id": "p%d", "gender": "female", "birthDate": "1960-01-01"}},`, p)
	}
	for i, n := 0, 0; n < size; i++ {
		sep := ","
		if i == 0 {
			sep = ""
		}
		k, _ := fmt.Fprintf(w, `%s{"fullUrl": "urn:uuid:o%d", "resource": {"resourceType": "Observation", "id": "o%d", "status": "final", "subject": {"reference": "urn:uuid:p%d"}, "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]}, "effectiveDateTime": "2001-01-01T00:00:00Z", "issued": "2001-01-01T00:00:00Z", "valueQuantity": {"value": %d, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}}`,
			sep, i, i, i%patients, 100+i%7)
		n += k
	}
	w.WriteString("]}\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestImportFHIRMemoryBounded imports a small and an eight times larger
// bundle: the peak heap must not grow with the input, as it would if the
// importer held its input (or anything per resource) in memory.
func TestImportFHIRMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 64 MiB bundle")
	}
	// Collect often so that the sampled heap tracks live data rather than
	// the GC's pacing, which varies with the machine's load.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	dir := t.TempDir()
	var peaks []uint64
	for _, size := range []int{8 << 20, 64 << 20} {
		path := filepath.Join(dir, "big.json")
		writeBigBundle(t, path, size)
		runtime.GC()
		stop := make(chan struct{})
		peak := peakHeap(stop)
		res, err := ImportFHIR(t.Context(), path, filepath.Join(dir, "out.parquet"), ImportOptions{RefDate: testRefDate})
		close(stop)
		if err != nil {
			t.Fatal(err)
		}
		if res.Manifest.Rows != 40 {
			t.Errorf("imported %d patients, want 40", res.Manifest.Rows)
		}
		peaks = append(peaks, <-peak)
		t.Logf("%d MiB of JSON: peak heap %.1f MiB", res.Stats.Bytes>>20, float64(peaks[len(peaks)-1])/(1<<20))
	}
	// Holding the input, or anything per resource, would grow the peak by
	// at least the 56 MiB of extra input; allow half of that for noise.
	if growth := int64(peaks[1]) - int64(peaks[0]); growth > 28<<20 {
		t.Errorf("peak heap grew by %d MiB for 56 MiB more input, want under 28 MiB", growth>>20)
	}
}

// BenchmarkImportFHIR measures importing the 30 Synthea bundles (36 MB of
// JSON, zipped): MB/s of bundle JSON and the peak heap (sampled while the
// imports run).
func BenchmarkImportFHIR(b *testing.B) {
	zipPath := sharedTestdata(b, "synthea-fhir-r4", "synthfhir.zip")
	out := filepath.Join(b.TempDir(), "patients.parquet")
	// One import first: its byte count (the bundles' JSON, unzipped) makes
	// MB/s, and the zip's pages are in the page cache for every iteration.
	res, err := ImportFHIR(b.Context(), zipPath, out, ImportOptions{RefDate: testRefDate})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(res.Stats.Bytes)
	runtime.GC()
	stop := make(chan struct{})
	peak := peakHeap(stop)
	for b.Loop() {
		if _, err := ImportFHIR(b.Context(), zipPath, out, ImportOptions{RefDate: testRefDate}); err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	b.ReportMetric(float64(<-peak)/(1<<20), "peak-heap-MiB")
}

func TestImportCancelledAndOptions(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	writeFiles(t, in, fhirFiles)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	out := filepath.Join(dir, "out", "patients.parquet")
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := ParseCSVMapping("m.json", []byte(`{"fields": {"id": {"column": "id"}, "sex": {"column": "sex"}, "birth_year": {"column": "yob"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"in.csv": "id,sex,yob\na,F,1970\n"})
	imports := map[string]func(ctx context.Context, opts ImportOptions) error{
		"fhir": func(ctx context.Context, opts ImportOptions) error {
			_, err := ImportFHIR(ctx, in, out, opts)
			return err
		},
		"omop": func(ctx context.Context, opts ImportOptions) error {
			_, err := ImportOMOP(ctx, in, out, opts)
			return err
		},
		"csv": func(ctx context.Context, opts ImportOptions) error {
			_, err := ImportCSV(ctx, filepath.Join(dir, "in.csv"), m, out, opts)
			return err
		},
	}
	for name, imp := range imports {
		if err := imp(ctx, ImportOptions{RefDate: testRefDate}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", name, err)
		}
		if err := imp(t.Context(), ImportOptions{}); err == nil || !strings.Contains(err.Error(), "reference date is required") {
			t.Errorf("%s without a reference date = %v", name, err)
		}
		assertEmptyDir(t, filepath.Dir(out))
	}
	if _, err := ImportCSV(t.Context(), filepath.Join(dir, "in.csv"), &CSVMapping{}, out, ImportOptions{RefDate: testRefDate}); err == nil {
		t.Error("ImportCSV with an unvalidated mapping succeeded")
	}
	if _, err := ImportFHIR(t.Context(), filepath.Join(dir, "nope"), out, ImportOptions{RefDate: testRefDate}); err == nil {
		t.Error("ImportFHIR of a missing input succeeded")
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportFHIR(t.Context(), empty, out, ImportOptions{RefDate: testRefDate}); err == nil || !strings.Contains(err.Error(), "no .json, .ndjson, .jsonl files found") {
		t.Errorf("ImportFHIR of an empty directory = %v", err)
	}
	assertEmptyDir(t, filepath.Dir(out))
}
