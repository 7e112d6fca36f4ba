package embedded

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/ledgertest"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

// testKey is a node key derived from name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("medx/embedded/test/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func openAt(t *testing.T, path string, key ed25519.PrivateKey, clock func() time.Time) *Ledger {
	t.Helper()
	l, err := Open(path, key, Options{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T, clock func() time.Time) ledger.Backend {
		return openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), clock)
	})
}

// cast is a small registered world on a ledger.
type cast struct {
	c                        *ledger.Client
	op, sponsor, board, cust ledger.Signer
}

func signer(id string) ledger.Signer {
	return ledger.Signer{ID: ledger.ParticipantID(id), Key: testKey("signer/" + id)}
}

func newCast(t *testing.T, b ledger.Backend) cast {
	t.Helper()
	ctx := t.Context()
	w := cast{c: ledger.NewClient(b), op: signer("operator"), sponsor: signer("acme-pharma"), board: signer("ethics-board"), cust: signer("st-marys")}
	if err := w.c.Bootstrap(ctx, w.op, "MedX"); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	for _, p := range []struct {
		s    ledger.Signer
		role ledger.Role
	}{{w.sponsor, ledger.RoleSponsor}, {w.board, ledger.RoleEthicsBoard}, {w.cust, ledger.RoleCustodian}} {
		if err := w.c.RegisterParticipant(ctx, w.op, ledger.Participant{ID: p.s.ID, Role: p.role, Name: "Raw Name " + string(p.s.ID), PublicKey: p.s.Public()}); err != nil {
			t.Fatalf("RegisterParticipant(%s): %v", p.s.ID, err)
		}
	}
	if err := w.c.Mint(ctx, w.op, w.sponsor.ID, 1_000_000); err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return w
}

// openStudy posts and approves a request with max places.
func (w cast) openStudy(t *testing.T, max int64) ledger.Request {
	t.Helper()
	r, err := w.c.PostRequest(t.Context(), w.sponsor, ledger.RequestDraft{
		Title: "Study", Purpose: "Purpose", Criteria: "age > 40", Scope: []string{"demographics", "labs"},
		RewardPerPatient: 5, MaxParticipants: max, LicenceSeconds: 3600 * 24 * 365,
	})
	if err != nil {
		t.Fatalf("PostRequest: %v", err)
	}
	r, err = w.c.ApproveRequest(t.Context(), w.board, r.ID, ledger.ApprovalTerms{MinCell: 5, EpsilonBudget: 1_000_000})
	if err != nil {
		t.Fatalf("ApproveRequest: %v", err)
	}
	return r
}

// accept has pseudonym i accept r.
func (w cast) accept(ctx context.Context, r ledger.Request, i int) (ledger.Licence, error) {
	pn := ledger.Signer{Key: testKey(fmt.Sprintf("pn/%s/%d", r.ID, i))}
	pn.ID = ledger.PseudonymID(pn.Public())
	return w.c.AcceptOffer(ctx, pn, ledger.Acceptance{
		Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
		PublicKey:   pn.Public(),
		Certificate: w.cust.Certify(r.ID, pn.Public()),
	})
}

func mustVerify(t *testing.T, l *Ledger) ledger.AuditReport {
	t.Helper()
	rep, err := l.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify of an intact ledger: %+v", rep)
	}
	return rep
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	key := testKey("node")
	l := openAt(t, path, key, nil)
	w := newCast(t, l)
	r := w.openStudy(t, 10)
	lic, err := w.accept(t.Context(), r, 1)
	if err != nil {
		t.Fatal(err)
	}
	height, head := l.Height(), l.Head()
	if height != 8 {
		t.Errorf("Height = %d after 8 sequential transactions, want 8", height)
	}
	rep := mustVerify(t, l)
	if rep.Blocks != 8 || rep.Transactions != 8 || rep.Head != head || rep.FirstBlock.After(rep.LastBlock) {
		t.Errorf("Verify = %+v, want 8 blocks, 8 transactions, head %s", rep, head)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Submit(t.Context(), ledger.FnMint, []byte("{}")); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Evaluate(t.Context(), ledger.FnTokenSummary); !errors.Is(err, ErrClosed) {
		t.Errorf("Evaluate after Close = %v, want ErrClosed", err)
	}

	l2 := openAt(t, path, key, nil)
	if l2.Height() != height || l2.Head() != head {
		t.Errorf("reopened at height %d head %s, want %d %s", l2.Height(), l2.Head(), height, head)
	}
	c2 := ledger.NewClient(l2)
	got, err := c2.Licence(t.Context(), lic.ID)
	if err != nil || got.Patient != lic.Patient {
		t.Errorf("Licence(%s) after reopening = %+v, %v", lic.ID, got, err)
	}
	w.c = c2
	if _, err := w.accept(t.Context(), r, 1); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("accepting again with the same pseudonym after reopening = %v, want ErrExists", err)
	}
	mustVerify(t, l2)
}

func TestOpenRefusesAnotherNodeKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, testKey("node"), nil)
	newCast(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, testKey("other"), Options{})
	if err == nil || !strings.Contains(err.Error(), "node key") {
		t.Fatalf("Open with another node key = %v, want an error naming the node key", err)
	}
	if _, err := Open(path, ed25519.PrivateKey{1, 2}, Options{}); err == nil {
		t.Fatal("Open with a malformed node key succeeded")
	}
	// The right key still opens it.
	l = openAt(t, path, testKey("node"), nil)
	mustVerify(t, l)
}

func TestOpenTwiceFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	openAt(t, path, testKey("node"), nil)
	if l, err := Open(path, testKey("node"), Options{}); err == nil {
		l.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
}

func TestGroupCommit(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 300
	}
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), nil)
	w := newCast(t, l)
	r := w.openStudy(t, int64(n))
	h0 := l.Height()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.accept(t.Context(), r, i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
	}
	blocks := l.Height() - h0
	if blocks == 0 || blocks > uint64(n/4) {
		t.Errorf("%d concurrent accepts took %d blocks, want them batched (at most %d)", n, blocks, n/4)
	}
	// Authorising a query over every licence.
	qa, err := w.c.AuthorizeQuery(t.Context(), w.sponsor, ledger.QueryDraft{Request: r.ID, QueryHash: strings.Repeat("ab", 32), Categories: []string{"labs"}, Epsilon: 1000})
	if err != nil {
		t.Fatalf("AuthorizeQuery: %v", err)
	}
	if qa.Query.Licences != int64(n) || len(qa.Licences) != n {
		t.Errorf("AuthorizeQuery used %d licences, want %d", qa.Query.Licences, n)
	}
	rep := mustVerify(t, l)
	if rep.Transactions != int64(h0)+int64(n)+1 {
		t.Errorf("Verify counted %d transactions, want %d", rep.Transactions, int64(h0)+int64(n)+1)
	}
}

// TestPipelinedBlocksSeeEarlierWrites runs more concurrent acceptances
// than a study has places, in small blocks, so that blocks execute while
// the one before is still being written: exactly the places are taken,
// each paid once, and the rest are refused.
func TestPipelinedBlocksSeeEarlierWrites(t *testing.T) {
	const places, tries = 120, 400
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), Options{MaxBatch: 8, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	w := newCast(t, l)
	r := w.openStudy(t, places)
	h0 := l.Height()
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.accept(t.Context(), r, i)
		}()
	}
	wg.Wait()
	granted := 0
	for i, err := range errs {
		switch {
		case err == nil:
			granted++
		case !errors.Is(err, ledger.ErrState):
			t.Fatalf("accept %d: %v, want success or ErrState (no places left)", i, err)
		}
	}
	if granted != places {
		t.Errorf("%d acceptances granted, want exactly the %d places", granted, places)
	}
	if blocks := l.Height() - h0; blocks < places/8 {
		t.Errorf("%d acceptances took %d blocks, want at least %d blocks of at most 8", granted, blocks, places/8)
	}
	got, err := w.c.Request(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Participants != places || got.Escrow != r.Escrow-places*r.RewardPerPatient {
		t.Errorf("request after the acceptances: %d participants, escrow %d; want %d and %d", got.Participants, got.Escrow, places, r.Escrow-places*r.RewardPerPatient)
	}
	if ls, err := w.c.Licences(t.Context(), r.ID); err != nil || len(ls) != places {
		t.Errorf("Licences = %d, %v; want %d", len(ls), err, places)
	}
	mustVerify(t, l)
}

