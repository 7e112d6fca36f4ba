package privacy

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
)

// Distributed discrete Laplace noise.
//
// The released noise on a slot of scale b is the discrete Laplace
// distribution, P(X = k) ∝ exp(−|k|/b), which is exactly G1 − G2 for two
// independent geometric variables on {0, 1, …} with success probability
// p = 1 − e^(−1/b). A geometric variable is the negative binomial NB(1, p), and
// NB(r, p) is infinitely divisible: the sum of K independent NB(1/K, p) is
// NB(1, p). So each of the K key holders adds Pólya(1/K, p) − Pólya(1/K, p)
// and the sum of the K shares has exactly the discrete Laplace distribution,
// although no single holder knows it. NB(r, p) is drawn as a Gamma–Poisson
// mixture: λ ~ Gamma(r, θ) with θ = (1−p)/p, then Poisson(λ).
//
// Every sample is driven by crypto/rand (through a buffer). Gamma uses
// Marsaglia–Tsang with the U^(1/a) boost for shapes below 1; Poisson uses
// inversion below a mean of 10 and Hörmann's PTRS transformed rejection above
// (exact, fast for any mean). The samplers use float64 arithmetic, the usual
// compromise in implementations of these mechanisms.
//
// Against the sponsor alone the guarantee is the full discrete Laplace. A
// key holder knows its own share, so a key holder colluding with the sponsor
// faces the remaining K−1 shares: the difference of two NB((K−1)/K, p), a
// slightly narrower distribution.

// rng draws from crypto/rand through a buffer (one read per 512 samples).
type rng struct {
	r   *bufio.Reader
	buf [8]byte
}

func newRNG() *rng { return &rng{r: bufio.NewReaderSize(rand.Reader, 4096)} }

func (g *rng) uint64() (uint64, error) {
	if _, err := io.ReadFull(g.r, g.buf[:]); err != nil {
		return 0, fmt.Errorf("read crypto/rand: %w", err)
	}
	return binary.LittleEndian.Uint64(g.buf[:]), nil
}

// uniform is uniform on the open interval (0, 1), 53 bits.
func (g *rng) uniform() (float64, error) {
	u, err := g.uint64()
	if err != nil {
		return 0, err
	}
	return (float64(u>>11) + 0.5) / (1 << 53), nil
}

// normal is a standard normal (Marsaglia polar method).
func (g *rng) normal() (float64, error) {
	for {
		u, err := g.uniform()
		if err != nil {
			return 0, err
		}
		v, err := g.uniform()
		if err != nil {
			return 0, err
		}
		u, v = 2*u-1, 2*v-1
		s := u*u + v*v
		if s > 0 && s < 1 {
			return u * math.Sqrt(-2*math.Log(s)/s), nil
		}
	}
}

// gamma is Gamma(shape, 1) (Marsaglia & Tsang 2000; for shape < 1,
// Gamma(shape+1)·U^(1/shape)).
func (g *rng) gamma(shape float64) (float64, error) {
	if shape <= 0 || math.IsNaN(shape) {
		return 0, fmt.Errorf("gamma shape %g is not positive", shape)
	}
	if shape < 1 {
		x, err := g.gamma(shape + 1)
		if err != nil {
			return 0, err
		}
		u, err := g.uniform()
		if err != nil {
			return 0, err
		}
		// In logs: U^(1/shape) underflows for small shapes.
		return math.Exp(math.Log(x) + math.Log(u)/shape), nil
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x, err := g.normal()
		if err != nil {
			return 0, err
		}
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u, err := g.uniform()
		if err != nil {
			return 0, err
		}
		x2 := x * x
		if u < 1-0.0331*x2*x2 || math.Log(u) < 0.5*x2+d*(1-v+math.Log(v)) {
			return d * v, nil
		}
	}
}

