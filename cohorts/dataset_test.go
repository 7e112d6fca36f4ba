package cohorts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/google/go-cmp/cmp"
)

func TestCategories(t *testing.T) {
	want := []string{"conditions", "demographics", "labs", "medications", "vitals"}
	if diff := cmp.Diff(want, Categories()); diff != "" {
		t.Errorf("Categories() mismatch (-want +got):\n%s", diff)
	}
	cats := map[string]string{}
	for _, c := range Columns() {
		cats[c.Name] = c.Category
	}
	wantCats := map[string]string{
		"patient_id": "", "sex": CatDemographics, "birth_year": CatDemographics, "age": CatDemographics, "vital_status": CatDemographics,
		"conditions": CatConditions, "medications": CatMedications,
		"hba1c": CatLabs, "ldl": CatLabs, "bmi": CatVitals, "sbp": CatVitals, "dbp": CatVitals,
	}
	if diff := cmp.Diff(wantCats, cats); diff != "" {
		t.Errorf("Columns() categories mismatch (-want +got):\n%s", diff)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	dir := t.TempDir()
	gen := func(name string, opts GenerateOptions) (Manifest, []byte) {
		t.Helper()
		path := filepath.Join(dir, name)
		m, err := Generate(t.Context(), path, opts)
		if err != nil {
			t.Fatalf("Generate(%s): %v", name, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return m, data
	}
	opts := GenerateOptions{Patients: 70_000, Seed: 42, RefDate: testRefDate, IDPrefix: "c1-"}
	m1, b1 := gen("a.parquet", opts)
	m2, b2 := gen("b.parquet", opts)
	if m1.ContentHash != m2.ContentHash || !bytes.Equal(b1, b2) {
		t.Errorf("same seed: content hashes %s and %s differ", m1.ContentHash, m2.ContentHash)
	}
	sum := sha256.Sum256(b1)
	if got := hex.EncodeToString(sum[:]); got != m1.ContentHash {
		t.Errorf("ContentHash = %s, sha256 of the file is %s", m1.ContentHash, got)
	}
	other := opts
	other.Seed = 43
	m3, _ := gen("c.parquet", other)
	if m3.ContentHash == m1.ContentHash {
		t.Error("different seeds give the same content hash")
	}
	if m3.SchemaHash != m1.SchemaHash {
		t.Errorf("schema hash depends on the seed: %s vs %s", m1.SchemaHash, m3.SchemaHash)
	}
	if bytes.Contains(b1, []byte("parquet-go")) {
		t.Error("file carries the library's created-by string")
	}
}

func TestGenerateManifestAndOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.parquet")
	ref := time.Date(2024, 6, 30, 15, 4, 5, 0, time.FixedZone("X", 3600))
	m, err := Generate(t.Context(), path, GenerateOptions{Patients: 1234, Seed: 1, RefDate: ref, IDPrefix: "c1-"})
	if err != nil {
		t.Fatal(err)
	}
	want := Manifest{ContentHash: m.ContentHash, SchemaHash: m.SchemaHash, Rows: 1234, RefDate: testRefDate, Path: path}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Generate manifest mismatch (-want +got):\n%s", diff)
	}
	d, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if diff := cmp.Diff(m, d.Manifest()); diff != "" {
		t.Errorf("Open manifest differs from Generate's (-generate +open):\n%s", diff)
	}
	if d.Rows() != 1234 {
		t.Errorf("Rows() = %d, want 1234", d.Rows())
	}
	ids := d.PatientIDs()
	if len(ids) != 1234 || ids[0] != "c1-000000" || ids[42] != "c1-000042" || ids[1233] != "c1-001233" {
		t.Errorf("PatientIDs() = %d ids, first %q, 42nd %q", len(ids), ids[0], ids[42])
	}
}

// TestGeneratedDistributions checks the generator's population against the
// ranges it documents, using the package's own query path.
func TestGeneratedDistributions(t *testing.T) {
	n := 60_000
	if testing.Short() {
		n = 20_000
	}
	path := filepath.Join(t.TempDir(), "d.parquet")
	if _, err := Generate(t.Context(), path, GenerateOptions{Patients: n, Seed: 3, RefDate: testRefDate}); err != nil {
		t.Fatal(err)
	}
	d, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	value := func(src string) []Value {
		t.Helper()
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
		return tbl.Rows[0].Values
	}
	share := func(where string) float64 {
		return value("SELECT COUNT(*) FROM cohort WHERE " + where)[0].Float / float64(n)
	}
	within := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.4f, want within [%g, %g]", name, got, lo, hi)
		}
	}
	within("share of women", share("sex = 'F'"), 0.49, 0.53)
	within("share aged 18-95", share("age BETWEEN 18 AND 95"), 1, 1)
	within("share aged 65+", share("age >= 65"), 0.18, 0.28)
	within("type 2 diabetes prevalence", share("HAS_CONDITION('44054006')"), 0.09, 0.13)
	old := share("age >= 65")
	within("type 2 diabetes prevalence at 65+", share("HAS_CONDITION('44054006') AND age >= 65")/old, 0.2, 0.35)
	within("hypertension prevalence", share("HAS_CONDITION('59621000')"), 0.2, 0.4)
	within("CKD prevalence", share("HAS_CONDITION('431855005')"), 0.01, 0.08)
	within("asthma prevalence", share("HAS_CONDITION('195967001')"), 0.05, 0.09)
	diabetics := share("HAS_CONDITION('44054006')")
	within("metformin among diabetics", share("HAS_CONDITION('44054006') AND HAS_MEDICATION('860975')")/diabetics, 0.7, 0.9)
	within("metformin without diabetes", share("NOT HAS_CONDITION('44054006') AND HAS_MEDICATION('860975')"), 0, 0)
	within("lisinopril without hypertension", share("NOT HAS_CONDITION('59621000') AND HAS_MEDICATION('314076')"), 0, 0)
	within("HbA1c measured among diabetics", share("HAS_CONDITION('44054006') AND hba1c IS NOT NULL")/diabetics, 0.9, 1)
	within("HbA1c measured overall", share("hba1c IS NOT NULL"), 0.3, 0.55)
	v := value("SELECT AVG(bmi), AVG(hba1c), STDDEV(hba1c) FROM cohort WHERE HAS_CONDITION('44054006')")
	within("mean BMI of diabetics", v[0].Float, 28, 34)
	within("mean HbA1c of diabetics", v[1].Float, 7.2, 7.8)
	within("sd HbA1c of diabetics", v[2].Float, 1.0, 1.5)
	v = value("SELECT AVG(bmi), AVG(hba1c), AVG(sbp) FROM cohort WHERE NOT HAS_CONDITION('44054006') AND NOT HAS_CONDITION('15777000')")
	within("mean BMI without diabetes", v[0].Float, 25, 28.5)
	within("mean HbA1c normoglycaemic", v[1].Float, 5.1, 5.5)
	// Deaths by the reference date rise with age: about 1 % at 40, 20 % at 85.
	within("deceased overall", share("vital_status = 'deceased'"), 0.02, 0.08)
	within("deceased aged 35-44", share("vital_status = 'deceased' AND age BETWEEN 35 AND 44")/share("age BETWEEN 35 AND 44"), 0.005, 0.02)
	within("deceased aged 80-89", share("vital_status = 'deceased' AND age BETWEEN 80 AND 89")/share("age BETWEEN 80 AND 89"), 0.12, 0.3)
	young := value("SELECT AVG(sbp), AVG(bmi) FROM cohort WHERE age < 35")
	older := value("SELECT AVG(sbp), AVG(bmi) FROM cohort WHERE age BETWEEN 55 AND 70")
	if older[0].Float < young[0].Float+10 || older[1].Float <= young[1].Float {
		t.Errorf("SBP/BMI do not rise with age: young %v, older %v", young, older)
	}
}

