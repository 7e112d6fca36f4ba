package embedded

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// submitters is how many goroutines submit at once in the benchmarks, as
// many concurrent patients' requests would.
var submitters = 512

// benchBatch is the group-commit batch of the ledger and of the baseline.
var benchBatch = 256

// signedAcceptances pre-signs n acceptances of r by fresh pseudonyms.
func signedAcceptances(tb testing.TB, w cast, r ledger.Request, n int) [][]byte {
	tb.Helper()
	out := make([][]byte, n)
	var wg sync.WaitGroup
	per := (n + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				seed := sha256.Sum256(fmt.Appendf(nil, "bench/%s/%d", r.ID, i))
				pn := ledger.Signer{Key: ed25519.NewKeyFromSeed(seed[:])}
				pn.ID = ledger.PseudonymID(pn.Public())
				act, err := pn.Sign(ledger.FnAcceptOffer, ledger.Acceptance{
					Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
					PublicKey:   pn.Public(),
					Certificate: w.cust.Certify(r.ID, pn.Public()),
				})
				if err != nil {
					panic(err)
				}
				if out[i], err = json.Marshal(act); err != nil {
					panic(err)
				}
			}
		}(lo, min(lo+per, n))
	}
	wg.Wait()
	return out
}

// runConcurrently calls f(i) for i in [0, n) from submitters goroutines
// and returns how long it took.
func runConcurrently(n int, f func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range min(submitters, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return d, err
	}
	return d, nil
}

// writeProfile is what one acceptance writes: its state values (sizes
// with their MACs) and its share of the block. spread is, for each value, 0
// when every acceptance writes its own key, or the number of keys the
// acceptances of a request share (its escrow places): acceptance i writes
// key i mod spread, and a block writes a key once however many of its
// acceptances touch it.
type writeProfile struct {
	keys, values []int
	spread       []int
	blockBytes   int
}

// profileAcceptances measures what the acceptances in the ledger wrote.
func profileAcceptances(b *testing.B, l *Ledger, lic ledger.Licence, places, txs int) writeProfile {
	b.Helper()
	var p writeProfile
	placed := false
	err := l.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket([]byte(bucketState))
		c := st.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			ks := string(k)
			for _, want := range []string{"part/" + string(lic.Patient), "bal/" + string(lic.Patient), "lic/" + string(lic.Request) + "/" + string(lic.ID),
				"licx/" + string(lic.ID), "plic/" + string(lic.Patient) + "/" + string(lic.ID)} {
				if ks == want {
					p.keys, p.values = append(p.keys, len(k)), append(p.values, len(v))
					p.spread = append(p.spread, 0)
				}
			}
			if len(ks) > 6 && ks[:6] == "nonce/" && ks[6:6+len(lic.Patient)] == string(lic.Patient) {
				p.keys, p.values = append(p.keys, len(k)), append(p.values, len(v))
				p.spread = append(p.spread, 0)
			}
			// One of the request's escrow places (the acceptance took one
			// reward from one of them).
			if !placed && strings.HasPrefix(ks, "place/"+string(lic.Request)+"/") {
				placed = true
				p.keys, p.values = append(p.keys, len(k)), append(p.values, len(v))
				p.spread = append(p.spread, places)
			}
		}
		var blockBytes int
		_ = tx.Bucket([]byte(bucketBlocks)).ForEach(func(_, v []byte) error {
			blockBytes += len(v)
			return nil
		})
		p.blockBytes = blockBytes / txs
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(p.keys) != 7 {
		b.Fatalf("found %d state entries of an acceptance, want 7", len(p.keys))
	}
	return p
}

