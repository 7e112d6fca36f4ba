// Package exchange is MedX's domain service: a study's life from a sponsor's
// cohort request, through ethics approval, patients' signed acceptances and
// revocations, to aggregate queries answered under homomorphic encryption
// and disclosure control, and the ethics board's audit. It keeps no
// authoritative state of its own: the ledger is the source of truth.
package exchange

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// Config holds the exchange's policy knobs.
type Config struct {
	// Noise adds calibrated disclosure noise to every released value. It is
	// on in every real deployment; tests turn it off to compare encrypted
	// results with plaintext ones, and each result says which applied.
	Noise bool
	// DefaultEpsilon is the budget a query spends when the sponsor names none.
	DefaultEpsilon float64
	// Feasibility is the policy of feasibility counts; zero fields take
	// the defaults (see FeasibilityPolicy).
	Feasibility FeasibilityPolicy
}

// DefaultConfig is the configuration of a real exchange.
func DefaultConfig() Config {
	return Config{Noise: true, DefaultEpsilon: 0.25, Feasibility: DefaultFeasibilityPolicy()}
}

// Exchange runs studies over the ledger, the custodians' nodes and the
// collective key.
type Exchange struct {
	led        *ledger.Client
	operator   ledger.Signer
	params     privacy.Params
	pk         *privacy.PublicKey
	custodians []*Custodian         // sorted by id
	boards     []*privacy.KeyHolder // ethics boards' key shares
	cfg        Config
	log        *slog.Logger
	studies    sync.Map // ledger.RequestID -> *sync.Mutex, see lockStudy
	asks       sync.Map // criteria hash + data digest -> *sync.Mutex, see Feasibility
	reqs       requestsAt
}

// New returns an exchange. Every custodian and every board key holder took
// part in the ceremony that produced pk.
func New(led *ledger.Client, operator ledger.Signer, params privacy.Params, pk *privacy.PublicKey,
	custodians []*Custodian, boards []*privacy.KeyHolder, cfg Config, log *slog.Logger) *Exchange {
	cs := slices.Clone(custodians)
	slices.SortFunc(cs, func(a, b *Custodian) int { return cmp.Compare(a.ID(), b.ID()) })
	return &Exchange{led: led, operator: operator, params: params, pk: pk, custodians: cs, boards: boards, cfg: cfg, log: log}
}

// Ledger is the typed ledger client the exchange runs on.
func (ex *Exchange) Ledger() *ledger.Client { return ex.led }

// Params are the encryption parameters of the collective key.
func (ex *Exchange) Params() privacy.Params { return ex.params }

// Custodians are the custodians' nodes, sorted by id.
func (ex *Exchange) Custodians() []*Custodian { return ex.custodians }

func (ex *Exchange) custodian(id ledger.ParticipantID) (*Custodian, error) {
	for _, c := range ex.custodians {
		if c.ID() == id {
			return c, nil
		}
	}
	return nil, fmt.Errorf("custodian %q: %w", id, ErrNoCustodian)
}

// PostRequest validates a sponsor's cohort request (its criteria must parse
// in the cohort query language) and posts it; the budget moves to escrow.
func (ex *Exchange) PostRequest(ctx context.Context, sponsor ledger.Signer, d ledger.RequestDraft) (ledger.Request, error) {
	crit, err := CheckCriteria(d.Criteria, d.Scope)
	if err != nil {
		return ledger.Request{}, err
	}
	d.Criteria = crit.Normalised
	r, err := ex.led.PostRequest(ctx, sponsor, d)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("post request: %w", err)
	}
	return r, nil
}

// Disclosure limits a study gets when its ethics board sets none.
const (
	DefaultMinCell      = 10
	DefaultStudyEpsilon = 1.0
)

// Approve records an ethics board's approval with its disclosure limits.
// A zero MinCell or EpsilonBudget takes the default (DefaultMinCell,
// DefaultStudyEpsilon); a negative one is refused by the ledger.
func (ex *Exchange) Approve(ctx context.Context, board ledger.Signer, id ledger.RequestID, t ledger.ApprovalTerms) (ledger.Request, error) {
	if t.MinCell == 0 {
		t.MinCell = DefaultMinCell
	}
	if t.EpsilonBudget == 0 {
		t.EpsilonBudget = ledger.EpsilonFromFloat(DefaultStudyEpsilon)
	}
	r, err := ex.led.ApproveRequest(ctx, board, id, t)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("approve %s: %w", id, err)
	}
	return r, nil
}

