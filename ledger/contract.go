package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Names of the contract's state-changing functions (Contract.Invoke). Each
// takes one argument: a JSON-encoded Action whose Fn is the same name.
const (
	FnBootstrap           = "Bootstrap"
	FnRegisterParticipant = "RegisterParticipant"
	FnMint                = "Mint"
	FnTransfer            = "Transfer"
	FnPostRequest         = "PostRequest"
	FnApproveRequest      = "ApproveRequest"
	FnRejectRequest       = "RejectRequest"
	FnHaltRequest         = "HaltRequest"
	FnCloseRequest        = "CloseRequest"
	FnExpireRequest       = "ExpireRequest"
	FnAcceptOffer         = "AcceptOffer"
	FnRevokeLicence       = "RevokeLicence"
	FnAuthorizeQuery      = "AuthorizeQuery"
	FnCompleteQuery       = "CompleteQuery"
	FnRecordNotebookRun   = "RecordNotebookRun"
	FnRegisterDataset     = "RegisterDataset"
	FnAskFeasibility      = "AskFeasibility"
	FnCompleteFeasibility = "CompleteFeasibility"
)

// Names of the contract's read-only functions (Contract.Query). Their
// arguments are JSON-encoded ids, in the order given.
const (
	FnGetParticipant      = "GetParticipant"      // (ParticipantID) -> Participant
	FnListParticipants    = "ListParticipants"    // () -> []Participant
	FnGetRequest          = "GetRequest"          // (RequestID) -> Request
	FnListRequests        = "ListRequests"        // () -> []Request
	FnGetLicence          = "GetLicence"          // (LicenceID) -> Licence
	FnListLicences        = "ListLicences"        // (RequestID) -> []Licence
	FnListPatientLicences = "ListPatientLicences" // (ParticipantID) -> []Licence
	FnListLicenceQueries  = "ListLicenceQueries"  // (LicenceID) -> []QueryRecord that used the licence
	FnBalance             = "Balance"             // (ParticipantID) -> Amount
	FnTokenSummary        = "TokenSummary"        // () -> TokenSummary
	FnGetQuery            = "GetQuery"            // (QueryID) -> QueryRecord
	FnListQueries         = "ListQueries"         // (RequestID) -> []QueryRecord
	FnGetNotebookRun      = "GetNotebookRun"      // (NotebookRunID) -> NotebookRun
	FnGetDataset          = "GetDataset"          // (DatasetID) -> Dataset
	FnListDatasets        = "ListDatasets"        // () -> []Dataset
	FnGetFeasibility      = "GetFeasibility"      // (FeasibilityID) -> FeasibilityRecord
	FnListFeasibility     = "ListFeasibility"     // (ParticipantID) -> []FeasibilityRecord of that sponsor, by ask time (ties by id)
)

// InvokeFunctions returns the names of the state-changing functions.
func InvokeFunctions() []string {
	return []string{FnBootstrap, FnRegisterParticipant, FnMint, FnTransfer,
		FnPostRequest, FnApproveRequest, FnRejectRequest, FnHaltRequest, FnCloseRequest,
		FnExpireRequest, FnAcceptOffer, FnRevokeLicence, FnAuthorizeQuery, FnCompleteQuery,
		FnRecordNotebookRun, FnRegisterDataset, FnAskFeasibility, FnCompleteFeasibility}
}

// QueryFunctions returns the names of the read-only functions.
func QueryFunctions() []string {
	return []string{FnGetParticipant, FnListParticipants, FnGetRequest, FnListRequests,
		FnGetLicence, FnListLicences, FnListPatientLicences, FnListLicenceQueries,
		FnBalance, FnTokenSummary, FnGetQuery, FnListQueries, FnGetNotebookRun,
		FnGetDataset, FnListDatasets, FnGetFeasibility, FnListFeasibility}
}

