package notebooks

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

//go:embed report.html.tmpl
var reportTemplate string

var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// cellTemplate renders reports ("report") and each cell's section ("cell"),
// which is also a notebook cell's text/html output.
var cellTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"markdown": func(s string) (template.HTML, error) {
		var b bytes.Buffer
		// goldmark escapes raw HTML by default (no WithUnsafe).
		if err := md.Convert([]byte(s), &b); err != nil {
			return "", err
		}
		return template.HTML(b.String()), nil
	},
	"time": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"eps":  func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"num":  formatNumber,
}).Parse(reportTemplate))

// StampFormat names the provenance a report carries.
const StampFormat = "medx.notebook-report/1"

// Stamp is the provenance a report carries (HTML: a JSON script element
// with id medx-provenance; notebook: metadata key "medx"): the ledger run,
// the notebook exactly as run, and what was recorded of each cell. The
// numbers are not in it: verification reads them from what the report
// shows.
type Stamp struct {
	Format       string           `json:"format"`
	Run          string           `json:"run"`
	Request      string           `json:"request,omitempty"`
	Notebook     string           `json:"notebook"`
	NotebookHash string           `json:"notebookHash"`
	Source       []byte           `json:"source"`
	Started      time.Time        `json:"started"`
	Cells        []CellProvenance `json:"cells"`
}

func stampOf(run *Run) Stamp {
	return Stamp{Format: StampFormat, Run: run.RecordID, Request: run.Request, Notebook: run.Notebook.Name,
		NotebookHash: run.Notebook.Hash, Source: run.Notebook.Source, Started: run.Started.UTC(), Cells: run.Provenance.Cells}
}

// cellView is what the templates show of one cell.
type cellView struct {
	Name, Query string
	Epsilon     float64
	Err         string
	Table       *Published
	Charts      template.HTML
	QueryID     string
	QueryHash   string
	ResultHash  string
	Disclosure  *disclosureView
}

type disclosureView struct {
	MinCell                 int64
	Suppressed, Slots       int
	Mechanism               string
	NoiseMin, NoiseMax      string
	EpsilonSpent            float64
	EpsilonLeft             float64
	KeyHolders              int
	Differencing            string
	DifferencingCompared    int
	DifferencingNoised      int
	DifferencingLicenceOnly int
	CellsWithheld           int
}

func (v *cellView) plain() string {
	if v.Err != "" {
		return "This cell failed: " + v.Err + "\n"
	}
	return v.Table.Plain()
}

// cellViews builds each query cell's view from the run.
func cellViews(run *Run) (map[*Cell]*cellView, error) {
	views := map[*Cell]*cellView{}
	for i, res := range run.Results {
		c := res.Cell
		v := &cellView{Name: c.Name, Query: c.Query, Epsilon: c.Epsilon}
		if i < len(run.Provenance.Cells) {
			v.QueryHash = run.Provenance.Cells[i].QueryHash
		}
		switch {
		case res.Err != nil:
			v.Err = res.Err.Error()
		case res.Output == nil || res.Output.Table == nil:
			return nil, fmt.Errorf("cell %s: no result and no error", c.Name)
		default:
			o := res.Output
			p := Publish(o.Table)
			v.Table, v.Charts = &p, charts(c.Chart, p)
			v.QueryID, v.QueryHash, v.ResultHash = o.QueryID, o.QueryHash, p.Hash()
			d := o.Disclosure
			dv := &disclosureView{MinCell: d.MinCell, Suppressed: len(d.SuppressedSlots), Slots: len(d.NoiseScales),
				Mechanism: d.Mechanism, EpsilonSpent: d.EpsilonSpent, EpsilonLeft: d.EpsilonLeft, KeyHolders: d.KeyHolders}
			if len(d.NoiseScales) > 0 {
				dv.NoiseMin, dv.NoiseMax = formatNumber(slices.Min(d.NoiseScales)), formatNumber(slices.Max(d.NoiseScales))
			}
			if df := d.Differencing; df != nil {
				dv.Differencing, dv.DifferencingCompared = df.Rule, df.Compared
				dv.DifferencingNoised, dv.DifferencingLicenceOnly, dv.CellsWithheld = df.NoisedCount, df.LicenceChangeOnlyCount, len(df.SmallCells)
			}
			v.Disclosure = dv
		}
		views[c] = v
	}
	return views, nil
}

// reportView is what the report template shows.
type reportView struct {
	Run    *Run
	Blocks []blockView
	Stamp  template.JS
	Failed int
}

type blockView struct {
	Text string
	Cell *cellView
}

// WriteHTML renders run as a self-contained HTML report: the notebook's
// text, each cell's query, result table, chart and disclosure metadata,
// and the provenance an ethics board checks against the ledger ('medx
// notebook verify').
func WriteHTML(w io.Writer, run *Run) error {
	views, err := cellViews(run)
	if err != nil {
		return err
	}
	// encoding/json escapes <, > and &, so the stamp cannot close its
	// script element.
	stamp, err := json.MarshalIndent(stampOf(run), "", " ")
	if err != nil {
		return fmt.Errorf("encode provenance: %w", err)
	}
	v := reportView{Run: run, Stamp: template.JS(stamp), Failed: run.Failed()}
	for _, b := range run.Notebook.Blocks {
		if b.Cell != nil {
			v.Blocks = append(v.Blocks, blockView{Cell: views[b.Cell]})
		} else {
			v.Blocks = append(v.Blocks, blockView{Text: b.Text})
		}
	}
	var buf bytes.Buffer
	if err := cellTemplate.ExecuteTemplate(&buf, "report", v); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
