package notebooks

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

//go:embed report.html.tmpl
var reportTemplate string

var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// WriteHTML renders run as a self-contained HTML report: the notebook's
// text, each cell's query, result table and disclosure metadata, and the
// provenance an ethics board checks against the ledger.
func WriteHTML(w io.Writer, run *Run) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"markdown": func(s string) (template.HTML, error) {
			var b bytes.Buffer
			// goldmark escapes raw HTML by default (no WithUnsafe).
			if err := md.Convert([]byte(s), &b); err != nil {
				return "", err
			}
			return template.HTML(b.String()), nil
		},
		"num": func(f float64) string {
			if f == math.Trunc(f) {
				return strconv.FormatFloat(f, 'f', 0, 64)
			}
			return strconv.FormatFloat(f, 'f', 2, 64)
		},
		"time": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"result": func(c *Cell) *Result {
			for i := range run.Results {
				if run.Results[i].Cell == c {
					return &run.Results[i]
				}
			}
			return nil
		},
	}).Parse(reportTemplate)
	if err != nil {
		return fmt.Errorf("parse report template: %w", err)
	}
	if err := t.Execute(w, run); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}
