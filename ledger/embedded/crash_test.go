package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/medx/medx/ledger"
)

// childEnv makes the test binary run runChild instead of the tests.
const childEnv = "MEDX_EMBEDDED_CRASH_CHILD"

// runChild registers participants from several goroutines forever and
// prints "ack <id>" for each one the ledger acknowledged, until killed.
func runChild(path string) int {
	l, err := Open(path, testKey("crash-node"), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ctx := context.Background()
	c := ledger.NewClient(l)
	op := signer("operator")
	if err := c.Bootstrap(ctx, op, "MedX"); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	var mu sync.Mutex
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				id := ledger.ParticipantID(fmt.Sprintf("p-%d-%d", g, i))
				err := c.RegisterParticipant(ctx, op, ledger.Participant{ID: id, Role: ledger.RoleSponsor, PublicKey: op.Public()})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %s\n", id)
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestAcknowledgedSurvivesKill9 kills a process that is committing
// transactions and checks that every transaction it acknowledged is in the
// reopened ledger, whose history still verifies.
func TestAcknowledgedSurvivesKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[ledger.ParticipantID]bool{}
	sc := bufio.NewScanner(out)
	killAt := 300
	if testing.Short() {
		killAt = 60
	}
	killed := false
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		acked[ledger.ParticipantID(id)] = true
		if len(acked) >= killAt && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
		}
	}
	// Acks already written before the kill were read above, to EOF.
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d acks before being killed; stderr:\n%s", len(acked), stderr.String())
	}

	l, err := Open(path, testKey("crash-node"), Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer l.Close()
	c := ledger.NewClient(l)
	ps, err := c.Participants(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	have := map[ledger.ParticipantID]bool{}
	for _, p := range ps {
		have[p.ID] = true
	}
	for id := range acked {
		if !have[id] {
			t.Errorf("acknowledged participant %s lost after kill -9", id)
		}
	}
	t.Logf("%d acknowledged, %d present after kill -9 at height %d", len(acked), len(ps)-1, l.Height())
	rep, err := l.Verify(t.Context())
	if err != nil || !rep.OK() {
		t.Fatalf("Verify after kill -9 = %+v, %v", rep, err)
	}
}
