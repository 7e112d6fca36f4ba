package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// Differencing protection, custodian side. The rule and its referee are in
// package privacy (CheckDifferencing); here each custodian computes the
// cohort of a query over its own licensed patients, keeps it privately in
// its node's store (never on the ledger), and compares it with the cohorts
// of the study's earlier released queries. Only capped counts leave.

var cohortsBucket = []byte("cohorts")

// cohort is a custodian's private record of one query's cohort: its
// licensed records, sorted, the GROUP BY cell of each (-1: the record fails
// the WHERE), the query's GROUP BY, and the cells withheld whole because
// fewer than the minimum cell size of patients were in them (across all
// custodians).
type cohort struct {
	Licensed []string `json:"licensed"`
	Cells    []int32  `json:"cells"`
	NumCells int      `json:"numCells"`
	GroupBy  []string `json:"groupBy"`
	Withheld []int    `json:"withheld"`
}

// cohortOf computes q's cohort over records, the custodian's licensed
// record ids (sorted). It matches the WHERE and each cell's condition
// against the dataset, then cross-checks the cell sizes with the evaluator
// itself (a COUNT(*) with q's WHERE and GROUP BY) and refuses to go on if
// they disagree: the check must judge exactly the patients the query reads.
func (c *Custodian) cohortOf(ctx context.Context, q *cohorts.Query, records []string) (*cohort, error) {
	lay := q.Layout()
	co := &cohort{Licensed: records, Cells: make([]int32, len(records)), NumCells: len(lay.Cells), GroupBy: q.GroupBy(), Withheld: []int{}}
	for i := range co.Cells {
		co.Cells[i] = -1
	}
	if len(records) == 0 {
		return co, nil
	}
	where := ""
	if w := q.Where(); w != nil {
		where = w.String()
	}
	groupBy := q.GroupBy()
	for j, cell := range lay.Cells {
		text, err := cellCriteria(where, groupBy, cell.Labels)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: cohort of cell %d: %w", c.signer.ID, j, err)
		}
		if text == "" { // no WHERE, no GROUP BY: every licensed patient
			for i := range co.Cells {
				co.Cells[i] = int32(j)
			}
			continue
		}
		crit, err := cohorts.ParseCriteria(text)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: cohort of cell %v: %w", c.signer.ID, cell.Labels, err)
		}
		ids, err := c.data.Match(ctx, crit)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: cohort of cell %v: %w", c.signer.ID, cell.Labels, err)
		}
		for _, id := range ids {
			if i, ok := slices.BinarySearch(records, id); ok {
				co.Cells[i] = int32(j)
			}
		}
	}
	// Cross-check with the evaluator.
	src := "SELECT COUNT(*) FROM cohort"
	if where != "" {
		src += " WHERE " + where
	}
	if len(groupBy) > 0 {
		src += " GROUP BY " + strings.Join(groupBy, ", ")
	}
	cq, err := cohorts.ParseQuery(src)
	if err != nil {
		return nil, fmt.Errorf("custodian %s: cohort count query: %w", c.signer.ID, err)
	}
	counts, err := c.data.Aggregate(ctx, cq, cohorts.NewPatientSet(records))
	if err != nil {
		return nil, fmt.Errorf("custodian %s: cohort count: %w", c.signer.ID, err)
	}
	sizes := co.sizes()
	if len(counts) != len(sizes) || !slices.Equal(counts, sizes) {
		return nil, fmt.Errorf("custodian %s: the cohort's cells (%v) disagree with the evaluator's counts (%v): cannot check differencing", c.signer.ID, sizes, counts)
	}
	return co, nil
}

// sizes counts the patients of each cell.
func (co *cohort) sizes() []int64 {
	n := make([]int64, co.NumCells)
	for _, j := range co.Cells {
		if j >= 0 {
			n[j]++
		}
	}
	return n
}

// cellCriteria is the WHERE expression of one GROUP BY cell: the query's
// WHERE (if any) and, per GROUP BY term, the condition its label stands for.
func cellCriteria(where string, groupBy, labels []string) (string, error) {
	if len(groupBy) != len(labels) {
		return "", fmt.Errorf("%d GROUP BY terms for %d labels", len(groupBy), len(labels))
	}
	var parts []string
	if where != "" {
		parts = append(parts, "("+where+")")
	}
	for i, name := range groupBy {
		cond, err := labelCondition(name, labels[i])
		if err != nil {
			return "", err
		}
		parts = append(parts, cond)
	}
	return strings.Join(parts, " AND "), nil
}

