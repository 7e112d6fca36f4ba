package notebooks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/medx/medx/cohorts"
)

// Published is a cell's result exactly as a report shows it: the column
// names, and per row the group labels and each value's text. It is what a
// run's result hash covers, so that anyone holding a report can recompute
// the hash from the numbers shown and check it against the ledger.
type Published struct {
	Columns []string       `json:"columns"`
	Rows    []PublishedRow `json:"rows"`
}

// PublishedRow is one row of a published table.
type PublishedRow struct {
	Group  []string `json:"group"`
	Values []string `json:"values"`
}

// Publish renders t as a report shows it: integers without decimals, other
// numbers with two, and a withheld value as its reason ("suppressed",
// "no values", "fewer than 2 values").
func Publish(t *cohorts.Table) Published {
	p := Published{Columns: append([]string{}, t.Columns...), Rows: []PublishedRow{}}
	for _, r := range t.Rows {
		row := PublishedRow{Group: append([]string{}, r.Group...), Values: []string{}}
		for _, v := range r.Values {
			row.Values = append(row.Values, valueText(v))
		}
		p.Rows = append(p.Rows, row)
	}
	return p
}

// suppressedText is how a value withheld by disclosure control reads.
const suppressedText = "suppressed"

func valueText(v cohorts.Value) string {
	switch {
	case v.Suppressed && (v.Note == "" || v.Note == cohorts.NoteSuppressed):
		return suppressedText
	case v.Suppressed:
		return v.Note
	}
	return formatNumber(v.Float)
}

func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	s := strconv.FormatFloat(f, 'f', 2, 64)
	if s == "-0.00" {
		s = "0.00"
	}
	return s
}

// publishedHashPrefix versions the canonical encoding of Published.
const publishedHashPrefix = "medx.notebooks.published/1\n"

// Hash is the hex SHA-256 of the table's canonical encoding: the prefix
// "medx.notebooks.published/1\n" followed by the table as compact JSON
// {"columns":[...],"rows":[{"group":[...],"values":[...]}]} with the texts
// as shown (encoding/json, HTML characters escaped).
func (p Published) Hash() string {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // strings and slices of strings always encode
	}
	h := sha256.New()
	h.Write([]byte(publishedHashPrefix))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// Plain renders the table as aligned text (the notebook's text/plain):
// group labels left-aligned, values right-aligned.
func (p Published) Plain() string {
	groups := 0
	if len(p.Rows) > 0 {
		groups = len(p.Rows[0].Group)
	}
	lines := [][]string{p.Columns}
	for _, r := range p.Rows {
		lines = append(lines, append(append([]string{}, r.Group...), r.Values...))
	}
	width := map[int]int{}
	for _, l := range lines {
		for i, s := range l {
			width[i] = max(width[i], len([]rune(s)))
		}
	}
	var b strings.Builder
	for _, l := range lines {
		var line strings.Builder
		for i, s := range l {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-len([]rune(s)))
			if i < groups {
				line.WriteString(s + pad)
			} else {
				line.WriteString(pad + s)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}
