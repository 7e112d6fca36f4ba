package embedded

import (
	"context"
	"sync"
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
	out := make(chan BlockEvent)
	s := &subscriber{wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	l.mu.Lock()
	if l.subs == nil { // closed
		l.mu.Unlock()
		close(out)
		return out
	}
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			l.mu.Lock()
			if l.subs != nil {
				delete(l.subs, s)
			}
			l.mu.Unlock()
		}()
		for {
			for _, ev := range s.take() {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-s.stopped:
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

// publish hands a committed block's events to every subscriber.
func (l *Ledger) publish(b *Block) {
	ev := BlockEvent{Height: b.Height, Hash: b.Hash(), Time: b.Time, Txs: make([]TxEvent, len(b.Txs))}
	for i, t := range b.Txs {
		ev.Txs[i] = TxEvent{TxID: t.ID, Fn: t.Fn, Event: t.Event}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		s.push(ev)
	}
}