func TestGenerateRejects(t *testing.T) {
	for _, opts := range []GenerateOptions{
		{Patients: 0, RefDate: testRefDate},
		{Patients: -5, RefDate: testRefDate},
		{Patients: 10},
		{Patients: 10, RefDate: testRefDate, IDPrefix: "bad\nprefix"},
	} {
		dir := t.TempDir()
		if _, err := Generate(t.Context(), filepath.Join(dir, "d.parquet"), opts); err == nil {
			t.Errorf("Generate(%+v) succeeded", opts)
		}
		assertEmptyDir(t, dir)
	}
	// A directory that does not exist.
	if _, err := Generate(t.Context(), filepath.Join(t.TempDir(), "no", "d.parquet"), GenerateOptions{Patients: 1, RefDate: testRefDate}); err == nil {
		t.Error("Generate into a missing directory succeeded")
	}
	// A cancelled context leaves nothing behind.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Generate(ctx, filepath.Join(dir, "d.parquet"), GenerateOptions{Patients: 100_000, RefDate: testRefDate}); err == nil {
		t.Error("Generate with a cancelled context succeeded")
	}
	assertEmptyDir(t, dir)
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		t.Errorf("directory holds %d entries after a failure, want none (first %s)", len(entries), entries[0].Name())
	}
}

