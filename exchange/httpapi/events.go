package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
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
// ledger event's; its id is "<height>-<txid>".
func (s *Server) handleEvents() handler {
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		if s.o.Events == nil {
			return fmt.Errorf("notifications are not configured: %w", errNotImplemented)
		}
		ctx := r.Context()
		events := s.o.Events(ctx)
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
