package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// Feasibility counts: before posting (or for a posted request), a sponsor
// learns about how many patients across all custodians match some inclusion
// criteria, as i2b2/SHRINE and OHDSI networks answer cohort discovery.
//
// Each custodian counts its matching patients over all its records (no
// licence is needed: nothing but a count leaves, and only noisy); the
// counts are encrypted under the collective key with every key holder's
// share of discrete Laplace noise, added, and collectively decrypted by the
// key holders (privacy's gate path). The noisy count is released only if it
// reaches the threshold ("fewer than N" otherwise), rounded.
//
// Each ask is recorded on the ledger (sponsor, criteria hash, data digest,
// epsilon, released count or "below threshold", time) and charged to the
// sponsor's refilling feasibility allowance (ledger.FeasibilityAllowance
// epsilon and ledger.FeasibilityMaxAsks asks per ledger.FeasibilityWindow);
// an ask over the allowance is refused with the ledger unchanged. Repeats
// of the same criteria over the same data are answered, by the ledger, with
// the first released count at no charge: a sponsor cannot average fresh
// noise away by asking again, and the budget covers only distinct asks.

// FeasibilityPolicy is how an exchange answers feasibility asks.
type FeasibilityPolicy struct {
	Epsilon   float64 // spent by each fresh count; 0: 0.5
	Threshold int64   // counts under it are withheld; 0: DefaultMinCell
	Rounding  int64   // released counts are rounded to a multiple of it; 0: 5, 1: not rounded
}

// DefaultFeasibilityPolicy is epsilon 0.5 per count (discrete Laplace
// scale 2), threshold DefaultMinCell, counts rounded to the nearest 5.
func DefaultFeasibilityPolicy() FeasibilityPolicy {
	return FeasibilityPolicy{Epsilon: 0.5, Threshold: DefaultMinCell, Rounding: 5}
}

// withDefaults fills zero fields.
func (p FeasibilityPolicy) withDefaults() FeasibilityPolicy {
	d := DefaultFeasibilityPolicy()
	if p.Epsilon == 0 {
		p.Epsilon = d.Epsilon
	}
	if p.Threshold == 0 {
		p.Threshold = d.Threshold
	}
	if p.Rounding == 0 {
		p.Rounding = d.Rounding
	}
	return p
}

// Feasibility is a released feasibility count and exactly what was applied
// to it.
type Feasibility struct {
	Record   ledger.FeasibilityRecord
	Criteria string // normalised criteria text
	// Count is the noisy, rounded count of matching patients across
	// custodians; 0 when BelowThreshold ("fewer than Threshold").
	Count          int64
	BelowThreshold bool
	Threshold      int64
	Rounding       int64
	Mechanism      string  // "discrete-laplace", or "none" with noise off
	NoiseScale     float64 // the discrete Laplace scale b (sensitivity 1 / epsilon)
	// EpsilonSpent is this ask's charge: 0 when Cached.
	EpsilonSpent float64
	Cached       bool // answered with an earlier release (Record.CachedFrom)
	// EpsilonLeft and AsksLeft are what remains of the sponsor's
	// feasibility allowance in the window ending at this ask.
	EpsilonLeft float64
	AsksLeft    int
}

// String is the answer as a sponsor reads it, stating the noise and
// threshold applied.
func (f *Feasibility) String() string {
	var what string
	if f.BelowThreshold {
		what = fmt.Sprintf("fewer than %d patients", f.Threshold)
	} else {
		what = fmt.Sprintf("about %d patients", f.Count)
	}
	noise := "no noise (noise turned off)"
	if f.Mechanism != privacy.MechanismNone {
		noise = fmt.Sprintf("%s noise of scale %.3g", f.Mechanism, f.NoiseScale)
	}
	round := ""
	if f.Rounding > 1 {
		round = fmt.Sprintf(", rounded to a multiple of %d", f.Rounding)
	}
	cached := ""
	if f.Cached {
		cached = fmt.Sprintf("; the same criteria were answered before (%s), so this repeat spent nothing", f.Record.CachedFrom)
	}
	return fmt.Sprintf("%s match (%s; counts under %d withheld%s; epsilon %.2f spent%s)",
		what, noise, f.Threshold, round, f.EpsilonSpent, cached)
}

