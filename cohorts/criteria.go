package cohorts

import (
	"slices"
	"strings"
)

// Criteria is a parsed, validated WHERE expression: a cohort request's
// inclusion criteria, or a query's filter.
type Criteria struct {
	root expr
}

// ParseCriteria parses a WHERE expression (without the WHERE keyword), e.g.
//
//	age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7
//
// Errors are *SyntaxError.
func ParseCriteria(src string) (*Criteria, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	if p.peek().kind == tokEOF {
		return nil, p.errorf(p.peek(), "expected a condition, found end of input")
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	p.accept(tokSemicolon)
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "expected AND, OR or end of criteria, found %s", t.describe())
	}
	return &Criteria{root: e}, nil
}

// String returns the normalised text of the criteria: keywords in upper case,
// column names in lower case, single spaces, numbers in shortest form and only
// the parentheses precedence needs. It parses back to the same criteria.
func (c *Criteria) String() string {
	var b strings.Builder
	c.root.write(&b, precOr)
	return b.String()
}

// Categories returns the sorted data categories the criteria read.
func (c *Criteria) Categories() []string {
	set := map[string]bool{}
	c.root.categories(set)
	return sortedKeys(set)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Operator precedence, loosest first, for printing with minimal parentheses.
const (
	precOr = iota
	precAnd
	precNot
	precAtom
)

// expr is a node of a WHERE expression. Evaluation is vectorised (see
// eval.go): a node fills, for a whole record batch, which rows make it true
// and which make it false; rows in neither are unknown (SQL NULL).
type expr interface {
	prec() int
	write(b *strings.Builder, ctx int)
	categories(set map[string]bool)
	eval(b *batch, t, f []bool, sc *scratch)
}

// writeExpr writes e, in parentheses if it binds looser than its context.
func writeExpr(b *strings.Builder, e expr, ctx int) {
	if e.prec() < ctx {
		b.WriteByte('(')
		e.write(b, precOr)
		b.WriteByte(')')
		return
	}
	e.write(b, ctx)
}

type andExpr struct{ terms []expr }
type orExpr struct{ terms []expr }
type notExpr struct{ x expr }

func (*andExpr) prec() int { return precAnd }
func (*orExpr) prec() int  { return precOr }
func (*notExpr) prec() int { return precNot }

func (e *andExpr) write(b *strings.Builder, _ int) {
	for i, t := range e.terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		writeExpr(b, t, precNot)
	}
}

func (e *orExpr) write(b *strings.Builder, _ int) {
	for i, t := range e.terms {
		if i > 0 {
			b.WriteString(" OR ")
		}
		writeExpr(b, t, precAnd)
	}
}

func (e *notExpr) write(b *strings.Builder, _ int) {
	b.WriteString("NOT ")
	writeExpr(b, e.x, precNot)
}

func (e *andExpr) categories(set map[string]bool) {
	for _, t := range e.terms {
		t.categories(set)
	}
}

func (e *orExpr) categories(set map[string]bool) {
	for _, t := range e.terms {
		t.categories(set)
	}
}

func (e *notExpr) categories(set map[string]bool) { e.x.categories(set) }

// cmpExpr compares a column with a literal. For numeric columns the
// comparison is on the stored value (clamping applies to aggregates only).
type cmpExpr struct {
	col column
	op  string // = != < <= > >=
	num float64
	str string // categorical columns: the value's declared spelling
}

// inExpr is col [NOT] IN (values...): numbers for a numeric column, values
// of the declared domain for a categorical one. NULL is in no list, and
// (SQL) NULL NOT IN (...) is unknown too.
type inExpr struct {
	col  column
	nums []float64
	strs []string
	not  bool
}

// betweenExpr is col [NOT] BETWEEN lo AND hi, bounds included.
type betweenExpr struct {
	col    column
	lo, hi float64
	not    bool
}

// nullExpr is col IS [NOT] NULL.
type nullExpr struct {
	col column
	not bool
}

// hasExpr is HAS_CONDITION(...) or HAS_MEDICATION(...): true when the
// patient's list holds a code equal to one of codes, or starting with the
// prefix of a code written with a trailing '*'.
type hasExpr struct {
	col   column
	codes []string
}

func (*cmpExpr) prec() int     { return precAtom }
func (*betweenExpr) prec() int { return precAtom }
func (*nullExpr) prec() int    { return precAtom }
func (*hasExpr) prec() int     { return precAtom }
func (*inExpr) prec() int      { return precAtom }

func (e *cmpExpr) write(b *strings.Builder, _ int) {
	b.WriteString(e.col.name)
	b.WriteByte(' ')
	b.WriteString(e.op)
	b.WriteByte(' ')
	if e.col.kind == kindCat {
		b.WriteString(quoteSQL(e.str))
	} else {
		b.WriteString(formatNum(e.num))
	}
}

func (e *betweenExpr) write(b *strings.Builder, _ int) {
	b.WriteString(e.col.name)
	if e.not {
		b.WriteString(" NOT")
	}
	b.WriteString(" BETWEEN ")
	b.WriteString(formatNum(e.lo))
	b.WriteString(" AND ")
	b.WriteString(formatNum(e.hi))
}

func (e *inExpr) write(b *strings.Builder, _ int) {
	b.WriteString(e.col.name)
	if e.not {
		b.WriteString(" NOT")
	}
	b.WriteString(" IN (")
	for i, v := range e.nums {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatNum(v))
	}
	for i, v := range e.strs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteSQL(v))
	}
	b.WriteByte(')')
}

func (e *nullExpr) write(b *strings.Builder, _ int) {
	b.WriteString(e.col.name)
	if e.not {
		b.WriteString(" IS NOT NULL")
	} else {
		b.WriteString(" IS NULL")
	}
}

func (e *hasExpr) write(b *strings.Builder, _ int) {
	if e.col.field == fConditions {
		b.WriteString("HAS_CONDITION(")
	} else {
		b.WriteString("HAS_MEDICATION(")
	}
	for i, c := range e.codes {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteSQL(c))
	}
	b.WriteByte(')')
}

func (e *cmpExpr) categories(set map[string]bool)     { set[e.col.category] = true }
func (e *betweenExpr) categories(set map[string]bool) { set[e.col.category] = true }
func (e *nullExpr) categories(set map[string]bool)    { set[e.col.category] = true }
func (e *hasExpr) categories(set map[string]bool)     { set[e.col.category] = true }
func (e *inExpr) categories(set map[string]bool)      { set[e.col.category] = true }
