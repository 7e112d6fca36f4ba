package fabric_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
	"github.com/medx/medx/ledger/fabric/fabrictest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func signer(id string) ledger.Signer {
	seed := sha256.Sum256([]byte("medx/fabric_test/" + id))
	return ledger.Signer{ID: ledger.ParticipantID(id), Key: ed25519.NewKeyFromSeed(seed[:])}
}

// world is a backend on a fresh network with an operator and three
// sponsors registered, alice holding 100 MedTokens.
type world struct {
	n                     *fabrictest.Network
	cfg                   fabric.Config
	l                     *fabric.Ledger
	c                     *ledger.Client
	op, alice, bob, carol ledger.Signer
}

func newWorld(t *testing.T, opts fabrictest.Options) *world {
	t.Helper()
	w := &world{op: signer("operator"), alice: signer("alice"), bob: signer("bob"), carol: signer("carol")}
	w.n = startNetwork(t, opts)
	w.cfg = config(t, w.n, w.n.User)
	w.l = open(t, w.n, w.cfg, nil)
	w.c = ledger.NewClient(w.l)
	ctx := t.Context()
	must(t, w.c.Bootstrap(ctx, w.op, "MedX"))
	for _, s := range []ledger.Signer{w.alice, w.bob, w.carol} {
		must(t, w.c.RegisterParticipant(ctx, w.op, ledger.Participant{ID: s.ID, Role: ledger.RoleSponsor, PublicKey: s.Public()}))
	}
	must(t, w.c.Mint(ctx, w.op, w.alice.ID, 100))
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) balance(t *testing.T, s ledger.Signer) ledger.Amount {
	t.Helper()
	b, err := w.c.Balance(t.Context(), s.ID)
	must(t, err)
	return b
}

func transferArg(t *testing.T, from ledger.Signer, to ledger.ParticipantID, amt ledger.Amount) []byte {
	t.Helper()
	a, err := from.Sign(ledger.FnTransfer, ledger.TransferArgs{To: to, Amount: amt})
	must(t, err)
	b, err := json.Marshal(a)
	must(t, err)
	return b
}

// TestConcurrentTransfers endorses two transfers out of one balance before
// either commits: the block holding both commits one and invalidates the
// other (MVCC read conflict on the balance), which the backend retries as
// a new transaction, so that both take effect exactly once.
func TestConcurrentTransfers(t *testing.T) {
	w := newWorld(t, fabrictest.Options{TLS: true})
	ctx := t.Context()
	w.n.Pause()
	args := [][]byte{transferArg(t, w.alice, w.bob.ID, 30), transferArg(t, w.alice, w.carol.ID, 50)}
	receipts := make([]fabric.Receipt, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range args {
		wg.Add(1)
		go func() {
			defer wg.Done()
			receipts[i], errs[i] = w.l.SubmitTx(ctx, ledger.FnTransfer, args[i])
		}()
	}
	must(t, w.n.WaitPending(ctx, 2))
	w.n.Resume()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
	}
	var conflicts []*fabric.CommitError
	for _, r := range receipts {
		conflicts = append(conflicts, r.Conflicts...)
	}
	if len(conflicts) != 1 || conflicts[0].Code != peer.TxValidationCode_MVCC_READ_CONFLICT {
		t.Fatalf("conflicts = %v, want one MVCC_READ_CONFLICT", conflicts)
	}
	// On the ledger: the two first attempts share a block, one valid and
	// one invalid; the retry is a new, valid transaction in a later block.
	status := map[string]fabrictest.TxStatus{}
	for _, s := range w.n.Transactions() {
		status[s.TxID] = s
	}
	bad := status[conflicts[0].TransactionID]
	var valid []fabrictest.TxStatus
	for _, r := range receipts {
		s := status[r.TxID]
		if s.Code != peer.TxValidationCode_VALID || s.Block != r.Block || r.TxID == bad.TxID {
			t.Errorf("receipt %+v: ledger says %+v", r, s)
		}
		valid = append(valid, s)
	}
	slices.SortFunc(valid, func(a, b fabrictest.TxStatus) int { return int(a.Block) - int(b.Block) })
	if bad.Code != peer.TxValidationCode_MVCC_READ_CONFLICT || valid[0].Block != bad.Block || valid[1].Block <= bad.Block {
		t.Errorf("blocks: valid %+v, conflicted %+v; want the conflict in the first valid one's block, the retry later", valid, bad)
	}
	for _, c := range []struct {
		s    ledger.Signer
		want ledger.Amount
	}{{w.alice, 20}, {w.bob, 30}, {w.carol, 50}} {
		if got := w.balance(t, c.s); got != c.want {
			t.Errorf("balance of %s = %d, want %d", c.s.ID, got, c.want)
		}
	}
	// The invalid transaction emitted no event; every valid one did.
	var seen []string
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wantEvents := 0
	for _, s := range w.n.Transactions() {
		if s.Code == peer.TxValidationCode_VALID {
			wantEvents++
		}
	}
	err := w.l.Listen(lctx, 1, func(_ context.Context, ev fabric.Event) error {
		seen = append(seen, ev.TxID)
		if len(seen) == wantEvents {
			cancel()
		}
		return nil
	})
	must(t, err)
	if slices.Contains(seen, bad.TxID) || len(seen) != wantEvents {
		t.Errorf("events of %d transactions (conflicted %s among them: %v); want the %d valid ones", len(seen), bad.TxID, slices.Contains(seen, bad.TxID), wantEvents)
	}
}

