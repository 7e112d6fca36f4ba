package privacy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSerializationRoundTrip(t *testing.T) {
	s := threeHolders(t)
	p := s.p
	spec := sexSpec(false)
	contrib := sexContributions()

	// Key holders: restore each from its bytes and run the protocol with
	// the restored ones only.
	restored := make([]*KeyHolder, len(s.holders))
	for i, h := range s.holders {
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("KeyHolder.MarshalBinary = %v", err)
		}
		if restored[i], err = UnmarshalKeyHolder(p, b); err != nil {
			t.Fatalf("UnmarshalKeyHolder = %v", err)
		}
		if restored[i].ID() != h.ID() {
			t.Errorf("restored ID = %q, want %q", restored[i].ID(), h.ID())
		}
		b2, _ := restored[i].MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Errorf("key holder %s: bytes differ after a round trip", h.ID())
		}
	}

	// Public key.
	pkb, err := s.pk.MarshalBinary()
	if err != nil {
		t.Fatalf("PublicKey.MarshalBinary = %v", err)
	}
	pk2, err := UnmarshalPublicKey(p, pkb)
	if err != nil {
		t.Fatalf("UnmarshalPublicKey = %v", err)
	}
	if diff := cmp.Diff([]string{"custodian-1", "custodian-2", "board"}, pk2.KeyHolderIDs()); diff != "" {
		t.Errorf("KeyHolderIDs (-want +got):\n%s", diff)
	}
	pkb2, _ := pk2.MarshalBinary()
	if !bytes.Equal(pkb, pkb2) {
		t.Error("public key bytes differ after a round trip")
	}

	// Sponsor key.
	skb, err := s.sponsor.MarshalBinary()
	if err != nil {
		t.Fatalf("SponsorKey.MarshalBinary = %v", err)
	}
	sponsor2, err := UnmarshalSponsorKey(p, skb)
	if err != nil {
		t.Fatalf("UnmarshalSponsorKey = %v", err)
	}
	pub2, _ := sponsor2.PublicKey()
	if !bytes.Equal(pub2, s.pub) {
		t.Error("sponsor public key differs after a round trip")
	}

	rel, err := RunLocal(t.Context(), p, pk2, restored, spec, contrib, pub2)
	if err != nil {
		t.Fatalf("RunLocal with restored keys = %v", err)
	}
	got, err := sponsor2.Decrypt(rel.Ciphertext, len(spec.Slots))
	if err != nil {
		t.Fatalf("restored sponsor Decrypt = %v", err)
	}
	want := []int64{65, 50, 900, 130000, 0, 35, 0, 0, 0, 0, 0, 0, 0, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result with restored keys (-want +got):\n%s", diff)
	}

	// Noise share, kept by a key holder between the two rounds.
	ns, err := s.holders[0].DrawNoise(sexSpec(true), 3)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := ns.MarshalBinary()
	if err != nil {
		t.Fatalf("NoiseShare.MarshalBinary = %v", err)
	}
	ns2, err := UnmarshalNoiseShare(p, nb)
	if err != nil {
		t.Fatalf("UnmarshalNoiseShare = %v", err)
	}
	if diff := cmp.Diff(ns.noise, ns2.noise); diff != "" {
		t.Errorf("noise after a round trip (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ns.spec, ns2.spec); diff != "" {
		t.Errorf("spec after a round trip (-want +got):\n%s", diff)
	}
}

func TestCeremonyRefusals(t *testing.T) {
	p := mustParams(t)
	crs := []byte("ceremony seed for this test 0001")
	a, _ := NewKeyHolder(p, "a")
	b, _ := NewKeyHolder(p, "b")
	shA, err := a.PublicKeyShare(crs)
	if err != nil {
		t.Fatal(err)
	}
	shB, _ := b.PublicKeyShare(crs)
	shA2, _ := a.PublicKeyShare(crs)
	shOther, _ := b.PublicKeyShare([]byte("another ceremony seed 0000000002"))

	tests := []struct {
		name   string
		crs    []byte
		shares [][]byte
		want   error
	}{
		{"share for another seed", crs, [][]byte{shA, shOther}, ErrWrongKey},
		{"two shares from one holder", crs, [][]byte{shA, shB, shA2}, ErrMalformed},
		{"no shares", crs, nil, ErrMalformed},
		{"short seed", crs[:8], [][]byte{shA, shB}, ErrMalformed},
		{"truncated share", crs, [][]byte{shA, shB[:len(shB)-1]}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CollectivePublicKey(p, tt.crs, tt.shares)
			wantErr(t, "CollectivePublicKey", err, tt.want)
		})
	}
	_, err = a.PublicKeyShare([]byte("short"))
	wantErr(t, "PublicKeyShare(short seed)", err, ErrMalformed)
	for _, id := range []string{"", strings.Repeat("x", 256), "\xff"} {
		_, err := NewKeyHolder(p, id)
		wantErr(t, fmt.Sprintf("NewKeyHolder(%q)", id), err, ErrMalformed)
	}
}

