package exchange

import (
	"errors"
	"fmt"

	"github.com/medx/medx/ledger"
)

// ErrNoKey means the keystore holds no key for a participant: that
// participant signs on its own device instead.
var ErrNoKey = errors.New("no custodial key")

// Keystore holds signing keys on behalf of participants who chose a
// custodial keystore: the Ed25519 keys of sponsors, ethics boards,
// custodians and the operator, and a master secret from which the wallets
// of custodial patients derive (DeriveSeed). Patients who sign on their own
// device are not in it. A Keystore is read-only and safe for concurrent use.
type Keystore struct {
	signers       map[ledger.ParticipantID]ledger.Signer
	patientMaster []byte
}

// NewKeystore returns a keystore of signers and, if patientMaster is not
// empty, of the custodial patients' wallets derived from it.
func NewKeystore(signers []ledger.Signer, patientMaster []byte) *Keystore {
	k := &Keystore{signers: make(map[ledger.ParticipantID]ledger.Signer, len(signers)), patientMaster: append([]byte(nil), patientMaster...)}
	for _, s := range signers {
		k.signers[s.ID] = s
	}
	return k
}

// Signer returns participant id's signer, or ErrNoKey.
func (k *Keystore) Signer(id ledger.ParticipantID) (ledger.Signer, error) {
	s, ok := k.signers[id]
	if !ok {
		return ledger.Signer{}, fmt.Errorf("participant %s: %w", id, ErrNoKey)
	}
	return s, nil
}

// Patient returns the custodial wallet of the patient whose record
// custodian holds as record, or ErrNoKey if the keystore holds no patients.
func (k *Keystore) Patient(custodian ledger.ParticipantID, record string) (*Patient, error) {
	if len(k.patientMaster) == 0 {
		return nil, fmt.Errorf("patient of %s: %w", custodian, ErrNoKey)
	}
	return NewPatient(custodian, record, DeriveSeed(k.patientMaster, custodian, record))
}
