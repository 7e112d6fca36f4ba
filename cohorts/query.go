package cohorts

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Query is a parsed, validated aggregate query.
type Query struct {
	items   []selectItem
	where   *Criteria // nil: every patient
	groupBy []groupKey
	stats   []stat
	spc     int // slots per cell
	layout  Layout
}

type aggFn int

const (
	fnCount    aggFn = iota // COUNT(*)
	fnCountCol              // COUNT(col): non-null values
	fnSum
	fnAvg
	fnStddev
	fnVariance
	fnHist
)

func (f aggFn) String() string {
	return [...]string{"COUNT", "COUNT", "SUM", "AVG", "STDDEV", "VARIANCE", "HISTOGRAM"}[f]
}

// groupKey is one GROUP BY term: a categorical column, or AGE_BAND(width).
// Its cells come from the declared domain or the age bounds, never from data.
type groupKey struct {
	col    column   // the categorical column, or age for an age band
	width  int      // AGE_BAND width in years; 0 for a categorical column
	labels []string // one per cell, in cell order
}

// Age bands: AGE_BAND(w) puts age a in band min(a/w, last), where the last
// band is open-ended, so the clamped ages 0..120 fill ceil(120/w) cells.
const (
	minAgeBand = 5
	maxAgeBand = 120
)

func ageBandKey(width int) groupKey {
	age, _ := lookupColumn("age")
	hi := int(age.hi)
	n := (hi + width - 1) / width
	g := groupKey{col: age, width: width}
	for k := range n {
		lo := k * width
		if k == n-1 {
			g.labels = append(g.labels, fmt.Sprintf("%d+", lo))
		} else {
			g.labels = append(g.labels, fmt.Sprintf("%d-%d", lo, lo+width-1))
		}
	}
	return g
}

// name is the key's output column name.
func (g groupKey) name() string {
	if g.width > 0 {
		return fmt.Sprintf("age_band(%d)", g.width)
	}
	return g.col.name
}

// text is the key as written in a normalised query.
func (g groupKey) text() string {
	if g.width > 0 {
		return fmt.Sprintf("AGE_BAND(%d)", g.width)
	}
	return g.col.name
}

type selectItem struct {
	fn    aggFn
	col   column    // unset for COUNT(*)
	edges []float64 // HISTOGRAM
	alias string    // "" if none
	// indices into Query.stats; -1 when unused
	count, n, sum, sumsq, hist int
}

// name is the item's output name: its alias, or a lower-case rendering.
func (it *selectItem) name() string {
	if it.alias != "" {
		return it.alias
	}
	if it.fn == fnCount {
		return "count"
	}
	return strings.ToLower(it.fn.String()) + "(" + it.col.name + ")"
}

func (it *selectItem) write(b *strings.Builder) {
	b.WriteString(it.fn.String())
	b.WriteByte('(')
	if it.fn == fnCount {
		b.WriteByte('*')
	} else {
		b.WriteString(it.col.name)
	}
	for _, e := range it.edges {
		b.WriteString(", ")
		b.WriteString(formatNum(e))
	}
	b.WriteByte(')')
	if it.alias != "" {
		b.WriteString(" AS ")
		b.WriteString(it.alias)
	}
}

// statKind is one statistic a query's aggregate vector carries per cell.
type statKind int

const (
	stCount statKind = iota // patients
	stN                     // non-null values of a column
	stSum                   // sum of centred fixed-point values
	stSumSq                 // sum of squares of centred fixed-point values
	stHist                  // histogram bins of fixed-point values
)

// stat is one statistic: one Slot group, width slots wide in every cell.
type stat struct {
	kind   statKind
	col    column
	edges  []int64 // stHist: fixed-point edges
	labels []string
	offset int // first slot within a cell
	width  int
}

func (s *stat) key() string {
	k := fmt.Sprintf("%d|%s", s.kind, s.col.name)
	for _, e := range s.edges {
		k += fmt.Sprintf("|%d", e)
	}
	return k
}