// Names of the events the contract emits. Every payload is an EventPayload.
const (
	EventParticipantRegistered = "participant_registered"
	EventRequestPosted         = "request_posted"
	EventRequestApproved       = "request_approved"
	EventRequestRejected       = "request_rejected"
	EventRequestHalted         = "request_halted"
	EventRequestClosed         = "request_closed"
	EventRequestExpired        = "request_expired"
	EventLicenceGranted        = "licence_granted"
	EventLicenceRevoked        = "licence_revoked"
	EventQueryAuthorized       = "query_authorized"
	EventQueryCompleted        = "query_completed"
	EventNotebookRecorded      = "notebook_recorded"
	EventDatasetRegistered     = "dataset_registered"
	EventFeasibilityAsked      = "feasibility_asked"
	EventFeasibilityReleased   = "feasibility_released"
)

// EventPayload is the JSON payload of every contract event: ids,
// pseudonyms and amounts only, never personal data. Fields that do not
// apply to an event are empty.
type EventPayload struct {
	Participant ParticipantID `json:"participant,omitempty"`
	Request     RequestID     `json:"request,omitempty"`
	Sponsor     ParticipantID `json:"sponsor,omitempty"`
	Licence     LicenceID     `json:"licence,omitempty"`
	Patient     ParticipantID `json:"patient,omitempty"` // pseudonym
	Custodian   ParticipantID `json:"custodian,omitempty"`
	Query       QueryID       `json:"query,omitempty"`
	NotebookRun NotebookRunID `json:"notebookRun,omitempty"`
	Dataset     DatasetID     `json:"dataset,omitempty"`
	Feasibility FeasibilityID `json:"feasibility,omitempty"`
	Amount      Amount        `json:"amount,omitempty"`
	Licences    int64         `json:"licences,omitempty"`
	// LicencesDigest is the query's LicencesDigest (query events).
	LicencesDigest string  `json:"licencesDigest,omitempty"`
	Epsilon        Epsilon `json:"epsilon,omitempty"`
	Status         string  `json:"status,omitempty"`
}

// Payloads of the state-changing functions that have no record type of
// their own.
type (
	// BootstrapArgs registers the first operator. The action is signed by
	// PublicKey itself and its actor is ID.
	BootstrapArgs struct {
		ID        ParticipantID `json:"id"`
		Name      string        `json:"name"`
		PublicKey []byte        `json:"publicKey"`
	}
	// Registration registers a sponsor, ethics board, custodian or operator.
	Registration struct {
		ID        ParticipantID `json:"id"`
		Role      Role          `json:"role"`
		Name      string        `json:"name"`
		PublicKey []byte        `json:"publicKey"`
	}
	// MintArgs creates Amount MedTokens in To's balance.
	MintArgs struct {
		To     ParticipantID `json:"to"`
		Amount Amount        `json:"amount"`
	}
	// TransferArgs moves Amount from the actor's balance to To's.
	TransferArgs struct {
		To     ParticipantID `json:"to"`
		Amount Amount        `json:"amount"`
	}
	// ApproveArgs opens a pending request under the board's terms.
	ApproveArgs struct {
		Request RequestID `json:"request"`
		ApprovalTerms
	}
	// DecisionArgs rejects, halts, closes or expires a request.
	DecisionArgs struct {
		Request RequestID `json:"request"`
		Reason  string    `json:"reason,omitempty"`
	}
	// RevokeArgs revokes a licence.
	RevokeArgs struct {
		Licence LicenceID `json:"licence"`
	}
)

// Data categories a request may license and a query may read.
const (
	CategoryDemographics = "demographics"
	CategoryConditions   = "conditions"
	CategoryLabs         = "labs"
	CategoryVitals       = "vitals"
	CategoryMedications  = "medications"
)

// DataCategories returns the categories the contract accepts.
func DataCategories() []string {
	return []string{CategoryDemographics, CategoryConditions, CategoryLabs, CategoryVitals, CategoryMedications}
}

// Limits on free text and lengths, so that one action cannot bloat the state.
const (
	maxName           = 200
	maxTitle          = 300
	maxText           = 8000 // purpose, criteria
	maxReason         = 2000
	maxLocation       = 2000
	maxNotebookCells  = 1000
	maxLicenceSeconds = 100 * 365 * 24 * 3600
)

