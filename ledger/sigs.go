package ledger

import (
	"bytes"
	"crypto/ed25519"
	"fmt"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// zip215 selects ZIP-215 verification: cofactored, accepting
// non-canonical and small-order points. It is the only semantics under
// which verifying signatures together in a batch decides every signature
// exactly as verifying it alone does, and it accepts every signature
// RFC 8032 signers (crypto/ed25519, WebCrypto) produce. It is read only.
var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

// SigBatch is how many signatures VerifySignatures verifies together. A
// batch of 128 costs about half as much per signature as verifying them
// one by one (measured: 16-18 against 33 µs with voi, 40 with
// crypto/ed25519); larger ones save little more, leave fewer batches to
// verify in parallel and cost more when one signature is bad.
const SigBatch = 128

// VerifySignature is the ledger's one rule for whether sig is pub's Ed25519
// signature of msg (ZIP-215). Every place that decides whether a signature
// is valid (the contract, a backend verifying ahead, the audit replay)
// decides with it or with VerifySignatures, which agrees with it, so that
// no signature is accepted by one and refused by another.
func VerifySignature(pub ed25519.PublicKey, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && voi.VerifyWithOptions(voi.PublicKey(pub), msg, sig, zip215)
}

// VerifySignatures reports for each signature whether VerifySignature
// accepts it, verifying them together in batches of SigBatch; a batch
// that fails is verified one by one to tell which are bad (so a batch
// holding a bad signature costs about what verifying its signatures one
// by one would, plus the failed batch). A key that signs more than one of
// the signatures (a custodian's certificates, the node's blocks) is
// decompressed and checked once for all of them. It runs on the caller's
// goroutine.
func VerifySignatures(sigs []Signature) []bool {
	ok := make([]bool, len(sigs))
	var v *voi.BatchVerifier
	keys := repeatedKeys{}
	for lo := 0; lo < len(sigs); lo += SigBatch {
		chunk := sigs[lo:min(lo+SigBatch, len(sigs))]
		if len(chunk) <= 2 {
			// A batch of one or two costs more than verifying them alone.
			for i, s := range chunk {
				ok[lo+i] = VerifySignature(s.PublicKey, s.Message, s.Sig)
			}
			continue
		}
		if v == nil {
			v = voi.NewBatchVerifierWithCapacity(len(chunk))
		} else {
			v.Reset()
		}
		// voi would expand every key, which costs more than it saves for
		// keys that sign once (a pseudonym's acceptance).
		v.ForceNoPublicKeyExpansion()
		idx := make([]int, 0, len(chunk))
		for i, s := range chunk {
			if len(s.PublicKey) != ed25519.PublicKeySize {
				continue // refused, and voi would panic
			}
			if e := keys.expanded(s.PublicKey); e != nil {
				v.AddExpandedWithOptions(e, s.Message, s.Sig, zip215)
			} else {
				v.AddWithOptions(voi.PublicKey(s.PublicKey), s.Message, s.Sig, zip215)
			}
			idx = append(idx, lo+i)
		}
		if len(idx) == 0 {
			continue
		}
		_, valid := v.Verify(nil)
		for j, i := range idx {
			ok[i] = valid[j]
		}
	}
	return ok
}

// repeatedKeys expands the keys of one VerifySignatures call that sign
// again: a key seen for the first time is only noted (most sign once), a
// key seen again is expanded, once. A key that does not decompress is
// not expanded, and is verified (and refused) as any other.
type repeatedKeys map[string]repeatedKey

type repeatedKey struct {
	e     *voi.ExpandedPublicKey // nil until expanded, or if it cannot be
	tried bool                   // expansion was tried
}

func (r repeatedKeys) expanded(pub ed25519.PublicKey) *voi.ExpandedPublicKey {
	k, seen := r[string(pub)]
	switch {
	case !seen:
		r[string(pub)] = repeatedKey{}
	case !k.tried:
		k.e, _ = voi.NewExpandedPublicKey(voi.PublicKey(pub))
		k.tried = true
		r[string(pub)] = k
	}
	return k.e
}

// SigChecker checks Ed25519 signatures for the contract. A backend that
// verified a transaction's signatures ahead of applying it (in parallel,
// in batches) hands Invoke a checker that remembers them
// through TxContext.Sigs, so the single-threaded apply does not verify
// them again. A nil checker means VerifySignature; any checker must answer
// as VerifySignature does.
type SigChecker interface {
	Verify(pub ed25519.PublicKey, msg, sig []byte) bool
}

// Verified is a SigChecker for one transaction: the signatures a backend
// verified ahead (VerifySignatures) answer true by comparison, any other
// is verified by VerifySignature. A transaction checks two or three
// signatures, so a list beats a map.
type Verified []Signature

// Verify reports whether sig is pub's signature of msg.
func (v Verified) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	for _, s := range v {
		if bytes.Equal(s.Sig, sig) && bytes.Equal(s.PublicKey, pub) && bytes.Equal(s.Message, msg) {
			return true
		}
	}
	return VerifySignature(pub, msg, sig)
}