func TestFailedTransactionsAreNotInBlocks(t *testing.T) {
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), nil)
	w := newCast(t, l)
	before := l.Height()
	// Concurrent good and bad transfers land in shared blocks; only the
	// good ones may be in them.
	var wg sync.WaitGroup
	var mu sync.Mutex
	good := 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			amt := ledger.Amount(1)
			if i%2 == 1 {
				amt = 10_000_000 // more than the sponsor has
			}
			err := w.c.Transfer(t.Context(), w.sponsor, w.cust.ID, amt)
			switch {
			case err == nil:
				mu.Lock()
				good++
				mu.Unlock()
			case !errors.Is(err, ledger.ErrFunds):
				t.Errorf("Transfer(%d): %v", amt, err)
			}
		}()
	}
	wg.Wait()
	if good != 20 {
		t.Fatalf("%d transfers succeeded, want 20", good)
	}
	txs := 0
	for h := before + 1; h <= l.Height(); h++ {
		b, err := l.Block(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		txs += len(b.Txs)
	}
	if txs != good {
		t.Errorf("blocks hold %d transactions, want the %d that succeeded", txs, good)
	}
	if bal, _ := w.c.Balance(t.Context(), w.cust.ID); bal != 20 {
		t.Errorf("custodian balance = %d, want 20", bal)
	}
	mustVerify(t, l)
}

func TestLedgerTimeNeverGoesBack(t *testing.T) {
	clock := ledgertest.NewClock(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), clock.Now)
	w := newCast(t, l)
	r := w.openStudy(t, 10)
	l1, err := w.accept(t.Context(), r, 1)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(-48 * time.Hour) // the host clock jumps back
	l2, err := w.accept(t.Context(), r, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Granted.Before(l1.Granted) {
		t.Errorf("licence granted at %s after one granted at %s", l2.Granted, l1.Granted)
	}
	var prev time.Time
	for h := uint64(1); h <= l.Height(); h++ {
		b, err := l.Block(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		if b.Time.Before(prev) {
			t.Errorf("block %d time %s before block %d's %s", h, b.Time, h-1, prev)
		}
		prev = b.Time
	}
	mustVerify(t, l)
}

func TestSubscribe(t *testing.T) {
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), nil)
	w := newCast(t, l)
	r := w.openStudy(t, 10)
	ctx, cancel := context.WithCancel(t.Context())
	events := l.Subscribe(ctx)
	lic, err := w.accept(t.Context(), r, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.RevokeLicence(t.Context(), ledger.Signer{ID: lic.Patient, Key: testKey(fmt.Sprintf("pn/%s/%d", r.ID, 1))}, lic.ID); err != nil {
		t.Fatal(err)
	}
	var names []string
	for len(names) < 2 {
		ev, ok := <-events
		if !ok {
			t.Fatal("events channel closed early")
		}
		if ev.Height == 0 || ev.Hash == "" || len(ev.Txs) == 0 {
			t.Errorf("BlockEvent %+v lacks height, hash or transactions", ev)
		}
		for _, tx := range ev.Txs {
			if tx.Event == nil {
				continue
			}
			names = append(names, tx.Event.Name)
			var p ledger.EventPayload
			if err := json.Unmarshal(tx.Event.Payload, &p); err != nil || p.Licence != lic.ID || p.Patient != lic.Patient {
				t.Errorf("event %s payload %s: want licence %s of %s", tx.Event.Name, tx.Event.Payload, lic.ID, lic.Patient)
			}
		}
	}
	if names[0] != ledger.EventLicenceGranted || names[1] != ledger.EventLicenceRevoked {
		t.Errorf("events = %v, want licence granted then revoked", names)
	}
	cancel()
	for range events { // closed once the context ends
	}
	// A subscription on a closed ledger is closed at once.
	l.Close()
	if _, ok := <-l.Subscribe(t.Context()); ok {
		t.Error("Subscribe on a closed ledger delivered an event")
	}
}

func TestCancelledSubmitIsNotRun(t *testing.T) {
	l := openAt(t, filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), nil)
	w := newCast(t, l)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.c.Mint(ctx, w.op, w.cust.ID, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("Mint with a cancelled context = %v, want context.Canceled", err)
	}
	if bal, err := w.c.Balance(t.Context(), w.cust.ID); err != nil || bal != 0 {
		t.Errorf("Balance after a cancelled mint = %d, %v; want 0", bal, err)
	}
}
