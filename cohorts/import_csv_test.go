package cohorts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const csvMappingText = `{
  "delimiter": ";",
  "code_separator": "|",
  "date_format": "DD/MM/YYYY",
  "fields": {
    "id":            {"column": "mrn"},
    "sex":           {"column": "gender", "female": ["w", "f"], "male": ["m"]},
    "birth_date":    {"column": "dob"},
    "deceased_date": {"column": "died", "format": "YYYY-MM-DD"},
    "conditions":    {"column": "dx"},
    "medications":   {"column": "rx", "separator": ","},
    "hba1c":         {"column": "a1c", "unit": "mmol/mol"},
    "ldl":           {"column": "ldl", "unit_column": "ldl_unit"},
    "sbp":           {"column": "sys", "unit": "mmHg"}
  }
}
`

const csvHeader = "mrn;gender;dob;died;dx;rx;a1c;ldl;ldl_unit;sys;extra\n"

const csvText = "\ufeff" + csvHeader +
	"r1;W;15/03/1970;;44054006|E11.9 | 44054006;\"860975,314076\";53;3;mmol/L;141;x\n" +
	"r2;m;01/01/1950;2020-05-05;;;;120;mg/dL;;\"a;b\"\n" +
	"r3;;01/01/1980;;;;;;;;\n" +
	"r4;F;01/01/2030;;;;;;;;\n" +
	"r5; f ;29/02/2000;2025-01-01;;;;;;;\n"

func TestImportCSV(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"map.json": csvMappingText, "in.csv": csvText})
	m, err := ReadCSVMapping(filepath.Join(dir, "map.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "patients.parquet")
	ref := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	var last int64
	res, err := ImportCSV(t.Context(), filepath.Join(dir, "in.csv"), m, out, ImportOptions{RefDate: ref, Progress: func(done, _ int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]row{
		"r1": {ID: "r1", Sex: "F", BirthYear: 1970, Age: 54, Conditions: []string{"44054006", "E11.9"}, Meds: []string{"314076", "860975"},
			Measures: map[string]float64{"hba1c": 0.09148*53 + 2.152, "ldl": 3 * 38.67, "sbp": 141}},
		"r2": {ID: "r2", Sex: "M", BirthYear: 1950, Age: 74, Deceased: true, Measures: map[string]float64{"ldl": 120}},
		// Dies after the reference date: alive on it.
		"r5": {ID: "r5", Sex: "F", BirthYear: 2000, Age: 24, Measures: map[string]float64{}},
	}
	if diff := cmp.Diff(want, datasetRows(t, out)); diff != "" {
		t.Errorf("ImportCSV mismatch (-want +got):\n%s", diff)
	}
	wantSkipped := map[string]int64{SkipSexUnknown: 1, SkipBornAfterRef: 1}
	if diff := cmp.Diff(wantSkipped, res.Stats.Skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if res.Stats.Records != 5 || res.Stats.Patients != 3 || last != int64(len(csvText)) {
		t.Errorf("stats %+v, last progress %d; want 5 records, 3 patients, %d bytes", res.Stats, last, len(csvText))
	}

	// Birth years and a deceased flag instead of dates; commas by default.
	m2, err := ParseCSVMapping("map2.json", []byte(`{"fields": {"id": {"column": "id"}, "sex": {"column": "sex"},
		"birth_year": {"column": "yob"}, "deceased": {"column": "status", "values": ["D"]}, "bmi": {"column": "bmi", "unit": "kg/m2"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"in2.csv": "id,sex,yob,status,bmi\na,female,1980,D,31.5\nb,MALE,1990,A,\n"})
	out2 := filepath.Join(dir, "p2.parquet")
	if _, err := ImportCSV(t.Context(), filepath.Join(dir, "in2.csv"), m2, out2, ImportOptions{RefDate: ref}); err != nil {
		t.Fatal(err)
	}
	want2 := map[string]row{
		"a": {ID: "a", Sex: "F", BirthYear: 1980, Age: 44, Deceased: true, Measures: map[string]float64{"bmi": 31.5}},
		"b": {ID: "b", Sex: "M", BirthYear: 1990, Age: 34, Measures: map[string]float64{}},
	}
	if diff := cmp.Diff(want2, datasetRows(t, out2)); diff != "" {
		t.Errorf("ImportCSV with birth years mismatch (-want +got):\n%s", diff)
	}
}

func TestImportCSVErrors(t *testing.T) {
	row := func(cells string) string { return csvHeader + "ok;f;01/01/1970;;;;;;;;\n" + cells + "\n" }
	tests := []struct {
		name      string
		csv       string
		line, col int
		want      string
	}{
		{"duplicate patient", row("ok;m;01/01/1980;;;;;;;;"), 3, 1, `duplicate patient "ok" (first at line 2)`},
		{"not a number", row("p;m;01/01/1980;;;;high;;;;"), 3, 19, `wrong type: hba1c "high" is not a number`},
		{"unknown unit", row("p;m;01/01/1980;;;;;4;mg;;"), 3, 22, `unknown unit "mg" for ldl: want mg/dL, mmol/L`},
		{"bad date", row("p;m;1980-01-01;;;;;;;;"), 3, 5, `birth_date "1980-01-01" is not a date in the format DD/MM/YYYY`},
		{"bad death date", row("p;m;01/01/1980;05/05/2020;;;;;;;"), 3, 16, `deceased_date "05/05/2020" is not a date in the format YYYY-MM-DD`},
		{"bad code", row("p;m;01/01/1980;;E11 9;;;;;;"), 3, 17, `conditions: code "E11 9" contains ' '`},
		{"bad sex", row("p;x;01/01/1980;;;;;;;;"), 3, 3, `sex "x" is neither a female value (w, f) nor a male one (m)`},
		{"empty id", row(";m;01/01/1980;;;;;;;;"), 3, 1, "empty patient id"},
		{"wrong field count", row("p;m;01/01/1980"), 3, 1, "wrong number of fields: the header has 11"},
		{"bare quote", row("p;m;01/01/1980;;x\"y;;;;;;"), 3, 18, `bare " in non-quoted-field`},
		{"missing column", "mrn;gender;dob\nx;f;01/01/1970\n", 1, 1, `field conditions: no column "dx" in the header (columns: mrn, gender, dob)`},
		{"empty file", "", 1, 1, "empty file: no header"},
		{"duplicate header", "mrn;mrn\n", 1, 5, `column "mrn" appears twice in the header`},
	}
	m, err := ParseCSVMapping("map.json", []byte(csvMappingText))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"in.csv": tt.csv})
			outDir := filepath.Join(dir, "out")
			if err := os.Mkdir(outDir, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := ImportCSV(t.Context(), filepath.Join(dir, "in.csv"), m, filepath.Join(outDir, "patients.parquet"), ImportOptions{RefDate: testRefDate})
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("ImportCSV error %T %v, want an *InputError", err, err)
			}
			if filepath.Base(ie.File) != "in.csv" || ie.Line != tt.line || ie.Col != tt.col || !strings.Contains(ie.Msg, tt.want) {
				t.Errorf("ImportCSV error\n got %s (%d:%d)\nwant in.csv:%d:%d: ...%s...", err, ie.Line, ie.Col, tt.line, tt.col, tt.want)
			}
			assertEmptyDir(t, outDir)
		})
	}
}

func TestParseCSVMappingErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int // 0: no position
		want      string
	}{
		{"truncated", `{"fields": {"id": {"column": "x"}`, 1, 34, "truncated JSON"},
		{"syntax", "{\n  \"fields\": {,}\n}", 2, 14, "malformed JSON: invalid character ','"},
		{"wrong type", "{\n  \"fields\": [\"id\"]\n}", 2, 13, "wrong type: fields is a JSON array, want an object"},
		{"wrong type deep", `{"fields": {"id": {"column": 7}}}`, 1, 30, "wrong type: fields.column is a JSON number, want a string"},
		{"unknown key", `{"field": {}}`, 1, 2, `unknown field "field"`},
		{"unknown field", `{"fields": {"id": {"column": "a"}, "sex": {"column": "b"}, "birth_year": {"column": "c"}, "weight": {"column": "w"}}}`, 0, 0, `unknown field "weight"`},
		{"no id", `{"fields": {"sex": {"column": "b"}, "birth_year": {"column": "c"}}}`, 0, 0, `field "id" is required`},
		{"two births", `{"fields": {"id": {"column": "a"}, "sex": {"column": "b"}, "birth_year": {"column": "c"}, "birth_date": {"column": "d"}}}`, 0, 0, `exactly one of "birth_date" and "birth_year"`},
		{"unknown unit", `{"fields": {"id": {"column": "a"}, "sex": {"column": "b"}, "birth_year": {"column": "c"}, "ldl": {"column": "l", "unit": "g/L"}}}`, 0, 0, `field "ldl": unknown unit "g/L" (want mg/dL, mmol/L)`},
		{"no unit", `{"fields": {"id": {"column": "a"}, "sex": {"column": "b"}, "birth_year": {"column": "c"}, "ldl": {"column": "l"}}}`, 0, 0, `field "ldl" needs exactly one of unit and unit_column`},
		{"bad date format", `{"date_format": "YY-MM-DD", "fields": {"id": {"column": "a"}, "sex": {"column": "b"}, "birth_date": {"column": "c"}}}`, 0, 0, `date format "YY-MM-DD" needs YYYY, MM and DD`},
		{"bad delimiter", `{"delimiter": "ab", "fields": {"id": {"column": "a"}, "sex": {"column": "b"}, "birth_year": {"column": "c"}}}`, 0, 0, `delimiter "ab" must be one character`},
		{"sex both", `{"fields": {"id": {"column": "a"}, "sex": {"column": "b", "female": ["x"], "male": ["X"]}, "birth_year": {"column": "c"}}}`, 0, 0, `sex value "x" is listed as both female and male`},
		{"trailing data", `{"fields": {}} {}`, 1, 16, "unexpected data after the mapping object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCSVMapping("map.json", []byte(tt.src))
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseCSVMapping error %T %v, want an *InputError", err, err)
			}
			if ie.File != "map.json" || ie.Line != tt.line || ie.Col != tt.col || !strings.Contains(ie.Msg, tt.want) {
				t.Errorf("ParseCSVMapping error\n got %s (%d:%d)\nwant map.json:%d:%d: ...%s...", err, ie.Line, ie.Col, tt.line, tt.col, tt.want)
			}
		})
	}
}
