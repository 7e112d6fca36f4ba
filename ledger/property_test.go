package ledger_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// recState records whether the contract wrote, to check that a failed
// call writes nothing at all (not merely that a backend discarded it).
type recState struct {
	*ledger.MemState
	writes int
	keys   []string // written or deleted by the last call
}

func (r *recState) Put(k string, v []byte) error {
	r.writes++
	r.keys = append(r.keys, k)
	return r.MemState.Put(k, v)
}

func (r *recState) Delete(k string) error {
	r.writes++
	r.keys = append(r.keys, k)
	return r.MemState.Delete(k)
}

// world drives the contract directly over a MemState with random
// operations, valid and not.
type world struct {
	t    *testing.T
	rng  *rand.Rand
	st   *recState
	seed uint64
	step int
	now  time.Time

	op, board, stranger ledger.Signer
	sponsors, custs     []ledger.Signer
	patients            []ledger.Signer // registered pseudonyms
	requests            []ledger.RequestID
	licences            []ledger.Licence
	queries             []ledger.QueryID
	lastAction          []byte // a committed action, to replay

	ok, failed map[string]int
	quick      bool // skip the invariant checks (a rerun for determinism)
	// ct runs the steps: the zero Contract, or one from NewContract for a
	// rerun that must give the same outcomes, step by step (trace).
	ct    ledger.Contract
	trace []string
}

// firstDifference returns the first index where a and b differ, or -1.
func firstDifference(a, b []string) int {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return -1
}

func newWorld(t *testing.T, seed uint64) *world { return newWorldWith(t, seed, ledger.Contract{}) }

// newWorldWith is newWorld whose steps run through ct.
func newWorldWith(t *testing.T, seed uint64, ct ledger.Contract) *world {
	w := &world{ct: ct,
		t: t, rng: rand.New(rand.NewPCG(seed, 7)), st: &recState{MemState: ledger.NewMemState()}, seed: seed,
		now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		op:  signer("operator"), board: signer("board"), stranger: signer("stranger"),
		sponsors: []ledger.Signer{signer("sponsor-a"), signer("sponsor-b")},
		custs:    []ledger.Signer{signer("cust-a"), signer("cust-b")},
		ok:       map[string]int{}, failed: map[string]int{},
	}
	w.mustInvoke(w.op, ledger.FnBootstrap, ledger.BootstrapArgs{ID: w.op.ID, Name: "op", PublicKey: w.op.Public()})
	reg := func(s ledger.Signer, r ledger.Role) {
		w.mustInvoke(w.op, ledger.FnRegisterParticipant, ledger.Registration{ID: s.ID, Role: r, PublicKey: s.Public()})
	}
	reg(w.board, ledger.RoleEthicsBoard)
	for _, s := range w.sponsors {
		reg(s, ledger.RoleSponsor)
	}
	for _, s := range w.custs {
		reg(s, ledger.RoleCustodian)
	}
	return w
}

// sign signs an action with a nonce from the world's generator, so that
// a seed always produces the same transactions.
func (w *world) sign(s ledger.Signer, fn string, payload any) ledger.Action {
	p, err := json.Marshal(payload)
	if err != nil {
		w.t.Fatal(err)
	}
	var nonce [16]byte
	for i := range nonce {
		nonce[i] = byte(w.rng.UintN(256))
	}
	a := ledger.Action{Fn: fn, Actor: s.ID, Nonce: hex.EncodeToString(nonce[:]), Payload: p}
	a.Sig = ed25519.Sign(s.Key, a.SigningBytes())
	return a
}

// invoke runs one call and checks the invariants after it.
func (w *world) invoke(kind string, fn string, arg []byte) ([]byte, error) {
	w.step++
	sum := sha256.Sum256(fmt.Appendf(nil, "tx/%d/%d", w.seed, w.step))
	tx := ledger.TxContext{TxID: hex.EncodeToString(sum[:]), Timestamp: w.now, Submitter: "test"}
	w.st.writes, w.st.keys = 0, nil
	res, ev, err := w.ct.Invoke(tx, w.st, fn, [][]byte{arg})
	w.trace = append(w.trace, fmt.Sprintf("%s %q %v %v", kind, res, ev, err))
	if err != nil {
		w.failed[kind]++
		if w.st.writes != 0 {
			w.t.Fatalf("step %d %s: failed (%v) after %d writes", w.step, kind, err, w.st.writes)
		}
		if ledger.ErrorCode(err) == "internal" {
			w.t.Fatalf("step %d %s: error without a sentinel: %v", w.step, kind, err)
		}
	} else {
		w.ok[kind]++
		w.lastAction = arg
		if fn == ledger.FnAcceptOffer {
			w.checkAcceptWrites()
		}
	}
	if !w.quick {
		w.checkInvariants()
	}
	return res, err
}

