package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Action is a state-changing call signed by its actor. The signature covers
// the function name, the actor, a fresh nonce and the payload, so the
// contract can verify it against the actor's registered key and refuse a
// replay of the same action.
type Action struct {
	Fn      string          `json:"fn"`
	Actor   ParticipantID   `json:"actor"`
	Nonce   string          `json:"nonce"` // 32 hex digits, unique per actor
	Payload json.RawMessage `json:"payload"`
	Sig     []byte          `json:"sig"`
}

// SigningBytes is the canonical encoding an actor signs: a domain tag and
// length-prefixed fields, with the payload as its SHA-256.
func (a Action) SigningBytes() []byte {
	sum := sha256.Sum256(a.Payload)
	var b []byte
	b = append(b, "medx/action/v1"...)
	for _, f := range [][]byte{[]byte(a.Fn), []byte(a.Actor), []byte(a.Nonce), sum[:]} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Verify checks the action's signature against pub (VerifySignature).
func (a Action) Verify(pub ed25519.PublicKey) error {
	if !VerifySignature(pub, a.SigningBytes(), a.Sig) {
		return fmt.Errorf("action %s by %s: %w", a.Fn, a.Actor, ErrBadSignature)
	}
	return nil
}

// Signer is an actor able to sign actions: its id and private key.
type Signer struct {
	ID  ParticipantID
	Key ed25519.PrivateKey
}

// Public returns the signer's public key.
func (s Signer) Public() ed25519.PublicKey { return s.Key.Public().(ed25519.PublicKey) }

// Sign encodes payload canonically and signs it as an fn action with a
// fresh random nonce.
func (s Signer) Sign(fn string, payload any) (Action, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return Action{}, fmt.Errorf("encode %s payload: %w", fn, err)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return Action{}, fmt.Errorf("nonce: %w", err)
	}
	a := Action{Fn: fn, Actor: s.ID, Nonce: hex.EncodeToString(nonce[:]), Payload: p}
	a.Sig = ed25519.Sign(s.Key, a.SigningBytes())
	return a, nil
}

// PseudonymID is the ledger id of a patient's per-study key.
func PseudonymID(pub ed25519.PublicKey) ParticipantID {
	sum := sha256.Sum256(pub)
	return ParticipantID("pn-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15])))
}

// CertificateBytes is what a custodian signs to certify that pub is the
// per-study key of one of its patients, for request req.
func CertificateBytes(req RequestID, pub ed25519.PublicKey) []byte {
	var b []byte
	b = append(b, "medx/pseudonym-cert/v1"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(req)))
	b = append(b, req...)
	return append(b, pub...)
}

// Certify signs a pseudonym certificate as custodian s.
func (s Signer) Certify(req RequestID, pub ed25519.PublicKey) Certificate {
	return Certificate{Custodian: s.ID, Signature: ed25519.Sign(s.Key, CertificateBytes(req, pub))}
}
