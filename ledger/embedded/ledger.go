// Package embedded is MedX's single-node ledger backend: it runs the
// ledger.Contract in-process over bbolt. Transactions are group-committed:
// everything queued when the executor is free becomes one block and one
// durable bbolt commit; their signatures are verified beforehand, in
// batches (ledger.VerifySignatures) while the block is collected, on
// goroutines of their own. Execution and commit are pipelined: the
// next block executes while the previous one is written and fsynced, and
// callers are answered only once their block is durable. Blocks are hash-linked, carry a Merkle root
// of their transactions and are signed by the node key; state values carry
// a MAC under the node key. Open walks the file's pages before trusting
// bbolt with them and checks the last blocks.
//
// Verify replays the whole history through the contract and compares the
// result with the stored state; VerifyFile does the same for a bare copy
// of the file, with no key or other state, and names the first bad block.
// Events streams committed blocks from any height, for subscribers that
// resume; Trail and TrailFile export the audit trail.
package embedded

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// Errors of the embedded backend (contract errors keep their own sentinels).
var (
	// ErrClosed is returned by calls on a closed ledger, and by Submit for
	// a transaction the ledger closed before running.
	ErrClosed = errors.New("ledger closed")
	// ErrCorrupt reports stored data that fails its hash, MAC or signature.
	ErrCorrupt = errors.New("ledger data corrupt")
)

// Options configure Open.
type Options struct {
	Clock    func() time.Time // nil = time.Now
	MaxBatch int              // transactions per block, default 256
	Logger   *slog.Logger     // nil = discard
}

// Bucket names and meta keys of the bbolt file.
const (
	bucketMeta   = "meta"
	bucketBlocks = "blocks"
	bucketState  = "state"
	metaNodeKey  = "nodeKey"
	metaFormat   = "format"
	formatV2     = "medx-embedded/v2" // binary blocks; v1 (JSON blocks) is refused
)

// headCheckDepth is how many of the last blocks Open verifies.
const headCheckDepth = 16

// Ledger is the embedded backend. It is safe for concurrent use.
type Ledger struct {
	db       *bolt.DB
	key      ed25519.PrivateKey
	pub      ed25519.PublicKey
	mac      stateMAC
	clock    func() time.Time
	maxBatch int
	log      *slog.Logger
	contract ledger.Contract

	queue     chan *pending
	closing   chan struct{} // closed by Close: stop taking transactions
	done      chan struct{} // closed when the committer has stopped
	closeOnce sync.Once
	closeErr  error

	keys sync.Map // ParticipantID -> ed25519.PublicKey, for verifying ahead

	mu   sync.Mutex
	head head
	subs map[*subscriber]struct{}
}

var (
	_ ledger.Backend = (*Ledger)(nil)
	_ ledger.Auditor = (*Ledger)(nil)
)

// head is the last committed block.
type head struct {
	height uint64
	hash   string
	time   time.Time
}

// pending is a submitted transaction waiting for the committer.
type pending struct {
	ctx  context.Context
	id   string // the transaction id
	fn   string
	args [][]byte
	prep *ledger.Prepared   // decoded on the submitter's goroutine
	want []ledger.Signature // the signatures it will check, listed on the submitter's goroutine
	sigs ledger.Verified    // those of want found valid, by the committer's verifier before it runs
	resp chan outcome       // buffered: the committer never blocks on it
}

type outcome struct {
	receipt Receipt
	err     error
}

// Receipt tells where a committed transaction went.
type Receipt struct {
	TxID   string
	Height uint64
	Result []byte
}

// BlockEvent describes a committed block to subscribers.
type BlockEvent struct {
	Height uint64
	Hash   string
	Time   time.Time
	Txs    []TxEvent
}

// TxEvent is one transaction of a committed block and its contract event.
type TxEvent struct {
	TxID  string
	Fn    string
	Event *ledger.Event // nil if the transaction emitted none
	// Licences are the licences an authorised query may use (from the
	// AuthorizeQuery result), so that their patients can be told.
	Licences []ledger.LicenceRef
}