// BenchmarkAcceptLicence measures durable licence acceptances (fsync on)
// from many concurrent submitters, and in the same run the physical
// baseline: raw bbolt puts of the same sizes under the same group commit
// (fsync on) plus one Ed25519 verification per transaction, with the same
// concurrency; that verification by crypto/ed25519 (x-baseline) or by the
// ledger's batch verification (x-baseline-batch).
func BenchmarkAcceptLicence(b *testing.B) {
	ctx := context.Background()
	l, err := Open(filepath.Join(b.TempDir(), "ledger.db"), testKey("node"), Options{MaxBatch: benchBatch})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	w := newCastB(b, l)
	r, err := w.c.PostRequest(ctx, w.sponsor, ledger.RequestDraft{
		Title: "Bench", Purpose: "throughput", Criteria: "age > 18", Scope: []string{"demographics", "labs"},
		RewardPerPatient: 1, MaxParticipants: int64(b.N) + 1, LicenceSeconds: 3600 * 24 * 365,
	})
	if err != nil {
		b.Fatal(err)
	}
	if r, err = w.c.ApproveRequest(ctx, w.board, r.ID, ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1}); err != nil {
		b.Fatal(err)
	}
	args := signedAcceptances(b, w, r, b.N)
	h0 := l.Height()
	b.ResetTimer()
	d, err := runConcurrently(b.N, func(i int) error {
		_, err := l.Submit(ctx, ledger.FnAcceptOffer, args[i])
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / d.Seconds()
	blocks := l.Height() - h0

	var first ledger.Licence
	if ls, err := w.c.Licences(ctx, r.ID); err != nil || len(ls) != b.N {
		b.Fatalf("%d licences, %v; want %d", len(ls), err, b.N)
	} else {
		first = ls[0]
	}
	prof := profileAcceptances(b, l, first, ledger.EscrowPlaces(r.MaxParticipants), b.N+int(h0))
	base := baselineAccept(b, prof, args, false)
	baseBatch := baselineAccept(b, prof, args, true)
	b.ReportMetric(rate, "licences/s")
	b.ReportMetric(base, "baseline/s")
	b.ReportMetric(rate/base, "x-baseline")
	b.ReportMetric(baseBatch, "baseline-batch/s")
	b.ReportMetric(rate/baseBatch, "x-baseline-batch")
	b.ReportMetric(float64(b.N)/float64(max(blocks, 1)), "tx/block")
}

// newCastB is newCast for a benchmark.
func newCastB(b *testing.B, be ledger.Backend) cast {
	b.Helper()
	ctx := context.Background()
	w := cast{c: ledger.NewClient(be), op: signer("operator"), sponsor: signer("acme-pharma"), board: signer("ethics-board"), cust: signer("st-marys")}
	if err := w.c.Bootstrap(ctx, w.op, "MedX"); err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct {
		s    ledger.Signer
		role ledger.Role
	}{{w.sponsor, ledger.RoleSponsor}, {w.board, ledger.RoleEthicsBoard}, {w.cust, ledger.RoleCustodian}} {
		if err := w.c.RegisterParticipant(ctx, w.op, ledger.Participant{ID: p.s.ID, Role: p.role, PublicKey: p.s.Public()}); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.c.Mint(ctx, w.op, w.sponsor.ID, 1<<40); err != nil {
		b.Fatal(err)
	}
	return w
}

// baselineAccept runs the physical baseline of an acceptance: verify one
// signature, then put the same number and sizes of values into bbolt
// under the same group commit (one bbolt transaction and fsync per batch
// of up to 256, its puts in key order, the request's value once per batch
// as the ledger writes it), with the same concurrency and bbolt options.
// The signature is verified by crypto/ed25519 on the submitter's
// goroutine or, if batch, by the ledger's batch verification: a stage in
// front of the committer takes what is queued, up to ledger.SigBatch,
// verifies it together (ledger.VerifySignatures) on a goroutine of its
// own and queues it for the committer, so that verification runs in
// parallel and while the committer writes. It returns transactions/s.
func baselineAccept(b *testing.B, p writeProfile, args [][]byte, batch bool) float64 {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "baseline.db"), 0o600, boltOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{"blocks", "state"} {
			if _, err := tx.CreateBucket([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	// Everything but the verification and the puts is prepared ahead.
	sigs := make([]ledger.Signature, len(args))
	keys := make([][][]byte, len(args))
	for i, arg := range args {
		var a ledger.Action
		var acc ledger.Acceptance
		if err := json.Unmarshal(arg, &a); err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(a.Payload, &acc); err != nil {
			b.Fatal(err)
		}
		sigs[i] = ledger.Signature{PublicKey: acc.PublicKey, Message: a.SigningBytes(), Sig: a.Sig}
		for k := range p.keys {
			n := uint64(i)
			if m := p.spread[k]; m > 0 {
				n = uint64(i % m) // a key shared with other transactions
			}
			sum := sha256.Sum256(binary.BigEndian.AppendUint64([]byte{byte(k)}, n))
			key := make([]byte, p.keys[k])
			copy(key, fmt.Sprintf("%x", sum))
			keys[i] = append(keys[i], key)
		}
	}
	values := make([][]byte, len(p.values))
	for k, n := range p.values {
		values[k] = make([]byte, n)
	}
	type job struct {
		i    int
		done chan error
	}
	queue := make(chan job, 4*benchBatch)
	stop := make(chan struct{})
	var committer sync.WaitGroup
	verifyQueue := make(chan job, 4*benchBatch)
	if batch {
		committer.Add(1)
		go func() {
			defer committer.Done()
			for {
				var group []job
				select {
				case j := <-verifyQueue:
					group = append(group, j)
				case <-stop:
					return
				}
			fill:
				for len(group) < ledger.SigBatch {
					select {
					case j := <-verifyQueue:
						group = append(group, j)
					default:
						break fill
					}
				}
				go func() {
					gs := make([]ledger.Signature, len(group))
					for k, j := range group {
						gs[k] = sigs[j.i]
					}
					for k, ok := range ledger.VerifySignatures(gs) {
						if !ok {
							group[k].done <- fmt.Errorf("baseline: signature %d does not verify", group[k].i)
							continue
						}
						queue <- group[k]
					}
				}()
			}
		}()
	}
	committer.Add(1)
	go func() {
		defer committer.Done()
		height := uint64(0)
		for {
			var batch []job
			select {
			case j := <-queue:
				batch = append(batch, j)
			case <-stop:
				return
			}
		drain:
			for len(batch) < benchBatch {
				select {
				case j := <-queue:
					batch = append(batch, j)
				default:
					break drain
				}
			}
			height++
			err := db.Update(func(tx *bolt.Tx) error {
				type put struct{ key, value []byte }
				var puts []put
				for _, j := range batch {
					for k, key := range keys[j.i] {
						puts = append(puts, put{key, values[k]})
					}
				}
				slices.SortFunc(puts, func(a, b put) int { return bytes.Compare(a.key, b.key) })
				// A key several transactions of the block wrote is written once.
				puts = slices.CompactFunc(puts, func(a, b put) bool { return bytes.Equal(a.key, b.key) })
				st := tx.Bucket([]byte("state"))
				for _, w := range puts {
					if err := st.Put(w.key, w.value); err != nil {
						return err
					}
				}
				return tx.Bucket([]byte("blocks")).Put(binary.BigEndian.AppendUint64(nil, height), make([]byte, p.blockBytes*len(batch)))
			})
			for _, j := range batch {
				j.done <- err
			}
		}
	}()
	d, err := runConcurrently(len(args), func(i int) error {
		done := make(chan error, 1)
		if batch {
			verifyQueue <- job{i: i, done: done}
			return <-done
		}
		if s := sigs[i]; !ed25519.Verify(s.PublicKey, s.Message, s.Sig) {
			return fmt.Errorf("baseline: signature %d does not verify", i)
		}
		queue <- job{i: i, done: done}
		return <-done
	})
	close(stop)
	committer.Wait()
	if err != nil {
		b.Fatal(err)
	}
	return float64(len(args)) / d.Seconds()
}

// BenchmarkAuditVerify measures Verify's throughput over a ledger of b.N
// acceptances (replaying every transaction and checking every signature)
// against raw Ed25519 verification of the same signatures (the node's
// block signatures, the patients' and the custodians') in the same run,
// with the same number of cores: one by one with crypto/ed25519
// (x-baseline) and in batches with the ledger's batch verification
// (x-baseline-batch).
func BenchmarkAuditVerify(b *testing.B) {
	ctx := context.Background()
	n := b.N
	l, err := Open(filepath.Join(b.TempDir(), "ledger.db"), testKey("node"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	w := newCastB(b, l)
	r, err := w.c.PostRequest(ctx, w.sponsor, ledger.RequestDraft{
		Title: "Bench", Purpose: "audit", Criteria: "age > 18", Scope: []string{"labs"},
		RewardPerPatient: 1, MaxParticipants: int64(n), LicenceSeconds: 3600 * 24 * 365,
	})
	if err != nil {
		b.Fatal(err)
	}
	if r, err = w.c.ApproveRequest(ctx, w.board, r.ID, ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1}); err != nil {
		b.Fatal(err)
	}
	args := signedAcceptances(b, w, r, n)
	if _, err := runConcurrently(n, func(i int) error {
		_, err := l.Submit(ctx, ledger.FnAcceptOffer, args[i])
		return err
	}); err != nil {
		b.Fatal(err)
	}

	// Verify runs as in `medx audit verify`, with nothing else of this
	// process's left to scan for the garbage collector: the signed
	// acceptances are dropped, and the signatures for the baselines are
	// collected from the blocks after.
	args = nil
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	rep, err := l.Verify(ctx)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil || !rep.OK() {
		b.Fatalf("Verify = %+v, %v", rep, err)
	}

	// Every signature an auditor must check.
	var sigs []ledger.Signature
	keys := map[ledger.ParticipantID]ed25519.PublicKey{w.op.ID: w.op.Public(), w.sponsor.ID: w.sponsor.Public(), w.board.ID: w.board.Public(), w.cust.ID: w.cust.Public()}
	txs := 0
	for h := uint64(1); h <= l.Height(); h++ {
		blk, err := l.Block(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		hh, _ := blk.headerHash()
		sigs = append(sigs, ledger.Signature{PublicKey: blk.NodeKey, Message: hh[:], Sig: blk.Sig})
		for _, t := range blk.Txs {
			sigs = append(sigs, ledger.Contract{}.Signatures(t.Fn, t.Args, func(id ledger.ParticipantID) ed25519.PublicKey { return keys[id] })...)
			txs++
		}
	}
	if len(sigs) < 2*n {
		b.Fatalf("collected %d signatures for %d acceptances", len(sigs), n)
	}

	if rep.Transactions != int64(txs) {
		b.Fatalf("Verify counted %d transactions, the blocks hold %d", rep.Transactions, txs)
	}
	rate := float64(txs) / elapsed.Seconds()
	runtime.GC()
	// Raw verification of the same signatures, on every core.
	start = time.Now()
	if _, err := runConcurrently(len(sigs), func(i int) error {
		s := sigs[i]
		if !ed25519.Verify(s.PublicKey, s.Message, s.Sig) {
			return fmt.Errorf("signature %d does not verify", i)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	raw := float64(txs) / time.Since(start).Seconds()

	// Raw batch verification of the same signatures (ledger.SigBatch
	// together, as the audit verifies them), on every core.
	start = time.Now()
	if _, err := runConcurrently((len(sigs)+ledger.SigBatch-1)/ledger.SigBatch, func(i int) error {
		lo := i * ledger.SigBatch
		for k, ok := range ledger.VerifySignatures(sigs[lo:min(lo+ledger.SigBatch, len(sigs))]) {
			if !ok {
				return fmt.Errorf("signature %d does not verify", lo+k)
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	rawBatch := float64(txs) / time.Since(start).Seconds()
	b.ReportMetric(rate, "tx/s")
	b.ReportMetric(raw, "raw-tx/s")
	b.ReportMetric(rate/raw, "x-baseline")
	b.ReportMetric(rawBatch, "raw-batch-tx/s")
	b.ReportMetric(rate/rawBatch, "x-baseline-batch")
}
