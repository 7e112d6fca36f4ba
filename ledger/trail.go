package ledger

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// TrailRecord is one committed transaction as the audit trail shows it:
// where and when it was committed, who acted, and the ids, pseudonyms,
// amounts and epsilon it involved. It carries no names, free text or
// personal data: patients appear only as per-study pseudonyms.
type TrailRecord struct {
	Height         uint64        `json:"height"`
	Time           time.Time     `json:"time"`
	TxID           string        `json:"tx"`
	Fn             string        `json:"fn"`
	Actor          ParticipantID `json:"actor"`
	Event          string        `json:"event,omitempty"`
	Participant    ParticipantID `json:"participant,omitempty"` // registered
	Sponsor        ParticipantID `json:"sponsor,omitempty"`
	Request        RequestID     `json:"request,omitempty"`
	Licence        LicenceID     `json:"licence,omitempty"`
	Pseudonym      ParticipantID `json:"pseudonym,omitempty"`
	Custodian      ParticipantID `json:"custodian,omitempty"`
	Query          QueryID       `json:"query,omitempty"`
	Licences       int64         `json:"licences,omitempty"` // licences a query used
	LicencesDigest string        `json:"licencesDigest,omitempty"`
	Epsilon        Epsilon       `json:"epsilon,omitempty"` // millionths
	Amount         Amount        `json:"amount,omitempty"`
	To             ParticipantID `json:"to,omitempty"` // mint and transfer
	Status         string        `json:"status,omitempty"`
	NotebookRun    NotebookRunID `json:"notebookRun,omitempty"`
	Dataset        DatasetID     `json:"dataset,omitempty"`

	// uses are the pseudonyms whose licences a query used, for filtering.
	uses []ParticipantID
}

// Trail turns committed transactions, in ledger order, into TrailRecords.
// It remembers which pseudonyms each authorised query used, so that the
// query's completion matches a pseudonym filter too. The zero value is
// ready to use.
type Trail struct {
	queryUses map[QueryID][]ParticipantID
}

// Record describes the committed transaction txID of block height at time
// t: function fn called with args, its result and its event (nil if none).
// It returns an error, wrapping ErrInvalid, if the arguments are not one
// signed action or the event payload does not decode.
func (tr *Trail) Record(height uint64, t time.Time, txID, fn string, args [][]byte, result []byte, ev *Event) (TrailRecord, error) {
	r := TrailRecord{Height: height, Time: t.UTC(), TxID: txID, Fn: fn}
	if len(args) != 1 {
		return r, fmt.Errorf("trail tx %s: %d arguments, want 1: %w", txID, len(args), ErrInvalid)
	}
	var a Action
	if err := json.Unmarshal(args[0], &a); err != nil {
		return r, fmt.Errorf("trail tx %s: decode action: %v: %w", txID, err, ErrInvalid)
	}
	r.Actor = a.Actor
	if ev != nil {
		var p EventPayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return r, fmt.Errorf("trail tx %s: decode event %s: %v: %w", txID, ev.Name, err, ErrInvalid)
		}
		r.Event = ev.Name
		r.Participant, r.Sponsor, r.Request, r.Licence = p.Participant, p.Sponsor, p.Request, p.Licence
		r.Pseudonym, r.Custodian, r.Query, r.Licences = p.Patient, p.Custodian, p.Query, p.Licences
		r.LicencesDigest, r.Epsilon, r.Amount, r.Status = p.LicencesDigest, p.Epsilon, p.Amount, p.Status
		r.NotebookRun, r.Dataset = p.NotebookRun, p.Dataset
	}
	switch fn {
	case FnMint, FnTransfer:
		var m MintArgs // TransferArgs has the same fields
		if err := json.Unmarshal(a.Payload, &m); err != nil {
			return r, fmt.Errorf("trail tx %s: decode %s payload: %v: %w", txID, fn, err, ErrInvalid)
		}
		r.To, r.Amount = m.To, m.Amount
	case FnAuthorizeQuery:
		var qa QueryAuthorization
		if err := json.Unmarshal(result, &qa); err != nil {
			return r, fmt.Errorf("trail tx %s: decode query authorisation: %v: %w", txID, err, ErrInvalid)
		}
		for _, l := range qa.Licences {
			r.uses = append(r.uses, l.Patient)
		}
		if tr.queryUses == nil {
			tr.queryUses = map[QueryID][]ParticipantID{}
		}
		tr.queryUses[qa.Query.ID] = r.uses
	case FnCompleteQuery:
		r.uses = tr.queryUses[r.Query]
	}
	return r, nil
}

