// Package ledger is MedX's contract: the deterministic state machine that
// records participants, MedTokens, cohort requests, approvals, licences,
// queries, notebook runs and dataset manifests. It is written once and run by
// every backend (ledger/embedded in-process on bbolt, ledger/fabric as
// chaincode). The rest of MedX talks to it through the typed Client.
package ledger

import (
	"context"
	"errors"
	"time"
)

// Backend runs the MedX contract. Submit orders and commits a transaction;
// Evaluate runs a read-only one. Both return the contract's result bytes.
//
// Errors returned by the contract keep their sentinel (ErrNotFound,
// ErrForbidden, ...) through errors.Is.
type Backend interface {
	Submit(ctx context.Context, fn string, args ...[]byte) ([]byte, error)
	Evaluate(ctx context.Context, fn string, args ...[]byte) ([]byte, error)
	Close() error
}

// TxContext is what the contract may know about the transaction it runs in.
// Everything the contract derives (ids, times) comes from here, so that
// every replica computes the same result.
type TxContext struct {
	TxID      string
	Timestamp time.Time
	// Submitter is the transport-level identity (the exchange's
	// organisation on Fabric, the node on the embedded ledger). Actors
	// sign their own actions; the submitter is not an actor.
	Submitter string
	// Sigs, if set, checks signatures instead of VerifySignature: a backend
	// that verified them ahead passes them as Verified. It must answer exactly
	// as VerifySignature would.
	Sigs SigChecker
}

// State is the contract's view of the world state: a sorted key-value store.
// Writes are visible to later reads in the same transaction only on backends
// that support it; the contract never relies on reading its own writes.
type State interface {
	Get(key string) ([]byte, error) // nil, nil when absent
	Put(key string, value []byte) error
	Delete(key string) error
	// Range calls fn for every key in [start, end) in ascending order
	// until fn returns false or an error. An empty end means no upper
	// bound (as Fabric's GetStateByRange); the contract itself only asks
	// for whole key prefixes ("lic/<request>/" up to "lic/<request>0").
	Range(start, end string, fn func(key string, value []byte) (bool, error)) error
}

// Event is emitted by a committed transaction (at most one per transaction,
// as on Fabric). Payloads carry ids and pseudonyms, never personal data.
type Event struct {
	Name    string `json:"name"`
	Payload []byte `json:"payload"`
}

// Errors the contract returns. Backends preserve them so callers can use
// errors.Is across both transports.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrForbidden     = errors.New("forbidden")
	ErrBadSignature  = errors.New("bad signature")
	ErrReplay        = errors.New("replayed or out-of-order action")
	ErrInvalid       = errors.New("invalid argument")
	ErrState         = errors.New("not allowed in the current state")
	ErrFunds         = errors.New("insufficient funds")
	ErrBudget        = errors.New("privacy budget exhausted")
	ErrUnknownMethod = errors.New("unknown contract function")
)