func TestDatasetWriterValidation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.parquet")
	w, err := CreateDataset(t.Context(), path, testRefDate)
	if err != nil {
		t.Fatal(err)
	}
	good := Patient{ID: "p1", Sex: "F", BirthYear: 1980, Age: 44, Conditions: []string{"44054006"}, HbA1c: Measured(7)}
	bad := []struct {
		name string
		edit func(p *Patient)
		want string
	}{
		{"empty id", func(p *Patient) { p.ID = "" }, "empty patient id"},
		{"sex", func(p *Patient) { p.Sex = "female" }, `sex "female"`},
		{"age vs birth year", func(p *Patient) { p.Age = 30 }, "does not match birth year"},
		{"negative age", func(p *Patient) { p.Age, p.BirthYear = -1, 2025 }, "age -1 out of range"},
		{"wildcard code", func(p *Patient) { p.Conditions = []string{"4405*"} }, `contains '*'`},
		{"empty code", func(p *Patient) { p.Medications = []string{""} }, "empty code"},
		{"NaN", func(p *Patient) { p.BMI = Measured(math.NaN()) }, "bmi is NaN"},
	}
	for _, b := range bad {
		p := good
		b.edit(&p)
		err := w.Write(t.Context(), &p)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Write(%s) error = %v, want one containing %q", b.name, err, b.want)
		}
	}
	if err := w.Write(t.Context(), &good); err != nil {
		t.Fatalf("Write(good) after refusals: %v", err)
	}
	if w.Rows() != 1 {
		t.Errorf("Rows() = %d after refusals and one good write, want 1", w.Rows())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("dataset visible at its path before Close: %v", err)
	}
	m, err := w.Close(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != 1 {
		t.Errorf("manifest rows = %d, want 1", m.Rows)
	}
	if err := w.Write(t.Context(), &good); err == nil {
		t.Error("Write after Close succeeded")
	}
	d, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if diff := cmp.Diff([]string{"p1"}, d.PatientIDs()); diff != "" {
		t.Errorf("PatientIDs() mismatch (-want +got):\n%s", diff)
	}

	// Abort leaves nothing.
	dir2 := t.TempDir()
	w, err = CreateDataset(t.Context(), filepath.Join(dir2, "x.parquet"), testRefDate)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), &good); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	assertEmptyDir(t, dir2)
	if _, err := CreateDataset(t.Context(), filepath.Join(dir2, "y.parquet"), time.Time{}); err == nil {
		t.Error("CreateDataset without a reference date succeeded")
	}
	assertEmptyDir(t, dir2)
}

// writeRawParquet writes rec with pqarrow directly, bypassing DatasetWriter.
func writeRawParquet(t *testing.T, path string, rec arrow.Record) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pqarrow.NewFileWriter(rec.Schema(), f,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
}

