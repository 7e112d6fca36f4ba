package notebooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Jupyter notebooks (nbformat 4). A code cell is a MedX query cell when its
// first line is the cell magic %%medx, optionally followed by the same
// options as a Markdown fence (name=..., chart=..., epsilon=...):
//
//	%%medx name=baseline chart=bar
//	SELECT COUNT(*) AS patients FROM cohort GROUP BY sex
//
// The magic is visible and editable in Jupyter, survives every notebook tool
// (cell metadata does not always), and reads the same as a Markdown fence.
// Markdown cells are text; other code cells are shown as code and not run;
// raw cells are left out.

// magic is the first line of a Jupyter query cell.
const magic = "%%medx"

// multiline is nbformat's multiline string: one string or a list of lines.
type multiline string

func (m *multiline) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*m = multiline(s)
		return nil
	}
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		return fmt.Errorf("want a string or a list of strings")
	}
	*m = multiline(strings.Join(lines, ""))
	return nil
}

// MarshalJSON writes the list of lines form, as Jupyter does.
func (m multiline) MarshalJSON() ([]byte, error) {
	return json.Marshal(splitLines(string(m)))
}

// splitLines splits s into lines that keep their "\n", as nbformat stores
// sources and outputs.
func splitLines(s string) []string {
	lines := []string{}
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i+1])
		s = s[i+1:]
	}
	return lines
}

// ipynbFile is what MedX reads of a notebook file.
type ipynbFile struct {
	NBFormat int         `json:"nbformat"`
	Metadata ipynbMeta   `json:"metadata"`
	Cells    []ipynbCell `json:"cells"`
}

type ipynbMeta struct {
	MedX *Stamp `json:"medx,omitempty"`
}

type ipynbCell struct {
	CellType string        `json:"cell_type"`
	Source   multiline     `json:"source"`
	Outputs  []ipynbOutput `json:"outputs"`
}

type ipynbOutput struct {
	OutputType string               `json:"output_type"`
	Data       map[string]multiline `json:"data"`
}

// ParseIPYNB reads a Jupyter notebook (nbformat 4) whose %%medx code cells
// are queries.
func ParseIPYNB(name string, src []byte) (*Notebook, error) {
	var f ipynbFile
	if err := json.Unmarshal(src, &f); err != nil {
		return nil, fmt.Errorf("%s: not a Jupyter notebook: %w", name, err)
	}
	if f.NBFormat != 4 {
		return nil, fmt.Errorf("%s: nbformat %d: want 4", name, f.NBFormat)
	}
	nb := &Notebook{Name: name, Hash: hashBytes(src), Source: bytes.Clone(src)}
	names := map[string]bool{}
	for i, c := range f.Cells {
		text := string(c.Source)
		switch c.CellType {
		case "markdown":
			if strings.TrimSpace(text) != "" {
				nb.Blocks = append(nb.Blocks, Block{Text: text})
			}
			continue
		case "code":
		default:
			continue
		}
		first, rest, _ := strings.Cut(text, "\n")
		opts, ok := strings.CutPrefix(strings.TrimSpace(first), magic)
		if !ok || (opts != "" && opts[0] != ' ' && opts[0] != '\t') {
			if strings.TrimSpace(text) != "" {
				nb.Blocks = append(nb.Blocks, Block{Text: "```\n" + strings.TrimRight(text, "\n") + "\n```\n"})
			}
			continue
		}
		cell := &Cell{Line: i + 1, Query: strings.TrimSpace(rest)}
		if err := cell.setOptions(opts); err != nil {
			return nil, fmt.Errorf("%s: cell %d: %w", name, i+1, err)
		}
		if cell.Query == "" {
			return nil, fmt.Errorf("%s: cell %d: empty medx cell", name, i+1)
		}
		if cell.Name == "" {
			cell.Name = fmt.Sprintf("cell-%d", len(nb.Cells())+1)
		}
		if names[cell.Name] {
			return nil, fmt.Errorf("%s: cell %d: duplicate cell name %q", name, i+1, cell.Name)
		}
		names[cell.Name] = true
		nb.Blocks = append(nb.Blocks, Block{Cell: cell})
	}
	if len(nb.Cells()) == 0 {
		return nil, fmt.Errorf("%s: no medx cells: a Jupyter notebook needs at least one code cell starting with %s", name, magic)
	}
	return nb, nil
}

