package fabric

import (
	"fmt"
	"strings"

	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/medx/medx/ledger"
	"google.golang.org/grpc/status"
)

// Error is a failed call: the transaction, the stage that failed
// ("endorse", "submit", "commit status", "commit", "evaluate"), and the
// contract's message when the chaincode refused it. It matches the
// contract's sentinel (ledger.ErrFunds, ...) and the fabric-gateway error
// (*client.EndorseError, *client.CommitError, ...) with errors.Is/As.
type Error struct {
	TxID     string
	Fn       string
	Stage    string
	Attempts int // transactions tried, when more than one
	// Message is the chaincode's message (the contract's error), if any.
	Message  string
	err      error
	contract error // decoded from Message; matches a ledger sentinel
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fabric %s: tx %s: %s", e.Fn, e.TxID, e.Stage)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (attempt %d)", e.Attempts)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
		return b.String()
	}
	msg := e.err.Error()
	if s, ok := status.FromError(e.err); ok {
		msg = s.Code().String() + ": " + s.Message()
	}
	b.WriteString(": " + msg)
	return b.String()
}

// Unwrap returns the fabric-gateway error and the contract's error.
func (e *Error) Unwrap() []error {
	if e.contract != nil {
		return []error{e.err, e.contract}
	}
	return []error{e.err}
}

// newError wraps a fabric-gateway error, lifting the chaincode's message
// out of the peers' error details.
func newError(txid, fn, stage string, err error) error {
	e := &Error{TxID: txid, Fn: fn, Stage: stage, err: err}
	for _, d := range errorDetails(err) {
		_, msg, ok := strings.Cut(d, "chaincode response ")
		if !ok {
			if e.Message == "" {
				e.Message = d
			}
			continue
		}
		if _, m, ok := strings.Cut(msg, ", "); ok {
			msg = m
		}
		e.Message = msg
		if ce := ledger.DecodeError(msg); ledger.ErrorCode(ce) != "internal" {
			e.contract = ce
			e.Message = ce.Error()
		}
		break
	}
	return e
}

// errorDetails returns the messages of the peers' error details, or the
// status message when there are none.
func errorDetails(err error) []string {
	s, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []string
	for _, d := range s.Details() {
		if ed, ok := d.(*gateway.ErrorDetail); ok {
			out = append(out, ed.GetMessage())
		}
	}
	if len(out) == 0 && strings.Contains(s.Message(), "chaincode response ") {
		out = append(out, s.Message())
	}
	return out
}