// patientRecord builds a one-row patient table record on schema s, letting
// edit change the row's values.
func patientRecord(s *arrow.Schema, id, sex string, vital ...string) arrow.Record {
	b := array.NewRecordBuilder(memory.DefaultAllocator, s)
	defer b.Release()
	for i, f := range s.Fields() {
		switch fb := b.Field(i).(type) {
		case *array.StringBuilder:
			switch f.Name {
			case "sex":
				fb.Append(sex)
			case "vital_status":
				fb.Append(append(vital, VitalAlive)[0])
			default:
				fb.Append(id)
			}
		case *array.Int32Builder:
			fb.Append(40)
		case *array.Float64Builder:
			fb.Append(5)
		case *array.ListBuilder:
			fb.Append(true)
		case *array.Int64Builder:
			fb.Append(40)
		}
	}
	return b.NewRecord()
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rec arrow.Record) string {
		defer rec.Release()
		p := filepath.Join(dir, name)
		writeRawParquet(t, p, rec)
		return p
	}
	good := arrowSchema(testRefDate)
	withMeta := func(keys, vals []string) *arrow.Schema {
		md := arrow.NewMetadata(keys, vals)
		return arrow.NewSchema(good.Fields(), &md)
	}
	fields := good.Fields()
	fields[fAge].Type = arrow.PrimitiveTypes.Int64
	wrongType := arrow.NewSchema(fields, ptr(good.Metadata()))
	fields = good.Fields()
	fields[fHbA1c].Metadata = arrow.NewMetadata([]string{metaCategory, metaMin, metaMax, metaDecimals}, []string{CatLabs, "0", "20", "1"})
	wrongBounds := arrow.NewSchema(fields, ptr(good.Metadata()))
	fields = good.Fields()
	fields[fSBP].Metadata = arrow.NewMetadata([]string{metaCategory, metaMin, metaMax, metaDecimals}, []string{CatLabs, "60", "260", "0"})
	wrongCategory := arrow.NewSchema(fields, ptr(good.Metadata()))

	garbage := filepath.Join(dir, "garbage.parquet")
	if err := os.WriteFile(garbage, []byte("PAR1 this is not parquet PAR1"), 0o600); err != nil {
		t.Fatal(err)
	}
	dup := filepath.Join(dir, "dup.parquet")
	w, err := CreateDataset(t.Context(), dup, testRefDate)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Write(t.Context(), &Patient{ID: "same", Sex: "M", BirthYear: 1990, Age: 34}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.parquet"), "no such file"},
		{"not parquet", garbage, "read parquet"},
		{"no metadata", write("nometa.parquet", patientRecord(arrow.NewSchema(good.Fields(), nil), "x", "F")), "not a MedX patient table"},
		{"future version", write("v2.parquet", patientRecord(withMeta([]string{metaSchemaVersion, metaRefDate}, []string{"3", "2024-01-01"}), "x", "F")), `schema version "3" is not supported`},
		{"bad ref date", write("date.parquet", patientRecord(withMeta([]string{metaSchemaVersion, metaRefDate}, []string{SchemaVersion, "01/01/2024"}), "x", "F")), "reference date"},
		{"wrong type", write("type.parquet", patientRecord(wrongType, "x", "F")), `column "age" has type int64`},
		{"wrong bounds", write("bounds.parquet", patientRecord(wrongBounds, "x", "F")), `column "hba1c" has medx.min "0", want "3"`},
		{"wrong category", write("cat.parquet", patientRecord(wrongCategory, "x", "F")), `column "sbp" has category "labs", want "vitals"`},
		{"bad sex value", write("sex.parquet", patientRecord(good, "x", "U")), `sex "U"`},
		{"bad vital status", write("vital.parquet", patientRecord(good, "x", "F", "dead")), `vital_status "dead" is not 'alive' or 'deceased'`},
		{"empty id", write("id.parquet", patientRecord(good, "", "F")), "empty patient_id"},
		{"duplicate ids", dup, `duplicate patient_id "same"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Open(t.Context(), tt.path)
			if err == nil {
				d.Close()
				t.Fatalf("Open(%s) succeeded", tt.name)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open(%s) error = %v, want one containing %q", tt.name, err, tt.want)
			}
		})
	}

	// The same record on the real schema opens: the failures above are the edits.
	d, err := Open(t.Context(), write("ok.parquet", patientRecord(good, "x", "F")))
	if err != nil {
		t.Fatalf("Open(valid raw file): %v", err)
	}
	d.Close()
}

func ptr[T any](v T) *T { return &v }

func TestCheckedAllocator(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	path := filepath.Join(t.TempDir(), "d.parquet")
	if _, err := generate(t.Context(), path, GenerateOptions{Patients: 70_000, Seed: 9, RefDate: testRefDate}, mem); err != nil {
		t.Fatal(err)
	}
	d, err := openDataset(t.Context(), path, mem)
	if err != nil {
		t.Fatal(err)
	}
	if mem.CurrentAlloc() == 0 {
		t.Fatal("the open dataset holds no memory from the checked allocator")
	}
	q, err := ParseQuery("SELECT COUNT(*), AVG(hba1c), HISTOGRAM(bmi, 10, 25, 80) FROM cohort WHERE HAS_CONDITION('44054006') GROUP BY sex")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Aggregate(t.Context(), q, AllPatients()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Match(t.Context(), q.Where()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// A failed open releases what it read.
	bad := filepath.Join(t.TempDir(), "dup.parquet")
	w, err := createDataset(t.Context(), bad, testRefDate, mem)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Write(t.Context(), &Patient{ID: "same", Sex: "F", BirthYear: 1990, Age: 34}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := openDataset(t.Context(), bad, mem); err == nil {
		t.Fatal("open of duplicate ids succeeded")
	}
	// An aborted writer releases its builders.
	w, err = createDataset(t.Context(), filepath.Join(t.TempDir(), "a.parquet"), testRefDate, mem)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), &Patient{ID: "p", Sex: "F", BirthYear: 1990, Age: 34}); err != nil {
		t.Fatal(err)
	}
	w.Abort()
}

func TestAgeAt(t *testing.T) {
	ref := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		birth string
		want  int
	}{{"1980-06-30", 44}, {"1980-07-01", 43}, {"1980-01-01", 44}, {"2024-06-30", 0}, {"2000-02-29", 24}} {
		b, _ := time.Parse("2006-01-02", tt.birth)
		if got := AgeAt(b, ref); got != tt.want {
			t.Errorf("AgeAt(%s, %s) = %d, want %d", tt.birth, ref.Format("2006-01-02"), got, tt.want)
		}
	}
}
