package privacy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRunLocalExact runs the whole protocol with three key holders (two
// contributing custodians and the board), noise off, and compares the
// sponsor's decryption with the plaintext sum.
func TestRunLocalExact(t *testing.T) {
	s := threeHolders(t)
	spec := sexSpec(false)
	contrib := sexContributions()
	rel, err := RunLocal(t.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
	if err != nil {
		t.Fatalf("RunLocal = %v", err)
	}
	got, err := s.sponsor.Decrypt(rel.Ciphertext, len(spec.Slots))
	if err != nil {
		t.Fatalf("Decrypt = %v", err)
	}

	// Cell F (slots 0-6): count 65, n 50, sum 900, sumsq 130000, bins 7/35/8:
	// the bins under MinCell 10 are suppressed one by one. Cell M (slots
	// 7-13) has count 7: the whole cell goes, sums included.
	want := []int64{65, 50, 900, 130000, 0, 35, 0, 0, 0, 0, 0, 0, 0, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sponsor's result (-want +got):\n%s", diff)
	}
	exact := plainSum(contrib)
	wantSup := []bool{false, false, false, false, true, false, true, true, true, true, true, true, true, true}
	if diff := cmp.Diff(wantSup, rel.Suppressed); diff != "" {
		t.Errorf("Suppressed (-want +got):\n%s", diff)
	}
	for i := range got {
		if !rel.Suppressed[i] && got[i] != exact[i] {
			t.Errorf("slot %d = %d, want the exact sum %d", i, got[i], exact[i])
		}
		if rel.Suppressed[i] && got[i] != 0 {
			t.Errorf("suppressed slot %d decrypts to %d, want 0", i, got[i])
		}
	}
	wantDisc := Disclosure{
		MinCell:         10,
		SuppressedSlots: []int{4, 6, 7, 8, 9, 10, 11, 12, 13},
		Mechanism:       "none",
		NoiseScales:     make([]float64, 14),
		KeyHolders:      3,
	}
	if diff := cmp.Diff(wantDisc, rel.Disclosure); diff != "" {
		t.Errorf("Disclosure (-want +got):\n%s", diff)
	}
	if rel.MessageBytes <= int64(len(rel.Ciphertext)) {
		t.Errorf("MessageBytes = %d, want more than the result alone (%d)", rel.MessageBytes, len(rel.Ciphertext))
	}

	// Another sponsor cannot read it: the API refuses, and the raw
	// decryption with the other secret key is garbage.
	other, err := NewSponsorKey(s.p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Decrypt(rel.Ciphertext, len(spec.Slots))
	wantErr(t, "Decrypt with another sponsor key", err, ErrWrongKey)
	c, err := unmarshalCiphertext(s.p, rel.Ciphertext, kindSponsorCT)
	if err != nil {
		t.Fatal(err)
	}
	garbage, err := other.decrypt(c.ct, len(spec.Slots))
	if err != nil {
		t.Fatal(err)
	}
	matches := 0
	for i := range garbage {
		if garbage[i] == want[i] {
			matches++
		}
	}
	if matches > 2 {
		t.Errorf("another sponsor's raw decryption matches %d of %d slots: %v", matches, len(want), garbage)
	}
}

// TestProtocolStepByStep plays each role through the exported functions,
// with noise on, and checks what each party sees.
func TestProtocolStepByStep(t *testing.T) {
	s := threeHolders(t)
	p := s.p
	spec := sexSpec(true)
	spec.MinCell = 10
	// Bigger cells, so noise (scale 5 on counts) cannot flip the gate.
	contrib := [][]int64{
		{400, 300, 1200, 90000, 50, 200, 50, 4, 3, -100, 5000, 1, 1, 1},
		{250, 200, -300, 40000, 20, 150, 30, 3, 2, 50, 2000, 0, 2, 0},
	}
	k := len(s.holders)

	// One message per party.
	var msgs [][]byte
	for _, v := range contrib {
		b, err := Encrypt(p, s.pk, spec, v)
		if err != nil {
			t.Fatalf("Encrypt = %v", err)
		}
		msgs = append(msgs, b)
	}
	for _, h := range s.holders {
		n, err := h.DrawNoise(spec, k)
		if err != nil {
			t.Fatalf("DrawNoise(%s) = %v", h.ID(), err)
		}
		b, err := n.Encrypt(p, s.pk)
		if err != nil {
			t.Fatalf("NoiseShare.Encrypt = %v", err)
		}
		msgs = append(msgs, b)
	}
	sum, err := Add(p, msgs...)
	if err != nil {
		t.Fatalf("Add = %v", err)
	}

	// Gate.
	gateCT, err := SelectCounts(p, spec, sum)
	if err != nil {
		t.Fatalf("SelectCounts = %v", err)
	}
	if len(gateCT) >= len(sum) {
		t.Errorf("gate ciphertext %d bytes, sum %d: the selector should drop a modulus", len(gateCT), len(sum))
	}
	shares := make([][]byte, k)
	for i, h := range s.holders {
		if shares[i], err = h.DecryptShare(gateCT); err != nil {
			t.Fatalf("DecryptShare(%s) = %v", h.ID(), err)
		}
	}
	counts, err := CombineDecrypt(p, gateCT, shares, p.Slots())
	if err != nil {
		t.Fatalf("CombineDecrypt = %v", err)
	}
	exact := plainSum(contrib)
	for i, sl := range spec.Slots {
		if sl.Kind == SlotSum && counts[i] != 0 {
			t.Errorf("the aggregator sees sum slot %d = %d at the gate, want 0", i, counts[i])
		}
		if sl.Kind == SlotCount && math.Abs(float64(counts[i]-exact[i])) > 64*5+1 {
			t.Errorf("noisy count %d = %d, exact %d: beyond 64 noise scales", i, counts[i], exact[i])
		}
	}
	for i := len(spec.Slots); i < len(counts); i++ {
		if counts[i] != 0 {
			t.Fatalf("gate slot %d beyond the layout = %d, want 0", i, counts[i])
		}
	}
	counts = counts[:len(spec.Slots)]
	if !Plausible(spec, counts) {
		t.Errorf("Plausible(%v) = false", counts)
	}
	sup := Gate(spec, counts)
	for i, sl := range spec.Slots {
		if sl.Kind == SlotCount && counts[i] < spec.MinCell && !sup[i] {
			t.Errorf("count-like slot %d = %d under MinCell, not suppressed", i, counts[i])
		}
		if sup[sl.Gate] && !sup[i] {
			t.Errorf("slot %d not suppressed with its gate %d", i, sl.Gate)
		}
	}
	for i := range 4 { // cell F: hundreds of patients
		if sup[i] {
			t.Errorf("cell F slot %d suppressed with noisy counts %v", i, counts[:7])
		}
	}

	// A missing key holder's share leaves random-looking counts.
	partial, err := CombineDecrypt(p, gateCT, shares[:2], len(spec.Slots))
	if err != nil {
		t.Fatalf("CombineDecrypt(two shares) = %v", err)
	}
	if Plausible(spec, partial) {
		t.Errorf("counts decrypted without the board's share look plausible: %v", partial)
	}

	// Release.
	releaseCT, err := SelectRelease(p, spec, sup, sum)
	if err != nil {
		t.Fatalf("SelectRelease = %v", err)
	}
	for i, h := range s.holders {
		if shares[i], err = h.SwitchShare(releaseCT, s.pub); err != nil {
			t.Fatalf("SwitchShare(%s) = %v", h.ID(), err)
		}
	}
	result, err := CombineSwitch(p, releaseCT, shares)
	if err != nil {
		t.Fatalf("CombineSwitch = %v", err)
	}
	got, err := s.sponsor.Decrypt(result, len(spec.Slots))
	if err != nil {
		t.Fatalf("Decrypt = %v", err)
	}
	scales := spec.NoiseScales()
	for i, sl := range spec.Slots {
		switch {
		case sup[i]:
			if got[i] != 0 {
				t.Errorf("suppressed slot %d = %d, want 0", i, got[i])
			}
		case sl.Kind == SlotCount:
			// Epsilon is spent once: the count carries the gate's noise.
			if got[i] != counts[i] {
				t.Errorf("released count %d = %d, want the gate's noisy count %d", i, got[i], counts[i])
			}
		default:
			if math.Abs(float64(got[i]-exact[i])) > 64*scales[i]+1 {
				t.Errorf("released sum %d = %d, exact %d: beyond 64 noise scales (%g)", i, got[i], exact[i], scales[i])
			}
		}
	}
}

// TestUnfoldedVectorNeverReachesSponsor has a faulty contributor encrypt a
// per-patient vector (one patient's value per slot, far beyond the layout)
// and values in suppressed slots: the sponsor's whole decryption, every one
// of the N slots, holds only the layout's unsuppressed aggregates, and the
// gate never saw a sum. Nothing but a selected release can be switched.
func TestUnfoldedVectorNeverReachesSponsor(t *testing.T) {
	s := threeHolders(t)
	p := s.p
	spec := sexSpec(false)
	contrib := sexContributions()
	// The faulty contributor's message bypasses Encrypt's checks: the
	// layout's values, then 8000 single patients' HbA1c values.
	raw := make([]int64, p.Slots())
	copy(raw, contrib[0])
	for i := len(spec.Slots); i < len(raw); i++ {
		raw[i] = 40 + int64(i%90)
	}
	bad, err := encryptVector(p, s.pk, raw)
	if err != nil {
		t.Fatal(err)
	}
	good, err := Encrypt(p, s.pk, spec, contrib[1])
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Add(p, bad, good)
	if err != nil {
		t.Fatal(err)
	}

	gateCT, err := SelectCounts(p, spec, sum)
	if err != nil {
		t.Fatal(err)
	}
	var dshares [][]byte
	for _, h := range s.holders {
		d, err := h.DecryptShare(gateCT)
		if err != nil {
			t.Fatal(err)
		}
		dshares = append(dshares, d)
	}
	counts, err := CombineDecrypt(p, gateCT, dshares, p.Slots())
	if err != nil {
		t.Fatal(err)
	}
	exact := plainSum(contrib)
	for i, v := range counts {
		want := int64(0)
		if i < len(spec.Slots) && spec.Slots[i].Kind == SlotCount {
			want = exact[i]
		}
		if v != want {
			t.Fatalf("gate slot %d = %d, want %d: the gate decrypts only count-like layout slots", i, v, want)
		}
	}
	sup := Gate(spec, counts[:len(spec.Slots)])

	// Switching anything but a selected release is refused.
	for name, ct := range map[string][]byte{"a contribution": bad, "the unselected sum": sum, "the gate ciphertext": gateCT} {
		_, err := s.holders[0].SwitchShare(ct, s.pub)
		wantErr(t, "SwitchShare("+name+")", err, ErrMalformed)
	}

	releaseCT, err := SelectRelease(p, spec, sup, sum)
	if err != nil {
		t.Fatal(err)
	}
	var wshares [][]byte
	for _, h := range s.holders {
		w, err := h.SwitchShare(releaseCT, s.pub)
		if err != nil {
			t.Fatal(err)
		}
		wshares = append(wshares, w)
	}
	out, err := CombineSwitch(p, releaseCT, wshares)
	if err != nil {
		t.Fatal(err)
	}
	c, err := unmarshalCiphertext(p, out, kindSponsorCT)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.sponsor.decrypt(c.ct, p.Slots())
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{65, 50, 900, 130000, 0, 35, 0, 0, 0, 0, 0, 0, 0, 0}
	if diff := cmp.Diff(want, all[:len(spec.Slots)]); diff != "" {
		t.Errorf("released layout slots (-want +got):\n%s", diff)
	}
	for i := len(spec.Slots); i < len(all); i++ {
		if all[i] != 0 {
			t.Fatalf("slot %d beyond the layout reaches the sponsor as %d", i, all[i])
		}
	}
}

func TestProtocolRefusals(t *testing.T) {
	s := threeHolders(t)
	p := s.p
	spec := sexSpec(false)
	contrib := sexContributions()
	c1, err := Encrypt(p, s.pk, spec, contrib[0])
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Encrypt(p, s.pk, spec, contrib[1])
	if err != nil {
		t.Fatal(err)
	}
	none := make([]bool, len(spec.Slots))
	sum, err := Add(p, c1, c2)
	if err != nil {
		t.Fatal(err)
	}
	gateSum, err := SelectCounts(p, spec, sum)
	if err != nil {
		t.Fatal(err)
	}
	rel1, err := SelectRelease(p, spec, none, c1)
	if err != nil {
		t.Fatal(err)
	}
	var dshares, wshares [][]byte
	for _, h := range s.holders {
		d, err := h.DecryptShare(gateSum)
		if err != nil {
			t.Fatal(err)
		}
		w, err := h.SwitchShare(rel1, s.pub)
		if err != nil {
			t.Fatal(err)
		}
		dshares = append(dshares, d)
		wshares = append(wshares, w)
	}
	other, err := NewSponsorKey(p)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _ := other.PublicKey()
	wOther, err := s.holders[2].SwitchShare(rel1, otherPub)
	if err != nil {
		t.Fatal(err)
	}
	pkBytes, _ := s.pk.MarshalBinary()

	bigVec := append([]int64(nil), contrib[0]...)
	bigVec[3] = 10000*250000 + 1
	negCount := append([]int64(nil), contrib[0]...)
	negCount[0] = -1
	longVec := append(append([]int64(nil), contrib[0]...), 5)
	wrap := sexSpec(false)
	wrap.Records = 1 << 40

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"Encrypt: short vector", func() error { _, err := Encrypt(p, s.pk, spec, contrib[0][:3]); return err }, ErrInvalidSpec},
		{"Encrypt: more values than the layout", func() error { _, err := Encrypt(p, s.pk, spec, longVec); return err }, ErrInvalidSpec},
		{"Encrypt: value beyond Records·MaxAbs", func() error { _, err := Encrypt(p, s.pk, spec, bigVec); return err }, ErrInvalidSpec},
		{"Encrypt: negative count", func() error { _, err := Encrypt(p, s.pk, spec, negCount); return err }, ErrInvalidSpec},
		{"Encrypt: wrap-prone spec", func() error { _, err := Encrypt(p, s.pk, wrap, contrib[0]); return err }, ErrInvalidSpec},
		{"Encrypt: nil key", func() error { _, err := Encrypt(p, nil, spec, contrib[0]); return err }, ErrMalformed},
		{"EncryptPayload: short mask", func() error { _, err := EncryptPayload(p, s.pk, spec, contrib[0], none[:2]); return err }, ErrInvalidSpec},
		{"Add: nothing", func() error { _, err := Add(p); return err }, ErrMalformed},
		{"Add: the same ciphertext twice", func() error { _, err := Add(p, c1, c2, c1); return err }, ErrMalformed},
		{"Add: a selected ciphertext", func() error { _, err := Add(p, c1, gateSum); return err }, ErrMalformed},
		{"Add: not a ciphertext", func() error { _, err := Add(p, c1, pkBytes); return err }, ErrMalformed},
		{"SelectCounts: a selected ciphertext", func() error { _, err := SelectCounts(p, spec, gateSum); return err }, ErrMalformed},
		{"SelectCounts: wrap-prone spec", func() error { _, err := SelectCounts(p, wrap, sum); return err }, ErrInvalidSpec},
		{"SelectRelease: short mask", func() error { _, err := SelectRelease(p, spec, none[:3], sum); return err }, ErrInvalidSpec},
		{"SelectRelease: a release ciphertext", func() error { _, err := SelectRelease(p, spec, none, rel1); return err }, ErrMalformed},
		{"DecryptShare: a contribution", func() error { _, err := s.holders[0].DecryptShare(c1); return err }, ErrMalformed},
		{"DecryptShare: a release ciphertext", func() error { _, err := s.holders[0].DecryptShare(rel1); return err }, ErrMalformed},
		{"SwitchShare: a gate ciphertext", func() error { _, err := s.holders[0].SwitchShare(gateSum, s.pub); return err }, ErrMalformed},
		{"SwitchShare: a contribution", func() error { _, err := s.holders[0].SwitchShare(c1, s.pub); return err }, ErrMalformed},
		{"SwitchShare: the collective key as sponsor key", func() error { _, err := s.holders[0].SwitchShare(rel1, pkBytes); return err }, ErrMalformed},
		{"CombineDecrypt: shares of another ciphertext", func() error {
			g1, err := SelectCounts(p, spec, c1)
			if err != nil {
				return err
			}
			_, err = CombineDecrypt(p, g1, dshares, 14)
			return err
		}, ErrWrongKey},
		{"CombineDecrypt: two shares from one holder", func() error {
			_, err := CombineDecrypt(p, gateSum, [][]byte{dshares[0], dshares[1], dshares[0]}, 14)
			return err
		}, ErrMalformed},
		{"CombineDecrypt: no shares", func() error { _, err := CombineDecrypt(p, gateSum, nil, 14); return err }, ErrMalformed},
		{"CombineDecrypt: too many slots", func() error { _, err := CombineDecrypt(p, gateSum, dshares, 8193); return err }, ErrInvalidSpec},
		{"CombineDecrypt: a switch share", func() error { _, err := CombineDecrypt(p, gateSum, wshares, 14); return err }, ErrMalformed},
		{"CombineSwitch: shares for two sponsors", func() error {
			_, err := CombineSwitch(p, rel1, [][]byte{wshares[0], wshares[1], wOther})
			return err
		}, ErrWrongKey},
		{"CombineSwitch: a gate ciphertext", func() error { _, err := CombineSwitch(p, gateSum, wshares); return err }, ErrMalformed},
		{"Decrypt: a release ciphertext", func() error { _, err := s.sponsor.Decrypt(rel1, 14); return err }, ErrMalformed},
		{"RunLocal: missing key holder", func() error {
			_, err := RunLocal(t.Context(), p, s.pk, s.holders[:2], spec, contrib, s.pub)
			return err
		}, ErrWrongKey},
		{"RunLocal: a stranger for a key holder", func() error {
			stranger, err := NewKeyHolder(p, "stranger")
			if err != nil {
				return err
			}
			_, err = RunLocal(t.Context(), p, s.pk, []*KeyHolder{s.holders[0], s.holders[1], stranger}, spec, contrib, s.pub)
			return err
		}, ErrWrongKey},
		{"RunLocal: no contributions", func() error {
			_, err := RunLocal(t.Context(), p, s.pk, s.holders, spec, nil, s.pub)
			return err
		}, ErrInvalidSpec},
		{"RunLocal: bad sponsor key", func() error {
			_, err := RunLocal(t.Context(), p, s.pk, s.holders, spec, contrib, s.pub[:100])
			return err
		}, ErrMalformed},
		{"RunLocal: cancelled", func() error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := RunLocal(ctx, p, s.pk, s.holders, spec, contrib, s.pub)
			return err
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.run(), tt.want)
		})
	}

	// After all the refusals, the same messages still work.
	got, err := CombineDecrypt(p, gateSum, dshares, len(spec.Slots))
	if err != nil {
		t.Fatalf("CombineDecrypt = %v", err)
	}
	exact := plainSum(contrib)
	for i, sl := range spec.Slots {
		want := int64(0)
		if sl.Kind == SlotCount {
			want = exact[i]
		}
		if got[i] != want {
			t.Errorf("gate slot %d = %d, want %d", i, got[i], want)
		}
	}
}

