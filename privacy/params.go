package privacy

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Errors callers branch on. Every error returned by the package wraps one of
// these when it is caused by bad input.
var (
	// ErrInvalidParams reports a parameter literal that is insecure or unusable.
	ErrInvalidParams = errors.New("privacy: invalid parameters")
	// ErrInvalidSpec reports a query Spec (or a vector or mask that does not
	// fit it) that is malformed or could wrap modulo the plaintext modulus.
	ErrInvalidSpec = errors.New("privacy: invalid spec")
	// ErrMalformed reports bytes that are not a well-formed message of the
	// expected kind under these parameters.
	ErrMalformed = errors.New("privacy: malformed message")
	// ErrWrongKey reports a ciphertext addressed to another sponsor key, or
	// shares made for another ciphertext, seed or sponsor.
	ErrWrongKey = errors.New("privacy: wrong key")
)

const (
	// MinSmudgingSigma is the smallest smudging (noise flooding) standard
	// deviation accepted per key holder. The aggregate ciphertext noise before
	// a key switch is about 2^9 (a few fresh encryptions passed through the
	// selector and one modulus drop, see SelectCounts); NewParams also requires
	// σ to exceed it by MinFloodingGap bits.
	MinSmudgingSigma = 1 << 40

	// MinFloodingGap is the smallest accepted gap, in bits, between the
	// smudging σ and the estimated noise of the ciphertext it floods: what a
	// collective decryption reveals about the secret shares and the inputs is
	// at most about 2^−MinFloodingGap. The default parameters keep about 2^41.
	MinFloodingGap = 30

	// MaxKeyHolders bounds the number of key holders whose smudging noise is
	// summed in one key switch. NewParams checks that T times that much noise
	// still decrypts correctly at the level where key switches happen, one
	// modulus below the top (8 standard deviations of the summed noise: a
	// failure probability below 2^−40 over all coefficients).
	MaxKeyHolders = 64

	// smudgingBoundStd is the truncation bound of the smudging Gaussian in
	// standard deviations. Lattigo v5.0.7 corrupts samples above the smallest
	// ciphertext prime, so 6σ must stay below it (notes/privacy.md, pitfall 1).
	smudgingBoundStd = 6

	// decryptTailStd is how many standard deviations of the summed smudging
	// noise the decryption check allows for.
	decryptTailStd = 8
)

// maxLogQP is the largest log2(QP) for 128-bit security with uniform ternary
// secrets at N = 2^logN, from the HomomorphicEncryption.org standard (2018),
// table 1. Lattigo does not check security; NewParams does.
func maxLogQP(logN int) (float64, bool) {
	switch logN {
	case 10:
		return 27, true
	case 11:
		return 54, true
	case 12:
		return 109, true
	case 13:
		return 218, true
	case 14:
		return 438, true
	case 15:
		return 881, true
	}
	return 0, false
}

// ParamsLiteral is the plain description of a parameter set. All parties of a
// study must use the same one. Validate it with NewParams.
type ParamsLiteral struct {
	LogN             int
	LogQ, LogP       []int
	PlaintextModulus uint64
	SmudgingSigma    float64 // per key holder, for key switching
}

// DefaultParams is MedX's parameter set: N = 2^13 (8192 slots), a 3×54-bit
// ciphertext modulus with one 55-bit special prime (LogQP 217, 128-bit secure),
// plaintext modulus T = 1125899906990081 (a prime ≈ 2^50 with T ≡ 1 mod 2^14,
// so every slot is usable) and smudging σ = 2^50 per key holder (6σ ≈ 2^52.6
// below every 54-bit prime).
func DefaultParams() ParamsLiteral {
	return ParamsLiteral{
		LogN:             13,
		LogQ:             []int{54, 54, 54},
		LogP:             []int{55},
		PlaintextModulus: 1125899906990081,
		SmudgingSigma:    1 << 50,
	}
}

// Params is a validated, immutable parameter set. Copies share the same
// state; the zero Params is invalid and every function refuses it.
type Params struct {
	s *paramsState
}

type paramsState struct {
	lit         ParamsLiteral
	he          heint.Parameters
	fingerprint [8]byte
	level       int // level at which contributions are encrypted
	sealLevel   int // level of selected (sealed) ciphertexts, key switches and results
	smudging    ring.DiscreteGaussian
	zeroSK      *rlwe.SecretKey

	// Lattigo encoders and protocols hold scratch buffers and are not safe
	// for concurrent use: each call borrows its own from these pools.
	encoders sync.Pool // *heint.Encoder
	evals    sync.Pool // *heint.Evaluator (no evaluation keys: plaintext products and rescaling only)
	cks      sync.Pool // *mhe.KeySwitchProtocol
	pcks     sync.Pool // *mhe.PublicKeySwitchProtocol
	ckg      sync.Pool // *mhe.PublicKeyGenProtocol
}