func (w *world) call(kind string, s ledger.Signer, fn string, payload any) ([]byte, error) {
	arg, err := json.Marshal(w.sign(s, fn, payload))
	if err != nil {
		w.t.Fatal(err)
	}
	return w.invoke(kind, fn, arg)
}

func (w *world) mustInvoke(s ledger.Signer, fn string, payload any) []byte {
	res, err := w.call(fn, s, fn, payload)
	if err != nil {
		w.t.Fatalf("%s: %v", fn, err)
	}
	return res
}

func (w *world) query(fn string, args ...any) []byte {
	var raw [][]byte
	for _, a := range args {
		b, _ := json.Marshal(a)
		raw = append(raw, b)
	}
	res, err := ledger.Contract{}.Query(ledger.TxContext{Timestamp: w.now}, w.st.MemState, fn, raw)
	if err != nil {
		w.t.Fatalf("step %d: %s: %v", w.step, fn, err)
	}
	return res
}

// checkAcceptWrites: an acceptance leaves the request record alone and
// consumes exactly one escrow place.
func (w *world) checkAcceptWrites() {
	places := 0
	for _, k := range w.st.keys {
		switch {
		case strings.HasPrefix(k, "req/"):
			w.t.Fatalf("step %d: acceptance wrote the request %s", w.step, k)
		case strings.HasPrefix(k, "place/"):
			places++
		}
	}
	if places != 1 {
		w.t.Fatalf("step %d: acceptance wrote %d escrow places (%v), want 1", w.step, places, w.st.keys)
	}
}

// checkInvariants: supply == balances + escrows, no negative balance or
// escrow, an active request's escrow pays exactly its places left, and
// its escrow places each hold a positive multiple of its reward (a
// decided request has none).
func (w *world) checkInvariants() {
	s, err := ledger.Tokens(w.st.MemState)
	if err != nil {
		w.t.Fatalf("step %d: Tokens: %v", w.step, err)
	}
	// Balances live under "bal/<id>" as decimal text.
	var bal ledger.Amount
	err = w.st.MemState.Range("bal/", "bal0", func(k string, v []byte) (bool, error) {
		b, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || b < 0 {
			return false, fmt.Errorf("balance %s = %q", k, v)
		}
		bal += ledger.Amount(b)
		return true, nil
	})
	if err != nil {
		w.t.Fatalf("step %d: %v", w.step, err)
	}
	var rs []ledger.Request
	_ = json.Unmarshal(w.query(ledger.FnListRequests), &rs)
	reward := map[ledger.RequestID]ledger.Amount{}
	for _, r := range rs {
		reward[r.ID] = r.RewardPerPatient
	}
	// Escrow places live under "place/<request>/<index>" as decimal text.
	held := map[ledger.RequestID]ledger.Amount{}
	err = w.st.MemState.Range("place/", "place0", func(k string, v []byte) (bool, error) {
		req := ledger.RequestID(strings.Split(k, "/")[1])
		a, err := strconv.ParseInt(string(v), 10, 64)
		if rw := reward[req]; err != nil || a <= 0 || rw <= 0 || ledger.Amount(a)%rw != 0 {
			return false, fmt.Errorf("escrow place %s = %q (reward %d)", k, v, rw)
		}
		held[req] += ledger.Amount(a)
		return true, nil
	})
	if err != nil {
		w.t.Fatalf("step %d: %v", w.step, err)
	}
	var esc ledger.Amount
	for _, r := range rs {
		if held[r.ID] != r.Escrow {
			w.t.Fatalf("step %d: request %s (%s) escrow %d, its places hold %d", w.step, r.ID, r.Status, r.Escrow, held[r.ID])
		}
		want := ledger.Amount(0)
		if r.Status == ledger.StatusPending || r.Status == ledger.StatusOpen {
			want = r.RewardPerPatient * ledger.Amount(r.MaxParticipants-r.Participants)
		}
		if r.Escrow != want || r.Participants > r.MaxParticipants {
			w.t.Fatalf("step %d: request %s (%s) escrow %d, participants %d/%d; want escrow %d", w.step, r.ID, r.Status, r.Escrow, r.Participants, r.MaxParticipants, want)
		}
		if r.Approval != nil && (r.Approval.EpsilonSpent < 0 || r.Approval.EpsilonSpent > r.Approval.EpsilonBudget) {
			w.t.Fatalf("step %d: request %s epsilon spent %d of %d", w.step, r.ID, r.Approval.EpsilonSpent, r.Approval.EpsilonBudget)
		}
		esc += r.Escrow
	}
	if s.Minted != s.Balances+s.Escrow || bal != s.Balances || esc != s.Escrow {
		w.t.Fatalf("step %d: tokens %+v; summed balances %d, escrows %d", w.step, s, bal, esc)
	}
}

