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

// A custodian evaluates a sponsor's query over its licensed patients; the
// vector it produces is what gets encrypted, and Finalize turns the released
// vector into the result table.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cohorts-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A tiny dataset, written the way importers write theirs.
	ref := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	w, err := cohorts.CreateDataset(ctx, filepath.Join(dir, "site.parquet"), ref)
	if err != nil {
		log.Fatal(err)
	}
	m := cohorts.Measured
	for _, p := range []cohorts.Patient{
		{ID: "r1", Sex: "F", BirthYear: 1960, Age: 64, Conditions: []string{"44054006"}, HbA1c: m(7.5), BMI: m(31.2)},
		{ID: "r2", Sex: "F", BirthYear: 1970, Age: 54, Conditions: []string{"44054006"}, HbA1c: m(8.1), BMI: m(27.9)},
		{ID: "r3", Sex: "M", BirthYear: 1955, Age: 68, Conditions: []string{"44054006"}, HbA1c: m(6.9), BMI: m(24.0)},
		{ID: "r4", Sex: "M", BirthYear: 1966, Age: 57, Conditions: []string{"44054006"}, HbA1c: m(9.2)},
		{ID: "r5", Sex: "M", BirthYear: 1990, Age: 34, HbA1c: m(5.2), BMI: m(22.5)},
	} {
		if err := w.Write(ctx, &p); err != nil {
			log.Fatal(err)
		}
	}
	manifest, err := w.Close(ctx)
	if err != nil {
		log.Fatal(err)
	}

	d, err := cohorts.Open(ctx, manifest.Path)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	q, err := cohorts.ParseQuery(`SELECT COUNT(*), AVG(hba1c) AS mean_a1c, HISTOGRAM(bmi, 18.5, 25, 30, 35)
		FROM cohort WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') GROUP BY sex`)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q)
	fmt.Println("reads:", q.Categories())

	// Only patients with an active licence are included: r4 has revoked.
	vec, err := d.Aggregate(ctx, q, cohorts.NewPatientSet([]string{"r1", "r2", "r3", "r5"}))
	if err != nil {
		log.Fatal(err)
	}
	for i, s := range q.Layout().Slots {
		fmt.Printf("slot %d %s %v = %d\n", i, q.Layout().Cells[s.Cell].Labels, s.Name, vec[i])
	}

	tbl, err := q.Finalize(vec, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(tbl)
	// Output:
	// SELECT COUNT(*), AVG(hba1c) AS mean_a1c, HISTOGRAM(bmi, 18.5, 25, 30, 35) FROM cohort WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') GROUP BY sex
	// reads: [conditions demographics labs vitals]
	// slot 0 [F] count = 2
	// slot 1 [F] n(hba1c) = 2
	// slot 2 [F] sum(hba1c) = -74
	// slot 3 [F] bin(bmi)[18.5,25) = 0
	// slot 4 [F] bin(bmi)[25,30) = 1
	// slot 5 [F] bin(bmi)[30,35] = 1
	// slot 6 [M] count = 1
	// slot 7 [M] n(hba1c) = 1
	// slot 8 [M] sum(hba1c) = -46
	// slot 9 [M] bin(bmi)[18.5,25) = 1
	// slot 10 [M] bin(bmi)[25,30) = 0
	// slot 11 [M] bin(bmi)[30,35] = 0
	// sex  count  mean_a1c  histogram(bmi)[18.5,25)  histogram(bmi)[25,30)  histogram(bmi)[30,35]
	// F    2      7.8000    0                        1                      1
	// M    1      6.9000    1                        0                      0
}

func ExampleParseQuery() {
	q, err := cohorts.ParseQuery("select avg(hba1c), stddev(hba1c) from cohort where hba1c is not null and (sex = 'f' or age >= 65)")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q)
	for _, s := range q.Layout().Slots {
		fmt.Printf("%s group=%d gate=%d sensitivity=%d\n", s.Name, s.Group, s.Gate, s.Sensitivity)
	}
	// Output:
	// SELECT AVG(hba1c), STDDEV(hba1c) FROM cohort WHERE hba1c IS NOT NULL AND (sex = 'F' OR age >= 65)
	// n(hba1c) group=0 gate=0 sensitivity=1
	// sum(hba1c) group=1 gate=0 sensitivity=85
	// sumsq(hba1c) group=2 gate=0 sensitivity=7225
}

func ExampleParseQuery_refused() {
	_, err := cohorts.ParseQuery("SELECT hba1c FROM cohort")
	var se *cohorts.SyntaxError
	if errors.As(err, &se) {
		fmt.Printf("line %d, column %d: %s\n", se.Line, se.Col, se.Msg)
	}
	_, err = cohorts.ParseQuery("SELECT COUNT(*) FROM cohort\nGROUP BY age")
	fmt.Println(err)
	// Output:
	// line 1, column 8: expected an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM), found column "hba1c": queries return aggregates only
	// 2:10: cannot GROUP BY "age": use AGE_BAND(width) to group ages; GROUP BY accepts only sex, vital_status, AGE_BAND(width)
}

func ExampleParseCriteria() {
	c, err := cohorts.ParseCriteria("has_condition('44054006') and age between 40 and 75 and not has_medication('5*')")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c)
	fmt.Println(c.Categories())
	// Output:
	// HAS_CONDITION('44054006') AND age BETWEEN 40 AND 75 AND NOT HAS_MEDICATION('5*')
	// [conditions demographics medications]
}

func ExampleGenerate() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cohorts-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	m, err := cohorts.Generate(ctx, filepath.Join(dir, "demo.parquet"), cohorts.GenerateOptions{
		Patients: 10_000,
		Seed:     1,
		RefDate:  time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC),
		IDPrefix: "c1-",
	})
	if err != nil {
		log.Fatal(err)
	}
	d, err := cohorts.Open(ctx, m.Path)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	fmt.Println(m.Rows, m.RefDate.Format("2006-01-02"), d.PatientIDs()[42])
	fmt.Println(d.Manifest().ContentHash == m.ContentHash)

	c, err := cohorts.ParseCriteria("HAS_CONDITION('44054006') AND hba1c > 9")
	if err != nil {
		log.Fatal(err)
	}
	ids, err := d.Match(ctx, c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(ids) > 0 && len(ids) < 1000)
	// Output:
	// 10000 2024-06-30 c1-000042
	// true
	// true
}
