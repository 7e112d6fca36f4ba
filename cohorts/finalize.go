package cohorts

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Table is a query's result.
type Table struct {
	Columns []string // GROUP BY columns, then one per output value
	Rows    []Row    // one per Layout cell, in Layout order
}

// Row is one GROUP BY cell of a result.
type Row struct {
	Group  []string // the cell's labels, one per GROUP BY column
	Values []Value  // one per output value column
}

// Value is one output value. A withheld or undefined value has Suppressed set
// and a Note saying why; its Float is 0.
type Value struct {
	Float      float64
	Suppressed bool
	Note       string // e.g. "fewer than 2 values"
}

// Notes on values that are not shown.
const (
	NoteSuppressed = "suppressed by disclosure control"
	NoteNoValues   = "no values"
	NoteFewValues  = "fewer than 2 values"
)

// OutputColumns returns the names of the query's output value columns (the
// Table's columns after the GROUP BY ones): each item's alias or its
// lower-case rendering, and one column per histogram bin.
func (q *Query) OutputColumns() []string {
	var cols []string
	for i := range q.items {
		it := &q.items[i]
		if it.fn == fnHist {
			for _, l := range q.stats[it.hist].labels {
				cols = append(cols, it.name()+l)
			}
			continue
		}
		cols = append(cols, it.name())
	}
	return cols
}

