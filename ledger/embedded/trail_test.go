package embedded

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
)

func TestTrailExport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, s := newStory(t, path)
	var live []ledger.TrailRecord
	if err := l.Trail(t.Context(), ledger.TrailFilter{}, func(r ledger.TrailRecord) error {
		live = append(live, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	height := l.Height()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if int64(len(live)) != int64(height) { // one transaction per block in the story
		t.Fatalf("Trail gave %d records for %d transactions", len(live), height)
	}

	// Both formats, from the bare file, hold the same records.
	var jl, cs bytes.Buffer
	jw, cw := ledger.NewTrailJSONL(&jl), ledger.NewTrailCSV(&cs)
	if err := TrailFile(t.Context(), copyFile(t, path), ledger.TrailFilter{}, func(r ledger.TrailRecord) error {
		if err := jw.Write(r); err != nil {
			return err
		}
		return cw.Write(r)
	}); err != nil {
		t.Fatal(err)
	}
	if err := jw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := cw.Flush(); err != nil {
		t.Fatal(err)
	}
	var fromJSON []ledger.TrailRecord
	sc := bufio.NewScanner(&jl)
	for sc.Scan() {
		var r ledger.TrailRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("JSON line %q: %v", sc.Text(), err)
		}
		fromJSON = append(fromJSON, r)
	}
	if diff := cmp.Diff(live, fromJSON, cmp.AllowUnexported(ledger.TrailRecord{}), cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".uses"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("JSON Lines from the file differ from the live trail (-live +file):\n%s", diff)
	}
	rows, err := csv.NewReader(bytes.NewReader(cs.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ledger.TrailCSVHeader(), rows[0]); diff != "" {
		t.Errorf("CSV header (-want +got):\n%s", diff)
	}
	if len(rows) != len(live)+1 {
		t.Fatalf("CSV has %d rows, want a header and %d records", len(rows), len(live))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for i, r := range live {
		row := rows[i+1]
		if row[col["tx"]] != r.TxID || row[col["fn"]] != r.Fn || row[col["actor"]] != string(r.Actor) ||
			row[col["height"]] != strconv.FormatUint(r.Height, 10) || row[col["request"]] != string(r.Request) ||
			row[col["pseudonym"]] != string(r.Pseudonym) || row[col["time"]] != r.Time.Format(time.RFC3339Nano) {
			t.Errorf("CSV row %d = %q, want record %+v", i+1, row, r)
		}
	}

	// What the trail says about the story.
	byFn := map[string][]ledger.TrailRecord{}
	for _, r := range live {
		byFn[r.Fn] = append(byFn[r.Fn], r)
	}
	if a := byFn[ledger.FnAcceptOffer]; len(a) != 4 || a[0].Pseudonym != s.patients[0].ID || a[0].Licence != s.licences[0].ID ||
		a[0].Amount != 7 || a[0].Custodian != s.w.cust.ID || a[0].Request != s.study.ID {
		t.Errorf("acceptance records %+v", a)
	}
	if q := byFn[ledger.FnAuthorizeQuery]; len(q) != 1 || q[0].Query != s.query.Query.ID || q[0].Epsilon != 250_000 ||
		q[0].LicencesDigest != s.query.Query.LicencesDigest || q[0].Licences != 3 {
		t.Errorf("query record %+v, want query %s, epsilon 250000, 3 licences", q, s.query.Query.ID)
	}
	if m := byFn[ledger.FnMint]; len(m) != 1 || m[0].To != s.w.sponsor.ID || m[0].Amount != 1_000_000 || m[0].Actor != s.w.op.ID {
		t.Errorf("mint record %+v", m)
	}
	if x := byFn[ledger.FnExpireRequest]; len(x) != 1 || x[0].Status != "expired" || x[0].Amount != 42 {
		t.Errorf("expiry record %+v, want expired with 6 places of 7 refunded", x)
	}
	// No names or free text: the cast registered with "Raw Name ...", the
	// study's purpose is "glycaemic control".
	for name, out := range map[string]string{"JSON Lines": jl.String(), "CSV": cs.String()} {
		for _, private := range []string{"Raw Name", "glycaemic control", "changed plans", "s3://"} {
			if strings.Contains(out, private) {
				t.Errorf("%s export contains %q", name, private)
			}
		}
	}
}

func TestTrailFilters(t *testing.T) {
	l, s := newStory(t, filepath.Join(t.TempDir(), "ledger.db"))
	start := storyStart()
	fns := func(f ledger.TrailFilter) []string {
		t.Helper()
		var out []string
		if err := l.Trail(t.Context(), f, func(r ledger.TrailRecord) error {
			out = append(out, r.Fn)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	accept, revoke, authorize, complete, transfer := ledger.FnAcceptOffer, ledger.FnRevokeLicence, ledger.FnAuthorizeQuery, ledger.FnCompleteQuery, ledger.FnTransfer
	tests := []struct {
		name string
		f    ledger.TrailFilter
		want []string
	}{
		{"the study", ledger.TrailFilter{Request: s.study.ID}, []string{ledger.FnPostRequest, ledger.FnApproveRequest,
			accept, accept, accept, accept, revoke, authorize, complete, ledger.FnExpireRequest}},
		{"the closed request", ledger.TrailFilter{Request: s.closed.ID}, []string{ledger.FnPostRequest, ledger.FnCloseRequest}},
		{"a patient whose licence a query used, who spent", ledger.TrailFilter{Pseudonym: s.patients[0].ID}, []string{accept, authorize, complete, transfer}},
		{"a patient who revoked before the query", ledger.TrailFilter{Pseudonym: s.patients[1].ID}, []string{accept, revoke}},
		{"a patient and a time range", ledger.TrailFilter{Pseudonym: s.patients[0].ID, From: start.Add(2 * time.Hour)}, []string{authorize, complete, transfer}},
		{"a time range", ledger.TrailFilter{From: start.Add(time.Hour), To: start.Add(3 * time.Hour)}, []string{accept, accept}},
		{"a request and a time range", ledger.TrailFilter{Request: s.study.ID, To: start.Add(time.Hour)}, []string{ledger.FnPostRequest, ledger.FnApproveRequest}},
		{"an unknown pseudonym", ledger.TrailFilter{Pseudonym: "pn-nobody"}, nil},
		{"an empty time range", ledger.TrailFilter{From: start.Add(time.Hour), To: start.Add(time.Hour)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, fns(tc.f)); diff != "" {
				t.Errorf("Trail(%+v) functions (-want +got):\n%s", tc.f, diff)
			}
		})
	}
}
