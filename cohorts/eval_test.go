package cohorts

import (
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/google/go-cmp/cmp"
)

var testRefDate = time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)

// refPatient is one row read back from a Dataset for the reference path.
type refPatient struct {
	id, sex     string
	cats        map[string]string // categorical columns by name
	ints        map[string]int32
	floats      map[string]*float64
	conditions  []string
	medications []string
}

// refRows reads every row of d straightforwardly, row by row.
func refRows(t *testing.T, d *Dataset) []refPatient {
	t.Helper()
	var out []refPatient
	for _, b := range d.batches {
		rec := b.rec
		sch := rec.Schema()
		for i := range int(rec.NumRows()) {
			p := refPatient{ints: map[string]int32{}, floats: map[string]*float64{}, cats: map[string]string{}}
			for f := range int(rec.NumCols()) {
				name := sch.Field(f).Name
				switch a := rec.Column(f).(type) {
				case *array.String:
					if name == "patient_id" {
						p.id = a.Value(i)
					} else {
						p.cats[name] = a.Value(i)
					}
				case *array.Int32:
					p.ints[name] = a.Value(i)
				case *array.Float64:
					if a.IsValid(i) {
						v := a.Value(i)
						p.floats[name] = &v
					} else {
						p.floats[name] = nil
					}
				case *array.List:
					start, end := a.ValueOffsets(i)
					vals := a.ListValues().(*array.String)
					var codes []string
					for j := start; j < end; j++ {
						codes = append(codes, vals.Value(int(j)))
					}
					if name == "conditions" {
						p.conditions = codes
					} else {
						p.medications = codes
					}
				default:
					t.Fatalf("column %s has unexpected type %T", name, a)
				}
			}
			p.sex = p.cats["sex"]
			out = append(out, p)
		}
	}
	return out
}

// value returns a numeric column's value, or ok=false for NULL.
func (p refPatient) value(col string) (float64, bool) {
	if v, ok := p.ints[col]; ok {
		return float64(v), true
	}
	v := p.floats[col]
	if v == nil {
		return 0, false
	}
	return *v, true
}

type tri int

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// refEval evaluates a WHERE expression on one patient with SQL's
// three-valued logic, directly from the operators.
func refEval(t *testing.T, e expr, p refPatient) tri {
	switch e := e.(type) {
	case *andExpr:
		r := triTrue
		for _, x := range e.terms {
			switch refEval(t, x, p) {
			case triFalse:
				return triFalse
			case triUnknown:
				r = triUnknown
			}
		}
		return r
	case *orExpr:
		r := triFalse
		for _, x := range e.terms {
			switch refEval(t, x, p) {
			case triTrue:
				return triTrue
			case triUnknown:
				r = triUnknown
			}
		}
		return r
	case *notExpr:
		switch refEval(t, e.x, p) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUnknown
	case *cmpExpr:
		if v, ok := p.cats[e.col.name]; ok {
			if e.op == "=" {
				return triOf(v == e.str)
			}
			return triOf(v != e.str)
		}
		x, ok := p.value(e.col.name)
		if !ok {
			return triUnknown
		}
		switch e.op {
		case "=":
			return triOf(x == e.num)
		case "!=":
			return triOf(x != e.num)
		case "<":
			return triOf(x < e.num)
		case "<=":
			return triOf(x <= e.num)
		case ">":
			return triOf(x > e.num)
		case ">=":
			return triOf(x >= e.num)
		}
	case *betweenExpr:
		x, ok := p.value(e.col.name)
		if !ok {
			return triUnknown
		}
		in := e.lo <= x && x <= e.hi
		return triOf(in != e.not)
	case *inExpr:
		in := false
		if v, ok := p.cats[e.col.name]; ok {
			in = slices.Contains(e.strs, v)
		} else {
			x, ok := p.value(e.col.name)
			if !ok {
				return triUnknown
			}
			in = slices.Contains(e.nums, x)
		}
		return triOf(in != e.not)
	case *nullExpr:
		_, ok := p.value(e.col.name)
		return triOf(ok == e.not)
	case *hasExpr:
		codes := p.conditions
		if e.col.name == "medications" {
			codes = p.medications
		}
		for _, c := range codes {
			for _, want := range e.codes {
				if strings.HasSuffix(want, "*") && strings.HasPrefix(c, strings.TrimSuffix(want, "*")) || c == want {
					return triTrue
				}
			}
		}
		return triFalse
	}
	t.Fatalf("refEval: unknown node %T", e)
	return triUnknown
}

