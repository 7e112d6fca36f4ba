package embedded

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// maxProblems caps the problems listed in a report.
const maxProblems = 50

// Verify re-walks every block (hash links, heights, times, canonical
// encoding, tx roots, node signatures), replays every transaction from
// genesis through the contract into a fresh in-memory state, checks each
// result and event against the block, and compares the replayed state
// with the stored one, value by value (each stored value's MAC included).
// The report's summary is taken from the replayed state at the ledger's
// current time. It returns an error only if it could not run; findings
// are in the report.
func (l *Ledger) Verify(ctx context.Context) (ledger.AuditReport, error) {
	select {
	case <-l.closing:
		return ledger.AuditReport{}, fmt.Errorf("verify: %w", ErrClosed)
	default:
	}
	l.mu.Lock()
	at := laterOf(l.clock(), l.head.time)
	l.mu.Unlock()
	a := newAuditor(ctx, l.pub, &l.mac, l.log, at)
	err := safely(func() error { return l.db.View(a.run) })
	if err != nil {
		return ledger.AuditReport{}, fmt.Errorf("verify: %w", err)
	}
	return a.report(), nil
}

// AuditError is VerifyFile's error for a ledger that fails verification.
// It names the first bad block and transaction (when one is to blame) and
// the first problem found, and matches ErrCorrupt.
type AuditError struct {
	Path     string
	Block    *uint64 // nil when no block is to blame
	Tx       string
	Problem  string // the first problem
	Problems int    // how many were listed
}

func (e *AuditError) Error() string {
	where := ""
	switch {
	case e.Block != nil && e.Tx != "":
		where = fmt.Sprintf(": first bad block %d, transaction %s", *e.Block, e.Tx)
	case e.Block != nil:
		where = fmt.Sprintf(": first bad block %d", *e.Block)
	}
	return fmt.Sprintf("ledger %s fails verification%s: %s (%d problems)", e.Path, where, e.Problem, e.Problems)
}

func (e *AuditError) Unwrap() error { return ErrCorrupt }

// VerifyFile verifies a bare ledger file on its own, with neither the
// node's private key nor any other state: it opens the file read-only,
// walks its pages, checks every block's height, link, time, canonical
// encoding, transaction root and node signature (against the key the
// blocks carry, reported as NodeKey for comparison with the node's
// published key), replays every transaction from genesis through the
// contract (verifying every actor's and custodian's signature), and
// compares every stored state value with the replayed one. The state
// values' MACs need the node's private key and are not checked; a value
// altered in the file still differs from the replayed one.
//
// The summary is taken at the later of now and the last block's time. If
// anything is wrong, it returns the report and an *AuditError naming the
// first bad block and transaction. Other errors mean it could not run.
func VerifyFile(ctx context.Context, path string) (ledger.AuditReport, error) {
	return VerifyFileWith(ctx, path, VerifyOptions{})
}

// VerifyFileAt is VerifyFile with the summary taken at the later of at and
// the last block's time.
func VerifyFileAt(ctx context.Context, path string, at time.Time) (ledger.AuditReport, error) {
	return VerifyFileWith(ctx, path, VerifyOptions{At: at})
}

// VerifyOptions are VerifyFileWith's settings.
type VerifyOptions struct {
	// At is when the summary is taken (the later of At and the last
	// block's time); zero means now.
	At time.Time
	// Progress, if set, is called on VerifyFileWith's goroutine as blocks
	// are replayed (at most every 256 blocks, and after the last), with
	// how many have been and the height of the last stored block.
	Progress func(done, total uint64)
}

