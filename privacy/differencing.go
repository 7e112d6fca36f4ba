package privacy

import (
	"errors"
	"fmt"
	"slices"
)

// Differencing protection: see "Differencing" in the package documentation
// for the rule.

// AllCells stands for a query's whole cohort (every cell) in a SetComparison.
const AllCells = -1

// DifferencingRule names the rule applied; it is recorded in every
// Disclosure that carries a Differencing account.
const DifferencingRule = "subset-v1"

// MaxListed bounds the query ids a Differencing lists, so that the account
// stays small enough for the ledger's query record however long the study.
const MaxListed = 16

// ErrDifferencing reports a query refused by the differencing check.
var ErrDifferencing = errors.New("privacy: differencing")

// SetComparison is one custodian's comparison of a released set of the new
// query with one of an earlier query of the same study. Every count is
// capped at the study's minimum cell size (Cap) before it leaves the
// custodian.
type SetComparison struct {
	Earlier     string // the earlier query's id
	Cell        int    // the new query's cell, or AllCells for the union of its released cells
	EarlierCell int    // the earlier query's cell, or AllCells
	// SameShape says that both queries have the same GROUP BY and that the
	// sets correspond: the same cell, or both unions.
	SameShape   bool
	Size        int64 // patients in the new query's set
	EarlierSize int64 // patients in the earlier query's set
	Differ      int64 // patients in exactly one of the two sets
	Shared      int64 // of those, patients licensed for both queries
}

// CohortReport is what one custodian sends to the differencing check for a
// new query.
type CohortReport struct {
	Cells       []int64 // patients in each cell of the new query, capped
	Comparisons []SetComparison
}

// Cap is what a custodian reports for a count n: n, or minCell if n is
// larger.
func Cap(n, minCell int64) int64 { return max(min(n, minCell), 0) }

// Differencing is the account of the differencing check of one query. It
// goes to the sponsor and onto the ledger inside the Disclosure.
type Differencing struct {
	Rule string `json:"rule"`
	// Compared is the number of earlier released queries of the study that
	// this query was compared with.
	Compared int `json:"compared"`
	// LicenceChangeOnly lists the earlier queries whose cohort differs from
	// this one's by fewer than MinCell patients through licence changes
	// alone: allowed, protected by the noise (unprotected with noise off).
	// At most MaxListed ids are listed; LicenceChangeOnlyCount counts them
	// all.
	LicenceChangeOnly      []string `json:"licenceChangeOnly"`
	LicenceChangeOnlyCount int      `json:"licenceChangeOnlyCount"`
	// Noised lists the earlier queries with a differently grouped set that
	// differs from one of this query's by fewer than MinCell patients
	// licensed both times: allowed only because noise is on, and protected
	// by it. At most MaxListed; NoisedCount counts them all.
	Noised      []string `json:"noised"`
	NoisedCount int      `json:"noisedCount"`
	// SmallCells lists the cells withheld because fewer than MinCell
	// licensed patients are in them.
	SmallCells []int `json:"smallCells"`
}

// CheckDifferencing is the referee of the subset rule: it sums every
// custodian's capped counts and decides, for a study with minimum cell
// minCell and noise on or off. It returns the account to record, or an error
// wrapping ErrDifferencing that names the earlier query and the sets (never
// a count) when the new query would single out fewer than minCell patients.
// Malformed reports are refused with ErrInvalidSpec.
//
// Called with reports that hold only Cells, it tells which cells will be
// withheld (SmallCells): custodians need that to form the union of the
// released cells before they compare.
func CheckDifferencing(minCell int64, noise bool, reports []CohortReport) (Differencing, error) {
	d := Differencing{Rule: DifferencingRule, LicenceChangeOnly: []string{}, Noised: []string{}, SmallCells: []int{}}
	if minCell < 0 {
		return d, fmt.Errorf("differencing: %w: minimum cell %d is negative", ErrInvalidSpec, minCell)
	}
	if len(reports) == 0 {
		return d, fmt.Errorf("differencing: %w: no custodian reports", ErrInvalidSpec)
	}
	cells := len(reports[0].Cells)
	if cells == 0 {
		return d, fmt.Errorf("differencing: %w: a query has at least one cell", ErrInvalidSpec)
	}
	type key struct {
		earlier     string
		cell, other int
	}
	type sums struct {
		size, earlierSize, differ, shared int64
		sameShape                         bool
	}
	total := make([]int64, cells)
	pairs := map[key]*sums{}
	var order []key
	for r, rep := range reports {
		if len(rep.Cells) != cells {
			return d, fmt.Errorf("differencing: %w: report %d has %d cells, report 0 has %d", ErrInvalidSpec, r, len(rep.Cells), cells)
		}
		for j, n := range rep.Cells {
			if n < 0 {
				return d, fmt.Errorf("differencing: %w: report %d: negative count", ErrInvalidSpec, r)
			}
			total[j] = Cap(total[j]+Cap(n, minCell), minCell)
		}
		for _, c := range rep.Comparisons {
			if c.Earlier == "" || c.Cell < AllCells || c.Cell >= cells || c.EarlierCell < AllCells ||
				c.Size < 0 || c.EarlierSize < 0 || c.Differ < 0 || c.Shared < 0 || c.Shared > c.Differ {
				return d, fmt.Errorf("differencing: %w: report %d: malformed comparison with %q", ErrInvalidSpec, r, c.Earlier)
			}
			k := key{c.Earlier, c.Cell, c.EarlierCell}
			s, ok := pairs[k]
			if !ok {
				s = &sums{}
				pairs[k] = s
				order = append(order, k)
			}
			add := func(acc *int64, v int64) { *acc = Cap(*acc+Cap(v, minCell), minCell) }
			add(&s.size, c.Size)
			add(&s.earlierSize, c.EarlierSize)
			add(&s.differ, c.Differ)
			add(&s.shared, c.Shared)
			s.sameShape = s.sameShape || c.SameShape
		}
	}
	for j, n := range total {
		if n < minCell {
			d.SmallCells = append(d.SmallCells, j)
		}
	}
	compared := map[string]bool{}
	licenceOnly, noised := map[string]bool{}, map[string]bool{}
	for _, k := range order {
		compared[k.earlier] = true
		s := pairs[k]
		if s.size < minCell || s.earlierSize < minCell {
			continue // a withheld cell releases nothing
		}
		switch {
		case s.shared > 0 && s.shared < minCell && (s.sameShape || !noise):
			return d, fmt.Errorf("%w: %s of this query and %s of query %s differ by fewer than %d patients licensed for both: the difference of their results would single those patients out",
				ErrDifferencing, cellName(k.cell), cellName(k.other), k.earlier, minCell)
		case s.shared > 0 && s.shared < minCell:
			noised[k.earlier] = true
		case s.shared == 0 && s.differ > 0 && s.differ < minCell:
			licenceOnly[k.earlier] = true
		}
	}
	d.Compared = len(compared)
	d.LicenceChangeOnly, d.LicenceChangeOnlyCount = listed(licenceOnly)
	d.Noised, d.NoisedCount = listed(noised)
	return d, nil
}

// listed returns the first MaxListed keys of m, sorted, and how many there
// are.
func listed(m map[string]bool) ([]string, int) {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out[:min(len(out), MaxListed)], len(out)
}

func cellName(c int) string {
	if c == AllCells {
		return "the released cohort"
	}
	return fmt.Sprintf("cell %d", c)
}
