package privacy

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpecCheck(t *testing.T) {
	p := mustParams(t)
	half := int64(p.PlaintextModulus() / 2)
	with := func(noise bool, f func(*Spec)) Spec {
		s := sexSpec(noise)
		s.Slots = append([]SlotSpec(nil), s.Slots...)
		f(&s)
		return s
	}
	tests := []struct {
		name    string
		spec    Spec
		wantMsg string // empty: the spec is valid
	}{
		{"valid, noise on", sexSpec(true), ""},
		{"valid, noise off", sexSpec(false), ""},
		{"valid, noise off, epsilon 0", with(false, func(s *Spec) { s.Epsilon = 0 }), ""},
		{"no slots", Spec{Records: 1, Epsilon: 1}, "no slots"},
		{"more slots than a ciphertext", Spec{Slots: make([]SlotSpec, 8193), Records: 1}, "a ciphertext holds 8192"},
		{"gate out of range", with(true, func(s *Spec) { s.Slots[3].Gate = 14 }), "gate 14 out of range"},
		{"negative gate", with(true, func(s *Spec) { s.Slots[3].Gate = -1 }), "out of range"},
		{"gate on a sum slot", with(true, func(s *Spec) { s.Slots[3].Gate = 2 }), "not a count-like slot"},
		{"unknown kind", with(true, func(s *Spec) { s.Slots[2].Kind = 7 }), "unknown kind"},
		{"epsilon zero with noise", with(true, func(s *Spec) { s.Epsilon = 0 }), "epsilon must be positive"},
		{"epsilon negative", with(true, func(s *Spec) { s.Epsilon = -1 }), "epsilon"},
		{"epsilon NaN", with(false, func(s *Spec) { s.Epsilon = math.NaN() }), "epsilon"},
		{"epsilon +Inf", with(true, func(s *Spec) { s.Epsilon = math.Inf(1) }), "epsilon"},
		{"negative records", with(true, func(s *Spec) { s.Records = -1 }), "Records"},
		{"negative MinCell", with(true, func(s *Spec) { s.MinCell = -1 }), "MinCell"},
		{"negative MaxAbs", with(true, func(s *Spec) { s.Slots[2].MaxAbs = -5 }), "MaxAbs"},
		{"zero sensitivity with noise", with(true, func(s *Spec) { s.Slots[2].Sensitivity = 0 }), "unprotected"},
		{"wrap: Records·MaxAbs above T/2", with(false, func(s *Spec) { s.Records = 1_000_000_000; s.Slots[3].MaxAbs = 600_000 }), "wrap modulo the plaintext modulus"},
		{"wrap: Records·MaxAbs overflows int64", with(false, func(s *Spec) { s.Records = math.MaxInt64; s.Slots[3].MaxAbs = math.MaxInt64 }), "wrap"},
		{"wrap: just below T/2 but noise tail crosses it", with(true, func(s *Spec) { s.Records = 1; s.Slots[3].MaxAbs = half - 10 }), "noise tail"},
		{"no wrap: just below T/2 without noise", with(false, func(s *Spec) { s.Records = 1; s.Slots[3].MaxAbs = half - 10 }), ""},
		{"noise scale far too large", with(true, func(s *Spec) { s.Epsilon = 1e-300 }), "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Check(p)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			wantErr(t, "Check()", err, ErrInvalidSpec)
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Check() = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestNoiseScales(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []float64
	}{
		{
			// 5 groups per cell, ε = 1: each group gets ε/5, scale = 5·Δ.
			name: "two cells, five groups each",
			spec: sexSpec(true),
			want: []float64{5, 5, 2500, 1250000, 5, 5, 5, 5, 5, 2500, 1250000, 5, 5, 5},
		},
		{
			name: "noise off",
			spec: sexSpec(false),
			want: make([]float64, 14),
		},
		{
			name: "one group, largest sensitivity wins, epsilon 0.5",
			spec: Spec{Epsilon: 0.5, Noise: true, Slots: []SlotSpec{
				{Kind: SlotCount, Sensitivity: 1}, {Kind: SlotCount, Sensitivity: 2},
			}},
			want: []float64{4, 4},
		},
		{
			name: "cells are disjoint: each gets the whole epsilon",
			spec: Spec{Epsilon: 2, Noise: true, Slots: []SlotSpec{
				{Cell: 0, Kind: SlotCount, Sensitivity: 1}, {Cell: 1, Gate: 1, Kind: SlotCount, Sensitivity: 1},
				{Cell: 2, Group: 0, Gate: 2, Kind: SlotCount, Sensitivity: 1}, {Cell: 2, Group: 1, Gate: 2, Kind: SlotSum, Sensitivity: 10},
			}},
			want: []float64{0.5, 0.5, 1, 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.spec.NoiseScales()); diff != "" {
				t.Errorf("NoiseScales() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGate(t *testing.T) {
	spec := sexSpec(false)
	exact := plainSum(sexContributions())
	tests := []struct {
		name   string
		spec   Spec
		counts []int64
		want   []int // suppressed slots
	}{
		{
			name:   "cell under MinCell takes its sums, bins a bin at a time",
			spec:   spec,
			counts: exact,
			want:   []int{4, 6, 7, 8, 9, 10, 11, 12, 13},
		},
		{
			name:   "n(x) under MinCell suppresses its sums but not the count",
			spec:   spec,
			counts: []int64{65, 9, 0, 0, 12, 12, 12, 30, 30, 0, 0, 12, 12, 12},
			want:   []int{1, 2, 3},
		},
		{
			name:   "everything at MinCell passes",
			spec:   spec,
			counts: []int64{10, 10, 0, 0, 10, 10, 10, 10, 10, 0, 0, 10, 10, 10},
			want:   []int{},
		},
		{
			name:   "missing counts fail closed",
			spec:   spec,
			counts: []int64{65, 50},
			want:   []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
		},
		{
			name:   "a count no honest run can produce is suppressed",
			spec:   spec,
			counts: []int64{65, 50, 0, 0, 12, 12, 12, 30, 30, 0, 0, 12, 10002, 12},
			want:   []int{12},
		},
		{
			name:   "a negative count is suppressed even with MinCell 0",
			spec:   Spec{Records: 100, MinCell: 0, Slots: []SlotSpec{{Kind: SlotCount, MaxAbs: 1}, {Gate: 0, Kind: SlotSum, MaxAbs: 5}}},
			counts: []int64{-5, 0},
			want:   []int{0, 1},
		},
		{
			name:   "a spec that fails Check (NaN scale) fails closed",
			spec:   Spec{Noise: true, Slots: []SlotSpec{{Kind: SlotCount}}},
			counts: []int64{50},
			want:   []int{0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sup := Gate(tt.spec, tt.counts)
			got := []int{}
			for i, s := range sup {
				if s {
					got = append(got, i)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Gate() suppressed slots (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlausible(t *testing.T) {
	spec := sexSpec(true) // count scales 5: tail 321
	ok := []int64{65, 50, 0, 0, 7, 35, 8, 7, 5, 0, 0, 1, 3, 0}
	if !Plausible(spec, ok) {
		t.Errorf("Plausible(%v) = false, want true", ok)
	}
	for _, bad := range [][]int64{
		{-400, 50, 0, 0, 7, 35, 8, 7, 5, 0, 0, 1, 3, 0},
		{65, 50, 0, 0, 7, 35, 8, 7, 5, 0, 0, 1, 3, 10322},
		{65, 50},
	} {
		if Plausible(spec, bad) {
			t.Errorf("Plausible(%v) = true, want false", bad)
		}
	}
}

func TestDisclosureJSON(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		sup  []bool
		want string
	}{
		{
			name: "noise off, nothing suppressed",
			spec: Spec{MinCell: 10, Epsilon: 0.5, Slots: []SlotSpec{{Kind: SlotCount}}},
			sup:  []bool{false},
			want: `{"minCell":10,"suppressedSlots":[],"mechanism":"none","noiseScales":[0],"epsilonSpent":0,"epsilonLeft":0,"keyHolders":3}`,
		},
		{
			name: "noise on",
			spec: Spec{MinCell: 5, Epsilon: 0.5, Noise: true, Slots: []SlotSpec{{Kind: SlotCount, Sensitivity: 1}, {Group: 1, Kind: SlotSum, Sensitivity: 3}}},
			sup:  []bool{false, true},
			want: `{"minCell":5,"suppressedSlots":[1],"mechanism":"discrete-laplace","noiseScales":[4,12],"epsilonSpent":0.5,"epsilonLeft":0,"keyHolders":3}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(NewDisclosure(tt.spec, tt.sup, 3))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("json.Marshal(NewDisclosure()) = %s, want %s", b, tt.want)
			}
		})
	}
}