// Reject records an ethics board's rejection; the escrow is refunded.
func (ex *Exchange) Reject(ctx context.Context, board ledger.Signer, id ledger.RequestID, reason string) (ledger.Request, error) {
	r, err := ex.led.RejectRequest(ctx, board, id, reason)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("reject %s: %w", id, err)
	}
	return r, nil
}

// Offer is an open request that matches a patient's record.
type Offer struct {
	Request   ledger.Request
	Pseudonym ledger.ParticipantID // the patient's id in this study, should they accept
}

// Offers lists the open requests whose criteria the patient's record meets
// and that the patient has not yet accepted. Requests not approved by an
// ethics board are never offered.
func (ex *Exchange) Offers(ctx context.Context, p *Patient) ([]Offer, error) {
	c, err := ex.custodian(p.Custodian)
	if err != nil {
		return nil, err
	}
	reqs, err := ex.led.Requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	var offers []Offer
	for _, r := range reqs {
		if r.Status != ledger.StatusOpen || r.Participants >= r.MaxParticipants {
			continue
		}
		ok, err := c.Matches(ctx, r, p.RecordID)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		pn := p.Pseudonym(r.ID)
		if _, err := ex.led.Participant(ctx, pn); err == nil {
			continue // already accepted
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("look up pseudonym: %w", err)
		}
		offers = append(offers, Offer{Request: r, Pseudonym: pn})
	}
	return offers, nil
}

// Accept has the patient accept request id: the custodian certifies the
// patient's per-study key, the patient signs the licence terms with it, and
// the ledger verifies both, records the licence and pays the reward.
func (ex *Exchange) Accept(ctx context.Context, p *Patient, id ledger.RequestID) (ledger.Licence, error) {
	c, err := ex.custodian(p.Custodian)
	if err != nil {
		return ledger.Licence{}, err
	}
	r, err := ex.led.Request(ctx, id)
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("accept %s: %w", id, err)
	}
	if r.Status != ledger.StatusOpen {
		return ledger.Licence{}, fmt.Errorf("accept %s (status %s): %w", id, r.Status, ErrNotOffered)
	}
	key := p.StudyKey(id)
	cert, err := c.Certify(ctx, r, p.RecordID, key.Public())
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("accept %s: %w", id, err)
	}
	lic, err := ex.led.AcceptOffer(ctx, key, ledger.Acceptance{
		Terms:       TermsOf(r),
		PublicKey:   key.Public(),
		Certificate: cert,
	})
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("accept %s: %w", id, err)
	}
	return lic, nil
}

// TermsOf is what a patient signs to accept r.
func TermsOf(r ledger.Request) ledger.LicenceTerms {
	return ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient}
}

// Revoke has the patient revoke a licence: every later query excludes it;
// results released before stay released.
func (ex *Exchange) Revoke(ctx context.Context, p *Patient, id ledger.LicenceID) (ledger.Licence, error) {
	lic, err := ex.led.Licence(ctx, id)
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("revoke %s: %w", id, err)
	}
	l, err := ex.led.RevokeLicence(ctx, p.StudyKey(lic.Request), id)
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("revoke %s: %w", id, err)
	}
	return l, nil
}

// PatientView is what a patient sees of their own participation.
type PatientView struct {
	Licences []ledger.Licence
	Accesses []ledger.QueryRecord // queries that used one of the patient's licences
	Balance  ledger.Amount        // earned across the patient's pseudonyms
}

// Patient collects the patient's licences, earnings and access history from
// the ledger, by deriving the patient's pseudonym in every request.
func (ex *Exchange) Patient(ctx context.Context, p *Patient) (PatientView, error) {
	reqs, err := ex.led.Requests(ctx)
	if err != nil {
		return PatientView{}, fmt.Errorf("list requests: %w", err)
	}
	var v PatientView
	for _, r := range reqs {
		pn := p.Pseudonym(r.ID)
		lics, err := ex.led.PatientLicences(ctx, pn)
		if err != nil {
			return PatientView{}, fmt.Errorf("licences of %s: %w", pn, err)
		}
		if len(lics) == 0 {
			continue
		}
		if err := ex.addToView(ctx, &v, pn, lics); err != nil {
			return PatientView{}, err
		}
	}
	return v, nil
}

