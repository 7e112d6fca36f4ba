package embedded

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/medx/medx/ledger"
)

// Block is one group commit: the transactions that succeeded in it, linked
// to the previous block by hash and signed by the node key.
type Block struct {
	Height  uint64    `json:"height"` // 1 for the first block
	Prev    string    `json:"prev"`   // hex hash of the previous block's header, 64 zeros for the first
	TxRoot  string    `json:"txRoot"` // hex Merkle root over the transactions
	Time    time.Time `json:"time"`   // also every transaction's timestamp
	NodeKey []byte    `json:"nodeKey"`
	Txs     []Tx      `json:"txs"`
	Sig     []byte    `json:"sig"` // node key's Ed25519 signature over the header hash
}

// Tx is one committed transaction.
type Tx struct {
	ID     string        `json:"id"`
	Fn     string        `json:"fn"`
	Args   [][]byte      `json:"args"`
	Result []byte        `json:"result,omitempty"`
	Event  *ledger.Event `json:"event,omitempty"`
}

// genesisPrev is the Prev of the first block.
const genesisPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// headerHash is the hash the node signs: every header field in a fixed
// binary layout.
func (b *Block) headerHash() ([sha256.Size]byte, error) {
	buf, err := b.appendHeader(nil, "medx/block/v1")
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(buf), nil
}

