package ledger_test

import (
	"crypto/ed25519"
	"crypto/sha256"

	"github.com/medx/medx/ledger"
)

// key derives an Ed25519 key from a name.
func key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("medx/ledger/test/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func signer(id string) ledger.Signer {
	return ledger.Signer{ID: ledger.ParticipantID(id), Key: key("signer/" + id)}
}

// pseudonym returns a per-study patient key derived from a name.
func pseudonym(name string) ledger.Signer {
	k := key("pseudonym/" + name)
	return ledger.Signer{ID: ledger.PseudonymID(k.Public().(ed25519.PublicKey)), Key: k}
}
