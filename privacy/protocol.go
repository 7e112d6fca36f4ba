package privacy

import (
	"bytes"
	"fmt"
	"math/bits"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/ring"
)

func checkKey(p Params, pk *PublicKey) error {
	if err := p.check(); err != nil {
		return err
	}
	if pk == nil {
		return fmt.Errorf("%w: nil public key", ErrMalformed)
	}
	if !p.Equal(pk.p) {
		return fmt.Errorf("%w: the public key belongs to other parameters", ErrInvalidParams)
	}
	return nil
}

// checkVector refuses a contributor vector that does not fit spec: wrong
// length, a negative count, or a value beyond Records·MaxAbs in magnitude.
func checkVector(spec Spec, vec []int64) error {
	if len(vec) != len(spec.Slots) {
		return fmt.Errorf("%w: vector has %d values for %d slots", ErrInvalidSpec, len(vec), len(spec.Slots))
	}
	for i, v := range vec {
		sl := spec.Slots[i]
		if sl.Kind == SlotCount && v < 0 {
			return fmt.Errorf("%w: slot %d is count-like but holds %d", ErrInvalidSpec, i, v)
		}
		if !within(v, spec.Records, sl.MaxAbs) {
			return fmt.Errorf("%w: slot %d holds %d, beyond Records·MaxAbs = %d·%d", ErrInvalidSpec, i, v, spec.Records, sl.MaxAbs)
		}
	}
	return nil
}

// within reports |v| <= records·maxAbs without overflow (both non-negative).
func within(v, records, maxAbs int64) bool {
	hi, lo := bits.Mul64(uint64(records), uint64(maxAbs))
	if hi != 0 {
		return true
	}
	a := uint64(v)
	if v < 0 {
		a = uint64(-(v + 1)) + 1
	}
	return a <= lo
}

func checkMask(spec Spec, suppressed []bool) error {
	if len(suppressed) != len(spec.Slots) {
		return fmt.Errorf("%w: suppression mask has %d entries for %d slots", ErrInvalidSpec, len(suppressed), len(spec.Slots))
	}
	return nil
}

// Encrypt is a contributor's one message for a query: its whole vector (one
// value per slot of spec) encrypted under the collective key. The exchange
// sums every contributor's and key holder's message with Add and then
// selects what may be decrypted: the count-like slots for the gate
// (SelectCounts), the unsuppressed slots for the sponsor (SelectRelease).
func Encrypt(p Params, pk *PublicKey, spec Spec, vec []int64) ([]byte, error) {
	return encryptChecked("encrypt", p, pk, spec, vec, func(int) bool { return true })
}

// EncryptCounts encrypts only vec's count-like slots (sum slots zero).
//
// Deprecated: since one message per party serves both rounds, use Encrypt;
// the exchange selects the count-like slots itself (SelectCounts).
func EncryptCounts(p Params, pk *PublicKey, spec Spec, vec []int64) ([]byte, error) {
	return encryptChecked("encrypt counts", p, pk, spec, vec, func(i int) bool { return spec.Slots[i].Kind == SlotCount })
}

// EncryptPayload encrypts vec with the slots marked in suppressed zeroed at
// the source; a nil mask suppresses nothing.
//
// Deprecated: use Encrypt; SelectRelease withholds suppressed slots at the
// exchange whatever the contributors sent.
func EncryptPayload(p Params, pk *PublicKey, spec Spec, vec []int64, suppressed []bool) ([]byte, error) {
	if suppressed == nil {
		suppressed = make([]bool, len(spec.Slots))
	}
	if err := checkMask(spec, suppressed); err != nil {
		return nil, fmt.Errorf("encrypt payload: %w", err)
	}
	return encryptChecked("encrypt payload", p, pk, spec, vec, func(i int) bool { return !suppressed[i] })
}

