package ledgertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/medx/medx/ledger"
)

// testConcurrentAccepts has more patients than places accept at once: the
// backend must serialise them so that exactly the places are filled.
func testConcurrentAccepts(t *testing.T, open Opener) {
	e := newEnv(t, open)
	const places, extra = 24, 6
	d := draft()
	d.MaxParticipants = places
	r := e.openRequest(e.sponsor, d)
	var wg sync.WaitGroup
	errs := make([]error, places+extra)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pn := pseudonym(fmt.Sprintf("crowd-%d", i))
			_, errs[i] = e.c.AcceptOffer(e.ctx, pn, acceptance(r, pn, e.cust))
		}()
	}
	wg.Wait()
	ok, full := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ledger.ErrState):
			full++
		default:
			t.Errorf("concurrent AcceptOffer: %v", err)
		}
	}
	if ok != places || full != extra {
		t.Errorf("concurrent accepts: %d granted, %d refused as full; want %d and %d", ok, full, places, extra)
	}
	got := e.request(r.ID)
	ls, err := e.c.Licences(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Participants != places || got.Escrow != 0 || len(ls) != places {
		t.Errorf("after concurrent accepts: %d participants, escrow %d, %d licences; want %d, 0, %d", got.Participants, got.Escrow, len(ls), places, places)
	}
	e.checkTokens()
}

// testRawCalls goes around the Client to the Backend, as a transport
// would: malformed calls are refused with the right sentinel.
func testRawCalls(t *testing.T, open Opener) {
	e := newEnv(t, open)
	b := e.c.Backend()
	act, err := e.op.Sign(ledger.FnMint, ledger.MintArgs{To: e.cust.ID, Amount: 1})
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(act)
	if err != nil {
		t.Fatal(err)
	}
	tampered := act
	tampered.Payload = json.RawMessage(`{"to":"st-marys","amount":1000}`)
	submits := []struct {
		name string
		fn   string
		args [][]byte
		want error
	}{
		{"unknown function", "Steal", [][]byte{good}, ledger.ErrUnknownMethod},
		{"read-only function", ledger.FnGetParticipant, [][]byte{good}, ledger.ErrUnknownMethod},
		{"no arguments", ledger.FnMint, nil, ledger.ErrInvalid},
		{"two arguments", ledger.FnMint, [][]byte{good, good}, ledger.ErrInvalid},
		{"not JSON", ledger.FnMint, [][]byte{[]byte("mint please")}, ledger.ErrInvalid},
		{"unknown action field", ledger.FnMint, [][]byte{[]byte(`{"fn":"Mint","extra":1}`)}, ledger.ErrInvalid},
		{"action for another function", ledger.FnTransfer, [][]byte{good}, ledger.ErrInvalid},
		{"bad nonce", ledger.FnMint, [][]byte{mustJSON(t, ledger.Action{Fn: ledger.FnMint, Actor: e.op.ID, Nonce: "1", Payload: act.Payload, Sig: act.Sig})}, ledger.ErrInvalid},
		{"payload not the signed one", ledger.FnMint, [][]byte{mustJSON(t, tampered)}, ledger.ErrBadSignature},
	}
	for _, tc := range submits {
		t.Run("Submit "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := b.Submit(e.ctx, tc.fn, tc.args...)
			e.refused("Submit", err, tc.want)
			e.unchanged("a refused call", before)
		})
	}
	// A signed payload with an unknown field is refused, not half-read.
	odd, err := e.op.Sign(ledger.FnMint, map[string]any{"to": e.cust.ID, "amount": 1, "memo": "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.SubmitAction(e.ctx, odd)
	e.refused("payload with an unknown field", err, ledger.ErrInvalid)

	evaluates := []struct {
		name string
		fn   string
		args [][]byte
		want error
	}{
		{"unknown function", "Everything", nil, ledger.ErrUnknownMethod},
		{"state-changing function", ledger.FnMint, [][]byte{good}, ledger.ErrUnknownMethod},
		{"missing id", ledger.FnGetParticipant, nil, ledger.ErrInvalid},
		{"id not JSON", ledger.FnGetParticipant, [][]byte{[]byte("operator")}, ledger.ErrInvalid},
		{"extra argument", ledger.FnListParticipants, [][]byte{[]byte(`"x"`)}, ledger.ErrInvalid},
		{"id with a separator", ledger.FnGetParticipant, [][]byte{[]byte(`"operator/x"`)}, ledger.ErrNotFound},
	}
	for _, tc := range evaluates {
		t.Run("Evaluate "+tc.name, func(t *testing.T) {
			e := e.with(t)
			if _, err := b.Evaluate(e.ctx, tc.fn, tc.args...); !errors.Is(err, tc.want) {
				t.Errorf("Evaluate(%s) error = %v, want %v", tc.fn, err, tc.want)
			}
		})
	}
	// The raw call that is well formed goes through.
	if _, err := b.Submit(e.ctx, ledger.FnMint, good); err != nil {
		t.Errorf("Submit(Mint) = %v", err)
	}
	e.checkTokens()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