// Contract is the MedX state machine. It is deterministic: everything it
// derives comes from the TxContext and the State, so every replica computes
// the same writes and results. The zero value is ready; NewContract returns
// one that also remembers the records it decoded.
type Contract struct {
	cache *recordCache // nil: decode every record read
}

// NewContract returns a Contract that remembers the participant and
// request records its invocations decode, keyed by their exact stored
// bytes, so that reading an unchanged record again needs no decoding. It
// computes exactly what Contract{} computes, and is safe for concurrent
// use; a backend keeps one for its lifetime.
func NewContract() Contract { return Contract{cache: newRecordCache()} }

// Invoke runs a state-changing function. args must be exactly one
// JSON-encoded Action with Fn == fn, signed by its actor. Nothing is written
// unless the call succeeds: every check runs before the first write.
//
// Errors match ErrUnknownMethod, ErrInvalid, ErrForbidden, ErrBadSignature,
// ErrReplay, ErrNotFound, ErrExists, ErrState, ErrFunds or ErrBudget.
func (ct Contract) Invoke(tx TxContext, st State, fn string, args [][]byte) (result []byte, ev *Event, err error) {
	return ct.InvokePrepared(tx, st, ct.Prepare(fn, args))
}

// InvokePrepared is Invoke of a call decoded ahead by Prepare: Invoke(tx,
// st, fn, args) and InvokePrepared(tx, st, Prepare(fn, args)) are the same
// in every result, event, write and error. A Prepared is used once.
func (ct Contract) InvokePrepared(tx TxContext, st State, p *Prepared) (result []byte, ev *Event, err error) {
	if p.err != nil {
		return nil, nil, p.err
	}
	c := &call{tx: tx, ts: tx.Timestamp.UTC(), st: st, cache: ct.cache, act: p.act, acceptance: p.acceptance,
		writes: make([]write, 0, 8)} // an acceptance writes 7 keys with its nonce
	if err := c.authenticate(p); err != nil {
		return nil, nil, err
	}
	result, ev, err = p.handler(c)
	if err != nil {
		return nil, nil, err
	}
	// The nonce is the last write, so a failed call never consumes it.
	c.put(key(pNonce, string(c.act.Actor), c.act.Nonce), []byte(tx.TxID))
	for _, w := range c.writes {
		if w.del {
			if err := st.Delete(w.key); err != nil {
				return nil, nil, fmt.Errorf("%s: delete %s: %w", p.fn, w.key, err)
			}
			continue
		}
		if err := st.Put(w.key, w.value); err != nil {
			return nil, nil, fmt.Errorf("%s: write %s: %w", p.fn, w.key, err)
		}
	}
	return result, ev, nil
}

func invokeHandler(fn string) func(*call) ([]byte, *Event, error) {
	switch fn {
	case FnBootstrap:
		return (*call).bootstrap
	case FnRegisterParticipant:
		return (*call).registerParticipant
	case FnMint:
		return (*call).mint
	case FnTransfer:
		return (*call).transfer
	case FnPostRequest:
		return (*call).postRequest
	case FnApproveRequest:
		return (*call).approveRequest
	case FnRejectRequest:
		return (*call).rejectRequest
	case FnHaltRequest:
		return (*call).haltRequest
	case FnCloseRequest:
		return (*call).closeRequest
	case FnExpireRequest:
		return (*call).expireRequest
	case FnAcceptOffer:
		return (*call).acceptOffer
	case FnRevokeLicence:
		return (*call).revokeLicence
	case FnAuthorizeQuery:
		return (*call).authorizeQuery
	case FnCompleteQuery:
		return (*call).completeQuery
	case FnRecordNotebookRun:
		return (*call).recordNotebookRun
	case FnRegisterDataset:
		return (*call).registerDataset
	case FnAskFeasibility:
		return (*call).askFeasibility
	case FnCompleteFeasibility:
		return (*call).completeFeasibility
	}
	return nil
}

