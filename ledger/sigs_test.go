package ledger_test

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/medx/medx/ledger"
)

func TestSigCache(t *testing.T) {
	k := key("sig-cache")
	pub := k.Public().(ed25519.PublicKey)
	msg := []byte("message")
	good := ed25519.Sign(k, msg)
	bad := append([]byte(nil), good...)
	bad[0] ^= 1
	c := ledger.NewSigCache()
	if n := c.Preverify([]ledger.Signature{{PublicKey: pub, Message: msg, Sig: good}, {PublicKey: pub, Message: msg, Sig: bad}, {PublicKey: pub[:5], Message: msg, Sig: good}}); n != 1 {
		t.Errorf("Preverify found %d valid, want 1", n)
	}
	other := key("other").Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		pub  ed25519.PublicKey
		msg  []byte
		sig  []byte
		want bool
	}{
		{"preverified", pub, msg, good, true},
		{"refused by Preverify", pub, msg, bad, false},
		{"another key", other, msg, good, false},
		{"another message", pub, []byte("other"), good, false},
		{"short key", pub[:10], msg, good, false},
		{"never seen, valid", pub, []byte("fresh"), ed25519.Sign(k, []byte("fresh")), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Verify(tc.pub, tc.msg, tc.sig); got != tc.want {
				t.Errorf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
	c.Forget()
	if !c.Verify(pub, msg, good) || c.Verify(pub, msg, bad) {
		t.Error("after Forget, Verify does not fall back to ed25519")
	}
}

func TestSignatures(t *testing.T) {
	op, cust, pn := signer("operator"), signer("st-marys"), pseudonym("sigs")
	keys := map[ledger.ParticipantID]ed25519.PublicKey{op.ID: op.Public(), cust.ID: cust.Public()}
	keyOf := func(id ledger.ParticipantID) ed25519.PublicKey { return keys[id] }
	arg := func(a ledger.Action, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	mint := arg(op.Sign(ledger.FnMint, ledger.MintArgs{To: cust.ID, Amount: 1}))
	acc := ledger.Acceptance{Terms: ledger.LicenceTerms{Request: "req-0123456789abcdef"}, PublicKey: pn.Public(), Certificate: cust.Certify("req-0123456789abcdef", pn.Public())}
	accept := arg(pn.Sign(ledger.FnAcceptOffer, acc))
	tests := []struct {
		name  string
		fn    string
		args  [][]byte
		valid int // signatures listed that verify
		total int
	}{
		{"an operator's mint", ledger.FnMint, [][]byte{mint}, 1, 1},
		{"an acceptance and its certificate", ledger.FnAcceptOffer, [][]byte{accept}, 2, 2},
		{"an unknown actor", ledger.FnTransfer, [][]byte{arg(signer("nobody").Sign(ledger.FnTransfer, ledger.TransferArgs{}))}, 0, 0},
		{"an action for another function", ledger.FnTransfer, [][]byte{mint}, 0, 0},
		{"no arguments", ledger.FnMint, nil, 0, 0},
		{"not JSON", ledger.FnMint, [][]byte{[]byte("x")}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sigs := ledger.Contract{}.Signatures(tc.fn, tc.args, keyOf)
			if len(sigs) != tc.total {
				t.Fatalf("Signatures listed %d, want %d", len(sigs), tc.total)
			}
			if n := ledger.NewSigCache().Preverify(sigs); n != tc.valid {
				t.Errorf("%d of the listed signatures verify, want %d", n, tc.valid)
			}
		})
	}
}