// TestDeprecatedTwoMessageVariants keeps the older per-round encryptions
// working: count-only and source-suppressed messages are contributions too.
func TestDeprecatedTwoMessageVariants(t *testing.T) {
	s := newStudy(t, "custodian-1", "board")
	p := s.p
	spec := sexSpec(false)
	vec := sexContributions()[0]
	counts, err := EncryptCounts(p, s.pk, spec, vec)
	if err != nil {
		t.Fatal(err)
	}
	sup := make([]bool, len(spec.Slots))
	sup[2] = true
	payload, err := EncryptPayload(p, s.pk, spec, vec, sup)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for _, h := range s.holders {
		n, err := h.DrawNoise(spec, 2)
		if err != nil {
			t.Fatal(err)
		}
		a, err := n.EncryptCounts(p, s.pk)
		if err != nil {
			t.Fatal(err)
		}
		b, err := n.EncryptPayload(p, s.pk, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, a, b)
	}
	sum, err := Add(p, append(msgs, counts, payload)...)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := SelectRelease(p, spec, make([]bool, len(spec.Slots)), sum)
	if err != nil {
		t.Fatal(err)
	}
	var shares [][]byte
	for _, h := range s.holders {
		w, err := h.SwitchShare(rel, s.pub)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, w)
	}
	out, err := CombineSwitch(p, rel, shares)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.sponsor.Decrypt(out, len(spec.Slots))
	if err != nil {
		t.Fatal(err)
	}
	for i, sl := range spec.Slots {
		want := vec[i] // from the payload
		if sl.Kind == SlotCount {
			want += vec[i] // and again from the count-only message
		}
		if sup[i] {
			want -= vec[i]
		}
		if got[i] != want {
			t.Errorf("slot %d = %d, want %d", i, got[i], want)
		}
	}
}

