package exchange

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/medx/medx/ledger"
)

// TrailFunc reads the ledger's audit trail: it calls fn, in ledger order,
// with every committed transaction's record that f selects. The embedded
// ledger's Trail method is one.
type TrailFunc func(ctx context.Context, f ledger.TrailFilter, fn func(ledger.TrailRecord) error) error

// Kinds of TokenMovement.
const (
	MoveMint        = "mint"         // the issuer minted tokens to the participant
	MoveTransferIn  = "transfer_in"  // another participant sent tokens
	MoveTransferOut = "transfer_out" // the participant sent tokens
	MoveEscrow      = "escrow"       // a posted request's budget left the balance for escrow
	MoveRefund      = "refund"       // a closed, halted, rejected or expired request's unspent escrow came back
	MoveReward      = "reward"       // a patient's reward for accepting an offer
)

// TokenMovement is one change of a participant's MedToken balance, as the
// ledger recorded it. Amount is signed: what the balance gained.
type TokenMovement struct {
	Height  uint64
	Time    time.Time
	TxID    string
	Kind    string
	Request ledger.RequestID // for escrow, refund and reward
	Amount  ledger.Amount
	Balance ledger.Amount // the balance after this movement
}

// TokenHistory lists every change of p's MedToken balance, oldest first,
// read from the ledger trail: mints and transfers, a sponsor's escrows and
// refunds, a patient's rewards (summed over the pseudonyms their custodian
// certified). Its last Balance is p's balance.
func (ex *Exchange) TokenHistory(ctx context.Context, p Principal, trail TrailFunc) ([]TokenMovement, error) {
	own := []ledger.ParticipantID{p.Participant()}
	if p.Role == ledger.RolePatient {
		c, record, err := ex.patientOf(p)
		if err != nil {
			return nil, err
		}
		if own, err = c.Pseudonyms(record); err != nil {
			return nil, err
		}
	}
	var out []TokenMovement
	var bal ledger.Amount
	err := trail(ctx, ledger.TrailFilter{}, func(r ledger.TrailRecord) error {
		m, ok := movement(r, own)
		if !ok || m.Amount == 0 {
			return nil
		}
		bal += m.Amount
		m.Balance = bal
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("token history: %w", err)
	}
	return out, nil
}

// movement is what trail record r did to the balance of the participants
// own (one participant, or one patient's pseudonyms).
func movement(r ledger.TrailRecord, own []ledger.ParticipantID) (TokenMovement, bool) {
	m := TokenMovement{Height: r.Height, Time: r.Time, TxID: r.TxID, Request: r.Request}
	mine := func(id ledger.ParticipantID) bool { return id != "" && slices.Contains(own, id) }
	switch {
	case r.Fn == ledger.FnMint && mine(r.To):
		m.Kind, m.Amount = MoveMint, r.Amount
	case r.Fn == ledger.FnTransfer && mine(r.To) && mine(r.Actor):
		return m, false // to oneself: no change
	case r.Fn == ledger.FnTransfer && mine(r.To):
		m.Kind, m.Amount = MoveTransferIn, r.Amount
	case r.Fn == ledger.FnTransfer && mine(r.Actor):
		m.Kind, m.Amount = MoveTransferOut, -r.Amount
	case r.Event == ledger.EventRequestPosted && mine(r.Sponsor):
		m.Kind, m.Amount = MoveEscrow, -r.Amount
	case (r.Event == ledger.EventRequestRejected || r.Event == ledger.EventRequestHalted ||
		r.Event == ledger.EventRequestClosed || r.Event == ledger.EventRequestExpired) && mine(r.Sponsor):
		m.Kind, m.Amount = MoveRefund, r.Amount
	case r.Event == ledger.EventLicenceGranted && mine(r.Pseudonym):
		m.Kind, m.Amount = MoveReward, r.Amount
	default:
		return m, false
	}
	return m, true
}