// call is one Invoke in progress. Handlers only read the state and queue
// writes; Invoke applies the queue once the handler has succeeded.
type call struct {
	tx     TxContext
	ts     time.Time
	st     State
	cache  *recordCache // the contract's; nil for none
	act    Action
	actor  Participant // the registered actor; zero for Bootstrap and AcceptOffer
	writes []write
	// acceptance is AcceptOffer's payload, decoded by authenticate.
	acceptance *Acceptance
}

type write struct {
	key   string
	value []byte
	del   bool // delete key (value unused)
}

// absent returns nil when nothing is stored at k and an error matching
// ErrExists when something is, without decoding it: checking that a new
// record's key is free, on every acceptance, costs one read.
func (c *call) absent(k string) error {
	v, err := c.st.Get(k)
	switch {
	case err != nil:
		return fmt.Errorf("read %s: %w", k, err)
	case v != nil:
		return ErrExists
	}
	return nil
}

func (c *call) put(k string, v []byte) { c.writes = append(c.writes, write{key: k, value: v}) }

func (c *call) del(k string) { c.writes = append(c.writes, write{key: k, del: true}) }

func (c *call) putJSON(k string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", k, err)
	}
	c.put(k, b)
	return nil
}

func (c *call) putAmount(k string, a Amount) { c.put(k, []byte(strconv.FormatInt(int64(a), 10))) }

// Prepared is a state-changing call decoded and checked as far as that
// is possible without the state: the function, the action's encoding, its
// nonce's form and, for Bootstrap and AcceptOffer, the payload and the key
// that signs it. Preparing is pure, so a backend may prepare transactions
// in parallel, ahead of the single-threaded apply.
type Prepared struct {
	fn      string
	handler func(*call) ([]byte, *Event, error)
	act     Action
	signing []byte // act.SigningBytes()
	pub     []byte // Bootstrap and AcceptOffer: the signing key in the payload
	// acceptance is AcceptOffer's payload.
	acceptance *Acceptance
	err        error // the first problem found; InvokePrepared returns it
}

// Prepare decodes a call of fn with args for InvokePrepared.
func (Contract) Prepare(fn string, args [][]byte) *Prepared {
	p := &Prepared{fn: fn, handler: invokeHandler(fn)}
	if p.handler == nil {
		p.err = fmt.Errorf("invoke %q: %w", fn, ErrUnknownMethod)
		return p
	}
	p.err = p.decode(args)
	return p
}

// decode decodes the action and checks what needs no state.
func (p *Prepared) decode(args [][]byte) error {
	fn := p.fn
	if len(args) != 1 {
		return fmt.Errorf("%s: want 1 argument (a signed action), got %d: %w", fn, len(args), ErrInvalid)
	}
	// An acceptance in canonical form is decoded, payload and all, without
	// encoding/json; anything else goes through decodeStrict.
	var acc *Acceptance
	if fn == FnAcceptOffer {
		if act, c, ok := decodeCanonicalAccept(args[0]); ok {
			p.act, acc = act, c
		}
	}
	if acc == nil {
		if err := decodeStrict(args[0], &p.act); err != nil {
			return fmt.Errorf("%s: decode action: %w", fn, err)
		}
	}
	a := p.act
	if a.Fn != fn {
		return fmt.Errorf("%s: action is for %q: %w", fn, a.Fn, ErrInvalid)
	}
	if !isNonce(a.Nonce) {
		return fmt.Errorf("%s: nonce must be 32 lowercase hex digits: %w", fn, ErrInvalid)
	}
	p.signing = a.SigningBytes()
	switch fn {
	case FnBootstrap:
		var b BootstrapArgs
		if err := decodeStrict(a.Payload, &b); err != nil {
			return fmt.Errorf("%s: decode payload: %w", fn, err)
		}
		if b.ID != a.Actor {
			return fmt.Errorf("%s: actor %s is not the bootstrapped id %s: %w", fn, a.Actor, b.ID, ErrInvalid)
		}
		p.pub = b.PublicKey
	case FnAcceptOffer:
		if acc == nil {
			acc = new(Acceptance)
			if err := decodeStrict(a.Payload, acc); err != nil {
				return fmt.Errorf("%s: decode payload: %w", fn, err)
			}
		}
		p.acceptance = acc // decoded once
		if len(acc.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("%s: pseudonym key must be %d bytes: %w", fn, ed25519.PublicKeySize, ErrInvalid)
		}
		if want := PseudonymID(acc.PublicKey); a.Actor != want {
			return fmt.Errorf("%s: actor %s is not the pseudonym %s of the payload key: %w", fn, a.Actor, want, ErrInvalid)
		}
		p.pub = acc.PublicKey
	default:
		return nil // the actor's key is in the state
	}
	if err := CheckPublicKey(p.pub); err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	return nil
}

