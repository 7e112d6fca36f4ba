package notebooks

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Charts are hand-written SVG, so that a report needs no script and no
// network: a bar chart per value column across the GROUP BY cells, or a
// histogram per HISTOGRAM item with one series per cell. A withheld value
// draws no bar and is marked with a cross on the axis.

// binColumn matches a histogram bin's column: the item's name and the bin,
// as in "hba1c[6.5,7)" or "sbp[160,260]".
var binColumn = regexp.MustCompile(`^(.+?)(\[[^\[\]]*[\)\]])$`)

// maxPanels bounds the charts of one cell.
const maxPanels = 6

var palette = []string{"#3366aa", "#cc6633", "#339966", "#aa3377", "#777733", "#33aaaa", "#885522", "#666666"}

type series struct {
	name   string
	values []float64
	ok     []bool // false: withheld, no bar
}

type barChart struct {
	title      string
	categories []string
	series     []series
}

// chartKind is the chart a cell gets: its chart option, else a histogram
// when the query has one, else bars when it is grouped, else none.
func chartKind(option string, p Published) string {
	if option != "" {
		return option
	}
	groups := 0
	if len(p.Rows) > 0 {
		groups = len(p.Rows[0].Group)
	}
	for _, c := range p.Columns[groups:] {
		if binColumn.MatchString(c) {
			return "histogram"
		}
	}
	if groups > 0 {
		return "bar"
	}
	return "none"
}

// charts renders a cell's charts as inline SVG.
func charts(option string, p Published) template.HTML {
	if len(p.Rows) == 0 {
		return ""
	}
	groups := len(p.Rows[0].Group)
	rowName := func(r PublishedRow) string {
		if len(r.Group) == 0 {
			return "all"
		}
		return strings.Join(r.Group, " / ")
	}
	num := func(s string) (float64, bool) {
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	}
	var out []barChart
	switch chartKind(option, p) {
	case "histogram":
		type hist struct {
			name string
			cols []int
		}
		var hs []*hist
		for i, c := range p.Columns[groups:] {
			m := binColumn.FindStringSubmatch(c)
			if m == nil {
				continue
			}
			if len(hs) == 0 || hs[len(hs)-1].name != m[1] {
				hs = append(hs, &hist{name: m[1]})
			}
			hs[len(hs)-1].cols = append(hs[len(hs)-1].cols, i)
		}
		for _, h := range hs {
			bc := barChart{title: "Histogram of " + h.name}
			for _, i := range h.cols {
				bc.categories = append(bc.categories, binColumn.FindStringSubmatch(p.Columns[groups+i])[2])
			}
			for _, r := range p.Rows {
				s := series{name: rowName(r)}
				any := false
				for _, i := range h.cols {
					f, ok := num(r.Values[i])
					s.values, s.ok = append(s.values, f), append(s.ok, ok)
					any = any || ok
				}
				if any {
					bc.series = append(bc.series, s)
				}
			}
			if len(bc.series) > 0 {
				out = append(out, bc)
			}
		}
	case "bar":
		for i, c := range p.Columns[groups:] {
			if binColumn.MatchString(c) {
				continue
			}
			bc := barChart{title: c}
			s := series{name: c}
			any := false
			for _, r := range p.Rows {
				f, ok := num(r.Values[i])
				bc.categories = append(bc.categories, rowName(r))
				s.values, s.ok = append(s.values, f), append(s.ok, ok)
				any = any || ok
			}
			if any {
				bc.series = []series{s}
				out = append(out, bc)
			}
		}
	}
	var b strings.Builder
	for i, bc := range out {
		if i == maxPanels {
			fmt.Fprintf(&b, "<p class=\"note\">%d more charts not drawn.</p>\n", len(out)-maxPanels)
			break
		}
		b.WriteString(bc.svg())
	}
	return template.HTML(b.String())
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func (bc barChart) svg() string {
	const w, h, left, right, top, bottom = 640.0, 260.0, 56.0, 16.0, 30.0, 58.0
	pw, ph := w-left-right, h-top-bottom
	hi := 0.0
	for _, s := range bc.series {
		for i, v := range s.values {
			if s.ok[i] {
				hi = max(hi, v)
			}
		}
	}
	ymax := niceMax(hi)
	y := func(v float64) float64 { return top + ph - max(v, 0)/ymax*ph }
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="%s">`+"\n", w, h, w, h, esc(bc.title))
	fmt.Fprintf(&b, "<title>%s</title>\n", esc(bc.title))
	fmt.Fprintf(&b, `<text x="%g" y="18" font-size="13" font-weight="bold">%s</text>`+"\n", left, esc(bc.title))
	for k := 0; k <= 4; k++ {
		v := ymax * float64(k) / 4
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" font-size="10" text-anchor="end">%s</text>`+"\n",
			left, left+pw, y(v), y(v), left-4, y(v)+3, esc(formatNumber(v)))
	}
	n := len(bc.categories)
	gw := pw / float64(n)
	bw := gw * 0.8 / float64(len(bc.series))
	for ci, cat := range bc.categories {
		x0 := left + float64(ci)*gw + gw*0.1
		for si, s := range bc.series {
			x := x0 + float64(si)*bw
			if !s.ok[ci] {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#999">×<title>%s %s: withheld</title></text>`+"\n", x+bw/2, top+ph-2, esc(s.name), esc(cat))
				continue
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x, y(s.values[ci]), bw, top+ph-y(s.values[ci]), palette[si%len(palette)], esc(s.name), esc(cat), esc(formatNumber(s.values[ci])))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="10" text-anchor="middle">%s</text>`+"\n", x0+gw*0.4, top+ph+14, esc(cat))
	}
	fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="#333"/>`+"\n", left, left+pw, top+ph, top+ph)
	if len(bc.series) > 1 {
		for si, s := range bc.series {
			x, ly := left+float64(si%5)*110, h-30+float64(si/5%2)*14
			fmt.Fprintf(&b, `<rect x="%g" y="%g" width="10" height="10" fill="%s"/><text x="%g" y="%g" font-size="11">%s</text>`+"\n",
				x, ly, palette[si%len(palette)], x+14, ly+9, esc(s.name))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