var binName = regexp.MustCompile(`^bin\((\w+)\)\[([-0-9.]+),([-0-9.]+)([)\]])$`)
var colName = regexp.MustCompile(`^(n|sum|sumsq)\((\w+)\)$`)

// refSlot is what a slot means, derived from its documented name.
type refSlot struct {
	kind         string // count, n, sum, sumsq, bin
	col          string
	cell         int
	scale, mid   float64
	lo, hi       float64 // column bounds
	binLo, binHi float64 // fixed-point bin edges
	closed       bool    // the bin includes binHi
}

// refAggregate computes the aggregate vector row by row, deriving each slot's
// meaning from its documented name and the declared bounds.
func refAggregate(t *testing.T, rows []refPatient, q *Query, sel map[string]bool) []int64 {
	t.Helper()
	l := q.Layout()
	var inCell []func(refPatient) bool
	for _, c := range l.Cells {
		inCell = append(inCell, cellTest(t, q.GroupBy(), c.Labels))
	}
	slots := make([]refSlot, len(l.Slots))
	for i, s := range l.Slots {
		rs := &slots[i]
		rs.cell = s.Cell
		if s.Name == "count" {
			rs.kind = "count"
			continue
		}
		if m := binName.FindStringSubmatch(s.Name); m != nil {
			rs.kind, rs.col = "bin", m[1]
			rs.binLo, _ = strconv.ParseFloat(m[2], 64)
			rs.binHi, _ = strconv.ParseFloat(m[3], 64)
			rs.closed = m[4] == "]"
		} else if m := colName.FindStringSubmatch(s.Name); m != nil {
			rs.kind, rs.col = m[1], m[2]
		} else {
			t.Fatalf("slot name %q not understood", s.Name)
		}
		info := columnInfo(t, rs.col)
		rs.scale = math.Pow10(info.Decimals)
		rs.lo, rs.hi = info.Min, info.Max
		rs.mid = math.Floor((info.Min*rs.scale + info.Max*rs.scale) / 2)
		rs.binLo, rs.binHi = math.Round(rs.binLo*rs.scale), math.Round(rs.binHi*rs.scale)
	}
	out := make([]int64, len(l.Slots))
	for _, p := range rows {
		if sel != nil && !sel[p.id] {
			continue
		}
		if q.where != nil && refEval(t, q.where.root, p) != triTrue {
			continue
		}
		cell := -1
		for c, in := range inCell {
			if in(p) {
				if cell >= 0 {
					t.Fatalf("patient %s is in cells %d and %d", p.id, cell, c)
				}
				cell = c
			}
		}
		for i, s := range slots {
			if s.cell != cell {
				continue
			}
			if s.kind == "count" {
				out[i]++
				continue
			}
			x, ok := p.value(s.col)
			if !ok {
				continue
			}
			fx := math.Round(math.Min(math.Max(x, s.lo), s.hi) * s.scale)
			switch s.kind {
			case "bin":
				if fx >= s.binLo && (fx < s.binHi || s.closed && fx == s.binHi) {
					out[i]++
				}
			case "n":
				out[i]++
			case "sum":
				out[i] += int64(fx - s.mid)
			case "sumsq":
				out[i] += int64((fx - s.mid) * (fx - s.mid))
			}
		}
	}
	return out
}

var bandLabel = regexp.MustCompile(`^(\d+)(?:-(\d+)|(\+))$`)

// cellTest returns whether a patient falls in the GROUP BY cell with these
// labels, reading the labels as documented: a categorical value, or an age
// band "lo-hi" (inclusive) or "lo+" over ages clamped to the declared bounds.
func cellTest(t *testing.T, groups, labels []string) func(p refPatient) bool {
	t.Helper()
	var tests []func(p refPatient) bool
	for j, g := range groups {
		label := labels[j]
		if !strings.HasPrefix(g, "age_band(") {
			tests = append(tests, func(p refPatient) bool {
				v, ok := p.cats[g]
				if !ok {
					t.Fatalf("GROUP BY %q not understood", g)
				}
				return v == label
			})
			continue
		}
		m := bandLabel.FindStringSubmatch(label)
		if m == nil {
			t.Fatalf("age band label %q not understood", label)
		}
		info := columnInfo(t, "age")
		lo, _ := strconv.ParseFloat(m[1], 64)
		hi := math.Inf(1)
		if m[3] == "" {
			hi, _ = strconv.ParseFloat(m[2], 64)
		}
		tests = append(tests, func(p refPatient) bool {
			age := math.Min(math.Max(float64(p.ints["age"]), info.Min), info.Max)
			return lo <= age && age <= hi
		})
	}
	return func(p refPatient) bool {
		for _, f := range tests {
			if !f(p) {
				return false
			}
		}
		return true
	}
}

