package ledger

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// bootstrap registers the first operator, self-signed.
func (c *call) bootstrap() ([]byte, *Event, error) {
	var p BootstrapArgs
	if err := c.payload(&p); err != nil {
		return nil, nil, err
	}
	op, err := c.st.Get(kOperator)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap: read operator: %w", err)
	}
	if op != nil {
		return nil, nil, fmt.Errorf("bootstrap: operator %s already exists: %w", op, ErrExists)
	}
	part := Participant{ID: p.ID, Role: RoleOperator, Name: p.Name, PublicKey: p.PublicKey, Registered: c.ts}
	if err := c.checkNewParticipant(part); err != nil {
		return nil, nil, fmt.Errorf("bootstrap: %w", err)
	}
	c.put(kOperator, []byte(p.ID))
	if err := c.putJSON(key(pParticipant, string(p.ID)), part); err != nil {
		return nil, nil, err
	}
	return encodeResult(part, EventParticipantRegistered, EventPayload{Participant: p.ID, Status: string(RoleOperator)})
}

// registerParticipant registers a sponsor, board, custodian or operator.
func (c *call) registerParticipant() ([]byte, *Event, error) {
	if err := c.requireRole(RoleOperator); err != nil {
		return nil, nil, err
	}
	var r Registration
	if err := c.payload(&r); err != nil {
		return nil, nil, err
	}
	switch r.Role {
	case RoleSponsor, RoleEthicsBoard, RoleCustodian, RoleOperator:
	case RolePatient:
		return nil, nil, fmt.Errorf("register %s: patients join only under a pseudonym, by accepting an offer: %w", r.ID, ErrInvalid)
	default:
		return nil, nil, fmt.Errorf("register %s: unknown role %q: %w", r.ID, r.Role, ErrInvalid)
	}
	part := Participant{ID: r.ID, Role: r.Role, Name: r.Name, PublicKey: r.PublicKey, Registered: c.ts}
	if err := c.checkNewParticipant(part); err != nil {
		return nil, nil, fmt.Errorf("register %s: %w", r.ID, err)
	}
	if err := c.putJSON(key(pParticipant, string(r.ID)), part); err != nil {
		return nil, nil, err
	}
	return encodeResult(part, EventParticipantRegistered, EventPayload{Participant: r.ID, Status: string(r.Role)})
}

// checkNewParticipant validates a chosen-id participant and refuses an id
// already taken.
func (c *call) checkNewParticipant(p Participant) error {
	if !ValidParticipantID(p.ID) {
		return fmt.Errorf("id %q must be 3-64 characters of [a-z0-9-]: %w", p.ID, ErrInvalid)
	}
	if strings.HasPrefix(string(p.ID), pseudonymStart) {
		return fmt.Errorf("id %q: prefix %q is reserved for pseudonyms: %w", p.ID, pseudonymStart, ErrInvalid)
	}
	if err := CheckPublicKey(p.PublicKey); err != nil {
		return err
	}
	if err := checkText("name", p.Name, false, maxName); err != nil {
		return err
	}
	_, err := c.participant(p.ID)
	switch {
	case err == nil:
		return fmt.Errorf("participant %s: %w", p.ID, ErrExists)
	case !isNotFound(err):
		return err
	}
	return nil
}

// mint creates MedTokens in a participant's balance; only an operator may.
func (c *call) mint() ([]byte, *Event, error) {
	if err := c.requireRole(RoleOperator); err != nil {
		return nil, nil, err
	}
	var m MintArgs
	if err := c.payload(&m); err != nil {
		return nil, nil, err
	}
	if m.Amount <= 0 {
		return nil, nil, fmt.Errorf("mint: amount %d must be positive: %w", m.Amount, ErrInvalid)
	}
	if _, err := c.participant(m.To); err != nil {
		return nil, nil, fmt.Errorf("mint: %w", err)
	}
	supply, err := getAmount(c.st, kSupply)
	if err != nil {
		return nil, nil, fmt.Errorf("mint: %w", err)
	}
	if m.Amount > math.MaxInt64-supply {
		return nil, nil, fmt.Errorf("mint: supply would overflow: %w", ErrInvalid)
	}
	bal, err := getBalance(c.st, m.To)
	if err != nil {
		return nil, nil, fmt.Errorf("mint: %w", err)
	}
	// Every balance is at most the supply, so it cannot overflow either.
	c.putAmount(kSupply, supply+m.Amount)
	c.putAmount(key(pBalance, string(m.To)), bal+m.Amount)
	return nil, nil, nil
}

// transfer moves MedTokens between balances.
func (c *call) transfer() ([]byte, *Event, error) {
	var t TransferArgs
	if err := c.payload(&t); err != nil {
		return nil, nil, err
	}
	from := c.actor.ID
	if t.Amount <= 0 {
		return nil, nil, fmt.Errorf("transfer: amount %d must be positive: %w", t.Amount, ErrInvalid)
	}
	if t.To == from {
		return nil, nil, fmt.Errorf("transfer: %s to itself: %w", from, ErrInvalid)
	}
	if _, err := c.participant(t.To); err != nil {
		return nil, nil, fmt.Errorf("transfer: %w", err)
	}
	src, err := getBalance(c.st, from)
	if err != nil {
		return nil, nil, fmt.Errorf("transfer: %w", err)
	}
	if src < t.Amount {
		return nil, nil, fmt.Errorf("transfer %d from %s: balance is %d: %w", t.Amount, from, src, ErrFunds)
	}
	dst, err := getBalance(c.st, t.To)
	if err != nil {
		return nil, nil, fmt.Errorf("transfer: %w", err)
	}
	c.putAmount(key(pBalance, string(from)), src-t.Amount)
	c.putAmount(key(pBalance, string(t.To)), dst+t.Amount)
	return nil, nil, nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, ErrNotFound) }
