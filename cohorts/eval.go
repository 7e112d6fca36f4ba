package cohorts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// PatientSet is a set of patient ids a custodian includes in a query: the
// patients whose licences are active and cover the query's columns.
type PatientSet struct {
	all bool
	ids map[string]struct{}
}

// NewPatientSet returns the set of ids. It copies the ids.
func NewPatientSet(ids []string) *PatientSet {
	s := &PatientSet{ids: make(map[string]struct{}, len(ids))}
	for _, id := range ids {
		s.ids[strings.Clone(id)] = struct{}{}
	}
	return s
}

// AllPatients returns the set of every patient of any dataset.
func AllPatients() *PatientSet { return &PatientSet{all: true} }

// All reports whether s is AllPatients.
func (s *PatientSet) All() bool { return s.all }

// Len returns the number of ids in s, or -1 for AllPatients.
func (s *PatientSet) Len() int {
	if s.all {
		return -1
	}
	return len(s.ids)
}

// Contains reports whether id is in s.
func (s *PatientSet) Contains(id string) bool {
	if s.all {
		return true
	}
	_, ok := s.ids[id]
	return ok
}

// Aggregate evaluates q over the rows of d whose patient id is in sel and
// returns one int64 per slot of q.Layout(). Only the columns q uses are read.
func (d *Dataset) Aggregate(ctx context.Context, q *Query, sel *PatientSet) ([]int64, error) {
	if q == nil {
		return nil, errors.New("aggregate: nil query")
	}
	if sel == nil {
		return nil, errors.New("aggregate: nil patient set (use AllPatients to include everyone)")
	}
	if d.closed {
		return nil, fmt.Errorf("aggregate: %w", ErrClosed)
	}
	out := make([]int64, len(q.layout.Slots))
	workers := min(runtime.GOMAXPROCS(0), len(d.batches))
	if workers <= 1 {
		ev := newEvaluator(d.maxBatch())
		for i := range d.batches {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("aggregate: %w", err)
			}
			q.aggregateBatch(&d.batches[i], sel, ev, out)
		}
		return out, nil
	}
	// Batches are independent and integer sums commute: split them among
	// workers, each with its own buffers and accumulator.
	accs := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		accs[w] = make([]int64, len(out))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := newEvaluator(d.maxBatch())
			for i := w; i < len(d.batches); i += workers {
				if ctx.Err() != nil {
					return
				}
				q.aggregateBatch(&d.batches[i], sel, ev, accs[w])
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	for _, acc := range accs {
		for i, v := range acc {
			out[i] += v
		}
	}
	return out, nil
}

// Match returns the ids of the patients matching c, in file order, for offer
// matching. They are record ids: for custodian-side use only.
func (d *Dataset) Match(ctx context.Context, c *Criteria) ([]string, error) {
	if c == nil {
		return nil, errors.New("match: nil criteria")
	}
	if d.closed {
		return nil, fmt.Errorf("match: %w", ErrClosed)
	}
	ev := newEvaluator(d.maxBatch())
	var ids []string
	for i := range d.batches {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("match: %w", err)
		}
		b := &d.batches[i]
		t, f := ev.t[:b.n], ev.f[:b.n]
		c.root.eval(b, t, f, &ev.sc)
		for r, ok := range t {
			if ok {
				ids = append(ids, strings.Clone(b.id.Value(r)))
			}
		}
	}
	return ids, nil
}

func (d *Dataset) maxBatch() int {
	n := 0
	for _, b := range d.batches {
		n = max(n, b.n)
	}
	return n
}

// evaluator holds one goroutine's per-batch buffers, allocated once per
// query so the per-row loops never allocate.
type evaluator struct {
	sc    scratch
	t, f  []bool
	cell  []int32
	band  []uint8
	fixed [numFields][]int64
	valid [numFields][]bool
}

func newEvaluator(n int) *evaluator {
	return &evaluator{sc: scratch{n: n}, t: make([]bool, n), f: make([]bool, n), cell: make([]int32, n), band: make([]uint8, n)}
}

// scratch lends bool buffers to expression nodes.
type scratch struct {
	n         int
	free      [][]bool
	codeMatch []bool
}

func (s *scratch) get(n int) []bool {
	if k := len(s.free); k > 0 {
		b := s.free[k-1]
		s.free = s.free[:k-1]
		return b[:n]
	}
	return make([]bool, s.n)[:n]
}

func (s *scratch) put(bufs ...[]bool) { s.free = append(s.free, bufs...) }