// poisson is Poisson(lambda): inversion for small means, PTRS (Hörmann 1993,
// "The transformed rejection method for generating Poisson random variables")
// for means of 10 and more.
func (g *rng) poisson(lambda float64) (int64, error) {
	switch {
	case lambda < 0 || math.IsNaN(lambda) || math.IsInf(lambda, 0):
		return 0, fmt.Errorf("poisson mean %g is not finite and non-negative", lambda)
	case lambda == 0:
		return 0, nil
	case lambda < 10:
		u, err := g.uniform()
		if err != nil {
			return 0, err
		}
		k := int64(0)
		p := math.Exp(-lambda)
		cdf := p
		for u > cdf && k < 1000 {
			k++
			p *= lambda / float64(k)
			cdf += p
		}
		return k, nil
	}
	slam := math.Sqrt(lambda)
	loglam := math.Log(lambda)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invalpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u, err := g.uniform()
		if err != nil {
			return 0, err
		}
		v, err := g.uniform()
		if err != nil {
			return 0, err
		}
		u -= 0.5
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lambda + 0.43)
		if us >= 0.07 && v <= vr {
			return int64(k), nil
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invalpha)-math.Log(a/(us*us)+b) <= -lambda+k*loglam-lg {
			return int64(k), nil
		}
	}
}

// polya is the negative binomial NB(r, p) with θ = (1−p)/p, as a Gamma–Poisson
// mixture: Poisson(θ·Gamma(r)).
func (g *rng) polya(r, theta float64) (int64, error) {
	if theta == 0 {
		return 0, nil
	}
	x, err := g.gamma(r)
	if err != nil {
		return 0, err
	}
	return g.poisson(theta * x)
}

// laplaceShare is one of k shares whose sum is discrete Laplace of scale b.
func (g *rng) laplaceShare(b float64, k int) (int64, error) {
	if b <= 0 {
		return 0, nil
	}
	theta := 1 / math.Expm1(1/b) // (1−p)/p with p = 1 − e^(−1/b)
	r := 1 / float64(k)
	x, err := g.polya(r, theta)
	if err != nil {
		return 0, err
	}
	y, err := g.polya(r, theta)
	if err != nil {
		return 0, err
	}
	return x - y, nil
}

// discreteLaplaceVariance is the variance of the discrete Laplace distribution
// of scale b: 2e^(−1/b)/(1−e^(−1/b))².
func discreteLaplaceVariance(b float64) float64 {
	q := math.Exp(-1 / b)
	return 2 * q / ((1 - q) * (1 - q))
}

// NoiseShare is one key holder's private noise for one query: a share of
// every slot's discrete Laplace noise. It is encrypted once (Encrypt); the
// gate and the release are selected from the same sum, so the counts carry
// the same noise both times and epsilon is spent once. Draw a new one for every query, never reuse one. String,
// GoString and LogValue never show the noise.
type NoiseShare struct {
	p      Params
	holder string
	spec   Spec
	noise  []int64
}

// DrawNoise draws the key holder's noise share for spec, for a query with
// holders key holders in all (every one of them must draw with the same
// number, or the sum has the wrong distribution). With noise off the share is
// zero.
func (k *KeyHolder) DrawNoise(spec Spec, holders int) (*NoiseShare, error) {
	if err := spec.Check(k.p); err != nil {
		return nil, fmt.Errorf("draw noise for %s: %w", k.id, err)
	}
	if holders < 1 || holders > MaxKeyHolders {
		return nil, fmt.Errorf("draw noise for %s: %w: %d key holders, need 1 to %d", k.id, ErrInvalidSpec, holders, MaxKeyHolders)
	}
	spec.Slots = append([]SlotSpec(nil), spec.Slots...)
	n := &NoiseShare{p: k.p, holder: k.id, spec: spec, noise: make([]int64, len(spec.Slots))}
	if !spec.Noise {
		return n, nil
	}
	g := newRNG()
	for i, b := range spec.NoiseScales() {
		v, err := g.laplaceShare(b, holders)
		if err != nil {
			return nil, fmt.Errorf("draw noise for %s: slot %d: %w", k.id, i, err)
		}
		n.noise[i] = v
	}
	return n, nil
}

