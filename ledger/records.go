package ledger

import (
	"encoding/json"
	"time"
)

// ParticipantID names a participant. Sponsors, boards, custodians and the
// operator have chosen ids ("acme-pharma"); patients appear only under
// per-study pseudonyms derived from their per-study key (PseudonymID).
type ParticipantID string

// RequestID, LicenceID, QueryID, NotebookRunID and DatasetID derive from the
// id of the transaction that created the record.
type (
	RequestID     string
	LicenceID     string
	QueryID       string
	NotebookRunID string
	DatasetID     string
)

// Role is what a participant may do.
type Role string

const (
	RoleOperator    Role = "operator" // runs the exchange, mints MedTokens
	RoleSponsor     Role = "sponsor"
	RolePatient     Role = "patient" // always a per-study pseudonym
	RoleEthicsBoard Role = "ethics_board"
	RoleCustodian   Role = "custodian"
)

// Amount is a quantity of MedTokens in integer units.
type Amount int64

// Epsilon is a differential-privacy budget in millionths (1.0 = 1_000_000):
// the contract keeps no floats in state.
type Epsilon int64

// EpsilonFromFloat converts a float epsilon to millionths, rounding to nearest.
func EpsilonFromFloat(f float64) Epsilon { return Epsilon(f*1e6 + 0.5) }

// Float returns e as a float.
func (e Epsilon) Float() float64 { return float64(e) / 1e6 }

// Participant is a registered actor with its Ed25519 public key.
type Participant struct {
	ID        ParticipantID `json:"id"`
	Role      Role          `json:"role"`
	Name      string        `json:"name,omitempty"`
	PublicKey []byte        `json:"publicKey"`
	// Custodian is set for patient pseudonyms: the custodian that
	// certified the pseudonym as one of its patients.
	Custodian  ParticipantID `json:"custodian,omitempty"`
	Registered time.Time     `json:"registered"`
}

// RequestStatus is the life-cycle state of a cohort request.
type RequestStatus string

const (
	StatusPending  RequestStatus = "pending_approval" // posted, waiting for an ethics board
	StatusOpen     RequestStatus = "open"             // approved: patients see it, licences and queries allowed
	StatusRejected RequestStatus = "rejected"
	StatusClosed   RequestStatus = "closed" // closed by the sponsor
	StatusHalted   RequestStatus = "halted" // halted by an ethics board
	// StatusExpired: its recruitment deadline passed and ExpireRequest
	// refunded the unspent escrow.
	StatusExpired RequestStatus = "expired"
)

// RequestStatuses returns every request status, in life-cycle order.
func RequestStatuses() []RequestStatus {
	return []RequestStatus{StatusPending, StatusOpen, StatusRejected, StatusClosed, StatusHalted, StatusExpired}
}

// RequestDraft is what a sponsor posts.
type RequestDraft struct {
	Title            string   `json:"title"`
	Purpose          string   `json:"purpose"`
	Criteria         string   `json:"criteria"` // WHERE expression of the cohorts query language
	Scope            []string `json:"scope"`    // data categories licensed (cohorts categories)
	RewardPerPatient Amount   `json:"rewardPerPatient"`
	MaxParticipants  int64    `json:"maxParticipants"`
	LicenceSeconds   int64    `json:"licenceSeconds"` // licence length
	// RecruitUntil, when set, is the request's deadline (stored in UTC).
	// From then on, by ledger time, the request accepts no licence and
	// authorises no query, and anyone registered may settle it with
	// ExpireRequest, which refunds the unspent escrow. Zero: no deadline.
	RecruitUntil time.Time `json:"recruitUntil,omitzero"`
}

// PastDeadline reports whether ledger time t is at or after the request's
// deadline; a request without one never is.
func (d RequestDraft) PastDeadline(t time.Time) bool {
	return !d.RecruitUntil.IsZero() && !t.Before(d.RecruitUntil)
}