// Open opens (creating if needed) the ledger file at path for the node
// whose key is nodeKey. It refuses a file created by another node key and
// a file whose last blocks fail their hash links or signatures.
func Open(path string, nodeKey ed25519.PrivateKey, opts Options) (*Ledger, error) {
	if len(nodeKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("open ledger %s: node key must be an Ed25519 private key of %d bytes", path, ed25519.PrivateKeySize)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Walk the file's pages before bbolt follows them (opening the file
	// for writing, it walks the whole tree to rebuild its freelist): a
	// damaged file is refused here rather than crashing the node.
	if err := checkFile(path); err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	db, err := openBolt(path, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	l := &Ledger{
		db:       db,
		contract: ledger.NewContract(),
		key:      nodeKey,
		pub:      nodeKey.Public().(ed25519.PublicKey),
		mac:      newStateMAC(nodeKey.Seed()),
		clock:    opts.Clock,
		maxBatch: opts.MaxBatch,
		log:      opts.Logger,
		queue:    make(chan *pending, 4*opts.MaxBatch),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		subs:     make(map[*subscriber]struct{}),
	}
	if err := safely(l.init); err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	go l.commitLoop()
	return l, nil
}

// init creates the buckets, binds a new file to the node key, and checks
// the node key and the chain head of an existing one.
func (l *Ledger) init() error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		blocks, err := tx.CreateBucketIfNotExists([]byte(bucketBlocks))
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists([]byte(bucketState)); err != nil {
			return err
		}
		stored := meta.Get([]byte(metaNodeKey))
		switch {
		case stored == nil:
			if k, _ := blocks.Cursor().First(); k != nil {
				return fmt.Errorf("file has blocks but no node key: %w", ErrCorrupt)
			}
			if err := meta.Put([]byte(metaFormat), []byte(formatV2)); err != nil {
				return err
			}
			return meta.Put([]byte(metaNodeKey), l.pub)
		case !bytesEqual(stored, l.pub):
			return fmt.Errorf("ledger belongs to node key %s, not %s", hex.EncodeToString(stored), hex.EncodeToString(l.pub))
		}
		if f := meta.Get([]byte(metaFormat)); !bytesEqual(f, []byte(formatV2)) {
			return fmt.Errorf("unknown ledger format %q", f)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return l.db.View(func(tx *bolt.Tx) error {
		h, err := checkHead(tx, l.pub, headCheckDepth)
		if err != nil {
			return err
		}
		l.head = h
		return nil
	})
}

// checkHead verifies the last depth blocks (signatures, tx roots, links)
// and returns the head.
func checkHead(tx *bolt.Tx, pub ed25519.PublicKey, depth int) (head, error) {
	c := tx.Bucket([]byte(bucketBlocks)).Cursor()
	k, v := c.Last()
	if k == nil {
		return head{}, nil
	}
	var h head
	var next *Block
	for i := 0; k != nil && i < depth; i++ {
		b, err := decodeBlock(v)
		if err != nil {
			return head{}, fmt.Errorf("chain head: block at key %x: %w", k, err)
		}
		if !bytesEqual(k, heightKey(b.Height)) {
			return head{}, fmt.Errorf("chain head: block %d stored at key %x: %w", b.Height, k, ErrCorrupt)
		}
		if err := b.check(pub); err != nil {
			return head{}, fmt.Errorf("chain head: %v: %w", err, ErrCorrupt)
		}
		if next == nil {
			h = head{height: b.Height, hash: b.Hash(), time: b.Time}
		} else if next.Prev != b.Hash() || next.Height != b.Height+1 || next.Time.Before(b.Time) {
			return head{}, fmt.Errorf("chain head: block %d does not follow block %d: %w", next.Height, b.Height, ErrCorrupt)
		}
		next = b
		k, v = c.Prev()
	}
	if k == nil && next != nil && (next.Height != 1 || next.Prev != genesisPrev) {
		return head{}, fmt.Errorf("chain head: first block is %d with prev %s: %w", next.Height, next.Prev, ErrCorrupt)
	}
	return h, nil
}

// Submit runs a state-changing contract function and returns its result
// once the block holding it is durably committed. Contract errors match
// the ledger sentinels.
func (l *Ledger) Submit(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	r, err := l.SubmitTx(ctx, fn, args...)
	return r.Result, err
}

// SubmitTx is Submit that also returns the transaction id and block height.
func (l *Ledger) SubmitTx(ctx context.Context, fn string, args ...[]byte) (Receipt, error) {
	select {
	case <-l.closing:
		return Receipt{}, fmt.Errorf("submit %s: %w", fn, ErrClosed)
	default:
	}
	// The call is decoded and its signatures listed here, on the
	// caller's goroutine and so in parallel across callers; the committer
	// verifies the signatures of a batch together (verifier) and applies it.
	id, err := newTxID(fn, args)
	if err != nil {
		return Receipt{}, fmt.Errorf("submit %s: %w", fn, err)
	}
	prep := l.contract.Prepare(fn, args)
	p := &pending{ctx: ctx, id: id, fn: fn, args: args, prep: prep, want: prep.Signatures(l.keyOf), resp: make(chan outcome, 1)}
	select {
	case l.queue <- p:
	case <-l.closing:
		return Receipt{}, fmt.Errorf("submit %s: %w", fn, ErrClosed)
	case <-ctx.Done():
		return Receipt{}, fmt.Errorf("submit %s: %w", fn, ctx.Err())
	}
	select {
	case o := <-p.resp:
		return o.receipt, o.err
	case <-l.done:
		// The committer answers everything it took before stopping.
		select {
		case o := <-p.resp:
			return o.receipt, o.err
		default:
			return Receipt{}, fmt.Errorf("submit %s: %w", fn, ErrClosed)
		}
	case <-ctx.Done():
		return Receipt{}, fmt.Errorf("submit %s: outcome unknown: %w", fn, ctx.Err())
	}
}

// Evaluate runs a read-only contract function over the committed state,
// at the time max(clock, last block time).
func (l *Ledger) Evaluate(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", fn, err)
	}
	select {
	case <-l.closing:
		return nil, fmt.Errorf("evaluate %s: %w", fn, ErrClosed)
	default:
	}
	l.mu.Lock()
	ts := laterOf(l.clock(), l.head.time)
	l.mu.Unlock()
	var res []byte
	err := l.db.View(func(tx *bolt.Tx) error {
		st := boltState{b: tx.Bucket([]byte(bucketState)), mac: l.mac}
		var err error
		res, err = l.query(ledger.TxContext{Timestamp: ts, Submitter: l.submitter()}, st, fn, args)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", fn, err)
	}
	return res, nil
}

// Height returns the height of the last committed block (0 when empty).
func (l *Ledger) Height() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head.height
}

// Head returns the hex hash of the last committed block ("" when empty).
func (l *Ledger) Head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head.hash
}

