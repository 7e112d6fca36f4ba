package cohorts

import (
	"fmt"
	"math"
	"strings"
)

// Parser limits: queries come from researchers over the network.
const (
	maxDepth      = 64   // nesting of parentheses and NOT
	maxCodes      = 256  // codes in one HAS_CONDITION / HAS_MEDICATION
	maxItems      = 64   // SELECT items
	maxBins       = 32   // bins of one HISTOGRAM
	maxGroupBy    = 2    // GROUP BY columns
	maxLayoutSize = 8192 // slots of a query's aggregate vector: one ciphertext
)

// keywords cannot be used as aliases.
func isKeyword(upper string) bool {
	switch upper {
	case "SELECT", "FROM", "WHERE", "GROUP", "BY", "AS", "AND", "OR", "NOT", "BETWEEN", "IS", "NULL",
		"HAVING", "ORDER", "LIMIT", "DISTINCT", "ALL", "IN", "LIKE", "TRUE", "FALSE":
		return true
	}
	return false
}

const aggregateList = "an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM)"

type parser struct {
	toks  []token
	pos   int
	depth int
}

func newParser(src string) (*parser, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{toks: toks}, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

// accept consumes the next token if it has kind k.
func (p *parser) accept(k tokKind) bool {
	if p.peek().kind == k {
		p.next()
		return true
	}
	return false
}

// acceptKeyword consumes the next token if it is the keyword kw.
func (p *parser) acceptKeyword(kw string) bool {
	if p.peek().upper() == kw {
		p.next()
		return true
	}
	return false
}

func (p *parser) errorf(t token, format string, args ...any) *SyntaxError {
	return &SyntaxError{Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)}
}

// expect consumes a token of kind k, described as what in the error.
func (p *parser) expect(k tokKind, what string) (token, error) {
	t := p.peek()
	if t.kind != k {
		return t, p.errorf(t, "expected %s, found %s", what, t.describe())
	}
	return p.next(), nil
}

func (p *parser) expectKeyword(kw string) error {
	t := p.peek()
	if t.upper() != kw {
		return p.errorf(t, "expected %s, found %s", kw, t.describe())
	}
	p.next()
	return nil
}

func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf(t, "expression nested more than %d deep", maxDepth)
	}
	return nil
}

// parseExpr parses OR-terms: expr := and {OR and}.
func (p *parser) parseExpr() (expr, error) {
	first, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	terms := []expr{first}
	for p.acceptKeyword("OR") {
		e, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
	}
	if len(terms) == 1 {
		return first, nil
	}
	return &orExpr{terms: flatten[*orExpr](terms, func(o *orExpr) []expr { return o.terms })}, nil
}

// parseAnd parses and := not {AND not}.
func (p *parser) parseAnd() (expr, error) {
	first, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	terms := []expr{first}
	for p.acceptKeyword("AND") {
		e, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
	}
	if len(terms) == 1 {
		return first, nil
	}
	return &andExpr{terms: flatten[*andExpr](terms, func(a *andExpr) []expr { return a.terms })}, nil
}

// flatten splices terms that are themselves of the same n-ary kind (written
// in parentheses) so that equivalent texts normalise alike.
func flatten[T expr](terms []expr, sub func(T) []expr) []expr {
	var out []expr
	for _, t := range terms {
		if s, ok := t.(T); ok {
			out = append(out, sub(s)...)
		} else {
			out = append(out, t)
		}
	}
	return out
}

