package ledgertest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
)

// queryDraft is a query on r reading categories, costing eps millionths.
func queryDraft(r ledger.Request, text string, eps ledger.Epsilon, categories ...string) ledger.QueryDraft {
	return ledger.QueryDraft{Request: r.ID, QueryHash: hash(text), Categories: categories, Epsilon: eps}
}

func testQueryAuthorization(t *testing.T, open Opener) {
	e := newEnv(t, open)
	d := draft()
	d.MaxParticipants = 10
	r := e.openRequest(e.sponsor, d) // epsilon budget 1.0, 30-day licences

	// Two patients join at t0, three at t0+20d; one of those revokes.
	_, early1 := e.accept(r, "early-1")
	_, early2 := e.accept(r, "early-2")
	e.clock.Advance(20 * day)
	_, late1 := e.accept(r, "late-1")
	revoker, late2 := e.accept(r, "late-2")
	_, late3 := e.accept(r, "late-3")
	e.clock.Advance(day)
	_, err := e.c.RevokeLicence(e.ctx, revoker, late2.ID)
	e.must(err)
	// At t0+35d the early licences have expired.
	e.clock.Advance(14 * day)

	want := licenceIDs([]ledger.Licence{late1, late3})
	qa, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT AVG(hba1c)", 300_000, ledger.CategoryLabs))
	e.must(err)
	var got []ledger.LicenceID
	for _, ref := range qa.Licences {
		got = append(got, ref.Licence)
		if ref.Custodian != e.cust.ID || ref.Patient == "" {
			t.Errorf("licence ref %+v: want patient and custodian %s", ref, e.cust.ID)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AuthorizeQuery licences (-want +got):\n%s", diff)
	}
	for _, excluded := range []ledger.LicenceID{early1.ID, early2.ID, late2.ID} {
		for _, id := range got {
			if id == excluded {
				t.Errorf("AuthorizeQuery included expired or revoked licence %s", excluded)
			}
		}
	}
	q := qa.Query
	sum := sha256.Sum256([]byte(strings.Join([]string{string(want[0]), string(want[1])}, "\n")))
	if q.Licences != 2 || q.LicencesDigest != hex.EncodeToString(sum[:]) || q.LicencesDigest != ledger.LicencesDigest(got) {
		t.Errorf("query record licences = %d, digest %s; want 2, %x", q.Licences, q.LicencesDigest, sum)
	}
	if q.Status != ledger.QueryAuthorized || q.Request != r.ID || q.Sponsor != e.sponsor.ID || q.EpsilonCharged != 300_000 ||
		q.QueryHash != hash("SELECT AVG(hba1c)") || !sameStrings(q.Categories, []string{ledger.CategoryLabs}) {
		t.Errorf("query record = %+v", q)
	}
	if spent := e.request(r.ID).Approval.EpsilonSpent; spent != 300_000 {
		t.Errorf("epsilon spent = %d, want 300000", spent)
	}

	// Categories the licences do not cover select nobody, but still cost.
	qv, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT AVG(sbp)", 300_000, ledger.CategoryVitals))
	e.must(err)
	if len(qv.Licences) != 0 || qv.Query.Licences != 0 || qv.Query.LicencesDigest != ledger.LicencesDigest(nil) {
		t.Errorf("query over uncovered vitals used %d licences, want 0", len(qv.Licences))
	}
	// No categories at all (COUNT(*)) selects every active licence.
	qc, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT COUNT(*)", 100_000))
	e.must(err)
	if qc.Query.Licences != 2 {
		t.Errorf("COUNT(*) query used %d licences, want 2", qc.Query.Licences)
	}

	// 0.7 of 1.0 spent: 0.4 is refused and charges nothing.
	before := e.snapshot()
	_, err = e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT STDDEV(hba1c)", 400_000, ledger.CategoryLabs))
	e.refused("AuthorizeQuery over budget", err, ledger.ErrBudget)
	e.unchanged("a refused query", before)

	refusals := []struct {
		name string
		by   ledger.Signer
		q    ledger.QueryDraft
		want error
	}{
		{"by another sponsor", e.sponsor2, queryDraft(r, "q", 1, ledger.CategoryLabs), ledger.ErrForbidden},
		{"by a board", e.board, queryDraft(r, "q", 1, ledger.CategoryLabs), ledger.ErrForbidden},
		{"short hash", e.sponsor, ledger.QueryDraft{Request: r.ID, QueryHash: "abc", Epsilon: 1}, ledger.ErrInvalid},
		{"upper-case hash", e.sponsor, ledger.QueryDraft{Request: r.ID, QueryHash: strings.ToUpper(hash("q")), Epsilon: 1}, ledger.ErrInvalid},
		{"zero epsilon", e.sponsor, queryDraft(r, "q", 0, ledger.CategoryLabs), ledger.ErrInvalid},
		{"negative epsilon", e.sponsor, queryDraft(r, "q", -5, ledger.CategoryLabs), ledger.ErrInvalid},
		{"unknown category", e.sponsor, queryDraft(r, "q", 1, "genome"), ledger.ErrInvalid},
		{"absent request", e.sponsor, ledger.QueryDraft{Request: "req-0000000000000000", QueryHash: hash("q"), Epsilon: 1}, ledger.ErrNotFound},
	}
	for _, tc := range refusals {
		t.Run("AuthorizeQuery "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.AuthorizeQuery(e.ctx, tc.by, tc.q)
			e.refused("AuthorizeQuery", err, tc.want)
			e.unchanged("a refused query", before)
		})
	}

	// Exactly the rest of the budget is allowed; then nothing is left.
	_, err = e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT MIN(hba1c)", 300_000, ledger.CategoryLabs))
	e.must(err)
	if spent := e.request(r.ID).Approval.EpsilonSpent; spent != 1_000_000 {
		t.Errorf("epsilon spent = %d, want the whole budget 1000000", spent)
	}
	before = e.snapshot()
	_, err = e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT MAX(hba1c)", 1, ledger.CategoryLabs))
	e.refused("AuthorizeQuery on a spent budget", err, ledger.ErrBudget)
	e.unchanged("a refused query", before)

	// Access history: which queries used each licence.
	hist := func(id ledger.LicenceID) []ledger.QueryID {
		qs, err := e.c.LicenceQueries(e.ctx, id)
		if err != nil {
			t.Fatalf("LicenceQueries(%s): %v", id, err)
		}
		var ids []ledger.QueryID
		for _, q := range qs {
			ids = append(ids, q.ID)
		}
		return ids
	}
	if got := hist(early1.ID); len(got) != 0 {
		t.Errorf("LicenceQueries(expired licence) = %v, want none", got)
	}
	if got := hist(late2.ID); len(got) != 0 {
		t.Errorf("LicenceQueries(revoked licence) = %v, want none", got)
	}
	if got := hist(late1.ID); len(got) != 3 || !containsID(got, qa.Query.ID) || !containsID(got, qc.Query.ID) || containsID(got, qv.Query.ID) {
		t.Errorf("LicenceQueries(active licence) = %v, want the labs, COUNT(*) and last queries but not %s", got, qv.Query.ID)
	}
	qs, err := e.c.Queries(e.ctx, r.ID)
	if err != nil || len(qs) != 4 {
		t.Fatalf("Queries(%s) = %d records, %v; want 4", r.ID, len(qs), err)
	}
	for i := 1; i < len(qs); i++ {
		if qs[i-1].ID >= qs[i].ID {
			t.Errorf("Queries not sorted by id: %s before %s", qs[i-1].ID, qs[i].ID)
		}
	}
	if got, err := e.c.Query(e.ctx, qa.Query.ID); err != nil || !jsonEqual(got, qa.Query) {
		t.Errorf("Query(%s) = %+v, %v; want %+v", qa.Query.ID, got, err, qa.Query)
	}
	if _, err := e.c.Query(e.ctx, "qry-0000000000000000"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Query(absent) error = %v, want ErrNotFound", err)
	}

	// Pending, halted and closed requests authorise nothing.
	pending, err := e.c.PostRequest(e.ctx, e.sponsor, draft())
	e.must(err)
	closed := e.openRequest(e.sponsor, draft())
	_, err = e.c.CloseRequest(e.ctx, e.sponsor, closed.ID, "")
	e.must(err)
	_, err = e.c.HaltRequest(e.ctx, e.board, r.ID, "stop")
	e.must(err)
	for _, id := range []ledger.RequestID{pending.ID, closed.ID, r.ID} {
		before := e.snapshot()
		_, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, ledger.QueryDraft{Request: id, QueryHash: hash("late"), Epsilon: 1})
		e.refused("AuthorizeQuery on a "+string(e.request(id).Status)+" request", err, ledger.ErrState)
		e.unchanged("a refused query", before)
	}
}

