package ledger

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// askKey is a sponsor's ask index key: the ask time as 16 hex digits of
// Unix nanoseconds sorts in time order.
func askKey(sponsor ParticipantID, t time.Time, id FeasibilityID) string {
	return key(pFeaSponsor, string(sponsor), askTime(t), string(id))
}

func windowText() string { return fmt.Sprintf("%d days", FeasibilityWindow/(24*time.Hour)) }

func askTime(t time.Time) string { return fmt.Sprintf("%016x", uint64(t.UnixNano())) }

// feasibilityUsage sums the sponsor's asks and epsilon charged at or after
// t − FeasibilityWindow, from the ask index (at most FeasibilityMaxAsks
// entries, since the rate limit holds every window to that).
func feasibilityUsage(st State, sponsor ParticipantID, t time.Time) (asks int, spent Epsilon, err error) {
	prefix := key(pFeaSponsor, string(sponsor), "")
	err = st.Range(prefix+askTime(t.Add(-FeasibilityWindow)), prefixEnd(prefix), func(k string, v []byte) (bool, error) {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		asks++
		spent += Epsilon(n)
		return true, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("range %s: %w", prefix, err)
	}
	return asks, spent, nil
}

func getFeasibility(st State, id FeasibilityID) (FeasibilityRecord, error) {
	var r FeasibilityRecord
	ok, err := getJSON(st, key(pFeasibility, string(id)), &r)
	if err != nil {
		return FeasibilityRecord{}, err
	}
	if !ok {
		return FeasibilityRecord{}, fmt.Errorf("feasibility %q: %w", id, ErrNotFound)
	}
	return r, nil
}

// askFeasibility records a sponsor's feasibility ask: answered at once from
// the first release of the same criteria over the same data, or charged to
// the sponsor's allowance and left for the operator to complete.
func (c *call) askFeasibility() ([]byte, *Event, error) {
	if err := c.requireRole(RoleSponsor); err != nil {
		return nil, nil, err
	}
	var d FeasibilityDraft
	if err := c.payload(&d); err != nil {
		return nil, nil, err
	}
	switch {
	case !isHash(d.CriteriaHash):
		return nil, nil, fmt.Errorf("ask feasibility: criteria hash must be 64 lowercase hex digits: %w", ErrInvalid)
	case !isHash(d.DataDigest):
		return nil, nil, fmt.Errorf("ask feasibility: data digest must be 64 lowercase hex digits: %w", ErrInvalid)
	case d.Epsilon <= 0 || d.Epsilon > FeasibilityAllowance:
		return nil, nil, fmt.Errorf("ask feasibility: epsilon %s must be in (0, %s]: %w", fmtEpsilon(d.Epsilon), fmtEpsilon(FeasibilityAllowance), ErrInvalid)
	}
	if d.Request != "" {
		r, err := c.lookupRequest(d.Request, "ask feasibility")
		if err != nil {
			return nil, nil, err
		}
		if r.Sponsor != c.actor.ID {
			return nil, nil, fmt.Errorf("ask feasibility of %s: %s is not its sponsor: %w", r.ID, c.actor.ID, ErrForbidden)
		}
		if sum := sha256.Sum256([]byte(r.Criteria)); hexOf(sum[:]) != d.CriteriaHash {
			return nil, nil, fmt.Errorf("ask feasibility of %s: criteria hash is not the hash of the request's criteria: %w", r.ID, ErrInvalid)
		}
	}
	asks, spent, err := feasibilityUsage(c.st, c.actor.ID, c.ts)
	if err != nil {
		return nil, nil, fmt.Errorf("ask feasibility: %w", err)
	}
	if asks >= FeasibilityMaxAsks {
		return nil, nil, fmt.Errorf("ask feasibility: %s asked %d times in the last %s, the most allowed: %w",
			c.actor.ID, asks, windowText(), ErrBudget)
	}
	id := FeasibilityID(deriveID(idPrefixFeas, c.tx.TxID))
	if _, err := getFeasibility(c.st, id); !isNotFound(err) {
		return nil, nil, fmt.Errorf("ask feasibility: %s: %w", id, orExists(err))
	}
	rec := FeasibilityRecord{
		ID: id, Sponsor: c.actor.ID, Request: d.Request, CriteriaHash: d.CriteriaHash, DataDigest: d.DataDigest,
		Status: FeasibilityAsked, Asked: c.ts,
	}
	evName := EventFeasibilityAsked
	first, err := c.st.Get(key(pFeaCache, d.CriteriaHash, d.DataDigest))
	if err != nil {
		return nil, nil, fmt.Errorf("ask feasibility: read cache: %w", err)
	}
	if first != nil {
		// The same criteria over the same data: the same answer, free.
		prev, err := getFeasibility(c.st, FeasibilityID(first))
		if err != nil {
			return nil, nil, fmt.Errorf("ask feasibility: cached release: %w", err)
		}
		at := c.ts
		rec.Status, rec.Completed, rec.CachedFrom = FeasibilityReleased, &at, prev.ID
		rec.Count, rec.BelowThreshold, rec.Threshold, rec.Rounding, rec.Disclosure = prev.Count, prev.BelowThreshold, prev.Threshold, prev.Rounding, prev.Disclosure
		evName = EventFeasibilityReleased
	} else {
		if left := FeasibilityAllowance - spent; d.Epsilon > left {
			return nil, nil, fmt.Errorf("ask feasibility: epsilon %s exceeds the %s left of %s's feasibility allowance for the last %s: %w",
				fmtEpsilon(d.Epsilon), fmtEpsilon(left), c.actor.ID, windowText(), ErrBudget)
		}
		rec.EpsilonCharged = d.Epsilon
	}
	if err := c.putJSON(key(pFeasibility, string(id)), rec); err != nil {
		return nil, nil, err
	}
	c.put(askKey(c.actor.ID, c.ts, id), []byte(strconv.FormatInt(int64(rec.EpsilonCharged), 10)))
	return encodeResult(rec, evName, EventPayload{
		Sponsor: c.actor.ID, Request: d.Request, Feasibility: id, Epsilon: rec.EpsilonCharged, Status: string(rec.Status),
	})
}

// completeFeasibility records the released count of an ask, or its
// failure; only an operator (the exchange) may. The first release of a
// criteria hash over a data digest answers every later identical ask.
func (c *call) completeFeasibility() ([]byte, *Event, error) {
	if err := c.requireRole(RoleOperator); err != nil {
		return nil, nil, err
	}
	var d FeasibilityCompletion
	if err := c.payload(&d); err != nil {
		return nil, nil, err
	}
	if err := checkFeasibilityCompletion(d); err != nil {
		return nil, nil, fmt.Errorf("complete feasibility %s: %w", d.Feasibility, err)
	}
	if !isRecordID(idPrefixFeas, string(d.Feasibility)) {
		return nil, nil, fmt.Errorf("complete feasibility: %q: %w", d.Feasibility, ErrNotFound)
	}
	rec, err := getFeasibility(c.st, d.Feasibility)
	if err != nil {
		return nil, nil, fmt.Errorf("complete feasibility: %w", err)
	}
	if rec.Status != FeasibilityAsked {
		return nil, nil, fmt.Errorf("complete feasibility %s: already %s: %w", rec.ID, rec.Status, ErrState)
	}
	at := c.ts
	rec.Completed = &at
	if d.Error != "" {
		rec.Status, rec.Error = FeasibilityFailed, d.Error
	} else {
		rec.Status = FeasibilityReleased
		rec.Count, rec.BelowThreshold, rec.Threshold, rec.Rounding, rec.Disclosure = d.Count, d.BelowThreshold, d.Threshold, d.Rounding, d.Disclosure
		cacheKey := key(pFeaCache, rec.CriteriaHash, rec.DataDigest)
		first, err := c.st.Get(cacheKey)
		if err != nil {
			return nil, nil, fmt.Errorf("complete feasibility: read cache: %w", err)
		}
		if first == nil {
			c.put(cacheKey, []byte(rec.ID))
		}
	}
	if err := c.putJSON(key(pFeasibility, string(rec.ID)), rec); err != nil {
		return nil, nil, err
	}
	return encodeResult(rec, EventFeasibilityReleased, EventPayload{
		Sponsor: rec.Sponsor, Request: rec.Request, Feasibility: rec.ID, Epsilon: rec.EpsilonCharged, Status: string(rec.Status),
	})
}

// checkFeasibilityCompletion refuses an outcome that no honest release
// produces: a count under the threshold released, a withheld count that is
// not zero, a negative rounding, or an account that is not JSON.
func checkFeasibilityCompletion(d FeasibilityCompletion) error {
	if d.Error != "" {
		if err := checkText("error", d.Error, true, maxReason); err != nil {
			return err
		}
		if d.Count != 0 || d.BelowThreshold || len(d.Disclosure) > 0 {
			return fmt.Errorf("a failed count releases nothing: %w", ErrInvalid)
		}
		return nil
	}
	switch {
	case d.Threshold < 1:
		return fmt.Errorf("threshold %d must be at least 1: %w", d.Threshold, ErrInvalid)
	case d.Rounding < 0:
		return fmt.Errorf("rounding %d is negative: %w", d.Rounding, ErrInvalid)
	case d.BelowThreshold && d.Count != 0:
		return fmt.Errorf("a count below the threshold is withheld, but %d was given: %w", d.Count, ErrInvalid)
	case !d.BelowThreshold && d.Count < d.Threshold:
		return fmt.Errorf("count %d is below the threshold %d and may not be released: %w", d.Count, d.Threshold, ErrInvalid)
	case !d.BelowThreshold && d.Rounding > 1 && d.Count%d.Rounding != 0:
		return fmt.Errorf("count %d is not a multiple of the rounding %d: %w", d.Count, d.Rounding, ErrInvalid)
	case len(d.Disclosure) > maxText:
		return fmt.Errorf("disclosure longer than %d bytes: %w", maxText, ErrInvalid)
	case len(d.Disclosure) > 0 && !json.Valid(d.Disclosure):
		return fmt.Errorf("disclosure is not JSON: %w", ErrInvalid)
	}
	return nil
}

func (r reader) feasibility() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return getFeasibility(r.st, FeasibilityID(id))
}

func (r reader) feasibilities() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	if _, err := getParticipant(r.st, ParticipantID(id)); err != nil {
		return nil, err
	}
	prefix := key(pFeaSponsor, id, "")
	out := []FeasibilityRecord{}
	err = r.st.Range(prefix, prefixEnd(prefix), func(k string, _ []byte) (bool, error) {
		rec, err := getFeasibility(r.st, FeasibilityID(k[len(prefix)+len(askTime(time.Time{}))+1:]))
		if err != nil {
			return false, err
		}
		out = append(out, rec)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", prefix, err)
	}
	return out, nil
}
