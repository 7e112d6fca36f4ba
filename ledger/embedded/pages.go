package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The page walker reads the bbolt file's B+tree by itself, with every
// offset and size bounds-checked, before bbolt is trusted with it. bbolt
// follows page ids and element offsets blindly: in a damaged or forged file
// a page that points to itself sends it into endless recursion, and an
// offset beyond the page reads memory beyond the map. The walker refuses
// such a file with a clear error instead. It mirrors bbolt v1's on-disk
// format (go.etcd.io/bbolt/internal/common).

// bbolt on-disk constants.
const (
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	elemSize        = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	metaPageFlag    = 0x04
	freelistFlag    = 0x10
	bucketLeafFlag  = 0x01
	bucketHeaderLen = 16 // root pgid u64, sequence u64
	metaMagic       = 0xED0CDAED
	metaVersion     = 2
	metaSumLen      = 56 // bytes of the meta covered by its checksum
	noFreelist      = ^uint64(0)
	maxTreeDepth    = 48
	maxPageSize     = 1 << 24
)

// structureError is a damaged file structure found by the walker.
type structureError struct{ msg string }

func (e *structureError) Error() string { return "file structure: " + e.msg }
func (e *structureError) Unwrap() error { return ErrCorrupt }

func structuref(format string, args ...any) error {
	return &structureError{msg: fmt.Sprintf(format, args...)}
}

// fileMeta is a decoded bbolt meta page.
type fileMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // high water mark: pages [0, hwm) are in use or free
	txid     uint64
}

