package embedded

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// Environment of the crash child: the test binary runs runChild instead of
// the tests when childEnv is set.
const (
	childEnv    = "MEDX_EMBEDDED_CRASH_CHILD"
	childReqEnv = "MEDX_EMBEDDED_CRASH_REQUEST"
)

// runChild accepts the request's offer under fresh pseudonyms from several
// goroutines, forever, and prints "ack <tx id> <licence id>" for each
// acceptance the ledger acknowledged, until it is killed.
func runChild(path string) int {
	l, err := Open(path, testKey("crash-node"), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ctx := context.Background()
	c := ledger.NewClient(l)
	r, err := c.Request(ctx, ledger.RequestID(os.Getenv(childReqEnv)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	cust := signer("st-marys")
	var mu sync.Mutex
	for range 16 {
		go func() {
			for {
				_, key, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					panic(err)
				}
				pn := ledger.Signer{Key: key}
				pn.ID = ledger.PseudonymID(pn.Public())
				act, err := pn.Sign(ledger.FnAcceptOffer, ledger.Acceptance{
					Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
					PublicKey:   pn.Public(),
					Certificate: cust.Certify(r.ID, pn.Public()),
				})
				if err != nil {
					panic(err)
				}
				arg, _ := json.Marshal(act)
				rc, err := l.SubmitTx(ctx, ledger.FnAcceptOffer, arg)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(1)
				}
				var lic ledger.Licence
				if err := json.Unmarshal(rc.Result, &lic); err != nil {
					panic(err)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s %s\n", rc.TxID, lic.ID) // unbuffered: one write per line
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestCrashRecovery kills a process that is committing licences from many
// goroutines with SIGKILL at random points, again and again, and after
// each kill reopens the ledger and checks that it verifies, that every
// acceptance the child acknowledged is there (licence and transaction),
// and that MedTokens are conserved.
func TestCrashRecovery(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))

	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, testKey("crash-node"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := newCast(t, l)
	const places = 1_000_000
	r, err := w.c.PostRequest(t.Context(), w.sponsor, ledger.RequestDraft{
		Title: "Crash study", Purpose: "p", Criteria: "age > 1", Scope: []string{"labs"},
		RewardPerPatient: 1, MaxParticipants: places, LicenceSeconds: 3600,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.ApproveRequest(t.Context(), w.board, r.ID, ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	acked := map[string]string{} // tx id -> licence id, over all rounds
	for round := range rounds {
		killAfter := rng.IntN(200) // acknowledgements; 0 kills as soon as the child starts
		n := runAndKill(t, path, r.ID, killAfter, time.Duration(rng.IntN(40))*time.Millisecond, acked)

		l, err := Open(path, testKey("crash-node"), Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		rep, err := l.Verify(t.Context())
		if err != nil || !rep.OK() {
			l.Close()
			t.Fatalf("round %d: Verify after SIGKILL = %+v, %v", round, rep, err)
		}
		txs := map[string]bool{}
		if err := l.Trail(t.Context(), ledger.TrailFilter{}, func(tr ledger.TrailRecord) error {
			txs[tr.TxID] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		c := ledger.NewClient(l)
		for tx, lic := range acked {
			if !txs[tx] {
				t.Errorf("round %d: acknowledged transaction %s is not in any block", round, tx)
			}
			if got, err := c.Licence(t.Context(), ledger.LicenceID(lic)); err != nil || got.Request != r.ID {
				t.Errorf("round %d: acknowledged licence %s: %+v, %v", round, lic, got, err)
			}
		}
		tok, err := c.Tokens(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		req, err := c.Request(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		lics, err := c.Licences(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Minted != tok.Balances+tok.Escrow || req.Escrow != ledger.Amount(places-req.Participants) || int64(len(lics)) != req.Participants ||
			tok.Minted != rep.Tokens.Minted || tok.Balances != rep.Tokens.Balances {
			t.Errorf("round %d: tokens %+v, escrow %d for %d participants and %d licences: not conserved", round, tok, req.Escrow, req.Participants, len(lics))
		}
		if int(req.Participants) < len(acked) {
			t.Errorf("round %d: %d participants, fewer than the %d acknowledged", round, req.Participants, len(acked))
		}
		t.Logf("round %d: killed after %d acks; %d acknowledged in all, %d licences, height %d", round, n, len(acked), len(lics), l.Height())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// runAndKill starts a child on path, SIGKILLs it once it has acknowledged
// killAfter acceptances (or after delay, when killAfter is 0), records
// every acknowledgement it printed, and returns how many it printed.
func runAndKill(t *testing.T, path string, req ledger.RequestID, killAfter int, delay time.Duration, acked map[string]string) int {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path, childReqEnv+"="+string(req))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := sync.OnceFunc(func() {
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Errorf("kill: %v", err)
		}
	})
	if killAfter == 0 {
		time.AfterFunc(delay, kill)
	}
	safety := time.AfterFunc(10*time.Second, kill)
	defer safety.Stop()
	n := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() { // to EOF: lines written before the kill are still read
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		acked[f[1]] = f[2]
		n++
		if n >= killAfter {
			kill()
		}
	}
	err = cmd.Wait()
	if status := cmd.ProcessState; status == nil || status.Exited() {
		t.Fatalf("child exited by itself (%v) after %d acks; stderr:\n%s", err, n, stderr.String())
	}
	return n
}
