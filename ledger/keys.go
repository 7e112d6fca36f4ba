package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// State keys. Each is a type followed by attributes, joined by "/": the
// attributes are ids ([a-z0-9-]) or hex, so the layout maps one to one onto
// Fabric composite keys (type, attrs...). Per-account balance keys and
// per-request escrow keep every transfer off a shared hot key; the supply
// key is written only by Mint.
const (
	kOperator      = "meta/operator" // id of the bootstrap operator
	kSupply        = "meta/supply"   // MedTokens minted, decimal
	pParticipant   = "part/"         // part/<id> -> Participant
	pBalance       = "bal/"          // bal/<id> -> Amount, decimal
	pRequest       = "req/"          // req/<id> -> Request (with its escrow)
	pLicence       = "lic/"          // lic/<request>/<licence> -> Licence
	pLicenceIndex  = "licx/"         // licx/<licence> -> request id
	pPatientLic    = "plic/"         // plic/<pseudonym>/<licence> -> request id
	pQuery         = "qry/"          // qry/<request>/<query> -> QueryRecord
	pQueryIndex    = "qryx/"         // qryx/<query> -> request id
	pLicenceQuery  = "qlic/"         // qlic/<licence>/<query> -> request id
	pNotebookRun   = "nb/"           // nb/<id> -> NotebookRun
	pDataset       = "ds/"           // ds/<id> -> Dataset
	pNonce         = "nonce/"        // nonce/<actor>/<nonce> -> tx id
	pFeasibility   = "fea/"          // fea/<id> -> FeasibilityRecord
	pFeaSponsor    = "feas/"         // feas/<sponsor>/<ask time, 16 hex digits of Unix ns>/<id> -> epsilon charged, decimal
	pFeaCache      = "feac/"         // feac/<criteria hash>/<data digest> -> id of the first release
	idPrefixReq    = "req"           // id prefixes of derived ids
	idPrefixLic    = "lic"           //
	idPrefixQuery  = "qry"           //
	idPrefixNbRun  = "nb"            //
	idPrefixDS     = "ds"            //
	idPrefixFeas   = "fea"           //
	pseudonymStart = "pn-"           // reserved for PseudonymID
	keySep         = "/"
)

// key joins a key type and its attributes.
func key(prefix string, attrs ...string) string {
	return prefix + strings.Join(attrs, keySep)
}

// prefixEnd returns the smallest key greater than every key that starts
// with prefix (prefix ends in "/", and "0" follows "/").
func prefixEnd(prefix string) string {
	return prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
}

// deriveID derives a record id from the transaction id, so that every
// replica computes the same id.
func deriveID(prefix, txID string) string {
	sum := sha256.Sum256([]byte(txID))
	return prefix + "-" + hex.EncodeToString(sum[:8])
}
