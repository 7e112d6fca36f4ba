package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
)

func (s *Server) trail() (exchange.TrailFunc, error) {
	if s.o.Trail == nil {
		return nil, fmt.Errorf("the audit trail is not configured: %w", errNotImplemented)
	}
	return s.o.Trail, nil
}

// handleTokenHistory lists every change of the caller's balance, oldest
// first; a patient's covers all the pseudonyms their custodian certified.
func (s *Server) handleTokenHistory() handler {
	type movement struct {
		Height  uint64           `json:"height"`
		Time    time.Time        `json:"time"`
		TxID    string           `json:"txId"`
		Kind    string           `json:"kind"`
		Request ledger.RequestID `json:"request,omitempty"`
		Amount  ledger.Amount    `json:"amount"`
		Balance ledger.Amount    `json:"balance"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		tr, err := s.trail()
		if err != nil {
			return err
		}
		ms, err := s.ex.TokenHistory(r.Context(), p, tr)
		if err != nil {
			return err
		}
		out := make([]movement, len(ms))
		for i, m := range ms {
			out[i] = movement{m.Height, m.Time.UTC(), m.TxID, m.Kind, m.Request, m.Amount, m.Balance}
		}
		encode(w, http.StatusOK, out)
		return nil
	}
}

// handleAuditExport streams the trail (one record per transaction: ids,
// pseudonyms, amounts, never personal data) as JSON Lines or CSV, filtered
// by request, patient pseudonym and time. The parameters are checked before
// anything is written; a failure once streaming has begun aborts the
// response, so a client never mistakes a cut export for a whole one.
func (s *Server) handleAuditExport() handler {
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		tr, err := s.trail()
		if err != nil {
			return err
		}
		q := r.URL.Query()
		for k := range q {
			switch k {
			case "format", "request", "patient", "from", "to":
			default:
				return fmt.Errorf("query parameter %q: want format, request, patient, from or to: %w", k, errBadRequest)
			}
		}
		f := ledger.TrailFilter{Request: ledger.RequestID(q.Get("request")), Pseudonym: ledger.ParticipantID(q.Get("patient"))}
		for _, t := range []struct {
			name string
			dst  *time.Time
		}{{"from", &f.From}, {"to", &f.To}} {
			v := q.Get(t.name)
			if v == "" {
				continue
			}
			if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return fmt.Errorf("%s %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z: %w", t.name, v, errBadRequest)
			}
		}
		if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
			return fmt.Errorf("from must be before to: %w", errBadRequest)
		}
		var tw ledger.TrailWriter
		switch format := q.Get("format"); format {
		case "", "jsonl":
			w.Header().Set("Content-Type", "application/jsonl")
			w.Header().Set("Content-Disposition", `attachment; filename="medx-trail.jsonl"`)
			tw = ledger.NewTrailJSONL(w)
		case "csv":
			w.Header().Set("Content-Type", "text/csv; charset=utf-8; header=present")
			w.Header().Set("Content-Disposition", `attachment; filename="medx-trail.csv"`)
			tw = ledger.NewTrailCSV(w)
		default:
			return fmt.Errorf("format %q: want jsonl or csv: %w", format, errBadRequest)
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err = tr(r.Context(), f, tw.Write); err == nil {
			err = tw.Flush()
		}
		if err != nil {
			s.log.ErrorContext(r.Context(), "audit export cut short", "err", err)
			panic(http.ErrAbortHandler)
		}
		return nil
	}
}
