package embedded

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// tamperFixture builds a closed ledger file with the cast registered and
// extra blocks, so that the first blocks lie beyond Open's head check.
func tamperFixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, testKey("node"), nil)
	w := newCast(t, l)
	for range headCheckDepth + 4 {
		if err := w.c.Transfer(t.Context(), w.sponsor, w.cust.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	mustVerify(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// editDB changes the file through bbolt, as someone with the file would.
func editDB(t *testing.T, path string, f func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
}

// readDB returns a copy of a stored value.
func readDB(t *testing.T, path string, bucket, key []byte) []byte {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	if err := db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucket).Get(key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		t.Fatalf("no %s/%q in %s", bucket, key, path)
	}
	return v
}

// flipInFile flips one bit in the middle of every copy of a window taken
// from the middle of value, directly in the file's bytes.
func flipInFile(t *testing.T, path string, value []byte) {
	t.Helper()
	const width = 24
	if len(value) < width {
		t.Fatalf("value of %d bytes too short to find", len(value))
	}
	mid := len(value) / 2
	needle := value[mid-width/2 : mid+width/2]
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; ; {
		j := bytes.Index(raw[i:], needle)
		if j < 0 {
			break
		}
		raw[i+j+width/2] ^= 0x01
		i += j + width
		n++
	}
	if n == 0 {
		t.Fatal("value not found in the file")
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// verifyFinds reopens path and checks that Verify reports a problem
// containing want.
func verifyFinds(t *testing.T, path, want string) *Ledger {
	t.Helper()
	l := openAt(t, path, testKey("node"), nil)
	rep, err := l.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.OK() {
		t.Fatalf("Verify of a tampered ledger = %+v, want problems", rep)
	}
	if !strings.Contains(strings.Join(rep.Problems, "\n"), want) {
		t.Errorf("Verify problems = %q, want one mentioning %q", rep.Problems, want)
	}
	return l
}

func TestVerifyDetectsStateEdits(t *testing.T) {
	mac := newStateMAC(testKey("node").Seed())
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
		want string // in a problem
		// read is an Evaluate that must fail on the edited value (if set)
		read string
		arg  string
	}{
		{
			name: "balance overwritten in plain text",
			edit: func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketState)).Put([]byte("bal/acme-pharma"), []byte("999999999"))
			},
			want: "integrity check",
			read: ledger.FnBalance, arg: `"acme-pharma"`,
		},
		{
			name: "balance forged with a valid MAC",
			edit: func(tx *bolt.Tx) error {
				return tx.Bucket([]byte(bucketState)).Put([]byte("bal/acme-pharma"), mac.seal("bal/acme-pharma", []byte("999999999")))
			},
			want: "differs from the replayed one",
		},
		{
			name: "value moved to another key",
			edit: func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketState))
				return b.Put([]byte("bal/st-marys"), bytes.Clone(b.Get([]byte("bal/acme-pharma"))))
			},
			want: "integrity check",
			read: ledger.FnBalance, arg: `"st-marys"`,
		},
		{
			name: "participant deleted",
			edit: func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketState)).Delete([]byte("part/ethics-board")) },
			want: "missing from the stored state",
		},
		{
			name: "participant added",
			edit: func(tx *bolt.Tx) error {
				p, _ := json.Marshal(ledger.Participant{ID: "ghost", Role: ledger.RoleOperator, PublicKey: make([]byte, 32)})
				return tx.Bucket([]byte(bucketState)).Put([]byte("part/ghost"), mac.seal("part/ghost", p))
			},
			want: "not produced by any transaction",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tamperFixture(t)
			editDB(t, path, tc.edit)
			l := verifyFinds(t, path, tc.want)
			if tc.read != "" {
				if _, err := l.Evaluate(t.Context(), tc.read, []byte(tc.arg)); !errors.Is(err, ErrCorrupt) {
					t.Errorf("Evaluate(%s) of the edited value = %v, want ErrCorrupt", tc.read, err)
				}
			}
		})
	}
}

