package privacy

import (
	"fmt"
	"math"
	"math/big"
)

// SlotKind says whether a slot is count-like (decrypted, noisy, at the gate)
// or a sum (released only after the gate).
type SlotKind int

const (
	// SlotCount is a count-like slot: patients, non-null values, a histogram bin.
	SlotCount SlotKind = iota
	// SlotSum is a sum or a sum of squares.
	SlotSum
)

func (k SlotKind) String() string {
	switch k {
	case SlotCount:
		return "count"
	case SlotSum:
		return "sum"
	default:
		return fmt.Sprintf("SlotKind(%d)", int(k))
	}
}

// SlotSpec describes one slot of a query's aggregate vector.
type SlotSpec struct {
	// Cell is the GROUP BY cell the slot belongs to. Cells are disjoint: a
	// patient contributes to one cell only, so each cell gets the whole
	// epsilon (parallel composition).
	Cell int
	// Group identifies one statistic within the cell (a histogram's bins form
	// one group). The query's epsilon is split equally among a cell's groups.
	Group int
	// Gate is the index of the count-like slot whose suppression suppresses
	// this slot (itself for a count-like slot).
	Gate int
	Kind SlotKind
	// Sensitivity is the L1 sensitivity of the slot's whole group to adding or
	// removing one patient (1 for a count or a histogram). If the slots of a
	// group disagree, the largest is used.
	Sensitivity int64
	// MaxAbs is the largest |contribution| of one patient to the slot.
	MaxAbs int64
}

// Spec is what a query releases and how it is protected.
type Spec struct {
	Slots   []SlotSpec
	Records int64   // upper bound on the number of patients that can contribute (all custodians' rows)
	MinCell int64   // suppression threshold on noisy count-like slots
	Epsilon float64 // spent by this query
	Noise   bool
}

// noiseTailScales is how many noise scales Check reserves for the noise in
// the wrap check: a discrete Laplace sample exceeds 64·b in magnitude with
// probability below 2·e^−64 ≈ 3·10^−28.
const noiseTailScales = 64

// Check refuses, before any work, a spec that is malformed (no slots, more
// slots than Params.Slots, a Gate out of range or not count-like, negative
// Records, MinCell, Sensitivity or MaxAbs, an unknown Kind, a non-finite
// Epsilon, Epsilon <= 0 or a zero Sensitivity with noise on) or whose totals
// could wrap modulo T: for every slot, Records·MaxAbs plus 64 noise scales
// must stay below T/2. Errors wrap ErrInvalidSpec.
func (s Spec) Check(p Params) error {
	if err := p.check(); err != nil {
		return fmt.Errorf("check spec: %w", err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, a...))
	}
	n := len(s.Slots)
	switch {
	case n == 0:
		return bad("no slots")
	case n > p.Slots():
		return bad("%d slots, a ciphertext holds %d", n, p.Slots())
	case s.Records < 0:
		return bad("Records %d is negative", s.Records)
	case s.MinCell < 0:
		return bad("MinCell %d is negative", s.MinCell)
	case math.IsNaN(s.Epsilon) || math.IsInf(s.Epsilon, 0) || s.Epsilon < 0:
		return bad("epsilon %g is not a finite non-negative number", s.Epsilon)
	case s.Noise && s.Epsilon <= 0:
		return bad("epsilon must be positive when noise is on (got %g)", s.Epsilon)
	}
	for i, sl := range s.Slots {
		switch {
		case sl.Kind != SlotCount && sl.Kind != SlotSum:
			return bad("slot %d: unknown kind %d", i, int(sl.Kind))
		case sl.Cell < 0 || sl.Group < 0:
			return bad("slot %d: negative cell or group", i)
		case sl.Gate < 0 || sl.Gate >= n:
			return bad("slot %d: gate %d out of range [0, %d)", i, sl.Gate, n)
		case s.Slots[sl.Gate].Kind != SlotCount:
			return bad("slot %d: gate %d is not a count-like slot", i, sl.Gate)
		case sl.MaxAbs < 0:
			return bad("slot %d: MaxAbs %d is negative", i, sl.MaxAbs)
		case sl.Sensitivity < 0:
			return bad("slot %d: sensitivity %d is negative", i, sl.Sensitivity)
		case s.Noise && sl.Sensitivity == 0:
			return bad("slot %d: sensitivity 0 with noise on would release it unprotected", i)
		}
	}
	half := new(big.Int).SetUint64(p.PlaintextModulus() / 2)
	scales := s.NoiseScales()
	for i, sl := range s.Slots {
		total := new(big.Int).Mul(big.NewInt(s.Records), big.NewInt(sl.MaxAbs))
		tail := math.Ceil(noiseTailScales*scales[i]) + 1
		if tail >= 1<<62 {
			return bad("slot %d: noise scale %g is far too large for the plaintext modulus (raise epsilon)", i, scales[i])
		}
		bound := new(big.Int).Add(total, big.NewInt(int64(tail)))
		if bound.Cmp(half) >= 0 {
			return bad("slot %d: totals could reach Records·MaxAbs = %d·%d = %s plus a noise tail of %.0f, not below T/2 = %s: they would wrap modulo the plaintext modulus (lower Records or MaxAbs, raise epsilon, or split the statistic)",
				i, s.Records, sl.MaxAbs, total, tail, half)
		}
	}
	return nil
}