// TestUnknownCA refuses a client whose certificate no MSP of the channel
// issued, as a peer refuses it, and records nothing.
func TestUnknownCA(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	n := startNetwork(t, fabrictest.Options{TLS: true, Logf: func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, strings.TrimSpace(fmtSprintf(f, args...)))
	}})
	rogue, err := fabrictest.NewForeignIdentity(n.MSPID)
	must(t, err)
	l := open(t, n, config(t, n, rogue), nil)
	c := ledger.NewClient(l)
	op := signer("operator")
	err = c.Bootstrap(t.Context(), op, "MedX")
	var ee *client.EndorseError
	if !errors.As(err, &ee) || status.Code(err) != codes.Aborted {
		t.Fatalf("Bootstrap with a foreign certificate: %v; want an Aborted EndorseError", err)
	}
	var fe *fabric.Error
	if !errors.As(err, &fe) || fe.TxID == "" || fe.TxID != ee.TransactionID || !strings.Contains(err.Error(), fe.TxID) || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("error %q: want the transaction id and the peer's access denied", err)
	}
	if _, err := c.Participants(t.Context()); err == nil {
		t.Error("Participants with a foreign certificate succeeded")
	}
	mu.Lock()
	joined := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(joined, "certificate signed by unknown authority") {
		t.Errorf("peer log %q: want the x509 reason", joined)
	}
	if len(n.Transactions()) != 0 {
		t.Errorf("ledger holds %v, want nothing", n.Transactions())
	}
	// The network's own user goes through.
	good := ledger.NewClient(open(t, n, config(t, n, n.User), nil))
	must(t, good.Bootstrap(t.Context(), op, "MedX"))
}

// TestChaincodeError delivers the contract's refusal with its message,
// its sentinel and the transaction id, and commits nothing.
func TestChaincodeError(t *testing.T) {
	w := newWorld(t, fabrictest.Options{})
	before := len(w.n.Transactions())
	_, err := w.l.Submit(t.Context(), ledger.FnTransfer, transferArg(t, w.bob, w.alice.ID, 5))
	if !errors.Is(err, ledger.ErrFunds) {
		t.Fatalf("transfer beyond the balance: %v, want ErrFunds", err)
	}
	var fe *fabric.Error
	var ee *client.EndorseError
	if !errors.As(err, &fe) || !errors.As(err, &ee) {
		t.Fatalf("error %T %v: want a *fabric.Error wrapping a *client.EndorseError", err, err)
	}
	if len(fe.TxID) != 64 || fe.TxID != ee.TransactionID || fe.Stage != "endorse" || !strings.Contains(err.Error(), fe.TxID) {
		t.Errorf("error %q (tx %q, stage %q): want the endorse stage and the transaction id %s", err, fe.TxID, fe.Stage, ee.TransactionID)
	}
	if want := "transfer 5 from bob: balance is 0: insufficient funds"; fe.Message != want || !strings.Contains(err.Error(), want) {
		t.Errorf("message %q in %q, want %q", fe.Message, err, want)
	}
	// A read-only call's error carries its (never committed) id too.
	_, err = w.l.Evaluate(t.Context(), ledger.FnGetParticipant, []byte(`"nobody"`))
	if !errors.Is(err, ledger.ErrNotFound) || !errors.As(err, &fe) || fe.Stage != "evaluate" || len(fe.TxID) != 64 {
		t.Errorf("GetParticipant(nobody): %v, want ErrNotFound from evaluate with a tx id", err)
	}
	if after := len(w.n.Transactions()); after != before {
		t.Errorf("%d transactions ordered by refused calls", after-before)
	}
}

