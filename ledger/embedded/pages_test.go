package embedded

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// damagedFile builds a closed ledger big enough to have branch pages and
// returns its path, its bytes and its page walk.
func damagedFile(t *testing.T) (string, []byte, *pageWalker) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, s := newStory(t, path)
	r := s.w.openStudy(t, 300)
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.w.accept(t.Context(), r, i); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The node does not write bbolt's freelist; plain bbolt writes it
	// when it opens the file, so that forged freelists can be tried too.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &pageWalker{r: f, size: int64(len(raw)), seen: map[uint64]bool{}}
	if err := w.pickMeta(); err != nil {
		t.Fatal(err)
	}
	if err := w.walk(w.meta.root, 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	return path, raw, w
}

// TestDamagedPageStructure forges page structures that would send bbolt
// into endless recursion or past the end of the file, or make it hand out
// live pages as free: Open and VerifyFile refuse them, and do not hang.
func TestDamagedPageStructure(t *testing.T) {
	path, raw, w := damagedFile(t)
	le := binary.LittleEndian
	pageAt := func(id uint64) int { return int(id) * int(w.pageSize) }
	var branch uint64
	for id := range w.meta.hwm {
		if w.seen[id] && le.Uint16(raw[pageAt(id)+8:]) == branchPageFlag {
			branch = id
			break
		}
	}
	if branch == 0 {
		t.Fatal("the file has no branch page")
	}
	var leaf uint64
	for id := range w.meta.hwm {
		if w.seen[id] && le.Uint16(raw[pageAt(id)+8:]) == leafPageFlag {
			leaf = id
		}
	}
	firstChild := pageAt(branch) + pageHeaderSize + 8 // pgid of element 0
	tests := []struct {
		name string
		edit func(b []byte)
	}{
		{"branch page pointing to itself", func(b []byte) { le.PutUint64(b[firstChild:], branch) }},
		{"branch page pointing past the end", func(b []byte) { le.PutUint64(b[firstChild:], 1<<40) }},
		{"leaf element beyond its page", func(b []byte) { le.PutUint32(b[pageAt(leaf)+pageHeaderSize+4:], 1<<30) }},
		{"leaf page with too many elements", func(b []byte) { le.PutUint16(b[pageAt(leaf)+10:], 0xFFF0) }},
		{"page overflowing the file", func(b []byte) { le.PutUint32(b[pageAt(leaf)+12:], 1<<20) }},
		{"freelist listing a live page", func(b []byte) {
			fl := pageAt(w.meta.freelist)
			if le.Uint16(b[fl+10:]) == 0 {
				t.Skip("empty freelist")
			}
			le.PutUint64(b[fl+pageHeaderSize:], leaf)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), raw...)
			tc.edit(b)
			p := filepath.Join(t.TempDir(), "damaged.db")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := VerifyFile(t.Context(), p)
			var ae *AuditError
			if !errors.As(err, &ae) || rep.OK() {
				t.Errorf("VerifyFile = %+v, %v; want an *AuditError", rep.Problems, err)
			}
			if l, err := Open(p, testKey("node"), Options{}); !errors.Is(err, ErrCorrupt) {
				if err == nil {
					l.Close()
				}
				t.Errorf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
	// The undamaged file is fine.
	if _, err := VerifyFile(t.Context(), path); err != nil {
		t.Fatal(err)
	}
}