// appendHeader appends magic and the header fields in the layout both
// the signed hash and the stored form use: height, prev, tx root, time,
// node key, transaction count.
func (b *Block) appendHeader(buf []byte, magic string) ([]byte, error) {
	prev, err := decodeHash(b.Prev)
	if err != nil {
		return nil, fmt.Errorf("prev: %w", err)
	}
	root, err := decodeHash(b.TxRoot)
	if err != nil {
		return nil, fmt.Errorf("tx root: %w", err)
	}
	buf = append(buf, magic...)
	buf = binary.BigEndian.AppendUint64(buf, b.Height)
	buf = append(buf, prev[:]...)
	buf = append(buf, root[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(b.Time.UnixNano()))
	buf = appendBytes(buf, b.NodeKey)
	return binary.BigEndian.AppendUint32(buf, uint32(len(b.Txs))), nil
}

// Hash returns the block's hex header hash (the next block's Prev).
func (b *Block) Hash() string {
	h, err := b.headerHash()
	if err != nil {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// check verifies a block on its own: tx root, header signature and node
// key. It does not check the link to the previous block.
func (b *Block) check(nodeKey ed25519.PublicKey) error {
	if !bytesEqual(b.NodeKey, nodeKey) {
		return fmt.Errorf("block %d: signed by node key %x, not this ledger's %x", b.Height, b.NodeKey, []byte(nodeKey))
	}
	if len(b.Txs) == 0 {
		return fmt.Errorf("block %d: no transactions", b.Height)
	}
	if root := txRoot(b.Txs); root != b.TxRoot {
		return fmt.Errorf("block %d: tx root %s does not match its transactions (%s)", b.Height, b.TxRoot, root)
	}
	h, err := b.headerHash()
	if err != nil {
		return fmt.Errorf("block %d: %w", b.Height, err)
	}
	if !ledger.VerifySignature(nodeKey, h[:], b.Sig) {
		return fmt.Errorf("block %d: bad node signature", b.Height)
	}
	return nil
}

// sign sets TxRoot and Sig.
func (b *Block) sign(key ed25519.PrivateKey) error {
	b.TxRoot = txRoot(b.Txs)
	h, err := b.headerHash()
	if err != nil {
		return err
	}
	b.Sig = ed25519.Sign(key, h[:])
	return nil
}

// txLeaf hashes one transaction: id, function, arguments, result, event,
// each length-prefixed. h is a SHA-256 state to reuse; it is reset.
func txLeaf(h hash.Hash, t Tx) [sha256.Size]byte {
	h.Reset()
	h.Write([]byte{0x00})
	h.Write([]byte("medx/tx/v1"))
	writeBytes(h, []byte(t.ID))
	writeBytes(h, []byte(t.Fn))
	writeUint32(h, uint32(len(t.Args)))
	for _, a := range t.Args {
		writeBytes(h, a)
	}
	writeBytes(h, t.Result)
	if t.Event != nil {
		h.Write([]byte{1})
		writeBytes(h, []byte(t.Event.Name))
		writeBytes(h, t.Event.Payload)
	} else {
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// writeBytes writes b length-prefixed, as appendBytes encodes it.
func writeBytes(h hash.Hash, b []byte) {
	writeUint32(h, uint32(len(b)))
	h.Write(b)
}

func writeUint32(h hash.Hash, n uint32) {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], n)
	h.Write(l[:])
}

// txRoot is the hex Merkle root over the transactions' leaf hashes; an odd
// node is carried up unchanged.
func txRoot(txs []Tx) string {
	if len(txs) == 0 {
		return genesisPrev
	}
	h := sha256.New()
	level := make([][sha256.Size]byte, len(txs))
	for i, t := range txs {
		level[i] = txLeaf(h, t)
	}
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 0x01
	for len(level) > 1 {
		next := level[:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			copy(buf[1:], level[i][:])
			copy(buf[1+sha256.Size:], level[i+1][:])
			next = append(next, sha256.Sum256(buf[:]))
		}
		level = next
	}
	return hex.EncodeToString(level[0][:])
}

// newTxID is hex SHA-256 over a random nonce, the function and arguments.
func newTxID(fn string, args [][]byte) (string, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("tx nonce: %w", err)
	}
	buf := append([]byte(nil), nonce[:]...)
	buf = appendBytes(buf, []byte(fn))
	for _, a := range args {
		buf = appendBytes(buf, a)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
	return append(buf, b...)
}

func decodeHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return h, fmt.Errorf("%q is not a hex SHA-256", s)
	}
	copy(h[:], b)
	return h, nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// heightKey is the blocks bucket key of a height: big-endian, so blocks
// sort by height.
func heightKey(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

// blockMagic opens every stored block (format v2).
const blockMagic = "medx/block/v2\x00"

// encodeBlock is a block's stored form: blockMagic, then every field in
// a fixed binary layout (integers big-endian, byte strings prefixed with
// their uint32 length, an event by a 0/1 flag). Each block has exactly
// one encoding: whatever decodes is it (FuzzBlockEncoding).
func encodeBlock(b *Block) ([]byte, error) {
	n := len(blockMagic) + 8 + 2*sha256.Size + 8 + 4 + len(b.NodeKey) + 4 + 4 + len(b.Sig)
	for _, t := range b.Txs {
		n += 4 + len(t.ID) + 4 + len(t.Fn) + 4 + 4 + len(t.Result) + 1
		for _, a := range t.Args {
			n += 4 + len(a)
		}
		if t.Event != nil {
			n += 4 + len(t.Event.Name) + 4 + len(t.Event.Payload)
		}
	}
	v, err := b.appendHeader(make([]byte, 0, n), blockMagic)
	if err != nil {
		return nil, fmt.Errorf("encode block %d: %w", b.Height, err)
	}
	for _, t := range b.Txs {
		v = appendBytes(v, []byte(t.ID))
		v = appendBytes(v, []byte(t.Fn))
		v = binary.BigEndian.AppendUint32(v, uint32(len(t.Args)))
		for _, a := range t.Args {
			v = appendBytes(v, a)
		}
		v = appendBytes(v, t.Result)
		if t.Event == nil {
			v = append(v, 0)
		} else {
			v = append(v, 1)
			v = appendBytes(v, []byte(t.Event.Name))
			v = appendBytes(v, t.Event.Payload)
		}
	}
	return appendBytes(v, b.Sig), nil
}

// decodeBlock decodes a stored block. Its byte fields share one copy of
// v. Empty byte strings decode as nil.
func decodeBlock(v []byte) (*Block, error) {
	b, err := decodeBinaryBlock(v)
	if err != nil {
		return nil, fmt.Errorf("decode block: %v: %w", err, ErrCorrupt)
	}
	return b, nil
}

func decodeBinaryBlock(v []byte) (*Block, error) {
	if !bytes.HasPrefix(v, []byte(blockMagic)) {
		return nil, errors.New("not a medx block (bad magic)")
	}
	d := blockDecoder{buf: bytes.Clone(v[len(blockMagic):])}
	b := &Block{Height: d.uint64()}
	b.Prev = hex.EncodeToString(d.next(sha256.Size))
	b.TxRoot = hex.EncodeToString(d.next(sha256.Size))
	b.Time = time.Unix(0, int64(d.uint64())).UTC()
	b.NodeKey = d.bytes()
	ntx := d.uint32()
	if d.err == nil && uint64(ntx) > uint64(len(d.buf)) {
		d.err = fmt.Errorf("%d transactions in %d bytes", ntx, len(d.buf))
	}
	if d.err == nil {
		b.Txs = make([]Tx, 0, ntx)
	}
	for i := uint32(0); i < ntx && d.err == nil; i++ {
		t := Tx{ID: string(d.bytes()), Fn: string(d.bytes())}
		nargs := d.uint32()
		if d.err == nil && uint64(nargs) > uint64(len(d.buf)) {
			d.err = fmt.Errorf("tx %d: %d arguments in %d bytes", i, nargs, len(d.buf))
			break
		}
		t.Args = make([][]byte, nargs)
		for j := range t.Args {
			t.Args[j] = d.bytes()
		}
		t.Result = d.bytes()
		switch f := d.next(1); {
		case d.err != nil:
		case f[0] == 1:
			t.Event = &ledger.Event{Name: string(d.bytes()), Payload: d.bytes()}
		case f[0] != 0:
			d.err = fmt.Errorf("tx %d: event flag %d", i, f[0])
		}
		b.Txs = append(b.Txs, t)
	}
	b.Sig = d.bytes()
	if d.err == nil && len(d.buf) > 0 {
		d.err = fmt.Errorf("%d bytes after the block", len(d.buf))
	}
	if d.err != nil {
		return nil, d.err
	}
	return b, nil
}

// blockDecoder reads a block's fields; the first error sticks.
type blockDecoder struct {
	buf []byte
	err error
}

func (d *blockDecoder) next(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.buf) {
		d.err = fmt.Errorf("truncated: %d bytes wanted, %d left", n, len(d.buf))
		return nil
	}
	out := d.buf[:n:n]
	d.buf = d.buf[n:]
	return out
}

func (d *blockDecoder) uint64() uint64 {
	if b := d.next(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *blockDecoder) uint32() uint32 {
	if b := d.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// bytes reads a length-prefixed byte string (nil if empty).
func (d *blockDecoder) bytes() []byte {
	n := d.uint32()
	if d.err != nil || n == 0 {
		return nil
	}
	return d.next(int(n))
}