// NodeKey returns the node's public key.
func (l *Ledger) NodeKey() ed25519.PublicKey { return l.pub }

// Block returns the committed block at height (ErrNotFound-like error if
// there is none), verified against its signature.
func (l *Ledger) Block(ctx context.Context, height uint64) (Block, error) {
	if err := ctx.Err(); err != nil {
		return Block{}, err
	}
	var b *Block
	err := l.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketBlocks)).Get(heightKey(height))
		if v == nil {
			return fmt.Errorf("block %d: %w", height, ledger.ErrNotFound)
		}
		var err error
		if b, err = decodeBlock(v); err != nil {
			return fmt.Errorf("block %d: %w", height, err)
		}
		if err := b.check(l.pub); err != nil {
			return fmt.Errorf("%v: %w", err, ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		return Block{}, err
	}
	return *b, nil
}

// Close stops taking transactions, lets the block in progress commit, and
// closes the file. Queued transactions not yet taken fail with ErrClosed.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		close(l.closing)
		<-l.done
		l.mu.Lock()
		subs := l.subs
		l.subs = nil
		l.mu.Unlock()
		for s := range subs {
			s.stop()
		}
		// One empty commit, so that both bbolt meta pages describe the
		// same data: if one is later damaged, bbolt falls back to an
		// identical copy instead of to the state before the last block.
		err := safely(func() error { return l.db.Update(func(*bolt.Tx) error { return nil }) })
		if cerr := l.db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			l.closeErr = fmt.Errorf("close ledger: %w", err)
		}
	})
	return l.closeErr
}