// ParseQuery parses and validates an aggregate query, e.g.
//
//	SELECT COUNT(*), AVG(hba1c) AS mean_a1c FROM cohort WHERE age >= 40 GROUP BY sex
//
// Errors are *SyntaxError, saying where and what was expected.
func ParseQuery(src string) (*Query, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	q := &Query{}
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	names := map[string]token{}
	for {
		t := p.peek()
		it, err := p.parseItem()
		if err != nil {
			return nil, err
		}
		if len(q.items) == maxItems {
			return nil, p.errorf(t, "at most %d aggregates per query", maxItems)
		}
		key := strings.ToLower(it.name())
		if prev, dup := names[key]; dup {
			return nil, p.errorf(t, "output column %q is already defined at %d:%d: use AS to name it differently", it.name(), prev.line, prev.col)
		}
		names[key] = t
		q.items = append(q.items, it)
		if !p.accept(tokComma) {
			break
		}
	}
	if t := p.peek(); t.upper() != "FROM" {
		return nil, p.errorf(t, `expected "," or FROM, found %s`, t.describe())
	}
	p.next()
	if t := p.peek(); t.kind == tokLParen {
		return nil, p.errorf(t, "subqueries are not supported: queries read FROM cohort, one row per patient")
	}
	tbl, err := p.expect(tokIdent, "cohort")
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(tbl.text, "cohort") {
		return nil, p.errorf(tbl, "unknown table %q: queries read FROM cohort", tbl.text)
	}
	if p.acceptKeyword("WHERE") {
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		q.where = &Criteria{root: e}
	}
	if p.acceptKeyword("GROUP") {
		if err := p.expectKeyword("BY"); err != nil {
			return nil, err
		}
		for {
			t := p.peek()
			key, err := p.parseGroupKey()
			if err != nil {
				return nil, err
			}
			for _, g := range q.groupBy {
				if g.col.name == key.col.name {
					return nil, p.errorf(t, "GROUP BY %s is repeated", g.text())
				}
			}
			if prev, clash := names[key.name()]; clash {
				return nil, p.errorf(prev, "output column %q clashes with GROUP BY %s: use AS to name it differently", key.name(), key.text())
			}
			if len(q.groupBy) == maxGroupBy {
				return nil, p.errorf(t, "at most %d GROUP BY columns", maxGroupBy)
			}
			q.groupBy = append(q.groupBy, key)
			if !p.accept(tokComma) {
				break
			}
		}
	}
	p.accept(tokSemicolon)
	if t := p.peek(); t.kind != tokEOF {
		want := "WHERE, GROUP BY or end of query"
		switch {
		case len(q.groupBy) > 0:
			want = `"," or end of query`
		case q.where != nil:
			want = "AND, OR, GROUP BY or end of query"
		}
		return nil, p.errorf(t, "expected %s, found %s", want, t.describe())
	}
	q.plan()
	if n := len(q.layout.Slots); n > maxLayoutSize {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: fmt.Sprintf("query needs %d aggregate slots, at most %d allowed", n, maxLayoutSize)}
	}
	return q, nil
}

