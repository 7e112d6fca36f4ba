package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// State keys. Each is a type followed by attributes, joined by "/": the
// attributes are ids ([a-z0-9-]) or hex, so the layout maps one to one onto
// Fabric composite keys (type, attrs...).
//
// No key is written by every transfer or every acceptance, so that
// concurrent transactions seldom meet on one key (on Fabric each key takes
// one update per block; the others fail MVCC validation). Balances are per
// account (a patient's per-study pseudonym has its own). A request's escrow
// is not in its record but in its places ("UTXO-style"): posting splits the
// budget over EscrowPlaces keys, an acceptance reads the request without
// writing it and consumes one reward from one place, the first non-empty
// one in its pseudonym's probe order (EscrowPlace), so that acceptances of
// one study mostly touch different keys; a decision refunds what the places
// hold. The supply key is written only by Mint.
const (
	kOperator      = "meta/operator" // id of the bootstrap operator
	kSupply        = "meta/supply"   // MedTokens minted, decimal
	pParticipant   = "part/"         // part/<id> -> Participant
	pBalance       = "bal/"          // bal/<id> -> Amount, decimal
	pRequest       = "req/"          // req/<id> -> Request (its escrow and participants live in place/ until decided)
	pPlace         = "place/"        // place/<request>/<index, 4 hex digits> -> Amount escrowed there, decimal: places x reward, deleted when empty
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

// maxPlaceKeys bounds the escrow places of one request: a request for up
// to that many participants has one place key per participant place, a
// larger one spreads its places evenly over that many keys.
const maxPlaceKeys = 256

// EscrowPlaces returns how many escrow place keys a request for
// maxParticipants holds while it is pending or open.
func EscrowPlaces(maxParticipants int64) int {
	return int(max(0, min(maxParticipants, maxPlaceKeys)))
}

// EscrowPlace returns the index of the j-th place key (j from 0) that an
// acceptance by pseudonym pn of a request for maxParticipants tries: it
// takes the first that is not empty. The order is pn's own (a start and a
// step coprime with the number of keys, both from a hash of pn), so j = 0,
// 1, ..., EscrowPlaces-1 visit every key once, and acceptances that start
// on emptied places go separate ways rather than all to the next one.
func EscrowPlace(pn ParticipantID, maxParticipants int64, j int) int {
	n := EscrowPlaces(maxParticipants)
	if n == 0 {
		return 0
	}
	first, step := placeProbe(pn, n)
	return (first + j%n*step) % n
}

// placeProbe returns pn's first place of n and its step.
func placeProbe(pn ParticipantID, n int) (first, step int) {
	sum := sha256.Sum256([]byte("medx/place/" + string(pn)))
	first = int(binary.BigEndian.Uint64(sum[:8]) % uint64(n))
	if n == 1 {
		return first, 0
	}
	step = 1 + int(binary.BigEndian.Uint64(sum[8:16])%uint64(n-1))
	for gcd(step, n) != 1 {
		step = step%(n-1) + 1
	}
	return first, step
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// placeKey is the key of place i of request req.
func placeKey(req RequestID, i int) string {
	return key(pPlace, string(req), fmt.Sprintf("%04x", i))
}

// placeAmounts returns what each place key of a new request holds: its
// budget (reward x max participants) spread over EscrowPlaces keys, each
// a multiple of the reward, the first ones one place more.
func placeAmounts(reward Amount, maxParticipants int64) []Amount {
	n := EscrowPlaces(maxParticipants)
	out := make([]Amount, n)
	for i := range out {
		places := maxParticipants / int64(n)
		if int64(i) < maxParticipants%int64(n) {
			places++
		}
		out[i] = reward * Amount(places)
	}
	return out
}
