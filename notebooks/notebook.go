// Package notebooks runs analysis notebooks. A notebook is a Markdown file
// whose fenced medx blocks are aggregate queries, with optional options on
// the fence line and free Markdown text around them:
//
//	```medx name=baseline chart=bar epsilon=0.25
//	SELECT COUNT(*) AS patients, AVG(hba1c) AS mean_hba1c FROM cohort GROUP BY sex
//	```
//
// (name: letters, digits, '.', '_', '-', default cell-N; chart: bar,
// histogram or none, default a histogram for HISTOGRAM, bars for GROUP BY;
// epsilon: the privacy budget the cell spends, default the runner's.) A
// Jupyter notebook (.ipynb, nbformat 4) is read too: its code cells whose
// first line is "%%medx" with the same options are the queries.
//
// A run executes each cell as the sponsor through a Runner, renders a
// self-contained HTML report (WriteHTML) and a Jupyter notebook with the
// same outputs (WriteIPYNB), and records its provenance on the ledger:
// the notebook hash, and each cell's query hash and the hash of its result
// exactly as published (Published.Hash). Reports carry the run id and the
// notebook, so Verify can recompute every hash from a report's own content
// and check it against the ledger's record.
package notebooks

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Notebook is a parsed notebook: free text and query cells, in order.
type Notebook struct {
	Name   string
	Hash   string // hex SHA-256 of Source
	Source []byte // the file as read
	Blocks []Block
}

// Block is either Markdown text or a query cell.
type Block struct {
	Text string // Markdown, when Cell is nil
	Cell *Cell
}

// Cell is one fenced medx block.
type Cell struct {
	Name  string // from name=..., or "cell-N"
	Chart string // from chart=... (bar, histogram, none); empty = default
	// Epsilon is the privacy budget the cell's query spends, from
	// epsilon=...; 0 means the runner's default.
	Epsilon float64
	Query   string
	Line    int // 1-based line of the opening fence (Markdown) or the cell's index (Jupyter)
}

// Cells returns the notebook's query cells in order.
func (nb *Notebook) Cells() []*Cell {
	var cs []*Cell
	for _, b := range nb.Blocks {
		if b.Cell != nil {
			cs = append(cs, b.Cell)
		}
	}
	return cs
}

var (
	fenceOpen = regexp.MustCompile("^(```+|~~~+)\\s*medx\\b(.*)$")
	optionRe  = regexp.MustCompile(`^([a-z]+)=("[^"]*"|\S+)$`)
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// maxCellEpsilon bounds a cell's epsilon option: a typo such as
// epsilon=25 must not spend a whole study's budget.
const maxCellEpsilon = 10

// setOptions reads a cell's options, "name=baseline chart=bar epsilon=0.2",
// as written after the fence's medx or Jupyter's %%medx.
func (c *Cell) setOptions(opts string) error {
	seen := map[string]bool{}
	for _, opt := range strings.Fields(opts) {
		om := optionRe.FindStringSubmatch(opt)
		if om == nil {
			return fmt.Errorf("cell option %q: want key=value", opt)
		}
		if seen[om[1]] {
			return fmt.Errorf("cell option %q given twice", om[1])
		}
		seen[om[1]] = true
		v := strings.Trim(om[2], `"`)
		switch om[1] {
		case "name":
			if !nameRe.MatchString(v) {
				return fmt.Errorf("cell name %q: use letters, digits, '.', '_' or '-'", v)
			}
			c.Name = v
		case "chart":
			switch v {
			case "bar", "histogram", "none":
				c.Chart = v
			default:
				return fmt.Errorf("chart %q: want bar, histogram or none", v)
			}
		case "epsilon":
			e, err := strconv.ParseFloat(v, 64)
			if err != nil || !(e > 0 && e <= maxCellEpsilon) {
				return fmt.Errorf("epsilon %q: want a number in (0, %d]", v, maxCellEpsilon)
			}
			c.Epsilon = e
		default:
			return fmt.Errorf("unknown cell option %q (known: name, chart, epsilon)", om[1])
		}
	}
	return nil
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Read parses a notebook file by its name: Jupyter (ParseIPYNB) if it ends
// in .ipynb, else Markdown (Parse).
func Read(name string, src []byte) (*Notebook, error) {
	if strings.EqualFold(filepath.Ext(name), ".ipynb") {
		return ParseIPYNB(name, src)
	}
	return Parse(name, src)
}

// Parse reads a Markdown notebook. Cells are fenced blocks whose info
// string starts with medx, optionally followed by name=..., chart=... and
// epsilon=....
// Other fenced blocks stay text.
func Parse(name string, src []byte) (*Notebook, error) {
	nb := &Notebook{Name: name, Hash: hashBytes(src), Source: bytes.Clone(src)}
	var text strings.Builder
	flush := func() {
		if t := strings.TrimSpace(text.String()); t != "" {
			nb.Blocks = append(nb.Blocks, Block{Text: text.String()})
		}
		text.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	var cell *Cell
	var fence string
	var query strings.Builder
	names := map[string]bool{}
	for sc.Scan() {
		line++
		l := sc.Text()
		if cell != nil {
			if strings.HasPrefix(strings.TrimSpace(l), fence) && strings.Trim(strings.TrimSpace(l), fence[:1]) == "" {
				cell.Query = strings.TrimSpace(query.String())
				if cell.Query == "" {
					return nil, fmt.Errorf("%s:%d: empty medx cell", name, cell.Line)
				}
				nb.Blocks = append(nb.Blocks, Block{Cell: cell})
				cell = nil
				continue
			}
			query.WriteString(l)
			query.WriteByte('\n')
			continue
		}
		m := fenceOpen.FindStringSubmatch(l)
		if m == nil {
			text.WriteString(l)
			text.WriteByte('\n')
			continue
		}
		flush()
		fence = m[1]
		cell = &Cell{Line: line}
		if err := cell.setOptions(m[2]); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if cell.Name == "" {
			cell.Name = fmt.Sprintf("cell-%d", len(nb.Cells())+1)
		}
		if names[cell.Name] {
			return nil, fmt.Errorf("%s:%d: duplicate cell name %q", name, line, cell.Name)
		}
		names[cell.Name] = true
		query.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: read: %w", name, err)
	}
	if cell != nil {
		return nil, fmt.Errorf("%s:%d: medx cell is never closed", name, cell.Line)
	}
	flush()
	if len(nb.Cells()) == 0 {
		return nil, fmt.Errorf("%s: no medx cells: a notebook needs at least one fenced medx query", name)
	}
	return nb, nil
}
