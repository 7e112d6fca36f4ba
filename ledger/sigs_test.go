package ledger_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"

	"github.com/medx/medx/ledger"
)

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
			n := 0
			for _, ok := range ledger.VerifySignatures(sigs) {
				if ok {
					n++
				}
			}
			if n != tc.valid {
				t.Errorf("%d of the listed signatures verify, want %d", n, tc.valid)
			}
		})
	}
}

// TestVerifySignaturesAgree checks that the ledger's one verification rule
// decides every signature alike on every path: alone (VerifySignature, as
// the contract checks), together with others (VerifySignatures, as the
// embedded ledger and the audit verify ahead, at any position in a batch
// and in batches that fail), through Verified, and through
// Action.Verify; and that every crypto/ed25519 signature is valid under it.
func TestVerifySignaturesAgree(t *testing.T) {
	k := key("agree")
	pub := k.Public().(ed25519.PublicKey)
	msg := []byte("message")
	good := ed25519.Sign(k, msg)
	flip := func(b []byte, i int) []byte {
		b = append([]byte(nil), b...)
		b[i] ^= 1
		return b
	}
	fromHex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	identity := fromHex("0100000000000000000000000000000000000000000000000000000000000000")
	identityNonCanonical := fromHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // y = p+1
	order8 := fromHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	zero := make([]byte, 32)
	groupOrder := fromHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010") // S = L: not reduced
	cat := func(a, b []byte) []byte { return append(append([]byte(nil), a...), b...) }
	tests := []struct {
		name string
		pub  []byte
		msg  []byte
		sig  []byte
		want bool
	}{
		{"crypto/ed25519 signature", pub, msg, good, true},
		{"R corrupted", pub, msg, flip(good, 3), false},
		{"S corrupted", pub, msg, flip(good, 40), false},
		{"another message", pub, []byte("other"), good, false},
		{"another key", key("other").Public().(ed25519.PublicKey), msg, good, false},
		{"short signature", pub, msg, good[:63], false},
		{"short key", pub[:31], msg, good, false},
		{"no signature", pub, msg, nil, false},
		// Small-order keys: under ZIP-215 (cofactored) R = identity,
		// S = 0 is a valid signature of any message by them.
		{"identity key", identity, msg, cat(identity, zero), true},
		{"identity key, non-canonical encoding", identityNonCanonical, msg, cat(identity, zero), true},
		{"order-8 key", order8, msg, cat(identity, zero), true},
		{"order-8 key, order-8 R", order8, msg, cat(order8, zero), true},
		{"identity key, S not reduced", identity, msg, cat(identity, groupOrder), false},
		{"real key, small-order forgery", pub, msg, cat(identity, zero), false},
	}
	// Good signatures by many keys to batch the cases with.
	var fill []ledger.Signature
	for i := range 2*ledger.SigBatch + 5 {
		fk := key(fmt.Sprint("fill-", i))
		m := []byte(fmt.Sprint("fill message ", i))
		fill = append(fill, ledger.Signature{PublicKey: fk.Public().(ed25519.PublicKey), Message: m, Sig: ed25519.Sign(fk, m)})
	}
	// The same, every other one by one shared key (as a custodian
	// certifies every acceptance).
	sk := key("shared")
	var shared []ledger.Signature
	for i, f := range fill {
		if i%2 == 1 {
			f = ledger.Signature{PublicKey: sk.Public().(ed25519.PublicKey), Message: f.Message, Sig: ed25519.Sign(sk, f.Message)}
		}
		shared = append(shared, f)
	}
	for _, batch := range [][]ledger.Signature{fill, shared} {
		for _, ok := range ledger.VerifySignatures(batch) {
			if !ok {
				t.Fatal("a crypto/ed25519 signature is refused")
			}
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ledger.Signature{PublicKey: tc.pub, Message: tc.msg, Sig: tc.sig}
			if got := ledger.VerifySignature(tc.pub, tc.msg, tc.sig); got != tc.want {
				t.Fatalf("VerifySignature = %v, want %v", got, tc.want)
			}
			if got := ledger.VerifySignatures([]ledger.Signature{s}); got[0] != tc.want {
				t.Errorf("VerifySignatures of it alone = %v, want %v", got[0], tc.want)
			}
			for _, at := range []int{0, 7, ledger.SigBatch - 1, ledger.SigBatch, len(fill)} {
				batch := slices.Insert(slices.Clone(fill), at, s)
				got := ledger.VerifySignatures(batch)
				for i, ok := range got {
					if want := i != at || tc.want; ok != want {
						t.Errorf("case at %d of a batch of %d: signature %d verifies %v, want %v", at, len(batch), i, ok, want)
					}
				}
			}
			// The case's key signing again (expanded once for the call),
			// within a batch and across batches, among signatures that
			// share a key too.
			for _, at := range [][2]int{{0, 5}, {3, ledger.SigBatch + 1}, {ledger.SigBatch - 1, len(shared)}} {
				batch := slices.Insert(slices.Clone(shared), at[0], s)
				batch = slices.Insert(batch, at[1], s)
				for i, ok := range ledger.VerifySignatures(batch) {
					if want := (i != at[0] && i != at[1]) || tc.want; ok != want {
						t.Errorf("case at %d and %d of a batch of %d with a shared key: signature %d verifies %v, want %v", at[0], at[1], len(batch), i, ok, want)
					}
				}
			}
			pair := []ledger.Signature{s, fill[0]}
			if v := ledger.VerifiedOf(pair, ledger.VerifySignatures(pair)); len(v) != 1+map[bool]int{true: 1}[tc.want] ||
				v.Verify(tc.pub, tc.msg, tc.sig) != tc.want || ledger.Verified(nil).Verify(tc.pub, tc.msg, tc.sig) != tc.want {
				t.Error("Verified disagrees")
			}
			if len(tc.pub) == ed25519.PublicKeySize {
				if stdlib := ed25519.Verify(tc.pub, tc.msg, tc.sig); stdlib && !tc.want {
					t.Error("crypto/ed25519 accepts a signature the ledger refuses")
				}
			}
		})
	}
	t.Run("Action.Verify", func(t *testing.T) {
		s := signer("agree")
		a, err := s.Sign(ledger.FnMint, ledger.MintArgs{To: "x", Amount: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(s.Public()); err != nil {
			t.Errorf("a signed action: %v", err)
		}
		a.Sig = flip(a.Sig, 10)
		if err := a.Verify(s.Public()); !errors.Is(err, ledger.ErrBadSignature) {
			t.Errorf("a corrupted action: %v, want ErrBadSignature", err)
		}
	})
	t.Run("batches with several bad signatures", func(t *testing.T) {
		batch := slices.Clone(shared) // bad ones by the shared key too
		bad := map[int]bool{1: true, ledger.SigBatch + 2: true, ledger.SigBatch + 3: true, len(batch) - 1: true}
		for i := range bad {
			batch[i].Sig = flip(batch[i].Sig, 5)
		}
		for i, ok := range ledger.VerifySignatures(batch) {
			if ok == bad[i] {
				t.Errorf("signature %d verifies %v, want %v", i, ok, !bad[i])
			}
		}
	})
}

// TestCheckPublicKey refuses the keys under which ZIP-215 accepts a forged
// signature, in every encoding, and accepts real keys. The small-order
// points are computed here (the multiples of a point of order 8), not
// taken from the list CheckPublicKey uses.
func TestCheckPublicKey(t *testing.T) {
	for i := range 200 {
		pub := key(fmt.Sprint("real ", i)).Public().(ed25519.PublicKey)
		if err := ledger.CheckPublicKey(pub); err != nil {
			t.Fatalf("real key %x: %v", pub, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 31), make([]byte, 33)} {
		if err := ledger.CheckPublicKey(bad); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("key of %d bytes: %v", len(bad), err)
		}
	}
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(mustHex(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")); err != nil {
		t.Fatal(err)
	}
	var p8 curve.EdwardsPoint
	if _, err := p8.SetCompressedY(&c); err != nil || !p8.IsSmallOrder() {
		t.Fatalf("order-8 point: %v", err)
	}
	var encodings [][]byte
	q := curve.NewEdwardsPoint().Identity()
	for range 8 {
		var e curve.CompressedEdwardsY
		e.SetEdwardsPoint(q)
		encodings = append(encodings, append([]byte(nil), e[:]...))
		q.Add(q, &p8)
	}
	// Non-canonical forms: the sign bit set, and y + p for y < 19.
	p := mustHex(t, "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	for _, e := range slices.Clone(encodings) {
		s := append([]byte(nil), e...)
		s[31] ^= 0x80
		encodings = append(encodings, s)
		if y := e[0]; e[31]&0x7f == 0 && y < 19 && allZero(e[1:31]) {
			n := append([]byte(nil), p...)
			n[0] += y
			encodings = append(encodings, n, append(append([]byte(nil), n[:31]...), n[31]|0x80))
		}
	}
	for _, e := range encodings {
		var c curve.CompressedEdwardsY
		var pt curve.EdwardsPoint
		if _, err := c.SetBytes(e); err != nil {
			t.Fatal(err)
		}
		if _, err := pt.SetCompressedY(&c); err != nil {
			continue // not a point: no signature verifies under it
		}
		if !pt.IsSmallOrder() {
			t.Fatalf("%x is not of small order", e)
		}
		if err := ledger.CheckPublicKey(e); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("small-order key %x: CheckPublicKey = %v", e, err)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
