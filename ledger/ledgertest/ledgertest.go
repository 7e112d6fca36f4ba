// Package ledgertest is the conformance suite every MedX ledger backend
// runs (as perkeep's storagetest and tailscale's storetest): the whole
// contract exercised through the typed ledger.Client, with MedToken
// conservation checked after every step.
package ledgertest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
)

// Clock is a manual clock for backends under test; the suite advances it to
// expire licences.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Opener opens a fresh, empty backend whose ledger time follows clock.
// It registers its own cleanup with t.
type Opener func(t *testing.T, clock func() time.Time) ledger.Backend

// Run runs the conformance suite against the backends open returns. Each
// subtest opens its own empty backend.
func Run(t *testing.T, open func(t *testing.T, clock func() time.Time) ledger.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Bootstrap", testBootstrap},
		{"Participants", testParticipants},
		{"Tokens", testTokens},
		{"RequestLifecycle", testRequestLifecycle},
		{"RequestRefunds", testRequestRefunds},
		{"RequestExpiry", testRequestExpiry},
		{"AcceptOffer", testAcceptOffer},
		{"AcceptOfferRefusals", testAcceptOfferRefusals},
		{"Revoke", testRevoke},
		{"QueryAuthorization", testQueryAuthorization},
		{"QueryCompletionAndNotebooks", testQueryCompletionAndNotebooks},
		{"Replay", testReplay},
		{"Determinism", testDeterminism},
		{"Datasets", testDatasets},
		{"Feasibility", testFeasibility},
		{"ConcurrentAccepts", testConcurrentAccepts},
		{"RawCalls", testRawCalls},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// suiteStart is where every suite clock starts.
func suiteStart() time.Time { return time.Date(2030, 3, 1, 9, 0, 0, 0, time.UTC) }

const (
	day          = 24 * time.Hour
	sponsorFunds = ledger.Amount(10_000)
)

// env is one backend with the standing cast registered and funded.
type env struct {
	t     *testing.T
	ctx   context.Context
	c     *ledger.Client
	clock *Clock

	op, sponsor, sponsor2, board, cust, cust2 ledger.Signer
}

// signer returns a participant with a key derived from its name, so that
// two runs of a scenario use the same keys.
func signer(id string) ledger.Signer {
	seed := sha256.Sum256([]byte("medx/ledgertest/" + id))
	return ledger.Signer{ID: ledger.ParticipantID(id), Key: ed25519.NewKeyFromSeed(seed[:])}
}

// pseudonym returns a patient's per-study key, derived from a name.
// smallOrderKey is the encoding of the identity point: a public key of
// small order, under which ZIP-215 accepts R = identity, S = 0 as a
// signature of any message.
func smallOrderKey() ed25519.PublicKey {
	k := make(ed25519.PublicKey, ed25519.PublicKeySize)
	k[0] = 1
	return k
}

func pseudonym(name string) ledger.Signer {
	seed := sha256.Sum256([]byte("medx/ledgertest/pseudonym/" + name))
	k := ed25519.NewKeyFromSeed(seed[:])
	return ledger.Signer{ID: ledger.PseudonymID(k.Public().(ed25519.PublicKey)), Key: k}
}

// newBare opens a backend with nothing on it.
func newBare(t *testing.T, open Opener) *env {
	t.Helper()
	clock := NewClock(suiteStart())
	b := open(t, clock.Now)
	return &env{
		t: t, ctx: t.Context(), c: ledger.NewClient(b), clock: clock,
		op: signer("operator"), sponsor: signer("acme-pharma"), sponsor2: signer("globex-bio"),
		board: signer("ethics-board"), cust: signer("st-marys"), cust2: signer("city-lab"),
	}
}

// newEnv opens a backend, bootstraps the operator, registers the cast and
// funds both sponsors.
func newEnv(t *testing.T, open Opener) *env {
	t.Helper()
	e := newBare(t, open)
	e.must(e.c.Bootstrap(e.ctx, e.op, "MedX Exchange"))
	for _, p := range []struct {
		s    ledger.Signer
		role ledger.Role
		name string
	}{
		{e.sponsor, ledger.RoleSponsor, "Acme Pharma"},
		{e.sponsor2, ledger.RoleSponsor, "Globex Bio"},
		{e.board, ledger.RoleEthicsBoard, "Regional Ethics Board"},
		{e.cust, ledger.RoleCustodian, "St Mary's Hospital"},
		{e.cust2, ledger.RoleCustodian, "City Lab"},
	} {
		e.must(e.c.RegisterParticipant(e.ctx, e.op, ledger.Participant{ID: p.s.ID, Role: p.role, Name: p.name, PublicKey: p.s.Public()}))
	}
	e.must(e.c.Mint(e.ctx, e.op, e.sponsor.ID, sponsorFunds))
	e.must(e.c.Mint(e.ctx, e.op, e.sponsor2.ID, sponsorFunds))
	return e
}

// with returns e reporting to t (a subtest).
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// must fails the test on err, then checks the token invariants.
func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("unexpected error: %v", err)
	}
	e.checkTokens()
}