func (l *Ledger) submitter() string { return "embedded:" + hex.EncodeToString(l.pub) }

func laterOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return b.UTC()
	}
	return a.UTC()
}

// commitLoop runs the two stages of the group commit as a pipeline: it
// collects a batch (up to MaxBatch) and executes it as the next block over
// the committed state plus the writes of the block still being committed,
// while a second goroutine writes and fsyncs that block. A batch grows
// while the previous block is written, so that blocks stay large and
// each block's fixed commit cost is shared by many transactions. At most one block is in each stage; a block is written only once
// the one it was executed on is durable, and fails whole if that one
// failed.
func (l *Ledger) commitLoop() {
	defer close(l.done)
	commits := make(chan *built, 1)
	var committer sync.WaitGroup
	committer.Add(1)
	go func() {
		defer committer.Done()
		for bl := range commits {
			l.write(bl)
		}
	}()
	defer committer.Wait()
	defer close(commits)
	var inflight *built // handed to the committer, perhaps not yet durable
	for {
		var first *pending
		select {
		case first = <-l.queue:
		case <-l.closing:
			return
		}
		// While a block is being written, the batch grows until it is
		// full or the write is done; then it takes what is queued.
		batch := []*pending{first}
		var ver verifier
		ver.add(first)
		var writing <-chan struct{}
		if inflight != nil {
			writing = inflight.done
		}
	collect:
		for len(batch) < l.maxBatch {
			if writing == nil {
				select {
				case p := <-l.queue:
					batch = append(batch, p)
					ver.add(p)
				default:
					break collect
				}
				continue
			}
			select {
			case p := <-l.queue:
				batch = append(batch, p)
				ver.add(p)
			case <-writing:
				writing = nil
			case <-l.closing:
				break collect
			}
		}
		ver.wait()
		base := inflight
		if base != nil {
			select {
			case <-base.done:
				base = nil // the committed state is after it, or before it if it failed
			default:
			}
		}
		bl := l.execute(batch, base)
		if base != nil {
			<-base.done
			if base.err != nil {
				bl.fail(fmt.Errorf("executed on block %d, which failed to commit: %w", base.b.Height, base.err))
			}
		}
		if len(bl.committed) == 0 {
			bl.answer()
			continue
		}
		commits <- bl
		inflight = bl
	}
}

// built is an executed block on its way to the committer.
type built struct {
	batch     []*pending
	out       []outcome
	committed []int // indexes into batch of the transactions in b
	b         *Block
	value     []byte             // b encoded
	writes    map[string]*[]byte // the block's state writes (nil: deleted), for executing the next block on
	sealed    []sealedWrite      // the same in key order, sealed with their MACs
	done      chan struct{}      // closed once written (or failed) and answered
	err       error              // why the block failed to commit, set before done closes
}

type sealedWrite struct {
	key, value []byte // nil value: delete
}

// fail turns every transaction of the block into a failure.
func (bl *built) fail(err error) {
	for _, i := range bl.committed {
		bl.out[i] = outcome{err: fmt.Errorf("tx %s: commit block %d: %w", bl.out[i].receipt.TxID, bl.b.Height, err)}
	}
	bl.committed = nil
}

func (bl *built) answer() {
	for i, p := range bl.batch {
		p.resp <- bl.out[i]
	}
}

