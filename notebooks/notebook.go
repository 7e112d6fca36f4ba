// Package notebooks runs analysis notebooks: Markdown files whose fenced
// `medx` blocks are aggregate queries. A run executes each cell as the
// sponsor, renders a self-contained HTML report, and records its provenance
// (notebook hash, each cell's query and result hash) on the ledger, so that
// an ethics board can tie every published number to an audited query.
package notebooks

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// Notebook is a parsed notebook: free text and query cells, in order.
type Notebook struct {
	Name   string
	Hash   string // hex SHA-256 of the source bytes
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
	Query string
	Line  int // 1-based line of the opening fence
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

// Parse reads a Markdown notebook. Cells are fenced blocks whose info
// string starts with medx, optionally followed by name=... and chart=....
// Other fenced blocks stay text.
func Parse(name string, src []byte) (*Notebook, error) {
	sum := sha256.Sum256(src)
	nb := &Notebook{Name: name, Hash: hex.EncodeToString(sum[:])}
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
		for _, opt := range strings.Fields(m[2]) {
			om := optionRe.FindStringSubmatch(opt)
			if om == nil {
				return nil, fmt.Errorf("%s:%d: cell option %q: want key=value", name, line, opt)
			}
			v := strings.Trim(om[2], `"`)
			switch om[1] {
			case "name":
				if !nameRe.MatchString(v) {
					return nil, fmt.Errorf("%s:%d: cell name %q: use letters, digits, '.', '_' or '-'", name, line, v)
				}
				cell.Name = v
			case "chart":
				switch v {
				case "bar", "histogram", "none":
					cell.Chart = v
				default:
					return nil, fmt.Errorf("%s:%d: chart %q: want bar, histogram or none", name, line, v)
				}
			default:
				return nil, fmt.Errorf("%s:%d: unknown cell option %q (known: name, chart)", name, line, om[1])
			}
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
