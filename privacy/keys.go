package privacy

import (
	"fmt"
	"log/slog"
	"sync"
	"unicode/utf8"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// minCRSLen is the shortest accepted ceremony seed.
const minCRSLen = 16

// KeyHolder is one share of the collective secret key: a custodian's or the
// ethics board's. The secret share never leaves the object except through
// MarshalBinary (for the holder's own storage); String, GoString and LogValue
// show only the id. Methods are safe for concurrent use.
type KeyHolder struct {
	p  Params
	id string
	sk *rlwe.SecretKey

	// The last sponsor public key seen by SwitchShare, parsed: a study has
	// one sponsor, whose key need not be decoded and hashed every query.
	mu      sync.Mutex
	sponsor struct {
		raw []byte
		pk  *rlwe.PublicKey
		id  [digestLen]byte
	}
}

// NewKeyHolder draws a fresh secret-key share (ternary, from crypto/rand) for
// the key holder named id (1 to 255 bytes of UTF-8).
func NewKeyHolder(p Params, id string) (*KeyHolder, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("new key holder: %w", err)
	}
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("new key holder: %w", err)
	}
	sk := rlwe.NewKeyGenerator(p.s.he).GenSecretKeyNew()
	return &KeyHolder{p: p, id: id, sk: sk}, nil
}

func checkID(id string) error {
	if id == "" || len(id) > 255 || !utf8.ValidString(id) {
		return fmt.Errorf("%w: key holder id must be 1 to 255 bytes of UTF-8", ErrMalformed)
	}
	return nil
}

// ID is the key holder's name, as given to NewKeyHolder.
func (k *KeyHolder) ID() string { return k.id }

// String shows the id only, never the secret.
func (k *KeyHolder) String() string { return "privacy.KeyHolder(" + k.id + ")" }

// GoString shows the id only, never the secret.
func (k *KeyHolder) GoString() string { return k.String() }

// LogValue makes slog record the id only, never the secret.
func (k *KeyHolder) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalBinary encodes the key holder, secret share included, for the
// holder's own storage only (encrypt it at rest).
func (k *KeyHolder) MarshalBinary() ([]byte, error) {
	n := k.p.s.he.N()
	w := newWriter(k.p, kindKeyHolder, 2+len(k.id)+polySize(n, k.p.s.he.QCount()+k.p.s.he.PCount()))
	w.u16(uint16(len(k.id)))
	w.raw([]byte(k.id))
	w.qp(k.sk.Value)
	return w.b, nil
}

// UnmarshalKeyHolder decodes a key holder written by MarshalBinary under the
// same parameters.
func UnmarshalKeyHolder(p Params, b []byte) (*KeyHolder, error) {
	r, err := newReader(p, b, kindKeyHolder)
	if err != nil {
		return nil, fmt.Errorf("unmarshal key holder: %w", err)
	}
	id := string(r.take(int(r.u16())))
	if r.err == nil {
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("unmarshal key holder: %w", err)
		}
	}
	sk := rlwe.NewSecretKey(p.s.he)
	r.fillQP(p, sk.Value)
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("unmarshal key holder: %w", err)
	}
	return &KeyHolder{p: p, id: id, sk: sk}, nil
}

// PublicKeyShare is the key holder's contribution to the collective public key.
// crs is a public seed (at least 16 bytes) that every party of the ceremony
// uses; it should be fresh per ceremony, e.g. a hash of the study id and a
// ledger transaction id.
func (k *KeyHolder) PublicKeyShare(crs []byte) ([]byte, error) {
	if len(crs) < minCRSLen {
		return nil, fmt.Errorf("public key share of %s: %w: crs has %d bytes, need at least %d", k.id, ErrMalformed, len(crs), minCRSLen)
	}
	s := k.p.s
	ckg := s.publicKeyGen()
	defer s.ckg.Put(ckg)
	crp, err := sampleCRP(ckg, crs)
	if err != nil {
		return nil, fmt.Errorf("public key share of %s: %w", k.id, err)
	}
	share := ckg.AllocateShare()
	ckg.GenShare(k.sk, crp, &share)
	w := newWriter(k.p, kindPKShare, digestLen+2+len(k.id)+polySize(s.he.N(), s.he.QCount()+s.he.PCount()))
	d := digest(crs)
	w.raw(d[:])
	w.u16(uint16(len(k.id)))
	w.raw([]byte(k.id))
	w.qp(share.Value)
	return w.b, nil
}

func sampleCRP(ckg *mhe.PublicKeyGenProtocol, crs []byte) (mhe.PublicKeyGenCRP, error) {
	prng, err := sampling.NewKeyedPRNG(crs)
	if err != nil {
		return mhe.PublicKeyGenCRP{}, fmt.Errorf("seed common reference string: %w", err)
	}
	return ckg.SampleCRP(prng), nil
}