// parseItem parses one SELECT item with its optional alias.
func (p *parser) parseItem() (selectItem, error) {
	it := selectItem{count: -1, n: -1, sum: -1, sumsq: -1, hist: -1}
	t := p.peek()
	switch {
	case t.kind == tokStar:
		return it, p.errorf(t, `expected %s, found "*": queries return aggregates only; "*" is allowed only in COUNT(*)`, aggregateList)
	case t.kind != tokIdent:
		return it, p.errorf(t, "expected %s, found %s", aggregateList, t.describe())
	case p.toks[p.pos+1].kind != tokLParen:
		up := t.upper()
		if isKeyword(up) {
			return it, p.errorf(t, "expected %s, found keyword %s", aggregateList, up)
		}
		col, ok := lookupColumn(strings.ToLower(t.text))
		switch {
		case ok && col.kind == kindID:
			return it, p.errorf(t, "column %q can never be queried: it identifies a patient", col.name)
		case ok:
			return it, p.errorf(t, "expected %s, found column %q: queries return aggregates only", aggregateList, col.name)
		}
		return it, p.errorf(t, "expected %s, found %s", aggregateList, t.describe())
	}
	p.next()
	p.next() // (
	fn := strings.ToUpper(t.text)
	switch fn {
	case "COUNT":
		it.fn = fnCount
	case "SUM":
		it.fn = fnSum
	case "AVG":
		it.fn = fnAvg
	case "STDDEV":
		it.fn = fnStddev
	case "VARIANCE":
		it.fn = fnVariance
	case "HISTOGRAM":
		it.fn = fnHist
	case "MIN", "MAX", "MEDIAN", "PERCENTILE", "PERCENTILE_CONT", "PERCENTILE_DISC", "MODE", "FIRST", "LAST", "ANY_VALUE", "ARRAY_AGG", "STRING_AGG", "GROUP_CONCAT":
		return it, p.errorf(t, "%s is not allowed: it would reveal individual values; use AVG, STDDEV or HISTOGRAM", fn)
	default:
		return it, p.errorf(t, "unknown function %s: expected %s", fn, aggregateList)
	}
	arg := p.peek()
	switch {
	case arg.kind == tokStar:
		if it.fn != fnCount {
			return it, p.errorf(arg, `"*" is allowed only in COUNT(*): %s needs a numeric column`, fn)
		}
		p.next()
	case arg.kind == tokIdent && !isKeyword(arg.upper()) && p.toks[p.pos+1].kind == tokLParen:
		return it, p.errorf(arg, "%s(%s(...)) is not allowed: an aggregate takes a column, not another aggregate or a function", fn, arg.upper())
	case arg.kind == tokIdent && !isKeyword(arg.upper()):
		p.next()
		col, err := p.queryableColumn(arg)
		if err != nil {
			return it, err
		}
		if !col.numeric() {
			return it, p.errorf(arg, "%s needs a numeric column, %q is not numeric", fn, col.name)
		}
		it.col = col
		if it.fn == fnCount {
			it.fn = fnCountCol
		}
	case arg.upper() == "DISTINCT":
		return it, p.errorf(arg, "DISTINCT is not allowed: distinct values can single out patients; COUNT(*) counts patients and COUNT(column) non-null values")
	default:
		what := "a numeric column"
		if it.fn == fnCount {
			what = `"*" or a numeric column`
		}
		return it, p.errorf(arg, "expected %s in %s(...), found %s", what, fn, arg.describe())
	}
	if it.fn == fnHist {
		if err := p.parseEdges(&it); err != nil {
			return it, err
		}
	}
	if _, err := p.expect(tokRParen, `")"`); err != nil {
		if it.fn != fnHist && p.peek().kind == tokComma {
			return it, p.errorf(p.peek(), "%s takes one argument", fn)
		}
		return it, err
	}
	if p.acceptKeyword("AS") {
		a := p.peek()
		if a.kind != tokIdent || isKeyword(a.upper()) {
			return it, p.errorf(a, "expected a name after AS, found %s", a.describe())
		}
		p.next()
		it.alias = a.text
	}
	return it, nil
}

// parseEdges parses HISTOGRAM's bin edges: ", e1, e2, ...".
func (p *parser) parseEdges(it *selectItem) error {
	c := it.col
	for p.accept(tokComma) {
		t := p.peek()
		if t.kind != tokNumber {
			return p.errorf(t, "expected a bin edge (a number), found %s", t.describe())
		}
		p.next()
		v := t.num
		switch {
		case len(it.edges) == maxBins+1:
			return p.errorf(t, "HISTOGRAM has at most %d bins (%d edges)", maxBins, maxBins+1)
		case len(it.edges) > 0 && v <= it.edges[len(it.edges)-1]:
			return p.errorf(t, "bin edges must be strictly increasing: %s after %s", formatNum(v), formatNum(it.edges[len(it.edges)-1]))
		case v < c.lo || v > c.hi:
			return p.errorf(t, "bin edge %s is outside %s's declared bounds [%s, %s]", formatNum(v), c.name, formatNum(c.lo), formatNum(c.hi))
		case !edgeDecimalsOK(v, c.decimals):
			return p.errorf(t, "bin edge %s has more than %d decimals, the precision of %s", formatNum(v), c.decimals, c.name)
		}
		it.edges = append(it.edges, v)
	}
	if len(it.edges) < 2 {
		return p.errorf(p.peek(), "HISTOGRAM(%s, e1, e2, ...) needs at least two bin edges", c.name)
	}
	return nil
}

