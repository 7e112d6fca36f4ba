package ledger

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// fill sets every field of the struct v points to from a pool of values
// chosen to hit json.Marshal's special cases: strings needing escapes or
// not valid UTF-8, empty and nil slices, extreme integers, times outside
// UTC or outside years 0-9999.
func fill(rng *rand.Rand, v reflect.Value) {
	plain := []string{"", "acme-pharma", "labs", "x y~", "st-marys", "lic-0123456789abcdef"}
	odd := []string{"<b>", "a&b", "a>b", `"q"`, `back\slash`, "tab\t", "\x00", "é", "\xff", "\u2028", "\x7f"}
	times := []time.Time{{}, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), time.Date(2031, 5, 6, 7, 8, 9, 1, time.UTC), time.Unix(0, 0).UTC(), time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC),
		time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2030, 1, 2, 3, 4, 5, 0, time.Local), time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("far", 25*3600)), time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("UTC", 0)), time.Unix(1e9, 5).UTC()}
	ints := []int64{0, 1, -1, 42, math.MaxInt64, math.MinInt64}
	switch v.Kind() {
	case reflect.String:
		if rng.IntN(8) == 0 {
			v.SetString(odd[rng.IntN(len(odd))])
		} else {
			v.SetString(plain[rng.IntN(len(plain))])
		}
	case reflect.Int64:
		v.SetInt(ints[rng.IntN(len(ints))])
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(times[rng.IntN(len(times))]))
			return
		}
		for i := range v.NumField() {
			fill(rng, v.Field(i))
		}
	case reflect.Pointer:
		if rng.IntN(2) == 0 {
			v.SetZero()
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(rng, v.Elem())
	case reflect.Slice:
		switch n := rng.IntN(4); n {
		case 0:
			v.SetZero()
		default:
			v.Set(reflect.MakeSlice(v.Type(), n-1, n-1))
			for i := range n - 1 {
				fill(rng, v.Index(i))
			}
		}
	case reflect.Uint8:
		v.SetUint(uint64(rng.IntN(256)))
	default:
		panic("fill: unexpected kind " + v.Kind().String())
	}
}

// TestEncodeLikeMarshal: the append encoders give json.Marshal's bytes
// for every value (also when a field is added to a record: fill sets it).
func TestEncodeLikeMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v any, got []byte, err error) {
		t.Helper()
		want, werr := json.Marshal(v)
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("encoding %#v:\n got %s, %v\nwant %s, %v", v, got, err, want, werr)
		}
	}
	fast := map[string]int{}
	count := func(name string, add func(*jsonOut)) {
		o := newJSONOut(0)
		if add(o); o.plain {
			fast[name]++
		}
	}
	for range 20000 {
		var p Participant
		fill(rng, reflect.ValueOf(&p).Elem())
		b, err := encodeParticipant(p)
		check(p, b, err)
		count("participant", func(o *jsonOut) { appendParticipant(o, p) })
		var l Licence
		fill(rng, reflect.ValueOf(&l).Elem())
		b, err = encodeLicence(l)
		check(l, b, err)
		count("licence", func(o *jsonOut) { appendLicence(o, l) })
		var e EventPayload
		fill(rng, reflect.ValueOf(&e).Elem())
		b, err = encodeEventPayload(e)
		check(e, b, err)
		count("event", func(o *jsonOut) { appendEventPayload(o, e) })
	}
	for _, name := range []string{"participant", "licence", "event"} {
		if n := fast[name]; n < 100 || n > 19900 {
			t.Errorf("%s: %d of 20000 random values took the fast path; want both paths exercised", name, n)
		}
	}
	plain := 0
	// The fast path is taken for what acceptances write.
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	p := Participant{ID: "pn-abc", Role: RolePatient, PublicKey: make([]byte, 32), Custodian: "st-marys", Registered: at}
	l := Licence{ID: "lic-0123456789abcdef", Request: "req-0123456789abcdef", Patient: "pn-abc", Custodian: "st-marys", Scope: []string{"labs"}, Reward: 1, Granted: at, Expires: at.Add(time.Hour)}
	e := EventPayload{Request: l.Request, Sponsor: "acme", Licence: l.ID, Patient: l.Patient, Custodian: l.Custodian, Amount: 1}
	for _, add := range []func(*jsonOut){
		func(o *jsonOut) { appendParticipant(o, p) },
		func(o *jsonOut) { appendLicence(o, l) },
		func(o *jsonOut) { appendEventPayload(o, e) },
	} {
		o := newJSONOut(0)
		if add(o); o.plain {
			plain++
		}
	}
	if plain != 3 {
		t.Fatalf("%d of 3 acceptance encodings took the fast path", plain)
	}
}