// TestEventsResume restarts the event listener (a new backend on the
// same checkpoint file): it continues after the last event handled,
// without gaps or repeats.
func TestEventsResume(t *testing.T) {
	w := newWorld(t, fabrictest.Options{})
	ctx := t.Context()
	w.cfg.EventCheckpointFile = filepath.Join(t.TempDir(), "events.chk")
	var got []fabric.Event
	errStop := errors.New("stop")
	listen := func(l *fabric.Ledger, want int) {
		t.Helper()
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		n := 0
		err := l.Listen(lctx, 1, func(_ context.Context, ev fabric.Event) error {
			if n == want {
				return errStop // not handled: not checkpointed
			}
			got = append(got, ev)
			if n++; n == want {
				cancel()
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			t.Fatal(err)
		}
	}
	first := open(t, w.n, w.cfg, nil)
	listen(first, 3) // of the 5 so far: bootstrap, 3 registrations, mint
	first.Close()
	w.l.Close()
	second := open(t, w.n, w.cfg, nil)
	c := ledger.NewClient(second)
	must(t, c.Transfer(ctx, w.alice, w.bob.ID, 1))
	must(t, c.Transfer(ctx, w.alice, w.carol.ID, 2))
	listen(second, 4)
	var fns []string
	var ids []string
	for _, ev := range got {
		fns = append(fns, ev.Fn)
		ids = append(ids, ev.TxID)
	}
	want := []string{ledger.FnBootstrap, ledger.FnRegisterParticipant, ledger.FnRegisterParticipant,
		ledger.FnRegisterParticipant, ledger.FnMint, ledger.FnTransfer, ledger.FnTransfer}
	if !slices.Equal(fns, want) {
		t.Fatalf("events %v, want %v", fns, want)
	}
	var valid []string
	for _, s := range w.n.Transactions() {
		valid = append(valid, s.TxID)
	}
	if !slices.Equal(ids, valid) {
		t.Errorf("event tx ids %v, want the committed %v", ids, valid)
	}
	if got[0].Event == nil || got[0].Event.Name != ledger.EventParticipantRegistered || got[0].Time.IsZero() {
		t.Errorf("first event %+v: want the bootstrap's participant_registered with its time", got[0])
	}
}

// TestTLS dials over mutual TLS, and refuses a peer whose TLS certificate
// the configured root did not issue.
func TestTLS(t *testing.T) {
	n := startNetwork(t, fabrictest.Options{MutualTLS: true})
	cfg := config(t, n, n.User)
	cfg.TLSClientCert, cfg.TLSClientKey = string(n.TLSClient.CertPEM), string(n.TLSClient.KeyPEM)
	if _, err := ledger.NewClient(open(t, n, cfg, nil)).Participants(t.Context()); err != nil {
		t.Fatalf("over mutual TLS: %v", err)
	}
	other, err := fabrictest.NewCA("other-tlsca")
	must(t, err)
	cfg.TLSCACert = string(other.CertPEM)
	cfg.Timeouts.Evaluate = fabric.Duration(2 * time.Second)
	_, err = ledger.NewClient(open(t, n, cfg, nil)).Participants(t.Context())
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("with the wrong TLS root: %v; want Unavailable, unknown authority", err)
	}
}

func fmtSprintf(f string, args ...any) string { return fmt.Sprintf(f, args...) }
