package cohorts

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxQueryLen bounds the text a parser accepts; queries arrive over the network.
const maxQueryLen = 64 << 10

// SyntaxError reports why a query or criteria text was refused and where:
// Line and Col are 1-based, Col counts characters (runes).
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber
	tokString
	tokLParen
	tokRParen
	tokComma
	tokStar
	tokOp // = != <> < <= > >=
	tokSemicolon
)

type token struct {
	kind      tokKind
	text      string  // identifier as written, operator, or unescaped string
	num       float64 // tokNumber
	line, col int
}

// describe names a token for error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokIdent:
		return strconv.Quote(t.text)
	case tokString:
		return "string " + quoteSQL(t.text)
	case tokNumber:
		return "number " + t.text
	default:
		return strconv.Quote(t.text)
	}
}

// upper returns an identifier token's text in upper case, for keyword matching.
func (t token) upper() string {
	if t.kind != tokIdent {
		return ""
	}
	return strings.ToUpper(t.text)
}

// lex splits src into tokens. It reports the first malformed token.
func lex(src string) ([]token, error) {
	if len(src) > maxQueryLen {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: fmt.Sprintf("text is %d bytes, at most %d allowed", len(src), maxQueryLen)}
	}
	if !utf8.ValidString(src) {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: "text is not valid UTF-8"}
	}
	var toks []token
	line, col := 1, 1
	i := 0
	// advance moves over n bytes of src that contain no newline.
	advance := func(n int) {
		col += utf8.RuneCountInString(src[i : i+n])
		i += n
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			col = 1
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			advance(1)
			continue
		case c == '-' && i+1 < len(src) && src[i+1] == '-': // comment to end of line
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			advance(end)
			continue
		}
		start := token{line: line, col: col}
		switch {
		case c == '(':
			start.kind, start.text = tokLParen, "("
			advance(1)
		case c == ')':
			start.kind, start.text = tokRParen, ")"
			advance(1)
		case c == ',':
			start.kind, start.text = tokComma, ","
			advance(1)
		case c == '*':
			start.kind, start.text = tokStar, "*"
			advance(1)
		case c == ';':
			start.kind, start.text = tokSemicolon, ";"
			advance(1)
		case c == '=':
			start.kind, start.text = tokOp, "="
			advance(1)
		case c == '!' || c == '<' || c == '>':
			op := string(c)
			if i+1 < len(src) && (src[i+1] == '=' || c == '<' && src[i+1] == '>') {
				op = src[i : i+2]
			}
			if op == "!" {
				return nil, &SyntaxError{Line: line, Col: col, Msg: `unexpected "!": did you mean "!="?`}
			}
			start.kind, start.text = tokOp, op
			advance(len(op))
		case c == '\'':
			s, n, ok := scanString(src[i:])
			if !ok {
				return nil, &SyntaxError{Line: line, Col: col, Msg: "unterminated string: strings are 'single-quoted'"}
			}
			if strings.ContainsRune(s, '\n') {
				return nil, &SyntaxError{Line: line, Col: col, Msg: "string spans lines"}
			}
			start.kind, start.text = tokString, s
			advance(n)
		case c == '"':
			return nil, &SyntaxError{Line: line, Col: col, Msg: `unexpected '"': strings are 'single-quoted' and identifiers are not quoted`}
		case isDigit(c) || c == '.' || c == '-' && i+1 < len(src) && (isDigit(src[i+1]) || src[i+1] == '.'):
			n := scanNumber(src[i:])
			text := src[i : i+n]
			if i+n < len(src) && isIdentByte(src[i+n]) {
				return nil, &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf("malformed number %q", text+string(src[i+n]))}
			}
			v, err := strconv.ParseFloat(text, 64)
			if err != nil || text == "-" || text == "." || text == "-." {
				return nil, &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf("malformed number %.40q", text)}
			}
			start.kind, start.text, start.num = tokNumber, text, v
			advance(n)
		case isIdentStart(c):
			n := 1
			for i+n < len(src) && isIdentByte(src[i+n]) {
				n++
			}
			start.kind, start.text = tokIdent, src[i:i+n]
			advance(n)
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			msg := fmt.Sprintf("unexpected character %q", r)
			if strings.ContainsRune("+/%^|", r) {
				msg += ": arithmetic is not supported; compute ratios and differences from the released aggregates"
			}
			if unicode.IsSpace(r) {
				msg = fmt.Sprintf("unexpected white space %U", r)
			}
			return nil, &SyntaxError{Line: line, Col: col, Msg: msg}
		}
		toks = append(toks, start)
	}
	toks = append(toks, token{kind: tokEOF, line: line, col: col})
	return toks, nil
}

// scanString scans a 'quoted' string with ” as an escaped quote, returning
// its value and length in bytes.
func scanString(s string) (string, int, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, true
		}
		b.WriteByte(s[i])
	}
	return "", 0, false
}

// scanNumber returns the length of an optionally negative decimal number
// (digits, at most one '.', no exponent) at the start of s.
func scanNumber(s string) int {
	i := 0
	if s[0] == '-' {
		i++
	}
	dot := false
	for i < len(s) && (isDigit(s[i]) || s[i] == '.' && !dot) {
		if s[i] == '.' {
			dot = true
		}
		i++
	}
	return i
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isIdentByte(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// quoteSQL quotes s as an SQL string literal.
func quoteSQL(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