func columnInfo(t *testing.T, name string) ColumnInfo {
	for _, c := range Columns() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no column %q", name)
	return ColumnInfo{}
}

// writeFixture writes a small hand-made dataset with edge cases: values
// outside the bounds, values on bin edges, NULLs, empty code lists.
func writeFixture(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "fixture.parquet")
	w, err := CreateDataset(t.Context(), path, testRefDate)
	if err != nil {
		t.Fatal(err)
	}
	m := Measured
	for _, p := range []Patient{
		{ID: "a", Sex: "F", BirthYear: 1950, Age: 74, Conditions: []string{"44054006", "59621000"}, Medications: []string{"860975"},
			HbA1c: m(7.25), BMI: m(25), SBP: m(300), DBP: m(95), LDL: m(130)}, // sbp clamped to 260, hba1c rounds to 7.3
		{ID: "b", Sex: "M", BirthYear: 1980, Age: 43, Conditions: []string{"E11.9"},
			HbA1c: m(25), BMI: m(5), SBP: m(120)}, // hba1c clamped to 20, bmi to 10; dbp, ldl NULL
		{ID: "c", Sex: "M", BirthYear: 2000, Age: 24, Conditions: []string{}, HbA1c: m(3), BMI: m(30), DBP: m(80)},
		{ID: "d", Sex: "F", BirthYear: 1930, Age: 94, Conditions: []string{"E11.65", "15777000"}, Medications: []string{"314076", "617312"},
			BMI: m(18.5), SBP: m(60), DBP: m(30), LDL: m(400), Deceased: true},
		{ID: "e", Sex: "F", BirthYear: 2005, Age: 18},
		{ID: "f", Sex: "M", BirthYear: 1899, Age: 125, HbA1c: m(5.4), BMI: m(35), LDL: m(19.6), Deceased: true}, // age clamped to 120
	} {
		if err := w.Write(t.Context(), &p); err != nil {
			t.Fatalf("Write(%s): %v", p.ID, err)
		}
	}
	if _, err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	return path
}

