package ledger

import (
	"encoding/base64"
	"strconv"
	"time"
)

// decodeCanonicalAccept decodes an AcceptOffer action, and its payload,
// when b is exactly in the form json.Marshal gives them (the form every
// client sends): fields in declaration order, each once, no whitespace,
// null only for the scope, strings of printable ASCII without escapes,
// integers without fraction or exponent. For such input the result is
// what decodeStrict gives, field by field. It returns false for anything
// else, and the caller then decodes b with decodeStrict, which decides
// what is wrong. This keeps strict decoding's cost (a scan of the action,
// then of the payload, by encoding/json's reflective decoder) off the hot
// path.
func decodeCanonicalAccept(b []byte) (Action, *Acceptance, bool) {
	s := canon{b: b}
	var a Action
	var acc Acceptance
	s.lit(`{"fn":`)
	a.Fn = s.str()
	s.lit(`,"actor":`)
	a.Actor = ParticipantID(s.str())
	s.lit(`,"nonce":`)
	a.Nonce = s.str()
	s.lit(`,"payload":`)
	start := s.i
	s.lit(`{"terms":{"request":`)
	acc.Terms.Request = RequestID(s.str())
	s.lit(`,"scope":`)
	acc.Terms.Scope = s.strs()
	s.lit(`,"licenceSeconds":`)
	acc.Terms.LicenceSeconds = s.int()
	s.lit(`,"reward":`)
	acc.Terms.Reward = Amount(s.int())
	s.lit(`},"publicKey":`)
	acc.PublicKey = s.bytes()
	s.lit(`,"certificate":{"custodian":`)
	acc.Certificate.Custodian = ParticipantID(s.str())
	s.lit(`,"signature":`)
	acc.Certificate.Signature = s.bytes()
	s.lit(`}}`)
	end := s.i
	s.lit(`,"sig":`)
	a.Sig = s.bytes()
	s.lit(`}`)
	if s.bad || s.i != len(b) {
		return Action{}, nil, false
	}
	a.Payload = append([]byte(nil), b[start:end]...)
	return a, &acc, true
}

// canon reads JSON in json.Marshal's canonical form; once bad, it stays
// bad and every read returns a zero value.
type canon struct {
	b   []byte
	i   int
	bad bool
}

// lit consumes exactly t.
func (s *canon) lit(t string) {
	if s.bad || len(s.b)-s.i < len(t) || string(s.b[s.i:s.i+len(t)]) != t {
		s.bad = true
		return
	}
	s.i += len(t)
}

// raw consumes a string literal of printable ASCII other than '"' and
// '\\' and returns its contents, which are then also its value.
func (s *canon) raw() []byte {
	if s.bad || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.bad = true
		return nil
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch ch := s.b[j]; {
		case ch == '"':
			v := s.b[s.i+1 : j]
			s.i = j + 1
			return v
		case ch < 0x20 || ch > 0x7e || ch == '\\':
			s.bad = true
			return nil
		}
	}
	s.bad = true
	return nil
}

func (s *canon) str() string { return string(s.raw()) }

// bytes consumes a base64 string as encoding/json decodes it into a []byte.
func (s *canon) bytes() []byte {
	r := s.raw()
	if s.bad {
		return nil
	}
	v := make([]byte, base64.StdEncoding.DecodedLen(len(r)))
	n, err := base64.StdEncoding.Decode(v, r)
	if err != nil {
		s.bad = true
		return nil
	}
	return v[:n]
}

// strs consumes an array of strings or null; [] gives an empty, non-nil
// slice, null a nil one.
func (s *canon) strs() []string {
	if !s.bad && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return nil
	}
	s.lit(`[`)
	v := []string{}
	if s.bad {
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return v
	}
	for {
		v = append(v, s.str())
		if s.bad || s.i >= len(s.b) {
			s.bad = true
			return nil
		}
		s.i++
		switch s.b[s.i-1] {
		case ']':
			return v
		case ',':
		default:
			s.bad = true
			return nil
		}
	}
}

// int consumes an integer literal without fraction or exponent that fits
// an int64.
func (s *canon) int() int64 {
	if s.bad {
		return 0
	}
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	digits := j
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	if j == digits || s.b[digits] == '0' && j-digits > 1 {
		s.bad = true
		return 0
	}
	n, err := strconv.ParseInt(string(s.b[s.i:j]), 10, 64)
	if err != nil {
		s.bad = true
		return 0
	}
	s.i = j
	return n
}

// decodeCanonicalRecord decodes b into *v, a *Licence or *Participant,
// when b is in the form json.Marshal (and encodeLicence, encodeParticipant)
// gives it, with the result json.Unmarshal gives; it reports false, and
// leaves *v alone, for any other type or form. Summaries and query
// authorisations decode every licence of a request, or of the ledger.
func decodeCanonicalRecord(v any, b []byte) bool {
	s := canon{b: b}
	switch v := v.(type) {
	case *Licence:
		var l Licence
		s.lit(`{"id":`)
		l.ID = LicenceID(s.str())
		s.lit(`,"request":`)
		l.Request = RequestID(s.str())
		s.lit(`,"patient":`)
		l.Patient = ParticipantID(s.str())
		s.lit(`,"custodian":`)
		l.Custodian = ParticipantID(s.str())
		s.lit(`,"scope":`)
		l.Scope = s.strs()
		s.lit(`,"reward":`)
		l.Reward = Amount(s.int())
		s.lit(`,"granted":`)
		l.Granted = s.time()
		s.lit(`,"expires":`)
		l.Expires = s.time()
		if s.try(`,"revoked":`) {
			t := s.time()
			l.Revoked = &t
		}
		s.lit(`}`)
		if s.bad || s.i != len(b) {
			return false
		}
		*v = l
	case *Participant:
		var p Participant
		s.lit(`{"id":`)
		p.ID = ParticipantID(s.str())
		s.lit(`,"role":`)
		p.Role = Role(s.str())
		if s.try(`,"name":`) {
			p.Name = s.str()
		}
		s.lit(`,"publicKey":`)
		if !s.try(`null`) {
			p.PublicKey = s.bytes()
		}
		if s.try(`,"custodian":`) {
			p.Custodian = ParticipantID(s.str())
		}
		s.lit(`,"registered":`)
		p.Registered = s.time()
		s.lit(`}`)
		if s.bad || s.i != len(b) {
			return false
		}
		*v = p
	default:
		return false
	}
	return true
}

// try consumes t if it comes next, and reports whether it did.
func (s *canon) try(t string) bool {
	if s.bad || len(s.b)-s.i < len(t) || string(s.b[s.i:s.i+len(t)]) != t {
		return false
	}
	s.i += len(t)
	return true
}

// time consumes a string literal and decodes it as encoding/json decodes
// a time.Time: with its UnmarshalJSON.
func (s *canon) time() time.Time {
	start := s.i
	s.raw()
	var t time.Time
	if s.bad {
		return t
	}
	if err := t.UnmarshalJSON(s.b[start:s.i]); err != nil {
		s.bad = true
	}
	return t
}