// execute runs a batch through the contract over the committed state plus
// the writes of base (the block being committed, nil if none), each
// transaction over its own write overlay merged into the block's on
// success, and builds, signs and encodes the block.
func (l *Ledger) execute(batch []*pending, base *built) *built {
	bl := &built{batch: batch, out: make([]outcome, len(batch)), committed: make([]int, 0, len(batch)), done: make(chan struct{})}
	var prev head
	if base != nil {
		prev = head{height: base.b.Height, hash: base.b.Hash(), time: base.b.Time}
	} else {
		l.mu.Lock()
		prev = l.head
		l.mu.Unlock()
	}
	b := &Block{Height: prev.height + 1, Prev: prev.hash, Time: laterOf(l.clock(), prev.time), NodeKey: l.pub}
	if prev.height == 0 {
		b.Prev = genesisPrev
	}
	bl.b = b
	submitter := l.submitter()
	var keys []string // the block's writes, in order
	err := l.db.View(func(tx *bolt.Tx) error {
		var st ledger.State = boltState{b: tx.Bucket([]byte(bucketState)), mac: l.mac}
		if base != nil {
			st = &overlay{base: st, writes: base.writes} // read only: never flushed
		}
		blockWrites := newOverlay(st)
		for i, p := range batch {
			if err := p.ctx.Err(); err != nil {
				bl.out[i].err = fmt.Errorf("submit %s: not run: %w", p.fn, err)
				continue
			}
			id := p.id
			ov := newOverlay(blockWrites)
			res, ev, err := l.invoke(ledger.TxContext{TxID: id, Timestamp: b.Time, Submitter: submitter, Sigs: p.sigs}, ov, p.prep)
			if err != nil {
				bl.out[i].err = fmt.Errorf("tx %s: %w", id, err)
				continue
			}
			ov.mergeInto(blockWrites)
			b.Txs = append(b.Txs, Tx{ID: id, Fn: p.fn, Args: p.args, Result: res, Event: ev})
			bl.out[i].receipt = Receipt{TxID: id, Height: b.Height, Result: res}
			bl.committed = append(bl.committed, i)
		}
		bl.writes = blockWrites.writes
		keys = blockWrites.sortedWrites("", "")
		return nil
	})
	if err == nil && len(bl.committed) > 0 {
		for _, k := range keys {
			w := sealedWrite{key: []byte(k)}
			if v := bl.writes[k]; v != nil {
				w.value = l.mac.seal(k, *v)
			}
			bl.sealed = append(bl.sealed, w)
		}
		if err = b.sign(l.key); err == nil {
			bl.value, err = encodeBlock(b)
		}
	}
	if err != nil {
		l.log.Error("ledger block failed", "height", b.Height, "txs", len(bl.committed), "err", err)
		bl.fail(err)
	}
	return bl
}

// write appends an executed block and its state writes in one bbolt
// transaction, answers every caller after the single fsync, and publishes
// the block.
func (l *Ledger) write(bl *built) {
	b := bl.b
	err := l.db.Update(func(tx *bolt.Tx) error {
		st := tx.Bucket([]byte(bucketState))
		for _, w := range bl.sealed {
			var err error
			if w.value == nil {
				err = st.Delete(w.key)
			} else {
				err = st.Put(w.key, w.value)
			}
			if err != nil {
				return fmt.Errorf("write %q: %w", w.key, err)
			}
		}
		return tx.Bucket([]byte(bucketBlocks)).Put(heightKey(b.Height), bl.value)
	})
	if err != nil {
		l.log.Error("ledger commit failed", "height", b.Height, "txs", len(bl.committed), "err", err)
		bl.err = err
		bl.fail(err)
	} else {
		l.mu.Lock()
		l.head = head{height: b.Height, hash: b.Hash(), time: b.Time}
		l.mu.Unlock()
		l.log.Debug("ledger block committed", "height", b.Height, "txs", len(b.Txs), "batch", len(bl.batch))
	}
	bl.answer()
	close(bl.done)
	if err == nil {
		l.publish(b)
	}
}

// verifier verifies the signatures of the transactions of a batch while
// the batch is collected (and the previous block written): each time the
// transactions added since the last group list ledger.SigBatch signatures,
// it verifies them together (ledger.VerifySignatures) on a goroutine of
// their own, so that groups are verified in parallel.
type verifier struct {
	group []*pending
	n     int // signatures listed by group
	wg    sync.WaitGroup
}

