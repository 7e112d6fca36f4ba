package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// canonicalAccepts returns AcceptOffer actions as clients send them.
func canonicalAccepts(t testing.TB) [][]byte {
	t.Helper()
	cust := Signer{ID: "st-marys", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	var out [][]byte
	for i, terms := range []LicenceTerms{
		{Request: "req-0123456789abcdef", Scope: []string{"labs"}, LicenceSeconds: 86400, Reward: 5},
		{Request: "req-0123456789abcdef", Scope: []string{"demographics", "labs", "vitals"}, LicenceSeconds: 0, Reward: -3},
		{Request: "req-x", Scope: []string{}, LicenceSeconds: 1<<63 - 1, Reward: -1 << 63},
		{Request: "", Scope: nil},
	} {
		seed := sha256.Sum256(fmt.Appendf(nil, "pseudonym/%d", i))
		pn := Signer{Key: ed25519.NewKeyFromSeed(seed[:])}
		pn.ID = PseudonymID(pn.Public())
		act, err := pn.Sign(FnAcceptOffer, Acceptance{Terms: terms, PublicKey: pn.Public(), Certificate: cust.Certify(terms.Request, pn.Public())})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(act)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// strictAccept decodes an acceptance the general way.
func strictAccept(b []byte) (Action, *Acceptance, error) {
	var a Action
	if err := decodeStrict(b, &a); err != nil {
		return Action{}, nil, err
	}
	acc := new(Acceptance)
	if err := decodeStrict(a.Payload, acc); err != nil {
		return Action{}, nil, err
	}
	return a, acc, nil
}

// checkCanonical fails if decodeCanonicalAccept accepts b but decodes it
// differently from decodeStrict, or decodeStrict refuses it.
func checkCanonical(t *testing.T, b []byte) bool {
	t.Helper()
	a, acc, ok := decodeCanonicalAccept(b)
	if !ok {
		return false
	}
	sa, sacc, err := strictAccept(b)
	if err != nil {
		t.Fatalf("canonical decoding accepts what strict decoding refuses (%v): %s", err, b)
	}
	if !reflect.DeepEqual(a, sa) || !reflect.DeepEqual(acc, sacc) {
		t.Fatalf("canonical decoding differs from strict decoding of %s:\n got %#v %#v\nwant %#v %#v", b, a, acc, sa, sacc)
	}
	return true
}

func TestCanonicalAcceptDecoding(t *testing.T) {
	for _, b := range canonicalAccepts(t) {
		if !checkCanonical(t, b) {
			t.Fatalf("canonical form not decoded by the fast path: %s", b)
		}
		a, _, _ := decodeCanonicalAccept(b)
		if again, err := json.Marshal(a); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding gives %s, %v; want %s", again, err, b)
		}
		// Every variant one byte away: the fast path either gives what
		// strict decoding gives or leaves the input to it.
		alphabet := []byte(" \t\n\"\\/,:[]{}-+.0129eEnAaZz=\x00\x7f\x80\xff")
		for i := 0; i <= len(b); i++ {
			for _, ch := range alphabet {
				checkCanonical(t, append(append(append([]byte(nil), b[:i]...), ch), b[i:]...))
				if i < len(b) {
					v := bytes.Clone(b)
					v[i] = ch
					checkCanonical(t, v)
				}
			}
			if i < len(b) {
				checkCanonical(t, append(append([]byte(nil), b[:i]...), b[i+1:]...))
			}
		}
	}
}

// TestAcceptDecodingStrict: whatever path decodes an acceptance, an
// unknown field, trailing data, a wrong type or a bad encoding anywhere
// in it is refused as invalid.
func TestAcceptDecodingStrict(t *testing.T) {
	b := string(canonicalAccepts(t)[0])
	edit := func(old, new string) string {
		if !strings.Contains(b, old) {
			t.Fatalf("%q not in %s", old, b)
		}
		return strings.Replace(b, old, new, 1)
	}
	for _, tc := range []struct{ name, arg string }{
		{"unknown action field", edit(`{"fn":`, `{"extra":1,"fn":`)},
		{"unknown payload field", edit(`{"terms":`, `{"extra":1,"terms":`)},
		{"unknown terms field", edit(`"licenceSeconds":`, `"extra":1,"licenceSeconds":`)},
		{"unknown certificate field", edit(`"signature":`, `"extra":1,"signature":`)},
		{"trailing data", b + `{}`},
		{"trailing garbage", b + `x`},
		{"payload trailing data", edit(`}},"sig":`, `}} 1,"sig":`)},
		{"string reward", edit(`"reward":5`, `"reward":"5"`)},
		{"fractional reward", edit(`"reward":5`, `"reward":5.5`)},
		{"overflowing seconds", edit(`"licenceSeconds":86400`, `"licenceSeconds":9223372036854775808`)},
		{"number as scope", edit(`"scope":["labs"]`, `"scope":1`)},
		{"bad base64 key", edit(`"publicKey":"`, `"publicKey":"!`)},
		{"number as nonce", edit(`"nonce":"`, `"nonce":1,"x":"`)},
		{"truncated", b[:len(b)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Contract{}.Prepare(FnAcceptOffer, [][]byte{[]byte(tc.arg)})
			if !errors.Is(p.err, ErrInvalid) {
				t.Fatalf("Prepare(%s) = %v, want ErrInvalid", tc.arg, p.err)
			}
		})
	}
	// Whitespace and key case are JSON's business: both paths agree.
	for _, arg := range []string{" " + b + "\n", edit(`{"fn":`, `{"Fn":`), edit(`"reward":5`, `"reward": 5`)} {
		if p := (Contract{}).Prepare(FnAcceptOffer, [][]byte{[]byte(arg)}); p.err != nil {
			t.Errorf("Prepare(%s) = %v, want it decoded", arg, p.err)
		}
	}
}

func FuzzCanonicalAccept(f *testing.F) {
	for _, b := range canonicalAccepts(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkCanonical(t, b) })
}

// checkRecord fails if decodeCanonicalRecord accepts b but json.Unmarshal
// refuses it or decodes it differently.
func checkRecord[T any](t *testing.T, b []byte) bool {
	t.Helper()
	var got T
	if !decodeCanonicalRecord(&got, b) {
		return false
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("canonical decoding accepts what json.Unmarshal refuses (%v): %s", err, b)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("canonical decoding of %s:\n got %#v\nwant %#v", b, got, want)
	}
	return true
}

// TestCanonicalRecordDecoding: licences and participants as json.Marshal
// encodes them decode as json.Unmarshal decodes them, and every variant
// one byte away either does too or is left to json.Unmarshal.
func TestCanonicalRecordDecoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	fast := map[string]int{}
	for range 5000 {
		var l Licence
		fill(rng, reflect.ValueOf(&l).Elem())
		if b, err := json.Marshal(l); err == nil && checkRecord[Licence](t, b) {
			fast["licence"]++
		}
		var p Participant
		fill(rng, reflect.ValueOf(&p).Elem())
		if b, err := json.Marshal(p); err == nil && checkRecord[Participant](t, b) {
			fast["participant"]++
		}
	}
	for _, name := range []string{"licence", "participant"} {
		if n := fast[name]; n < 100 {
			t.Errorf("%s: %d of 5000 random records took the fast path", name, n)
		}
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	revoked := at.Add(time.Minute)
	for _, v := range []any{
		Licence{ID: "lic-0123456789abcdef", Request: "req-0123456789abcdef", Patient: "pn-abc", Custodian: "st-marys", Scope: []string{"labs", "vitals"}, Reward: 7, Granted: at, Expires: at.Add(time.Hour), Revoked: &revoked},
		Participant{ID: "st-marys", Role: RoleCustodian, Name: "St Mary's", PublicKey: make([]byte, 32), Custodian: "x", Registered: at},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		check := checkRecord[Licence]
		if _, ok := v.(Participant); ok {
			check = checkRecord[Participant]
		}
		if !check(t, b) {
			t.Fatalf("not decoded by the fast path: %s", b)
		}
		alphabet := []byte(" \"\\,:[]{}-.09eZTnu\x00\x80")
		for i := 0; i <= len(b); i++ {
			for _, ch := range alphabet {
				check(t, append(append(append([]byte(nil), b[:i]...), ch), b[i:]...))
				if i < len(b) {
					w := bytes.Clone(b)
					w[i] = ch
					check(t, w)
				}
			}
			if i < len(b) {
				check(t, append(append([]byte(nil), b[:i]...), b[i+1:]...))
			}
		}
	}
	// Other types are left to json.Unmarshal.
	var r Request
	if decodeCanonicalRecord(&r, []byte(`{}`)) {
		t.Fatal("a request was decoded by the record fast path")
	}
}