// VerifyFileWith is VerifyFile with options.
func VerifyFileWith(ctx context.Context, path string, opts VerifyOptions) (ledger.AuditReport, error) {
	at := opts.At
	if at.IsZero() {
		at = time.Now()
	}
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrVersionMismatch) || errors.Is(err, bolt.ErrChecksum) {
			return failFile(path, fmt.Sprintf("not a readable ledger file: %v", err))
		}
		if errors.Is(err, bolt.ErrTimeout) {
			return ledger.AuditReport{}, fmt.Errorf("verify %s: the file is in use by another process (a running medx serve?); stop it, or verify a copy of the file: %w", path, err)
		}
		return ledger.AuditReport{}, fmt.Errorf("verify %s: %w", path, err)
	}
	defer db.Close()
	soft, err := checkPages(path)
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return failFile(path, err.Error())
		}
		return ledger.AuditReport{}, fmt.Errorf("verify %s: %w", path, err)
	}
	var rep ledger.AuditReport
	err = safely(func() error {
		return db.View(func(tx *bolt.Tx) error {
			pub, err := fileNodeKey(tx)
			if err != nil {
				return err
			}
			a := newAuditor(ctx, pub, nil, slog.New(slog.DiscardHandler), at)
			a.progress = opts.Progress
			for _, s := range soft {
				a.problem(nil, "file structure: %s", s)
			}
			a.checkMeta(tx)
			if err := a.run(tx); err != nil {
				return err
			}
			rep = a.report()
			return nil
		})
	})
	switch {
	case errors.Is(err, ErrCorrupt):
		return failFile(path, err.Error())
	case err != nil:
		return ledger.AuditReport{}, fmt.Errorf("verify %s: %w", path, err)
	}
	if !rep.OK() {
		return rep, auditError(path, rep)
	}
	return rep, nil
}

// failFile reports a file that could not be audited at all.
func failFile(path, problem string) (ledger.AuditReport, error) {
	rep := ledger.AuditReport{Problems: []string{problem}}
	return rep, auditError(path, rep)
}

func auditError(path string, rep ledger.AuditReport) error {
	e := &AuditError{Path: path, Block: rep.FirstBadBlock, Tx: rep.FirstBadTx, Problems: len(rep.Problems)}
	if len(rep.Problems) > 0 {
		e.Problem = rep.Problems[0]
	} else {
		e.Problem = "replayed state differs from the stored one"
	}
	return e
}

// fileNodeKey returns the node key the blocks carry (the first block's),
// or the file's recorded key when there is no readable first block.
func fileNodeKey(tx *bolt.Tx) (ed25519.PublicKey, error) {
	bk, meta := tx.Bucket([]byte(bucketBlocks)), tx.Bucket([]byte(bucketMeta))
	if bk == nil && meta == nil {
		return nil, fmt.Errorf("not a MedX ledger file: a bbolt file with neither a %s nor a %s bucket: %w", bucketBlocks, bucketMeta, ErrCorrupt)
	}
	if bk != nil {
		if _, v := bk.Cursor().First(); v != nil {
			if b, err := decodeBlock(v); err == nil && len(b.NodeKey) == ed25519.PublicKeySize {
				return b.NodeKey, nil
			}
		}
	}
	if meta != nil {
		if k := meta.Get([]byte(metaNodeKey)); len(k) == ed25519.PublicKeySize {
			return bytes.Clone(k), nil
		}
	}
	return nil, fmt.Errorf("no node key in the blocks or the file: %w", ErrCorrupt)
}

// txRef names a block and, when one is to blame, a transaction in it.
type txRef struct {
	height uint64
	tx     string
}

// auditor is one verification in progress.
type auditor struct {
	ctx      context.Context
	pub      ed25519.PublicKey // the node key every block must carry
	mac      *stateMAC         // nil: MACs cannot be checked (no private key)
	log      *slog.Logger
	contract ledger.Contract
	at       time.Time // the summary is taken at the later of at and the last block's time

	mem     *ledger.MemState
	summary error            // from summarizing the replayed state
	blocks  *bolt.Bucket     // the blocks being audited, for replaying them again (writers)
	track   bool             // record in writers who wrote each key (a replay for lastWriter)
	writers map[string]txRef // the last transaction that wrote each key, found when a difference needs it
	// chainSound is whether the chain had no fault before the state was
	// compared, so that state differences can be blamed on transactions.
	chainSound bool
	rep        ledger.AuditReport
	problems   []string
	extra      int  // problems beyond maxProblems
	diverged   bool // the replay could not follow the history
	bad        *txRef
	keys       sync.Map // ParticipantID -> ed25519.PublicKey hints for verifying ahead
	progress   func(done, total uint64)
}