// parseGroupKey parses one GROUP BY term: a categorical column or
// AGE_BAND(width).
func (p *parser) parseGroupKey() (groupKey, error) {
	t := p.peek()
	if t.kind != tokIdent || isKeyword(t.upper()) {
		return groupKey{}, p.errorf(t, "expected a column to GROUP BY (%s), found %s", groupableNames(), t.describe())
	}
	p.next()
	if p.peek().kind == tokLParen {
		if t.upper() != "AGE_BAND" {
			return groupKey{}, p.errorf(t, "unknown function %s in GROUP BY: expected AGE_BAND(width)", t.upper())
		}
		p.next() // (
		w := p.peek()
		if w.kind != tokNumber || w.num != math.Trunc(w.num) || w.num < minAgeBand || w.num > maxAgeBand {
			return groupKey{}, p.errorf(w, "AGE_BAND width must be a whole number of years from %d to %d (narrower bands come close to single ages), found %s", minAgeBand, maxAgeBand, w.describe())
		}
		p.next()
		if _, err := p.expect(tokRParen, `")"`); err != nil {
			return groupKey{}, err
		}
		return ageBandKey(int(w.num)), nil
	}
	col, err := p.queryableColumn(t)
	if err != nil {
		return groupKey{}, err
	}
	if col.groups == nil {
		kind := "it has unbounded cardinality"
		switch {
		case col.field == fAge:
			kind = "use AGE_BAND(width) to group ages"
		case col.numeric():
			kind = "numeric columns have unbounded cardinality"
		case col.kind == kindCodes:
			kind = "it holds lists of codes"
		}
		return groupKey{}, p.errorf(t, "cannot GROUP BY %q: %s; GROUP BY accepts only %s", col.name, kind, groupableNames())
	}
	return groupKey{col: col, labels: col.groups}, nil
}

func groupableNames() string {
	var names []string
	for _, c := range allColumns() {
		if c.groups != nil {
			names = append(names, c.name)
		}
	}
	return strings.Join(append(names, "AGE_BAND(width)"), ", ")
}

// String returns the normalised text of the query. The ledger stores the
// sha256 of it; it parses back to the same query and the same String.
func (q *Query) String() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := range q.items {
		if i > 0 {
			b.WriteString(", ")
		}
		q.items[i].write(&b)
	}
	b.WriteString(" FROM cohort")
	if q.where != nil {
		b.WriteString(" WHERE ")
		b.WriteString(q.where.String())
	}
	if len(q.groupBy) > 0 {
		b.WriteString(" GROUP BY ")
		for i, g := range q.groupBy {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(g.text())
		}
	}
	return b.String()
}

// Where returns the query's WHERE criteria, or nil if it has none.
func (q *Query) Where() *Criteria { return q.where }

// GroupBy returns the names of the GROUP BY columns, in order: a column's
// name, or "age_band(w)" for AGE_BAND(w).
func (q *Query) GroupBy() []string {
	var out []string
	for _, g := range q.groupBy {
		out = append(out, g.name())
	}
	return out
}

// Categories returns the sorted data categories of every column the query
// reads: in WHERE, in aggregates and in GROUP BY.
func (q *Query) Categories() []string {
	set := map[string]bool{}
	if q.where != nil {
		q.where.root.categories(set)
	}
	for _, it := range q.items {
		if it.fn != fnCount {
			set[it.col.category] = true
		}
	}
	for _, g := range q.groupBy {
		set[g.col.category] = true
	}
	return sortedKeys(set)
}

// Layout is the data-independent shape of a query's aggregate vector: every
// GROUP BY cell is enumerated from the column's bounded domain (sex: F, M;
// AGE_BAND(10): 0-9, 10-19, ..., 110+), never from the data. The vector holds, cell after cell, the same slots.
type Layout struct {
	Cells []Cell
	Slots []Slot
}

// Cell is one GROUP BY cell.
type Cell struct {
	Labels []string // one label per GROUP BY column; empty when no GROUP BY
}

// SlotKind says how a slot's value behaves.
type SlotKind int

const (
	SlotCount SlotKind = iota // count-like: patients, non-null counts, histogram bins
	SlotSum                   // sums, sums of squares
)

func (k SlotKind) String() string {
	if k == SlotCount {
		return "count"
	}
	return "sum"
}

