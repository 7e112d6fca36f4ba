package embedded

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

func TestVerifyFileSummary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, s := newStory(t, path)
	live := mustVerify(t, l)
	height, head := l.Height(), l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	now := s.clock.Now()
	rep, err := VerifyFileAt(t.Context(), copyFile(t, path), now)
	if err != nil || !rep.OK() {
		t.Fatalf("VerifyFileAt of an intact ledger = %+v, %v", rep, err)
	}
	if diff := cmp.Diff(live, rep); diff != "" {
		t.Errorf("VerifyFile and the node's Verify disagree (-Verify +VerifyFile):\n%s", diff)
	}
	if rep.Blocks != int64(height) || rep.Transactions != int64(height) || rep.Head != head || rep.NodeKey != hex.EncodeToString(l.NodeKey()) {
		t.Errorf("VerifyFile = %d blocks, %d txs, head %s, node key %s; want %d, %d, %s, %x", rep.Blocks, rep.Transactions, rep.Head, rep.NodeKey, height, height, head, l.NodeKey())
	}
	if rep.FirstBadBlock != nil || rep.FirstBadTx != "" {
		t.Errorf("intact ledger: first bad block %v, tx %q", rep.FirstBadBlock, rep.FirstBadTx)
	}
	want := ledger.AuditReport{
		Participants:     8, // operator, sponsor, board, custodian, four pseudonyms
		RequestsByStatus: map[string]int{"expired": 1, "rejected": 1, "closed": 1},
		EpsilonSpent:     map[ledger.RequestID]ledger.Epsilon{s.study.ID: 250_000},
		EpsilonBudget:    map[ledger.RequestID]ledger.Epsilon{s.study.ID: 2_000_000},
		LicencesActive:   3,
		LicencesRevoked:  1,
		Queries:          1,
		Tokens:           ledger.TokenSummary{Minted: 1_000_000, Balances: 1_000_000},
	}
	summary := func(r ledger.AuditReport) ledger.AuditReport {
		return ledger.AuditReport{Participants: r.Participants, RequestsByStatus: r.RequestsByStatus, EpsilonSpent: r.EpsilonSpent,
			EpsilonBudget: r.EpsilonBudget, LicencesActive: r.LicencesActive, LicencesRevoked: r.LicencesRevoked,
			LicencesExpired: r.LicencesExpired, Queries: r.Queries, Tokens: r.Tokens}
	}
	if diff := cmp.Diff(want, summary(rep)); diff != "" {
		t.Errorf("VerifyFile summary (-want +got):\n%s", diff)
	}
	// Counted later, the licences have expired, except the revoked one.
	later, err := VerifyFileAt(t.Context(), copyFile(t, path), now.Add(200*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if later.LicencesActive != 0 || later.LicencesRevoked != 1 || later.LicencesExpired != 3 {
		t.Errorf("200 days on: %d active, %d revoked, %d expired; want 0, 1, 3", later.LicencesActive, later.LicencesRevoked, later.LicencesExpired)
	}
	// The file verified is left as it was.
	if _, err := VerifyFile(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	l2 := openAt(t, path, testKey("node"), s.clock.Now)
	mustVerify(t, l2)
}

func TestVerifyFileNamesTheFirstBadBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, _ := newStory(t, path)
	txOf := map[uint64]string{}
	for h := uint64(1); h <= l.Height(); h++ {
		b, err := l.Block(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		txOf[h] = b.Txs[0].ID
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mac := newStateMAC(testKey("node").Seed())
	editBlock := func(height uint64, f func(b *Block)) func(tx *bolt.Tx) error {
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
	putState := func(k string, v []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketState)).Put([]byte(k), v) }
	}
	const boardBlock = 3 // Bootstrap, then the sponsor's, the board's registration
	tests := []struct {
		name   string
		edit   func(tx *bolt.Tx) error
		block  uint64 // 0: no block to blame
		withTx bool
	}{
		{"state value rewritten without the node key", putState("part/ethics-board", append(make([]byte, macSize), `{"id":"ethics-board","role":"sponsor"}`...)), boardBlock, true},
		{"state value forged with the node key", putState("part/ethics-board", mac.seal("part/ethics-board", []byte(`{"id":"ethics-board","role":"sponsor"}`))), boardBlock, true},
		{"state value truncated", putState("part/ethics-board", []byte{1, 2}), boardBlock, true},
		{"state key deleted", func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketState)).Delete([]byte("part/ethics-board")) }, boardBlock, true},
		{"state key added", putState("part/ghost", mac.seal("part/ghost", []byte(`{}`))), 0, false},
		{"transaction argument changed", editBlock(6, func(b *Block) { b.Txs[0].Args[0][12] ^= 1 }), 6, false},
		{"transaction re-rooted and re-signed by another key", editBlock(7, func(b *Block) {
			b.Txs[0].Result = []byte(`{}`)
			_ = b.sign(testKey("intruder"))
		}), 7, false},
		{"block time moved", editBlock(9, func(b *Block) { b.Time = b.Time.Add(time.Second) }), 9, false},
		{"block deleted", func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketBlocks)).Delete(heightKey(8)) }, 8, false},
		{"block with bytes after its encoding", func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte(bucketBlocks))
			return bk.Put(heightKey(5), append(bytes.Clone(bk.Get(heightKey(5))), 0))
		}, 5, false},
		{"block in the old JSON encoding", func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte(bucketBlocks))
			b, err := decodeBlock(bk.Get(heightKey(5)))
			if err != nil {
				return err
			}
			v, err := json.Marshal(b)
			if err != nil {
				return err
			}
			return bk.Put(heightKey(5), v)
		}, 5, false},
		{"block undecodable", func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucketBlocks)).Put(heightKey(4), []byte("{not json")) }, 4, false},
		{"meta node key changed", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Put([]byte(metaNodeKey), testKey("intruder").Public().(ed25519.PublicKey))
		}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := copyFile(t, path)
			editDB(t, p, tc.edit)
			rep, err := VerifyFile(t.Context(), p)
			var ae *AuditError
			if !errors.As(err, &ae) || !errors.Is(err, ErrCorrupt) || rep.OK() {
				t.Fatalf("VerifyFile = %+v, %v; want a failed report and an *AuditError", rep, err)
			}
			switch {
			case tc.block == 0 && rep.FirstBadBlock != nil:
				t.Errorf("FirstBadBlock = %d, want none (problems %q)", *rep.FirstBadBlock, rep.Problems)
			case tc.block != 0 && (rep.FirstBadBlock == nil || *rep.FirstBadBlock != tc.block):
				t.Errorf("FirstBadBlock = %v, want %d (problems %q)", rep.FirstBadBlock, tc.block, rep.Problems)
			case tc.withTx && rep.FirstBadTx != txOf[tc.block]:
				t.Errorf("FirstBadTx = %q, want %s", rep.FirstBadTx, txOf[tc.block])
			}
			if ae.Block != rep.FirstBadBlock || ae.Tx != rep.FirstBadTx || ae.Problem != rep.Problems[0] {
				t.Errorf("AuditError %+v does not match the report", ae)
			}
		})
	}
}

