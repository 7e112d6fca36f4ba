package privacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckDifferencing(t *testing.T) {
	const minCell = 10
	big := func(id string, cell, other int, differ, shared int64) SetComparison {
		return SetComparison{Earlier: id, Cell: cell, EarlierCell: other, SameShape: cell == other, Size: 400, EarlierSize: 380, Differ: differ, Shared: shared}
	}
	tests := []struct {
		name    string
		noise   bool // default off; every case also runs with noise on unless noiseOnly
		reports []CohortReport
		want    Differencing
		refused bool
		// wantNoised is the outcome with noise on when it differs: allowed,
		// with these queries listed as noised.
		wantNoised []string
	}{
		{
			name:    "identical cohorts",
			reports: []CohortReport{{Cells: []int64{10, 10}, Comparisons: []SetComparison{big("q1", 0, 0, 0, 0), big("q1", AllCells, AllCells, 0, 0)}}},
			want:    Differencing{Compared: 1},
		},
		{
			name:    "one patient singled out by a predicate",
			reports: []CohortReport{{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 1, 1)}}},
			refused: true,
		},
		{
			name: "one patient singled out against a cell of a grouped query",
			reports: []CohortReport{{Cells: []int64{10}, Comparisons: []SetComparison{
				{Earlier: "q1", Cell: 0, EarlierCell: 0, Size: 400, EarlierSize: 280, Differ: 120, Shared: 120},
				{Earlier: "q1", Cell: 0, EarlierCell: 1, Size: 400, EarlierSize: 399, Differ: 1, Shared: 1},
			}}},
			refused:    true,
			wantNoised: []string{"q1"},
		},
		{
			name:    "one patient singled out between the unions of two same-shape queries",
			reports: []CohortReport{{Cells: []int64{10, 10}, Comparisons: []SetComparison{big("q1", AllCells, AllCells, 1, 1), big("q1", 0, 0, 0, 0)}}},
			refused: true,
		},
		{
			name:    "one revocation between two identical queries",
			reports: []CohortReport{{Cells: []int64{10, 10}, Comparisons: []SetComparison{big("q2", 1, 1, 1, 0), big("q2", AllCells, AllCells, 1, 0), big("q1", 1, 1, 0, 0)}}},
			want:    Differencing{Compared: 2, LicenceChangeOnly: []string{"q2"}},
		},
		{
			name:    "licence changes plus a small predicate difference",
			reports: []CohortReport{{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 10, 2)}}},
			refused: true,
		},
		{
			name:    "a large predicate difference",
			reports: []CohortReport{{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 10, 10)}}},
			want:    Differencing{Compared: 1},
		},
		{
			name: "small at each custodian, large in total",
			reports: []CohortReport{
				{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 4, 4)}},
				{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 7, 7)}},
			},
			want: Differencing{Compared: 1},
		},
		{
			name: "small in total across custodians",
			reports: []CohortReport{
				{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 3, 3)}},
				{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 4, 4)}},
				{Cells: []int64{10}, Comparisons: []SetComparison{big("q1", 0, 0, 0, 0)}},
			},
			refused: true,
		},
		{
			name: "a set under the minimum is a withheld cell",
			reports: []CohortReport{{Cells: []int64{4, 10}, Comparisons: []SetComparison{
				{Earlier: "q1", Cell: 0, EarlierCell: 0, Size: 4, EarlierSize: 5, Differ: 1, Shared: 1},
				{Earlier: "q1", Cell: 1, EarlierCell: 1, Size: 10, EarlierSize: 3, Differ: 7, Shared: 7},
			}}},
			want: Differencing{Compared: 1, SmallCells: []int{0}},
		},
		{
			name: "cell sizes add up across custodians",
			reports: []CohortReport{
				{Cells: []int64{3, 5, 0}},
				{Cells: []int64{0, 5, 9}},
			},
			want: Differencing{SmallCells: []int{0, 2}},
		},
		{
			name:    "uncapped counts are capped by the referee",
			reports: []CohortReport{{Cells: []int64{5000}, Comparisons: []SetComparison{big("q1", 0, 0, 9000, 9000)}}},
			want:    Differencing{Compared: 1},
		},
	}
	for _, tt := range tests {
		for _, noise := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noise=%v", tt.name, noise), func(t *testing.T) {
				got, err := CheckDifferencing(minCell, noise, tt.reports)
				refused, want := tt.refused, tt.want
				if noise && tt.wantNoised != nil {
					refused = false
					want = Differencing{Compared: 1, Noised: tt.wantNoised, SmallCells: tt.want.SmallCells}
				}
				if refused {
					wantErr(t, "CheckDifferencing", err, ErrDifferencing)
					return
				}
				if err != nil {
					t.Fatalf("CheckDifferencing = %v", err)
				}
				want.Rule = DifferencingRule
				want.LicenceChangeOnlyCount, want.NoisedCount = len(want.LicenceChangeOnly), len(want.Noised)
				for _, l := range []*[]string{&want.LicenceChangeOnly, &want.Noised} {
					if *l == nil {
						*l = []string{}
					}
				}
				if want.SmallCells == nil {
					want.SmallCells = []int{}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("CheckDifferencing (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestCheckDifferencingRefusesMalformed(t *testing.T) {
	ok := SetComparison{Earlier: "q1", Cell: 0, EarlierCell: 0, Size: 20, EarlierSize: 20, Differ: 2, Shared: 1}
	with := func(f func(*SetComparison)) []CohortReport {
		c := ok
		f(&c)
		return []CohortReport{{Cells: []int64{20}, Comparisons: []SetComparison{c}}}
	}
	tests := map[string]struct {
		minCell int64
		reports []CohortReport
	}{
		"no reports":            {10, nil},
		"no cells":              {10, []CohortReport{{}}},
		"negative minimum":      {-1, with(func(*SetComparison) {})},
		"cells disagree":        {10, []CohortReport{{Cells: []int64{20}}, {Cells: []int64{20, 3}}}},
		"negative cell size":    {10, []CohortReport{{Cells: []int64{-1}}}},
		"no earlier query":      {10, with(func(c *SetComparison) { c.Earlier = "" })},
		"cell out of range":     {10, with(func(c *SetComparison) { c.Cell = 1 })},
		"earlier cell negative": {10, with(func(c *SetComparison) { c.EarlierCell = -2 })},
		"negative difference":   {10, with(func(c *SetComparison) { c.Differ = -1 })},
		"shared above differ":   {10, with(func(c *SetComparison) { c.Shared = 3 })},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := CheckDifferencing(tt.minCell, false, tt.reports)
			wantErr(t, "CheckDifferencing", err, ErrInvalidSpec)
			if errors.Is(err, ErrDifferencing) {
				t.Errorf("a malformed report reads as a differencing refusal: %v", err)
			}
		})
	}
}