// pick returns a random element, or the zero value of an empty slice.
func pick[T any](w *world, xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	return xs[w.rng.IntN(len(xs))]
}

// chance is true with probability p.
func (w *world) chance(p float64) bool { return w.rng.Float64() < p }

func (w *world) anyone() ledger.Signer {
	all := append(append(append([]ledger.Signer{w.op, w.board, w.stranger}, w.sponsors...), w.custs...), w.patients...)
	return pick(w, all)
}

func (w *world) anyRequest() ledger.RequestID {
	if w.chance(0.05) || len(w.requests) == 0 {
		return "req-0000000000000000"
	}
	return pick(w, w.requests)
}

// openRequest returns a random open request, or fallback if none is.
func (w *world) openRequest(fallback ledger.RequestID) ledger.RequestID {
	var open []ledger.RequestID
	for _, id := range w.requests {
		if r, ok := w.getRequest(id); ok && r.Status == ledger.StatusOpen {
			open = append(open, id)
		}
	}
	if len(open) == 0 {
		return fallback
	}
	return pick(w, open)
}

func (w *world) getRequest(id ledger.RequestID) (ledger.Request, bool) {
	var r ledger.Request
	res, err := ledger.Contract{}.Query(ledger.TxContext{Timestamp: w.now}, w.st.MemState, ledger.FnGetRequest, [][]byte{[]byte(`"` + id + `"`)})
	if err != nil {
		return r, false
	}
	return r, json.Unmarshal(res, &r) == nil
}

