package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// subscriber queues block events for one Subscribe channel. The queue is
// unbounded so that a slow reader never stalls the committer and never
// misses a block; it grows only while the reader lags.
type subscriber struct {
	mu      sync.Mutex
	queue   []BlockEvent
	wake    chan struct{} // capacity 1
	stopped chan struct{}
	once    sync.Once
}

func (s *subscriber) push(ev BlockEvent) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) take() []BlockEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func (s *subscriber) stop() { s.once.Do(func() { close(s.stopped) }) }

// Subscribe returns the events of every block committed from now on, in
// order. The channel is closed when ctx ends or the ledger closes.
func (l *Ledger) Subscribe(ctx context.Context) <-chan BlockEvent {
	return l.events(ctx, 0, false)
}

// Events returns the events of every committed block from height from on,
// in order and without gaps or repeats: first the blocks already
// committed, read back from the file, then each new block as it commits.
// A subscriber that keeps the height of the last event it handled resumes
// after a restart, its own or the ledger's, with Events(ctx, last+1);
// from 0 or 1 starts at the first block. The channel is closed when ctx
// ends or the ledger closes, or after logging a block that cannot be read
// back or fails its signature.
func (l *Ledger) Events(ctx context.Context, from uint64) <-chan BlockEvent {
	return l.events(ctx, max(from, 1), true)
}

// events streams blocks from height from (replay), or those committed
// after the call (!replay).
func (l *Ledger) events(ctx context.Context, from uint64, replay bool) <-chan BlockEvent {
	out := make(chan BlockEvent)
	s := &subscriber{wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	l.mu.Lock()
	if l.subs == nil { // closed
		l.mu.Unlock()
		close(out)
		return out
	}
	// Blocks up to the head now are read back; later ones arrive through
	// the subscription (one may arrive both ways: next drops repeats).
	l.subs[s] = struct{}{}
	headNow := l.head.height
	l.mu.Unlock()
	if !replay {
		// A block committed before the call may still be on its way to
		// the subscribers: it is not "from now on".
		from = headNow + 1
	}
	go func() {
		defer close(out)
		defer func() {
			l.mu.Lock()
			if l.subs != nil {
				delete(l.subs, s)
			}
			l.mu.Unlock()
		}()
		next := from // the next height to deliver
		send := func(ev BlockEvent) bool {
			if ev.Height < next {
				return true
			}
			select {
			case out <- ev:
				next = ev.Height + 1
				return true
			case <-ctx.Done():
			case <-s.stopped:
			}
			return false
		}
		if replay {
			for next <= headNow {
				evs, err := l.readEvents(ctx, next, min(headNow, next+63))
				if err != nil {
					select {
					case <-s.stopped: // the ledger closed
					case <-ctx.Done():
					default:
						l.log.Error("ledger events: read back committed blocks", "from", next, "err", err)
					}
					return
				}
				for _, ev := range evs {
					if !send(ev) {
						return
					}
				}
			}
		}
		for {
			for _, ev := range s.take() {
				if !send(ev) {
					return
				}
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			case <-s.stopped:
				return
			}
		}
	}()
	return out
}

// readEvents reads back the events of the committed blocks [from, to],
// checking each block's signature.
func (l *Ledger) readEvents(ctx context.Context, from, to uint64) ([]BlockEvent, error) {
	var evs []BlockEvent
	err := safely(func() error {
		return l.db.View(func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte(bucketBlocks))
			for h := from; h <= to; h++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				v := bk.Get(heightKey(h))
				if v == nil {
					return fmt.Errorf("block %d: %w", h, ledger.ErrNotFound)
				}
				b, err := decodeBlock(v)
				if err != nil {
					return fmt.Errorf("block %d: %w", h, err)
				}
				if err := b.check(l.pub); err != nil {
					return fmt.Errorf("%v: %w", err, ErrCorrupt)
				}
				evs = append(evs, blockEvent(b))
			}
			return nil
		})
	})
	return evs, err
}

// blockEvent describes a block to subscribers.
func blockEvent(b *Block) BlockEvent {
	ev := BlockEvent{Height: b.Height, Hash: b.Hash(), Time: b.Time, Txs: make([]TxEvent, len(b.Txs))}
	for i, t := range b.Txs {
		ev.Txs[i] = TxEvent{TxID: t.ID, Fn: t.Fn, Event: t.Event}
		if t.Fn == ledger.FnAuthorizeQuery {
			var qa ledger.QueryAuthorization
			if json.Unmarshal(t.Result, &qa) == nil {
				ev.Txs[i].Licences = qa.Licences
			}
		}
	}
	return ev
}

// publish hands a committed block's events to every subscriber.
func (l *Ledger) publish(b *Block) {
	ev := blockEvent(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		s.push(ev)
	}
}
