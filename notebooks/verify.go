package notebooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/medx/medx/cohorts"
)

// Report is what a written report (HTML or notebook) shows and claims.
type Report struct {
	Stamp Stamp
	Cells []ReportCell
}

// ReportCell is one query cell as a report shows it.
type ReportCell struct {
	Name   string
	Query  string
	Failed bool
	Table  *Published // nil when the cell failed or shows no table
	Plain  *string    // a notebook's text/plain output, when present
}

// ReadReport reads a report written by WriteHTML or WriteIPYNB, telling
// them apart by content.
func ReadReport(name string, b []byte) (*Report, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return readIPYNBReport(name, b)
	}
	return readHTMLReport(name, b)
}

func readHTMLReport(name string, b []byte) (*Report, error) {
	doc, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var stampText string
	var found bool
	walk(doc, func(n *html.Node) bool {
		if n.DataAtom == atom.Script && attr(n, "id") == "medx-provenance" {
			stampText, found = textOf(n), true
			return false
		}
		return true
	})
	if !found {
		return nil, fmt.Errorf("%s: not a MedX report: no medx-provenance element", name)
	}
	r := &Report{}
	if err := json.Unmarshal([]byte(stampText), &r.Stamp); err != nil {
		return nil, fmt.Errorf("%s: provenance: %w", name, err)
	}
	if r.Stamp.Format != StampFormat {
		return nil, fmt.Errorf("%s: provenance format %q: want %q", name, r.Stamp.Format, StampFormat)
	}
	r.Cells = sectionsOf(doc)
	return r, nil
}

func readIPYNBReport(name string, b []byte) (*Report, error) {
	var f ipynbFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: not a Jupyter notebook: %w", name, err)
	}
	if f.Metadata.MedX == nil || f.Metadata.MedX.Format != StampFormat {
		return nil, fmt.Errorf("%s: not a MedX report: no medx provenance (format %s) in the notebook metadata", name, StampFormat)
	}
	r := &Report{Stamp: *f.Metadata.MedX}
	for i, c := range f.Cells {
		first, rest, _ := strings.Cut(string(c.Source), "\n")
		opts, ok := strings.CutPrefix(strings.TrimSpace(first), magic)
		if c.CellType != "code" || !ok {
			continue
		}
		var cell Cell
		if err := cell.setOptions(opts); err != nil {
			return nil, fmt.Errorf("%s: cell %d: %w", name, i+1, err)
		}
		rc := ReportCell{Name: cell.Name, Query: strings.TrimSpace(rest)}
		for _, o := range c.Outputs {
			if h, ok := o.Data["text/html"]; ok {
				doc, err := html.Parse(strings.NewReader(string(h)))
				if err != nil {
					return nil, fmt.Errorf("%s: cell %d output: %w", name, i+1, err)
				}
				if secs := sectionsOf(doc); len(secs) == 1 {
					s := secs[0]
					rc.Failed, rc.Table = s.Failed, s.Table
					if s.Name != rc.Name || s.Query != rc.Query {
						rc.Query = "" // the output belongs to another cell: never matches
					}
				}
			}
			if p, ok := o.Data["text/plain"]; ok {
				s := string(p)
				rc.Plain = &s
			}
		}
		r.Cells = append(r.Cells, rc)
	}
	return r, nil
}

// sectionsOf reads the cell sections the "cell" template writes.
func sectionsOf(doc *html.Node) []ReportCell {
	var cells []ReportCell
	walk(doc, func(n *html.Node) bool {
		if n.DataAtom != atom.Section || !hasClass(n, "cell") {
			return true
		}
		c := ReportCell{Name: attr(n, "data-cell")}
		walk(n, func(m *html.Node) bool {
			switch {
			case m.DataAtom == atom.Pre && hasClass(m, "query"):
				c.Query = strings.TrimSpace(textOf(m))
			case hasClass(m, "error"):
				c.Failed = true
			case m.DataAtom == atom.Table && hasClass(m, "result") && c.Table == nil:
				c.Table = tableOf(m)
			default:
				return true
			}
			return false
		})
		cells = append(cells, c)
		return false
	})
	return cells
}