// parseNot parses not := NOT not | primary.
func (p *parser) parseNot() (expr, error) {
	t := p.peek()
	if p.acceptKeyword("NOT") {
		if err := p.enter(t); err != nil {
			return nil, err
		}
		x, err := p.parseNot()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &notExpr{x: x}, nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.peek()
	switch t.kind {
	case tokLParen:
		p.next()
		if err := p.enter(t); err != nil {
			return nil, err
		}
		e, err := p.parseExpr()
		p.depth--
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, `")"`); err != nil {
			return nil, err
		}
		return e, nil
	case tokIdent:
	default:
		return nil, p.errorf(t, "expected a condition (a column comparison, BETWEEN, IN, HAS_CONDITION, HAS_MEDICATION, NOT or \"(\"), found %s", t.describe())
	}
	p.next()
	name := strings.ToLower(t.text)
	if p.peek().kind == tokLParen {
		switch strings.ToUpper(t.text) {
		case "HAS_CONDITION":
			return p.parseHas(t, fConditions)
		case "HAS_MEDICATION":
			return p.parseHas(t, fMedications)
		}
		return nil, p.errorf(t, "unknown function %s in a condition: expected HAS_CONDITION or HAS_MEDICATION", strings.ToUpper(t.text))
	}
	if isKeyword(strings.ToUpper(t.text)) {
		return nil, p.errorf(t, "expected a condition, found keyword %s", strings.ToUpper(t.text))
	}
	col, err := p.queryableColumn(t)
	if err != nil {
		return nil, err
	}
	if col.kind == kindCodes {
		fn := "HAS_CONDITION"
		if col.field == fMedications {
			fn = "HAS_MEDICATION"
		}
		return nil, p.errorf(t, "column %q holds a list of codes: test it with %s('code')", name, fn)
	}
	return p.parsePredicate(col)
}

// queryableColumn resolves an identifier to a column a query may read.
func (p *parser) queryableColumn(t token) (column, error) {
	name := strings.ToLower(t.text)
	col, ok := lookupColumn(name)
	if !ok {
		return column{}, p.errorf(t, "unknown column %q (columns: %s)", t.text, queryableColumnNames())
	}
	if col.kind == kindID {
		return column{}, p.errorf(t, "column %q can never be queried: it identifies a patient", name)
	}
	return col, nil
}

func queryableColumnNames() string {
	var names []string
	for _, c := range allColumns() {
		if c.kind != kindID {
			names = append(names, c.name)
		}
	}
	return strings.Join(names, ", ")
}

// parsePredicate parses what follows a column in a condition.
func (p *parser) parsePredicate(col column) (expr, error) {
	t := p.peek()
	switch {
	case t.kind == tokOp:
		p.next()
		op := t.text
		if op == "<>" {
			op = "!="
		}
		if col.kind == kindCat {
			if op != "=" && op != "!=" {
				return nil, p.errorf(t, "%s can only be compared with = or != (or IN)", col.name)
			}
			v, err := p.parseCategory(col)
			if err != nil {
				return nil, err
			}
			return &cmpExpr{col: col, op: op, str: v}, nil
		}
		v, err := p.parseNumber(col)
		if err != nil {
			return nil, err
		}
		return &cmpExpr{col: col, op: op, num: v}, nil
	case t.upper() == "IN" || t.upper() == "NOT" && p.toks[p.pos+1].upper() == "IN":
		p.next()
		not := t.upper() == "NOT"
		if not {
			p.next() // IN
		}
		return p.parseIn(col, not)
	case t.upper() == "BETWEEN" || t.upper() == "NOT" || t.upper() == "IS":
		p.next()
		if t.upper() == "IS" {
			not := p.acceptKeyword("NOT")
			if err := p.expectKeyword("NULL"); err != nil {
				return nil, err
			}
			if col.kind != kindFloat {
				return nil, p.errorf(t, "column %q is never NULL", col.name)
			}
			return &nullExpr{col: col, not: not}, nil
		}
		not := t.upper() == "NOT"
		if not {
			if b := p.peek(); b.upper() != "BETWEEN" {
				return nil, p.errorf(b, "expected BETWEEN or IN after NOT, found %s", b.describe())
			}
			p.next()
		}
		if !col.numeric() {
			return nil, p.errorf(t, "BETWEEN needs a numeric column, %q is not numeric", col.name)
		}
		lo, err := p.parseNumber(col)
		if err != nil {
			return nil, err
		}
		if err := p.expectKeyword("AND"); err != nil {
			return nil, err
		}
		hi, err := p.parseNumber(col)
		if err != nil {
			return nil, err
		}
		return &betweenExpr{col: col, lo: lo, hi: hi, not: not}, nil
	default:
		return nil, p.errorf(t, "expected a comparison (=, !=, <, <=, >, >=), BETWEEN, IN or IS NULL after %q, found %s", col.name, t.describe())
	}
}