// addToView adds pseudonym pn's licences lics, its balance and the queries
// that used its licences to v.
func (ex *Exchange) addToView(ctx context.Context, v *PatientView, pn ledger.ParticipantID, lics []ledger.Licence) error {
	bal, err := ex.led.Balance(ctx, pn)
	if err != nil {
		return fmt.Errorf("balance of %s: %w", pn, err)
	}
	v.Balance += bal
	v.Licences = append(v.Licences, lics...)
	for _, l := range lics {
		qs, err := ex.led.LicenceQueries(ctx, l.ID)
		if err != nil {
			return fmt.Errorf("queries that used %s: %w", l.ID, err)
		}
		v.Accesses = append(v.Accesses, qs...)
	}
	return nil
}

// QueryOptions tune one query.
type QueryOptions struct {
	Epsilon float64 // 0 means the exchange's default
}

// QueryResult is what the sponsor receives: a ciphertext only the sponsor's
// key opens, and the account of the disclosure control applied.
type QueryResult struct {
	Record     ledger.QueryRecord
	Query      string // normalised query text
	Ciphertext []byte
	Suppressed []bool
	Disclosure privacy.Disclosure
}

// HashQuery is the ledger's hash of a normalised query text.
func HashQuery(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// Query runs an aggregate query for the sponsor of request id over the
// patients whose licence is in force at the query's ledger time, encrypted
// end to end, and returns the result switched to sponsorPub.
//
// Before anything is charged or computed the query is checked, and refused
// with the ledger unchanged: its shape and value bounds (privacy.Spec.Check,
// ErrRefused), the sponsor (ledger.ErrForbidden), the study's status
// (ledger.ErrState) and budget (ledger.ErrBudget), and the differencing rule
// against every earlier released query of the study (privacy.CheckDifferencing,
// ErrRefused wrapping privacy.ErrDifferencing): two cohorts that differ by
// fewer than the minimum cell size among patients licensed both times are
// never both released. Queries of one study run one at a time in an
// exchange, so that each is checked against all those released before it.
func (ex *Exchange) Query(ctx context.Context, sponsor ledger.Signer, sponsorPub []byte, id ledger.RequestID, src string, opt QueryOptions) (*QueryResult, error) {
	q, err := cohorts.ParseQuery(src)
	if err != nil {
		return nil, fmt.Errorf("query: %w: %w", ErrInvalid, err)
	}
	eps := opt.Epsilon
	if eps == 0 {
		eps = ex.cfg.DefaultEpsilon
	}
	if eps < 0 || math.IsNaN(eps) || math.IsInf(eps, 0) {
		return nil, fmt.Errorf("query epsilon %g: %w", eps, ErrInvalid)
	}
	r, err := ex.led.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", id, err)
	}
	if r.Approval == nil {
		return nil, fmt.Errorf("query %s (status %s): %w", id, r.Status, ledger.ErrState)
	}
	spec := ex.spec(q, r.Approval.MinCell, eps)
	// Refuse before anything is charged or computed.
	if err := spec.Check(ex.params); err != nil {
		return nil, fmt.Errorf("query: %w: %w", ErrRefused, err)
	}
	if sponsor.ID != r.Sponsor {
		return nil, fmt.Errorf("query %s: %s is not its sponsor: %w", id, sponsor.ID, ledger.ErrForbidden)
	}
	if r.Status != ledger.StatusOpen {
		return nil, fmt.Errorf("query %s (status %s): %w", id, r.Status, ledger.ErrState)
	}
	if left := r.Approval.EpsilonBudget - r.Approval.EpsilonSpent; ledger.EpsilonFromFloat(eps) > left {
		return nil, fmt.Errorf("query %s: epsilon %g exceeds the %g left: %w", id, eps, left.Float(), ledger.ErrBudget)
	}
	unlock := ex.lockStudy(id)
	defer unlock()
	earlier, err := ex.releasedQueries(ctx, id)
	if err != nil {
		return nil, err
	}
	records, err := ex.licensedRecords(ctx, id, q.Categories(), time.Now())
	if err != nil {
		return nil, err
	}
	// Fewer licensed patients than the minimum cell: every value would be
	// suppressed, so refuse before the budget is charged. The licence count
	// is on the ledger already; refusing reveals nothing new.
	if n := countRecords(records); int64(n) < r.Approval.MinCell {
		return nil, fmt.Errorf("query %s: %d licences in force cover the data it reads (%s), fewer than the minimum cell of %d; nothing was charged: %w",
			id, n, strings.Join(q.Categories(), ", "), r.Approval.MinCell, ErrTooFewLicences)
	}
	chk, err := ex.checkDifferencing(ctx, q, records, earlier, r.Approval.MinCell)
	if err != nil {
		return nil, fmt.Errorf("query: %w: differencing check failed, refusing: %w", ErrRefused, err)
	}
	if chk.refusal != nil {
		return nil, fmt.Errorf("query: %w: %w", ErrRefused, chk.refusal)
	}
	text := q.String()
	auth, err := ex.led.AuthorizeQuery(ctx, sponsor, ledger.QueryDraft{
		Request:    id,
		QueryHash:  HashQuery(text),
		Categories: q.Categories(),
		Epsilon:    ledger.EpsilonFromFloat(eps),
	})
	if err != nil {
		return nil, fmt.Errorf("authorise query on %s: %w", id, err)
	}
	res, err := ex.compute(ctx, q, spec, auth, sponsorPub, chk)
	if err != nil {
		// The budget stays spent: a failed query may still have revealed
		// something (at least its noisy counts to the key holders).
		if _, cerr := ex.led.CompleteQuery(ctx, ex.operator, ledger.QueryCompletion{Query: auth.Query.ID, Error: err.Error()}); cerr != nil {
			err = errors.Join(err, fmt.Errorf("record failure: %w", cerr))
		}
		return nil, fmt.Errorf("query %s: %w", auth.Query.ID, err)
	}
	res.Query = text
	after, err := ex.led.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", id, err)
	}
	res.Disclosure.EpsilonLeft = (after.Approval.EpsilonBudget - after.Approval.EpsilonSpent).Float()
	disc, err := json.Marshal(res.Disclosure)
	if err != nil {
		return nil, fmt.Errorf("encode disclosure: %w", err)
	}
	sum := sha256.Sum256(res.Ciphertext)
	rec, err := ex.led.CompleteQuery(ctx, ex.operator, ledger.QueryCompletion{
		Query:      auth.Query.ID,
		Disclosure: disc,
		ResultHash: hex.EncodeToString(sum[:]),
	})
	if err != nil {
		return nil, fmt.Errorf("record query %s: %w", auth.Query.ID, err)
	}
	res.Record = rec
	ex.log.InfoContext(ctx, "query released", "query", rec.ID, "request", id, "licences", rec.Licences,
		"suppressed", len(res.Disclosure.SuppressedSlots), "epsilon", eps, "compared", res.Disclosure.Differencing.Compared)
	return res, nil
}

