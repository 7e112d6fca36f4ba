package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
)

// eventData is the data line of one server-sent event.
type eventData struct {
	Height  uint64              `json:"height"`
	Time    time.Time           `json:"time"`
	TxID    string              `json:"txId"`
	Name    string              `json:"name"`
	Payload ledger.EventPayload `json:"payload"`
}

// handleEvents streams the caller's notifications as server-sent events
// until the client goes or the server shuts down. Each event's name is the
// ledger event's; its id is "<height>-<txid>". A client that reconnects
// with Last-Event-ID gets every event after that one, without gaps or
// repeats (when the server can replay the ledger, Options.Replay).
func (s *Server) handleEvents() handler {
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		if s.o.Events == nil {
			return fmt.Errorf("notifications are not configured: %w", errNotImplemented)
		}
		ctx := r.Context()
		resume, err := parseEventID(r.Header.Get("Last-Event-ID"))
		if err != nil {
			return err
		}
		var events <-chan exchange.Notice
		if resume.height > 0 && s.o.Replay != nil {
			events = resume.skip(ctx, s.o.Replay(ctx, resume.height))
		} else {
			events = s.o.Events(ctx)
		}
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Time{}) // a stream outlives the write timeout
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, ": medx notifications\n\n")
		if err := rc.Flush(); err != nil {
			return nil
		}
		tick := time.NewTicker(s.o.Heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				fmt.Fprint(w, ": keep-alive\n\n")
			case n, ok := <-events:
				if !ok {
					return nil
				}
				show, err := s.ex.Notify(ctx, p, n)
				if err != nil {
					s.log.WarnContext(ctx, "notification filter", "err", err)
					continue
				}
				if !show {
					continue
				}
				b, err := json.Marshal(eventData{n.Height, n.Time, n.TxID, n.Name, n.Payload})
				if err != nil {
					continue
				}
				fmt.Fprintf(w, "id: %d-%s\nevent: %s\ndata: %s\n\n", n.Height, n.TxID, n.Name, b)
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// eventID is a parsed Last-Event-ID: the block height and transaction of
// the last event a client handled. The zero value starts live.
type eventID struct {
	height uint64
	txID   string
}

func parseEventID(s string) (eventID, error) {
	if s == "" {
		return eventID{}, nil
	}
	h, tx, ok := strings.Cut(s, "-")
	height, err := strconv.ParseUint(h, 10, 64)
	if !ok || err != nil || height == 0 || tx == "" {
		return eventID{}, fmt.Errorf("Last-Event-ID %q: want <height>-<txid> as sent in an event's id: %w", s, errBadRequest)
	}
	return eventID{height, tx}, nil
}

// skip passes on the notices of in that come after id: those of later
// blocks, and those of id's block after id's transaction.
func (id eventID) skip(ctx context.Context, in <-chan exchange.Notice) <-chan exchange.Notice {
	out := make(chan exchange.Notice)
	go func() {
		defer close(out)
		past := false
		for n := range in {
			if !past {
				if n.Height < id.height {
					continue
				}
				if n.Height == id.height {
					past = n.TxID == id.txID
					continue
				}
				past = true
			}
			select {
			case out <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