// authenticate checks the prepared action's signature against the actor's
// registered key (or the key in the payload for Bootstrap and AcceptOffer)
// and refuses a replayed nonce.
func (c *call) authenticate(p *Prepared) error {
	fn, a, pub := p.fn, c.act, p.pub
	if pub == nil {
		reg, err := c.participant(a.Actor)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%s: actor %q is not registered: %w", fn, a.Actor, ErrForbidden)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", fn, err)
		}
		c.actor = reg
		pub = reg.PublicKey
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%s: public key must be %d bytes: %w", fn, ed25519.PublicKeySize, ErrInvalid)
		}
	}
	if !c.tx.verifySig(pub, p.signing, a.Sig) {
		return fmt.Errorf("action %s by %s: %w", a.Fn, a.Actor, ErrBadSignature)
	}
	used, err := c.st.Get(key(pNonce, string(a.Actor), a.Nonce))
	if err != nil {
		return fmt.Errorf("%s: read nonce: %w", fn, err)
	}
	if used != nil {
		return fmt.Errorf("%s: nonce %s of %s already used: %w", fn, a.Nonce, a.Actor, ErrReplay)
	}
	return nil
}

// payload decodes the action's payload strictly into v.
func (c *call) payload(v any) error {
	if err := decodeStrict(c.act.Payload, v); err != nil {
		return fmt.Errorf("%s: decode payload: %w", c.act.Fn, err)
	}
	return nil
}

// requireRole refuses an actor without one of roles.
func (c *call) requireRole(roles ...Role) error {
	for _, r := range roles {
		if c.actor.Role == r {
			return nil
		}
	}
	return fmt.Errorf("%s: %s is a %s, not a %s: %w", c.act.Fn, c.actor.ID, c.actor.Role, roles[0], ErrForbidden)
}

// event builds an Event with a JSON payload.
func event(name string, p EventPayload) (*Event, error) {
	b, err := encodeEventPayload(p)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", name, err)
	}
	return &Event{Name: name, Payload: b}, nil
}

// encodeResult marshals a handler's result together with its event.
func encodeResult(v any, name string, p EventPayload) ([]byte, *Event, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, nil, fmt.Errorf("encode result: %w", err)
	}
	return withEvent(b, name, p)
}

// withEvent returns an encoded result together with its event.
func withEvent(result []byte, name string, p EventPayload) ([]byte, *Event, error) {
	if name == "" {
		return result, nil, nil
	}
	ev, err := event(name, p)
	if err != nil {
		return nil, nil, err
	}
	return result, ev, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if len(bytes.TrimLeft(b[d.InputOffset():], " \t\r\n")) != 0 {
		return fmt.Errorf("trailing data after JSON value: %w", ErrInvalid)
	}
	return nil
}

// Reading helpers. Each returns ErrNotFound for an absent record.

func getJSON(st State, k string, v any) (bool, error) {
	b, err := st.Get(k)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", k, err)
	}
	if b == nil {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", k, err)
	}
	return true, nil
}

func getParticipant(st State, id ParticipantID) (Participant, error) {
	return readParticipant(nil, st, id)
}

func getRequest(st State, id RequestID) (Request, error) { return readRequest(nil, st, id) }

func getAmount(st State, k string) (Amount, error) {
	b, err := st.Get(k)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", k, err)
	}
	if b == nil {
		return 0, nil
	}
	return parseAmount(k, b)
}

func parseAmount(k string, b []byte) (Amount, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decode %s: %w", k, err)
	}
	return Amount(n), nil
}