// PublicKey is the collective public key: what is encrypted under it can only
// be decrypted (or re-encrypted) with the participation of every key holder
// whose share went into it. Methods are safe for concurrent use.
type PublicKey struct {
	p       Params
	pk      *rlwe.PublicKey
	holders []string
	enc     sync.Pool // *rlwe.Encryptor
}

func newPublicKey(p Params, pk *rlwe.PublicKey, holders []string) *PublicKey {
	k := &PublicKey{p: p, pk: pk, holders: holders}
	base := rlwe.NewEncryptor(p.s.he, pk)
	k.enc.New = func() any { return base.ShallowCopy() }
	return k
}

// CollectivePublicKey combines every key holder's PublicKeyShare, all made
// with the same crs, into the collective public key. Anyone can run it; it
// refuses two shares from one key holder and shares made for another seed.
func CollectivePublicKey(p Params, crs []byte, shares [][]byte) (*PublicKey, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("collective public key: %w", err)
	}
	if len(crs) < minCRSLen {
		return nil, fmt.Errorf("collective public key: %w: crs has %d bytes, need at least %d", ErrMalformed, len(crs), minCRSLen)
	}
	if len(shares) == 0 || len(shares) > MaxKeyHolders {
		return nil, fmt.Errorf("collective public key: %w: %d shares, need 1 to %d", ErrMalformed, len(shares), MaxKeyHolders)
	}
	s := p.s
	ckg := s.publicKeyGen()
	defer s.ckg.Put(ckg)
	want := digest(crs)
	seen := make(map[string]int, len(shares))
	ids := make([]string, 0, len(shares))
	agg := ckg.AllocateShare()
	share := ckg.AllocateShare()
	for i, b := range shares {
		r, err := newReader(p, b, kindPKShare)
		if err != nil {
			return nil, fmt.Errorf("collective public key: share %d: %w", i, err)
		}
		if got := r.digest(); r.err == nil && got != want {
			return nil, fmt.Errorf("collective public key: share %d: %w: made for another seed", i, ErrWrongKey)
		}
		id := string(r.take(int(r.u16())))
		r.fillQP(p, share.Value)
		if err := r.end(); err != nil {
			return nil, fmt.Errorf("collective public key: share %d: %w", i, err)
		}
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("collective public key: share %d: %w", i, err)
		}
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("collective public key: %w: shares %d and %d both come from key holder %s", ErrMalformed, j, i, id)
		}
		seen[id] = i
		ids = append(ids, id)
		if i == 0 {
			agg.Value.Copy(share.Value)
		} else {
			ckg.AggregateShares(agg, share, &agg)
		}
	}
	crp, err := sampleCRP(ckg, crs)
	if err != nil {
		return nil, fmt.Errorf("collective public key: %w", err)
	}
	pk := rlwe.NewPublicKey(s.he)
	ckg.GenPublicKey(agg, crp, pk)
	return newPublicKey(p, pk, ids), nil
}

// KeyHolders is the number of key holders whose shares make up the key: every
// one of them must take part in each decryption.
func (pk *PublicKey) KeyHolders() int { return len(pk.holders) }

// KeyHolderIDs are the ids of those key holders, in the order of the shares.
func (pk *PublicKey) KeyHolderIDs() []string { return append([]string(nil), pk.holders...) }

// MarshalBinary encodes the collective public key with its key holders' ids.
func (pk *PublicKey) MarshalBinary() ([]byte, error) {
	s := pk.p.s
	w := newWriter(pk.p, kindPublicKey, 2+len(pk.holders)*64+2*polySize(s.he.N(), s.he.QCount()+s.he.PCount()))
	w.u16(uint16(len(pk.holders)))
	for _, id := range pk.holders {
		w.u16(uint16(len(id)))
		w.raw([]byte(id))
	}
	w.qp(pk.pk.Value[0])
	w.qp(pk.pk.Value[1])
	return w.b, nil
}

// UnmarshalPublicKey decodes a collective public key written by MarshalBinary
// under the same parameters.
func UnmarshalPublicKey(p Params, b []byte) (*PublicKey, error) {
	r, err := newReader(p, b, kindPublicKey)
	if err != nil {
		return nil, fmt.Errorf("unmarshal public key: %w", err)
	}
	count := int(r.u16())
	if r.err == nil && (count < 1 || count > MaxKeyHolders) {
		r.fail("%d key holders, need 1 to %d", count, MaxKeyHolders)
	}
	holders := make([]string, 0, min(count, MaxKeyHolders))
	seen := map[string]bool{}
	for i := 0; i < count && r.err == nil; i++ {
		id := string(r.take(int(r.u16())))
		if r.err == nil && (checkID(id) != nil || seen[id]) {
			r.fail("key holder %d: bad or repeated id", i)
		}
		seen[id] = true
		holders = append(holders, id)
	}
	pk, err := readPublicKey(p, r)
	if err != nil {
		return nil, fmt.Errorf("unmarshal public key: %w", err)
	}
	return newPublicKey(p, pk, holders), nil
}