// deadlineRequest returns a random pending or open request that has a
// deadline.
func (w *world) deadlineRequest() (ledger.Request, bool) {
	var rs []ledger.Request
	for _, id := range w.requests {
		if r, ok := w.getRequest(id); ok && !r.RecruitUntil.IsZero() && (r.Status == ledger.StatusPending || r.Status == ledger.StatusOpen) {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return ledger.Request{}, false
	}
	return pick(w, rs), true
}

// randomStep performs one random operation.
func (w *world) randomStep() {
	switch w.rng.IntN(12) {
	case 0:
		by := w.op
		if w.chance(0.2) {
			by = w.anyone()
		}
		w.call("mint", by, ledger.FnMint, ledger.MintArgs{To: w.anyone().ID, Amount: ledger.Amount(w.rng.IntN(3000) - 5)})
	case 1:
		w.call("transfer", w.anyone(), ledger.FnTransfer, ledger.TransferArgs{To: w.anyone().ID, Amount: ledger.Amount(w.rng.IntN(4000) - 5)})
	case 2:
		d := ledger.RequestDraft{
			Title: "t", Purpose: "p", Criteria: "c", Scope: []string{"labs", "vitals"},
			RewardPerPatient: ledger.Amount(w.rng.IntN(60)), MaxParticipants: int64(w.rng.IntN(12)), LicenceSeconds: int64(w.rng.IntN(20)) * 86400,
		}
		if d.MaxParticipants == 11 {
			d.MaxParticipants = 300 // more places than escrow place keys
		}
		if w.chance(0.1) {
			d.Scope = []string{"labs", "labs"}
		}
		if w.chance(0.4) {
			// Mostly ahead, sometimes (invalidly) behind the ledger time.
			d.RecruitUntil = w.now.Add(time.Duration(w.rng.IntN(30*86400)-2*86400) * time.Second)
		}
		by := pick(w, w.sponsors)
		if w.chance(0.1) {
			by = w.anyone()
		}
		if res, err := w.call("post", by, ledger.FnPostRequest, d); err == nil {
			var r ledger.Request
			_ = json.Unmarshal(res, &r)
			w.requests = append(w.requests, r.ID)
		}
	case 3:
		by := w.board
		if w.chance(0.1) {
			by = w.anyone()
		}
		w.call("approve", by, ledger.FnApproveRequest, ledger.ApproveArgs{Request: w.anyRequest(),
			ApprovalTerms: ledger.ApprovalTerms{MinCell: int64(w.rng.IntN(5)), EpsilonBudget: ledger.Epsilon(w.rng.IntN(2_000_000))}})
	case 4:
		id := w.anyRequest()
		r, _ := w.getRequest(id)
		switch w.rng.IntN(4) {
		case 3:
			// Mostly a live request with a deadline, often past it by now.
			if r, ok := w.deadlineRequest(); ok && w.chance(0.8) {
				id = r.ID
				if w.now.Before(r.RecruitUntil) && w.chance(0.6) {
					w.now = r.RecruitUntil
				}
			}
			w.call("expire", w.anyone(), ledger.FnExpireRequest, ledger.DecisionArgs{Request: id})
		case 0:
			w.call("reject", w.board, ledger.FnRejectRequest, ledger.DecisionArgs{Request: id})
		case 1:
			w.call("halt", w.board, ledger.FnHaltRequest, ledger.DecisionArgs{Request: id})
		default:
			by := w.anyone()
			if w.chance(0.7) {
				by = signer(string(r.Sponsor))
			}
			w.call("close", by, ledger.FnCloseRequest, ledger.DecisionArgs{Request: id})
		}
	case 5, 6, 7:
		w.acceptStep()
	case 8:
		l := pick(w, w.licences)
		by := w.anyone()
		if w.chance(0.8) {
			for _, p := range w.patients {
				if p.ID == l.Patient {
					by = p
				}
			}
		}
		w.call("revoke", by, ledger.FnRevokeLicence, ledger.RevokeArgs{Licence: l.ID})
	case 9:
		id := w.anyRequest()
		r, _ := w.getRequest(id)
		by := signer(string(r.Sponsor))
		if r.Sponsor == "" || w.chance(0.1) {
			by = w.anyone()
		}
		cats := pick(w, [][]string{nil, {"labs"}, {"vitals", "labs"}, {"conditions"}})
		res, err := w.call("authorize", by, ledger.FnAuthorizeQuery, ledger.QueryDraft{Request: id, QueryHash: fmt.Sprintf("%064x", w.step),
			Categories: cats, Epsilon: ledger.Epsilon(w.rng.IntN(700_000))})
		if err == nil {
			var qa ledger.QueryAuthorization
			_ = json.Unmarshal(res, &qa)
			w.queries = append(w.queries, qa.Query.ID)
		}
	case 10:
		if w.lastAction != nil {
			var a ledger.Action
			_ = json.Unmarshal(w.lastAction, &a)
			if _, err := w.invoke("replay", a.Fn, w.lastAction); err == nil {
				w.t.Fatalf("step %d: replayed %s action accepted", w.step, a.Fn)
			}
		}
	default:
		w.now = w.now.Add(time.Duration(w.rng.IntN(5*86400)) * time.Second)
		if len(w.queries) > 0 {
			c := ledger.QueryCompletion{Query: pick(w, w.queries), ResultHash: fmt.Sprintf("%064x", w.step)}
			w.call("complete", w.op, ledger.FnCompleteQuery, c)
		}
	}
}

func (w *world) acceptStep() {
	id := w.anyRequest()
	if w.chance(0.7) {
		id = w.openRequest(id)
	}
	r, _ := w.getRequest(id)
	pn := pseudonym(fmt.Sprintf("%d/%d", w.seed, w.step))
	if w.chance(0.05) && len(w.patients) > 0 {
		pn = pick(w, w.patients) // one key per study: refused
	}
	cust := pick(w, w.custs)
	if w.chance(0.05) {
		cust = pick(w, w.sponsors)
	}
	a := ledger.Acceptance{
		Terms:       ledger.LicenceTerms{Request: id, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
		PublicKey:   pn.Public(),
		Certificate: cust.Certify(id, pn.Public()),
	}
	if w.chance(0.05) {
		a.Terms.Reward++
	}
	signWith := pn
	if w.chance(0.05) {
		signWith = ledger.Signer{ID: pn.ID, Key: key("forger")}
	}
	res, err := w.call("accept", signWith, ledger.FnAcceptOffer, a)
	if err == nil {
		var l ledger.Licence
		_ = json.Unmarshal(res, &l)
		w.licences = append(w.licences, l)
		w.patients = append(w.patients, pn)
	}
}

// TestContractProperties runs long random sequences of operations, valid
// and not, through the contract: after every step MedTokens are conserved
// and nothing is negative, and a failed step wrote nothing.
func TestContractProperties(t *testing.T) {
	steps := 2000
	if testing.Short() {
		steps = 800
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			for range steps {
				w.randomStep()
			}
			// The run must have exercised both outcomes of the main operations.
			for _, kind := range []string{"mint", "transfer", "post", "approve", "accept", "revoke", "authorize", "close", "expire"} {
				if w.ok[kind] == 0 || w.failed[kind] == 0 {
					t.Errorf("%s: %d succeeded, %d failed; want both", kind, w.ok[kind], w.failed[kind])
				}
			}
			t.Logf("ok %v; failed %v", w.ok, w.failed)

			// The same seed replays to the same outcomes and state, byte
			// for byte, also through a contract that caches records.
			again := newWorldWith(t, seed, ledger.NewContract())
			again.quick = true
			for range steps {
				again.randomStep()
			}
			if i := firstDifference(again.trace, w.trace); i >= 0 {
				t.Errorf("step %d differs on the rerun:\n got %s\nwant %s", i, again.trace[i], w.trace[i])
			}
			if !again.st.MemState.Equal(w.st.MemState) {
				t.Error("the same operations produced different states")
			}
			checkSummaries(t, w)
		})
	}
}