func encryptChecked(what string, p Params, pk *PublicKey, spec Spec, vec []int64, keep func(int) bool) ([]byte, error) {
	if err := checkKey(p, pk); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := spec.Check(p); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkVector(spec, vec); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	vals := make([]int64, len(vec))
	for i, v := range vec {
		if keep(i) {
			vals[i] = v
		}
	}
	b, err := encryptVector(p, pk, vals)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// encryptVector encodes vals (one per slot, the rest zero) and encrypts them
// under the collective key at the top level: a contribution.
func encryptVector(p Params, pk *PublicKey, vals []int64) ([]byte, error) {
	s := p.s
	full := make([]int64, s.he.MaxSlots())
	copy(full, vals)
	pt := heint.NewPlaintext(s.he, s.level)
	ecd := s.encoder()
	err := ecd.Encode(full, pt)
	s.encoders.Put(ecd)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	ct := newCiphertext(p, s.level)
	enc := pk.enc.Get().(*rlwe.Encryptor)
	err = enc.Encrypt(pt, ct)
	pk.enc.Put(enc)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return marshalCiphertext(p, ciphertext{kind: kindContribution, ct: ct}), nil
}

// SelectCounts is the exchange's gate step: from sum (the Add of every
// contribution) it keeps only spec's count-like slots and returns the gate
// ciphertext that the key holders decrypt (DecryptShare). Sums, and every slot
// beyond the layout, are zero in it, whatever the contributors sent: the gate
// never decrypts a sum.
func SelectCounts(p Params, spec Spec, sum []byte) ([]byte, error) {
	if err := spec.Check(p); err != nil {
		return nil, fmt.Errorf("select counts: %w", err)
	}
	keep := make([]bool, len(spec.Slots))
	for i, sl := range spec.Slots {
		keep[i] = sl.Kind == SlotCount
	}
	b, err := selectSlots(p, sum, keep, kindGate)
	if err != nil {
		return nil, fmt.Errorf("select counts: %w", err)
	}
	return b, nil
}

// SelectRelease is the exchange's release step: from sum it keeps only the
// slots of spec's layout that the gate did not suppress and returns the
// release ciphertext that the key holders switch to the sponsor
// (SwitchShare). Suppressed slots and every slot beyond the layout are zero
// in it, whatever the contributors sent, so no unfolded or per-patient vector
// can reach the sponsor: only the layout's aggregate slots can.
func SelectRelease(p Params, spec Spec, suppressed []bool, sum []byte) ([]byte, error) {
	if err := spec.Check(p); err != nil {
		return nil, fmt.Errorf("select release: %w", err)
	}
	if err := checkMask(spec, suppressed); err != nil {
		return nil, fmt.Errorf("select release: %w", err)
	}
	keep := make([]bool, len(spec.Slots))
	for i := range keep {
		keep[i] = !suppressed[i]
	}
	b, err := selectSlots(p, sum, keep, kindRelease)
	if err != nil {
		return nil, fmt.Errorf("select release: %w", err)
	}
	return b, nil
}

// selectSlots multiplies the contribution sum by the 0/1 plaintext selector
// keep (slots past len(keep) are 0) and drops the top modulus. The product's
// noise is about √N·T times the sum's (the selector's coefficients are about
// uniform modulo T); dividing by the top prime brings it back to a few bits,
// far below the key holders' smudging (NewParams checks the gap). The
// selector is encoded with scale q_top, which the modulus drop divides out,
// so the result has the default scale like every other MedX ciphertext.
func selectSlots(p Params, sum []byte, keep []bool, kind byte) ([]byte, error) {
	c, err := unmarshalCiphertext(p, sum, kindContribution)
	if err != nil {
		return nil, err
	}
	s := p.s
	mask := make([]uint64, s.he.MaxSlots())
	for i, k := range keep {
		if k {
			mask[i] = 1
		}
	}
	pt := heint.NewPlaintext(s.he, s.level)
	pt.Scale = s.he.NewScale(s.he.Q()[s.level])
	ecd := s.encoder()
	err = ecd.Encode(mask, pt)
	s.encoders.Put(ecd)
	if err != nil {
		return nil, fmt.Errorf("encode selector: %w", err)
	}
	eval := s.evaluator()
	defer s.evals.Put(eval)
	prod := newCiphertext(p, s.level)
	if err := eval.Mul(c.ct, pt, prod); err != nil {
		return nil, fmt.Errorf("apply selector: %w", err)
	}
	out := newCiphertext(p, s.sealLevel)
	if err := eval.Rescale(prod, out); err != nil {
		return nil, fmt.Errorf("drop modulus: %w", err)
	}
	return marshalCiphertext(p, ciphertext{kind: kind, ct: out}), nil
}

// DecryptShare is the key holder's share of the collective decryption of the
// gate ciphertext (SelectCounts: the count-like slots of the sum): a key
// switch to the zero key, flooded with smudging noise so that it reveals
// nothing about the holder's secret. It refuses anything but a gate
// ciphertext: a contribution or a sum of contributions, which may hold sums,
// is never decrypted.
func (k *KeyHolder) DecryptShare(ct []byte) ([]byte, error) {
	c, err := unmarshalCiphertext(k.p, ct, kindGate)
	if err != nil {
		return nil, fmt.Errorf("decrypt share of %s: %w", k.id, err)
	}
	s := k.p.s
	cks := s.keySwitch()
	share := cks.AllocateShare(c.ct.Level())
	cks.GenShare(k.sk, s.zeroSK, c.ct, &share)
	s.cks.Put(cks)
	reduce(share.Value, s.he.Q())
	w := newWriter(k.p, kindDecryptShare, 3+len(k.id)+digestLen+polySize(s.he.N(), c.ct.Level()+1))
	w.u8(byte(c.ct.Level()))
	w.u16(uint16(len(k.id)))
	w.raw([]byte(k.id))
	d := digest(ct)
	w.raw(d[:])
	w.poly(share.Value)
	return w.b, nil
}

// SwitchShare is the key holder's share of the re-encryption of the release
// ciphertext (SelectRelease) to the sponsor's public key (collective
// public-key switch, with smudging noise). The caller must make sure
// sponsorPub is the sponsor's authentic key. It refuses anything but a
// release ciphertext: a contribution or an unselected sum never reaches the
// sponsor.
func (k *KeyHolder) SwitchShare(ct []byte, sponsorPub []byte) ([]byte, error) {
	c, err := unmarshalCiphertext(k.p, ct, kindRelease)
	if err != nil {
		return nil, fmt.Errorf("switch share of %s: %w", k.id, err)
	}
	spk, sid, err := k.sponsorKey(sponsorPub)
	if err != nil {
		return nil, fmt.Errorf("switch share of %s: %w", k.id, err)
	}
	s := k.p.s
	pcks := s.publicKeySwitch()
	share := pcks.AllocateShare(c.ct.Level())
	pcks.GenShare(k.sk, spk, c.ct, &share)
	s.pcks.Put(pcks)
	reduce(share.Value[0], s.he.Q())
	reduce(share.Value[1], s.he.Q())
	w := newWriter(k.p, kindSwitchShare, 3+len(k.id)+2*digestLen+2*polySize(s.he.N(), c.ct.Level()+1))
	w.u8(byte(c.ct.Level()))
	w.u16(uint16(len(k.id)))
	w.raw([]byte(k.id))
	d := digest(ct)
	w.raw(d[:])
	w.raw(sid[:])
	w.poly(share.Value[0])
	w.poly(share.Value[1])
	return w.b, nil
}

// sponsorKey parses a sponsor public key, reusing the last one parsed when
// the bytes are the same.
func (k *KeyHolder) sponsorKey(b []byte) (*rlwe.PublicKey, [digestLen]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sponsor.pk != nil && bytes.Equal(k.sponsor.raw, b) {
		return k.sponsor.pk, k.sponsor.id, nil
	}
	pk, id, err := parseSponsorPublic(k.p, b)
	if err != nil {
		return nil, id, err
	}
	k.sponsor.raw, k.sponsor.pk, k.sponsor.id = bytes.Clone(b), pk, id
	return pk, id, nil
}

// Add sums contributions (Encrypt, NoiseShare.Encrypt) into one
// contribution-kind ciphertext. It refuses a ciphertext given twice, and
// anything but contributions.
func Add(p Params, cts ...[]byte) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("add: %w", err)
	}
	if len(cts) == 0 {
		return nil, fmt.Errorf("add: %w: no ciphertexts", ErrMalformed)
	}
	// Two fresh encryptions differ in their first coefficients with
	// overwhelming probability: comparing those catches a message given
	// twice without hashing every byte.
	seen := make(map[string]int, len(cts))
	var acc *rlwe.Ciphertext
	ringQ := p.s.he.RingQ().AtLevel(p.s.level)
	next := newCiphertext(p, p.s.level)
	for i, b := range cts {
		if err := readCiphertext(p, b, kindContribution, next, nil); err != nil {
			return nil, fmt.Errorf("add: ciphertext %d: %w", i, err)
		}
		key := string(b[headerLen : headerLen+1+dedupBytes])
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("add: %w: ciphertext %d repeats ciphertext %d", ErrMalformed, i, j)
		}
		seen[key] = i
		if acc == nil {
			acc, next = next, newCiphertext(p, p.s.level)
			continue
		}
		// All contributions share level and metadata, so the sum is the
		// sum of their polynomials.
		ringQ.Add(acc.Value[0], next.Value[0], acc.Value[0])
		ringQ.Add(acc.Value[1], next.Value[1], acc.Value[1])
	}
	return marshalCiphertext(p, ciphertext{kind: kindContribution, ct: acc}), nil
}

