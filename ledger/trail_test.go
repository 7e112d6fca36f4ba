package ledger_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

func TestTrailRecordAndFilter(t *testing.T) {
	at := time.Date(2032, 1, 2, 3, 4, 5, 0, time.UTC)
	sponsor, op, pn, other := signer("acme-pharma"), signer("operator"), pseudonym("trail"), pseudonym("trail-other")
	act := func(s ledger.Signer, fn string, p any) [][]byte {
		t.Helper()
		a, err := s.Sign(fn, p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(a)
		return [][]byte{b}
	}
	ev := func(name string, p ledger.EventPayload) *ledger.Event {
		b, _ := json.Marshal(p)
		return &ledger.Event{Name: name, Payload: b}
	}
	qa := ledger.QueryAuthorization{Query: ledger.QueryRecord{ID: "qry-0000000000000001"}, Licences: []ledger.LicenceRef{{Licence: "lic-1", Patient: pn.ID}}}
	res, _ := json.Marshal(qa)
	var tr ledger.Trail
	auth, err := tr.Record(7, at, "tx7", ledger.FnAuthorizeQuery, act(sponsor, ledger.FnAuthorizeQuery, ledger.QueryDraft{}), res,
		ev(ledger.EventQueryAuthorized, ledger.EventPayload{Request: "req-1", Query: qa.Query.ID, Licences: 1, Epsilon: 5}))
	if err != nil {
		t.Fatal(err)
	}
	done, err := tr.Record(8, at.Add(time.Hour), "tx8", ledger.FnCompleteQuery, act(op, ledger.FnCompleteQuery, ledger.QueryCompletion{}), nil,
		ev(ledger.EventQueryCompleted, ledger.EventPayload{Request: "req-1", Query: qa.Query.ID}))
	if err != nil {
		t.Fatal(err)
	}
	pay, err := tr.Record(9, at.Add(2*time.Hour), "tx9", ledger.FnTransfer, act(sponsor, ledger.FnTransfer, ledger.TransferArgs{To: other.ID, Amount: 3}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth.Actor != sponsor.ID || auth.Query != qa.Query.ID || auth.Epsilon != 5 || auth.Request != "req-1" || auth.Time != at || auth.Height != 7 {
		t.Errorf("authorisation record = %+v", auth)
	}
	if pay.To != other.ID || pay.Amount != 3 || pay.Event != "" {
		t.Errorf("transfer record = %+v", pay)
	}
	if _, err := tr.Record(1, at, "bad", ledger.FnMint, [][]byte{[]byte("{")}, nil, nil); err == nil {
		t.Error("Record of a malformed action succeeded")
	}

	tests := []struct {
		name string
		f    ledger.TrailFilter
		want []bool // auth, done, pay
	}{
		{"everything", ledger.TrailFilter{}, []bool{true, true, true}},
		{"request", ledger.TrailFilter{Request: "req-1"}, []bool{true, true, false}},
		{"other request", ledger.TrailFilter{Request: "req-2"}, []bool{false, false, false}},
		{"pseudonym whose licence the query used", ledger.TrailFilter{Pseudonym: pn.ID}, []bool{true, true, false}},
		{"pseudonym paid", ledger.TrailFilter{Pseudonym: other.ID}, []bool{false, false, true}},
		{"from", ledger.TrailFilter{From: at.Add(time.Hour)}, []bool{false, true, true}},
		{"to (exclusive)", ledger.TrailFilter{To: at.Add(time.Hour)}, []bool{true, false, false}},
		{"actor", ledger.TrailFilter{Pseudonym: sponsor.ID}, []bool{true, false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i, r := range []ledger.TrailRecord{auth, done, pay} {
				if got := tc.f.Match(r); got != tc.want[i] {
					t.Errorf("Match(%s) = %v, want %v", r.Fn, got, tc.want[i])
				}
			}
		})
	}
}

func TestTrailWriters(t *testing.T) {
	var jl, cs bytes.Buffer
	jw, cw := ledger.NewTrailJSONL(&jl), ledger.NewTrailCSV(&cs)
	for _, w := range []ledger.TrailWriter{jw, cw} {
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if jl.Len() != 0 || strings.TrimSpace(cs.String()) != strings.Join(ledger.TrailCSVHeader(), ",") {
		t.Errorf("empty exports: JSON Lines %q, CSV %q; want nothing and a header", jl.String(), cs.String())
	}
	r := ledger.TrailRecord{Height: 3, Time: time.Date(2032, 1, 2, 3, 4, 5, 6, time.UTC), TxID: "tx", Fn: ledger.FnTransfer, Actor: "acme-pharma", To: "st-marys", Amount: 12}
	for _, w := range []ledger.TrailWriter{jw, cw} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if want := `{"height":3,"time":"2032-01-02T03:04:05.000000006Z","tx":"tx","fn":"Transfer","actor":"acme-pharma","amount":12,"to":"st-marys"}` + "\n"; jl.String() != want {
		t.Errorf("JSON line = %s, want %s", jl.String(), want)
	}
	lines := strings.Split(strings.TrimSpace(cs.String()), "\n")
	if len(lines) != 2 || lines[1] != "3,2032-01-02T03:04:05.000000006Z,tx,Transfer,acme-pharma,,,,,,,,,,,,12,st-marys,,," {
		t.Errorf("CSV = %q", cs.String())
	}
}
