package ledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// TestFeasibilityRateLimit asks cached (free) counts until the rate limit:
// the next ask in the window is refused with nothing written, and one after
// the window is allowed again.
func TestFeasibilityRateLimit(t *testing.T) {
	w := newWorld(t, 1)
	w.quick = true
	s := w.sponsors[0]
	crit, data := fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2)
	d := ledger.FeasibilityDraft{CriteriaHash: crit, DataDigest: data, Epsilon: 100_000}
	var first ledger.FeasibilityRecord
	decode(t, w.mustInvoke(s, ledger.FnAskFeasibility, d), &first)
	w.mustInvoke(w.op, ledger.FnCompleteFeasibility, ledger.FeasibilityCompletion{Feasibility: first.ID, Count: 40, Threshold: 10})
	for i := 1; i < ledger.FeasibilityMaxAsks; i++ {
		w.now = w.now.Add(time.Minute)
		var rec ledger.FeasibilityRecord
		decode(t, w.mustInvoke(s, ledger.FnAskFeasibility, d), &rec)
		if rec.CachedFrom != first.ID || rec.EpsilonCharged != 0 || rec.Count != 40 {
			t.Fatalf("ask %d = %+v, want the cached release", i, rec)
		}
	}
	w.now = w.now.Add(time.Minute)
	if _, err := w.call("ask", s, ledger.FnAskFeasibility, d); !errors.Is(err, ledger.ErrBudget) {
		t.Fatalf("ask %d = %v, want ErrBudget", ledger.FeasibilityMaxAsks+1, err)
	}
	// Another sponsor is not limited by the first one's asks.
	w.mustInvoke(w.sponsors[1], ledger.FnAskFeasibility, d)
	w.now = first.Asked.Add(ledger.FeasibilityWindow + time.Second)
	w.mustInvoke(s, ledger.FnAskFeasibility, d)
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