func newAuditor(ctx context.Context, pub ed25519.PublicKey, mac *stateMAC, log *slog.Logger, at time.Time) *auditor {
	a := &auditor{ctx: ctx, pub: pub, mac: mac, log: log, at: at, mem: ledger.NewMemState(), contract: ledger.NewContract()}
	a.rep.NodeKey = hex.EncodeToString(pub)
	return a
}

// problem records a finding; at names the block (and transaction) to
// blame, if any.
func (a *auditor) problem(at *txRef, format string, args ...any) {
	if at != nil {
		switch {
		case a.bad == nil || at.height < a.bad.height:
			r := *at
			a.bad = &r
		case at.height == a.bad.height && a.bad.tx == "":
			a.bad.tx = at.tx
		}
	}
	if len(a.problems) >= maxProblems {
		a.extra++
		return
	}
	a.problems = append(a.problems, fmt.Sprintf(format, args...))
}

func (a *auditor) report() ledger.AuditReport {
	if a.summary != nil {
		a.problem(nil, "summarize the replayed state: %v", a.summary)
	}
	if t := a.rep.Tokens; t.Minted != t.Balances+t.Escrow {
		a.problem(nil, "MedTokens not conserved: minted %d, balances %d + escrow %d", t.Minted, t.Balances, t.Escrow)
	}
	r := a.rep
	r.Problems = a.problems
	if a.extra > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("... and %d more problems", a.extra))
	}
	if a.bad != nil {
		h := a.bad.height
		r.FirstBadBlock, r.FirstBadTx = &h, a.bad.tx
	}
	return r
}

// checkMeta checks the file's meta bucket and that it holds only the
// ledger's buckets.
func (a *auditor) checkMeta(tx *bolt.Tx) {
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		switch string(name) {
		case bucketMeta, bucketBlocks, bucketState:
		default:
			a.problem(nil, "unknown bucket %q in the file", name)
		}
		return nil
	})
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		a.problem(nil, "the file has no %s bucket", bucketMeta)
		return
	}
	_ = meta.ForEach(func(k, v []byte) error {
		switch string(k) {
		case metaFormat:
			if string(v) != formatV2 {
				a.problem(nil, "unknown ledger format %q", v)
			}
		case metaNodeKey:
			if !bytes.Equal(v, a.pub) {
				a.problem(nil, "the file's node key %x is not the key %x its blocks carry", v, []byte(a.pub))
			}
		default:
			a.problem(nil, "unknown meta key %q", k)
		}
		return nil
	})
	for _, k := range []string{metaFormat, metaNodeKey} {
		if meta.Get([]byte(k)) == nil {
			a.problem(nil, "the file has no %s", k)
		}
	}
}

// item is one stored block on its way through the audit pipeline.
type item struct {
	k, v []byte
	done chan struct{}

	b         *Block
	decodeErr error
	checkErr  error
	hash      string
	sigs      []ledger.Verified  // of b.Txs, verified ahead
	preps     []*ledger.Prepared // of b.Txs
}

