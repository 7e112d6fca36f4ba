package ledger

import (
	"errors"
	"strings"
)

// Contract errors cross process boundaries (Fabric chaincode responses,
// gRPC statuses) only as strings. EncodeError turns an error into a string
// that starts with a code marker, "medx:<code>: <message>", and DecodeError
// turns such a string, wherever the marker appears in it, back into an error
// that matches the sentinel with errors.Is.

// errorPrefix starts the code marker.
const errorPrefix = "medx:"

// codeInternal is the code of an error that carries no sentinel.
const codeInternal = "internal"

// sentinelCodes lists every sentinel with its wire code, in a fixed order.
func sentinelCodes() []struct {
	code string
	err  error
} {
	return []struct {
		code string
		err  error
	}{
		{"not_found", ErrNotFound},
		{"exists", ErrExists},
		{"forbidden", ErrForbidden},
		{"bad_signature", ErrBadSignature},
		{"replay", ErrReplay},
		{"invalid", ErrInvalid},
		{"state", ErrState},
		{"funds", ErrFunds},
		{"budget", ErrBudget},
		{"unknown_method", ErrUnknownMethod},
	}
}

// ErrorCode returns the wire code of the first ledger sentinel err matches
// ("not_found", "forbidden", ...), "internal" if it matches none, or "" for
// a nil error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	for _, s := range sentinelCodes() {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return codeInternal
}

// EncodeError renders err as "medx:<code>: <message>" for a transport that
// carries only strings. It returns "" for a nil error.
func EncodeError(err error) string {
	if err == nil {
		return ""
	}
	return errorPrefix + ErrorCode(err) + ": " + err.Error()
}

// DecodeError is the inverse of EncodeError. msg may carry text around the
// marker (a transport's own prefix); the returned error's message is the
// contract's message and it matches the coded sentinel with errors.Is. A
// message without a known marker becomes a plain error; "" becomes nil.
func DecodeError(msg string) error {
	if msg == "" {
		return nil
	}
	rest := msg
	for {
		i := strings.Index(rest, errorPrefix)
		if i < 0 {
			return errors.New(msg)
		}
		rest = rest[i+len(errorPrefix):]
		code, text, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		if code == codeInternal {
			return errors.New(text)
		}
		for _, s := range sentinelCodes() {
			if s.code == code {
				return &codedError{msg: text, sentinel: s.err}
			}
		}
	}
}

// codedError is a decoded contract error.
type codedError struct {
	msg      string
	sentinel error
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.sentinel }

// transportError keeps a backend's own error (with its transaction id and
// stage) and adds the sentinel found in its message.
type transportError struct {
	err      error
	sentinel error
}

func (e *transportError) Error() string   { return e.err.Error() }
func (e *transportError) Unwrap() []error { return []error{e.err, e.sentinel} }

// withSentinel returns err unchanged if it already matches a ledger
// sentinel; otherwise, if its message carries a code marker (a backend that
// only moves strings), it returns err extended with that sentinel.
func withSentinel(err error) error {
	if err == nil || ErrorCode(err) != codeInternal {
		return err
	}
	var ce *codedError
	if errors.As(DecodeError(err.Error()), &ce) {
		return &transportError{err: err, sentinel: ce.sentinel}
	}
	return err
}
