package cohorts_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/medx/medx/cohorts"
)

// A custodian imports a FHIR bulk export (NDJSON), stating the export date,
// and checks its own data with a local query.
func ExampleImportFHIR() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fhir-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	export := `{"resourceType": "Patient", "id": "a", "gender": "female", "birthDate": "1961-04-06"}
{"resourceType": "Patient", "id": "b", "gender": "male", "birthDate": "1950-02-11", "deceasedDateTime": "2016-12-27T02:16:14-05:00"}
{"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/a"}, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}, "onsetDateTime": "2012-05-01"}
{"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/a"}, "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "effectiveDateTime": "2019-03-01T10:00:00Z", "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 138, "unit": "mm[Hg]"}}, {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 88, "unit": "mm[Hg]"}}]}
{"resourceType": "Observation", "id": "o2", "status": "final", "subject": {"reference": "Patient/a"}, "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": "2019-03-01", "valueQuantity": {"value": 58, "unit": "mmol/mol"}}
`
	in := filepath.Join(dir, "export.ndjson")
	if err := os.WriteFile(in, []byte(export), 0o644); err != nil {
		log.Fatal(err)
	}
	res, err := cohorts.ImportFHIR(ctx, in, filepath.Join(dir, "patients.parquet"), cohorts.ImportOptions{
		RefDate: time.Date(2019, 9, 1, 0, 0, 0, 0, time.UTC), // the export date
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("patients:", res.Manifest.Rows, "records:", res.Stats.Records)

	d, err := cohorts.Open(ctx, res.Manifest.Path)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	q, err := cohorts.ParseQuery("SELECT COUNT(*), AVG(hba1c), AVG(sbp) FROM cohort GROUP BY vital_status")
	if err != nil {
		log.Fatal(err)
	}
	vec, err := d.Aggregate(ctx, q, cohorts.AllPatients())
	if err != nil {
		log.Fatal(err)
	}
	tbl, err := q.Finalize(vec, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(tbl)
	// Output:
	// patients: 2 records: 5
	// vital_status  count  avg(hba1c)   avg(sbp)
	// alive         1      7.5000       138
	// deceased      1      (no values)  (no values)
}

// Malformed input names the file and the position.
func ExampleImportCSV() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "csv-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, err := cohorts.ParseCSVMapping("mapping.json", []byte(`{
  "date_format": "DD.MM.YYYY",
  "fields": {
    "id":         {"column": "mrn"},
    "sex":        {"column": "sex", "female": ["w"], "male": ["m"]},
    "birth_date": {"column": "born"},
    "conditions": {"column": "icd10"},
    "ldl":        {"column": "ldl", "unit": "mmol/L"}
  }
}`))
	if err != nil {
		log.Fatal(err)
	}
	in := filepath.Join(dir, "patients.csv")
	if err := os.WriteFile(in, []byte("mrn,sex,born,icd10,ldl\n1001,w,03.02.1971,E11.9;I10,3.1\n1002,m,17.11.1948,I10,four\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	out := filepath.Join(dir, "site.parquet")
	_, err = cohorts.ImportCSV(ctx, in, m, out, cohorts.ImportOptions{RefDate: time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)})
	var ie *cohorts.InputError
	if errors.As(err, &ie) {
		fmt.Printf("%s line %d, column %d: %s\n", filepath.Base(ie.File), ie.Line, ie.Col, ie.Msg)
	}
	if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
		fmt.Println("no dataset written")
	}
	// Output:
	// patients.csv line 3, column 23: wrong type: ldl "four" is not a number
	// no dataset written
}