// String names the holder only, never the noise.
func (n *NoiseShare) String() string { return "privacy.NoiseShare(" + n.holder + ")" }

// GoString names the holder only, never the noise.
func (n *NoiseShare) GoString() string { return n.String() }

// LogValue makes slog record the holder only, never the noise.
func (n *NoiseShare) LogValue() slog.Value { return slog.StringValue(n.String()) }

// Encrypt encrypts the share's noise on every slot: the key holder's
// contribution to the query, summed with the contributors' by Add. The gate
// and the release are both selected from that one sum, so the counts carry
// the same noise at the gate and in the result and epsilon is spent once.
func (n *NoiseShare) Encrypt(p Params, pk *PublicKey) ([]byte, error) {
	return n.encrypt("encrypt noise", p, pk, func(int) bool { return true })
}

// EncryptWith is the one message of a contributor that also holds a key
// share (a custodian): its vector vec for spec plus this noise share, in a
// single ciphertext. It saves an encryption and a message; the holder learns
// nothing it did not know, since it drew the share itself. spec must be the
// spec the share was drawn for.
func (n *NoiseShare) EncryptWith(p Params, pk *PublicKey, spec Spec, vec []int64) ([]byte, error) {
	if err := n.sameParams(p, pk); err != nil {
		return nil, fmt.Errorf("encrypt with noise of %s: %w", n.holder, err)
	}
	if err := spec.Check(p); err != nil {
		return nil, fmt.Errorf("encrypt with noise of %s: %w", n.holder, err)
	}
	if !sameSpec(spec, n.spec) {
		return nil, fmt.Errorf("encrypt with noise of %s: %w: the noise share was drawn for another spec", n.holder, ErrInvalidSpec)
	}
	if err := checkVector(spec, vec); err != nil {
		return nil, fmt.Errorf("encrypt with noise of %s: %w", n.holder, err)
	}
	vals := make([]int64, len(vec))
	for i, v := range vec {
		// Spec.Check reserves room for the noise tail below T/2.
		vals[i] = v + n.noise[i]
	}
	b, err := encryptVector(p, pk, vals)
	if err != nil {
		return nil, fmt.Errorf("encrypt with noise of %s: %w", n.holder, err)
	}
	return b, nil
}

func sameSpec(a, b Spec) bool {
	return a.Records == b.Records && a.MinCell == b.MinCell && a.Epsilon == b.Epsilon && a.Noise == b.Noise &&
		slices.Equal(a.Slots, b.Slots)
}

// EncryptCounts encrypts the share's noise on the count-like slots only.
//
// Deprecated: use Encrypt; the exchange selects the count-like slots itself.
func (n *NoiseShare) EncryptCounts(p Params, pk *PublicKey) ([]byte, error) {
	return n.encrypt("encrypt noise counts", p, pk, func(i int) bool { return n.spec.Slots[i].Kind == SlotCount })
}

// EncryptPayload encrypts the share's noise with suppressed slots zero (nil:
// none).
//
// Deprecated: use Encrypt; SelectRelease withholds suppressed slots.
func (n *NoiseShare) EncryptPayload(p Params, pk *PublicKey, suppressed []bool) ([]byte, error) {
	if suppressed == nil {
		suppressed = make([]bool, len(n.noise))
	}
	if len(suppressed) != len(n.noise) {
		return nil, fmt.Errorf("encrypt noise payload of %s: %w: suppression mask has %d entries for %d slots", n.holder, ErrInvalidSpec, len(suppressed), len(n.noise))
	}
	return n.encrypt("encrypt noise payload", p, pk, func(i int) bool { return !suppressed[i] })
}