// VerifiedOf returns the signatures of sigs that ok (VerifySignatures'
// answer for them) marks valid.
func VerifiedOf(sigs []Signature, ok []bool) Verified {
	var v Verified
	for i, s := range sigs {
		if ok[i] {
			v = append(v, s)
		}
	}
	return v
}

// Signature is one Ed25519 signature a contract call checks: the key it is
// checked against, the signed message and the signature.
type Signature struct {
	PublicKey ed25519.PublicKey
	Message   []byte
	Sig       []byte
}

// verifySig is VerifySignature through the transaction's checker, if any.
func (tx TxContext) verifySig(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	if tx.Sigs != nil {
		return tx.Sigs.Verify(pub, msg, sig)
	}
	return VerifySignature(pub, msg, sig)
}

// Signatures lists the signatures an Invoke of fn with args would check,
// as far as they can be known without running it: the action's signature,
// and an acceptance's custodian certificate. keyOf returns a registered
// participant's public key, or nil if it does not know it; signatures
// whose key is unknown are left out. The list is a hint for verifying
// ahead (VerifySignatures, then Verified): Invoke still checks every signature, against
// the keys in the state, so a wrong hint costs time, never correctness.
func (ct Contract) Signatures(fn string, args [][]byte, keyOf func(ParticipantID) ed25519.PublicKey) []Signature {
	return ct.Prepare(fn, args).Signatures(keyOf)
}

// Signatures is Contract.Signatures of the prepared call: none if it
// cannot succeed.
func (p *Prepared) Signatures(keyOf func(ParticipantID) ed25519.PublicKey) []Signature {
	if p.err != nil {
		return nil
	}
	a := p.act
	switch p.fn {
	case FnBootstrap:
		return []Signature{{PublicKey: p.pub, Message: p.signing, Sig: a.Sig}}
	case FnAcceptOffer:
		out := []Signature{{PublicKey: p.pub, Message: p.signing, Sig: a.Sig}}
		cert := p.acceptance.Certificate
		if k := keyOf(cert.Custodian); k != nil {
			out = append(out, Signature{PublicKey: k, Message: CertificateBytes(p.acceptance.Terms.Request, p.pub), Sig: cert.Signature})
		}
		return out
	}
	if k := keyOf(a.Actor); k != nil {
		return []Signature{{PublicKey: k, Message: p.signing, Sig: a.Sig}}
	}
	return nil
}

// smallOrderY are the y coordinates (little endian, sign bit cleared) of
// the points of small order, in canonical and non-canonical encodings: 0
// and p (order 4), 1 and p+1 (the identity), p-1 (order 2), and the two of
// order 8. Any encoding whose y, sign bit cleared, is one of them decodes
// to a small-order point, and every small-order point encodes so.
var smallOrderY = [...][32]byte{
	{},
	{0x01},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
}

// CheckPublicKey refuses an Ed25519 public key of the wrong length or of
// small order. Under ZIP-215 a small-order key "signs" any message with
// R = identity and S = 0, so the contract refuses such keys wherever a
// participant or a pseudonym key is registered. (A key that is no curve
// point at all can sign nothing, so every signature under it is refused.)
// It compares bytes only: a few nanoseconds.
func CheckPublicKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key must be %d bytes: %w", ed25519.PublicKeySize, ErrInvalid)
	}
	var y [32]byte
	copy(y[:], pub)
	y[31] &= 0x7f
	for _, s := range smallOrderY {
		if y == s {
			return fmt.Errorf("public key is a point of small order: %w", ErrInvalid)
		}
	}
	return nil
}
