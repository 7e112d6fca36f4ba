package embedded

import (
	"bytes"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// FuzzBlockEncoding checks what the audit relies on instead of encoding
// every block again: any bytes that decode as a block are that block's
// canonical encoding, so two different stored forms of one block cannot
// both pass; and decoding never panics.
func FuzzBlockEncoding(f *testing.F) {
	for _, b := range []*Block{
		{Height: 1, Prev: genesisPrev, Time: time.Unix(1700000000, 5).UTC()},
		{Height: 7, Prev: genesisPrev, Time: time.Unix(1800000000, 0).UTC(), Txs: []Tx{
			{ID: "tx-1", Fn: ledger.FnAcceptOffer, Args: [][]byte{[]byte(`{"a":1}`)}, Result: []byte(`{"id":"x"}`),
				Event: &ledger.Event{Name: ledger.EventLicenceGranted, Payload: []byte(`{}`)}},
			{ID: "tx-2", Fn: ledger.FnMint, Args: [][]byte{nil, []byte("b")}},
		}},
	} {
		b.TxRoot = txRoot(b.Txs)
		if err := b.sign(testKey("node")); err != nil {
			f.Fatal(err)
		}
		v, err := encodeBlock(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
		f.Add(v[:len(v)-1])
		f.Add(append(bytes.Clone(v), 0))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		b, err := decodeBlock(v)
		if err != nil {
			return
		}
		enc, err := encodeBlock(b)
		if err != nil {
			t.Fatalf("a decoded block does not encode: %v", err)
		}
		if !bytes.Equal(enc, v) {
			t.Fatalf("a decoded block encodes differently:\n stored %x\nencoded %x", v, enc)
		}
	})
}
