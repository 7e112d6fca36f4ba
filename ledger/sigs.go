package ledger

import (
	"crypto/ed25519"
	"sync"
)

// SigChecker checks Ed25519 signatures for the contract. A backend that
// verified a transaction's signatures ahead of applying it (in parallel,
// on the submitter's goroutine) hands Invoke a checker that remembers them
// through TxContext.Sigs, so the single-threaded apply does not verify
// them again. A nil checker means ed25519.Verify.
type SigChecker interface {
	Verify(pub ed25519.PublicKey, msg, sig []byte) bool
}

// Signature is one Ed25519 signature a contract call checks: the key it is
// checked against, the signed message and the signature.
type Signature struct {
	PublicKey ed25519.PublicKey
	Message   []byte
	Sig       []byte
}

// SigCache is a SigChecker that remembers the signatures Preverify found
// valid and verifies any other one. It is safe for concurrent use.
type SigCache struct {
	mu sync.RWMutex
	ok map[string]struct{}
}

// NewSigCache returns an empty cache.
func NewSigCache() *SigCache { return &SigCache{ok: make(map[string]struct{})} }

func sigKey(pub ed25519.PublicKey, msg, sig []byte) string {
	b := make([]byte, 0, len(pub)+len(sig)+len(msg)+2)
	b = append(b, byte(len(pub)))
	b = append(b, pub...)
	b = append(b, byte(len(sig)))
	b = append(b, sig...)
	return string(append(b, msg...))
}

// Preverify verifies each signature and remembers the valid ones. It
// returns how many were valid.
func (c *SigCache) Preverify(sigs []Signature) int {
	n := 0
	for _, s := range sigs {
		if len(s.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(s.PublicKey, s.Message, s.Sig) {
			continue
		}
		c.mu.Lock()
		c.ok[sigKey(s.PublicKey, s.Message, s.Sig)] = struct{}{}
		c.mu.Unlock()
		n++
	}
	return n
}

// Verify reports whether sig is pub's signature of msg: true at once for
// a signature Preverify found valid, else by ed25519.Verify.
func (c *SigCache) Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	c.mu.RLock()
	_, ok := c.ok[sigKey(pub, msg, sig)]
	c.mu.RUnlock()
	return ok || ed25519.Verify(pub, msg, sig)
}

// Forget drops every remembered signature.
func (c *SigCache) Forget() {
	c.mu.Lock()
	clear(c.ok)
	c.mu.Unlock()
}

// verifySig is ed25519.Verify through the transaction's checker, if any.
func (tx TxContext) verifySig(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	if tx.Sigs != nil {
		return tx.Sigs.Verify(pub, msg, sig)
	}
	return ed25519.Verify(pub, msg, sig)
}

// Signatures lists the signatures an Invoke of fn with args would check,
// as far as they can be known without running it: the action's signature,
// and an acceptance's custodian certificate. keyOf returns a registered
// participant's public key, or nil if it does not know it; signatures
// whose key is unknown are left out. The list is a hint for verifying
// ahead (SigCache.Preverify): Invoke still checks every signature, against
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