// Request is a cohort request as the ledger holds it.
type Request struct {
	ID      RequestID     `json:"id"`
	Sponsor ParticipantID `json:"sponsor"`
	RequestDraft
	Budget       Amount        `json:"budget"` // reward x max participants, escrowed at posting
	Escrow       Amount        `json:"escrow"` // what is left in escrow
	Status       RequestStatus `json:"status"`
	Posted       time.Time     `json:"posted"`
	Participants int64         `json:"participants"` // licences granted so far
	Approval     *Approval     `json:"approval,omitempty"`
	Decision     *Decision     `json:"decision,omitempty"` // rejection, halt, close or expiry
}

// StatusAt is the status the contract gives the request at ledger time t:
// a pending or open request past its deadline counts as expired (it
// accepts no licence and authorises no query) even before ExpireRequest
// records it and refunds its escrow.
func (r Request) StatusAt(t time.Time) RequestStatus {
	if (r.Status == StatusPending || r.Status == StatusOpen) && r.PastDeadline(t) {
		return StatusExpired
	}
	return r.Status
}

// ApprovalTerms are the disclosure limits an ethics board sets.
type ApprovalTerms struct {
	MinCell       int64   `json:"minCell"`
	EpsilonBudget Epsilon `json:"epsilonBudget"`
	Reason        string  `json:"reason,omitempty"`
}

// Approval records an ethics board's approval and the budget spent since.
type Approval struct {
	ApprovalTerms
	Board        ParticipantID `json:"board"`
	At           time.Time     `json:"at"`
	EpsilonSpent Epsilon       `json:"epsilonSpent"`
}

// Decision records a rejection, halt, close or expiry.
type Decision struct {
	By     ParticipantID `json:"by"`
	At     time.Time     `json:"at"`
	Reason string        `json:"reason,omitempty"`
}

// LicenceTerms are what a patient signs when accepting an offer. They must
// equal the request's terms at the time of acceptance.
type LicenceTerms struct {
	Request        RequestID `json:"request"`
	Scope          []string  `json:"scope"`
	LicenceSeconds int64     `json:"licenceSeconds"`
	Reward         Amount    `json:"reward"`
}

// Certificate is a custodian's statement that a pseudonymous key belongs to
// one of its patients, for one request, without saying which patient.
type Certificate struct {
	Custodian ParticipantID `json:"custodian"`
	Signature []byte        `json:"signature"` // over CertificateBytes(request, key)
}

// Acceptance is the payload of an accept action, signed by the pseudonym key.
type Acceptance struct {
	Terms       LicenceTerms `json:"terms"`
	PublicKey   []byte       `json:"publicKey"` // the per-study pseudonym key
	Certificate Certificate  `json:"certificate"`
}

// Licence is a patient's time-limited licence for a request.
type Licence struct {
	ID        LicenceID     `json:"id"`
	Request   RequestID     `json:"request"`
	Patient   ParticipantID `json:"patient"` // pseudonym
	Custodian ParticipantID `json:"custodian"`
	Scope     []string      `json:"scope"`
	Reward    Amount        `json:"reward"`
	Granted   time.Time     `json:"granted"`
	Expires   time.Time     `json:"expires"`
	Revoked   *time.Time    `json:"revoked,omitempty"`
}

// ActiveAt reports whether l is in force at t: granted, unexpired, unrevoked.
func (l Licence) ActiveAt(t time.Time) bool {
	if t.Before(l.Granted) || !t.Before(l.Expires) {
		return false
	}
	return l.Revoked == nil || t.Before(*l.Revoked)
}

