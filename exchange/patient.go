package exchange

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"

	"github.com/medx/medx/ledger"
)

// Patient is a patient's own wallet: the secret seed from which the patient
// derives one signing key per study. It lives on the patient's device; the
// custodian knows the patient's record but never the seed, and the ledger
// sees only the per-study pseudonyms, which cannot be linked to each other.
type Patient struct {
	Custodian ledger.ParticipantID
	RecordID  string
	seed      [32]byte
}

// NewPatient returns the wallet of the patient holding seed (32 bytes of
// secret randomness) whose record custodian holds as recordID.
func NewPatient(custodian ledger.ParticipantID, recordID string, seed []byte) (*Patient, error) {
	if len(seed) != 32 {
		return nil, fmt.Errorf("patient %s: seed is %d bytes, want 32: %w", recordID, len(seed), ErrInvalid)
	}
	p := &Patient{Custodian: custodian, RecordID: recordID}
	copy(p.seed[:], seed)
	return p, nil
}

// DeriveSeed derives a patient seed from a master secret, for demos and for
// custodial keystores that hold patients' keys on their behalf.
func DeriveSeed(master []byte, custodian ledger.ParticipantID, recordID string) []byte {
	m := hmac.New(sha256.New, master)
	fmt.Fprintf(m, "medx/patient-seed/v1\x00%s\x00%s", custodian, recordID)
	return m.Sum(nil)
}

// StudyKey is the patient's signing key for one request: its public half is
// the patient's pseudonym in that study.
func (p *Patient) StudyKey(req ledger.RequestID) ledger.Signer {
	r := hkdf.New(sha256.New, p.seed[:], nil, []byte("medx/study-key/v1\x00"+string(req)))
	var s [ed25519.SeedSize]byte
	if _, err := io.ReadFull(r, s[:]); err != nil {
		panic("hkdf cannot fail for 32 bytes: " + err.Error())
	}
	key := ed25519.NewKeyFromSeed(s[:])
	return ledger.Signer{ID: ledger.PseudonymID(key.Public().(ed25519.PublicKey)), Key: key}
}

// Pseudonym is the patient's ledger id in request req.
func (p *Patient) Pseudonym(req ledger.RequestID) ledger.ParticipantID {
	return p.StudyKey(req).ID
}