// TestDifferencingRefusalRevealsNoCount checks that the refusal names sets
// and the earlier query, never the size of the difference.
func TestDifferencingRefusalRevealsNoCount(t *testing.T) {
	_, err := CheckDifferencing(10, true, []CohortReport{{Cells: []int64{10}, Comparisons: []SetComparison{
		{Earlier: "qry-7", Cell: AllCells, EarlierCell: AllCells, SameShape: true, Size: 500, EarlierSize: 500, Differ: 3, Shared: 3},
	}}})
	wantErr(t, "CheckDifferencing", err, ErrDifferencing)
	msg := err.Error()
	if !strings.Contains(msg, "qry-7") || !strings.Contains(msg, "released cohort") || strings.Contains(msg, " 3 ") {
		t.Errorf("refusal = %q, want the query and sets named and no count", msg)
	}
}

// TestDifferencingListsBounded: a long study's account stays small.
func TestDifferencingListsBounded(t *testing.T) {
	var rep CohortReport
	rep.Cells = []int64{10}
	for i := range 40 {
		rep.Comparisons = append(rep.Comparisons, SetComparison{
			Earlier: fmt.Sprintf("qry-%02d", i), Cell: 0, EarlierCell: 0, SameShape: true,
			Size: 10, EarlierSize: 10, Differ: 2,
		})
	}
	d, err := CheckDifferencing(10, true, []CohortReport{rep})
	if err != nil {
		t.Fatal(err)
	}
	if d.Compared != 40 || d.LicenceChangeOnlyCount != 40 || len(d.LicenceChangeOnly) != MaxListed || d.LicenceChangeOnly[0] != "qry-00" {
		t.Errorf("Differencing = %+v, want 40 counted and the first %d listed", d, MaxListed)
	}
}

func TestCap(t *testing.T) {
	for _, tt := range []struct{ n, min, want int64 }{{0, 10, 0}, {3, 10, 3}, {10, 10, 10}, {11, 10, 10}, {-4, 10, 0}, {5, 0, 0}} {
		if got := Cap(tt.n, tt.min); got != tt.want {
			t.Errorf("Cap(%d, %d) = %d, want %d", tt.n, tt.min, got, tt.want)
		}
	}
}

func TestDisclosureWithDifferencingJSON(t *testing.T) {
	d := NewDisclosure(Spec{MinCell: 10, Slots: []SlotSpec{{Kind: SlotCount}}}, []bool{true}, 3)
	d.Differencing = &Differencing{Rule: DifferencingRule, Compared: 2, LicenceChangeOnly: []string{"qry-1"}, LicenceChangeOnlyCount: 1, Noised: []string{}, SmallCells: []int{0}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"minCell":10,"suppressedSlots":[0],"mechanism":"none","noiseScales":[0],"epsilonSpent":0,"epsilonLeft":0,"keyHolders":3,` +
		`"differencing":{"rule":"subset-v1","compared":2,"licenceChangeOnly":["qry-1"],"licenceChangeOnlyCount":1,"noised":[],"noisedCount":0,"smallCells":[0]}}`
	if string(b) != want {
		t.Errorf("json.Marshal = %s\nwant %s", b, want)
	}
	var back Disclosure
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
