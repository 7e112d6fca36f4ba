package ledger

import (
	"context"
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
}

// OK reports whether the audit found nothing wrong.
func (r AuditReport) OK() bool { return r.StateMatches && len(r.Problems) == 0 }