func tableOf(t *html.Node) *Published {
	p := &Published{Columns: []string{}, Rows: []PublishedRow{}}
	walk(t, func(n *html.Node) bool {
		if n.DataAtom != atom.Tr {
			return true
		}
		head := n.Parent != nil && n.Parent.DataAtom == atom.Thead
		row := PublishedRow{Group: []string{}, Values: []string{}}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			s := strings.TrimSpace(textOf(c))
			switch {
			case head && c.DataAtom == atom.Th:
				p.Columns = append(p.Columns, s)
			case c.DataAtom == atom.Th:
				row.Group = append(row.Group, s)
			case c.DataAtom == atom.Td:
				row.Values = append(row.Values, s)
			}
		}
		if !head {
			p.Rows = append(p.Rows, row)
		}
		return false
	})
	return p
}

// walk visits n and its descendants in document order; f returns whether
// to descend into a node.
func walk(n *html.Node, f func(*html.Node) bool) {
	if !f(n) {
		return
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return n.Type == html.ElementNode && slices.Contains(strings.Fields(attr(n, "class")), class)
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walk(n, func(m *html.Node) bool {
		if m.Type == html.TextNode {
			b.WriteString(m.Data)
		}
		return true
	})
	return b.String()
}

// Recorded is a notebook run as the ledger holds it.
type Recorded struct {
	ID      string
	Request string
	Sponsor string
	At      time.Time
	Provenance
}

// ErrNotVerified is returned (wrapped) by Verify when a report does not
// match its ledger record.
var ErrNotVerified = errors.New("report does not match the ledger")

// Verify checks a report against the ledger's record of its run: the
// notebook it carries hashes to the recorded notebook hash and is the one
// whose queries the report shows; every cell recorded is shown, in order,
// under its name; each shown query hashes to the recorded query hash; and
// each table, re-encoded from the values exactly as shown, hashes to the
// recorded result hash. It returns an error wrapping ErrNotVerified that
// names every cell that does not match.
func Verify(r *Report, rec Recorded) error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	st := r.Stamp
	if st.Run != rec.ID {
		bad("the report is of run %q, the ledger record is %q", st.Run, rec.ID)
	}
	if st.Request != "" && st.Request != rec.Request {
		bad("the report names request %q, the run was recorded on %q", st.Request, rec.Request)
	}
	if h := hashBytes(st.Source); h != rec.NotebookHash {
		bad("the notebook carried in the report hashes to %s, the ledger recorded notebook %s", short(h), short(rec.NotebookHash))
	} else if nb, err := Read(st.Notebook, st.Source); err != nil {
		bad("the notebook carried in the report does not parse: %w", err)
	} else {
		cs := nb.Cells()
		for i, c := range r.Cells {
			if i < len(cs) && (cs[i].Name != c.Name || cs[i].Query != c.Query) {
				bad("cell %q: the query shown is not the notebook's cell %d (%q)", c.Name, i+1, cs[i].Name)
			}
		}
	}
	if len(r.Cells) != len(rec.Cells) {
		bad("the report shows %d query cells, the ledger recorded %d", len(r.Cells), len(rec.Cells))
	}
	for i, rc := range rec.Cells {
		if i >= len(r.Cells) {
			bad("cell %q: recorded on the ledger but not in the report", rc.Name)
			continue
		}
		c := r.Cells[i]
		if c.Name != rc.Name {
			bad("cell %d: the report shows %q, the ledger recorded %q", i+1, c.Name, rc.Name)
			continue
		}
		if rc.Error != "" {
			if !c.Failed {
				bad("cell %q: the ledger recorded it as failed, the report does not show the failure", c.Name)
			}
			if hashText(c.Query) != rc.QueryHash {
				bad("cell %q: the query shown is not the one recorded (query hash)", c.Name)
			}
			continue
		}
		if c.Failed || c.Table == nil {
			bad("cell %q: the ledger recorded a result, the report shows none", c.Name)
			continue
		}
		if q, err := cohorts.ParseQuery(c.Query); err != nil || hashText(q.String()) != rc.QueryHash {
			bad("cell %q: the query shown is not the one recorded (query hash)", c.Name)
		}
		if h := c.Table.Hash(); h != rc.ResultHash {
			bad("cell %q: the numbers shown are not those recorded: result hash %s, ledger %s", c.Name, short(h), short(rc.ResultHash))
		}
		if c.Plain != nil && *c.Plain != c.Table.Plain() {
			bad("cell %q: the text/plain output differs from the table shown", c.Name)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w (run %s):\n  %w", ErrNotVerified, rec.ID, joinIndented(problems))
	}
	return nil
}

// joinIndented joins errors one per line, for a report read by a person.
func joinIndented(errs []error) error {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return errors.New(strings.Join(s, "\n  "))
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