// refused checks that err matches want, then checks the token invariants.
func (e *env) refused(what string, err, want error) {
	e.t.Helper()
	if !errors.Is(err, want) {
		e.t.Errorf("%s: error = %v, want %v", what, err, want)
	}
	e.checkTokens()
}

// checkTokens checks MedToken conservation two ways: the contract's own
// summary, and a sum over every participant's balance and every request's
// escrow. No balance or escrow is negative, and an active request's escrow
// is exactly the rewards of its places left.
func (e *env) checkTokens() {
	e.t.Helper()
	s, err := e.c.Tokens(e.ctx)
	if err != nil {
		e.t.Fatalf("Tokens: %v", err)
	}
	if s.Minted != s.Balances+s.Escrow {
		e.t.Fatalf("Tokens = %+v: minted != balances + escrow", s)
	}
	ps, err := e.c.Participants(e.ctx)
	if err != nil {
		e.t.Fatalf("Participants: %v", err)
	}
	var bal, esc ledger.Amount
	for _, p := range ps {
		b, err := e.c.Balance(e.ctx, p.ID)
		if err != nil {
			e.t.Fatalf("Balance(%s): %v", p.ID, err)
		}
		if b < 0 {
			e.t.Fatalf("Balance(%s) = %d, negative", p.ID, b)
		}
		bal += b
	}
	rs, err := e.c.Requests(e.ctx)
	if err != nil {
		e.t.Fatalf("Requests: %v", err)
	}
	for _, r := range rs {
		want := ledger.Amount(0)
		if r.Status == ledger.StatusPending || r.Status == ledger.StatusOpen {
			want = r.RewardPerPatient * ledger.Amount(r.MaxParticipants-r.Participants)
		}
		if r.Escrow != want {
			e.t.Fatalf("request %s (%s, %d/%d places) escrow = %d, want %d", r.ID, r.Status, r.Participants, r.MaxParticipants, r.Escrow, want)
		}
		esc += r.Escrow
	}
	if bal != s.Balances || esc != s.Escrow || bal+esc != s.Minted {
		e.t.Fatalf("sum of balances %d + escrows %d vs Tokens %+v", bal, esc, s)
	}
}