// Feasibility counts, across every custodian's patients, those who meet
// criteria (a WHERE expression of the cohort query language), for a sponsor
// who has not posted a request yet. Errors: ErrInvalid (criteria that do not
// parse, with line and column), ledger.ErrForbidden (not a sponsor),
// ledger.ErrBudget (the feasibility allowance or the rate limit is spent;
// nothing recorded), ErrRefused (a count the privacy layer cannot protect).
func (ex *Exchange) Feasibility(ctx context.Context, sponsor ledger.Signer, criteria string) (*Feasibility, error) {
	return ex.feasibility(ctx, sponsor, "", criteria)
}

// RequestFeasibility is Feasibility for the criteria of the sponsor's own
// request id (ledger.ErrForbidden for another sponsor's).
func (ex *Exchange) RequestFeasibility(ctx context.Context, sponsor ledger.Signer, id ledger.RequestID) (*Feasibility, error) {
	r, err := ex.led.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("feasibility of %s: %w", id, err)
	}
	if r.Sponsor != sponsor.ID {
		return nil, fmt.Errorf("feasibility of %s: %s is not its sponsor: %w", id, sponsor.ID, ledger.ErrForbidden)
	}
	return ex.feasibility(ctx, sponsor, id, r.Criteria)
}

func (ex *Exchange) feasibility(ctx context.Context, sponsor ledger.Signer, id ledger.RequestID, src string) (*Feasibility, error) {
	crit, err := cohorts.ParseCriteria(src)
	if err != nil {
		return nil, fmt.Errorf("feasibility criteria: %w: %w", ErrInvalid, err)
	}
	text := crit.String()
	q, err := cohorts.ParseQuery("SELECT COUNT(*) FROM cohort WHERE " + text)
	if err != nil {
		return nil, fmt.Errorf("feasibility query: %w", err)
	}
	pol := ex.cfg.Feasibility.withDefaults()
	spec := ex.spec(q, pol.Threshold, pol.Epsilon)
	if err := spec.Check(ex.params); err != nil {
		return nil, fmt.Errorf("feasibility: %w: %w", ErrRefused, err)
	}
	draft := ledger.FeasibilityDraft{Request: id, CriteriaHash: HashQuery(text), DataDigest: ex.dataDigest(), Epsilon: ledger.EpsilonFromFloat(pol.Epsilon)}
	// Identical asks wait for each other, so that the second is answered
	// from the ledger's cache rather than charged again.
	unlock := lockKey(&ex.asks, draft.CriteriaHash+draft.DataDigest)
	defer unlock()
	rec, err := ex.led.AskFeasibility(ctx, sponsor, draft)
	if err != nil {
		return nil, fmt.Errorf("feasibility: %w", err)
	}
	if rec.Status == ledger.FeasibilityAsked {
		if rec, err = ex.countFeasibility(ctx, q, spec, pol, rec); err != nil {
			return nil, err
		}
		ex.log.InfoContext(ctx, "feasibility released", "feasibility", rec.ID, "sponsor", rec.Sponsor, "epsilon", pol.Epsilon, "below", rec.BelowThreshold)
	}
	return ex.feasibilityOf(ctx, rec, text)
}

// countFeasibility computes the noisy count of an ask the ledger charged
// and records it (or the failure: the epsilon stays spent, since the key
// holders may have seen the noisy count).
func (ex *Exchange) countFeasibility(ctx context.Context, q *cohorts.Query, spec privacy.Spec, pol FeasibilityPolicy, rec ledger.FeasibilityRecord) (ledger.FeasibilityRecord, error) {
	done, err := ex.noisyCount(ctx, q, spec, pol)
	if err != nil {
		if _, cerr := ex.led.CompleteFeasibility(ctx, ex.operator, ledger.FeasibilityCompletion{Feasibility: rec.ID, Error: err.Error()}); cerr != nil {
			err = errors.Join(err, fmt.Errorf("record failure: %w", cerr))
		}
		return rec, fmt.Errorf("feasibility %s: %w", rec.ID, err)
	}
	done.Feasibility = rec.ID
	out, err := ex.led.CompleteFeasibility(ctx, ex.operator, done)
	if err != nil {
		return rec, fmt.Errorf("record feasibility %s: %w", rec.ID, err)
	}
	return out, nil
}