// Covers reports whether the licence's scope includes every category.
func (l Licence) Covers(categories []string) bool {
	for _, c := range categories {
		found := false
		for _, s := range l.Scope {
			if s == c {
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

// QueryDraft asks the ledger to authorise a query: the request must be
// open, the sponsor its owner, the budget sufficient; epsilon is charged.
type QueryDraft struct {
	Request    RequestID `json:"request"`
	QueryHash  string    `json:"queryHash"`  // hex SHA-256 of the normalised query text
	Categories []string  `json:"categories"` // data categories the query reads
	Epsilon    Epsilon   `json:"epsilon"`
}

// LicenceRef is one licence a query may use.
type LicenceRef struct {
	Licence   LicenceID     `json:"licence"`
	Patient   ParticipantID `json:"patient"`
	Custodian ParticipantID `json:"custodian"`
}

// QueryStatus is the state of a query record.
type QueryStatus string

const (
	QueryAuthorized QueryStatus = "authorized"
	QueryCompleted  QueryStatus = "completed"
	QueryFailed     QueryStatus = "failed"
)

// QueryRecord is the ledger's record of one query.
type QueryRecord struct {
	ID             QueryID       `json:"id"`
	Request        RequestID     `json:"request"`
	Sponsor        ParticipantID `json:"sponsor"`
	QueryHash      string        `json:"queryHash"`
	Categories     []string      `json:"categories"`
	Licences       int64         `json:"licences"`       // how many licences were in force
	LicencesDigest string        `json:"licencesDigest"` // hex SHA-256 over the sorted licence ids
	EpsilonCharged Epsilon       `json:"epsilonCharged"`
	Status         QueryStatus   `json:"status"`
	Authorized     time.Time     `json:"authorized"`
	Completed      *time.Time    `json:"completed,omitempty"`
	// Disclosure is the privacy package's account of what was applied
	// (suppressed cells, noise, epsilon), as canonical JSON.
	Disclosure json.RawMessage `json:"disclosure,omitempty"`
	ResultHash string          `json:"resultHash,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// QueryAuthorization is AuthorizeQuery's result: the record and exactly the
// licences in force at the transaction's time whose scope covers the query.
type QueryAuthorization struct {
	Query    QueryRecord  `json:"query"`
	Licences []LicenceRef `json:"licences"` // sorted by licence id
}

// QueryCompletion closes a query record.
type QueryCompletion struct {
	Query      QueryID         `json:"query"`
	Disclosure json.RawMessage `json:"disclosure,omitempty"`
	ResultHash string          `json:"resultHash,omitempty"`
	Error      string          `json:"error,omitempty"` // set when the query failed after authorisation
}

// NotebookCell is one cell of a recorded notebook run.
type NotebookCell struct {
	Name       string  `json:"name"`
	Query      QueryID `json:"query,omitempty"`
	QueryHash  string  `json:"queryHash"`
	ResultHash string  `json:"resultHash,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// NotebookRunDraft is what a sponsor records after running a notebook.
type NotebookRunDraft struct {
	Request      RequestID      `json:"request"`
	NotebookHash string         `json:"notebookHash"`
	Cells        []NotebookCell `json:"cells"`
}

// NotebookRun is a recorded notebook run.
type NotebookRun struct {
	ID      NotebookRunID `json:"id"`
	Sponsor ParticipantID `json:"sponsor"`
	NotebookRunDraft
	At time.Time `json:"at"`
}

// DatasetManifest is a custodian-signed description of a dataset: the
// whitepaper's "pointer" to data that stays with the custodian.
type DatasetManifest struct {
	ContentHash string `json:"contentHash"`
	SchemaHash  string `json:"schemaHash"`
	Rows        int64  `json:"rows"`
	RefDate     string `json:"refDate"` // YYYY-MM-DD
	Location    string `json:"location"`
}

// Dataset is a registered manifest.
type Dataset struct {
	ID        DatasetID     `json:"id"`
	Custodian ParticipantID `json:"custodian"`
	DatasetManifest
	Registered time.Time `json:"registered"`
}

// TokenSummary is the MedToken supply and where it sits. The contract keeps
// Minted == Balances + Escrow at all times.
type TokenSummary struct {
	Minted   Amount `json:"minted"`
	Balances Amount `json:"balances"`
	Escrow   Amount `json:"escrow"`
}