// readPublicKey reads the two QP polynomials of an RLWE public key to the end
// of r, refusing a degenerate key whose mask is zero (a ciphertext switched to
// it would be readable by anyone).
func readPublicKey(p Params, r *reader) (*rlwe.PublicKey, error) {
	pk := rlwe.NewPublicKey(p.s.he)
	r.fillQP(p, pk.Value[0])
	r.fillQP(p, pk.Value[1])
	if err := r.end(); err != nil {
		return nil, err
	}
	if isZero(pk.Value[1].Q.Coeffs) || isZero(pk.Value[0].Q.Coeffs) {
		return nil, fmt.Errorf("%w: %s is degenerate (zero polynomial)", ErrMalformed, r.what)
	}
	return pk, nil
}

func isZero(rows [][]uint64) bool {
	for _, row := range rows {
		for _, c := range row {
			if c != 0 {
				return false
			}
		}
	}
	return true
}

// SponsorKey is a sponsor's own BGV key pair. The secret stays with the
// sponsor; the exchange only ever sees PublicKey. String, GoString and
// LogValue never show the secret. Methods are safe for concurrent use.
type SponsorKey struct {
	p   Params
	sk  *rlwe.SecretKey
	pk  *rlwe.PublicKey
	pub []byte // encoded public key
	id  [digestLen]byte
}

// NewSponsorKey draws a fresh key pair.
func NewSponsorKey(p Params) (*SponsorKey, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("new sponsor key: %w", err)
	}
	sk, pk := rlwe.NewKeyGenerator(p.s.he).GenKeyPairNew()
	return newSponsorKey(p, sk, pk), nil
}

func newSponsorKey(p Params, sk *rlwe.SecretKey, pk *rlwe.PublicKey) *SponsorKey {
	s := p.s
	w := newWriter(p, kindSponsorPublic, 2*polySize(s.he.N(), s.he.QCount()+s.he.PCount()))
	w.qp(pk.Value[0])
	w.qp(pk.Value[1])
	return &SponsorKey{p: p, sk: sk, pk: pk, pub: w.b, id: digest(w.b)}
}

// PublicKey is the encoded public key that the sponsor publishes and key
// holders switch results to.
func (s *SponsorKey) PublicKey() ([]byte, error) {
	return append([]byte(nil), s.pub...), nil
}

// String shows a short digest of the public key only.
func (s *SponsorKey) String() string { return fmt.Sprintf("privacy.SponsorKey(%x)", s.id[:6]) }

// GoString shows a short digest of the public key only.
func (s *SponsorKey) GoString() string { return s.String() }

// LogValue makes slog record a short digest of the public key only.
func (s *SponsorKey) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalBinary encodes the key pair, secret included, for the sponsor's own
// storage only.
func (s *SponsorKey) MarshalBinary() ([]byte, error) {
	ps := s.p.s
	w := newWriter(s.p, kindSponsorSecret, 3*polySize(ps.he.N(), ps.he.QCount()+ps.he.PCount()))
	w.qp(s.sk.Value)
	w.qp(s.pk.Value[0])
	w.qp(s.pk.Value[1])
	return w.b, nil
}

// UnmarshalSponsorKey decodes a key pair written by SponsorKey.MarshalBinary
// under the same parameters.
func UnmarshalSponsorKey(p Params, b []byte) (*SponsorKey, error) {
	r, err := newReader(p, b, kindSponsorSecret)
	if err != nil {
		return nil, fmt.Errorf("unmarshal sponsor key: %w", err)
	}
	sk := rlwe.NewSecretKey(p.s.he)
	r.fillQP(p, sk.Value)
	pk, err := readPublicKey(p, r)
	if err != nil {
		return nil, fmt.Errorf("unmarshal sponsor key: %w", err)
	}
	return newSponsorKey(p, sk, pk), nil
}

// parseSponsorPublic decodes a sponsor public key and returns its digest.
func parseSponsorPublic(p Params, b []byte) (*rlwe.PublicKey, [digestLen]byte, error) {
	r, err := newReader(p, b, kindSponsorPublic)
	if err != nil {
		return nil, [digestLen]byte{}, err
	}
	pk, err := readPublicKey(p, r)
	if err != nil {
		return nil, [digestLen]byte{}, err
	}
	return pk, digest(b), nil
}