func TestVerifyDetectsBlockEdits(t *testing.T) {
	editTx := func(height uint64, f func(b *Block)) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte(bucketBlocks))
			b, err := decodeBlock(bk.Get(heightKey(height)))
			if err != nil {
				return err
			}
			f(b)
			v, err := encodeBlock(b)
			if err != nil {
				return err
			}
			return bk.Put(heightKey(height), v)
		}
	}
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
		want string
	}{
		{"transaction argument changed", editTx(2, func(b *Block) { b.Txs[0].Args[0][10] ^= 1 }), "tx root"},
		{"transaction result changed", editTx(3, func(b *Block) { b.Txs[0].Result = []byte(`{}`) }), "tx root"},
		{"tx root recomputed after an edit", editTx(2, func(b *Block) {
			b.Txs[0].Args[0][10] ^= 1
			b.TxRoot = txRoot(b.Txs)
		}), "bad node signature"},
		{"block time moved", editTx(4, func(b *Block) { b.Time = b.Time.Add(1) }), "bad node signature"},
		{"block deleted", func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketBlocks)).Delete(heightKey(3)) }, "expected height 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tamperFixture(t)
			editDB(t, path, tc.edit)
			verifyFinds(t, path, tc.want)
		})
	}

	t.Run("head block changed", func(t *testing.T) {
		path := tamperFixture(t)
		var head uint64
		editDB(t, path, func(tx *bolt.Tx) error {
			k, _ := tx.Bucket([]byte(bucketBlocks)).Cursor().Last()
			head = uint64FromKey(k)
			return editTx(head, func(b *Block) { b.Txs[0].Args[0][10] ^= 1 })(tx)
		})
		if _, err := Open(path, testKey("node"), Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open of a ledger with an altered head block = %v, want ErrCorrupt", err)
		}
	})
}

func uint64FromKey(k []byte) uint64 {
	var h uint64
	for _, b := range k {
		h = h<<8 | uint64(b)
	}
	return h
}

func TestDetectsFlippedBytes(t *testing.T) {
	t.Run("old block", func(t *testing.T) {
		path := tamperFixture(t)
		flipInFile(t, path, readDB(t, path, []byte(bucketBlocks), heightKey(2)))
		verifyFinds(t, path, "block")
	})
	t.Run("head block", func(t *testing.T) {
		path := tamperFixture(t)
		l := openAt(t, path, testKey("node"), nil)
		h := l.Height()
		l.Close()
		flipInFile(t, path, readDB(t, path, []byte(bucketBlocks), heightKey(h)))
		if _, err := Open(path, testKey("node"), Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open with a flipped byte in the head block = %v, want ErrCorrupt", err)
		}
	})
	t.Run("state value", func(t *testing.T) {
		path := tamperFixture(t)
		// The value's first bytes hold its MAC, found nowhere else.
		flipInFile(t, path, readDB(t, path, []byte(bucketState), []byte("part/acme-pharma"))[:24])
		l := verifyFinds(t, path, "integrity check")
		c := ledger.NewClient(l)
		if _, err := c.Participant(t.Context(), "acme-pharma"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Participant(acme-pharma) after the flip = %v, want ErrCorrupt", err)
		}
		// A transaction that reads the corrupt value fails and changes nothing.
		h := l.Height()
		if err := c.Transfer(t.Context(), signer("acme-pharma"), "st-marys", 1); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Transfer by the corrupt participant = %v, want ErrCorrupt", err)
		}
		if l.Height() != h {
			t.Errorf("a failed transaction appended a block")
		}
	})
}

// content is what a ledger file says: every bucket's keys and values in
// order. logical leaves out the state values' MACs (which only the node
// key can check); full keeps them.
type content struct{ logical, full []byte }

// readContent reads a ledger file's content read-only, refusing (as the
// ledger does) a file whose page structure is damaged.
func readContent(path string) (content, error) {
	if soft, err := checkPages(path); err != nil || len(soft) > 0 {
		return content{}, fmt.Errorf("page structure: %v %v", err, soft)
	}
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return content{}, err
	}
	defer db.Close()
	var c content
	err = safely(func() error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				c.logical = fmt.Appendf(c.logical, "bucket %q\n", name)
				c.full = fmt.Appendf(c.full, "bucket %q\n", name)
				return b.ForEach(func(k, v []byte) error {
					c.full = fmt.Appendf(c.full, "%q=%q\n", k, v)
					if string(name) == bucketState && len(v) >= macSize {
						v = v[macSize:]
					}
					c.logical = fmt.Appendf(c.logical, "%q=%q\n", k, v)
					return nil
				})
			})
		})
	})
	return c, err
}