// run checks the blocks in order while workers decode them and verify
// their signatures ahead, in parallel; then compares the states.
func (a *auditor) run(tx *bolt.Tx) error {
	bk, st := tx.Bucket([]byte(bucketBlocks)), tx.Bucket([]byte(bucketState))
	if bk == nil || st == nil {
		a.problem(nil, "the file lacks the %s or %s bucket", bucketBlocks, bucketState)
		return nil
	}
	a.blocks = bk
	// The replay rebuilds about as many keys as are stored: making room
	// for them at once spares growing the map step by step. The count is
	// only a hint (a damaged file may claim anything), so it is capped.
	a.mem = ledger.NewMemStateSize(min(st.Stats().KeyN, 1<<24))
	workers := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	work := make(chan *item, 4*workers)
	ordered := make(chan *item, 4*workers)
	var faults sync.Once
	var fault error
	guard := func(f func()) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				faults.Do(func() { fault = fmt.Errorf("reading the ledger file failed (%v): %w", r, ErrCorrupt) })
				cancel()
			}
		}()
		f()
	}
	go guard(func() {
		defer close(work)
		defer close(ordered)
		c := bk.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			it := &item{k: k, v: v, done: make(chan struct{})}
			select {
			case ordered <- it:
			case <-ctx.Done():
				return
			}
			select {
			case work <- it:
			case <-ctx.Done():
				return
			}
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				guard(func() { a.prepare(it) })
				close(it.done)
			}
		}()
	}
	defer wg.Wait()

	var total uint64 // for progress: the last stored block's height
	if k, _ := bk.Cursor().Last(); len(k) == 8 {
		total = binary.BigEndian.Uint64(k)
	}
	stateMatches := true
	prevHash := genesisPrev
	var prev *Block
	want := uint64(0) // the height the block at this position must have
	for it := range ordered {
		select {
		case <-it.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		want++
		at := &txRef{height: want}
		if it.decodeErr != nil {
			a.problem(at, "block at key %x (position %d): %v", it.k, want, it.decodeErr)
			a.diverged = true
			prev, prevHash = nil, ""
			continue
		}
		b := it.b
		a.rep.Blocks++
		a.rep.Transactions += int64(len(b.Txs))
		if a.rep.Blocks == 1 {
			a.rep.FirstBlock = b.Time
		}
		a.rep.LastBlock = b.Time
		a.rep.Head = it.hash
		if b.Height != want || !bytes.Equal(it.k, heightKey(want)) {
			a.problem(at, "block %d: stored at key %x, expected height %d", b.Height, it.k, want)
		}
		if prevHash != "" && b.Prev != prevHash {
			a.problem(at, "block %d: prev %s does not link to block %d (%s)", want, b.Prev, want-1, prevHash)
		}
		if prev != nil && b.Time.Before(prev.Time) {
			a.problem(at, "block %d: time %s goes back from %s", b.Height, b.Time, prev.Time)
		}
		if it.checkErr != nil {
			a.problem(at, "%v", it.checkErr)
		}
		a.replay(b, want, it.sigs, it.preps)
		if a.progress != nil && want%256 == 0 {
			a.progress(want, max(total, want))
		}
		prev, prevHash = b, it.hash
		it.v, it.b, it.sigs, it.preps = nil, nil, nil, nil
	}
	cancel()
	wg.Wait()
	if a.progress != nil && fault == nil && a.ctx.Err() == nil {
		a.progress(want, max(total, want))
	}
	if fault != nil {
		return fault
	}
	if err := a.ctx.Err(); err != nil {
		return err
	}
	if a.diverged {
		stateMatches = false
	}
	// Summarize the replayed state while comparing the stored state with
	// it key by key: both only read its values (a summary that falls back
	// to ranging may sort the key index, which the comparison never
	// touches); replayed keys missing from the store, if any, are looked
	// for after.
	summarized := make(chan struct{})
	go func() {
		defer close(summarized)
		a.summary = a.rep.Summarize(a.mem, laterOf(a.at, a.rep.LastBlock))
	}()
	a.chainSound = a.bad == nil
	matches, found := a.compareStored(st)
	<-summarized
	if found != a.mem.Len() {
		a.findMissing(st)
		matches = false
	}
	if !matches {
		stateMatches = false
	}
	a.rep.StateMatches = stateMatches
	return nil
}

// prepare decodes a block, checks it on its own and verifies its
// transactions' signatures ahead.
func (a *auditor) prepare(it *item) {
	b, err := decodeBlock(it.v)
	if err != nil {
		it.decodeErr = err
		return
	}
	// A block that decodes is in its canonical encoding: every field has
	// a fixed size or a length prefix, the event flag is 0 or 1 and
	// nothing may follow, so encoding it again gives back exactly its
	// bytes (FuzzBlockEncoding).
	it.b = b
	it.checkErr = b.check(a.pub)
	it.hash = b.Hash()
	it.sigs = make([]ledger.Verified, len(b.Txs))
	it.preps = make([]*ledger.Prepared, len(b.Txs))
	want := make([][]ledger.Signature, len(b.Txs))
	var all []ledger.Signature
	for i, t := range b.Txs {
		it.preps[i] = a.contract.Prepare(t.Fn, t.Args)
		sigs := it.preps[i].Signatures(a.keyOf)
		want[i] = sigs
		all = append(all, sigs...)
		if t.Fn == ledger.FnAcceptOffer && len(sigs) > 0 && len(sigs[0].PublicKey) == ed25519.PublicKeySize {
			// The pseudonym's own key signs its acceptance.
			a.keys.Store(ledger.PseudonymID(sigs[0].PublicKey), sigs[0].PublicKey)
		} else {
			a.hint(t)
		}
	}
	// The block's signatures are verified together; the replay checks
	// any other one alone, by the same rule.
	ok := ledger.VerifySignatures(all)
	for i, sigs := range want {
		it.sigs[i] = ledger.VerifiedOf(sigs, ok[:len(sigs)])
		ok = ok[len(sigs):]
	}
}

