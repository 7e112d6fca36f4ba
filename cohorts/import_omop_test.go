package cohorts

import (
	"archive/zip"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/google/go-cmp/cmp"
)

// unzipTo extracts an archive into dir, as a custodian would.
func unzipTo(t *testing.T, zipPath, dir string) {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if f.FileInfo().IsDir() {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readParquetRows reads a whole table with pqarrow and returns its rows as
// column name -> value strings (arrow's ValueStr), "" for NULL.
func readParquetRows(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	rows := make([]map[string]string, tbl.NumRows())
	for i := range rows {
		rows[i] = map[string]string{}
	}
	for c := range int(tbl.NumCols()) {
		name := tbl.Schema().Field(c).Name
		i := 0
		for _, chunk := range tbl.Column(c).Data().Chunks() {
			for j := range chunk.Len() {
				if chunk.IsValid(j) {
					rows[i][name] = chunk.ValueStr(j)
				}
				i++
			}
		}
	}
	return rows
}

// omopExpected derives the patient table at ref straight from the tables.
func omopExpected(t *testing.T, dir string, ref time.Time) (map[string]row, map[string]int) {
	t.Helper()
	table := func(name string) []map[string]string { return readParquetRows(t, filepath.Join(dir, name+".parquet")) }
	day := func(s string) time.Time {
		d, err := time.Parse("2006-01-02", s[:10])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	onOrBefore := func(s string) bool { return !day(s).After(ref) }
	concepts := map[string][2]string{}
	for _, r := range table("concept") {
		concepts[r["concept_id"]] = [2]string{r["vocabulary_id"], r["concept_code"]}
	}
	counts := map[string]int{}
	out := map[string]row{}
	for _, r := range table("person") {
		counts["persons"]++
		counts["gender "+r["gender_concept_id"]]++
		birth := day(r["birth_datetime"])
		if birth.After(ref) {
			continue
		}
		out[r["person_id"]] = row{ID: r["person_id"], Sex: map[string]string{"8532": "F", "8507": "M"}[r["gender_concept_id"]],
			BirthYear: birth.Year(), Age: ageAt(birth, ref), Measures: map[string]float64{}}
	}
	for _, r := range table("death") {
		if p, ok := out[r["person_id"]]; ok && onOrBefore(r["death_date"]) {
			p.Deceased = true
			out[p.ID] = p
		}
	}
	codes := func(tableName, conceptCol, dateCol, vocab string, get func(*row) *[]string) {
		for _, r := range table(tableName) {
			counts[tableName]++
			counts[tableName+" "+r[conceptCol]+" "+r["person_id"]] = 1
			p, ok := out[r["person_id"]]
			c := concepts[r[conceptCol]]
			if !ok || c[0] != vocab || !onOrBefore(r[dateCol]) {
				continue
			}
			if list := get(&p); !slices.Contains(*list, c[1]) {
				*list = append(*list, c[1])
			}
			out[p.ID] = p
		}
	}
	codes("condition_occurrence", "condition_concept_id", "condition_start_date", "SNOMED", func(p *row) *[]string { return &p.Conditions })
	codes("drug_exposure", "drug_concept_id", "drug_exposure_start_date", "RxNorm", func(p *row) *[]string { return &p.Meds })
	column := map[string]string{"3004410": "hba1c", "3038553": "bmi", "3004249": "sbp", "3012888": "dbp", "3009966": "ldl"}
	unit := map[string]string{"hba1c": "%", "bmi": "kg/m2", "sbp": "mm[Hg]", "dbp": "mm[Hg]", "ldl": "mg/dL"}
	latest := map[string]string{}
	for _, r := range table("measurement") {
		counts["measurement"]++
		col, ok := column[r["measurement_concept_id"]]
		if !ok {
			continue
		}
		counts["measurement "+col+" "+r["person_id"]] = 1
		p, ok := out[r["person_id"]]
		if !ok || !onOrBefore(r["measurement_date"]) || r["value_as_number"] == "" {
			continue
		}
		if r["unit_source_value"] != unit[col] {
			t.Fatalf("measurement %s in %q", r["measurement_id"], r["unit_source_value"])
		}
		at := r["measurement_datetime"]
		if k := p.ID + col; at >= latest[k] {
			latest[k] = at
			v, err := strconv.ParseFloat(r["value_as_number"], 64)
			if err != nil {
				t.Fatal(err)
			}
			p.Measures[col] = v
		}
	}
	for id, p := range out {
		slices.Sort(p.Conditions)
		slices.Sort(p.Meds)
		out[id] = p
	}
	return out, counts
}

func TestImportOMOPSynthea(t *testing.T) {
	zipPath := sharedTestdata(t, "omop-synthea27nj", "Synthea27NjParquet_5.4.zip")
	dir := t.TempDir()
	unzipTo(t, zipPath, filepath.Join(dir, "unzipped"))
	tables := filepath.Join(dir, "unzipped", "Synthea27NjParquet")
	ref := time.Date(2022, 10, 10, 0, 0, 0, 0, time.UTC) // the data's source_release_date
	want, counts := omopExpected(t, tables, ref)

	// The independent reading agrees with the test data's README and with
	// counts checked by hand.
	patientsWith := func(prefix string) int {
		n := 0
		for k := range counts {
			if strings.HasPrefix(k, prefix+" ") {
				n++
			}
		}
		return n
	}
	got := map[string]int{
		"persons": counts["persons"], "male": counts["gender 8507"], "female": counts["gender 8532"],
		"measurement rows": counts["measurement"], "condition rows": counts["condition_occurrence"],
		"type 2 diabetes": patientsWith("condition_occurrence 201826"), "hypertension": patientsWith("condition_occurrence 320128"),
		"with HbA1c": patientsWith("measurement hba1c"), "with BMI": patientsWith("measurement bmi"), "with systolic BP": patientsWith("measurement sbp"),
	}
	readme := map[string]int{
		"persons": 28, "male": 15, "female": 13, "measurement rows": 10040, "condition rows": 470,
		"type 2 diabetes": 1, "hypertension": 5, "with HbA1c": 10, "with BMI": 27, "with systolic BP": 28,
	}
	if diff := cmp.Diff(readme, got); diff != "" {
		t.Fatalf("independent reading differs from the expected counts (-want +got):\n%s", diff)
	}

	var hashes []string
	for _, input := range []string{zipPath, filepath.Join(dir, "unzipped")} {
		out := filepath.Join(t.TempDir(), "patients.parquet")
		res, err := ImportOMOP(t.Context(), input, out, ImportOptions{RefDate: ref})
		if err != nil {
			t.Fatalf("ImportOMOP(%s): %v", input, err)
		}
		if diff := cmp.Diff(want, datasetRows(t, out)); diff != "" {
			t.Errorf("ImportOMOP(%s) differs from the independent reading (-want +got):\n%s", input, diff)
		}
		if !res.Stats.ExportDate.Equal(ref) {
			t.Errorf("ExportDate = %v, want %v (cdm_source.source_release_date)", res.Stats.ExportDate, ref)
		}
		if tbl := queryTable(t, out, "SELECT COUNT(*) FROM cohort GROUP BY sex"); tableText(tbl) != "F 13|M 15" {
			t.Errorf("COUNT(*) GROUP BY sex = %s, want F 13|M 15", tableText(tbl))
		}
		hashes = append(hashes, res.Manifest.ContentHash)
	}
	if hashes[0] != hashes[1] {
		t.Errorf("the zip and its extracted directory give different datasets")
	}

	// An earlier reference date leaves out later births, records and deaths.
	early := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	wantEarly, _ := omopExpected(t, tables, early)
	out := filepath.Join(t.TempDir(), "patients.parquet")
	if _, err := ImportOMOP(t.Context(), zipPath, out, ImportOptions{RefDate: early}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantEarly, datasetRows(t, out)); diff != "" {
		t.Errorf("ImportOMOP at %v differs (-want +got):\n%s", early, diff)
	}
}

// pqCol is one column of a hand-made Parquet table: values are int32,
// int64, string, float64, a "date:2006-01-02" string for date32, or nil for
// NULL.
type pqCol struct {
	name string
	vals []any
}

// writeParquetTable writes a small table with pqarrow.
func writeParquetTable(t *testing.T, path string, cols ...pqCol) {
	t.Helper()
	var fields []arrow.Field
	var arrays []arrow.Array
	for _, c := range cols {
		var typ arrow.DataType
		for _, v := range c.vals {
			switch v := v.(type) {
			case int32:
				typ = arrow.PrimitiveTypes.Int32
			case int64:
				typ = arrow.PrimitiveTypes.Int64
			case float64:
				typ = arrow.PrimitiveTypes.Float64
			case string:
				typ = arrow.BinaryTypes.String
				if strings.HasPrefix(v, "date:") {
					typ = arrow.FixedWidthTypes.Date32
				}
			}
		}
		b := array.NewBuilder(memory.DefaultAllocator, typ)
		for _, v := range c.vals {
			switch v := v.(type) {
			case nil:
				b.AppendNull()
			case int32:
				b.(*array.Int32Builder).Append(v)
			case int64:
				b.(*array.Int64Builder).Append(v)
			case float64:
				b.(*array.Float64Builder).Append(v)
			case string:
				if d, ok := strings.CutPrefix(v, "date:"); ok {
					tm, err := time.Parse("2006-01-02", d)
					if err != nil {
						t.Fatal(err)
					}
					b.(*array.Date32Builder).Append(arrow.Date32FromTime(tm))
				} else {
					b.(*array.StringBuilder).Append(v)
				}
			}
		}
		fields = append(fields, arrow.Field{Name: c.name, Type: typ, Nullable: true})
		arrays = append(arrays, b.NewArray())
		b.Release()
	}
	rec := array.NewRecord(arrow.NewSchema(fields, nil), arrays, int64(arrays[0].Len()))
	defer rec.Release()
	for _, a := range arrays {
		a.Release()
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pqarrow.NewFileWriter(rec.Schema(), f, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps())
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

// omopTables writes a small OMOP database into dir; edit may change it.
func omopTables(t *testing.T, dir string, edit map[string][]pqCol) {
	t.Helper()
	tables := map[string][]pqCol{
		"person": {
			{"person_id", []any{int32(1), int32(2), int32(3), int32(4)}},
			{"gender_concept_id", []any{int32(8532), int32(8507), int32(0), int32(8532)}},
			{"year_of_birth", []any{int32(1970), int32(1950), int32(1980), int32(2030)}},
			{"month_of_birth", []any{int32(3), nil, int32(1), int32(1)}},
			{"day_of_birth", []any{int32(15), nil, int32(1), int32(1)}},
		},
		"death": {
			{"person_id", []any{int32(1), int32(2)}},
			{"death_date", []any{"date:2030-01-01", "date:2020-05-05"}},
		},
		"concept": {
			{"concept_id", []any{int32(201826), int32(45576876), int32(1503297), int32(3009966), int32(8753), int32(9999)}},
			{"vocabulary_id", []any{"SNOMED", "ICD10CM", "RxNorm", "LOINC", "UCUM", "Gender"}},
			{"concept_code", []any{"44054006", "E11.9", "860975", "18262-6", "mmol/L", "X"}},
		},
		"condition_occurrence": {
			{"person_id", []any{int32(1), int32(1), int32(2), int32(1), int32(2)}},
			{"condition_concept_id", []any{int32(201826), int32(45576876), int32(201826), int32(0), int32(9999)}},
			{"condition_start_date", []any{"date:2001-01-01", "date:2002-01-01", "date:2025-01-01", "date:2001-01-01", "date:2001-01-01"}},
		},
		"drug_exposure": {
			{"person_id", []any{int64(2), int64(2)}},
			{"drug_concept_id", []any{int64(1503297), int64(1503297)}},
			{"drug_exposure_start_date", []any{"date:2010-01-01", "date:2011-01-01"}},
		},
		"measurement": {
			{"person_id", []any{int32(1), int32(1), int32(1), int32(2), int32(2)}},
			{"measurement_concept_id", []any{int32(3009966), int32(3004410), int32(3004410), int32(3004249), int32(3004249)}},
			{"measurement_date", []any{"date:2020-01-01", "date:2019-01-01", "date:2021-01-01", "date:2020-01-01", "date:2026-01-01"}},
			{"value_as_number", []any{3.0, 6.5, 7.25, 130.0, 150.0}},
			{"unit_concept_id", []any{int32(8753), int32(0), int32(0), nil, int32(0)}},
			{"unit_source_value", []any{nil, "%", "%", "mm[Hg]", "mmHg"}},
		},
	}
	for name, cols := range edit {
		if cols == nil {
			delete(tables, name)
		} else {
			tables[name] = cols
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, cols := range tables {
		writeParquetTable(t, filepath.Join(dir, name+".parquet"), cols...)
	}
}

func TestImportOMOPSmall(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	omopTables(t, in, nil)
	out := filepath.Join(dir, "patients.parquet")
	ref := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	res, err := ImportOMOP(t.Context(), in, out, ImportOptions{RefDate: ref})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]row{
		// Dies after the reference date: alive. LDL 3 mmol/L (UCUM concept
		// 8753) is 116 mg/dL; the HbA1c concept is absent from the concept
		// table but known.
		"1": {ID: "1", Sex: "F", BirthYear: 1970, Age: 54, Conditions: []string{"44054006", "E11.9"},
			Measures: map[string]float64{"ldl": 3 * 38.67, "hba1c": 7.25}},
		// Month and day unknown: the first of January. The diabetes starts
		// after the reference date, so does the second blood pressure.
		"2": {ID: "2", Sex: "M", BirthYear: 1950, Age: 74, Deceased: true, Meds: []string{"860975"}, Measures: map[string]float64{"sbp": 130}},
	}
	if diff := cmp.Diff(want, datasetRows(t, out)); diff != "" {
		t.Errorf("ImportOMOP mismatch (-want +got):\n%s", diff)
	}
	wantSkipped := map[string]int64{SkipSexUnknown: 1, SkipBornAfterRef: 1, SkipAfterRef: 2, SkipNoCode: 1, SkipUnknownVocab: 1}
	if diff := cmp.Diff(wantSkipped, res.Stats.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}

func TestImportOMOPErrors(t *testing.T) {
	persons := func(ids ...any) []pqCol {
		n := len(ids)
		col := func(v any) []any { return slices.Repeat([]any{v}, n) }
		return []pqCol{{"person_id", ids}, {"gender_concept_id", col(int32(8532))}, {"year_of_birth", col(int32(1970))}}
	}
	tests := []struct {
		name string
		edit map[string][]pqCol
		file string // the table file the error names, "" if none
		row  int64
		want string
	}{
		{"no person table", map[string][]pqCol{"person": nil}, "", 0, "input has no person table"},
		{"no concept table", map[string][]pqCol{"concept": nil}, "", 0, "input has no concept table"},
		{"duplicate person", map[string][]pqCol{"person": persons(int32(1), int32(2), int32(1))},
			"person.parquet", 3, "duplicate person_id 1 (first at row 1)"},
		{"person id of the wrong type", map[string][]pqCol{"person": persons("1", "2")},
			"person.parquet", 0, "column person_id has type utf8, want an integer"},
		{"missing column", map[string][]pqCol{"measurement": {{"person_id", []any{int32(1)}}, {"measurement_concept_id", []any{int32(3004410)}}}},
			"measurement.parquet", 0, "no column value_as_number"},
		{"unknown person", map[string][]pqCol{"drug_exposure": {{"person_id", []any{int32(2), int32(7)}}, {"drug_concept_id", []any{int32(1503297), int32(1503297)}}}},
			"drug_exposure.parquet", 2, "person_id 7 is not in the person table"},
		{"unknown unit", map[string][]pqCol{"measurement": {
			{"person_id", []any{int32(1), int32(1)}}, {"measurement_concept_id", []any{int32(3004410), int32(3004410)}},
			{"measurement_date", []any{"date:2020-01-01", "date:2020-01-01"}}, {"value_as_number", []any{6.0, 60.0}},
			{"unit_source_value", []any{"%", "mg"}}}},
			"measurement.parquet", 2, `unknown unit "mg" for hba1c (concept 3004410): want %, mmol/mol`},
		{"no unit", map[string][]pqCol{"measurement": {
			{"person_id", []any{int32(1)}}, {"measurement_concept_id", []any{int32(3038553)}},
			{"measurement_date", []any{"date:2020-01-01"}}, {"value_as_number", []any{31.0}}}},
			"measurement.parquet", 1, "bmi (concept 3038553) has no unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in")
			omopTables(t, in, tt.edit)
			outDir := filepath.Join(dir, "out")
			if err := os.Mkdir(outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := ImportOMOP(t.Context(), in, filepath.Join(outDir, "patients.parquet"), ImportOptions{RefDate: testRefDate})
			if err == nil {
				t.Fatal("ImportOMOP succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ImportOMOP error = %v, want one containing %q", err, tt.want)
			}
			var ie *InputError
			if tt.file != "" {
				if !errors.As(err, &ie) || filepath.Base(ie.File) != tt.file || ie.Row != tt.row {
					t.Errorf("ImportOMOP error = %#v, want an *InputError at %s row %d", ie, tt.file, tt.row)
				}
			}
			assertEmptyDir(t, outDir)
		})
	}

	// Not Parquet at all.
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"person.parquet": "PAR1 not really PAR1"})
	_, err := ImportOMOP(t.Context(), dir, filepath.Join(dir, "out.parquet"), ImportOptions{RefDate: testRefDate})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Msg, "not a readable Parquet file") {
		t.Errorf("ImportOMOP(garbage) = %v, want an *InputError saying it is not Parquet", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.parquet")); !os.IsNotExist(err) {
		t.Errorf("a failed import left its output")
	}
}

func TestDecimalFloat(t *testing.T) {
	tests := []struct {
		unscaled string
		scale    int32
		want     string
	}{
		{"6100", 3, "6.1"}, {"-6100", 3, "-6.1"}, {"103100", 3, "103.1"}, {"5", 0, "5"}, {"0", 3, "0"},
		{"146700", 3, "146.7"}, {"-1", 18, "-1e-18"},
		{"123456789012345678901234567", 3, "123456789012345678901234.567"}, // beyond 2^53: through the text
		{"-98765432109876543210", 2, "-987654321098765432.10"},
	}
	for _, tt := range tests {
		n, ok := new(big.Int).SetString(tt.unscaled, 10)
		if !ok {
			t.Fatal(tt.unscaled)
		}
		want, err := strconv.ParseFloat(tt.want, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got := decimalFloat(decimal128.FromBigInt(n), tt.scale); got != want {
			t.Errorf("decimalFloat(%s, %d) = %v, want %v", tt.unscaled, tt.scale, got, want)
		}
	}
}