// Slot is one int64 of the aggregate vector.
type Slot struct {
	Cell int
	Name string // e.g. "count", "n(hba1c)", "sum(hba1c)", "sumsq(hba1c)", "bin(bmi)[25,30)"
	Kind SlotKind
	// Group numbers the statistic within the cell; slots of one group are
	// one statistic (a histogram's bins form one group), and a statistic has
	// the same Group in every cell. Cells are disjoint, so a noise
	// calibrator gives each Group one share of the budget.
	Group int
	// Gate is the index (in Layout.Slots) of the count-like slot whose
	// suppression suppresses this slot: itself for count-like slots, n(x)
	// for sums of x.
	Gate int
	// Sensitivity is the L1 sensitivity of the slot's group to adding or
	// removing one patient: 1 for counts and histograms, the half-range in
	// fixed point for centred sums, its square for sums of squares.
	Sensitivity int64
	// MaxAbs is the largest |contribution| of one patient to this slot.
	MaxAbs int64
}

// Layout returns the query's layout. The caller may modify the copy.
func (q *Query) Layout() Layout {
	l := Layout{Cells: make([]Cell, len(q.layout.Cells)), Slots: slices.Clone(q.layout.Slots)}
	for i, c := range q.layout.Cells {
		l.Cells[i] = Cell{Labels: slices.Clone(c.Labels)}
	}
	return l
}

// plan derives the statistics the items need (shared between items: AVG and
// STDDEV of one column use the same n and sum) and the layout.
func (q *Query) plan() {
	index := map[string]int{}
	need := func(s stat) int {
		if i, ok := index[s.key()]; ok {
			return i
		}
		s.width = 1
		if s.kind == stHist {
			s.width = len(s.edges) - 1
		}
		s.offset = q.spc
		q.spc += s.width
		q.stats = append(q.stats, s)
		index[s.key()] = len(q.stats) - 1
		return len(q.stats) - 1
	}
	for i := range q.items {
		it := &q.items[i]
		c := it.col
		switch it.fn {
		case fnCount:
			it.count = need(stat{kind: stCount})
		case fnCountCol:
			it.n = need(stat{kind: stN, col: c})
		case fnSum, fnAvg:
			it.n = need(stat{kind: stN, col: c})
			it.sum = need(stat{kind: stSum, col: c})
		case fnStddev, fnVariance:
			it.n = need(stat{kind: stN, col: c})
			it.sum = need(stat{kind: stSum, col: c})
			it.sumsq = need(stat{kind: stSumSq, col: c})
		case fnHist:
			s := stat{kind: stHist, col: c}
			scale := float64(c.scale())
			for _, e := range it.edges {
				s.edges = append(s.edges, int64(math.Round(e*scale)))
			}
			for b := range len(it.edges) - 1 {
				closer := ")"
				if b == len(it.edges)-2 {
					closer = "]"
				}
				s.labels = append(s.labels, "["+formatNum(it.edges[b])+","+formatNum(it.edges[b+1])+closer)
			}
			it.hist = need(s)
		}
	}

	// Cells: the cartesian product of the GROUP BY domains, first column slowest.
	cells := []Cell{{Labels: []string{}}}
	for _, g := range q.groupBy {
		var next []Cell
		for _, c := range cells {
			for _, l := range g.labels {
				next = append(next, Cell{Labels: append(slices.Clone(c.Labels), l)})
			}
		}
		cells = next
	}
	q.layout = Layout{Cells: cells}
	for ci := range cells {
		base := ci * q.spc
		for si, s := range q.stats {
			_, half := s.col.centre()
			for w := range s.width {
				slot := Slot{Cell: ci, Group: si, Gate: base + s.offset + w, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1}
				switch s.kind {
				case stCount:
					slot.Name = "count"
				case stN:
					slot.Name = "n(" + s.col.name + ")"
				case stSum:
					slot.Name = "sum(" + s.col.name + ")"
					slot.Kind, slot.Sensitivity, slot.MaxAbs = SlotSum, half, half
					slot.Gate = base + q.stats[index[(&stat{kind: stN, col: s.col}).key()]].offset
				case stSumSq:
					slot.Name = "sumsq(" + s.col.name + ")"
					slot.Kind, slot.Sensitivity, slot.MaxAbs = SlotSum, half*half, half*half
					slot.Gate = base + q.stats[index[(&stat{kind: stN, col: s.col}).key()]].offset
				case stHist:
					slot.Name = "bin(" + s.col.name + ")" + s.labels[w]
				}
				q.layout.Slots = append(q.layout.Slots, slot)
			}
		}
	}
}