func containsID(ids []ledger.QueryID, id ledger.QueryID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func testQueryCompletionAndNotebooks(t *testing.T, open Opener) {
	e := newEnv(t, open)
	r := e.openRequest(e.sponsor, draft())
	e.accept(r, "nb-patient")
	qa, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT COUNT(*)", 100_000, ledger.CategoryDemographics))
	e.must(err)
	qb, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT AVG(ldl)", 100_000, ledger.CategoryLabs))
	e.must(err)
	other := e.openRequest(e.sponsor, draft())
	qo, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(other, "SELECT COUNT(*)", 100_000))
	e.must(err)

	disclosure := []byte(`{"suppressedCells":1,"noiseScale":2.5,"epsilon":0.1}`)
	completions := []struct {
		name string
		by   ledger.Signer
		c    ledger.QueryCompletion
		want error
	}{
		{"by the sponsor", e.sponsor, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: hash("r")}, ledger.ErrForbidden},
		{"without a result hash", e.op, ledger.QueryCompletion{Query: qa.Query.ID}, ledger.ErrInvalid},
		{"with a bad result hash", e.op, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: "xyz"}, ledger.ErrInvalid},
		{"with a non-JSON disclosure", e.op, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: hash("r"), Disclosure: []byte("{oops")}, ledger.ErrInvalid},
		{"of an absent query", e.op, ledger.QueryCompletion{Query: "qry-0000000000000000", ResultHash: hash("r")}, ledger.ErrNotFound},
	}
	for _, tc := range completions {
		t.Run("CompleteQuery "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.CompleteQuery(e.ctx, tc.by, tc.c)
			e.refused("CompleteQuery", err, tc.want)
			e.unchanged("a refused completion", before)
		})
	}
	done, err := e.c.CompleteQuery(e.ctx, e.op, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: hash("result a"), Disclosure: disclosure})
	e.must(err)
	if done.Status != ledger.QueryCompleted || done.ResultHash != hash("result a") || done.Completed == nil || string(done.Disclosure) != string(disclosure) {
		t.Errorf("CompleteQuery = %+v, want completed with result hash and disclosure", done)
	}
	if got, err := e.c.Query(e.ctx, qa.Query.ID); err != nil || !jsonEqual(got, done) {
		t.Errorf("Query(%s) = %+v, %v; want %+v", qa.Query.ID, got, err, done)
	}
	_, err = e.c.CompleteQuery(e.ctx, e.op, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: hash("again")})
	e.refused("CompleteQuery twice", err, ledger.ErrState)
	failed, err := e.c.CompleteQuery(e.ctx, e.op, ledger.QueryCompletion{Query: qb.Query.ID, Error: "custodian st-marys timed out"})
	e.must(err)
	if failed.Status != ledger.QueryFailed || failed.Error == "" {
		t.Errorf("CompleteQuery with an error = %+v, want failed", failed)
	}

	cell := func(name string, q ledger.QueryRecord) ledger.NotebookCell {
		return ledger.NotebookCell{Name: name, Query: q.ID, QueryHash: q.QueryHash, ResultHash: hash(name)}
	}
	nb := ledger.NotebookRunDraft{Request: r.ID, NotebookHash: hash("notebook.md"), Cells: []ledger.NotebookCell{
		cell("count", qa.Query),
		cell("ldl", qb.Query),
		{Name: "markdown-only", QueryHash: hash("not run")},
	}}
	run, err := e.c.RecordNotebookRun(e.ctx, e.sponsor, nb)
	e.must(err)
	if run.ID == "" || run.Sponsor != e.sponsor.ID || !jsonEqual(run.NotebookRunDraft, nb) {
		t.Errorf("RecordNotebookRun = %+v, want the draft recorded", run)
	}
	if got, err := e.c.NotebookRun(e.ctx, run.ID); err != nil || !jsonEqual(got, run) {
		t.Errorf("NotebookRun(%s) = %+v, %v; want %+v", run.ID, got, err, run)
	}
	if _, err := e.c.NotebookRun(e.ctx, "nb-0000000000000000"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("NotebookRun(absent) error = %v, want ErrNotFound", err)
	}
	withCell := func(c ledger.NotebookCell) ledger.NotebookRunDraft {
		return ledger.NotebookRunDraft{Request: r.ID, NotebookHash: hash("nb"), Cells: []ledger.NotebookCell{c}}
	}
	wrongHash := cell("wrong", qa.Query)
	wrongHash.QueryHash = hash("something else")
	notebooks := []struct {
		name string
		by   ledger.Signer
		d    ledger.NotebookRunDraft
		want error
	}{
		{"by another sponsor", e.sponsor2, nb, ledger.ErrForbidden},
		{"by the operator", e.op, nb, ledger.ErrForbidden},
		{"query hash mismatch", e.sponsor, withCell(wrongHash), ledger.ErrInvalid},
		{"query of another request", e.sponsor, withCell(cell("other", qo.Query)), ledger.ErrInvalid},
		{"absent query", e.sponsor, withCell(ledger.NotebookCell{Name: "x", Query: "qry-0000000000000000", QueryHash: hash("x")}), ledger.ErrInvalid},
		{"no cells", e.sponsor, ledger.NotebookRunDraft{Request: r.ID, NotebookHash: hash("nb")}, ledger.ErrInvalid},
		{"bad notebook hash", e.sponsor, ledger.NotebookRunDraft{Request: r.ID, NotebookHash: "nb", Cells: nb.Cells}, ledger.ErrInvalid},
		{"unnamed cell", e.sponsor, withCell(ledger.NotebookCell{QueryHash: hash("x")}), ledger.ErrInvalid},
		{"absent request", e.sponsor, ledger.NotebookRunDraft{Request: "req-0000000000000000", NotebookHash: hash("nb"), Cells: nb.Cells}, ledger.ErrNotFound},
	}
	for _, tc := range notebooks {
		t.Run("RecordNotebookRun "+tc.name, func(t *testing.T) {
			e := e.with(t)
			before := e.snapshot()
			_, err := e.c.RecordNotebookRun(e.ctx, tc.by, tc.d)
			e.refused("RecordNotebookRun", err, tc.want)
			e.unchanged("a refused notebook run", before)
		})
	}
}