// NoiseScales is the discrete Laplace scale b of each slot: Δ·g/ε, where Δ is
// the L1 sensitivity of the slot's group, g the number of groups in its cell
// (ε is split equally among them) and ε the query's epsilon. All zero with
// noise off. Meaningful only for a spec that passes Check.
func (s Spec) NoiseScales() []float64 {
	out := make([]float64, len(s.Slots))
	if !s.Noise {
		return out
	}
	type key struct{ cell, group int }
	groupSens := map[key]int64{}
	cellGroups := map[int]int{}
	for _, sl := range s.Slots {
		k := key{sl.Cell, sl.Group}
		if _, ok := groupSens[k]; !ok {
			cellGroups[sl.Cell]++
		}
		groupSens[k] = max(groupSens[k], sl.Sensitivity)
	}
	for i, sl := range s.Slots {
		g := float64(cellGroups[sl.Cell])
		out[i] = float64(groupSens[key{sl.Cell, sl.Group}]) * g / s.Epsilon
	}
	return out
}

// Gate is the small-cell rule applied to the noisy counts: a count-like slot
// whose noisy value is below MinCell is suppressed, and so is every slot whose
// Gate slot is suppressed (transitively). It fails closed: a slot with no
// noisy count, an out-of-range gate, or a noisy count that no honest run can
// produce (see Plausible; the mark of a missing or foreign decryption share)
// is suppressed.
func Gate(spec Spec, noisyCounts []int64) []bool {
	n := len(spec.Slots)
	sup := make([]bool, n)
	scales := spec.NoiseScales()
	for i, sl := range spec.Slots {
		if sl.Kind == SlotCount && (i >= len(noisyCounts) || noisyCounts[i] < spec.MinCell ||
			!plausible(spec.Records, sl.MaxAbs, scales[i], noisyCounts[i])) {
			sup[i] = true
		}
		if sl.Gate < 0 || sl.Gate >= n || spec.Slots[sl.Gate].Kind != SlotCount {
			sup[i] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for i, sl := range spec.Slots {
			if !sup[i] && sup[sl.Gate] {
				sup[i] = true
				changed = true
			}
		}
	}
	return sup
}

// Plausible reports whether every count-like slot of noisyCounts lies in the
// range an honest run can produce: between minus 64 noise scales and
// Records·MaxAbs plus 64 noise scales. Decrypting with a key holder's share
// missing gives values spread over the whole plaintext space, which fail this
// test with overwhelming probability.
func Plausible(spec Spec, noisyCounts []int64) bool {
	if len(noisyCounts) < len(spec.Slots) {
		return false
	}
	scales := spec.NoiseScales()
	for i, sl := range spec.Slots {
		if sl.Kind == SlotCount && !plausible(spec.Records, sl.MaxAbs, scales[i], noisyCounts[i]) {
			return false
		}
	}
	return true
}

func plausible(records, maxAbs int64, scale float64, v int64) bool {
	if math.IsNaN(scale) || records < 0 || maxAbs < 0 {
		return false
	}
	tail := math.Ceil(noiseTailScales*scale) + 1
	lo := new(big.Float).SetFloat64(-tail)
	hi := new(big.Float).SetInt(new(big.Int).Mul(big.NewInt(records), big.NewInt(maxAbs)))
	hi.Add(hi, big.NewFloat(tail))
	x := new(big.Float).SetInt64(v)
	return x.Cmp(lo) >= 0 && x.Cmp(hi) <= 0
}

// Disclosure is the account of what was applied; it goes to the sponsor and
// onto the ledger (canonical JSON).
type Disclosure struct {
	MinCell         int64     `json:"minCell"`
	SuppressedSlots []int     `json:"suppressedSlots"`
	Mechanism       string    `json:"mechanism"` // "discrete-laplace" or "none"
	NoiseScales     []float64 `json:"noiseScales"`
	EpsilonSpent    float64   `json:"epsilonSpent"`
	EpsilonLeft     float64   `json:"epsilonLeft"` // filled in by the caller from the ledger
	KeyHolders      int       `json:"keyHolders"`
	// Differencing is the account of the differencing check (see
	// CheckDifferencing), filled in by the caller that ran it; nil when no
	// check ran (RunLocal, which sees a single query).
	Differencing *Differencing `json:"differencing,omitempty"`
}

// Mechanism names.
const (
	MechanismDiscreteLaplace = "discrete-laplace"
	MechanismNone            = "none"
)

// NewDisclosure accounts for a release of spec with the given suppression
// mask and number of key holders. Slices are never nil, so the JSON is stable.
// With noise off nothing is spent: the mechanism is "none" and EpsilonSpent 0.
// EpsilonLeft is left for the caller.
func NewDisclosure(spec Spec, suppressed []bool, keyHolders int) Disclosure {
	d := Disclosure{
		MinCell:         spec.MinCell,
		SuppressedSlots: []int{},
		Mechanism:       MechanismNone,
		NoiseScales:     spec.NoiseScales(),
		KeyHolders:      keyHolders,
	}
	for i, s := range suppressed {
		if s {
			d.SuppressedSlots = append(d.SuppressedSlots, i)
		}
	}
	if spec.Noise {
		d.Mechanism = MechanismDiscreteLaplace
		d.EpsilonSpent = spec.Epsilon
	}
	return d
}
