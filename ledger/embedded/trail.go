package embedded

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// trailChunk is how many blocks a trail export reads per bbolt read
// transaction, so that a slow consumer never holds one open for long.
const trailChunk = 64

// Trail calls fn, in ledger order, with the trail record of every
// committed transaction that f selects. Each block is checked against its
// signature and transaction root before its records are given out; a
// block that fails stops the export with an error wrapping ErrCorrupt.
// An error from fn stops it too and is returned.
func (l *Ledger) Trail(ctx context.Context, f ledger.TrailFilter, fn func(ledger.TrailRecord) error) error {
	select {
	case <-l.closing:
		return fmt.Errorf("trail: %w", ErrClosed)
	default:
	}
	return exportTrail(ctx, l.db, l.pub, l.Height(), f, fn)
}

// TrailFile is Trail over a bare ledger file, opened read-only, with
// neither the node's key nor any other state: blocks are checked against
// the node key they carry. It does not replay the contract; VerifyFile
// does.
func TrailFile(ctx context.Context, path string, f ledger.TrailFilter, fn func(ledger.TrailRecord) error) error {
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("trail %s: %w", path, err)
	}
	defer db.Close()
	if soft, err := checkPages(path); err != nil {
		return fmt.Errorf("trail %s: %w", path, err)
	} else if len(soft) > 0 {
		return fmt.Errorf("trail %s: %w", path, structuref("%s", soft[0]))
	}
	var pub ed25519.PublicKey
	var height uint64
	err = safely(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			if pub, err = fileNodeKey(tx); err != nil {
				return err
			}
			if bk := tx.Bucket([]byte(bucketBlocks)); bk != nil {
				if k, _ := bk.Cursor().Last(); len(k) == 8 {
					height = binary.BigEndian.Uint64(k)
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("trail %s: %w", path, err)
	}
	if err := exportTrail(ctx, db, pub, height, f, fn); err != nil {
		return fmt.Errorf("trail %s: %w", path, err)
	}
	return nil
}

// exportTrail reads blocks 1..height in chunks and hands out the records
// f selects.
func exportTrail(ctx context.Context, db *bolt.DB, pub ed25519.PublicKey, height uint64, f ledger.TrailFilter, fn func(ledger.TrailRecord) error) error {
	var tr ledger.Trail
	for from := uint64(1); from <= height; from += trailChunk {
		var blocks []*Block
		err := safely(func() error {
			return db.View(func(tx *bolt.Tx) error {
				bk := tx.Bucket([]byte(bucketBlocks))
				if bk == nil {
					return fmt.Errorf("no %s bucket: %w", bucketBlocks, ErrCorrupt)
				}
				for h := from; h <= height && h < from+trailChunk; h++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					v := bk.Get(heightKey(h))
					if v == nil {
						return fmt.Errorf("block %d is missing: %w", h, ErrCorrupt)
					}
					b, err := decodeBlock(v)
					if err != nil {
						return fmt.Errorf("block %d: %w", h, err)
					}
					if b.Height != h {
						return fmt.Errorf("block %d stored at height %d: %w", b.Height, h, ErrCorrupt)
					}
					if err := b.check(pub); err != nil {
						return fmt.Errorf("%v: %w", err, ErrCorrupt)
					}
					blocks = append(blocks, b)
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("trail: %w", err)
		}
		for _, b := range blocks {
			for _, t := range b.Txs {
				r, err := tr.Record(b.Height, b.Time, t.ID, t.Fn, t.Args, t.Result, t.Event)
				if err != nil {
					return fmt.Errorf("trail block %d: %w", b.Height, err)
				}
				if !f.To.IsZero() && !r.Time.Before(f.To) {
					return nil // block times never go back
				}
				if !f.Match(r) {
					continue
				}
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