// labelCondition turns a GROUP BY term and one of its labels into a
// condition: "sex" and "F" into sex = 'F'; "age_band(10)" and "40-49" into
// age BETWEEN 40 AND 49, "110+" into age >= 110. cohortOf cross-checks the
// result with the evaluator, so a new kind of term fails closed.
func labelCondition(name, label string) (string, error) {
	if inner, ok := strings.CutPrefix(name, "age_band("); ok && strings.HasSuffix(inner, ")") {
		if lo, ok := strings.CutSuffix(label, "+"); ok {
			if _, err := strconv.Atoi(lo); err != nil {
				return "", fmt.Errorf("age band label %q", label)
			}
			return "age >= " + lo, nil
		}
		lo, hi, ok := strings.Cut(label, "-")
		_, err1 := strconv.Atoi(lo)
		_, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil {
			return "", fmt.Errorf("age band label %q", label)
		}
		return "age BETWEEN " + lo + " AND " + hi, nil
	}
	return name + " = '" + strings.ReplaceAll(label, "'", "''") + "'", nil
}

// compareCohorts counts, for every pair of released sets of the new cohort
// a and the earlier cohort b (each cell not withheld, and the union of those
// cells when there are several), the patients in exactly one of the two and,
// of those, the patients licensed for both queries. Counts are capped at
// minCell.
func compareCohorts(a, b *cohort, earlier ledger.QueryID, minCell int64) []privacy.SetComparison {
	na, nb := a.NumCells, b.NumCells
	relA, relB := a.released(), b.released()
	// Index na (nb) is the union of the released cells.
	sizeA, sizeB := make([]int64, na+1), make([]int64, nb+1)
	sharedA, sharedB := make([]int64, na+1), make([]int64, nb+1) // patients licensed both times
	inter := make([][]int64, na+1)
	for j := range inter {
		inter[j] = make([]int64, nb+1)
	}
	i, k := 0, 0
	for i < len(a.Licensed) || k < len(b.Licensed) {
		ca, cb := int32(-1), int32(-1)
		both := false
		switch {
		case k >= len(b.Licensed) || (i < len(a.Licensed) && a.Licensed[i] < b.Licensed[k]):
			ca = a.Cells[i]
			i++
		case i >= len(a.Licensed) || b.Licensed[k] < a.Licensed[i]:
			cb = b.Cells[k]
			k++
		default:
			ca, cb, both = a.Cells[i], b.Cells[k], true
			i++
			k++
		}
		inA, inB := ca >= 0 && relA[ca], cb >= 0 && relB[cb]
		if inA {
			sizeA[ca]++
			sizeA[na]++
			if both {
				sharedA[ca]++
				sharedA[na]++
			}
		}
		if inB {
			sizeB[cb]++
			sizeB[nb]++
			if both {
				sharedB[cb]++
				sharedB[nb]++
			}
		}
		if inA && inB {
			inter[ca][cb]++
			inter[ca][nb]++
			inter[na][cb]++
			inter[na][nb]++
		}
	}
	sets := func(n int, rel []bool) []int {
		var s []int
		for j := range n {
			if rel[j] {
				s = append(s, j)
			}
		}
		if len(s) > 1 {
			s = append(s, n) // the union, when it is not a cell already
		}
		return s
	}
	name := func(j, n int) int {
		if j == n {
			return privacy.AllCells
		}
		return j
	}
	sameGroups := slices.Equal(a.GroupBy, b.GroupBy)
	var out []privacy.SetComparison
	for _, j := range sets(na, relA) {
		for _, l := range sets(nb, relB) {
			cj, cl := name(j, na), name(l, nb)
			out = append(out, privacy.SetComparison{
				Earlier:     string(earlier),
				Cell:        cj,
				EarlierCell: cl,
				SameShape:   sameGroups && cj == cl,
				Size:        privacy.Cap(sizeA[j], minCell),
				EarlierSize: privacy.Cap(sizeB[l], minCell),
				Differ:      privacy.Cap(sizeA[j]+sizeB[l]-2*inter[j][l], minCell),
				Shared:      privacy.Cap(sharedA[j]+sharedB[l]-2*inter[j][l], minCell),
			})
		}
	}
	return out
}

// released marks the cells not withheld.
func (co *cohort) released() []bool {
	rel := make([]bool, co.NumCells)
	for j := range rel {
		rel[j] = !slices.Contains(co.Withheld, j)
	}
	return rel
}