// shareHeader is what every decryption or switch share starts with.
type shareHeader struct {
	holder  string
	ct      [digestLen]byte
	sponsor [digestLen]byte
}

func readShareHeader(p Params, r *reader, withSponsor bool) shareHeader {
	var h shareHeader
	r.level(p.s.sealLevel)
	h.holder = string(r.take(int(r.u16())))
	h.ct = r.digest()
	if withSponsor {
		h.sponsor = r.digest()
	}
	if r.err == nil {
		if err := checkID(h.holder); err != nil {
			r.fail("bad key holder id")
		}
	}
	return h
}

func checkShareCount(n int) error {
	if n == 0 || n > MaxKeyHolders {
		return fmt.Errorf("%w: %d shares, need 1 to %d", ErrMalformed, n, MaxKeyHolders)
	}
	return nil
}

// CombineDecrypt combines every key holder's DecryptShare of the gate
// ciphertext ct (SelectCounts) and returns its first n slots, centred in (−T/2, T/2]: the
// noisy counts. A share made for another ciphertext, or two shares from one
// key holder, are refused. With a key holder's share missing the result is
// random-looking; Gate suppresses such implausible counts.
func CombineDecrypt(p Params, ct []byte, shares [][]byte, n int) ([]int64, error) {
	c, err := unmarshalCiphertext(p, ct, kindGate)
	if err != nil {
		return nil, fmt.Errorf("combine decrypt: %w", err)
	}
	if n < 0 || n > p.Slots() {
		return nil, fmt.Errorf("combine decrypt: %w: %d slots requested, a ciphertext holds %d", ErrInvalidSpec, n, p.Slots())
	}
	if err := checkShareCount(len(shares)); err != nil {
		return nil, fmt.Errorf("combine decrypt: %w", err)
	}
	s := p.s
	level := c.ct.Level()
	want := digest(ct)
	holders := make(map[string]bool, len(shares))
	cks := s.keySwitch()
	defer s.cks.Put(cks)
	agg := cks.AllocateShare(level)
	share := cks.AllocateShare(level)
	for i, b := range shares {
		r, err := newReader(p, b, kindDecryptShare)
		if err != nil {
			return nil, fmt.Errorf("combine decrypt: share %d: %w", i, err)
		}
		h := readShareHeader(p, r, false)
		r.fill(share.Value, s.he.Q()[:level+1])
		if err := r.end(); err != nil {
			return nil, fmt.Errorf("combine decrypt: share %d: %w", i, err)
		}
		if err := checkShare(h, want, holders); err != nil {
			return nil, fmt.Errorf("combine decrypt: share %d: %w", i, err)
		}
		addPoly(s.he.RingQ().AtLevel(level), &agg.Value, share.Value, i == 0)
	}
	out := newCiphertext(p, level)
	cks.KeySwitch(c.ct, agg, out)
	pt := rlwe.NewDecryptor(s.he, s.zeroSK).DecryptNew(out)
	vals, err := decodeCentred(p, pt, n)
	if err != nil {
		return nil, fmt.Errorf("combine decrypt: %w", err)
	}
	return vals, nil
}