// checkSummaries checks that Summarize gives the same figures walking a
// MemState in no order as ranging it in key order (through recState,
// which is not a *MemState), that they agree with Tokens and the
// licences, and that a bad record is reported as the same first error
// either way.
func checkSummaries(t *testing.T, w *world) {
	t.Helper()
	at := w.now.Add(time.Hour)
	var fast, ordered ledger.AuditReport
	if err := fast.Summarize(w.st.MemState, at); err != nil {
		t.Fatal(err)
	}
	if err := ordered.Summarize(w.st, at); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, ordered) {
		t.Errorf("Summarize of a MemState = %+v, ranged in order = %+v", fast, ordered)
	}
	tokens, err := ledger.Tokens(w.st.MemState)
	if err != nil || fast.Tokens != tokens {
		t.Errorf("Summarize tokens %+v, Tokens %+v (%v)", fast.Tokens, tokens, err)
	}
	licences := fast.LicencesActive + fast.LicencesRevoked + fast.LicencesExpired
	n := 0
	_ = w.st.MemState.Range("lic/", "lic0", func(string, []byte) (bool, error) { n++; return true, nil })
	if licences != n || n == 0 || fast.Participants < len(w.patients) || fast.Queries == 0 {
		t.Errorf("summary counts %d licences of %d, %d participants for %d patients, %d queries", licences, n, fast.Participants, len(w.patients), fast.Queries)
	}

	bad := w.st.MemState.Clone()
	for _, k := range []string{"lic/zzz/1", "bal/zzz", "lic/aaa/1", "bal/aaa"} {
		_ = bad.Put(k, []byte("not a record"))
	}
	errFast := new(ledger.AuditReport).Summarize(bad, at)
	errOrdered := new(ledger.AuditReport).Summarize(&recState{MemState: bad}, at)
	if errFast == nil || errOrdered == nil || errFast.Error() != errOrdered.Error() {
		t.Errorf("Summarize of a bad state: %v; ranged in order: %v", errFast, errOrdered)
	}
}
