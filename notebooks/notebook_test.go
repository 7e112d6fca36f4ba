package notebooks

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := "# Title\n\nSome text.\n\n```medx name=baseline chart=bar\nSELECT COUNT(*) FROM cohort\nGROUP BY sex\n```\n\n" +
		"```sql\nnot a cell\n```\n\n~~~medx\nSELECT AVG(bmi) FROM cohort\n~~~\nEnd.\n"
	nb, err := Parse("nb.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cells := nb.Cells()
	if len(cells) != 2 {
		t.Fatalf("got %d cells, want 2", len(cells))
	}
	if c := cells[0]; c.Name != "baseline" || c.Chart != "bar" || c.Query != "SELECT COUNT(*) FROM cohort\nGROUP BY sex" || c.Line != 5 {
		t.Errorf("cell 0 = %+v", *c)
	}
	if c := cells[1]; c.Name != "cell-2" || c.Query != "SELECT AVG(bmi) FROM cohort" {
		t.Errorf("cell 1 = %+v", *c)
	}
	if len(nb.Blocks) != 5 {
		t.Errorf("got %d blocks, want 5 (text, cell, text with sql fence, cell, text)", len(nb.Blocks))
	}
	if !strings.Contains(nb.Blocks[2].Text, "not a cell") {
		t.Errorf("non-medx fence should stay text, got %q", nb.Blocks[2].Text)
	}
	if len(nb.Hash) != 64 {
		t.Errorf("hash %q", nb.Hash)
	}
	other, _ := Parse("nb.md", []byte(src+" "))
	if other.Hash == nb.Hash {
		t.Error("hash ignores a change to the source")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"no cells", "# only text\n", "no medx cells"},
		{"unclosed", "```medx\nSELECT COUNT(*) FROM cohort\n", "nb.md:1: medx cell is never closed"},
		{"empty", "```medx\n```\n", "nb.md:1: empty medx cell"},
		{"bad option", "```medx colour=red\nSELECT COUNT(*) FROM cohort\n```\n", `unknown cell option "colour"`},
		{"bad epsilon", "```medx epsilon=50\nSELECT COUNT(*) FROM cohort\n```\n", `epsilon "50"`},
		{"option twice", "```medx name=a name=b\nSELECT COUNT(*) FROM cohort\n```\n", `"name" given twice`},
		{"bad chart", "```medx chart=pie\nSELECT COUNT(*) FROM cohort\n```\n", `chart "pie"`},
		{"bad name", "```medx name=a/b\nSELECT COUNT(*) FROM cohort\n```\n", `cell name "a/b"`},
		{"not key=value", "```medx fancy\nSELECT COUNT(*) FROM cohort\n```\n", "want key=value"},
		{"duplicate", "```medx name=a\nSELECT COUNT(*) FROM cohort\n```\n```medx name=a\nSELECT COUNT(*) FROM cohort\n```\n", "nb.md:4: duplicate cell name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("nb.md", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.src, err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("```medx name=a chart=bar\nSELECT COUNT(*) FROM cohort\n```\ntext\n")
	f.Add("~~~~medx\nx\n~~~~\n")
	f.Fuzz(func(t *testing.T, src string) {
		nb, err := Parse("f.md", []byte(src))
		if err != nil {
			return
		}
		for _, c := range nb.Cells() {
			if c.Query == "" || c.Name == "" {
				t.Errorf("parsed an empty cell %+v", *c)
			}
		}
	})
}

func TestParseIPYNB(t *testing.T) {
	src := `{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
 {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# Title\n", "Text."]},
 {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": null, "outputs": [], "source": "%%medx name=n chart=bar epsilon=0.2\nSELECT COUNT(*) FROM cohort\nGROUP BY sex"},
 {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": null, "outputs": [], "source": ["import pandas\n"]},
 {"cell_type": "raw", "id": "d", "metadata": {}, "source": "raw"},
 {"cell_type": "code", "id": "e", "metadata": {}, "execution_count": null, "outputs": [], "source": ["%%medx\n", "SELECT AVG(bmi) FROM cohort"]}
]}`
	nb, err := Read("nb.ipynb", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	cells := nb.Cells()
	if len(cells) != 2 || len(nb.Blocks) != 4 {
		t.Fatalf("got %d cells, %d blocks; want 2 cells, 4 blocks (text, cell, python as text, cell)", len(cells), len(nb.Blocks))
	}
	if c := cells[0]; c.Name != "n" || c.Chart != "bar" || c.Epsilon != 0.2 || c.Query != "SELECT COUNT(*) FROM cohort\nGROUP BY sex" {
		t.Errorf("cell 0 = %+v", *c)
	}
	if c := cells[1]; c.Name != "cell-2" || c.Query != "SELECT AVG(bmi) FROM cohort" {
		t.Errorf("cell 1 = %+v", *c)
	}
	if !strings.Contains(nb.Blocks[2].Text, "import pandas") {
		t.Errorf("a non-medx code cell should be shown as code, got %q", nb.Blocks[2].Text)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"not json", "{", "not a Jupyter notebook"},
		{"nbformat 3", `{"nbformat": 3, "cells": []}`, "nbformat 3"},
		{"no cells", `{"nbformat": 4, "cells": [{"cell_type": "code", "source": "print(1)"}]}`, "no medx cells"},
		{"empty", `{"nbformat": 4, "cells": [{"cell_type": "code", "source": "%%medx name=a\n"}]}`, "cell 1: empty medx cell"},
		{"bad option", `{"nbformat": 4, "cells": [{"cell_type": "code", "source": "%%medx chart=pie\nSELECT COUNT(*) FROM cohort"}]}`, `cell 1: chart "pie"`},
		{"bad source", `{"nbformat": 4, "cells": [{"cell_type": "code", "source": 3}]}`, "want a string or a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read("nb.ipynb", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func FuzzParseIPYNB(f *testing.F) {
	f.Add(`{"nbformat": 4, "cells": [{"cell_type": "code", "source": "%%medx name=a\nSELECT COUNT(*) FROM cohort"}]}`)
	f.Fuzz(func(t *testing.T, src string) {
		nb, err := ParseIPYNB("f.ipynb", []byte(src))
		if err != nil {
			return
		}
		for _, c := range nb.Cells() {
			if c.Query == "" || c.Name == "" {
				t.Errorf("parsed an empty cell %+v", *c)
			}
		}
	})
}

func FuzzReadReport(f *testing.F) {
	f.Add(`<script id="medx-provenance" type="application/json">{"format":"medx.notebook-report/1"}</script><section class="cell" data-cell="a"><table class="result"><tr><td>1</td></tr></table></section>`)
	f.Add(`{"nbformat":4,"metadata":{"medx":{"format":"medx.notebook-report/1"}},"cells":[]}`)
	f.Fuzz(func(t *testing.T, src string) {
		r, err := ReadReport("f", []byte(src))
		if err != nil {
			return
		}
		// Whatever a report claims, an empty record never verifies it.
		if Verify(r, Recorded{}) == nil && len(r.Cells) > 0 {
			t.Error("a report with cells verified against an empty record")
		}
	})
}
