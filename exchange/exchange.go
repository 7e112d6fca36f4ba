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
	"slices"
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
}

// DefaultConfig is the configuration of a real exchange.
func DefaultConfig() Config { return Config{Noise: true, DefaultEpsilon: 0.25} }

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
	crit, err := cohorts.ParseCriteria(d.Criteria)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("request criteria: %w: %w", ErrInvalid, err)
	}
	d.Criteria = crit.String()
	for _, c := range crit.Categories() {
		if !slices.Contains(d.Scope, c) {
			return ledger.Request{}, fmt.Errorf("request criteria read %q data, which the licence scope %v does not cover: %w", c, d.Scope, ErrInvalid)
		}
	}
	r, err := ex.led.PostRequest(ctx, sponsor, d)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("post request: %w", err)
	}
	return r, nil
}

// Approve records an ethics board's approval with its disclosure limits.
func (ex *Exchange) Approve(ctx context.Context, board ledger.Signer, id ledger.RequestID, t ledger.ApprovalTerms) (ledger.Request, error) {
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
		bal, err := ex.led.Balance(ctx, pn)
		if err != nil {
			return PatientView{}, fmt.Errorf("balance of %s: %w", pn, err)
		}
		v.Balance += bal
		v.Licences = append(v.Licences, lics...)
		for _, l := range lics {
			qs, err := ex.led.LicenceQueries(ctx, l.ID)
			if err != nil {
				return PatientView{}, fmt.Errorf("queries that used %s: %w", l.ID, err)
			}
			v.Accesses = append(v.Accesses, qs...)
		}
	}
	return v, nil
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
func (ex *Exchange) Query(ctx context.Context, sponsor ledger.Signer, sponsorPub []byte, id ledger.RequestID, src string, opt QueryOptions) (*QueryResult, error) {
	q, err := cohorts.ParseQuery(src)
	if err != nil {
		return nil, fmt.Errorf("query: %w: %w", ErrInvalid, err)
	}
	eps := opt.Epsilon
	if eps == 0 {
		eps = ex.cfg.DefaultEpsilon
	}
	if eps < 0 {
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
	res, err := ex.compute(ctx, q, spec, auth, sponsorPub)
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
		"suppressed", len(res.Disclosure.SuppressedSlots), "epsilon", eps)
	return res, nil
}

// spec describes q's aggregate vector to the privacy layer.
func (ex *Exchange) spec(q *cohorts.Query, minCell int64, eps float64) privacy.Spec {
	lay := q.Layout()
	slots := make([]privacy.SlotSpec, len(lay.Slots))
	for i, s := range lay.Slots {
		kind := privacy.SlotSum
		if s.Kind == cohorts.SlotCount {
			kind = privacy.SlotCount
		}
		slots[i] = privacy.SlotSpec{Cell: s.Cell, Group: s.Group, Gate: s.Gate, Kind: kind, Sensitivity: s.Sensitivity, MaxAbs: s.MaxAbs}
	}
	var records int64
	for _, c := range ex.custodians {
		records += c.Dataset().Rows()
	}
	return privacy.Spec{Slots: slots, Records: records, MinCell: minCell, Epsilon: eps, Noise: ex.cfg.Noise}
}

// holders are every key holder of the collective key: custodians, then boards.
func (ex *Exchange) holders() []*privacy.KeyHolder {
	hs := make([]*privacy.KeyHolder, 0, len(ex.custodians)+len(ex.boards))
	for _, c := range ex.custodians {
		hs = append(hs, c.KeyHolder())
	}
	return append(hs, ex.boards...)
}

