package ledger

import (
	"fmt"
	"math"
	"time"
)

// postRequest records a sponsor's cohort request and moves its budget
// (reward x max participants) from the sponsor's balance into escrow: its
// places (EscrowPlaces keys, placeAmounts).
func (c *call) postRequest() ([]byte, *Event, error) {
	if err := c.requireRole(RoleSponsor); err != nil {
		return nil, nil, err
	}
	var d RequestDraft
	if err := c.payload(&d); err != nil {
		return nil, nil, err
	}
	budget, err := checkDraft(d, c.ts)
	if err != nil {
		return nil, nil, fmt.Errorf("post request: %w", err)
	}
	bal, err := getBalance(c.st, c.actor.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("post request: %w", err)
	}
	if bal < budget {
		return nil, nil, fmt.Errorf("post request: budget %d exceeds balance %d of %s: %w", budget, bal, c.actor.ID, ErrFunds)
	}
	id := RequestID(deriveID(idPrefixReq, c.tx.TxID))
	if _, err := c.request(id); !isNotFound(err) {
		return nil, nil, fmt.Errorf("post request %s: %w", id, orExists(err))
	}
	if !d.RecruitUntil.IsZero() {
		d.RecruitUntil = d.RecruitUntil.UTC()
	}
	r := Request{
		ID:           id,
		Sponsor:      c.actor.ID,
		RequestDraft: d,
		Budget:       budget,
		Escrow:       budget,
		Status:       StatusPending,
		Posted:       c.ts,
	}
	c.putAmount(key(pBalance, string(c.actor.ID)), bal-budget)
	if err := c.putJSON(key(pRequest, string(id)), r); err != nil {
		return nil, nil, err
	}
	for i, a := range placeAmounts(d.RewardPerPatient, d.MaxParticipants) {
		c.putAmount(placeKey(id, i), a)
	}
	return encodeResult(r, EventRequestPosted, EventPayload{Request: id, Sponsor: r.Sponsor, Amount: budget, Status: string(r.Status)})
}

// maxRecruitAhead bounds a recruitment deadline.
const maxRecruitAhead = 100 * 365 * 24 * time.Hour

// checkDraft validates a request draft posted at ledger time now and
// returns its budget.
func checkDraft(d RequestDraft, now time.Time) (Amount, error) {
	if err := checkText("title", d.Title, true, maxTitle); err != nil {
		return 0, err
	}
	if err := checkText("purpose", d.Purpose, true, maxText); err != nil {
		return 0, err
	}
	if err := checkText("criteria", d.Criteria, true, maxText); err != nil {
		return 0, err
	}
	if err := checkCategories("scope", d.Scope, true); err != nil {
		return 0, err
	}
	if d.RewardPerPatient <= 0 {
		return 0, fmt.Errorf("reward per patient %d must be positive: %w", d.RewardPerPatient, ErrInvalid)
	}
	if d.MaxParticipants <= 0 {
		return 0, fmt.Errorf("max participants %d must be positive: %w", d.MaxParticipants, ErrInvalid)
	}
	if d.LicenceSeconds <= 0 || d.LicenceSeconds > maxLicenceSeconds {
		return 0, fmt.Errorf("licence seconds %d must be in 1..%d: %w", d.LicenceSeconds, maxLicenceSeconds, ErrInvalid)
	}
	if !d.RecruitUntil.IsZero() && (!d.RecruitUntil.After(now) || d.RecruitUntil.Sub(now) > maxRecruitAhead) {
		return 0, fmt.Errorf("recruitment deadline %s must be after the posting time %s and within 100 years: %w",
			d.RecruitUntil.UTC().Format(time.RFC3339), now.Format(time.RFC3339), ErrInvalid)
	}
	if d.MaxParticipants > math.MaxInt64/int64(d.RewardPerPatient) {
		return 0, fmt.Errorf("budget %d x %d overflows: %w", d.RewardPerPatient, d.MaxParticipants, ErrInvalid)
	}
	return d.RewardPerPatient * Amount(d.MaxParticipants), nil
}

// approveRequest opens a pending request under an ethics board's terms.
func (c *call) approveRequest() ([]byte, *Event, error) {
	if err := c.requireRole(RoleEthicsBoard); err != nil {
		return nil, nil, err
	}
	var a ApproveArgs
	if err := c.payload(&a); err != nil {
		return nil, nil, err
	}
	if a.MinCell < 1 {
		return nil, nil, fmt.Errorf("approve %s: minimum cell %d must be at least 1: %w", a.Request, a.MinCell, ErrInvalid)
	}
	if a.EpsilonBudget <= 0 {
		return nil, nil, fmt.Errorf("approve %s: epsilon budget %d must be positive: %w", a.Request, a.EpsilonBudget, ErrInvalid)
	}
	if err := checkText("reason", a.Reason, false, maxReason); err != nil {
		return nil, nil, fmt.Errorf("approve %s: %w", a.Request, err)
	}
	r, err := c.requestIn(a.Request, "approve", StatusPending)
	if err != nil {
		return nil, nil, err
	}
	if err := c.beforeDeadline(r, "approve"); err != nil {
		return nil, nil, err
	}
	r.Status = StatusOpen
	r.Approval = &Approval{ApprovalTerms: a.ApprovalTerms, Board: c.actor.ID, At: c.ts}
	if err := c.putJSON(key(pRequest, string(r.ID)), r); err != nil {
		return nil, nil, err
	}
	// Nothing consumes a place of a pending request, so the record's
	// escrow (the budget) and participants (none) are still exact.
	return encodeResult(r, EventRequestApproved, EventPayload{Request: r.ID, Sponsor: r.Sponsor, Epsilon: a.EpsilonBudget, Status: string(r.Status)})
}