func getBalance(st State, id ParticipantID) (Amount, error) {
	return getAmount(st, key(pBalance, string(id)))
}

// getIndexed reads a record through a "<index>/<id> -> request id" entry.
func getIndexed(st State, index, records, id string, v any) (RequestID, error) {
	req, err := st.Get(key(index, id))
	if err != nil {
		return "", fmt.Errorf("read %s%s: %w", index, id, err)
	}
	if req == nil {
		return "", ErrNotFound
	}
	ok, err := getJSON(st, key(records, string(req), id), v)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("index %s%s points to a missing record: %w", index, id, ErrNotFound)
	}
	return RequestID(req), nil
}

func getLicence(st State, id LicenceID) (Licence, error) {
	var l Licence
	if _, err := getIndexed(st, pLicenceIndex, pLicence, string(id), &l); err != nil {
		return Licence{}, fmt.Errorf("licence %q: %w", id, err)
	}
	return l, nil
}

func getQuery(st State, id QueryID) (QueryRecord, error) {
	var q QueryRecord
	if _, err := getIndexed(st, pQueryIndex, pQuery, string(id), &q); err != nil {
		return QueryRecord{}, fmt.Errorf("query %q: %w", id, err)
	}
	return q, nil
}

// rangeJSON decodes every value under prefix, in key order.
func rangeJSON[T any](st State, prefix string) ([]T, error) {
	out := []T{}
	err := st.Range(prefix, prefixEnd(prefix), func(k string, v []byte) (bool, error) {
		var t T
		if decodeCanonicalRecord(&t, v) {
			out = append(out, t)
			return true, nil
		}
		if err := json.Unmarshal(v, &t); err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		out = append(out, t)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", prefix, err)
	}
	return out, nil
}

// Validation helpers.

// ValidParticipantID reports whether id is a valid chosen participant id:
// 3 to 64 characters from [a-z0-9-]. Pseudonyms (PseudonymID) are valid ids
// too, but only AcceptOffer may create one.
func ValidParticipantID(id ParticipantID) bool {
	if len(id) < 3 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
			return false
		}
	}
	return true
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return false
		}
	}
	return true
}

func isNonce(s string) bool { return isLowerHex(s, 32) }

// isHash reports whether s is a lowercase hex SHA-256.
func isHash(s string) bool { return isLowerHex(s, 64) }

// isRecordID reports whether s looks like an id derived by deriveID with
// the given prefix; it keeps arbitrary strings out of state keys.
func isRecordID(prefix, s string) bool {
	return len(s) == len(prefix)+17 && s[:len(prefix)+1] == prefix+"-" && isLowerHex(s[len(prefix)+1:], 16)
}

// checkText refuses an empty (when required), overlong or non-UTF-8 text.
func checkText(field, s string, required bool, max int) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%s is empty: %w", field, ErrInvalid)
	case len(s) > max:
		return fmt.Errorf("%s is longer than %d bytes: %w", field, max, ErrInvalid)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8: %w", field, ErrInvalid)
	}
	return nil
}

// checkCategories refuses unknown or repeated categories, and an empty
// list when nonEmpty.
func checkCategories(field string, cats []string, nonEmpty bool) error {
	if nonEmpty && len(cats) == 0 {
		return fmt.Errorf("%s is empty: %w", field, ErrInvalid)
	}
	seen := make(map[string]bool, len(cats))
	for _, c := range cats {
		known := false
		for _, k := range DataCategories() {
			if c == k {
				known = true
			}
		}
		if !known {
			return fmt.Errorf("%s: unknown data category %q: %w", field, c, ErrInvalid)
		}
		if seen[c] {
			return fmt.Errorf("%s: category %q repeated: %w", field, c, ErrInvalid)
		}
		seen[c] = true
	}
	return nil
}

// sameSet reports whether a and b hold the same strings, ignoring order
// (both are free of repeats once validated).
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// hexOf is hex.EncodeToString, named for readability at call sites.
func hexOf(b []byte) string { return hex.EncodeToString(b) }

// Fn returns the prepared call's function name.
func (p *Prepared) Fn() string { return p.fn }