// Finalize turns a (decrypted, possibly noisy) aggregate vector into the
// result table. suppressed[i] marks slots withheld by disclosure control
// (nil: none); a value depending on a suppressed slot is suppressed.
//
// Post-processing keeps noisy values plausible without touching privacy:
// counts and bins are at least 0, a mean lies within the column's bounds, a
// sum within n times them, and a variance is at least 0. A mean needs at
// least one value and a standard deviation two, else the value is marked
// with a Note.
func (q *Query) Finalize(vec []int64, suppressed []bool) (*Table, error) {
	if len(vec) != len(q.layout.Slots) {
		return nil, fmt.Errorf("finalize: vector has %d slots, layout has %d", len(vec), len(q.layout.Slots))
	}
	if suppressed != nil && len(suppressed) != len(vec) {
		return nil, fmt.Errorf("finalize: suppression mask has %d slots, layout has %d", len(suppressed), len(vec))
	}
	t := &Table{Columns: append(q.GroupBy(), q.OutputColumns()...)}
	for ci, cell := range q.layout.Cells {
		base := ci * q.spc
		slot := func(stat int) (int64, bool) {
			i := base + q.stats[stat].offset
			return vec[i], suppressed != nil && suppressed[i]
		}
		row := Row{Group: append([]string{}, cell.Labels...)}
		for i := range q.items {
			it := &q.items[i]
			switch it.fn {
			case fnCount:
				v, sup := slot(it.count)
				row.Values = append(row.Values, countValue(v, sup))
			case fnCountCol:
				v, sup := slot(it.n)
				row.Values = append(row.Values, countValue(v, sup))
			case fnSum, fnAvg, fnStddev, fnVariance:
				n, supN := slot(it.n)
				s, supS := slot(it.sum)
				var ss int64
				var supSS bool
				if it.fn == fnStddev || it.fn == fnVariance {
					ss, supSS = slot(it.sumsq)
				}
				if supN || supS || supSS {
					row.Values = append(row.Values, Value{Suppressed: true, Note: NoteSuppressed})
					continue
				}
				row.Values = append(row.Values, momentValue(it.fn, it.col, n, s, ss))
			case fnHist:
				st := q.stats[it.hist]
				for w := range st.width {
					i := base + st.offset + w
					row.Values = append(row.Values, countValue(vec[i], suppressed != nil && suppressed[i]))
				}
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

func countValue(v int64, suppressed bool) Value {
	if suppressed {
		return Value{Suppressed: true, Note: NoteSuppressed}
	}
	return Value{Float: float64(max(v, 0))}
}

// momentValue computes SUM, AVG, STDDEV or VARIANCE of column c from n values whose
// centred fixed-point sum is s and sum of squares ss.
func momentValue(fn aggFn, c column, n, s, ss int64) Value {
	mid, _ := c.centre()
	scale := float64(c.scale())
	switch fn {
	case fnSum:
		if n < 1 {
			return Value{Suppressed: true, Note: NoteNoValues}
		}
		// s + n·mid exactly, then clamp to [n·lo, n·hi].
		total := new(big.Float).SetInt(new(big.Int).Add(big.NewInt(s), new(big.Int).Mul(big.NewInt(n), big.NewInt(mid))))
		v, _ := total.Float64()
		v /= scale
		nf := float64(n)
		return Value{Float: min(max(v, nf*c.lo), nf*c.hi)}
	case fnAvg:
		if n < 1 {
			return Value{Suppressed: true, Note: NoteNoValues}
		}
		v := (float64(mid) + float64(s)/float64(n)) / scale
		return Value{Float: min(max(v, c.lo), c.hi)}
	default: // fnStddev, fnVariance
		if n < 2 {
			return Value{Suppressed: true, Note: NoteFewValues}
		}
		// Sample variance (n·ss − s²) / (n·(n−1)), the numerator exact.
		bn, bs := big.NewInt(n), big.NewInt(s)
		num := new(big.Int).Sub(new(big.Int).Mul(bn, big.NewInt(ss)), new(big.Int).Mul(bs, bs))
		if num.Sign() < 0 {
			return Value{Float: 0}
		}
		den := new(big.Int).Mul(bn, big.NewInt(n-1))
		v, _ := new(big.Float).SetPrec(128).Quo(new(big.Float).SetInt(num), new(big.Float).SetInt(den)).Float64()
		if fn == fnVariance {
			return Value{Float: v / (scale * scale)}
		}
		return Value{Float: math.Sqrt(v) / scale}
	}
}

// Hash returns the hex sha256 of a canonical encoding of the table (used for
// provenance). The encoding is the bytes "medx.cohorts.table/1\n", then the
// number of columns and each column, the number of rows and, per row, the
// number of group labels and each label, the number of values and, per value,
// its float as 8 bytes of big-endian IEEE-754 bits, one byte 1 if suppressed
// else 0, and its note. Numbers are unsigned varints (encoding/binary) and
// each string is its byte length as a varint followed by its UTF-8 bytes.
func (t *Table) Hash() string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	putInt := func(v int) { h.Write(buf[:binary.PutUvarint(buf[:], uint64(v))]) }
	putStr := func(s string) { putInt(len(s)); h.Write([]byte(s)) }
	h.Write([]byte("medx.cohorts.table/1\n"))
	putInt(len(t.Columns))
	for _, c := range t.Columns {
		putStr(c)
	}
	putInt(len(t.Rows))
	for _, r := range t.Rows {
		putInt(len(r.Group))
		for _, g := range r.Group {
			putStr(g)
		}
		putInt(len(r.Values))
		for _, v := range r.Values {
			var b [9]byte
			binary.BigEndian.PutUint64(b[:8], math.Float64bits(v.Float))
			if v.Suppressed {
				b[8] = 1
			}
			h.Write(b[:])
			putStr(v.Note)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// String renders the table as aligned text, for terminals and logs.
func (t *Table) String() string {
	cells := [][]string{t.Columns}
	for _, r := range t.Rows {
		line := append([]string{}, r.Group...)
		for _, v := range r.Values {
			line = append(line, v.text())
		}
		cells = append(cells, line)
	}
	width := make([]int, len(t.Columns))
	for _, line := range cells {
		for i, c := range line {
			if i < len(width) {
				width[i] = max(width[i], len(c))
			}
		}
	}
	var b strings.Builder
	for _, line := range cells {
		for i, c := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			if i == len(line)-1 {
				b.WriteString(c)
				continue
			}
			fmt.Fprintf(&b, "%-*s", width[i], c)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// text formats a value for display: integers as such, others to 4 decimals.
func (v Value) text() string {
	switch {
	case v.Suppressed && v.Note != "":
		return "(" + v.Note + ")"
	case v.Suppressed:
		return "(suppressed)"
	case v.Float == math.Trunc(v.Float) && math.Abs(v.Float) < 1e15:
		return strconv.FormatFloat(v.Float, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v.Float, 'f', 4, 64)
	}
}