// rejectRequest rejects a pending request and refunds its escrow.
func (c *call) rejectRequest() ([]byte, *Event, error) {
	if err := c.requireRole(RoleEthicsBoard); err != nil {
		return nil, nil, err
	}
	return c.decide("reject", StatusRejected, EventRequestRejected, StatusPending)
}

// haltRequest halts an open request and refunds its unspent escrow.
func (c *call) haltRequest() ([]byte, *Event, error) {
	if err := c.requireRole(RoleEthicsBoard); err != nil {
		return nil, nil, err
	}
	return c.decide("halt", StatusHalted, EventRequestHalted, StatusOpen)
}

// closeRequest lets a request's sponsor close it and recover the unspent
// escrow.
func (c *call) closeRequest() ([]byte, *Event, error) {
	if err := c.requireRole(RoleSponsor); err != nil {
		return nil, nil, err
	}
	return c.decide("close", StatusClosed, EventRequestClosed, StatusPending, StatusOpen)
}

// expireRequest settles a pending or open request whose deadline has
// passed: it becomes expired and its unspent escrow goes back to the
// sponsor. Anyone registered may trigger it; the outcome depends only on
// the ledger time, not on who asks.
func (c *call) expireRequest() ([]byte, *Event, error) {
	return c.decide("expire", StatusExpired, EventRequestExpired, StatusPending, StatusOpen)
}

// beforeDeadline refuses a request whose deadline has passed at the
// transaction's time.
func (c *call) beforeDeadline(r Request, verb string) error {
	if r.PastDeadline(c.ts) {
		return fmt.Errorf("%s %s: recruitment deadline %s has passed: %w", verb, r.ID, r.RecruitUntil.Format(time.RFC3339), ErrState)
	}
	return nil
}

// decide moves a request from one of the from states to `to`, records the
// decision and refunds the escrow left in its places to the sponsor; the
// record then keeps the final participants and no escrow.
func (c *call) decide(verb string, to RequestStatus, evName string, from ...RequestStatus) ([]byte, *Event, error) {
	var d DecisionArgs
	if err := c.payload(&d); err != nil {
		return nil, nil, err
	}
	if err := checkText("reason", d.Reason, false, maxReason); err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", verb, d.Request, err)
	}
	r, err := c.lookupRequest(d.Request, verb)
	if err != nil {
		return nil, nil, err
	}
	if to == StatusClosed && r.Sponsor != c.actor.ID {
		return nil, nil, fmt.Errorf("close %s: %s is not its sponsor: %w", r.ID, c.actor.ID, ErrForbidden)
	}
	if err := checkStatus(r, verb, from...); err != nil {
		return nil, nil, err
	}
	if to == StatusExpired && !r.PastDeadline(c.ts) {
		if r.RecruitUntil.IsZero() {
			return nil, nil, fmt.Errorf("expire %s: the request has no deadline: %w", r.ID, ErrState)
		}
		return nil, nil, fmt.Errorf("expire %s: deadline %s not reached: %w", r.ID, r.RecruitUntil.Format(time.RFC3339), ErrState)
	}
	// The unspent escrow is whatever the places still hold: a range over
	// them (phantom-safe on Fabric) that also fixes the participants.
	refund, places, err := placesHeld(c.st, r.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", verb, r.ID, err)
	}
	if err := fillEscrow(&r, refund); err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", verb, r.ID, err)
	}
	bal, err := getBalance(c.st, r.Sponsor)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", verb, r.ID, err)
	}
	r.Status = to
	r.Escrow = 0
	r.Decision = &Decision{By: c.actor.ID, At: c.ts, Reason: d.Reason}
	if refund > 0 {
		c.putAmount(key(pBalance, string(r.Sponsor)), bal+refund)
	}
	for _, k := range places {
		c.del(k)
	}
	if err := c.putJSON(key(pRequest, string(r.ID)), r); err != nil {
		return nil, nil, err
	}
	return encodeResult(r, evName, EventPayload{Request: r.ID, Sponsor: r.Sponsor, Amount: refund, Status: string(to)})
}

// requestIn reads a request and refuses it unless its status is one of
// want.
func (c *call) requestIn(id RequestID, verb string, want ...RequestStatus) (Request, error) {
	r, err := c.lookupRequest(id, verb)
	if err != nil {
		return Request{}, err
	}
	return r, checkStatus(r, verb, want...)
}

// lookupRequest reads a request; ErrNotFound if there is none.
func (c *call) lookupRequest(id RequestID, verb string) (Request, error) {
	if !isRecordID(idPrefixReq, string(id)) {
		return Request{}, fmt.Errorf("%s: request %q: %w", verb, id, ErrNotFound)
	}
	r, err := c.request(id)
	if err != nil {
		return Request{}, fmt.Errorf("%s: %w", verb, err)
	}
	return r, nil
}

// checkStatus refuses a request whose status is not one of want.
func checkStatus(r Request, verb string, want ...RequestStatus) error {
	for _, s := range want {
		if r.Status == s {
			return nil
		}
	}
	return fmt.Errorf("%s %s: request is %s: %w", verb, r.ID, r.Status, ErrState)
}

// orExists turns the nil error of a lookup that found a record into
// ErrExists.
func orExists(err error) error {
	if err == nil {
		return ErrExists
	}
	return err
}
