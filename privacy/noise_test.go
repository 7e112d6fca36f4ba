package privacy

import (
	"fmt"
	"math"
	"testing"
)

// moments accumulates a sample's mean, variance and the frequency of zero.
type moments struct {
	n, zeros      int
	sum, sumSq    float64
	values        []float64
	mean, varianc float64
}

func (m *moments) add(x float64) {
	m.values = append(m.values, x)
	m.n++
	m.sum += x
	if x == 0 {
		m.zeros++
	}
}

func (m *moments) finish() {
	m.mean = m.sum / float64(m.n)
	for _, x := range m.values {
		d := x - m.mean
		m.sumSq += d * d
	}
	m.varianc = m.sumSq / float64(m.n-1)
}

// checkClose fails if |got − want| exceeds 6 standard errors: a correct
// sampler fails about once in 5·10^8 runs, a wrong scale fails always.
func checkClose(t *testing.T, what string, got, want, stderr float64) {
	t.Helper()
	if d := math.Abs(got - want); d > 6*stderr {
		t.Errorf("%s = %.5g, want %.5g ± %.3g (6 standard errors)", what, got, want, 6*stderr)
	}
}

func draws(t *testing.T, short, long int) int {
	if testing.Short() {
		return short
	}
	return long
}

func TestDiscreteLaplaceShares(t *testing.T) {
	tests := []struct {
		holders int
		scale   float64
	}{
		{1, 0.5},
		{3, 2},
		{5, 40},
		{3, 1000}, // large Poisson means: the PTRS path
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("K=%d,b=%g", tt.holders, tt.scale), func(t *testing.T) {
			n := draws(t, 20000, 100000)
			g := newRNG()
			var total, share moments
			for range n {
				s := int64(0)
				for k := range tt.holders {
					v, err := g.laplaceShare(tt.scale, tt.holders)
					if err != nil {
						t.Fatal(err)
					}
					if k == 0 {
						share.add(float64(v))
					}
					s += v
				}
				total.add(float64(s))
			}
			total.finish()
			share.finish()

			// Exact moments of the discrete Laplace distribution.
			q := math.Exp(-1 / tt.scale)
			p0 := (1 - q) / (1 + q)
			v := discreteLaplaceVariance(tt.scale)
			mu4 := 0.0
			for k := 1; ; k++ {
				term := 2 * p0 * math.Pow(q, float64(k)) * math.Pow(float64(k), 4)
				mu4 += term
				if term < 1e-12*mu4 && k > 10 {
					break
				}
			}
			N := float64(n)
			checkClose(t, "mean of the summed noise", total.mean, 0, math.Sqrt(v/N))
			checkClose(t, "variance of the summed noise", total.varianc, v, math.Sqrt((mu4-v*v)/N))
			checkClose(t, "P(noise = 0)", float64(total.zeros)/N, p0, math.Sqrt(p0*(1-p0)/N))
			// Each holder's share is the difference of two NB(1/K, p): it
			// carries 1/K of the variance (a full Laplace per holder would be
			// K times off). Even cumulants of a difference add: κ2 = 2rq/p²,
			// κ4 = 2rq(1+4q+q²)/p⁴ with r = 1/K, p = 1−q.
			if tt.holders > 1 {
				r, pp := 1/float64(tt.holders), 1-q
				k2 := 2 * r * q / (pp * pp)
				k4 := 2 * r * q * (1 + 4*q + q*q) / (pp * pp * pp * pp)
				checkClose(t, "variance of one share", share.varianc, v/float64(tt.holders), math.Sqrt((k4+2*k2*k2)/N))
				checkClose(t, "mean of one share", share.mean, 0, math.Sqrt(k2/N))
			}
		})
	}
}

func TestGammaSampler(t *testing.T) {
	for _, shape := range []float64{0.2, 1, 7.5} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			n := draws(t, 20000, 100000)
			g := newRNG()
			var m moments
			for range n {
				x, err := g.gamma(shape)
				if err != nil {
					t.Fatal(err)
				}
				if x < 0 {
					t.Fatalf("gamma(%g) = %g < 0", shape, x)
				}
				m.add(x)
			}
			m.finish()
			N := float64(n)
			checkClose(t, "mean", m.mean, shape, math.Sqrt(shape/N))
			// Central 4th moment of Gamma(a, 1) is 3a² + 6a.
			checkClose(t, "variance", m.varianc, shape, math.Sqrt((2*shape*shape+6*shape)/N))
		})
	}
	if _, err := newRNG().gamma(0); err == nil {
		t.Error("gamma(0) succeeded, want an error")
	}
}

func TestPoissonSampler(t *testing.T) {
	for _, lambda := range []float64{0.3, 4, 9.99, 10, 25, 1e5} {
		t.Run(fmt.Sprint(lambda), func(t *testing.T) {
			n := draws(t, 20000, 100000)
			g := newRNG()
			var m moments
			for range n {
				k, err := g.poisson(lambda)
				if err != nil {
					t.Fatal(err)
				}
				if k < 0 {
					t.Fatalf("poisson(%g) = %d < 0", lambda, k)
				}
				m.add(float64(k))
			}
			m.finish()
			N := float64(n)
			checkClose(t, "mean", m.mean, lambda, math.Sqrt(lambda/N))
			checkClose(t, "variance", m.varianc, lambda, math.Sqrt((lambda+2*lambda*lambda)/N))
		})
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if _, err := newRNG().poisson(bad); err == nil {
			t.Errorf("poisson(%g) succeeded, want an error", bad)
		}
	}
}

func TestDrawNoise(t *testing.T) {
	s := newStudy(t, "a", "b")
	h := s.holders[0]

	off, err := h.DrawNoise(sexSpec(false), 2)
	if err != nil {
		t.Fatalf("DrawNoise(noise off) = %v", err)
	}
	for i, v := range off.noise {
		if v != 0 {
			t.Errorf("noise off: slot %d has noise %d", i, v)
		}
	}

	on, err := h.DrawNoise(sexSpec(true), 2)
	if err != nil {
		t.Fatalf("DrawNoise(noise on) = %v", err)
	}
	// The sum slots have scales 2500 and 1250000: a zero share there is
	// practically impossible.
	if on.noise[3] == 0 && on.noise[10] == 0 {
		t.Errorf("noise on: sums of squares got no noise: %v", on.noise)
	}
	if got := fmt.Sprintf("%v %+v %#v", on, on, on); got != "privacy.NoiseShare(a) privacy.NoiseShare(a) privacy.NoiseShare(a)" {
		t.Errorf("formatting a NoiseShare = %q, want the holder only", got)
	}

	_, err = h.DrawNoise(sexSpec(true), 0)
	wantErr(t, "DrawNoise(0 holders)", err, ErrInvalidSpec)
	bad := sexSpec(true)
	bad.Epsilon = 0
	_, err = h.DrawNoise(bad, 2)
	wantErr(t, "DrawNoise(epsilon 0)", err, ErrInvalidSpec)
}
