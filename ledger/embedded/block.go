package embedded

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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
	prev, err := decodeHash(b.Prev)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("prev: %w", err)
	}
	root, err := decodeHash(b.TxRoot)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("tx root: %w", err)
	}
	var buf []byte
	buf = append(buf, "medx/block/v1"...)
	buf = binary.BigEndian.AppendUint64(buf, b.Height)
	buf = append(buf, prev[:]...)
	buf = append(buf, root[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(b.Time.UnixNano()))
	buf = appendBytes(buf, b.NodeKey)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.Txs)))
	return sha256.Sum256(buf), nil
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
	if !ed25519.Verify(nodeKey, h[:], b.Sig) {
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

func encodeBlock(b *Block) ([]byte, error) {
	v, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode block %d: %w", b.Height, err)
	}
	return v, nil
}

func decodeBlock(v []byte) (*Block, error) {
	var b Block
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("decode block: %v: %w", err, ErrCorrupt)
	}
	return &b, nil
}