func testReplay(t *testing.T, open Opener) {
	e := newEnv(t, open)
	act, err := e.sponsor.Sign(ledger.FnTransfer, ledger.TransferArgs{To: e.cust.ID, Amount: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.SubmitAction(e.ctx, act); err != nil {
		t.Fatalf("first SubmitAction: %v", err)
	}
	e.checkTokens()
	before := e.snapshot()
	_, err = e.c.SubmitAction(e.ctx, act)
	e.refused("replayed Transfer", err, ledger.ErrReplay)
	e.unchanged("a replayed transfer", before)
	if got := e.balance(e.cust.ID); got != 100 {
		t.Errorf("custodian balance = %d, want 100 (moved once)", got)
	}

	// A refused action does not use up its nonce: once funded, the same
	// signed transfer goes through, once.
	big, err := e.cust.Sign(ledger.FnTransfer, ledger.TransferArgs{To: e.board.ID, Amount: 500})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.SubmitAction(e.ctx, big)
	e.refused("Transfer over the balance", err, ledger.ErrFunds)
	e.must(e.c.Mint(e.ctx, e.op, e.cust.ID, 400))
	if _, err := e.c.SubmitAction(e.ctx, big); err != nil {
		t.Fatalf("resubmitted Transfer after funding: %v", err)
	}
	e.checkTokens()
	_, err = e.c.SubmitAction(e.ctx, big)
	e.refused("replayed Transfer", err, ledger.ErrReplay)

	// A replayed acceptance is refused as a replay, not paid twice.
	r := e.openRequest(e.sponsor, draft())
	pn := pseudonym("replayer")
	acc, err := pn.Sign(ledger.FnAcceptOffer, acceptance(r, pn, e.cust))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.SubmitAction(e.ctx, acc); err != nil {
		t.Fatalf("AcceptOffer: %v", err)
	}
	before = e.snapshot()
	_, err = e.c.SubmitAction(e.ctx, acc)
	e.refused("replayed AcceptOffer", err, ledger.ErrReplay)
	e.unchanged("a replayed acceptance", before)

	// An action signed for one function cannot be used for another.
	swapped := act
	swapped.Fn = ledger.FnMint
	_, err = e.c.SubmitAction(e.ctx, swapped)
	e.refused("action with its function changed", err, ledger.ErrBadSignature)
}

// scenario runs a fixed story; the same story on two fresh ledgers must
// leave the same records apart from ids and times.
func scenario(t *testing.T, e *env) {
	r := e.openRequest(e.sponsor, draft())
	var lics []ledger.Licence
	for _, n := range []string{"det-1", "det-2", "det-3"} {
		_, l := e.accept(r, n)
		lics = append(lics, l)
		e.clock.Advance(time.Hour)
	}
	_, err := e.c.RevokeLicence(e.ctx, pseudonym("det-2"), lics[1].ID)
	e.must(err)
	qa, err := e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT COUNT(*)", 250_000, ledger.CategoryLabs))
	e.must(err)
	_, err = e.c.CompleteQuery(e.ctx, e.op, ledger.QueryCompletion{Query: qa.Query.ID, ResultHash: hash("42")})
	e.must(err)
	_, err = e.c.AuthorizeQuery(e.ctx, e.sponsor, queryDraft(r, "SELECT 2", 900_000, ledger.CategoryLabs))
	e.refused("over budget", err, ledger.ErrBudget)
	e.must(e.c.Transfer(e.ctx, pseudonym("det-1"), e.cust.ID, 3))
	r2, err := e.c.PostRequest(e.ctx, e.sponsor2, draft())
	e.must(err)
	_, err = e.c.RejectRequest(e.ctx, e.board, r2.ID, "no")
	e.must(err)
	_, err = e.c.CloseRequest(e.ctx, e.sponsor, r.ID, "done")
	e.must(err)
}

func testDeterminism(t *testing.T, open Opener) {
	run := func() snapshot {
		e := newEnv(t, open)
		scenario(t, e)
		return e.snapshot()
	}
	a, b := run(), run()
	// Ids derive from transaction ids, which differ between ledgers; so
	// do times on backends whose ledger time is not the suite clock.
	// Records are compared in an order that does not depend on ids.
	norm := func(s snapshot) any {
		type out struct {
			Tokens       ledger.TokenSummary
			Participants []ledger.Participant
			Balances     map[ledger.ParticipantID]ledger.Amount
			Requests     []ledger.Request
			Licences     [][]ledger.Licence
			Queries      [][]ledger.QueryRecord
		}
		o := out{Tokens: s.Tokens, Balances: s.Balances}
		for _, p := range s.Participants {
			p.Registered = time.Time{}
			o.Participants = append(o.Participants, p)
		}
		for _, r := range sortRequests(s.Requests) {
			ls := s.Licences[r.ID]
			qs := s.Queries[r.ID]
			r.ID, r.Posted = "", time.Time{}
			if r.Approval != nil {
				a := *r.Approval
				a.At = time.Time{}
				r.Approval = &a
			}
			if r.Decision != nil {
				d := *r.Decision
				d.At = time.Time{}
				r.Decision = &d
			}
			o.Requests = append(o.Requests, r)
			var nls []ledger.Licence
			for _, l := range sortLicences(ls) {
				l.ID, l.Request, l.Granted, l.Expires = "", "", time.Time{}, time.Time{}
				if l.Revoked != nil {
					l.Revoked = &time.Time{}
				}
				nls = append(nls, l)
			}
			o.Licences = append(o.Licences, nls)
			var nqs []ledger.QueryRecord
			for _, q := range qs {
				q.ID, q.Request, q.LicencesDigest, q.Authorized, q.Completed = "", "", "", time.Time{}, nil
				nqs = append(nqs, q)
			}
			o.Queries = append(o.Queries, nqs)
		}
		return o
	}
	if diff := cmp.Diff(norm(a), norm(b)); diff != "" {
		t.Errorf("the same story on two ledgers differs (-first +second):\n%s", diff)
	}
	if len(a.Requests) != 2 || len(a.Participants) != 9 {
		t.Errorf("scenario left %d requests and %d participants, want 2 and 9", len(a.Requests), len(a.Participants))
	}
}

// sortRequests orders requests by sponsor and title, not by id.
func sortRequests(rs []ledger.Request) []ledger.Request {
	out := append([]ledger.Request(nil), rs...)
	less := func(a, b ledger.Request) bool {
		if a.Sponsor != b.Sponsor {
			return a.Sponsor < b.Sponsor
		}
		return a.Status < b.Status
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// sortLicences orders licences by patient, not by id.
func sortLicences(ls []ledger.Licence) []ledger.Licence {
	out := append([]ledger.Licence(nil), ls...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Patient < out[j-1].Patient; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
