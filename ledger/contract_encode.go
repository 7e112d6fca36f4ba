package ledger

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
)

// Records an acceptance writes (Participant, Licence) and every event's
// EventPayload are encoded by appending, without encoding/json's
// reflection, when all their strings are plain (printable ASCII needing
// no escape) and all their times are UTC within years 0-9999. The bytes
// are then exactly json.Marshal's; anything else goes through
// json.Marshal itself.

// jsonOut appends JSON in json.Marshal's form; plain is false once a value
// needed more than the fast path knows, and the output is then discarded.
type jsonOut struct {
	b     []byte
	plain bool
	first bool // no field written yet in the current object
}

func newJSONOut(n int) *jsonOut { return &jsonOut{b: make([]byte, 0, n), plain: true} }

func (o *jsonOut) open() { o.b = append(o.b, '{'); o.first = true }

func (o *jsonOut) close() { o.b = append(o.b, '}'); o.first = false }

// name appends a field's name (a constant of plain characters).
func (o *jsonOut) name(n string) {
	if !o.first {
		o.b = append(o.b, ',')
	}
	o.first = false
	o.b = append(o.b, '"')
	o.b = append(o.b, n...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonOut) str(s string) {
	for i := 0; i < len(s); i++ {
		if ch := s[i]; ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' || ch == '<' || ch == '>' || ch == '&' {
			o.plain = false
			return
		}
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, s...)
	o.b = append(o.b, '"')
}

func (o *jsonOut) strField(n, s string) { o.name(n); o.str(s) }

// strOmit is a string field with omitempty.
func (o *jsonOut) strOmit(n, s string) {
	if s != "" {
		o.strField(n, s)
	}
}

func (o *jsonOut) intField(n string, v int64) { o.name(n); o.b = strconv.AppendInt(o.b, v, 10) }

// intOmit is an integer field with omitempty.
func (o *jsonOut) intOmit(n string, v int64) {
	if v != 0 {
		o.intField(n, v)
	}
}

func (o *jsonOut) bytesField(n string, v []byte) {
	o.name(n)
	if v == nil {
		o.b = append(o.b, "null"...)
		return
	}
	o.b = append(o.b, '"')
	o.b = base64.StdEncoding.AppendEncode(o.b, v)
	o.b = append(o.b, '"')
}

func (o *jsonOut) timeField(n string, t time.Time) {
	if t.Location() != time.UTC || t.Year() < 0 || t.Year() > 9999 {
		o.plain = false
		return
	}
	o.name(n)
	o.b = append(o.b, '"')
	o.b = t.AppendFormat(o.b, time.RFC3339Nano)
	o.b = append(o.b, '"')
}

func (o *jsonOut) strsField(n string, v []string) {
	o.name(n)
	if v == nil {
		o.b = append(o.b, "null"...)
		return
	}
	o.b = append(o.b, '[')
	for i, s := range v {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.str(s)
	}
	o.b = append(o.b, ']')
}

// result returns the appended bytes, or json.Marshal(v) if they are not
// plain.
func (o *jsonOut) result(v any) ([]byte, error) {
	if o.plain {
		return o.b, nil
	}
	return json.Marshal(v)
}

// encodeFast appends v with app into a buffer of size bytes, falling back
// to json.Marshal(v) when v is not plain.
func encodeFast[T any](v T, size int, app func(*jsonOut, T)) ([]byte, error) {
	o := newJSONOut(size)
	app(o, v)
	return o.result(v)
}

func encodeParticipant(p Participant) ([]byte, error) {
	return encodeFast(p, 160+len(p.Name), appendParticipant)
}

func appendParticipant(o *jsonOut, p Participant) {
	o.open()
	o.strField("id", string(p.ID))
	o.strField("role", string(p.Role))
	o.strOmit("name", p.Name)
	o.bytesField("publicKey", p.PublicKey)
	o.strOmit("custodian", string(p.Custodian))
	o.timeField("registered", p.Registered)
	o.close()
}

func encodeLicence(l Licence) ([]byte, error) { return encodeFast(l, 320, appendLicence) }

func appendLicence(o *jsonOut, l Licence) {
	if l.Revoked != nil {
		o.plain = false
		return
	}
	o.open()
	o.strField("id", string(l.ID))
	o.strField("request", string(l.Request))
	o.strField("patient", string(l.Patient))
	o.strField("custodian", string(l.Custodian))
	o.strsField("scope", l.Scope)
	o.intField("reward", int64(l.Reward))
	o.timeField("granted", l.Granted)
	o.timeField("expires", l.Expires)
	o.close()
}

func encodeEventPayload(p EventPayload) ([]byte, error) {
	return encodeFast(p, 256, appendEventPayload)
}

func appendEventPayload(o *jsonOut, p EventPayload) {
	o.open()
	o.strOmit("participant", string(p.Participant))
	o.strOmit("request", string(p.Request))
	o.strOmit("sponsor", string(p.Sponsor))
	o.strOmit("licence", string(p.Licence))
	o.strOmit("patient", string(p.Patient))
	o.strOmit("custodian", string(p.Custodian))
	o.strOmit("query", string(p.Query))
	o.strOmit("notebookRun", string(p.NotebookRun))
	o.strOmit("dataset", string(p.Dataset))
	o.strOmit("feasibility", string(p.Feasibility))
	o.intOmit("amount", int64(p.Amount))
	o.intOmit("licences", p.Licences)
	o.strOmit("licencesDigest", p.LicencesDigest)
	o.intOmit("epsilon", int64(p.Epsilon))
	o.strOmit("status", p.Status)
	o.close()
}