func checkShare(h shareHeader, want [digestLen]byte, holders map[string]bool) error {
	if h.ct != want {
		return fmt.Errorf("%w: share of %s was made for another ciphertext", ErrWrongKey, h.holder)
	}
	if holders[h.holder] {
		return fmt.Errorf("%w: second share from key holder %s", ErrMalformed, h.holder)
	}
	holders[h.holder] = true
	return nil
}

func addPoly(r *ring.Ring, acc *ring.Poly, v ring.Poly, first bool) {
	if first {
		acc.Copy(v)
		return
	}
	r.Add(*acc, v, *acc)
}

// CombineSwitch combines every key holder's SwitchShare of the release
// ciphertext ct into a ciphertext that only the sponsor can decrypt. Shares
// must all be for ct and for the same sponsor key, one per key holder.
func CombineSwitch(p Params, ct []byte, shares [][]byte) ([]byte, error) {
	c, err := unmarshalCiphertext(p, ct, kindRelease)
	if err != nil {
		return nil, fmt.Errorf("combine switch: %w", err)
	}
	if err := checkShareCount(len(shares)); err != nil {
		return nil, fmt.Errorf("combine switch: %w", err)
	}
	s := p.s
	level := c.ct.Level()
	ringQ := s.he.RingQ().AtLevel(level)
	want := digest(ct)
	holders := make(map[string]bool, len(shares))
	pcks := s.publicKeySwitch()
	defer s.pcks.Put(pcks)
	agg := pcks.AllocateShare(level)
	share := pcks.AllocateShare(level)
	var sponsor [digestLen]byte
	for i, b := range shares {
		r, err := newReader(p, b, kindSwitchShare)
		if err != nil {
			return nil, fmt.Errorf("combine switch: share %d: %w", i, err)
		}
		h := readShareHeader(p, r, true)
		q := s.he.Q()[:level+1]
		r.fill(share.Value[0], q)
		r.fill(share.Value[1], q)
		if err := r.end(); err != nil {
			return nil, fmt.Errorf("combine switch: share %d: %w", i, err)
		}
		if err := checkShare(h, want, holders); err != nil {
			return nil, fmt.Errorf("combine switch: share %d: %w", i, err)
		}
		if i == 0 {
			sponsor = h.sponsor
		} else if h.sponsor != sponsor {
			return nil, fmt.Errorf("combine switch: share %d: %w: share of %s is for another sponsor key", i, ErrWrongKey, h.holder)
		}
		addPoly(ringQ, &agg.Value[0], share.Value[0], i == 0)
		addPoly(ringQ, &agg.Value[1], share.Value[1], i == 0)
	}
	out := newCiphertext(p, level)
	pcks.KeySwitch(c.ct, agg, out)
	return marshalCiphertext(p, ciphertext{kind: kindSponsorCT, ct: out, sponsor: sponsor}), nil
}