func TestVerifyFileRefusesNonLedgers(t *testing.T) {
	dir := t.TempDir()
	if _, err := VerifyFile(t.Context(), filepath.Join(dir, "absent.db")); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("VerifyFile(absent) = %v, want an I/O error", err)
	}
	noise := make([]byte, 64<<10)
	rand.Read(noise)
	empty := filepath.Join(dir, "empty.db")
	db, err := bolt.Open(empty, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Another program's bbolt file (a custodian's link store, say).
	other := filepath.Join(dir, "links.db")
	if db, err = bolt.Open(other, 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("links"))
		if err != nil {
			return err
		}
		return b.Put([]byte("pn-1"), []byte("patient-1"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for name, path := range map[string]string{"noise": filepath.Join(dir, "noise.db"), "empty bbolt file": empty, "other bbolt file": other} {
		if name == "noise" {
			if err := os.WriteFile(path, noise, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := VerifyFile(t.Context(), path)
		var ae *AuditError
		if !errors.As(err, &ae) || rep.OK() {
			t.Errorf("VerifyFile(%s) = %+v, %v; want an *AuditError", name, rep, err)
		}
		if name != "noise" && !strings.Contains(fmt.Sprint(err), "not a MedX ledger file") {
			t.Errorf("VerifyFile(%s) = %v; want it to say the file is not a MedX ledger", name, err)
		}
	}
}

// TestVerifyFileProgress checks that VerifyFileWith reports its progress
// in steps of 256 blocks, rising, against the file's height, and ends at
// the height.
func TestVerifyFileProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, testKey("node"), time.Now)
	w := newCast(t, l)
	for range 600 { // one block each: submitted one after another
		if err := w.c.Mint(t.Context(), w.op, w.sponsor.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	height := l.Height()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var calls [][2]uint64
	rep, err := VerifyFileWith(t.Context(), path, VerifyOptions{Progress: func(done, total uint64) {
		calls = append(calls, [2]uint64{done, total})
	}})
	if err != nil || !rep.OK() {
		t.Fatalf("VerifyFileWith = %+v, %v", rep, err)
	}
	want := [][2]uint64{{256, height}, {512, height}, {height, height}}
	if height < 600 || !slices.Equal(calls, want) {
		t.Errorf("progress over %d blocks: %v, want %v", height, calls, want)
	}
}