// NewParams validates lit and builds the parameters. It refuses a literal that
// is not 128-bit secure (log2 QP above the HE-standard bound for N), a
// plaintext modulus T that is not a prime ≡ 1 mod 2N below the first
// ciphertext prime, a smudging σ below MinSmudgingSigma or whose 6σ bound is
// not below every ciphertext prime, and a modulus too small to decrypt after
// MaxKeyHolders key holders have each added their smudging noise.
func NewParams(lit ParamsLiteral) (Params, error) {
	bad := func(format string, a ...any) (Params, error) {
		return Params{}, fmt.Errorf("%w: %s", ErrInvalidParams, fmt.Sprintf(format, a...))
	}
	limit, ok := maxLogQP(lit.LogN)
	if !ok {
		return bad("LogN %d outside the supported range 10..15", lit.LogN)
	}
	if len(lit.LogQ) == 0 {
		return bad("LogQ is empty")
	}
	t := lit.PlaintextModulus
	twoN := uint64(2) << lit.LogN
	if t < 3 || !new(big.Int).SetUint64(t).ProbablyPrime(32) {
		return bad("plaintext modulus %d is not an odd prime", t)
	}
	if t%twoN != 1 {
		return bad("plaintext modulus %d is not 1 mod 2N = %d: fewer than N slots would be usable", t, twoN)
	}
	sigma := lit.SmudgingSigma
	if math.IsNaN(sigma) || math.IsInf(sigma, 0) || sigma < MinSmudgingSigma {
		return bad("smudging sigma %g is below the minimum 2^40", sigma)
	}
	hp, err := heint.NewParametersFromLiteral(heint.ParametersLiteral{
		LogN:             lit.LogN,
		LogQ:             append([]int(nil), lit.LogQ...),
		LogP:             append([]int(nil), lit.LogP...),
		PlaintextModulus: t,
	})
	if err != nil {
		return bad("%v", err)
	}
	if hp.LogQP() > limit {
		return bad("log2(QP) = %.2f exceeds %.0f, the 128-bit security bound for N = 2^%d", hp.LogQP(), limit, lit.LogN)
	}
	if hp.MaxSlots() != hp.N() {
		return bad("only %d of %d slots usable", hp.MaxSlots(), hp.N())
	}
	minQ := hp.Q()[0]
	for _, q := range hp.Q() {
		minQ = min(minQ, q)
	}
	// The collective decryption protocol widens σ by the fresh-encryption
	// noise (mhe.NewKeySwitchProtocol); check the wider of the two.
	fresh := hp.NoiseFreshSK()
	effective := math.Sqrt(sigma*sigma + fresh*fresh)
	if smudgingBoundStd*effective >= float64(minQ) {
		return bad("smudging bound 6σ = 2^%.2f is not below the smallest ciphertext prime 2^%.2f (lattigo would corrupt samples)",
			math.Log2(smudgingBoundStd*effective), math.Log2(float64(minQ)))
	}
	if hp.MaxLevel() < 1 {
		return bad("LogQ has %d prime, need at least 2: the selector before every key switch drops one", len(lit.LogQ))
	}
	level := hp.MaxLevel()
	sealLevel := level - 1
	// Flooding: contributions (at most MaxKeyHolders custodians plus as many
	// noise shares) are summed, multiplied by a 0/1 selector whose
	// coefficients are about uniform modulo T, and divided by the top prime.
	// The smudging σ must dwarf what is left.
	n := float64(hp.N())
	sumStd := hp.NoiseFreshPK() * math.Sqrt(2*MaxKeyHolders)
	sealedStd := sumStd*math.Sqrt(n)*float64(t)/math.Sqrt(12)/float64(hp.Q()[level]) + math.Sqrt(n/12)
	if gap := math.Log2(sigma) - math.Log2(sealedStd); gap < MinFloodingGap {
		return bad("smudging σ = 2^%.1f floods a selected ciphertext's noise (about 2^%.1f) by only %.1f bits, need %d (raise σ or the top prime)",
			math.Log2(sigma), math.Log2(sealedStd), gap, MinFloodingGap)
	}
	// The selector product itself must still decrypt before the division.
	if need := math.Log2(float64(t)) + math.Log2(decryptTailStd*sumStd*math.Sqrt(n)*float64(t)) + 1; need >= logQAt(hp, level) {
		return bad("ciphertext modulus 2^%.1f too small for the selector product (needs 2^%.1f)", logQAt(hp, level), need)
	}
	// Decryption after a key switch needs T·|noise| < Q/2 at the sealed
	// level; the noise is the sum of MaxKeyHolders smudging samples.
	noise := decryptTailStd*effective*math.Sqrt(MaxKeyHolders) + decryptTailStd*sealedStd
	if need := math.Log2(float64(t)) + math.Log2(noise) + 1; need >= logQAt(hp, sealLevel) {
		return bad("ciphertext modulus 2^%.1f below the top prime too small: T times the smudging noise of %d key holders needs 2^%.1f",
			logQAt(hp, sealLevel), MaxKeyHolders, need)
	}

	s := &paramsState{
		lit: ParamsLiteral{
			LogN:             lit.LogN,
			LogQ:             append([]int(nil), lit.LogQ...),
			LogP:             append([]int(nil), lit.LogP...),
			PlaintextModulus: t,
			SmudgingSigma:    sigma,
		},
		he:        hp,
		level:     level,
		sealLevel: sealLevel,
		smudging:  ring.DiscreteGaussian{Sigma: sigma, Bound: smudgingBoundStd * sigma},
		zeroSK:    rlwe.NewSecretKey(hp),
	}
	s.fingerprint = fingerprint(hp, sigma)

	baseEnc := heint.NewEncoder(hp)
	baseEval := heint.NewEvaluator(hp, nil)
	baseCKS, err := mhe.NewKeySwitchProtocol(hp, s.smudging)
	if err != nil {
		return bad("key-switch protocol: %v", err)
	}
	basePCKS, err := mhe.NewPublicKeySwitchProtocol(hp, s.smudging)
	if err != nil {
		return bad("public-key-switch protocol: %v", err)
	}
	baseCKG := mhe.NewPublicKeyGenProtocol(hp)
	s.encoders.New = func() any { return baseEnc.ShallowCopy() }
	s.evals.New = func() any { return baseEval.ShallowCopy() }
	s.cks.New = func() any { c := baseCKS.ShallowCopy(); return &c }
	s.pcks.New = func() any { c := basePCKS.ShallowCopy(); return &c }
	s.ckg.New = func() any { c := baseCKG.ShallowCopy(); return &c }
	return Params{s: s}, nil
}

