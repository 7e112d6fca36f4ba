package privacy

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
)

// Message kinds (the fourth byte of every message).
const (
	kindContribution  byte = 'C' // a contributor's or key holder's vector under the collective key (top level)
	kindGate          byte = 'G' // the sum's count-like slots, selected (sealed level)
	kindRelease       byte = 'R' // the sum's released slots, selected (sealed level)
	kindSponsorCT     byte = 'S' // the release re-encrypted to a sponsor key (sealed level)
	kindDecryptShare  byte = 'd' // collective-decryption share (gate)
	kindSwitchShare   byte = 'w' // public-key-switch share (release)
	kindPKShare       byte = 'k' // collective public-key share (ceremony)
	kindPublicKey     byte = 'P' // collective public key
	kindSponsorPublic byte = 'Q' // a sponsor's public key
	kindSponsorSecret byte = 's' // a sponsor's key pair
	kindKeyHolder     byte = 'h' // a key holder's secret share
	kindNoiseShare    byte = 'n' // a key holder's noise share for one query
)

const (
	wireVersion = 1
	headerLen   = 3 + 1 + 1 + 8
	digestLen   = 16
)

func kindName(k byte) string {
	switch k {
	case kindContribution:
		return "contribution ciphertext"
	case kindGate:
		return "gate ciphertext"
	case kindRelease:
		return "release ciphertext"
	case kindSponsorCT:
		return "sponsor ciphertext"
	case kindDecryptShare:
		return "decryption share"
	case kindSwitchShare:
		return "key-switch share"
	case kindPKShare:
		return "public-key share"
	case kindPublicKey:
		return "collective public key"
	case kindSponsorPublic:
		return "sponsor public key"
	case kindSponsorSecret:
		return "sponsor key"
	case kindKeyHolder:
		return "key holder"
	case kindNoiseShare:
		return "noise share"
	default:
		return fmt.Sprintf("unknown kind %q", k)
	}
}

// digest names a message inside another one (a share names its ciphertext).
func digest(b []byte) [digestLen]byte {
	sum := sha256.Sum256(b)
	var d [digestLen]byte
	copy(d[:], sum[:])
	return d
}

type writer struct{ b []byte }

func newWriter(p Params, kind byte, size int) *writer {
	w := &writer{b: make([]byte, 0, headerLen+size)}
	w.b = append(w.b, 'M', 'D', 'X', kind, wireVersion)
	w.b = append(w.b, p.s.fingerprint[:]...)
	return w
}

func (w *writer) u8(v byte)    { w.b = append(w.b, v) }
func (w *writer) raw(v []byte) { w.b = append(w.b, v...) }
func (w *writer) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) poly(p ring.Poly) {
	for _, row := range p.Coeffs {
		for _, c := range row {
			w.u64(c)
		}
	}
}

// reduce brings every coefficient of p into [0, q_i). lattigo v5.0.7's
// Gaussian sampler can write a sample as q_i−x without reducing it (a zero
// sample becomes q_i itself, notes/privacy.md pitfall 1), so key-switching
// shares occasionally hold q_i: correct modulo q_i, but not reduced, and the
// decoder rightly refuses unreduced coefficients.
func reduce(p ring.Poly, moduli []uint64) {
	for i, row := range p.Coeffs {
		q := moduli[i]
		for j, c := range row {
			if c >= q {
				row[j] = c % q
			}
		}
	}
}

func (w *writer) qp(p ringqp.Poly) {
	w.poly(p.Q)
	w.poly(p.P)
}

func polySize(n, rows int) int { return n * rows * 8 }

// reader decodes a message; the first error sticks and later reads are no-ops.
type reader struct {
	b    []byte
	off  int
	err  error
	what string
}

