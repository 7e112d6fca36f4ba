package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric/chaincode"
)

// Event is the chaincode event of one committed, valid transaction.
type Event struct {
	Block uint64
	TxID  string
	Fn    string
	Time  time.Time     // the transaction timestamp
	Event *ledger.Event // nil if the contract emitted none
}

// checkpointer is what Listen needs of a checkpoint.
type checkpointer interface {
	client.Checkpoint
	CheckpointChaincodeEvent(*client.ChaincodeEvent) error
}

// memCheckpoint keeps the position of one Listen call in memory.
type memCheckpoint struct{ client.InMemoryCheckpointer }

func (m *memCheckpoint) CheckpointChaincodeEvent(ev *client.ChaincodeEvent) error {
	m.InMemoryCheckpointer.CheckpointChaincodeEvent(ev)
	return nil
}

// Listen calls handle with the event of every valid transaction, in
// commit order, until ctx ends or handle fails. With
// Config.EventCheckpointFile it starts after the last event a previous
// Listen handled (the file records each event once handle returns), so a
// restarted listener neither misses nor repeats one; otherwise, and on
// the first run, it starts at block from (0: the next block committed).
// A broken event stream is reopened from the last handled event.
func (l *Ledger) Listen(ctx context.Context, from uint64, handle func(context.Context, Event) error) error {
	return l.listen(ctx, from, l.cfg.EventCheckpointFile, handle)
}

// Follow is Listen from the next block committed, without the checkpoint
// file: for live subscribers (notifications), any number at a time.
func (l *Ledger) Follow(ctx context.Context, handle func(context.Context, Event) error) error {
	return l.listen(ctx, 0, "", handle)
}

func (l *Ledger) listen(ctx context.Context, from uint64, file string, handle func(context.Context, Event) error) error {
	var cp checkpointer = &memCheckpoint{}
	if f := file; f != "" {
		fc, err := client.NewFileCheckpointer(f)
		if err != nil {
			return fmt.Errorf("fabric events: checkpoint %s: %w", f, err)
		}
		defer fc.Close()
		cp = fc
	}
	for attempt := 0; ; attempt++ {
		opts := []client.ChaincodeEventsOption{}
		if from > 0 {
			opts = append(opts, client.WithStartBlock(from))
		}
		opts = append(opts, client.WithCheckpoint(cp))
		sctx, cancel := context.WithCancel(ctx)
		events, err := l.network.ChaincodeEvents(sctx, l.cfg.Chaincode, opts...)
		if err == nil {
			err = l.consume(sctx, events, cp, handle)
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// The stream ended: the peer went away. Reopen from the checkpoint.
		l.log.WarnContext(ctx, "fabric event stream ended; reopening", "block", cp.BlockNumber(), "after", cp.TransactionID())
		select {
		case <-time.After(time.Duration(min(attempt+1, 50)) * 100 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
}

// consume handles events until the stream ends (nil) or handle fails.
func (l *Ledger) consume(ctx context.Context, events <-chan *client.ChaincodeEvent, cp checkpointer, handle func(context.Context, Event) error) error {
	for ce := range events {
		ev, err := decodeEvent(ce)
		if err != nil {
			return err
		}
		if err := handle(ctx, ev); err != nil {
			return err
		}
		if err := cp.CheckpointChaincodeEvent(ce); err != nil {
			return fmt.Errorf("fabric events: checkpoint tx %s: %w", ce.TransactionID, err)
		}
	}
	return nil
}

func decodeEvent(ce *client.ChaincodeEvent) (Event, error) {
	ev := Event{Block: ce.BlockNumber, TxID: ce.TransactionID}
	if ce.EventName != chaincode.EventName {
		return ev, fmt.Errorf("fabric events: tx %s: unknown event %q", ce.TransactionID, ce.EventName)
	}
	var p chaincode.Event
	if err := json.Unmarshal(ce.Payload, &p); err != nil {
		return ev, fmt.Errorf("fabric events: tx %s: decode: %w", ce.TransactionID, err)
	}
	ev.Fn, ev.Time, ev.Event = p.Fn, p.Time, p.Event
	return ev, nil
}