// snapshot is everything an action could change, for checking that a
// refused action changed nothing.
type snapshot struct {
	Tokens       ledger.TokenSummary
	Participants []ledger.Participant
	Balances     map[ledger.ParticipantID]ledger.Amount
	Requests     []ledger.Request
	Licences     map[ledger.RequestID][]ledger.Licence
	Queries      map[ledger.RequestID][]ledger.QueryRecord
	Datasets     []ledger.Dataset
	Feasibility  map[ledger.ParticipantID][]ledger.FeasibilityRecord
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	var s snapshot
	var err error
	fail := func(what string, err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatalf("snapshot: %s: %v", what, err)
		}
	}
	s.Tokens, err = e.c.Tokens(e.ctx)
	fail("Tokens", err)
	s.Participants, err = e.c.Participants(e.ctx)
	fail("Participants", err)
	s.Balances = map[ledger.ParticipantID]ledger.Amount{}
	for _, p := range s.Participants {
		s.Balances[p.ID], err = e.c.Balance(e.ctx, p.ID)
		fail("Balance", err)
	}
	s.Requests, err = e.c.Requests(e.ctx)
	fail("Requests", err)
	s.Licences = map[ledger.RequestID][]ledger.Licence{}
	s.Queries = map[ledger.RequestID][]ledger.QueryRecord{}
	for _, r := range s.Requests {
		s.Licences[r.ID], err = e.c.Licences(e.ctx, r.ID)
		fail("Licences", err)
		s.Queries[r.ID], err = e.c.Queries(e.ctx, r.ID)
		fail("Queries", err)
	}
	s.Datasets, err = e.c.Datasets(e.ctx)
	fail("Datasets", err)
	s.Feasibility = map[ledger.ParticipantID][]ledger.FeasibilityRecord{}
	for _, p := range s.Participants {
		if p.Role == ledger.RoleSponsor {
			s.Feasibility[p.ID], err = e.c.Feasibilities(e.ctx, p.ID)
			fail("Feasibilities", err)
		}
	}
	return s
}

// unchanged fails if the state moved since before.
func (e *env) unchanged(what string, before snapshot) {
	e.t.Helper()
	if diff := cmp.Diff(before, e.snapshot()); diff != "" {
		e.t.Errorf("%s changed the ledger (-before +after):\n%s", what, diff)
	}
}

// draft is a valid request draft: reward 10, 5 places, 30-day licences.
func draft() ledger.RequestDraft {
	return ledger.RequestDraft{
		Title:            "HbA1c control in type 2 diabetes",
		Purpose:          "Describe glycaemic control by age band",
		Criteria:         "HAS_CONDITION('44054006') AND age BETWEEN 40 AND 75",
		Scope:            []string{ledger.CategoryDemographics, ledger.CategoryLabs},
		RewardPerPatient: 10,
		MaxParticipants:  5,
		LicenceSeconds:   int64(30 * day / time.Second),
	}
}

func terms() ledger.ApprovalTerms {
	return ledger.ApprovalTerms{MinCell: 10, EpsilonBudget: ledger.EpsilonFromFloat(1.0), Reason: "approved"}
}

// openRequest posts d as sponsor and has the board approve it.
func (e *env) openRequest(sponsor ledger.Signer, d ledger.RequestDraft) ledger.Request {
	e.t.Helper()
	r, err := e.c.PostRequest(e.ctx, sponsor, d)
	e.must(err)
	r, err = e.c.ApproveRequest(e.ctx, e.board, r.ID, terms())
	e.must(err)
	return r
}

// acceptance builds pn's acceptance of r, certified by custodian.
func acceptance(r ledger.Request, pn, custodian ledger.Signer) ledger.Acceptance {
	return ledger.Acceptance{
		Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
		PublicKey:   pn.Public(),
		Certificate: custodian.Certify(r.ID, pn.Public()),
	}
}

// accept has a new pseudonym named name accept r, certified by e.cust.
func (e *env) accept(r ledger.Request, name string) (ledger.Signer, ledger.Licence) {
	e.t.Helper()
	pn := pseudonym(name)
	l, err := e.c.AcceptOffer(e.ctx, pn, acceptance(r, pn, e.cust))
	e.must(err)
	return pn, l
}

func (e *env) request(id ledger.RequestID) ledger.Request {
	e.t.Helper()
	r, err := e.c.Request(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Request(%s): %v", id, err)
	}
	return r
}

func (e *env) balance(id ledger.ParticipantID) ledger.Amount {
	e.t.Helper()
	b, err := e.c.Balance(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Balance(%s): %v", id, err)
	}
	return b
}

// hash returns a hex SHA-256 of s, as a query or result hash.
func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 64)
	for _, b := range sum {
		out = append(out, digits[b>>4], digits[b&15])
	}
	return string(out)
}

func licenceIDs(ls []ledger.Licence) []ledger.LicenceID {
	ids := make([]ledger.LicenceID, len(ls))
	for i, l := range ls {
		ids[i] = l.ID
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
