package ledger

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestRecordCache: a cached read gives what decoding the stored bytes
// gives, whatever earlier readers did to their copies, and follows the
// stored bytes when they change.
func TestRecordCache(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := NewMemState()
	put := func(k string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(k, b); err != nil {
			t.Fatal(err)
		}
	}
	fresh := func(k string, v any) {
		t.Helper()
		if ok, err := getJSON(st, k, v); !ok || err != nil {
			t.Fatalf("getJSON(%s) = %v, %v", k, ok, err)
		}
	}
	req := Request{ID: "req-0123456789abcdef", Sponsor: "acme", Status: StatusOpen, Posted: at,
		RequestDraft: RequestDraft{Title: "t", Scope: []string{"labs", "vitals"}, RewardPerPatient: 2, MaxParticipants: 3},
		Approval:     &Approval{ApprovalTerms: ApprovalTerms{MinCell: 5, EpsilonBudget: 9}, Board: "board", At: at},
		Decision:     &Decision{By: "board", At: at, Reason: "r"}}
	part := Participant{ID: "st-marys", Role: RoleCustodian, PublicKey: []byte{1, 2, 3}, Registered: at}
	put(key(pRequest, string(req.ID)), req)
	put(key(pParticipant, string(part.ID)), part)

	rc := newRecordCache()
	for round := range 3 {
		r, err := readRequest(rc, st, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want Request
		fresh(key(pRequest, string(req.ID)), &want)
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("round %d: cached request %+v, want %+v", round, r, want)
		}
		// A reader scribbling on its copy changes nothing for the next.
		r.Scope[0], r.Approval.EpsilonSpent, r.Decision.Reason, r.Title = "x", 7, "changed", "changed"
		p, err := readParticipant(rc, st, part.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wantP Participant
		fresh(key(pParticipant, string(part.ID)), &wantP)
		if !reflect.DeepEqual(p, wantP) {
			t.Fatalf("round %d: cached participant %+v, want %+v", round, p, wantP)
		}
		p.PublicKey[0] = 9
	}
	if len(rc.recs) != 2 {
		t.Fatalf("%d records cached, want 2", len(rc.recs))
	}
	// New bytes under the same key: the new record.
	req.Status, req.Approval = StatusHalted, nil
	put(key(pRequest, string(req.ID)), req)
	if r, err := readRequest(rc, st, req.ID); err != nil || r.Status != StatusHalted || r.Approval != nil {
		t.Fatalf("after a write: %+v, %v", r, err)
	}
	// Absent and undecodable records are errors, as without the cache.
	if _, err := readRequest(rc, st, "req-none"); !isNotFound(err) {
		t.Fatalf("absent request: %v", err)
	}
	if err := st.Put(key(pParticipant, "broken"), []byte("{")); err != nil {
		t.Fatal(err)
	}
	_, err1 := readParticipant(rc, st, "broken")
	_, err2 := readParticipant(nil, st, "broken")
	if err1 == nil || err1.Error() != err2.Error() {
		t.Fatalf("undecodable record: %v, want %v", err1, err2)
	}
}

// TestRecordCacheBounded: the cache never holds more than its bounds.
func TestRecordCacheBounded(t *testing.T) {
	st := NewMemState()
	rc := newRecordCache()
	for i := range maxCachedRecords + 10 {
		id := ParticipantID(fmt.Sprintf("p-%d", i))
		b, _ := json.Marshal(Participant{ID: id, Role: RoleSponsor})
		if err := st.Put(key(pParticipant, string(id)), b); err != nil {
			t.Fatal(err)
		}
		if _, err := readParticipant(rc, st, id); err != nil {
			t.Fatal(err)
		}
		if len(rc.recs) > maxCachedRecords || rc.bytes > maxCachedBytes {
			t.Fatalf("%d records, %d bytes cached", len(rc.recs), rc.bytes)
		}
	}
}

// TestRecordClonesComplete: the clone functions copy every field that
// can share memory; a new such field must be added to them (and here).
func TestRecordClonesComplete(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want []string // fields of reference kind that the clone copies
	}{
		{Request{}, []string{"Scope", "Approval", "Decision"}},
		{Participant{}, []string{"PublicKey"}},
		{Approval{}, nil},
		{Decision{}, nil},
	} {
		var got []string
		var walk func(reflect.Type)
		walk = func(ty reflect.Type) {
			for i := range ty.NumField() {
				f := ty.Field(i)
				switch {
				case f.Type == reflect.TypeFor[time.Time]():
				case f.Anonymous && f.Type.Kind() == reflect.Struct:
					walk(f.Type)
				case f.Type.Kind() == reflect.Struct:
					t.Errorf("%T.%s: nested struct, check the clone", tc.v, f.Name)
				default:
					switch f.Type.Kind() {
					case reflect.Slice, reflect.Pointer, reflect.Map, reflect.Interface, reflect.Array, reflect.Chan, reflect.Func:
						got = append(got, f.Name)
					}
				}
			}
		}
		walk(reflect.TypeOf(tc.v))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%T: reference fields %v, the clone copies %v", tc.v, got, tc.want)
		}
	}
}
