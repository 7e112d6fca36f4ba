package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
	"github.com/medx/medx/ledger/ledgertest"
)

func TestErrorEncoding(t *testing.T) {
	sentinels := []error{ledger.ErrNotFound, ledger.ErrExists, ledger.ErrForbidden, ledger.ErrBadSignature,
		ledger.ErrReplay, ledger.ErrInvalid, ledger.ErrState, ledger.ErrFunds, ledger.ErrBudget, ledger.ErrUnknownMethod}
	for _, s := range sentinels {
		t.Run(s.Error(), func(t *testing.T) {
			err := fmt.Errorf("accept req-1: %w", s)
			enc := ledger.EncodeError(err)
			for _, wire := range []string{enc, "chaincode response 500, " + enc, "rpc error: code = Unknown desc = " + enc + " (tx abc)"} {
				dec := ledger.DecodeError(wire)
				if !errors.Is(dec, s) {
					t.Errorf("DecodeError(%q) = %v, does not match %v", wire, dec, s)
				}
				for _, other := range sentinels {
					if other != s && errors.Is(dec, other) {
						t.Errorf("DecodeError(%q) also matches %v", wire, other)
					}
				}
			}
			if got := ledger.DecodeError(enc).Error(); got != err.Error() {
				t.Errorf("DecodeError(EncodeError(err)).Error() = %q, want %q", got, err.Error())
			}
		})
	}
	tests := []struct {
		name     string
		err      error
		wantCode string
	}{
		{"nil", nil, ""},
		{"plain", errors.New("disk full"), "internal"},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", ledger.ErrFunds)), "funds"},
	}
	for _, tc := range tests {
		if got := ledger.ErrorCode(tc.err); got != tc.wantCode {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.wantCode)
		}
	}
	if ledger.EncodeError(nil) != "" || ledger.DecodeError("") != nil {
		t.Error("nil errors do not round-trip to nil")
	}
	for _, msg := range []string{"disk full", "medx:internal: disk full", "medx:bogus: x", "medx:", "medx:funds"} {
		err := ledger.DecodeError(msg)
		if err == nil || ledger.ErrorCode(err) != "internal" {
			t.Errorf("DecodeError(%q) = %v (code %q), want a plain error", msg, err, ledger.ErrorCode(err))
		}
	}
}

// stringTransport carries errors as strings only, as a Fabric gateway
// does, and decodes them on the far side.
type stringTransport struct{ b ledger.Backend }

func (s stringTransport) Submit(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	res, err := s.b.Submit(ctx, fn, args...)
	return res, s.wire(err)
}

func (s stringTransport) Evaluate(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	res, err := s.b.Evaluate(ctx, fn, args...)
	return res, s.wire(err)
}

func (s stringTransport) Close() error { return s.b.Close() }

func (stringTransport) wire(err error) error {
	if err == nil {
		return nil
	}
	return ledger.DecodeError("endorse: chaincode response 500, " + ledger.EncodeError(err))
}

// TestSuiteOverStringTransport runs the conformance suite through a
// transport that keeps only error strings: the sentinels must survive.
func TestSuiteOverStringTransport(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T, clock func() time.Time) ledger.Backend {
		l, err := embedded.Open(filepath.Join(t.TempDir(), "ledger.db"), key("node"), embedded.Options{Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return stringTransport{l}
	})
}

// bareTransport returns errors whose text carries the code marker but
// which match no sentinel: the Client must still recognise them.
type bareTransport struct{ stringTransport }

func (b bareTransport) Submit(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	res, err := b.b.Submit(ctx, fn, args...)
	if err != nil {
		return nil, fmt.Errorf("submit tx 123: %s", ledger.EncodeError(err))
	}
	return res, nil
}

func TestClientDecodesCodedErrors(t *testing.T) {
	l, err := embedded.Open(filepath.Join(t.TempDir(), "ledger.db"), key("node"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := ledger.NewClient(bareTransport{stringTransport{l}})
	op := signer("operator")
	if err := c.Bootstrap(t.Context(), op, "MedX"); err != nil {
		t.Fatal(err)
	}
	err = c.Bootstrap(t.Context(), op, "MedX")
	if !errors.Is(err, ledger.ErrExists) {
		t.Errorf("second Bootstrap over a string transport = %v, want ErrExists", err)
	}
	if err == nil || !containsAll(err.Error(), "tx 123", "already exists") {
		t.Errorf("error %q lost the transport's context", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