func (a *auditor) keyOf(id ledger.ParticipantID) ed25519.PublicKey {
	if k, ok := a.keys.Load(id); ok {
		return k.(ed25519.PublicKey)
	}
	return nil
}

// hint remembers the key a registering transaction introduces, for
// verifying later transactions' signatures ahead. A wrong hint costs only
// time: the replay checks every signature against the replayed state.
func (a *auditor) hint(t Tx) {
	if len(t.Args) != 1 {
		return
	}
	var act ledger.Action
	switch t.Fn {
	case ledger.FnBootstrap, ledger.FnRegisterParticipant:
		if json.Unmarshal(t.Args[0], &act) != nil {
			return
		}
	default:
		return
	}
	var p struct {
		ID        ledger.ParticipantID `json:"id"`
		PublicKey []byte               `json:"publicKey"`
	}
	if json.Unmarshal(act.Payload, &p) != nil || len(p.PublicKey) != ed25519.PublicKeySize {
		return
	}
	a.keys.Store(p.ID, ed25519.PublicKey(p.PublicKey))
}

// replay runs the transactions of the block at height h through the
// contract, each over its own overlay, as the committer did.
func (a *auditor) replay(b *Block, h uint64, sigs []ledger.Verified, preps []*ledger.Prepared) {
	submitter := "embedded:" + hex.EncodeToString(b.NodeKey)
	rec := &recorder{mem: a.mem, track: a.track}
	for i, t := range b.Txs {
		at := &txRef{height: h, tx: t.ID}
		rec.keys, rec.err = rec.keys[:0], nil
		tc := ledger.TxContext{TxID: t.ID, Timestamp: b.Time, Submitter: submitter, Sigs: sigs[i]}
		res, ev, err := a.invoke(tc, rec, preps[i])
		if err == nil {
			err = rec.err
		}
		if a.track {
			for _, k := range rec.keys {
				a.writers[k] = *at
			}
		}
		if err != nil {
			a.problem(at, "block %d tx %s (%s): replay fails: %v", h, t.ID, t.Fn, err)
			a.diverged = true
			continue
		}
		if !bytes.Equal(res, t.Result) {
			a.problem(at, "block %d tx %s (%s): replayed result differs from the recorded one", h, t.ID, t.Fn)
			a.diverged = true
		}
		if !sameEvent(ev, t.Event) {
			a.problem(at, "block %d tx %s (%s): replayed event differs from the recorded one", h, t.ID, t.Fn)
			a.diverged = true
		}
	}
}

// recorder is the replay's State: the contract's writes go straight into
// the replayed state, since Invoke applies a call's writes only once the
// call has succeeded (as the committer's overlay receives them), and their
// keys are noted so that a differing stored value can be blamed on the
// transaction that last wrote it. Like the committer's overlay, it
// refuses an empty key.
type recorder struct {
	mem   *ledger.MemState
	track bool     // note the keys written
	keys  []string // written by the current transaction, when tracking
	err   error    // the first refused write of the current transaction
}

func (r *recorder) Get(k string) ([]byte, error) { return r.mem.Get(k) }

func (r *recorder) Range(start, end string, fn func(string, []byte) (bool, error)) error {
	return r.mem.Range(start, end, fn)
}

