package exchange

import (
	"fmt"
	"slices"

	"github.com/medx/medx/cohorts"
)

// CriteriaCheck is what a valid criteria expression reads.
type CriteriaCheck struct {
	Normalised string   // the criteria's normal form, as the ledger stores it
	Categories []string // the data categories it reads, sorted
}

// CheckCriteria validates a cohort request's inclusion criteria against
// the licence scope that must cover them. A syntax error wraps ErrInvalid
// and a *cohorts.SyntaxError naming the line and column; criteria reading
// data outside scope wrap ErrInvalid.
func CheckCriteria(criteria string, scope []string) (CriteriaCheck, error) {
	crit, err := cohorts.ParseCriteria(criteria)
	if err != nil {
		return CriteriaCheck{}, fmt.Errorf("request criteria: %w: %w", ErrInvalid, err)
	}
	c := CriteriaCheck{Normalised: crit.String(), Categories: crit.Categories()}
	for _, cat := range c.Categories {
		if !slices.Contains(scope, cat) {
			return c, fmt.Errorf("request criteria read %q data, which the licence scope %v does not cover: %w", cat, scope, ErrInvalid)
		}
	}
	return c, nil
}