// aggregateBatch adds one batch's contributions to acc.
func (q *Query) aggregateBatch(b *batch, sel *PatientSet, ev *evaluator, acc []int64) {
	n := b.n
	rows := ev.t[:n]
	if q.where != nil {
		q.where.root.eval(b, rows, ev.f[:n], &ev.sc)
	} else {
		for i := range rows {
			rows[i] = true
		}
	}
	if !sel.all {
		for i, ok := range rows {
			if ok {
				_, rows[i] = sel.ids[b.id.Value(i)]
			}
		}
	}

	// Cell of each row: the GROUP BY codes, first column slowest.
	cell := ev.cell[:n]
	for i := range cell {
		cell[i] = 0
	}
	for _, g := range q.groupBy {
		k := int32(len(g.labels))
		codes := b.groupCodes(g, ev)
		for i := range cell {
			cell[i] = cell[i]*k + int32(codes[i])
		}
	}

	// Fixed-point values of every numeric column an aggregate reads, once each.
	var filled [numFields]bool
	for _, s := range q.stats {
		if s.kind != stCount && !filled[s.col.field] {
			ev.fill(b, s.col)
			filled[s.col.field] = true
		}
	}

	spc := int32(q.spc)
	for _, s := range q.stats {
		off := int32(s.offset)
		switch s.kind {
		case stCount:
			for i, ok := range rows {
				if ok {
					acc[cell[i]*spc+off]++
				}
			}
		case stN:
			valid := ev.valid[s.col.field][:n]
			for i, ok := range rows {
				if ok && valid[i] {
					acc[cell[i]*spc+off]++
				}
			}
		case stSum, stSumSq:
			valid, fx := ev.valid[s.col.field][:n], ev.fixed[s.col.field][:n]
			mid, _ := s.col.centre()
			sq := s.kind == stSumSq
			for i, ok := range rows {
				if ok && valid[i] {
					v := fx[i] - mid
					if sq {
						v *= v
					}
					acc[cell[i]*spc+off] += v
				}
			}
		case stHist:
			valid, fx := ev.valid[s.col.field][:n], ev.fixed[s.col.field][:n]
			e := s.edges
			last := len(e) - 1
			for i, ok := range rows {
				if !ok || !valid[i] {
					continue
				}
				v := fx[i]
				if v < e[0] || v > e[last] {
					continue
				}
				// largest j < last with e[j] <= v: bins are [e_j, e_j+1), the last one closed.
				lo, hi := 0, last
				for hi-lo > 1 {
					m := (lo + hi) / 2
					if e[m] <= v {
						lo = m
					} else {
						hi = m
					}
				}
				acc[cell[i]*spc+off+int32(lo)]++
			}
		}
	}
}

// groupCodes returns, per row, the index of the row's cell label in g.labels.
func (b *batch) groupCodes(g groupKey, ev *evaluator) []uint8 {
	if g.width == 0 {
		return b.cats[g.col.field][:b.n]
	}
	// AGE_BAND: ages clamped to the column's bounds, the last band open-ended.
	lo, hi := int32(g.col.lo), int32(g.col.hi)
	w, last := int32(g.width), int32(len(g.labels)-1)
	band := ev.band[:b.n]
	for i, a := range b.ints[g.col.field].Int32Values()[:b.n] {
		band[i] = uint8(min((min(max(a, lo), hi)-lo)/w, last))
	}
	return band
}

// fill computes the fixed-point value round(clamp(x)·10^d) and the validity
// of column c for every row of batch b. It is the one place values become
// fixed point, so sums and histograms agree exactly.
func (ev *evaluator) fill(b *batch, c column) {
	n := b.n
	f := c.field
	if ev.fixed[f] == nil {
		ev.fixed[f] = make([]int64, ev.sc.n)
		ev.valid[f] = make([]bool, ev.sc.n)
	}
	fx, valid := ev.fixed[f][:n], ev.valid[f][:n]
	switch c.kind {
	case kindInt:
		lo, hi := c.fixedBounds()
		scale := c.scale()
		for i, v := range b.ints[f].Int32Values()[:n] {
			fx[i] = min(max(int64(v)*scale, lo), hi)
			valid[i] = true
		}
	case kindFloat:
		a := b.floats[f]
		vals := a.Float64Values()[:n]
		scale := float64(c.scale())
		for i, v := range vals {
			valid[i] = a.IsValid(i)
			fx[i] = int64(math.Round(min(max(v, c.lo), c.hi) * scale))
		}
	}
}

// interval turns a numeric comparison into lo <= x <= hi, negated if neg, so
// one loop serves every operator.
func (e *cmpExpr) interval() (lo, hi float64, neg bool) {
	v := e.num
	switch e.op {
	case "=":
		return v, v, false
	case "!=":
		return v, v, true
	case "<":
		return math.Inf(-1), math.Nextafter(v, math.Inf(-1)), false
	case "<=":
		return math.Inf(-1), v, false
	case ">":
		return math.Nextafter(v, math.Inf(1)), math.Inf(1), false
	default: // ">="
		return v, math.Inf(1), false
	}
}

