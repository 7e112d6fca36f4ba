package privacy

import (
	"context"
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

	noise := make([]*NoiseShare, k)
	for i, h := range s.holders {
		var err error
		if noise[i], err = h.DrawNoise(spec, k); err != nil {
			t.Fatalf("DrawNoise(%s) = %v", h.ID(), err)
		}
	}

	// Gate round.
	var msgs [][]byte
	for _, v := range contrib {
		b, err := EncryptCounts(p, s.pk, spec, v)
		if err != nil {
			t.Fatalf("EncryptCounts = %v", err)
		}
		msgs = append(msgs, b)
	}
	for _, n := range noise {
		b, err := n.EncryptCounts(p, s.pk)
		if err != nil {
			t.Fatalf("NoiseShare.EncryptCounts = %v", err)
		}
		msgs = append(msgs, b)
	}
	gateCT, err := Add(p, msgs...)
	if err != nil {
		t.Fatalf("Add = %v", err)
	}
	shares := make([][]byte, k)
	for i, h := range s.holders {
		if shares[i], err = h.DecryptShare(gateCT); err != nil {
			t.Fatalf("DecryptShare(%s) = %v", h.ID(), err)
		}
	}
	counts, err := CombineDecrypt(p, gateCT, shares, len(spec.Slots))
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

	// Release round.
	msgs = msgs[:0]
	for _, v := range contrib {
		b, err := EncryptPayload(p, s.pk, spec, v, sup)
		if err != nil {
			t.Fatalf("EncryptPayload = %v", err)
		}
		msgs = append(msgs, b)
	}
	for _, n := range noise {
		b, err := n.EncryptPayload(p, s.pk, sup)
		if err != nil {
			t.Fatalf("NoiseShare.EncryptPayload = %v", err)
		}
		msgs = append(msgs, b)
	}
	payload, err := Add(p, msgs...)
	if err != nil {
		t.Fatalf("Add = %v", err)
	}
	for i, h := range s.holders {
		if shares[i], err = h.SwitchShare(payload, s.pub); err != nil {
			t.Fatalf("SwitchShare(%s) = %v", h.ID(), err)
		}
	}
	result, err := CombineSwitch(p, payload, shares)
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

func TestProtocolRefusals(t *testing.T) {
	s := threeHolders(t)
	p := s.p
	spec := sexSpec(false)
	contrib := sexContributions()
	gate1, err := EncryptCounts(p, s.pk, spec, contrib[0])
	if err != nil {
		t.Fatal(err)
	}
	gate2, err := EncryptCounts(p, s.pk, spec, contrib[1])
	if err != nil {
		t.Fatal(err)
	}
	none := make([]bool, len(spec.Slots))
	rel1, err := EncryptPayload(p, s.pk, spec, contrib[0], none)
	if err != nil {
		t.Fatal(err)
	}
	gateSum, err := Add(p, gate1, gate2)
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
	wrap := sexSpec(false)
	wrap.Records = 1 << 40

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"EncryptCounts: short vector", func() error { _, err := EncryptCounts(p, s.pk, spec, contrib[0][:3]); return err }, ErrInvalidSpec},
		{"EncryptCounts: value beyond Records·MaxAbs", func() error { _, err := EncryptCounts(p, s.pk, spec, bigVec); return err }, ErrInvalidSpec},
		{"EncryptCounts: negative count", func() error { _, err := EncryptCounts(p, s.pk, spec, negCount); return err }, ErrInvalidSpec},
		{"EncryptCounts: wrap-prone spec", func() error { _, err := EncryptCounts(p, s.pk, wrap, contrib[0]); return err }, ErrInvalidSpec},
		{"EncryptCounts: nil key", func() error { _, err := EncryptCounts(p, nil, spec, contrib[0]); return err }, ErrMalformed},
		{"EncryptPayload: short mask", func() error { _, err := EncryptPayload(p, s.pk, spec, contrib[0], none[:2]); return err }, ErrInvalidSpec},
		{"Add: nothing", func() error { _, err := Add(p); return err }, ErrMalformed},
		{"Add: the same ciphertext twice", func() error { _, err := Add(p, gate1, gate2, gate1); return err }, ErrMalformed},
		{"Add: gate and release mixed", func() error { _, err := Add(p, gate1, rel1); return err }, ErrMalformed},
		{"Add: not a ciphertext", func() error { _, err := Add(p, gate1, pkBytes); return err }, ErrMalformed},
		{"DecryptShare: a release ciphertext", func() error { _, err := s.holders[0].DecryptShare(rel1); return err }, ErrMalformed},
		{"SwitchShare: a gate ciphertext", func() error { _, err := s.holders[0].SwitchShare(gateSum, s.pub); return err }, ErrMalformed},
		{"SwitchShare: the collective key as sponsor key", func() error { _, err := s.holders[0].SwitchShare(rel1, pkBytes); return err }, ErrMalformed},
		{"CombineDecrypt: shares of another ciphertext", func() error { _, err := CombineDecrypt(p, gate1, dshares, 14); return err }, ErrWrongKey},
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