// TrailFilter selects trail records. Zero fields select everything.
type TrailFilter struct {
	Request RequestID
	// Pseudonym selects the records a patient pseudonym took part in: its
	// own actions, its licence's grant and revocation, payments to it,
	// and the queries that used its licence.
	Pseudonym ParticipantID
	From      time.Time // records at or after From
	To        time.Time // records before To
}

// Match reports whether f selects r.
func (f TrailFilter) Match(r TrailRecord) bool {
	if f.Request != "" && r.Request != f.Request {
		return false
	}
	if !f.From.IsZero() && r.Time.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !r.Time.Before(f.To) {
		return false
	}
	if p := f.Pseudonym; p != "" && r.Actor != p && r.Pseudonym != p && r.To != p && !slices.Contains(r.uses, p) {
		return false
	}
	return true
}

// TrailWriter writes trail records in an export format.
type TrailWriter interface {
	Write(TrailRecord) error
	// Flush writes out anything buffered (and a CSV header, if no record
	// was written).
	Flush() error
}

// NewTrailJSONL returns a writer of JSON Lines: one TrailRecord object
// per line.
func NewTrailJSONL(w io.Writer) TrailWriter {
	bw := bufio.NewWriter(w)
	return &jsonlWriter{bw: bw, enc: json.NewEncoder(bw)}
}

type jsonlWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func (w *jsonlWriter) Write(r TrailRecord) error {
	if err := w.enc.Encode(r); err != nil {
		return fmt.Errorf("write trail record %s: %w", r.TxID, err)
	}
	return nil
}

func (w *jsonlWriter) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write trail: %w", err)
	}
	return nil
}

// TrailCSVHeader is the header row of NewTrailCSV, one column per
// TrailRecord field; epsilon is in millionths, times are RFC 3339 in UTC.
func TrailCSVHeader() []string {
	return []string{"height", "time", "tx", "fn", "actor", "event", "participant", "sponsor", "request", "licence",
		"pseudonym", "custodian", "query", "licences", "licences_digest", "epsilon_millionths", "amount", "to",
		"status", "notebook_run", "dataset"}
}

// NewTrailCSV returns a writer of CSV (RFC 4180) with a TrailCSVHeader
// header row.
func NewTrailCSV(w io.Writer) TrailWriter { return &csvWriter{w: csv.NewWriter(w)} }

type csvWriter struct {
	w      *csv.Writer
	header bool
}

func (w *csvWriter) writeHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	return w.w.Write(TrailCSVHeader())
}

func (w *csvWriter) Write(r TrailRecord) error {
	if err := w.writeHeader(); err != nil {
		return fmt.Errorf("write trail header: %w", err)
	}
	num := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	row := []string{strconv.FormatUint(r.Height, 10), r.Time.UTC().Format(time.RFC3339Nano), r.TxID, r.Fn, string(r.Actor),
		r.Event, string(r.Participant), string(r.Sponsor), string(r.Request), string(r.Licence), string(r.Pseudonym),
		string(r.Custodian), string(r.Query), num(r.Licences), r.LicencesDigest, num(int64(r.Epsilon)), num(int64(r.Amount)),
		string(r.To), r.Status, string(r.NotebookRun), string(r.Dataset)}
	if err := w.w.Write(row); err != nil {
		return fmt.Errorf("write trail record %s: %w", r.TxID, err)
	}
	return nil
}

func (w *csvWriter) Flush() error {
	if err := w.writeHeader(); err != nil {
		return fmt.Errorf("write trail header: %w", err)
	}
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("write trail: %w", err)
	}
	return nil
}
