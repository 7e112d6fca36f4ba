package ledger

import (
	"context"
	"fmt"
	"time"
)

// Auditor is implemented by backends that can verify their own history
// independently: every block's links, roots and signatures, and a replay of
// every transaction through the Contract compared with the stored state.
type Auditor interface {
	// Verify checks the whole history. It returns an error only when it
	// could not run (I/O, cancelled context); what it finds wrong is in
	// the report's Problems.
	Verify(ctx context.Context) (AuditReport, error)
}

// AuditReport is the outcome of an Auditor's Verify.
type AuditReport struct {
	Blocks       int64     `json:"blocks"`
	Transactions int64     `json:"transactions"`
	Head         string    `json:"head"` // hex hash of the last block
	FirstBlock   time.Time `json:"firstBlock"`
	LastBlock    time.Time `json:"lastBlock"`
	// StateMatches is true when replaying every transaction from genesis
	// reproduced the stored state exactly.
	StateMatches bool     `json:"stateMatches"`
	Problems     []string `json:"problems,omitempty"`

	// NodeKey is the hex Ed25519 public key that signed the blocks: an
	// auditor compares it (and Head) with what the node published.
	NodeKey string `json:"nodeKey,omitempty"`
	// FirstBadBlock and FirstBadTx name the lowest block, and the
	// transaction in it when one is to blame, that a problem points to.
	// A stored state value that differs from the replayed one points to
	// the transaction that last wrote it. Both are empty when nothing is
	// wrong, or when no block is to blame (a key no transaction wrote).
	FirstBadBlock *uint64 `json:"firstBadBlock,omitempty"`
	FirstBadTx    string  `json:"firstBadTx,omitempty"`

	// The summary below is computed from the replayed state, not from the
	// stored one, at ledger time At (Summarize).
	At               time.Time             `json:"at"`
	Participants     int                   `json:"participants"`
	RequestsByStatus map[string]int        `json:"requestsByStatus,omitempty"`
	EpsilonSpent     map[RequestID]Epsilon `json:"epsilonSpent,omitempty"`  // approved requests
	EpsilonBudget    map[RequestID]Epsilon `json:"epsilonBudget,omitempty"` // approved requests
	LicencesActive   int                   `json:"licencesActive"`
	LicencesRevoked  int                   `json:"licencesRevoked"`
	LicencesExpired  int                   `json:"licencesExpired"`
	Queries          int                   `json:"queries"`
	Tokens           TokenSummary          `json:"tokens"`
}

// OK reports whether the audit found nothing wrong.
func (r AuditReport) OK() bool { return r.StateMatches && len(r.Problems) == 0 }

// Summarize fills the report's summary from a contract state at time at:
// participants, requests by status, epsilon spent and budgeted per
// approved request, licences active, revoked and expired at at, queries
// and MedTokens. Requests count under their recorded status. It returns
// an error if the state cannot be read or decoded.
func (r *AuditReport) Summarize(st State, at time.Time) error {
	r.At = at.UTC()
	ps, err := rangeJSON[Participant](st, pParticipant)
	if err != nil {
		return fmt.Errorf("summarize participants: %w", err)
	}
	r.Participants = len(ps)
	reqs, err := rangeJSON[Request](st, pRequest)
	if err != nil {
		return fmt.Errorf("summarize requests: %w", err)
	}
	r.RequestsByStatus = map[string]int{}
	r.EpsilonSpent = map[RequestID]Epsilon{}
	r.EpsilonBudget = map[RequestID]Epsilon{}
	r.LicencesActive, r.LicencesRevoked, r.LicencesExpired = 0, 0, 0
	for _, q := range reqs {
		r.RequestsByStatus[string(q.Status)]++
		if q.Approval != nil {
			r.EpsilonSpent[q.ID] = q.Approval.EpsilonSpent
			r.EpsilonBudget[q.ID] = q.Approval.EpsilonBudget
		}
	}
	lics, err := rangeJSON[Licence](st, pLicence)
	if err != nil {
		return fmt.Errorf("summarize licences: %w", err)
	}
	for _, l := range lics {
		switch {
		case l.Revoked != nil && !at.Before(*l.Revoked):
			r.LicencesRevoked++
		case l.ActiveAt(at):
			r.LicencesActive++
		default:
			r.LicencesExpired++
		}
	}
	n := 0
	err = st.Range(pQueryIndex, prefixEnd(pQueryIndex), func(string, []byte) (bool, error) {
		n++
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("summarize queries: %w", err)
	}
	r.Queries = n
	if r.Tokens, err = Tokens(st); err != nil {
		return fmt.Errorf("summarize tokens: %w", err)
	}
	return nil
}