func (r *recorder) Put(k string, v []byte) error {
	if k == "" {
		err := errors.New("empty state key")
		if r.err == nil {
			r.err = err
		}
		return err
	}
	if r.track {
		r.keys = append(r.keys, k)
	}
	return r.mem.Put(k, v)
}

func (r *recorder) Delete(k string) error {
	if r.track {
		r.keys = append(r.keys, k)
	}
	return r.mem.Delete(k)
}

// lastWriter returns the transaction that last wrote k during the replay.
// Only a state difference needs it, so the replay does not track its
// writes: the first call replays the blocks again, tracking them, exactly
// as the audit did (the same blocks decoded, the same signatures
// verified, the same transactions failing).
func (a *auditor) lastWriter(k string) (txRef, bool) {
	if a.writers == nil {
		a.writers = a.replayWriters()
	}
	w, ok := a.writers[k]
	return w, ok
}

// replayWriters replays every block again, in order and alone, and
// returns the last transaction that wrote each key.
func (a *auditor) replayWriters() map[string]txRef {
	r := newAuditor(a.ctx, a.pub, nil, a.log, a.at)
	r.track, r.writers = true, map[string]txRef{}
	h := uint64(0)
	c := a.blocks.Cursor()
	for k, v := c.First(); k != nil && a.ctx.Err() == nil; k, v = c.Next() {
		h++
		it := &item{k: k, v: v}
		if r.prepare(it); it.decodeErr == nil {
			r.replay(it.b, h, it.sigs, it.preps)
		}
	}
	return r.writers
}

// invoke runs the contract, turning a panic into an error.
func (a *auditor) invoke(tc ledger.TxContext, st ledger.State, p *ledger.Prepared) (res []byte, ev *ledger.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("contract panic during audit", "fn", p.Fn(), "tx", tc.TxID, "panic", r)
			err = fmt.Errorf("%s: contract panic: %v", p.Fn(), r)
		}
	}()
	return a.contract.InvokePrepared(tc, st, p)
}

func sameEvent(a, b *ledger.Event) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Name == b.Name && bytes.Equal(a.Payload, b.Payload)
}

// compareStored walks the stored state in key order and reports every
// key the replay did not produce and every value that differs from the
// replayed one or (with the node key) fails its MAC. A differing value
// points to the transaction that last wrote the key. It returns whether
// all matched and how many stored keys the replay produced.
func (a *auditor) compareStored(bucket *bolt.Bucket) (bool, int) {
	ok := true
	found := 0
	c := bucket.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		ks := string(k)
		var val []byte
		var err error
		if a.mac != nil {
			val, err = a.mac.check(ks, v)
		} else if len(v) < macSize {
			err = fmt.Errorf("state value at %q is shorter than its MAC", ks)
		} else {
			val = v[macSize:]
		}
		present, equal := a.mem.Holds(ks, val)
		if !present {
			a.problem(nil, "state key %q: stored but not produced by any transaction", k)
			ok = false
			continue
		}
		found++
		switch {
		case err != nil:
			a.problem(a.blame(ks), "%v", err)
			ok = false
		case !equal:
			by := ""
			if lw, ok := a.lastWriter(ks); ok {
				by = fmt.Sprintf(" (last written by block %d tx %s)", lw.height, lw.tx)
			}
			a.problem(a.blame(ks), "state key %q: stored value differs from the replayed one%s", ks, by)
			ok = false
		}
	}
	return ok, found
}

// findMissing reports, in key order, the replayed keys missing from the
// stored state.
func (a *auditor) findMissing(bucket *bolt.Bucket) {
	_ = a.mem.Range("", "", func(k string, _ []byte) (bool, error) {
		if bucket.Get([]byte(k)) == nil {
			a.problem(a.blame(k), "state key %q: missing from the stored state", k)
		}
		return true, nil
	})
}

// blame is the transaction to blame for a state difference at k: the
// last one that wrote it, but only when the chain itself is sound (when
// it is faulty, state differences follow from that).
func (a *auditor) blame(k string) *txRef {
	if !a.chainSound {
		return nil
	}
	if w, ok := a.lastWriter(k); ok {
		return &w
	}
	return nil
}
