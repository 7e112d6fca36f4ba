package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
// an error if the state cannot be read, or a request, licence or amount
// in it cannot be decoded (participants are counted, not decoded).
//
// Every figure is a count or a sum, so a MemState (an audit's replayed
// state, hundreds of thousands of keys) is walked once in no order
// rather than sorted and ranged prefix by prefix; if that walk finds an
// error, the state is ranged in key order so that the error reported is
// always the first one.
func (r *AuditReport) Summarize(st State, at time.Time) error {
	s := newSummary(at)
	var err error
	if m, ok := st.(*MemState); ok {
		if err = m.each(s.add); err != nil {
			s = newSummary(at)
			err = s.ranges(st, summarized...)
		}
	} else {
		err = s.ranges(st, summarized...)
	}
	if err != nil {
		return fmt.Errorf("summarize: %w", err)
	}
	r.At = at.UTC()
	r.Participants = s.participants
	r.RequestsByStatus = s.byStatus
	r.EpsilonSpent, r.EpsilonBudget = s.spent, s.budget
	r.LicencesActive, r.LicencesRevoked, r.LicencesExpired = s.active, s.revoked, s.expired
	r.Queries = s.queries
	r.Tokens = s.tokens
	return nil
}

// summary accumulates Summarize's figures, one state entry at a time.
type summary struct {
	at                       time.Time
	participants             int
	byStatus                 map[string]int
	spent, budget            map[RequestID]Epsilon
	active, revoked, expired int
	queries                  int
	tokens                   TokenSummary
}

func newSummary(at time.Time) *summary {
	return &summary{at: at, byStatus: map[string]int{}, spent: map[RequestID]Epsilon{}, budget: map[RequestID]Epsilon{}}
}

// summarized are the state prefixes a summary reads, besides kSupply.
var summarized = []string{pParticipant, pRequest, pLicence, pQueryIndex, pBalance, pPlace}

// ranges feeds add the entries under each of prefixes, in key order, and
// then the supply.
func (s *summary) ranges(st State, prefixes ...string) error {
	for _, p := range prefixes {
		if err := st.Range(p, prefixEnd(p), func(k string, v []byte) (bool, error) {
			return true, s.add(k, v)
		}); err != nil {
			return err
		}
	}
	v, err := st.Get(kSupply)
	if err != nil {
		return fmt.Errorf("read %s: %w", kSupply, err)
	}
	if v != nil {
		return s.add(kSupply, v)
	}
	return nil
}

// add counts one state entry; it ignores keys no figure depends on.
func (s *summary) add(k string, v []byte) error {
	switch {
	case strings.HasPrefix(k, pParticipant):
		s.participants++
	case strings.HasPrefix(k, pRequest):
		var q Request
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("summarize requests: decode %s: %w", k, err)
		}
		s.byStatus[string(q.Status)]++
		if q.Approval != nil {
			s.spent[q.ID] = q.Approval.EpsilonSpent
			s.budget[q.ID] = q.Approval.EpsilonBudget
		}
	case strings.HasPrefix(k, pLicence):
		var l Licence
		if !decodeCanonicalRecord(&l, v) {
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("summarize licences: decode %s: %w", k, err)
			}
		}
		switch {
		case l.Revoked != nil && !s.at.Before(*l.Revoked):
			s.revoked++
		case l.ActiveAt(s.at):
			s.active++
		default:
			s.expired++
		}
	case strings.HasPrefix(k, pQueryIndex):
		s.queries++
	case strings.HasPrefix(k, pBalance):
		return addAmount(&s.tokens.Balances, k, v)
	case strings.HasPrefix(k, pPlace):
		return addAmount(&s.tokens.Escrow, k, v)
	case k == kSupply:
		return addAmount(&s.tokens.Minted, k, v)
	}
	return nil
}

// addAmount adds the amount stored at k to *sum.
func addAmount(sum *Amount, k string, v []byte) error {
	a, err := parseAmount(k, v)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	*sum += a
	return nil
}