func decodeMeta(b []byte) (fileMeta, bool) {
	if len(b) < pageHeaderSize+metaSumLen+8 {
		return fileMeta{}, false
	}
	m := b[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != metaMagic || le.Uint32(m[4:]) != metaVersion {
		return fileMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if h.Sum64() != le.Uint64(m[metaSumLen:]) {
		return fileMeta{}, false
	}
	return fileMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// pageWalker walks one bbolt file.
type pageWalker struct {
	r        io.ReaderAt
	size     int64
	meta     fileMeta
	pageSize int64
	seen     map[uint64]bool // reachable pages, overflow included
	soft     []string        // key-order problems: bbolt can still read the file
}

// checkPages walks the tree bbolt would use (the valid meta page with the
// highest transaction id) and its freelist. It returns an error wrapping
// ErrCorrupt for a structure bbolt cannot be trusted to read, and the
// problems that leave the file readable (keys out of order) separately.
func checkPages(path string) (soft []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("check pages: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("check pages: %w", err)
	}
	w := &pageWalker{r: f, size: st.Size(), seen: map[uint64]bool{}}
	if err := w.pickMeta(); err != nil {
		return nil, err
	}
	if err := w.walk(w.meta.root, 0, nil, nil); err != nil {
		return w.soft, err
	}
	if err := w.checkFreelist(); err != nil {
		return w.soft, err
	}
	return w.soft, nil
}

// pickMeta chooses the meta page as bbolt does.
func (w *pageWalker) pickMeta() error {
	buf := make([]byte, 4096)
	var metas []fileMeta
	n, _ := w.r.ReadAt(buf, 0)
	if m, ok := decodeMeta(buf[:n]); ok {
		metas = append(metas, m)
	}
	// The second meta page sits one page in; its size is not known yet.
	for i := 0; i <= 14; i++ {
		pos := int64(1024) << i
		if pos >= w.size-1024 {
			break
		}
		n, _ := w.r.ReadAt(buf, pos)
		if m, ok := decodeMeta(buf[:n]); ok {
			if len(metas) == 0 || int64(metas[0].pageSize) == pos {
				metas = append(metas, m)
			}
			break
		}
	}
	if len(metas) == 0 {
		return structuref("no valid meta page")
	}
	best := metas[0]
	for _, m := range metas[1:] {
		if m.txid > best.txid {
			best = m
		}
	}
	if best.pageSize < 1024 || best.pageSize > maxPageSize || best.pageSize&(best.pageSize-1) != 0 {
		return structuref("page size %d", best.pageSize)
	}
	w.meta, w.pageSize = best, int64(best.pageSize)
	if best.hwm < 3 || best.hwm > uint64(w.size/w.pageSize) {
		return structuref("high water mark %d pages beyond a file of %d bytes", best.hwm, w.size)
	}
	return nil
}

// readPage reads page id with its overflow pages and checks its header.
func (w *pageWalker) readPage(id uint64, wantFlags uint16) ([]byte, error) {
	if id < 2 || id >= w.meta.hwm {
		return nil, structuref("page %d outside [2, %d)", id, w.meta.hwm)
	}
	buf := make([]byte, w.pageSize)
	if n, err := w.r.ReadAt(buf, int64(id)*w.pageSize); err != nil && !(errors.Is(err, io.EOF) && n >= pageHeaderSize) {
		return nil, structuref("page %d: %v", id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(buf[0:]); got != id {
		return nil, structuref("page %d claims id %d", id, got)
	}
	if flags := le.Uint16(buf[8:]); flags&wantFlags == 0 || flags&^(branchPageFlag|leafPageFlag|metaPageFlag|freelistFlag) != 0 {
		return nil, structuref("page %d has flags %#x, want %#x", id, flags, wantFlags)
	}
	overflow := uint64(le.Uint32(buf[12:]))
	if id+overflow >= w.meta.hwm {
		return nil, structuref("page %d overflows %d pages beyond the high water mark %d", id, overflow, w.meta.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, structuref("page %d is referenced twice", i)
		}
		w.seen[i] = true
	}
	if overflow > 0 {
		more := make([]byte, int64(overflow)*w.pageSize)
		if n, err := w.r.ReadAt(more, int64(id+1)*w.pageSize); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return nil, structuref("page %d: %v", id, err)
		}
		buf = append(buf, more...)
	}
	return buf, nil
}

// element is one decoded page element.
type element struct {
	flags uint32
	key   []byte
	value []byte // leaf
	child uint64 // branch
}

// elements decodes the elements of a branch or leaf page held in p.
func elements(where string, p []byte) (leaf bool, els []element, err error) {
	le := binary.LittleEndian
	flags := le.Uint16(p[8:])
	count := int(le.Uint16(p[10:]))
	leaf = flags&leafPageFlag != 0
	if flags&(branchPageFlag|leafPageFlag) == 0 || flags&branchPageFlag != 0 && leaf {
		return false, nil, structuref("%s: flags %#x: not a branch or leaf page", where, flags)
	}
	if pageHeaderSize+count*elemSize > len(p) {
		return false, nil, structuref("%s: %d elements overflow the page", where, count)
	}
	els = make([]element, count)
	for i := range els {
		off := pageHeaderSize + i*elemSize
		e := p[off : off+elemSize]
		var pos, ksize, vsize uint64
		if leaf {
			els[i].flags = le.Uint32(e[0:])
			pos, ksize, vsize = uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		} else {
			pos, ksize = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
			els[i].child = le.Uint64(e[8:])
		}
		start := uint64(off) + pos
		if start+ksize+vsize > uint64(len(p)) {
			return false, nil, structuref("%s: element %d lies beyond the page", where, i)
		}
		els[i].key = p[start : start+ksize]
		els[i].value = p[start+ksize : start+ksize+vsize]
	}
	return leaf, els, nil
}

// walk checks the subtree at page id, whose keys must lie in [lo, hi).
func (w *pageWalker) walk(id uint64, depth int, lo, hi []byte) error {
	if depth > maxTreeDepth {
		return structuref("tree deeper than %d at page %d", maxTreeDepth, id)
	}
	p, err := w.readPage(id, branchPageFlag|leafPageFlag)
	if err != nil {
		return err
	}
	return w.walkElements(fmt.Sprintf("page %d", id), p, depth, lo, hi)
}

func (w *pageWalker) walkElements(where string, p []byte, depth int, lo, hi []byte) error {
	leaf, els, err := elements(where, p)
	if err != nil {
		return err
	}
	if !leaf && len(els) == 0 {
		return structuref("%s: empty branch page", where)
	}
	for i, e := range els {
		switch {
		case i > 0 && bytes.Compare(els[i-1].key, e.key) >= 0:
			w.soft = append(w.soft, fmt.Sprintf("%s: key %d (%x) not after key %d (%x)", where, i, e.key, i-1, els[i-1].key))
		case i == 0 && lo != nil && bytes.Compare(e.key, lo) < 0, hi != nil && bytes.Compare(e.key, hi) >= 0:
			w.soft = append(w.soft, fmt.Sprintf("%s: key %d (%x) outside its parent's range", where, i, e.key))
		}
		if !leaf {
			var next []byte
			if i+1 < len(els) {
				next = els[i+1].key
			} else {
				next = hi
			}
			if err := w.walk(e.child, depth+1, e.key, next); err != nil {
				return err
			}
			continue
		}
		if e.flags&bucketLeafFlag == 0 {
			continue
		}
		// A sub-bucket: its header, then an inline page or a root page id.
		if len(e.value) < bucketHeaderLen {
			return structuref("%s: bucket %q header is %d bytes", where, e.key, len(e.value))
		}
		root := binary.LittleEndian.Uint64(e.value)
		if root != 0 {
			if err := w.walk(root, depth+1, nil, nil); err != nil {
				return fmt.Errorf("bucket %q: %w", e.key, err)
			}
			continue
		}
		inline := e.value[bucketHeaderLen:]
		if len(inline) < pageHeaderSize {
			return structuref("%s: inline bucket %q is %d bytes", where, e.key, len(inline))
		}
		if err := w.walkElements(fmt.Sprintf("inline bucket %q", e.key), inline, depth+1, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// checkFreelist refuses a freelist that lists a page in use or beyond the
// high water mark: bbolt would hand it out and overwrite live data.
func (w *pageWalker) checkFreelist() error {
	if w.meta.freelist == noFreelist {
		return nil
	}
	p, err := w.readPage(w.meta.freelist, freelistFlag)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	le := binary.LittleEndian
	count, start := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return structuref("freelist page %d is too short", w.meta.freelist)
		}
		count, start = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if start+count*8 > uint64(len(p)) || count > uint64(len(p)) {
		return structuref("freelist page %d: %d ids overflow the page", w.meta.freelist, count)
	}
	for i := range count {
		id := le.Uint64(p[start+i*8:])
		if id < 2 || id >= w.meta.hwm {
			return structuref("freelist lists page %d outside [2, %d)", id, w.meta.hwm)
		}
		if w.seen[id] {
			return structuref("freelist lists page %d, which is in use", id)
		}
	}
	return nil
}