// region is where a block's key or value lies in the file.
type region struct {
	height     uint64
	start, end int
}

// blockRegions returns where each block's key and value lie in the file,
// as bbolt reads them (the live copies, not stale ones in free pages).
func blockRegions(t *testing.T, path string) []region {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := db.Info().Data
	var rs []region
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketBlocks)).ForEach(func(k, v []byte) error {
			h := binary.BigEndian.Uint64(k)
			for _, s := range [][]byte{k, v} {
				off := int(uintptr(unsafe.Pointer(&s[0])) - base)
				rs = append(rs, region{height: h, start: off, end: off + len(s)})
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestTamperFlips flips one bit at a time at hundreds of positions of a
// closed ledger file: spread over the whole file, and inside every block's
// key and value. Each time, either VerifyFile fails, or the file still
// says exactly what it said (a flip in a free page, or in a meta page that
// bbolt replaces with its twin); and then the node's own Open and Verify,
// which also check the state MACs, fail unless even the MACs are intact.
// A flip inside a block makes VerifyFile name that block.
func TestTamperFlips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, s := newStory(t, path)
	// Blocks of many transactions too.
	r := s.w.openStudy(t, 100)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.w.accept(t.Context(), r, i); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	height := l.Height()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readContent(path)
	if err != nil {
		t.Fatal(err)
	}
	regions := blockRegions(t, path)
	if len(regions) != 2*int(height) {
		t.Fatalf("found %d block regions for %d blocks", len(regions), height)
	}

	spread := 200
	if testing.Short() {
		spread = 60
	}
	var positions []int
	for i := range spread {
		step := len(orig) / spread
		positions = append(positions, i*step+(i*7919)%step)
	}
	for i, rg := range regions {
		positions = append(positions, rg.start+(i*131)%(rg.end-rg.start))
	}

	dir := t.TempDir()
	var caught, nodeCaught, benign int
	for i, pos := range positions {
		raw := bytes.Clone(orig)
		raw[pos] ^= 1 << (i % 8)
		p := filepath.Join(dir, fmt.Sprintf("flip-%d.db", i))
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		got, readErr := readContent(p)
		rep, err := VerifyFile(t.Context(), p)
		inBlock := uint64(0)
		for _, rg := range regions {
			if pos >= rg.start && pos < rg.end {
				inBlock = rg.height
			}
		}
		switch {
		case err == nil && (!rep.OK() || readErr != nil || !bytes.Equal(got.logical, want.logical)):
			t.Errorf("flip at %d (block %d): VerifyFile passed (%+v) but the file says something else (%v)", pos, inBlock, rep.Problems, readErr)
		case err != nil && inBlock != 0 && (rep.FirstBadBlock == nil || *rep.FirstBadBlock != inBlock):
			t.Errorf("flip at %d inside block %d: VerifyFile names block %s (problems %.300q)", pos, inBlock, fmtBlock(rep.FirstBadBlock), rep.Problems)
		case err == nil && inBlock != 0:
			t.Errorf("flip at %d inside block %d: VerifyFile passed", pos, inBlock)
		case err != nil:
			var ae *AuditError
			if !errors.As(err, &ae) {
				t.Errorf("flip at %d: VerifyFile error %v is not an *AuditError", pos, err)
			}
			caught++
		}

		// The node, with its key, also checks the MACs.
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		nl, err := Open(p, testKey("node"), Options{Clock: s.clock.Now})
		if err != nil {
			nodeCaught++
			continue
		}
		nrep, err := nl.Verify(t.Context())
		nl.Close()
		switch {
		case err != nil || !nrep.OK():
			nodeCaught++
		case readErr != nil || !bytes.Equal(got.full, want.full):
			t.Errorf("flip at %d (block %d): Open and Verify passed but the file says something else (%v)", pos, inBlock, readErr)
		default:
			benign++
		}
	}
	t.Logf("%d flips in a %d-byte file of %d blocks: VerifyFile caught %d, the node caught %d, %d changed nothing",
		len(positions), len(orig), height, caught, nodeCaught, benign)
}

func fmtBlock(h *uint64) string {
	if h == nil {
		return "none"
	}
	return fmt.Sprint(*h)
}