// newReader checks the header of b: magic, kind, version and parameters.
func newReader(p Params, b []byte, kind byte) (*reader, error) {
	r := &reader{b: b, what: kindName(kind)}
	if err := p.check(); err != nil {
		return nil, err
	}
	if len(b) < headerLen || b[0] != 'M' || b[1] != 'D' || b[2] != 'X' {
		return nil, fmt.Errorf("%w: %s: not a MedX privacy message (%d bytes)", ErrMalformed, r.what, len(b))
	}
	if b[3] != kind {
		return nil, fmt.Errorf("%w: expected a %s, got a %s", ErrMalformed, r.what, kindName(b[3]))
	}
	if b[4] != wireVersion {
		return nil, fmt.Errorf("%w: %s: unsupported version %d", ErrMalformed, r.what, b[4])
	}
	if [8]byte(b[5:13]) != p.s.fingerprint {
		return nil, fmt.Errorf("%w: %s was made under other parameters", ErrMalformed, r.what)
	}
	r.off = headerLen
	return r, nil
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s", ErrMalformed, r.what, fmt.Sprintf(format, a...))
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail("truncated at byte %d (need %d more)", r.off, n)
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() byte {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16() uint16 {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(v)
}

func (r *reader) digest() [digestLen]byte {
	var d [digestLen]byte
	copy(d[:], r.take(digestLen))
	return d
}

// level reads a ciphertext level and checks that it is want.
func (r *reader) level(want int) int {
	l := int(r.u8())
	if r.err == nil && l != want {
		r.fail("level %d, expected %d", l, want)
	}
	return l
}

// levelOf is the only level a ciphertext of kind may have: contributions are
// made at the top level; everything after the selector is one level below.
func levelOf(p Params, kind byte) int {
	if kind == kindContribution {
		return p.s.level
	}
	return p.s.sealLevel
}

// fill reads the coefficients of an allocated polynomial, one row per modulus,
// refusing any coefficient that is not reduced.
func (r *reader) fill(p ring.Poly, moduli []uint64) {
	if r.err != nil {
		return
	}
	if len(p.Coeffs) != len(moduli) {
		r.fail("internal: polynomial with %d rows for %d moduli", len(p.Coeffs), len(moduli))
		return
	}
	for i, row := range p.Coeffs {
		src := r.take(8 * len(row))
		if src == nil {
			return
		}
		q := moduli[i]
		for j := range row {
			c := binary.LittleEndian.Uint64(src[8*j:])
			if c >= q {
				r.fail("coefficient %d of row %d is not reduced modulo %d", j, i, q)
				return
			}
			row[j] = c
		}
	}
}

func (r *reader) fillQP(p Params, v ringqp.Poly) {
	q, pp := p.s.he.Q(), p.s.he.P()
	r.fill(v.Q, q[:v.Q.Level()+1])
	if len(pp) > 0 {
		r.fill(v.P, pp[:v.P.Level()+1])
	}
}

// end checks that nothing follows the message.
func (r *reader) end() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
	return r.err
}

// Ciphertexts.

type ciphertext struct {
	kind    byte
	ct      *rlwe.Ciphertext
	sponsor [digestLen]byte // kindSponsorCT only: digest of the sponsor public key
}

func marshalCiphertext(p Params, c ciphertext) []byte {
	n := p.s.he.N()
	rows := c.ct.Level() + 1
	w := newWriter(p, c.kind, 1+digestLen+2*polySize(n, rows))
	w.u8(byte(c.ct.Level()))
	if c.kind == kindSponsorCT {
		w.raw(c.sponsor[:])
	}
	w.poly(c.ct.Value[0])
	w.poly(c.ct.Value[1])
	return w.b
}

func unmarshalCiphertext(p Params, b []byte, kind byte) (ciphertext, error) {
	c := ciphertext{kind: kind}
	if err := p.check(); err != nil {
		return ciphertext{}, err
	}
	c.ct = newCiphertext(p, levelOf(p, kind))
	if err := readCiphertext(p, b, kind, c.ct, &c.sponsor); err != nil {
		return ciphertext{}, err
	}
	return c, nil
}

// readCiphertext decodes b, a ciphertext message of kind, into ct (allocated
// at the kind's level) and, for a sponsor ciphertext, its sponsor digest.
func readCiphertext(p Params, b []byte, kind byte, ct *rlwe.Ciphertext, sponsor *[digestLen]byte) error {
	r, err := newReader(p, b, kind)
	if err != nil {
		return err
	}
	level := r.level(levelOf(p, kind))
	if kind == kindSponsorCT {
		d := r.digest()
		if sponsor != nil {
			*sponsor = d
		}
	}
	if r.err != nil {
		return r.err
	}
	q := p.s.he.Q()[:level+1]
	r.fill(ct.Value[0], q)
	r.fill(ct.Value[1], q)
	return r.end()
}

// dedupBytes is how much of a contribution Add compares to catch one given
// twice: the level byte and the first 8 coefficients.
const dedupBytes = 64

// newCiphertext allocates a degree-1 ciphertext at level with the metadata of
// every MedX ciphertext (default scale, batched, NTT). Selected ciphertexts
// have the default scale too: the selector is encoded with the scale that the
// modulus drop divides out (see selectSlots), so no metadata travels.
func newCiphertext(p Params, level int) *rlwe.Ciphertext {
	return heint.NewCiphertext(p.s.he, 1, level)
}