func (e *cmpExpr) eval(b *batch, t, f []bool, _ *scratch) {
	if e.col.kind == kindCat {
		code, _ := e.col.groupIndex(e.str)
		c := uint8(code)
		neg := e.op == "!="
		for i, s := range b.cats[e.col.field][:len(t)] {
			in := s == c
			t[i], f[i] = in != neg, in == neg
		}
		return
	}
	lo, hi, neg := e.interval()
	evalInterval(b, e.col, lo, hi, neg, t, f)
}

func (e *betweenExpr) eval(b *batch, t, f []bool, _ *scratch) {
	evalInterval(b, e.col, e.lo, e.hi, e.not, t, f)
}

// evalInterval sets t where lo <= x <= hi (negated if neg) and f where the
// opposite holds; NULL rows are in neither.
func evalInterval(b *batch, c column, lo, hi float64, neg bool, t, f []bool) {
	switch c.kind {
	case kindInt:
		for i, v := range b.ints[c.field].Int32Values()[:len(t)] {
			x := float64(v)
			in := x >= lo && x <= hi
			t[i], f[i] = in != neg, in == neg
		}
	case kindFloat:
		a := b.floats[c.field]
		nulls := a.NullN() > 0
		for i, x := range a.Float64Values()[:len(t)] {
			if nulls && a.IsNull(i) {
				t[i], f[i] = false, false
				continue
			}
			in := x >= lo && x <= hi
			t[i], f[i] = in != neg, in == neg
		}
	}
}

func (e *inExpr) eval(b *batch, t, f []bool, _ *scratch) {
	neg := e.not
	switch e.col.kind {
	case kindCat:
		var member [256]bool
		for _, v := range e.strs {
			i, _ := e.col.groupIndex(v)
			member[i] = true
		}
		for i, s := range b.cats[e.col.field][:len(t)] {
			in := member[s]
			t[i], f[i] = in != neg, in == neg
		}
	case kindInt:
		for i, v := range b.ints[e.col.field].Int32Values()[:len(t)] {
			in := slices.Contains(e.nums, float64(v))
			t[i], f[i] = in != neg, in == neg
		}
	case kindFloat:
		a := b.floats[e.col.field]
		nulls := a.NullN() > 0
		for i, x := range a.Float64Values()[:len(t)] {
			if nulls && a.IsNull(i) {
				t[i], f[i] = false, false
				continue
			}
			in := slices.Contains(e.nums, x)
			t[i], f[i] = in != neg, in == neg
		}
	}
}

func (e *nullExpr) eval(b *batch, t, f []bool, _ *scratch) {
	a := b.floats[e.col.field]
	for i := range t {
		isNull := a.IsNull(i)
		t[i], f[i] = isNull != e.not, isNull == e.not
	}
}

func (e *hasExpr) eval(b *batch, t, f []bool, sc *scratch) {
	cl := b.codes[e.col.field]
	first, end := int(cl.offsets[0]), int(cl.offsets[len(t)])
	if cap(sc.codeMatch) < end-first {
		sc.codeMatch = make([]bool, end-first)
	}
	match := sc.codeMatch[:end-first]
	for j := range match {
		match[j] = e.matches(cl.values.Value(first + j))
	}
	for i := range t {
		has := false
		for j := cl.offsets[i]; j < cl.offsets[i+1]; j++ {
			if match[int(j)-first] {
				has = true
				break
			}
		}
		t[i], f[i] = has, !has
	}
}

// matches reports whether code equals one of e's codes or starts with the
// prefix of one written with a trailing '*'.
func (e *hasExpr) matches(code string) bool {
	for _, c := range e.codes {
		if p, ok := strings.CutSuffix(c, "*"); ok {
			if strings.HasPrefix(code, p) {
				return true
			}
		} else if code == c {
			return true
		}
	}
	return false
}

func (e *notExpr) eval(b *batch, t, f []bool, sc *scratch) { e.x.eval(b, f, t, sc) }

func (e *andExpr) eval(b *batch, t, f []bool, sc *scratch) {
	e.terms[0].eval(b, t, f, sc)
	t2, f2 := sc.get(len(t)), sc.get(len(t))
	for _, term := range e.terms[1:] {
		term.eval(b, t2, f2, sc)
		for i := range t {
			t[i] = t[i] && t2[i]
			f[i] = f[i] || f2[i]
		}
	}
	sc.put(t2, f2)
}

func (e *orExpr) eval(b *batch, t, f []bool, sc *scratch) {
	e.terms[0].eval(b, t, f, sc)
	t2, f2 := sc.get(len(t)), sc.get(len(t))
	for _, term := range e.terms[1:] {
		term.eval(b, t2, f2, sc)
		for i := range t {
			t[i] = t[i] || t2[i]
			f[i] = f[i] && f2[i]
		}
	}
	sc.put(t2, f2)
}