// TestNoiseConsistentWithScales releases many cells with noise on and checks
// that the differences from the exact sums are spread as the scales say.
func TestNoiseConsistentWithScales(t *testing.T) {
	s := threeHolders(t)
	cells := 400
	if testing.Short() {
		cells = 150
	}
	spec := Spec{Records: 1_000_000, MinCell: 10, Epsilon: 1, Noise: true}
	var c1, c2 []int64
	for c := range cells {
		base := len(spec.Slots)
		spec.Slots = append(spec.Slots,
			SlotSpec{Cell: c, Group: 0, Gate: base, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
			SlotSpec{Cell: c, Group: 1, Gate: base, Kind: SlotSum, Sensitivity: 50, MaxAbs: 50},
		)
		c1 = append(c1, 600+int64(c), 7000-int64(c))
		c2 = append(c2, 500, -3*int64(c))
	}
	contrib := [][]int64{c1, c2}
	rel, err := RunLocal(t.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
	if err != nil {
		t.Fatalf("RunLocal = %v", err)
	}
	got, err := s.sponsor.Decrypt(rel.Ciphertext, len(spec.Slots))
	if err != nil {
		t.Fatalf("Decrypt = %v", err)
	}
	if rel.Disclosure.Mechanism != MechanismDiscreteLaplace || rel.Disclosure.EpsilonSpent != 1 {
		t.Errorf("Disclosure = %+v, want discrete-laplace spending 1", rel.Disclosure)
	}
	exact := plainSum(contrib)
	scales := spec.NoiseScales() // 2 for counts, 100 for sums
	var z2 [2]float64
	differs := 0
	for i := range got {
		if rel.Suppressed[i] {
			t.Fatalf("slot %d suppressed with exact count %d", i, exact[i])
		}
		d := float64(got[i] - exact[i])
		if d != 0 {
			differs++
		}
		if math.Abs(d) > 64*scales[i]+1 {
			t.Errorf("slot %d: noise %g beyond 64 scales (%g)", i, d, scales[i])
		}
		z2[i%2] += d * d / discreteLaplaceVariance(scales[i])
	}
	if differs < len(got)/2 {
		t.Errorf("only %d of %d slots differ from the exact sums", differs, len(got))
	}
	// Mean squared standardised noise is 1; its standard error is about
	// sqrt(5/cells) (Laplace kurtosis 6). A wrong scale (or one Laplace per
	// key holder, 3× the variance) falls outside [0.4, 1.8].
	for kind, name := range []string{"counts", "sums"} {
		if m := z2[kind] / float64(cells); m < 0.4 || m > 1.8 {
			t.Errorf("%s: mean squared standardised noise = %.3f, want about 1", name, m)
		}
	}
}

// TestConcurrentUse runs queries in parallel over the same key holders and
// keys: pooled lattigo objects must not be shared between goroutines.
func TestConcurrentUse(t *testing.T) {
	s := threeHolders(t)
	spec := sexSpec(false)
	contrib := sexContributions()
	want := []int64{65, 50, 900, 130000, 0, 35, 0, 0, 0, 0, 0, 0, 0, 0}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	results := make([][]int64, len(errs))
	for g := range errs {
		wg.Go(func() {
			rel, err := RunLocal(t.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
			if err != nil {
				errs[g] = err
				return
			}
			results[g], errs[g] = s.sponsor.Decrypt(rel.Ciphertext, len(spec.Slots))
		})
	}
	wg.Wait()
	for g := range errs {
		if errs[g] != nil {
			t.Fatalf("goroutine %d: %v", g, errs[g])
		}
		if diff := cmp.Diff(want, results[g]); diff != "" {
			t.Errorf("goroutine %d result (-want +got):\n%s", g, diff)
		}
	}
}

func BenchmarkRunLocal(b *testing.B) {
	s := threeHolders(b)
	spec := sexSpec(true)
	contrib := sexContributions()
	var msg int64
	for b.Loop() {
		rel, err := RunLocal(b.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
		if err != nil {
			b.Fatal(err)
		}
		msg = rel.MessageBytes
	}
	b.ReportMetric(float64(msg), "msgbytes/op")
}

// TestMaxKeyHolders runs a query with as many key holders as the parameters
// allow: the summed smudging noise of every one still decrypts exactly.
func TestMaxKeyHolders(t *testing.T) {
	n := MaxKeyHolders
	if testing.Short() {
		n = 16
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("holder-%02d", i)
	}
	s := newStudy(t, ids...)
	spec := sexSpec(false)
	contrib := sexContributions()
	rel, err := RunLocal(t.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
	if err != nil {
		t.Fatalf("RunLocal with %d key holders = %v", n, err)
	}
	got, err := s.sponsor.Decrypt(rel.Ciphertext, len(spec.Slots))
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{65, 50, 900, 130000, 0, 35, 0, 0, 0, 0, 0, 0, 0, 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result with %d key holders (-want +got):\n%s", n, diff)
	}
	over := append(ids, "one-too-many")
	var shares [][]byte
	crs := []byte("medx test ceremony seed 0002")
	for _, id := range over {
		h, err := NewKeyHolder(s.p, id)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := h.PublicKeyShare(crs)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, sh)
	}
	if len(over) > MaxKeyHolders {
		_, err = CollectivePublicKey(s.p, crs, shares)
		wantErr(t, "CollectivePublicKey(MaxKeyHolders+1 shares)", err, ErrMalformed)
	}
}

// TestRunLocalCustodians folds each custodian's noise share into its own
// contribution: the same result from fewer messages.
func TestRunLocalCustodians(t *testing.T) {
	s := threeHolders(t) // custodian-1, custodian-2, board
	spec := sexSpec(false)
	contrib := sexContributions()
	sep, err := RunLocal(t.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
	if err != nil {
		t.Fatal(err)
	}
	folded, err := RunLocalCustodians(t.Context(), s.p, s.pk, s.holders, spec, contrib, s.pub)
	if err != nil {
		t.Fatalf("RunLocalCustodians = %v", err)
	}
	want := []int64{65, 50, 900, 130000, 0, 35, 0, 0, 0, 0, 0, 0, 0, 0}
	for name, rel := range map[string]*Release{"separate": sep, "folded": folded} {
		got, err := s.sponsor.Decrypt(rel.Ciphertext, len(spec.Slots))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if saved := sep.MessageBytes - folded.MessageBytes; saved <= 0 {
		t.Errorf("folding saved %d bytes, want two ciphertexts", saved)
	}

	// With noise on, the folded message carries the share: the released
	// counts are noisy, and consistent with the gate.
	noisy := sexSpec(true)
	big := [][]int64{
		{400, 300, 1200, 90000, 50, 200, 50, 400, 300, 1200, 90000, 50, 200, 50},
		{250, 200, -300, 40000, 20, 150, 30, 250, 200, -300, 40000, 20, 150, 30},
	}
	rel, err := RunLocalCustodians(t.Context(), s.p, s.pk, s.holders, noisy, big, s.pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.sponsor.Decrypt(rel.Ciphertext, len(noisy.Slots))
	if err != nil {
		t.Fatal(err)
	}
	exact := plainSum(big)
	differs := 0
	for i := range got {
		if got[i] != exact[i] {
			differs++
		}
		if d := math.Abs(float64(got[i] - exact[i])); d > 64*noisy.NoiseScales()[i]+1 {
			t.Errorf("slot %d: noise %g beyond 64 scales", i, d)
		}
	}
	if differs < len(got)/2 {
		t.Errorf("only %d of %d slots carry noise", differs, len(got))
	}

	n, err := s.holders[0].DrawNoise(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	other := sexSpec(false)
	other.MinCell = 11
	for name, f := range map[string]func() error{
		"more contributors than key holders": func() error {
			_, err := RunLocalCustodians(t.Context(), s.p, s.pk, s.holders, spec, append(contrib, contrib...), s.pub)
			return err
		},
		"another spec": func() error { _, err := n.EncryptWith(s.p, s.pk, other, contrib[0]); return err },
		"short vector": func() error { _, err := n.EncryptWith(s.p, s.pk, spec, contrib[0][:4]); return err },
	} {
		if err := f(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: error = %v, want ErrInvalidSpec", name, err)
		}
	}
}