func (n *NoiseShare) encrypt(what string, p Params, pk *PublicKey, keep func(int) bool) ([]byte, error) {
	if err := n.sameParams(p, pk); err != nil {
		return nil, fmt.Errorf("%s of %s: %w", what, n.holder, err)
	}
	vals := make([]int64, len(n.noise))
	for i, v := range n.noise {
		if keep(i) {
			vals[i] = v
		}
	}
	b, err := encryptVector(p, pk, vals)
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", what, n.holder, err)
	}
	return b, nil
}

func (n *NoiseShare) sameParams(p Params, pk *PublicKey) error {
	if err := checkKey(p, pk); err != nil {
		return err
	}
	if !p.Equal(n.p) {
		return fmt.Errorf("%w: the noise share was drawn under other parameters", ErrInvalidParams)
	}
	return nil
}

// MarshalBinary encodes the share, for the key holder's own storage while
// its query runs only.
func (n *NoiseShare) MarshalBinary() ([]byte, error) {
	w := newWriter(n.p, kindNoiseShare, 64+len(n.holder)+len(n.spec.Slots)*56)
	w.u16(uint16(len(n.holder)))
	w.raw([]byte(n.holder))
	w.u64(uint64(n.spec.Records))
	w.u64(uint64(n.spec.MinCell))
	w.u64(math.Float64bits(n.spec.Epsilon))
	if n.spec.Noise {
		w.u8(1)
	} else {
		w.u8(0)
	}
	w.u64(uint64(len(n.spec.Slots)))
	for i, sl := range n.spec.Slots {
		for _, v := range []int64{int64(sl.Cell), int64(sl.Group), int64(sl.Gate), int64(sl.Kind), sl.Sensitivity, sl.MaxAbs, n.noise[i]} {
			w.u64(uint64(v))
		}
	}
	return w.b, nil
}

// UnmarshalNoiseShare decodes a share written by NoiseShare.MarshalBinary
// under the same parameters.
func UnmarshalNoiseShare(p Params, b []byte) (*NoiseShare, error) {
	r, err := newReader(p, b, kindNoiseShare)
	if err != nil {
		return nil, fmt.Errorf("unmarshal noise share: %w", err)
	}
	u64 := func() uint64 {
		v := r.take(8)
		if v == nil {
			return 0
		}
		return binary.LittleEndian.Uint64(v)
	}
	holder := string(r.take(int(r.u16())))
	var spec Spec
	spec.Records = int64(u64())
	spec.MinCell = int64(u64())
	spec.Epsilon = math.Float64frombits(u64())
	spec.Noise = r.u8() == 1
	count := u64()
	if r.err == nil && count > uint64(p.Slots()) {
		r.fail("%d slots, a ciphertext holds %d", count, p.Slots())
	}
	if r.err != nil {
		return nil, fmt.Errorf("unmarshal noise share: %w", r.err)
	}
	spec.Slots = make([]SlotSpec, count)
	noise := make([]int64, count)
	for i := range spec.Slots {
		f := [7]int64{}
		for j := range f {
			f[j] = int64(u64())
		}
		if f[0] != int64(int(f[0])) || f[1] != int64(int(f[1])) || f[2] != int64(int(f[2])) {
			r.fail("slot %d: field out of range", i)
		}
		spec.Slots[i] = SlotSpec{Cell: int(f[0]), Group: int(f[1]), Gate: int(f[2]), Kind: SlotKind(f[3]), Sensitivity: f[4], MaxAbs: f[5]}
		noise[i] = f[6]
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("unmarshal noise share: %w", err)
	}
	if err := checkID(holder); err != nil {
		return nil, fmt.Errorf("unmarshal noise share: %w", err)
	}
	if err := spec.Check(p); err != nil {
		return nil, fmt.Errorf("unmarshal noise share: %w", err)
	}
	return &NoiseShare{p: p, holder: holder, spec: spec, noise: noise}, nil
}