// TestMalformedMessages flips, truncates and pads real messages: each is
// refused with ErrMalformed before any cryptography runs.
func TestMalformedMessages(t *testing.T) {
	s := newStudy(t, "a")
	p := s.p
	khb, _ := s.holders[0].MarshalBinary()
	pkb, _ := s.pk.MarshalBinary()
	spb, _ := s.sponsor.MarshalBinary()
	sum, err := Encrypt(p, s.pk, sexSpec(false), sexContributions()[0])
	if err != nil {
		t.Fatal(err)
	}
	ct, err := SelectCounts(p, sexSpec(false), sum)
	if err != nil {
		t.Fatal(err)
	}
	parsers := map[string]struct {
		msg   []byte
		parse func([]byte) error
	}{
		"key holder":   {khb, func(b []byte) error { _, err := UnmarshalKeyHolder(p, b); return err }},
		"public key":   {pkb, func(b []byte) error { _, err := UnmarshalPublicKey(p, b); return err }},
		"sponsor key":  {spb, func(b []byte) error { _, err := UnmarshalSponsorKey(p, b); return err }},
		"sponsor pub":  {s.pub, func(b []byte) error { _, _, err := parseSponsorPublic(p, b); return err }},
		"ciphertext":   {ct, func(b []byte) error { _, err := s.holders[0].DecryptShare(b); return err }},
		"contribution": {sum, func(b []byte) error { _, err := Add(p, b); return err }},
	}
	unreduced := func(b []byte) []byte {
		c := bytes.Clone(b)
		binary.LittleEndian.PutUint64(c[len(c)-8:], ^uint64(0))
		return c
	}
	mutations := map[string]func([]byte) []byte{
		"empty":          func([]byte) []byte { return nil },
		"bad magic":      func(b []byte) []byte { c := bytes.Clone(b); c[0] = 'X'; return c },
		"other kind":     func(b []byte) []byte { c := bytes.Clone(b); c[3] = 'Z'; return c },
		"other version":  func(b []byte) []byte { c := bytes.Clone(b); c[4] = 9; return c },
		"other params":   func(b []byte) []byte { c := bytes.Clone(b); c[7] ^= 1; return c },
		"truncated":      func(b []byte) []byte { return b[:len(b)-1] },
		"header only":    func(b []byte) []byte { return b[:headerLen] },
		"trailing bytes": func(b []byte) []byte { return append(bytes.Clone(b), 0) },
		"unreduced":      unreduced,
	}
	for name, pr := range parsers {
		if err := pr.parse(pr.msg); err != nil {
			t.Fatalf("%s: the valid message is refused: %v", name, err)
		}
		for mname, mut := range mutations {
			t.Run(name+"/"+mname, func(t *testing.T) {
				wantErr(t, "parse", pr.parse(mut(pr.msg)), ErrMalformed)
			})
		}
	}
}

func TestSecretsNeverFormatted(t *testing.T) {
	s := newStudy(t, "hospital-7")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	log.Info("key holder", "kh", s.holders[0], "sponsor", s.sponsor)
	for _, got := range []string{
		fmt.Sprintf("%v|%+v|%#v|%s", s.holders[0], s.holders[0], s.holders[0], s.holders[0]),
		fmt.Sprintf("%v|%+v|%#v", s.sponsor, s.sponsor, s.sponsor),
		logs.String(),
	} {
		if len(got) > 400 || strings.Contains(got, "Coeffs") || strings.Contains(got, "sk") {
			t.Errorf("formatted secret holder = %q, want only a name", got)
		}
	}
	if got := s.holders[0].String(); got != "privacy.KeyHolder(hospital-7)" {
		t.Errorf("String() = %q", got)
	}
}

// FuzzMessages feeds arbitrary bytes to every decoder: none may panic.
func FuzzMessages(f *testing.F) {
	s := newStudy(f, "a", "b")
	p := s.p
	spec := sexSpec(false)
	contrib, err := Encrypt(p, s.pk, spec, sexContributions()[0])
	if err != nil {
		f.Fatal(err)
	}
	ct, err := SelectCounts(p, spec, contrib)
	if err != nil {
		f.Fatal(err)
	}
	rel, err := SelectRelease(p, spec, make([]bool, len(spec.Slots)), contrib)
	if err != nil {
		f.Fatal(err)
	}
	ds, _ := s.holders[0].DecryptShare(ct)
	khb, _ := s.holders[0].MarshalBinary()
	pkb, _ := s.pk.MarshalBinary()
	ns, _ := s.holders[0].DrawNoise(spec, 2)
	nsb, _ := ns.MarshalBinary()
	for _, seed := range [][]byte{contrib, ct, rel, ds, khb, pkb, s.pub, nsb, ct[:headerLen+1]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		UnmarshalKeyHolder(p, b)
		UnmarshalPublicKey(p, b)
		UnmarshalSponsorKey(p, b)
		UnmarshalNoiseShare(p, b)
		Add(p, contrib, b)
		SelectCounts(p, spec, b)
		SelectRelease(p, spec, make([]bool, len(spec.Slots)), b)
		CombineDecrypt(p, ct, [][]byte{ds, b}, 4)
		CombineDecrypt(p, b, [][]byte{ds}, 4)
		s.holders[1].SwitchShare(b, s.pub)
		s.holders[1].SwitchShare(rel, b)
		s.sponsor.Decrypt(b, 4)
	})
}