// Written notebooks: nbformat 4.5, the version that introduced cell ids.
type (
	outNotebook struct {
		Cells         []any          `json:"cells"`
		Metadata      map[string]any `json:"metadata"`
		NBFormat      int            `json:"nbformat"`
		NBFormatMinor int            `json:"nbformat_minor"`
	}
	outMarkdown struct {
		CellType string         `json:"cell_type"`
		ID       string         `json:"id"`
		Metadata map[string]any `json:"metadata"`
		Source   multiline      `json:"source"`
	}
	outCode struct {
		CellType       string         `json:"cell_type"`
		ExecutionCount *int           `json:"execution_count"`
		ID             string         `json:"id"`
		Metadata       map[string]any `json:"metadata"`
		Outputs        []outDisplay   `json:"outputs"`
		Source         multiline      `json:"source"`
	}
	outDisplay struct {
		Data       map[string]multiline `json:"data"`
		Metadata   map[string]any       `json:"metadata"`
		OutputType string               `json:"output_type"`
	}
)

var cellIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// WriteIPYNB writes run as a Jupyter notebook (nbformat 4.5) with the same
// outputs as the HTML report: each query cell's source is %%medx with its
// options and query, and its output a display_data with the cell's report
// section as text/html and its table as text/plain. The notebook's metadata
// carries the run's provenance (key "medx"), as the report's does.
func WriteIPYNB(w io.Writer, run *Run) error {
	views, err := cellViews(run)
	if err != nil {
		return err
	}
	nb := outNotebook{
		Cells: []any{},
		Metadata: map[string]any{
			"language_info": map[string]any{"name": "sql"},
			"title":         run.Notebook.Name,
			"medx":          stampOf(run),
		},
		NBFormat: 4, NBFormatMinor: 5,
	}
	text, count := 0, 0
	for _, b := range run.Notebook.Blocks {
		if b.Cell == nil {
			text++
			nb.Cells = append(nb.Cells, outMarkdown{CellType: "markdown", ID: "text-" + strconv.Itoa(text),
				Metadata: map[string]any{}, Source: multiline(strings.TrimRight(b.Text, "\n"))})
			continue
		}
		v := views[b.Cell]
		var frag bytes.Buffer
		if err := cellTemplate.ExecuteTemplate(&frag, "cell", v); err != nil {
			return fmt.Errorf("render cell %s: %w", b.Cell.Name, err)
		}
		plain := v.plain()
		count++
		n := count
		meta := map[string]any{"medx": map[string]any{"name": b.Cell.Name, "queryId": v.QueryID, "queryHash": v.QueryHash, "resultHash": v.ResultHash}}
		nb.Cells = append(nb.Cells, outCode{
			CellType: "code", ExecutionCount: &n, ID: "medx-" + cellIDUnsafe.ReplaceAllString(b.Cell.Name, "_"),
			Metadata: meta, Source: multiline(b.Cell.magicLine() + "\n" + b.Cell.Query),
			Outputs: []outDisplay{{OutputType: "display_data", Metadata: map[string]any{},
				Data: map[string]multiline{"text/html": multiline(frag.String()), "text/plain": multiline(plain)}}},
		})
	}
	b, err := json.MarshalIndent(nb, "", " ")
	if err != nil {
		return fmt.Errorf("encode notebook: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write notebook: %w", err)
	}
	return nil
}

// magicLine is the cell's %%medx line with its options.
func (c *Cell) magicLine() string {
	s := magic + " name=" + c.Name
	if c.Chart != "" {
		s += " chart=" + c.Chart
	}
	if c.Epsilon != 0 {
		s += " epsilon=" + strconv.FormatFloat(c.Epsilon, 'g', -1, 64)
	}
	return s
}