// noisyCount runs the federated count: every custodian's count over all
// its patients, the key holders' noise, the gate's collective decryption,
// the threshold and the rounding.
func (ex *Exchange) noisyCount(ctx context.Context, q *cohorts.Query, spec privacy.Spec, pol FeasibilityPolicy) (ledger.FeasibilityCompletion, error) {
	vecs := make([][]int64, len(ex.custodians))
	if err := each(len(ex.custodians), func(i int) (err error) {
		vecs[i], err = ex.custodians[i].countAll(ctx, q)
		return err
	}); err != nil {
		return ledger.FeasibilityCompletion{}, err
	}
	_, noisy, holders, err := ex.gateRound(spec, vecs)
	if err != nil {
		return ledger.FeasibilityCompletion{}, err
	}
	suppressed := privacy.Gate(spec, noisy)
	disc := privacy.NewDisclosure(spec, suppressed, len(holders))
	disc.EpsilonSpent = spec.Epsilon // charged whether or not noise is on
	b, err := json.Marshal(disc)
	if err != nil {
		return ledger.FeasibilityCompletion{}, fmt.Errorf("encode disclosure: %w", err)
	}
	done := ledger.FeasibilityCompletion{Threshold: pol.Threshold, Rounding: pol.Rounding, Disclosure: b}
	if suppressed[0] {
		done.BelowThreshold = true
	} else {
		done.Count = roundCount(noisy[0], pol.Threshold, pol.Rounding)
	}
	return done, nil
}

// roundCount rounds a released count n (n >= threshold) to the nearest
// multiple of r, but never below the smallest multiple of r that reaches
// the threshold: rounding must not turn a released count into one the
// threshold would have withheld.
func roundCount(n, threshold, r int64) int64 {
	if r <= 1 {
		return n
	}
	rounded := (n + r/2) / r * r
	floor := (threshold + r - 1) / r * r
	return max(rounded, floor)
}

// dataDigest names the custodians' datasets a count covers: a new dataset
// makes a fresh count, the same ones answer repeats from the cache.
func (ex *Exchange) dataDigest() string {
	h := sha256.New()
	for _, c := range ex.custodians {
		fmt.Fprintf(h, "%s %s %d\n", c.ID(), c.Dataset().Manifest().ContentHash, c.Dataset().Rows())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// feasibilityOf is the sponsor's view of a released record, with what is
// left of the sponsor's allowance at the ask's ledger time.
func (ex *Exchange) feasibilityOf(ctx context.Context, rec ledger.FeasibilityRecord, criteria string) (*Feasibility, error) {
	f := &Feasibility{
		Record: rec, Criteria: criteria, Count: rec.Count, BelowThreshold: rec.BelowThreshold,
		Threshold: rec.Threshold, Rounding: rec.Rounding, Mechanism: privacy.MechanismNone,
		EpsilonSpent: rec.EpsilonCharged.Float(), Cached: rec.CachedFrom != "",
	}
	if len(rec.Disclosure) > 0 {
		var d privacy.Disclosure
		if err := json.Unmarshal(rec.Disclosure, &d); err != nil {
			return nil, fmt.Errorf("feasibility %s: disclosure: %w", rec.ID, err)
		}
		f.Mechanism = d.Mechanism
		if len(d.NoiseScales) > 0 {
			f.NoiseScale = d.NoiseScales[0]
		}
	}
	recs, err := ex.led.Feasibilities(ctx, rec.Sponsor)
	if err != nil {
		return nil, fmt.Errorf("feasibility records of %s: %w", rec.Sponsor, err)
	}
	asks, spent := ledger.FeasibilityUsage(recs, rec.Asked)
	f.EpsilonLeft = math.Max(0, (ledger.FeasibilityAllowance - spent).Float())
	f.AsksLeft = max(0, ledger.FeasibilityMaxAsks-asks)
	return f, nil
}

// FeasibilityRecords lists the feasibility counts released for request
// id's criteria (asked before posting or for the request) by its sponsor,
// for the sponsor and ethics boards, oldest first.
func (ex *Exchange) FeasibilityRecords(ctx context.Context, p Principal, id ledger.RequestID) ([]*Feasibility, error) {
	r, err := ex.Request(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if p.Role != ledger.RoleSponsor && !seesAll(p.Role) {
		return nil, fmt.Errorf("feasibility of %s: %w", id, ledger.ErrForbidden)
	}
	recs, err := ex.led.Feasibilities(ctx, r.Sponsor)
	if err != nil {
		return nil, fmt.Errorf("feasibility records of %s: %w", r.Sponsor, err)
	}
	out := []*Feasibility{}
	ch := HashQuery(r.Criteria)
	for _, rec := range recs {
		if rec.CriteriaHash != ch || rec.Status != ledger.FeasibilityReleased {
			continue
		}
		f, err := ex.feasibilityOf(ctx, rec, r.Criteria)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
