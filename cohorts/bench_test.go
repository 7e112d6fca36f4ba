package cohorts

import (
	"path/filepath"
	"testing"
)

// BenchmarkGenerate measures generating and writing one million patients.
func BenchmarkGenerate(b *testing.B) {
	path := filepath.Join(b.TempDir(), "d.parquet")
	for b.Loop() {
		if _, err := Generate(b.Context(), path, GenerateOptions{Patients: 1_000_000, Seed: 1, RefDate: testRefDate, IDPrefix: "c1-"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAggregate measures one query over one million patients, with all
// patients and with a licensed subset of half of them.
func BenchmarkAggregate(b *testing.B) {
	path := filepath.Join(b.TempDir(), "d.parquet")
	if _, err := Generate(b.Context(), path, GenerateOptions{Patients: 1_000_000, Seed: 1, RefDate: testRefDate, IDPrefix: "c1-"}); err != nil {
		b.Fatal(err)
	}
	d, err := Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	q, err := ParseQuery("SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c), HISTOGRAM(bmi, 18.5, 25, 30, 35) FROM cohort " +
		"WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7 GROUP BY sex")
	if err != nil {
		b.Fatal(err)
	}
	ids := d.PatientIDs()
	half := NewPatientSet(ids[:len(ids)/2])
	for _, s := range []struct {
		name string
		set  *PatientSet
	}{{"all", AllPatients()}, {"licensed-half", half}} {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := d.Aggregate(b.Context(), q, s.set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen measures loading one million patients.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "d.parquet")
	if _, err := Generate(b.Context(), path, GenerateOptions{Patients: 1_000_000, Seed: 1, RefDate: testRefDate}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d, err := Open(b.Context(), path)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}