// testQueries exercise every aggregate, operator, NULL handling and GROUP BY.
var testQueries = []string{
	"SELECT COUNT(*) FROM cohort",
	"SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c), SUM(hba1c) FROM cohort GROUP BY sex",
	"SELECT COUNT(*), AVG(hba1c) AS mean_a1c, STDDEV(hba1c), HISTOGRAM(bmi, 18.5, 25, 30, 35) FROM cohort WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7 GROUP BY sex",
	"SELECT COUNT(hba1c), COUNT(ldl), COUNT(sbp), COUNT(dbp), COUNT(bmi) FROM cohort GROUP BY sex",
	"SELECT SUM(age), AVG(birth_year), STDDEV(age), HISTOGRAM(age, 0, 18, 40, 65, 120) FROM cohort",
	"SELECT AVG(sbp), STDDEV(dbp), AVG(ldl), HISTOGRAM(sbp, 60, 120, 140, 160, 260), HISTOGRAM(ldl, 20, 100, 130, 160, 400) FROM cohort GROUP BY sex",
	"SELECT COUNT(*) FROM cohort WHERE NOT hba1c > 7",
	"SELECT COUNT(*) FROM cohort WHERE hba1c > 7 OR NOT ldl < 100",
	"SELECT COUNT(*) FROM cohort WHERE NOT (hba1c > 7 AND ldl < 100)",
	"SELECT COUNT(*) FROM cohort WHERE hba1c IS NULL OR bmi IS NOT NULL AND sbp != 120",
	"SELECT COUNT(*) FROM cohort WHERE age NOT BETWEEN 30 AND 60 AND sex = 'M'",
	"SELECT COUNT(*) FROM cohort WHERE sex != 'F' OR age <= 25 OR age >= 90 OR age = 43 OR age < 19",
	"SELECT COUNT(*), AVG(bmi) FROM cohort WHERE HAS_CONDITION('E11*', '4405*') GROUP BY sex",
	"SELECT COUNT(*) FROM cohort WHERE HAS_MEDICATION('860975', '314076') AND NOT HAS_CONDITION('59621000')",
	"SELECT COUNT(*) FROM cohort WHERE HAS_CONDITION('55822004') OR HAS_CONDITION('431855005') OR HAS_CONDITION('195967001')",
	"SELECT HISTOGRAM(hba1c, 3, 5.7, 6.5, 8, 10, 20), AVG(hba1c) FROM cohort WHERE HAS_CONDITION('15777000') OR HAS_CONDITION('44054006') GROUP BY sex",
	"SELECT COUNT(*), STDDEV(bmi), HISTOGRAM(bmi, 10, 18.5, 25, 30, 35, 40, 80) FROM cohort WHERE bmi >= 30 AND (sbp > 140 OR dbp > 90)",
	"SELECT COUNT(*) FROM cohort WHERE hba1c = 7.3 OR hba1c = 5.4 OR bmi = 18.5",
	"SELECT COUNT(*) FROM cohort WHERE birth_year > 1960 AND birth_year <= 1990 AND NOT NOT hba1c <= 6.4",
	"SELECT COUNT(*), SUM(ldl) FROM cohort WHERE ldl BETWEEN 100 AND 20",
	"SELECT COUNT(*), VARIANCE(bmi), AVG(sbp) FROM cohort WHERE vital_status = 'alive' GROUP BY AGE_BAND(10), sex",
	"SELECT COUNT(*) FROM cohort WHERE age IN (18, 43, 60, 125) OR ldl NOT IN (130, 100) OR sex IN ('M')",
	"SELECT HISTOGRAM(age, 0, 40, 120) FROM cohort WHERE vital_status NOT IN ('alive') GROUP BY vital_status",
	"SELECT COUNT(*), AVG(hba1c), VARIANCE(hba1c) FROM cohort GROUP BY vital_status, AGE_BAND(25)",
	"SELECT COUNT(*) FROM cohort WHERE hba1c IN (7.3, 5.4, 25) AND NOT bmi NOT IN (25, 30, 10) OR vital_status != 'deceased' AND age NOT IN (94)",
	"SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(7)",
}

func TestAggregateMatchesReference(t *testing.T) {
	n := 150_000 // three record batches, so several workers share the scan
	if testing.Short() {
		n = 20_000
	}
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.parquet")
	if _, err := Generate(t.Context(), gen, GenerateOptions{Patients: n, Seed: 7, RefDate: testRefDate, IDPrefix: "g-"}); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []struct{ name, path string }{{"generated", gen}, {"fixture", writeFixture(t, dir)}} {
		t.Run(ds.name, func(t *testing.T) {
			d, err := Open(t.Context(), ds.path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			rows := refRows(t, d)
			// A subset of patients: every third one.
			subset := map[string]bool{}
			var ids []string
			for i, p := range rows {
				if i%3 == 0 {
					subset[p.id] = true
					ids = append(ids, p.id)
				}
			}
			sets := []struct {
				name string
				set  *PatientSet
				ref  map[string]bool
			}{{"all", AllPatients(), nil}, {"subset", NewPatientSet(ids), subset}}
			for _, src := range testQueries {
				q, err := ParseQuery(src)
				if err != nil {
					t.Fatalf("ParseQuery(%q): %v", src, err)
				}
				for _, s := range sets {
					got, err := d.Aggregate(t.Context(), q, s.set)
					if err != nil {
						t.Fatalf("Aggregate(%q, %s): %v", src, s.name, err)
					}
					want := refAggregate(t, rows, q, s.ref)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("Aggregate(%q, %s) mismatch (-reference +got):\n%s", src, s.name, diff)
					}
				}
				if q.where == nil {
					continue
				}
				matched, err := d.Match(t.Context(), q.where)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, p := range rows {
					if refEval(t, q.where.root, p) == triTrue {
						want = append(want, p.id)
					}
				}
				if diff := cmp.Diff(want, matched); diff != "" {
					t.Errorf("Match(%q) mismatch (-reference +got):\n%s", q.where, diff)
				}
			}
		})
	}
}