// parseCategory parses a string literal from a categorical column's domain
// and returns its declared spelling.
func (p *parser) parseCategory(col column) (string, error) {
	lit := p.peek()
	if lit.kind != tokString {
		return "", p.errorf(lit, "expected %s, found %s", col.domainText(), lit.describe())
	}
	i, ok := col.groupIndex(lit.text)
	if !ok {
		return "", p.errorf(lit, "%s is %s, found %s", col.name, col.domainText(), lit.describe())
	}
	p.next()
	return col.groups[i], nil
}

// parseIn parses the list of col [NOT] IN (v1, v2, ...) after IN.
func (p *parser) parseIn(col column, not bool) (expr, error) {
	if _, err := p.expect(tokLParen, `"(" after IN`); err != nil {
		return nil, err
	}
	e := &inExpr{col: col, not: not}
	for {
		t := p.peek()
		if len(e.nums)+len(e.strs) == maxCodes {
			return nil, p.errorf(t, "IN takes at most %d values", maxCodes)
		}
		if col.kind == kindCat {
			v, err := p.parseCategory(col)
			if err != nil {
				return nil, err
			}
			e.strs = append(e.strs, v)
		} else {
			v, err := p.parseNumber(col)
			if err != nil {
				return nil, err
			}
			e.nums = append(e.nums, v)
		}
		if p.accept(tokComma) {
			continue
		}
		if _, err := p.expect(tokRParen, `"," or ")"`); err != nil {
			return nil, err
		}
		return e, nil
	}
}

// parseNumber parses a numeric literal compared with col.
func (p *parser) parseNumber(col column) (float64, error) {
	t := p.peek()
	if t.kind != tokNumber {
		return 0, p.errorf(t, "expected a number to compare with %q, found %s", col.name, t.describe())
	}
	p.next()
	return t.num, nil
}

// parseHas parses HAS_CONDITION / HAS_MEDICATION after the function name.
func (p *parser) parseHas(fn token, field int) (expr, error) {
	p.next() // (
	col := allColumns()[field]
	var codes []string
	for {
		t := p.peek()
		if t.kind != tokString {
			return nil, p.errorf(t, "expected a code in quotes, e.g. '44054006' or '4405*', found %s", t.describe())
		}
		p.next()
		code := t.text
		if strings.HasSuffix(code, "*") {
			code = code[:len(code)-1]
			if code == "" {
				return nil, p.errorf(t, "code prefix '*' is empty: give at least one character before '*'")
			}
		}
		if err := checkCode(code); err != nil {
			return nil, p.errorf(t, "invalid code: %v", err)
		}
		if len(codes) == maxCodes {
			return nil, p.errorf(t, "%s takes at most %d codes", strings.ToUpper(fn.text), maxCodes)
		}
		codes = append(codes, t.text)
		if p.accept(tokComma) {
			continue
		}
		if _, err := p.expect(tokRParen, `"," or ")"`); err != nil {
			return nil, err
		}
		return &hasExpr{col: col, codes: codes}, nil
	}
}

// edgeDecimalsOK reports whether v has at most d decimals.
func edgeDecimalsOK(v float64, d int) bool {
	s := math.Pow10(d)
	return math.Abs(v*s-math.Round(v*s)) < 1e-9*math.Max(1, math.Abs(v*s))
}