// lockStudy serialises the queries of one study in this exchange, so that
// each one's differencing check sees every query released before it.
func (ex *Exchange) lockStudy(id ledger.RequestID) (unlock func()) { return lockKey(&ex.studies, id) }

// lockKey locks the mutex of key k in locks, created on first use.
func lockKey(locks *sync.Map, k any) (unlock func()) {
	m, _ := locks.LoadOrStore(k, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// releasedQueries are the ids of the study's completed queries: those whose
// results reached the sponsor.
func (ex *Exchange) releasedQueries(ctx context.Context, id ledger.RequestID) ([]ledger.QueryID, error) {
	qs, err := ex.led.Queries(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queries of %s: %w", id, err)
	}
	var out []ledger.QueryID
	for _, q := range qs {
		if q.Status == ledger.QueryCompleted {
			out = append(out, q.ID)
		}
	}
	return out, nil
}

// licensedRecords are, per custodian (in ex.custodians order), the records
// whose licence for request id is in force at t and covers categories: the
// patients a query at t would read. The ledger fixes the real set when it
// authorises the query; compute checks again if it differs.
func (ex *Exchange) licensedRecords(ctx context.Context, id ledger.RequestID, categories []string, t time.Time) ([][]string, error) {
	lics, err := ex.led.Licences(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("licences of %s: %w", id, err)
	}
	var refs []ledger.LicenceRef
	for _, l := range lics {
		if l.ActiveAt(t) && l.Covers(categories) {
			refs = append(refs, ledger.LicenceRef{Licence: l.ID, Patient: l.Patient, Custodian: l.Custodian})
		}
	}
	return ex.recordsOf(refs)
}

// countRecords is the number of record ids over all custodians.
func countRecords(records [][]string) int {
	n := 0
	for _, r := range records {
		n += len(r)
	}
	return n
}

// recordsOf maps licences to each custodian's record ids (in ex.custodians
// order, each sorted).
func (ex *Exchange) recordsOf(refs []ledger.LicenceRef) ([][]string, error) {
	byCustodian := map[ledger.ParticipantID][]ledger.ParticipantID{}
	for _, l := range refs {
		byCustodian[l.Custodian] = append(byCustodian[l.Custodian], l.Patient)
	}
	for id := range byCustodian {
		if _, err := ex.custodian(id); err != nil {
			return nil, fmt.Errorf("licence held by an unreachable custodian: %w", err)
		}
	}
	out := make([][]string, len(ex.custodians))
	for i, c := range ex.custodians {
		r, err := c.Records(byCustodian[c.ID()])
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// spec describes q's aggregate vector to the privacy layer, for this
// exchange's custodians and noise setting.
func (ex *Exchange) spec(q *cohorts.Query, minCell int64, eps float64) privacy.Spec {
	var records int64
	for _, c := range ex.custodians {
		records += c.Dataset().Rows()
	}
	return QuerySpec(q, records, minCell, eps, ex.cfg.Noise)
}

// QuerySpec describes q's aggregate vector to the privacy layer: one slot
// per slot of q's layout, over at most records patients (every custodian's
// rows), with the study's minimum cell and the query's epsilon. Benchmarks
// and tools that drive privacy.RunLocal directly use it too.
func QuerySpec(q *cohorts.Query, records, minCell int64, eps float64, noise bool) privacy.Spec {
	lay := q.Layout()
	slots := make([]privacy.SlotSpec, len(lay.Slots))
	for i, s := range lay.Slots {
		kind := privacy.SlotSum
		if s.Kind == cohorts.SlotCount {
			kind = privacy.SlotCount
		}
		slots[i] = privacy.SlotSpec{Cell: s.Cell, Group: s.Group, Gate: s.Gate, Kind: kind, Sensitivity: s.Sensitivity, MaxAbs: s.MaxAbs}
	}
	return privacy.Spec{Slots: slots, Records: records, MinCell: minCell, Epsilon: eps, Noise: noise}
}

// holders are every key holder of the collective key: custodians, then boards.
func (ex *Exchange) holders() []*privacy.KeyHolder {
	hs := make([]*privacy.KeyHolder, 0, len(ex.custodians)+len(ex.boards))
	for _, c := range ex.custodians {
		hs = append(hs, c.KeyHolder())
	}
	return append(hs, ex.boards...)
}

// compute runs the federated protocol for an authorised query. In one
// process the exchange calls every party; each call is what that party would
// compute on its own node, and only ciphertexts, shares and capped counts
// pass between them:
//
//  1. each custodian aggregates its licensed patients in the clear and
//     encrypts its vector together with its share of the noise; each ethics
//     board encrypts its share of the noise: one message per party;
//  2. the exchange sums them and selects the count-like slots; the key
//     holders decrypt those only, and the exchange applies the small-cell
//     rule to the noisy counts (and withholds cells under the minimum);
//  3. the exchange selects the released slots; the key holders switch them
//     to the sponsor's key.
//
// If the licences the ledger fixed differ from those the differencing check
// saw, it is run again on the real set. Each custodian keeps the query's
// cohort for the checks of later queries.
func (ex *Exchange) compute(ctx context.Context, q *cohorts.Query, spec privacy.Spec, auth ledger.QueryAuthorization, sponsorPub []byte, chk *differencingCheck) (*QueryResult, error) {
	records, err := ex.recordsOf(auth.Licences)
	if err != nil {
		return nil, err
	}
	if !chk.sameRecords(records) {
		if chk, err = ex.checkDifferencing(ctx, q, records, chk.earlier, spec.MinCell); err != nil {
			return nil, fmt.Errorf("differencing check: %w", err)
		}
		if chk.refusal != nil {
			return nil, fmt.Errorf("%w: the licences changed while the query was authorised: %w", ErrRefused, chk.refusal)
		}
	}
	for i, c := range ex.custodians {
		if err := c.rememberCohort(auth.Query.ID, chk.cohorts[i]); err != nil {
			return nil, err
		}
	}
	// Each custodian aggregates its licensed patients in the clear, locally.
	vecs := make([][]int64, len(ex.custodians))
	if err := each(len(ex.custodians), func(i int) (err error) {
		vecs[i], err = ex.custodians[i].aggregate(ctx, q, records[i])
		return err
	}); err != nil {
		return nil, err
	}

	// 1 and 2: one message per party, summed; the gate decrypts the counts.
	sum, noisy, holders, err := ex.gateRound(spec, vecs)
	if err != nil {
		return nil, err
	}
	k := len(holders)
	shares := make([][]byte, k)
	suppressed := privacy.Gate(spec, noisy)
	for i, sl := range spec.Slots {
		if slices.Contains(chk.verdict.SmallCells, sl.Cell) {
			suppressed[i] = true
		}
	}

	// 3. Release: only the unsuppressed slots of the layout, to the sponsor.
	releaseCT, err := privacy.SelectRelease(ex.params, spec, suppressed, sum)
	if err != nil {
		return nil, fmt.Errorf("select release: %w", err)
	}
	if err := each(k, func(i int) (err error) {
		if shares[i], err = holders[i].SwitchShare(releaseCT, sponsorPub); err != nil {
			return fmt.Errorf("key holder %s: key-switch share: %w", holders[i].ID(), err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out, err := privacy.CombineSwitch(ex.params, releaseCT, shares)
	if err != nil {
		return nil, fmt.Errorf("combine key switch: %w", err)
	}
	disc := privacy.NewDisclosure(spec, suppressed, k)
	// The ledger charged the epsilon whether or not noise is on (off only in
	// tests); the account says what was charged.
	disc.EpsilonSpent = spec.Epsilon
	verdict := chk.verdict
	disc.Differencing = &verdict
	return &QueryResult{Ciphertext: out, Suppressed: suppressed, Disclosure: disc}, nil
}

// gateRound runs the first two steps of the protocol over the custodians'
// vectors vecs (in ex.custodians order), for compute and for feasibility
// counts:
//
//  1. one message per party: a custodian holds a key share too, so it adds
//     its own noise share to its vector and sends one ciphertext; an ethics
//     board sends its noise share alone; the exchange sums them;
//  2. the gate: only the count-like slots of the sum are selected, and the
//     key holders decrypt those alone.
//
// It returns the sum (for the release), the noisy counts and the key
// holders (custodians first, then boards).
func (ex *Exchange) gateRound(spec privacy.Spec, vecs [][]int64) (sum []byte, noisy []int64, holders []*privacy.KeyHolder, err error) {
	holders = ex.holders()
	nc, k := len(ex.custodians), len(holders)
	msgs := make([][]byte, k)
	if err := each(k, func(i int) error {
		h := holders[i]
		n, err := h.DrawNoise(spec, k)
		if err != nil {
			return fmt.Errorf("key holder %s: noise: %w", h.ID(), err)
		}
		if i < nc {
			msgs[i], err = n.EncryptWith(ex.params, ex.pk, spec, vecs[i])
		} else {
			msgs[i], err = n.Encrypt(ex.params, ex.pk)
		}
		if err != nil {
			return fmt.Errorf("key holder %s: encrypt: %w", h.ID(), err)
		}
		return nil
	}); err != nil {
		return nil, nil, nil, err
	}
	if sum, err = privacy.Add(ex.params, msgs...); err != nil {
		return nil, nil, nil, fmt.Errorf("add ciphertexts: %w", err)
	}
	gateCT, err := privacy.SelectCounts(ex.params, spec, sum)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("select counts: %w", err)
	}
	shares := make([][]byte, k)
	if err := each(k, func(i int) (err error) {
		if shares[i], err = holders[i].DecryptShare(gateCT); err != nil {
			return fmt.Errorf("key holder %s: decryption share: %w", holders[i].ID(), err)
		}
		return nil
	}); err != nil {
		return nil, nil, nil, err
	}
	if noisy, err = privacy.CombineDecrypt(ex.params, gateCT, shares, len(spec.Slots)); err != nil {
		return nil, nil, nil, fmt.Errorf("combine gate decryption: %w", err)
	}
	if !privacy.Plausible(spec, noisy) {
		return nil, nil, nil, errors.New("gate: the noisy counts are implausible: a key holder's share is missing or wrong")
	}
	return sum, noisy, holders, nil
}

// each runs f(0..n-1) on up to GOMAXPROCS goroutines: the parties of one
// protocol step, as if on their own nodes. It returns the errors joined.
func each(n int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Decrypt opens a query result with the sponsor's own key, on the sponsor's
// side, and turns it into the result table.
func (r *QueryResult) Decrypt(sk *privacy.SponsorKey) (*cohorts.Table, error) {
	q, err := cohorts.ParseQuery(r.Query)
	if err != nil {
		return nil, fmt.Errorf("result query: %w", err)
	}
	vec, err := sk.Decrypt(r.Ciphertext, len(r.Suppressed))
	if err != nil {
		return nil, fmt.Errorf("decrypt result: %w", err)
	}
	return q.Finalize(vec, r.Suppressed)
}

// AuditSummary is what an ethics board sees of the whole trail.
type AuditSummary struct {
	Report          ledger.AuditReport
	Requests        int
	LicencesActive  int
	LicencesRevoked int
	LicencesExpired int
	Queries         int
	Tokens          ledger.TokenSummary
	At              time.Time
}

// Conserved reports whether balances and escrow add up to the minted supply.
func (a AuditSummary) Conserved() bool {
	return a.Tokens.Balances+a.Tokens.Escrow == a.Tokens.Minted
}

// Audit verifies the ledger independently (when the backend can) and
// summarises licences, queries and tokens as of now.
func (ex *Exchange) Audit(ctx context.Context, now time.Time) (AuditSummary, error) {
	var s AuditSummary
	s.At = now
	if a, ok := ex.led.Backend().(ledger.Auditor); ok {
		rep, err := a.Verify(ctx)
		if err != nil {
			return s, fmt.Errorf("verify ledger: %w", err)
		}
		s.Report = rep
	}
	reqs, err := ex.led.Requests(ctx)
	if err != nil {
		return s, fmt.Errorf("list requests: %w", err)
	}
	s.Requests = len(reqs)
	for _, r := range reqs {
		lics, err := ex.led.Licences(ctx, r.ID)
		if err != nil {
			return s, fmt.Errorf("licences of %s: %w", r.ID, err)
		}
		for _, l := range lics {
			switch {
			case l.Revoked != nil:
				s.LicencesRevoked++
			case l.ActiveAt(now):
				s.LicencesActive++
			default:
				s.LicencesExpired++
			}
		}
		qs, err := ex.led.Queries(ctx, r.ID)
		if err != nil {
			return s, fmt.Errorf("queries of %s: %w", r.ID, err)
		}
		s.Queries += len(qs)
	}
	if s.Tokens, err = ex.led.Tokens(ctx); err != nil {
		return s, fmt.Errorf("token summary: %w", err)
	}
	return s, nil
}

// KeyCeremony runs the collective public-key generation between the key
// holders (every custodian and ethics board) in one process; crs is the
// public seed they agreed on. Each holder's secret share stays in its object.
func KeyCeremony(p privacy.Params, crs []byte, holders []*privacy.KeyHolder) (*privacy.PublicKey, error) {
	shares := make([][]byte, len(holders))
	for i, h := range holders {
		s, err := h.PublicKeyShare(crs)
		if err != nil {
			return nil, fmt.Errorf("key holder %s: public-key share: %w", h.ID(), err)
		}
		shares[i] = s
	}
	pk, err := privacy.CollectivePublicKey(p, crs, shares)
	if err != nil {
		return nil, fmt.Errorf("collective public key: %w", err)
	}
	return pk, nil
}