// compute runs the two-round federated protocol: gate on noisy counts, then
// release of the unsuppressed vector to the sponsor. In one process the
// exchange calls every party; each call is what that party would compute on
// its own node, and only ciphertexts and shares pass between them.
func (ex *Exchange) compute(ctx context.Context, q *cohorts.Query, spec privacy.Spec, auth ledger.QueryAuthorization, sponsorPub []byte) (*QueryResult, error) {
	byCustodian := map[ledger.ParticipantID][]ledger.ParticipantID{}
	for _, l := range auth.Licences {
		byCustodian[l.Custodian] = append(byCustodian[l.Custodian], l.Patient)
	}
	for id := range byCustodian {
		if _, err := ex.custodian(id); err != nil {
			return nil, fmt.Errorf("licence held by an unreachable custodian: %w", err)
		}
	}
	// Each custodian aggregates its licensed patients in the clear, locally.
	vecs := make([][]int64, len(ex.custodians))
	var wg sync.WaitGroup
	errs := make([]error, len(ex.custodians))
	for i, c := range ex.custodians {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vecs[i], errs[i] = c.Contribute(ctx, q, byCustodian[c.ID()])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	holders := ex.holders()
	noise := make([]*privacy.NoiseShare, len(holders))
	for i, h := range holders {
		n, err := h.DrawNoise(spec, len(holders))
		if err != nil {
			return nil, fmt.Errorf("key holder %s: noise: %w", h.ID(), err)
		}
		noise[i] = n
	}

	// Round 1: gate. Only count-like slots are encrypted and decrypted.
	var cts [][]byte
	for i, c := range ex.custodians {
		ct, err := privacy.EncryptCounts(ex.params, ex.pk, spec, vecs[i])
		if err != nil {
			return nil, fmt.Errorf("custodian %s: encrypt counts: %w", c.ID(), err)
		}
		cts = append(cts, ct)
	}
	for i, n := range noise {
		ct, err := n.EncryptCounts(ex.params, ex.pk)
		if err != nil {
			return nil, fmt.Errorf("key holder %s: encrypt noise: %w", holders[i].ID(), err)
		}
		cts = append(cts, ct)
	}
	counts, err := privacy.Add(ex.params, cts...)
	if err != nil {
		return nil, fmt.Errorf("add count ciphertexts: %w", err)
	}
	shares := make([][]byte, len(holders))
	for i, h := range holders {
		if shares[i], err = h.DecryptShare(counts); err != nil {
			return nil, fmt.Errorf("key holder %s: decryption share: %w", h.ID(), err)
		}
	}
	noisy, err := privacy.CombineDecrypt(ex.params, counts, shares, len(spec.Slots))
	if err != nil {
		return nil, fmt.Errorf("combine gate decryption: %w", err)
	}
	suppressed := privacy.Gate(spec, noisy)

	// Round 2: release. Suppressed slots are zeroed at their sources.
	cts = cts[:0]
	for i, c := range ex.custodians {
		ct, err := privacy.EncryptPayload(ex.params, ex.pk, spec, vecs[i], suppressed)
		if err != nil {
			return nil, fmt.Errorf("custodian %s: encrypt payload: %w", c.ID(), err)
		}
		cts = append(cts, ct)
	}
	for i, n := range noise {
		ct, err := n.EncryptPayload(ex.params, ex.pk, suppressed)
		if err != nil {
			return nil, fmt.Errorf("key holder %s: encrypt noise: %w", holders[i].ID(), err)
		}
		cts = append(cts, ct)
	}
	payload, err := privacy.Add(ex.params, cts...)
	if err != nil {
		return nil, fmt.Errorf("add payload ciphertexts: %w", err)
	}
	for i, h := range holders {
		if shares[i], err = h.SwitchShare(payload, sponsorPub); err != nil {
			return nil, fmt.Errorf("key holder %s: key-switch share: %w", h.ID(), err)
		}
	}
	out, err := privacy.CombineSwitch(ex.params, payload, shares)
	if err != nil {
		return nil, fmt.Errorf("combine key switch: %w", err)
	}
	var idx []int
	for i, s := range suppressed {
		if s {
			idx = append(idx, i)
		}
	}
	mech := "none"
	if spec.Noise {
		mech = "discrete-laplace"
	}
	return &QueryResult{
		Ciphertext: out,
		Suppressed: suppressed,
		Disclosure: privacy.Disclosure{
			MinCell:         spec.MinCell,
			SuppressedSlots: idx,
			Mechanism:       mech,
			NoiseScales:     spec.NoiseScales(),
			EpsilonSpent:    spec.Epsilon,
			KeyHolders:      len(holders),
		},
	}, nil
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
