package privacy

import (
	"github.com/tuneinsight/lattigo/v5/ring"
	"math"
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultParamsSecure(t *testing.T) {
	p := mustParams(t)
	if got := p.LogQP(); got > 218 {
		t.Errorf("LogQP() = %.3f, want <= 218 (128-bit security at N = 2^13)", got)
	}
	if got := p.Slots(); got != 8192 {
		t.Errorf("Slots() = %d, want 8192", got)
	}
	T := p.PlaintextModulus()
	if T != 1125899906990081 {
		t.Errorf("PlaintextModulus() = %d, want 1125899906990081", T)
	}
	if !new(big.Int).SetUint64(T).ProbablyPrime(32) || T%(2*8192) != 1 {
		t.Errorf("T = %d is not a prime = 1 mod 2N", T)
	}
	q, pp := p.Moduli()
	if len(q) != 3 || len(pp) != 1 {
		t.Fatalf("Moduli() = %d Q primes, %d P primes, want 3 and 1", len(q), len(pp))
	}
	bound := p.SmudgingBound()
	if want := 6 * float64(1<<50); bound < want {
		t.Errorf("SmudgingBound() = %g, want at least 6σ = %g", bound, want)
	}
	for i, qi := range q {
		if bound >= float64(qi) {
			t.Errorf("smudging bound 2^%.2f not below q_%d = 2^%.2f", math.Log2(bound), i, math.Log2(float64(qi)))
		}
		// The collective decryption protocol widens σ slightly.
		if eff := 6 * math.Sqrt(math.Pow(1<<50, 2)+3.2*3.2); eff >= float64(qi) {
			t.Errorf("widened smudging bound 2^%.2f not below q_%d", math.Log2(eff), i)
		}
	}
	if diff := cmp.Diff(DefaultParams(), p.Literal()); diff != "" {
		t.Errorf("Literal() differs from DefaultParams() (-want +got):\n%s", diff)
	}
	lit := p.Literal()
	lit.LogQ[0] = 1
	if p.Literal().LogQ[0] != 54 {
		t.Error("Literal() shares its slices with the Params")
	}
}

func TestNewParamsRefuses(t *testing.T) {
	with := func(f func(*ParamsLiteral)) ParamsLiteral {
		l := DefaultParams()
		f(&l)
		return l
	}
	tests := []struct {
		name string
		lit  ParamsLiteral
	}{
		{"zero literal", ParamsLiteral{}},
		{"LogN out of range", with(func(l *ParamsLiteral) { l.LogN = 17 })},
		{"insecure LogQP", with(func(l *ParamsLiteral) { l.LogQ = []int{58, 58, 58}; l.LogP = []int{58} })},
		{"no Q", with(func(l *ParamsLiteral) { l.LogQ = nil })},
		{"T not prime", with(func(l *ParamsLiteral) { l.PlaintextModulus = 49153 })}, // 13·3781, 1 mod 2^14
		{"T not 1 mod 2N", with(func(l *ParamsLiteral) { l.PlaintextModulus = 65539 })},
		{"T zero", with(func(l *ParamsLiteral) { l.PlaintextModulus = 0 })},
		{"sigma too small to flood", with(func(l *ParamsLiteral) { l.SmudgingSigma = 3.2 })},
		{"sigma NaN", with(func(l *ParamsLiteral) { l.SmudgingSigma = math.NaN() })},
		{"6 sigma above the primes", with(func(l *ParamsLiteral) { l.SmudgingSigma = 1 << 52 })},
		{"one Q prime: nothing to drop after the selector", with(func(l *ParamsLiteral) { l.LogQ = []int{54}; l.LogP = []int{55} })},
		{"top prime too small to flood the selected noise", with(func(l *ParamsLiteral) { l.LogQ = []int{54, 54, 45}; l.SmudgingSigma = 1 << 40 })},
		{"modulus below the top too small to decrypt", with(func(l *ParamsLiteral) { l.LogQ = []int{51, 51, 54}; l.SmudgingSigma = 1 << 48 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewParams(tt.lit)
			wantErr(t, "NewParams", err, ErrInvalidParams)
			if p.Slots() != 0 {
				t.Errorf("refused Params still usable: Slots() = %d", p.Slots())
			}
		})
	}
}

func TestParamsFingerprint(t *testing.T) {
	a, b := mustParams(t), mustParams(t)
	if !a.Equal(b) {
		t.Error("two Params from DefaultParams() are not Equal")
	}
	lit := DefaultParams()
	lit.SmudgingSigma = 1 << 49
	c, err := NewParams(lit)
	if err != nil {
		t.Fatalf("NewParams(σ = 2^49) = %v", err)
	}
	if a.Equal(c) {
		t.Error("Params with different σ are Equal")
	}
	// A message made under c is refused under a.
	h, err := NewKeyHolder(c, "x")
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := h.MarshalBinary()
	_, err = UnmarshalKeyHolder(a, b1)
	wantErr(t, "UnmarshalKeyHolder under other params", err, ErrMalformed)
}

func TestZeroParamsRefused(t *testing.T) {
	var p Params
	_, err := NewKeyHolder(p, "x")
	wantErr(t, "NewKeyHolder(zero Params)", err, ErrInvalidParams)
	_, err = NewSponsorKey(p)
	wantErr(t, "NewSponsorKey(zero Params)", err, ErrInvalidParams)
	err = sexSpec(false).Check(p)
	wantErr(t, "Check(zero Params)", err, ErrInvalidParams)
	_, err = Add(p, []byte("x"))
	wantErr(t, "Add(zero Params)", err, ErrInvalidParams)
	_, err = CollectivePublicKey(p, make([]byte, 32), [][]byte{{1}})
	wantErr(t, "CollectivePublicKey(zero Params)", err, ErrInvalidParams)
}

func TestReduce(t *testing.T) {
	p := mustParams(t)
	q, _ := p.Moduli()
	poly := ring.NewPoly(8, len(q)-1)
	for i := range poly.Coeffs {
		poly.Coeffs[i][0] = q[i]     // a zero sample written as q_i
		poly.Coeffs[i][1] = q[i] + 5 // unreduced
		poly.Coeffs[i][2] = q[i] - 1 // already reduced
	}
	reduce(poly, q)
	for i := range poly.Coeffs {
		if got := poly.Coeffs[i][:3]; got[0] != 0 || got[1] != 5 || got[2] != q[i]-1 {
			t.Errorf("row %d: reduce = %v, want [0 5 %d]", i, got, q[i]-1)
		}
	}
}
