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