// add adds a transaction of the batch.
func (v *verifier) add(p *pending) {
	v.group = append(v.group, p)
	v.n += len(p.want)
	if v.n >= ledger.SigBatch {
		g := v.group
		v.group, v.n = nil, 0
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			verifyGroup(g)
		}()
	}
}

// wait verifies the last group on the caller's goroutine and waits for
// the others: then every transaction added has its sigs.
func (v *verifier) wait() {
	if v.n > 0 {
		verifyGroup(v.group)
	}
	v.group, v.n = nil, 0
	v.wg.Wait()
}

// verifyGroup sets each transaction's sigs to the valid ones of its want.
func verifyGroup(ps []*pending) {
	var sigs []ledger.Signature
	for _, p := range ps {
		sigs = append(sigs, p.want...)
	}
	ok := ledger.VerifySignatures(sigs)
	for _, p := range ps {
		p.sigs = ledger.VerifiedOf(p.want, ok[:len(p.want)])
		ok = ok[len(p.want):]
	}
}

// keyOf returns a registered participant's key, from a cache filled from
// the committed state (keys never change once registered), or nil.
func (l *Ledger) keyOf(id ledger.ParticipantID) ed25519.PublicKey {
	if k, ok := l.keys.Load(id); ok {
		return k.(ed25519.PublicKey)
	}
	arg, err := json.Marshal(id)
	if err != nil {
		return nil
	}
	var p ledger.Participant
	err = l.db.View(func(tx *bolt.Tx) error {
		st := boltState{b: tx.Bucket([]byte(bucketState)), mac: l.mac}
		res, err := l.query(ledger.TxContext{}, st, ledger.FnGetParticipant, [][]byte{arg})
		if err != nil {
			return err
		}
		return json.Unmarshal(res, &p)
	})
	if err != nil || len(p.PublicKey) != ed25519.PublicKeySize {
		return nil
	}
	l.keys.Store(id, ed25519.PublicKey(p.PublicKey))
	return p.PublicKey
}

// boltOptions are the options the node opens its file with. The freelist
// is not written at each commit (bbolt rebuilds it when it opens the
// file), which saves a page write per block and changes nothing of what a
// commit makes durable; it is kept in memory as a map.
func boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
}

// checkFile walks the pages of an existing ledger file and refuses a
// damaged one.
func checkFile(path string) error {
	if st, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) || err == nil && st.Size() == 0 {
		return nil // bbolt creates it
	}
	soft, err := checkPages(path)
	if err == nil && len(soft) > 0 {
		err = structuref("%s", soft[0])
	}
	if !errors.Is(err, ErrCorrupt) {
		return err
	}
	// A file another process is writing may read as damaged: if it is
	// locked, say so instead.
	db, lerr := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if errors.Is(lerr, bolt.ErrTimeout) {
		return lerr
	}
	if lerr == nil {
		db.Close()
	}
	return err
}

// openBolt is bolt.Open that turns a panic or memory fault on a damaged
// file into an error.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	err = safely(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, opts)
		return err
	})
	return db, err
}

// safely runs f, turning a panic (or a memory fault reading a mapped,
// damaged file) into an error wrapping ErrCorrupt.
func safely(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the ledger file failed (%v): %w", r, ErrCorrupt)
		}
	}()
	return f()
}

// invoke runs the contract, turning a panic into an error so that one bad
// transaction cannot stop the node.
func (l *Ledger) invoke(tc ledger.TxContext, st ledger.State, p *ledger.Prepared) (res []byte, ev *ledger.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("contract panic", "fn", p.Fn(), "tx", tc.TxID, "panic", r)
			err = fmt.Errorf("%s: contract panic: %v", p.Fn(), r)
		}
	}()
	return l.contract.InvokePrepared(tc, st, p)
}

// query runs a read-only contract function, turning a panic into an error.
func (l *Ledger) query(tc ledger.TxContext, st ledger.State, fn string, args [][]byte) (res []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("contract panic", "fn", fn, "panic", r)
			err = fmt.Errorf("%s: contract panic: %v", fn, r)
		}
	}()
	return l.contract.Query(tc, st, fn, args)
}