// TestAggregateFixture pins a few hand-computed values on the fixture, so
// that the reference itself is checked against arithmetic done by hand.
func TestAggregateFixture(t *testing.T) {
	d, err := Open(t.Context(), writeFixture(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tests := []struct {
		src  string
		want []int64
	}{
		// hba1c fixed: a 73, b 200 (clamped from 25), c 30, f 54; centred at 115.
		{"SELECT AVG(hba1c) FROM cohort", []int64{4, (73 - 115) + (200 - 115) + (30 - 115) + (54 - 115)}},
		// Null hba1c (d, e): NOT (hba1c > 7) is unknown, so only c and f.
		{"SELECT COUNT(*) FROM cohort WHERE NOT hba1c > 7", []int64{2}},
		// sbp: a 260 (clamped from 300), b 120, d 60; bins [60,120) [120,260].
		{"SELECT HISTOGRAM(sbp, 60, 120, 260) FROM cohort", []int64{1, 2}},
		// age of f is 125, clamped to 120, centred at 60: 60.
		{"SELECT SUM(age) FROM cohort WHERE sex = 'M' AND age > 100", []int64{1, 60}},
		// E11 prefix: b and d; by sex F (d) then M (b).
		{"SELECT COUNT(*) FROM cohort WHERE HAS_CONDITION('E11*') GROUP BY sex", []int64{1, 1}},
		// Empty medications never match.
		{"SELECT COUNT(*) FROM cohort WHERE NOT HAS_MEDICATION('8*', '3*', '6*')", []int64{4}},
		// Ages c 24, e 18 | b 43 | a 74 | d 94, f 125 (clamped to 120, open last band).
		{"SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(30)", []int64{2, 1, 1, 2}},
		// d (F) and f (M) have died.
		{"SELECT COUNT(*) FROM cohort WHERE vital_status = 'deceased' GROUP BY sex", []int64{1, 1}},
		{"SELECT COUNT(*) FROM cohort GROUP BY vital_status, sex", []int64{2, 2, 1, 1}},
		// IN compares stored values: e 18, b 43, f 125.
		{"SELECT COUNT(*) FROM cohort WHERE age IN (18, 43, 125)", []int64{3}},
		// ldl a 130, d 400, f 19.6, others NULL: NULL NOT IN (...) is unknown.
		{"SELECT COUNT(*) FROM cohort WHERE ldl NOT IN (130, 400)", []int64{1}},
		// VARIANCE shares STDDEV's slots: n, centred sum, sum of squares of dbp
		// a 95, c 80, d 30 around the midpoint 95.
		{"SELECT VARIANCE(dbp) FROM cohort", []int64{3, 0 - 15 - 65, 0 + 15*15 + 65*65}},
	}
	for _, tt := range tests {
		q, err := ParseQuery(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Aggregate(t.Context(), q, AllPatients())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Aggregate(%q) mismatch (-want +got):\n%s", tt.src, diff)
		}
	}

	// Patient sets: unknown ids are ignored, an empty set counts nobody.
	q, _ := ParseQuery("SELECT COUNT(*) FROM cohort")
	for _, tt := range []struct {
		ids  []string
		want int64
	}{{[]string{"a", "b", "zz"}, 2}, {nil, 0}, {[]string{"f"}, 1}} {
		got, err := d.Aggregate(t.Context(), q, NewPatientSet(tt.ids))
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != tt.want {
			t.Errorf("Aggregate(COUNT(*), %v) = %d, want %d", tt.ids, got[0], tt.want)
		}
	}
}

func TestAggregateErrors(t *testing.T) {
	d, err := Open(t.Context(), writeFixture(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := ParseQuery("SELECT COUNT(*) FROM cohort")
	if _, err := d.Aggregate(t.Context(), nil, AllPatients()); err == nil {
		t.Error("Aggregate(nil query) succeeded")
	}
	if _, err := d.Aggregate(t.Context(), q, nil); err == nil {
		t.Error("Aggregate(nil set) succeeded")
	}
	if _, err := d.Match(t.Context(), nil); err == nil {
		t.Error("Match(nil) succeeded")
	}
	d.Close()
	if _, err := d.Aggregate(t.Context(), q, AllPatients()); err == nil {
		t.Error("Aggregate on a closed dataset succeeded")
	}
	c, _ := ParseCriteria("age > 1")
	if _, err := d.Match(t.Context(), c); err == nil {
		t.Error("Match on a closed dataset succeeded")
	}
}
