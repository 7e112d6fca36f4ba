package embedded

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// maxProblems caps the problems listed in a report.
const maxProblems = 50

// Verify re-walks every block (hash links, heights, times, tx roots, node
// signatures), replays every transaction from genesis through the contract
// into a fresh in-memory state, checks each result and event against the
// block, and compares the replayed state with the stored one, value by
// value (each stored value's MAC included). It returns an error only if
// it could not run; findings are in the report.
func (l *Ledger) Verify(ctx context.Context) (ledger.AuditReport, error) {
	select {
	case <-l.closing:
		return ledger.AuditReport{}, fmt.Errorf("verify: %w", ErrClosed)
	default:
	}
	a := &audit{ctx: ctx, l: l, mem: ledger.NewMemState()}
	err := l.db.View(a.run)
	if err != nil {
		return ledger.AuditReport{}, fmt.Errorf("verify: %w", err)
	}
	return a.report(), nil
}

// audit is one Verify in progress.
type audit struct {
	ctx      context.Context
	l        *Ledger
	mem      *ledger.MemState
	rep      ledger.AuditReport
	problems []string
	extra    int  // problems beyond maxProblems
	diverged bool // the replay could not follow the history
}

func (a *audit) problem(format string, args ...any) {
	if len(a.problems) >= maxProblems {
		a.extra++
		return
	}
	a.problems = append(a.problems, fmt.Sprintf(format, args...))
}

func (a *audit) report() ledger.AuditReport {
	r := a.rep
	r.Problems = a.problems
	if a.extra > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("... and %d more problems", a.extra))
	}
	return r
}

func (a *audit) run(tx *bolt.Tx) error {
	stateMatches := true
	prevHash := genesisPrev
	var prev *Block
	c := tx.Bucket([]byte(bucketBlocks)).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		want := uint64(1)
		if prev != nil {
			want = prev.Height + 1
		}
		b, err := decodeBlock(v)
		if err != nil {
			a.problem("block at key %x: %v", k, err)
			a.diverged = true
			prev = &Block{Height: want} // keep counting heights
			prevHash = ""
			continue
		}
		a.rep.Blocks++
		a.rep.Transactions += int64(len(b.Txs))
		if a.rep.Blocks == 1 {
			a.rep.FirstBlock = b.Time
		}
		a.rep.LastBlock = b.Time
		a.rep.Head = b.Hash()
		if b.Height != want || !bytes.Equal(k, heightKey(b.Height)) {
			a.problem("block %d: stored at key %x, expected height %d", b.Height, k, want)
		}
		if prevHash != "" && b.Prev != prevHash {
			a.problem("block %d: prev %s does not link to block %d (%s)", b.Height, b.Prev, want-1, prevHash)
		}
		if prev != nil && b.Time.Before(prev.Time) {
			a.problem("block %d: time %s goes back from %s", b.Height, b.Time, prev.Time)
		}
		if err := b.check(a.l.pub); err != nil {
			a.problem("%v", err)
		}
		a.replay(b)
		prev, prevHash = b, b.Hash()
	}
	if a.diverged {
		stateMatches = false
	}
	if !a.compareState(tx) {
		stateMatches = false
	}
	a.rep.StateMatches = stateMatches
	return nil
}

// replay runs a block's transactions through the contract, each over its
// own overlay, as the committer did.
func (a *audit) replay(b *Block) {
	for _, t := range b.Txs {
		ov := newOverlay(a.mem)
		tc := ledger.TxContext{TxID: t.ID, Timestamp: b.Time, Submitter: "embedded:" + hex.EncodeToString(b.NodeKey)}
		res, ev, err := a.l.invoke(tc, ov, t.Fn, t.Args)
		if err != nil {
			a.problem("block %d tx %s (%s): replay fails: %v", b.Height, t.ID, t.Fn, err)
			a.diverged = true
			continue
		}
		if !bytes.Equal(res, t.Result) {
			a.problem("block %d tx %s (%s): replayed result differs from the recorded one", b.Height, t.ID, t.Fn)
			a.diverged = true
		}
		if !sameEvent(ev, t.Event) {
			a.problem("block %d tx %s (%s): replayed event differs from the recorded one", b.Height, t.ID, t.Fn)
			a.diverged = true
		}
		if err := ov.flush(); err != nil {
			a.problem("block %d tx %s: %v", b.Height, t.ID, err)
			a.diverged = true
		}
	}
}

func sameEvent(a, b *ledger.Event) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Name == b.Name && bytes.Equal(a.Payload, b.Payload)
}

// compareState walks the replayed and the stored state in key order and
// reports every key that is missing, extra, altered or fails its MAC.
func (a *audit) compareState(tx *bolt.Tx) bool {
	type kv struct {
		k string
		v []byte
	}
	var replayed []kv
	_ = a.mem.Range("", "", func(k string, v []byte) (bool, error) {
		replayed = append(replayed, kv{k, v})
		return true, nil
	})
	ok := true
	c := tx.Bucket([]byte(bucketState)).Cursor()
	k, v := c.First()
	i := 0
	for k != nil || i < len(replayed) {
		switch {
		case k == nil || (i < len(replayed) && replayed[i].k < string(k)):
			a.problem("state key %q: missing from the stored state", replayed[i].k)
			ok = false
			i++
			continue
		case i == len(replayed) || string(k) < replayed[i].k:
			a.problem("state key %q: stored but not produced by any transaction", k)
			ok = false
		default:
			val, err := a.l.mac.open(string(k), v)
			switch {
			case err != nil:
				a.problem("%v", err)
				ok = false
			case !bytes.Equal(val, replayed[i].v):
				a.problem("state key %q: stored value differs from the replayed one", k)
				ok = false
			}
			i++
		}
		k, v = c.Next()
	}
	return ok
}
