package ledger

import (
	"context"
	"encoding/json"
	"time"
)

// FeasibilityID names a feasibility record; it derives from the id of the
// transaction that asked.
type FeasibilityID string

// The feasibility policy, the same for every sponsor. A sponsor may spend
// FeasibilityAllowance epsilon on fresh feasibility counts, and ask at most
// FeasibilityMaxAsks times (fresh or answered from the cache), within any
// FeasibilityWindow of ledger time: a refilling budget (as Tune Insight's)
// and a rate limit (as i2b2's lockout). Repeating the same criteria over the
// same data is answered with the first released count and costs nothing, so
// no one can average repeats down to the exact count.
const (
	FeasibilityAllowance Epsilon = 5_000_000
	FeasibilityMaxAsks           = 200
	FeasibilityWindow            = 30 * 24 * time.Hour
)

// FeasibilityStatus is the state of a feasibility record.
type FeasibilityStatus string

const (
	FeasibilityAsked    FeasibilityStatus = "asked"    // epsilon charged, count being computed
	FeasibilityReleased FeasibilityStatus = "released" // count (or "below threshold") released
	FeasibilityFailed   FeasibilityStatus = "failed"   // the computation failed; the epsilon stays spent
)

// FeasibilityDraft is a sponsor's ask for a feasibility count: how many
// patients across custodians match criteria, before posting a request or
// for one of the sponsor's requests.
type FeasibilityDraft struct {
	// Request, when set, is the sponsor's request whose criteria are
	// counted; CriteriaHash must then be the hash of its criteria.
	Request      RequestID `json:"request,omitempty"`
	CriteriaHash string    `json:"criteriaHash"` // hex SHA-256 of the normalised criteria text
	// DataDigest is hex SHA-256 naming the custodians' datasets counted: a
	// new dataset makes a new count, the same one answers from the cache.
	DataDigest string  `json:"dataDigest"`
	Epsilon    Epsilon `json:"epsilon"` // charged to the sponsor's allowance unless answered from the cache
}

// FeasibilityRecord is the ledger's record of one feasibility ask.
type FeasibilityRecord struct {
	ID             FeasibilityID     `json:"id"`
	Sponsor        ParticipantID     `json:"sponsor"`
	Request        RequestID         `json:"request,omitempty"`
	CriteriaHash   string            `json:"criteriaHash"`
	DataDigest     string            `json:"dataDigest"`
	EpsilonCharged Epsilon           `json:"epsilonCharged"`
	Status         FeasibilityStatus `json:"status"`
	Asked          time.Time         `json:"asked"`
	Completed      *time.Time        `json:"completed,omitempty"`
	// CachedFrom names the earlier release this ask was answered from,
	// at no charge.
	CachedFrom FeasibilityID `json:"cachedFrom,omitempty"`
	// Count is the released noisy (and rounded) count; 0 when
	// BelowThreshold, which means "fewer than Threshold".
	Count          int64 `json:"count"`
	BelowThreshold bool  `json:"belowThreshold"`
	Threshold      int64 `json:"threshold,omitempty"`
	Rounding       int64 `json:"rounding,omitempty"` // released counts are multiples of it (0 or 1: not rounded)
	// Disclosure is the privacy package's account of the noise applied,
	// as canonical JSON.
	Disclosure json.RawMessage `json:"disclosure,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// FeasibilityCompletion records the outcome of an ask.
type FeasibilityCompletion struct {
	Feasibility    FeasibilityID   `json:"feasibility"`
	Count          int64           `json:"count"`
	BelowThreshold bool            `json:"belowThreshold"`
	Threshold      int64           `json:"threshold"`
	Rounding       int64           `json:"rounding,omitempty"`
	Disclosure     json.RawMessage `json:"disclosure,omitempty"`
	Error          string          `json:"error,omitempty"` // set when the count could not be computed
}

// FeasibilityUsage is what a sponsor used of the feasibility policy in the
// window ending at t, from its records (as ListFeasibility returns them):
// the asks and the epsilon charged at or after t − FeasibilityWindow. The
// contract applies the same rule.
func FeasibilityUsage(recs []FeasibilityRecord, t time.Time) (asks int, spent Epsilon) {
	from := t.Add(-FeasibilityWindow)
	for _, r := range recs {
		if !r.Asked.Before(from) && !r.Asked.After(t) {
			asks++
			spent += r.EpsilonCharged
		}
	}
	return asks, spent
}

// AskFeasibility records a sponsor's ask. If the same criteria were
// released over the same data before, the record is already released with
// that count and nothing is charged; otherwise epsilon is charged (ErrBudget,
// with nothing recorded, if the allowance or the rate limit is exhausted) and
// the exchange completes the record with CompleteFeasibility.
func (c *Client) AskFeasibility(ctx context.Context, sponsor Signer, d FeasibilityDraft) (FeasibilityRecord, error) {
	var r FeasibilityRecord
	err := c.submit(ctx, sponsor, FnAskFeasibility, d, &r)
	return r, err
}

// CompleteFeasibility records the released count (or its failure) of an
// ask; op must be an operator.
func (c *Client) CompleteFeasibility(ctx context.Context, op Signer, done FeasibilityCompletion) (FeasibilityRecord, error) {
	var r FeasibilityRecord
	err := c.submit(ctx, op, FnCompleteFeasibility, done, &r)
	return r, err
}

// Feasibility returns a feasibility record (ErrNotFound if absent).
func (c *Client) Feasibility(ctx context.Context, id FeasibilityID) (FeasibilityRecord, error) {
	var r FeasibilityRecord
	err := c.evaluate(ctx, FnGetFeasibility, &r, id)
	return r, err
}

// Feasibilities returns a sponsor's feasibility records by ask time (ties by id)
// (ErrNotFound if the participant does not exist).
func (c *Client) Feasibilities(ctx context.Context, sponsor ParticipantID) ([]FeasibilityRecord, error) {
	var rs []FeasibilityRecord
	err := c.evaluate(ctx, FnListFeasibility, &rs, sponsor)
	return rs, err
}