// logQAt is log2 of the ciphertext modulus at level.
func logQAt(hp heint.Parameters, level int) float64 {
	qf, _ := new(big.Float).SetInt(hp.RingQ().ModulusAtLevel[level]).Float64()
	return math.Log2(qf)
}

// fingerprint identifies a parameter set on the wire: the ring degree, every
// prime, T and σ.
func fingerprint(hp heint.Parameters, sigma float64) [8]byte {
	h := sha256.New()
	h.Write([]byte("medx/privacy/params/v1"))
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(hp.LogN()))
	put(uint64(len(hp.Q())))
	for _, q := range hp.Q() {
		put(q)
	}
	put(uint64(len(hp.P())))
	for _, p := range hp.P() {
		put(p)
	}
	put(hp.PlaintextModulus())
	put(math.Float64bits(sigma))
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Slots is the number of slots of one ciphertext (N), the largest Spec.
func (p Params) Slots() int {
	if p.s == nil {
		return 0
	}
	return p.s.he.MaxSlots()
}

// PlaintextModulus is T: every total is computed modulo T and decoded into
// (−T/2, T/2].
func (p Params) PlaintextModulus() uint64 {
	if p.s == nil {
		return 0
	}
	return p.s.he.PlaintextModulus()
}

// LogQP is log2 of the full modulus QP, the figure that sets security
// (at most 218 for 128 bits at N = 2^13).
func (p Params) LogQP() float64 {
	if p.s == nil {
		return 0
	}
	return p.s.he.LogQP()
}

// Literal returns a copy of the literal the parameters were built from.
func (p Params) Literal() ParamsLiteral {
	if p.s == nil {
		return ParamsLiteral{}
	}
	l := p.s.lit
	l.LogQ = append([]int(nil), l.LogQ...)
	l.LogP = append([]int(nil), l.LogP...)
	return l
}

// SmudgingBound is the truncation bound (6σ) of each key holder's smudging
// noise; it is below MinModulus.
func (p Params) SmudgingBound() float64 {
	if p.s == nil {
		return 0
	}
	return p.s.smudging.Bound
}

// Moduli returns the ciphertext primes q_i (Q chain) and the special primes (P).
func (p Params) Moduli() (q, pp []uint64) {
	if p.s == nil {
		return nil, nil
	}
	return p.s.he.Q(), p.s.he.P()
}

// Equal reports whether p and o describe the same parameter set.
func (p Params) Equal(o Params) bool {
	if p.s == nil || o.s == nil {
		return p.s == o.s
	}
	return p.s.fingerprint == o.s.fingerprint
}

func (p Params) check() error {
	if p.s == nil {
		return fmt.Errorf("%w: zero Params; build them with NewParams", ErrInvalidParams)
	}
	return nil
}

func (s *paramsState) encoder() *heint.Encoder     { return s.encoders.Get().(*heint.Encoder) }
func (s *paramsState) evaluator() *heint.Evaluator { return s.evals.Get().(*heint.Evaluator) }
func (s *paramsState) keySwitch() *mhe.KeySwitchProtocol {
	return s.cks.Get().(*mhe.KeySwitchProtocol)
}
func (s *paramsState) publicKeySwitch() *mhe.PublicKeySwitchProtocol {
	return s.pcks.Get().(*mhe.PublicKeySwitchProtocol)
}
func (s *paramsState) publicKeyGen() *mhe.PublicKeyGenProtocol {
	return s.ckg.Get().(*mhe.PublicKeyGenProtocol)
}