// comparisons compares the new cohort co with the custodian's record of
// each earlier query's cohort. A custodian without a record of an earlier
// released query cannot vouch for it, and the check fails closed.
func (c *Custodian) comparisons(co *cohort, earlier []ledger.QueryID, minCell int64) ([]privacy.SetComparison, error) {
	var out []privacy.SetComparison
	err := c.links.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(cohortsBucket)
		for _, id := range earlier {
			var v []byte
			if b != nil {
				v = b.Get([]byte(id))
			}
			if v == nil {
				return fmt.Errorf("no record of the cohort of earlier query %s: cannot check differencing", id)
			}
			var old cohort
			if err := json.Unmarshal(v, &old); err != nil || !old.valid() {
				return fmt.Errorf("the record of the cohort of earlier query %s is corrupt: cannot check differencing", id)
			}
			out = append(out, compareCohorts(co, &old, id, minCell)...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("custodian %s: %w", c.signer.ID, err)
	}
	return out, nil
}

// valid reports whether a stored cohort is well formed.
func (co *cohort) valid() bool {
	if co.NumCells < 1 || len(co.Cells) != len(co.Licensed) || !slices.IsSorted(co.Licensed) {
		return false
	}
	for _, j := range co.Cells {
		if j < -1 || j >= int32(co.NumCells) {
			return false
		}
	}
	return true
}

// rememberCohort keeps the cohort of query id in the custodian's own store,
// for the differencing checks of later queries.
func (c *Custodian) rememberCohort(id ledger.QueryID, co *cohort) error {
	v, err := json.Marshal(co)
	if err != nil {
		return fmt.Errorf("custodian %s: encode cohort: %w", c.signer.ID, err)
	}
	if err := c.links.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(cohortsBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	}); err != nil {
		return fmt.Errorf("custodian %s: store cohort of %s: %w", c.signer.ID, id, err)
	}
	return nil
}

// differencingCheck is one differencing check of q against the earlier
// queries: every custodian's cohort and the referee's verdict.
type differencingCheck struct {
	records [][]string // per custodian, the licensed records checked
	cohorts []*cohort  // per custodian
	verdict privacy.Differencing
	refusal error // wraps privacy.ErrDifferencing when refused
	earlier []ledger.QueryID
}

// checkDifferencing runs the differencing check of q for the licensed
// records of each custodian (in ex.custodians order) against the earlier
// released queries. The custodians work on their own nodes (here in
// parallel); the referee (privacy.CheckDifferencing, the ethics board's
// node) sees only capped counts. It takes two rounds: the cell sizes first,
// so that every custodian knows which cells will be withheld and compares
// only released sets, then the comparisons.
func (ex *Exchange) checkDifferencing(ctx context.Context, q *cohorts.Query, records [][]string, earlier []ledger.QueryID, minCell int64) (*differencingCheck, error) {
	nc := len(ex.custodians)
	chk := &differencingCheck{records: records, cohorts: make([]*cohort, nc), earlier: earlier}
	reports := make([]privacy.CohortReport, nc)
	if err := each(nc, func(i int) error {
		co, err := ex.custodians[i].cohortOf(ctx, q, records[i])
		if err != nil {
			return err
		}
		chk.cohorts[i] = co
		reports[i].Cells = make([]int64, co.NumCells)
		for j, n := range co.sizes() {
			reports[i].Cells[j] = privacy.Cap(n, minCell)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	cells, err := privacy.CheckDifferencing(minCell, ex.cfg.Noise, reports)
	if err != nil {
		return nil, err
	}
	if err := each(nc, func(i int) (err error) {
		chk.cohorts[i].Withheld = slices.Clone(cells.SmallCells)
		reports[i].Comparisons, err = ex.custodians[i].comparisons(chk.cohorts[i], earlier, minCell)
		return err
	}); err != nil {
		return nil, err
	}
	chk.verdict, chk.refusal = privacy.CheckDifferencing(minCell, ex.cfg.Noise, reports)
	if chk.refusal != nil && !errors.Is(chk.refusal, privacy.ErrDifferencing) {
		return nil, chk.refusal
	}
	return chk, nil
}

// sameRecords reports whether the check was made for exactly records.
func (chk *differencingCheck) sameRecords(records [][]string) bool {
	return slices.EqualFunc(chk.records, records, slices.Equal)
}

// aggregate computes q's plaintext aggregate vector over records, as
// Contribute does for pseudonyms.
func (c *Custodian) aggregate(ctx context.Context, q *cohorts.Query, records []string) ([]int64, error) {
	vec, err := c.data.Aggregate(ctx, q, cohorts.NewPatientSet(records))
	if err != nil {
		return nil, fmt.Errorf("custodian %s: aggregate: %w", c.signer.ID, err)
	}
	return vec, nil
}