// Decrypt opens a ciphertext produced by CombineSwitch for this sponsor and
// returns its first n slots, centred in (−T/2, T/2]. A ciphertext addressed to
// another sponsor key is refused with ErrWrongKey.
func (s *SponsorKey) Decrypt(ct []byte, n int) ([]int64, error) {
	c, err := unmarshalCiphertext(s.p, ct, kindSponsorCT)
	if err != nil {
		return nil, fmt.Errorf("sponsor decrypt: %w", err)
	}
	if c.sponsor != s.id {
		return nil, fmt.Errorf("sponsor decrypt: %w: the result was switched to another sponsor key", ErrWrongKey)
	}
	if n < 0 || n > s.p.Slots() {
		return nil, fmt.Errorf("sponsor decrypt: %w: %d slots requested, a ciphertext holds %d", ErrInvalidSpec, n, s.p.Slots())
	}
	vals, err := s.decrypt(c.ct, n)
	if err != nil {
		return nil, fmt.Errorf("sponsor decrypt: %w", err)
	}
	return vals, nil
}

func (s *SponsorKey) decrypt(ct *rlwe.Ciphertext, n int) ([]int64, error) {
	pt := rlwe.NewDecryptor(s.p.s.he, s.sk).DecryptNew(ct)
	return decodeCentred(s.p, pt, n)
}

// decodeCentred decodes the first n slots of pt into (−T/2, T/2].
func decodeCentred(p Params, pt *rlwe.Plaintext, n int) ([]int64, error) {
	s := p.s
	raw := make([]uint64, s.he.MaxSlots())
	ecd := s.encoder()
	err := ecd.Decode(pt, raw)
	s.encoders.Put(ecd)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	t := s.he.PlaintextModulus()
	out := make([]int64, n)
	for i := range out {
		if v := raw[i]; v > t/2 {
			out[i] = -int64(t - v)
		} else {
			out[i] = int64(v)
		}
	}
	return out, nil
}
