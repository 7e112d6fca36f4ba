package ledger

import (
	"fmt"
	"strings"
)

// A pending or open request's escrow sits in its places (place/<request>/
// <index>, see keys.go), not in its record: acceptances consume the places
// and leave the record alone, so that they do not all rewrite one key. The
// record's Escrow and Participants are what its last write knew (the
// posting, or the decision that refunded the places); for a pending or open
// request the places are authoritative and every read that shows the
// request fills both fields from them (withEscrow).

// live reports whether r's escrow is in its places.
func live(r Request) bool { return r.Status == StatusPending || r.Status == StatusOpen }

// fillEscrow sets a live request's Escrow to what its places hold and its
// Participants to the places consumed.
func fillEscrow(r *Request, held Amount) error {
	if held < 0 || held > r.Budget || r.RewardPerPatient <= 0 || held%r.RewardPerPatient != 0 {
		return fmt.Errorf("request %s: places hold %d, not a multiple of the reward %d within the budget %d", r.ID, held, r.RewardPerPatient, r.Budget)
	}
	r.Escrow = held
	r.Participants = r.MaxParticipants - int64(held/r.RewardPerPatient)
	return nil
}

// placesHeld sums what the places of request id hold, with a range over
// its places (a partial composite key query on Fabric, so phantom-safe).
func placesHeld(st State, id RequestID) (Amount, []string, error) {
	prefix := key(pPlace, string(id), "")
	var sum Amount
	var keys []string
	err := st.Range(prefix, prefixEnd(prefix), func(k string, v []byte) (bool, error) {
		a, err := parseAmount(k, v)
		if err != nil {
			return false, err
		}
		sum += a
		keys = append(keys, k)
		return true, nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("range %s: %w", prefix, err)
	}
	return sum, keys, nil
}

// withEscrow returns r with Escrow and Participants as its places have
// them, if it is live.
func withEscrow(st State, r Request) (Request, error) {
	if !live(r) {
		return r, nil
	}
	held, _, err := placesHeld(st, r.ID)
	if err != nil {
		return Request{}, err
	}
	if err := fillEscrow(&r, held); err != nil {
		return Request{}, err
	}
	return r, nil
}

// loadRequest reads a request as callers see it: with its escrow and
// participants.
func loadRequest(st State, id RequestID) (Request, error) {
	r, err := getRequest(st, id)
	if err != nil {
		return Request{}, err
	}
	return withEscrow(st, r)
}

// listRequests returns every request as callers see it, in id order,
// summing all places in one range.
func listRequests(st State) ([]Request, error) {
	rs, err := rangeJSON[Request](st, pRequest)
	if err != nil {
		return nil, err
	}
	held, err := heldByRequest(st)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if live(rs[i]) {
			if err := fillEscrow(&rs[i], held[rs[i].ID]); err != nil {
				return nil, err
			}
		}
	}
	return rs, nil
}

// heldByRequest sums the places of every request.
func heldByRequest(st State) (map[RequestID]Amount, error) {
	held := map[RequestID]Amount{}
	err := st.Range(pPlace, prefixEnd(pPlace), func(k string, v []byte) (bool, error) {
		a, err := parseAmount(k, v)
		if err != nil {
			return false, err
		}
		req, _, ok := strings.Cut(k[len(pPlace):], keySep)
		if !ok {
			return false, fmt.Errorf("place key %q has no index", k)
		}
		held[RequestID(req)] += a
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", pPlace, err)
	}
	return held, nil
}

// takePlace finds a place of open request r for pseudonym pn and queues
// the consumption of one reward from it. It reads places by key only, in
// pn's probe order (EscrowPlace), so that it depends on no other place than
// the one it takes and the empty ones it passed (which nothing refills). It
// refuses a full request with ErrState.
func (c *call) takePlace(r Request, pn ParticipantID) error {
	n := EscrowPlaces(r.MaxParticipants)
	first, step := placeProbe(pn, n)
	for j := range n {
		k := placeKey(r.ID, (first+j*step)%n)
		held, err := getAmount(c.st, k)
		if err != nil {
			return fmt.Errorf("accept %s: %w", r.ID, err)
		}
		if held == 0 {
			continue
		}
		if held < r.RewardPerPatient {
			return fmt.Errorf("accept %s: escrow place %s holds %d, below the reward %d: %w", r.ID, k, held, r.RewardPerPatient, ErrFunds)
		}
		if held == r.RewardPerPatient {
			c.del(k)
		} else {
			c.putAmount(k, held-r.RewardPerPatient)
		}
		return nil
	}
	return fmt.Errorf("accept %s: all %d places taken: %w", r.ID, r.MaxParticipants, ErrState)
}
