package cohorts

import (
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// typicalQuery is the typical query: 3 predicates, COUNT, AVG,
// STDDEV, a 10-bin histogram, GROUP BY sex.
const typicalQuery = "SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c), HISTOGRAM(bmi, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65) " +
	"FROM cohort WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7 GROUP BY sex"

// typicalLoop is the baseline of BenchmarkTypicalQuery: typicalQuery written
// by hand as one fused, branch-free loop over the same Arrow columns (the
// only branches are the code-list loop and the string comparisons of the
// codes, once per code), producing the same vector as Aggregate.
type typicalLoop struct {
	spc, count, n, sum, sumsq, hist int
	age, sex, cond, hba1c, bmi      column
	edges                           []int64
	match                           []bool
}

func newTypicalLoop(t testing.TB, q *Query) *typicalLoop {
	col := func(name string) column {
		c, ok := lookupColumn(name)
		if !ok {
			t.Fatalf("no column %s", name)
		}
		return c
	}
	l := &typicalLoop{spc: q.spc, count: -1, n: -1, sum: -1, sumsq: -1, hist: -1,
		age: col("age"), sex: col("sex"), cond: col("conditions"), hba1c: col("hba1c"), bmi: col("bmi")}
	for _, s := range q.stats {
		switch s.kind {
		case stCount:
			l.count = s.offset
		case stN:
			l.n = s.offset
		case stSum:
			l.sum = s.offset
		case stSumSq:
			l.sumsq = s.offset
		case stHist:
			l.hist, l.edges = s.offset, s.edges
		}
	}
	if l.count < 0 || l.n < 0 || l.sum < 0 || l.sumsq < 0 || l.hist < 0 || len(q.stats) != 5 {
		t.Fatalf("typical query layout %+v is not COUNT, N, SUM, SUMSQ, HIST", q.stats)
	}
	return l
}

func b2i(c bool) int64 {
	var x int64
	if c {
		x = 1
	}
	return x
}

// run adds the query's vector over every row of d to acc.
func (l *typicalLoop) run(d *Dataset, acc []int64) {
	hlo, hhi, hscale := l.hba1c.lo, l.hba1c.hi, float64(l.hba1c.scale())
	mid, _ := l.hba1c.centre()
	blo, bhi, bscale := l.bmi.lo, l.bmi.hi, float64(l.bmi.scale())
	e := l.edges
	last := len(e) - 1
	const seven = 7.0
	for bi := range d.batches {
		b := &d.batches[bi]
		n := b.n
		ages := b.ints[l.age.field].Int32Values()[:n]
		sex := b.cats[l.sex.field][:n]
		cl := b.codes[l.cond.field]
		ha, bm := b.floats[l.hba1c.field], b.floats[l.bmi.field]
		hv, bv := ha.Float64Values()[:n], bm.Float64Values()[:n]
		first, end := int(cl.offsets[0]), int(cl.offsets[n])
		if cap(l.match) < end-first {
			l.match = make([]bool, end-first)
		}
		match := l.match[:end-first]
		for j := range match {
			match[j] = cl.values.Value(first+j) == "44054006"
		}
		for i := range n {
			a := ages[i]
			var has int64
			for j := cl.offsets[i]; j < cl.offsets[i+1]; j++ {
				has |= b2i(match[int(j)-first])
			}
			x := hv[i]
			m := b2i(a >= 40) & b2i(a <= 75) & has & b2i(ha.IsValid(i)) & b2i(x > seven)
			base := int(sex[i]) * l.spc
			fx := int64(math.Round(min(max(x, hlo), hhi)*hscale)) - mid
			acc[base+l.count] += m
			acc[base+l.n] += m
			acc[base+l.sum] += m * fx
			acc[base+l.sumsq] += m * fx * fx
			v := int64(math.Round(min(max(bv[i], blo), bhi) * bscale))
			var bin int
			for j := 1; j < last; j++ {
				bin += int(b2i(v >= e[j]))
			}
			acc[base+l.hist+bin] += m & b2i(bm.IsValid(i)) & b2i(v >= e[0]) & b2i(v <= e[last])
		}
	}
}

// typicalSetup generates and opens a dataset of patients (closed at the
// end of the test) and parses typicalQuery.
func typicalSetup(t testing.TB, patients int) (*Dataset, *Query) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.parquet")
	if _, err := Generate(t.Context(), path, GenerateOptions{Patients: patients, Seed: 1, RefDate: testRefDate, IDPrefix: "c1-"}); err != nil {
		t.Fatal(err)
	}
	d, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	q, err := ParseQuery(typicalQuery)
	if err != nil {
		t.Fatal(err)
	}
	return d, q
}

// TestTypicalLoopMatchesAggregate checks that the benchmark's baseline
// computes exactly what Aggregate computes.
func TestTypicalLoopMatchesAggregate(t *testing.T) {
	d, q := typicalSetup(t, 30_000)
	got, err := d.Aggregate(t.Context(), q, AllPatients())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int64, len(got))
	newTypicalLoop(t, q).run(d, want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Aggregate differs from the hand-written loop (-loop +Aggregate):\n%s", diff)
	}
	if want[0]+want[q.spc] < 100 {
		t.Errorf("only %d patients selected: the test says little", want[0]+want[q.spc])
	}
}

// BenchmarkTypicalQuery evaluates typicalQuery over one million patients
// on one core (GOMAXPROCS 1: Aggregate runs on the calling goroutine) and,
// in the same iterations, the hand-written branch-free loop computing the
// same vector over the same Arrow columns. rows/s is the query's speed;
// x-baseline is its speed over the loop's (goal: at least 0.3).
func BenchmarkTypicalQuery(b *testing.B) {
	d, q := typicalSetup(b, 1_000_000)
	loop := newTypicalLoop(b, q)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	base := make([]int64, q.spc*2)
	var tq, tl time.Duration
	iters := 0
	for b.Loop() {
		start := time.Now()
		got, err := d.Aggregate(b.Context(), q, AllPatients())
		tq += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		clear(base)
		start = time.Now()
		loop.run(d, base)
		tl += time.Since(start)
		if iters == 0 && !slices.Equal(got, base) {
			b.Fatalf("Aggregate %v differs from the loop %v", got, base)
		}
		iters++
		b.StartTimer()
	}
	b.ReportMetric(float64(d.Rows())*float64(iters)/tq.Seconds(), "rows/s")
	b.ReportMetric(tl.Seconds()/tq.Seconds(), "x-baseline")
	b.ReportMetric(float64(d.Rows())*float64(iters)/tl.Seconds(), "baseline-rows/s")
}
