package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// Bounds of a recordCache: past either it starts again empty.
const (
	maxCachedRecords = 4096
	maxCachedBytes   = 8 << 20
)

// recordCache remembers the records a Contract decoded (participants and
// requests), keyed by state key together with the exact bytes they were
// decoded from: a later read of the same unchanged record costs a map
// lookup and a copy instead of a JSON decoding. A hit gives exactly what
// decoding the bytes gives, so the cache changes no result. Cached values
// are never handed out: every hit returns a deep copy, so no caller can
// change what another one reads. It is safe for concurrent use.
type recordCache struct {
	mu    sync.Mutex
	recs  map[string]cachedRecord
	bytes int
}

type cachedRecord struct {
	raw string // the stored bytes v was decoded from
	v   any    // Participant or Request
}

func newRecordCache() *recordCache { return &recordCache{recs: make(map[string]cachedRecord)} }

// lookup returns the value decoded from raw under k, if it is remembered.
func (rc *recordCache) lookup(k string, raw []byte) (any, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e, ok := rc.recs[k]
	if !ok || e.raw != string(raw) {
		return nil, false
	}
	return e.v, true
}

// store remembers v as decoded from raw under k; v must not be used by
// anyone else afterwards.
func (rc *recordCache) store(k string, raw []byte, v any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if old, ok := rc.recs[k]; ok {
		rc.bytes -= len(k) + len(old.raw)
	}
	if len(rc.recs) >= maxCachedRecords || rc.bytes+len(k)+len(raw) > maxCachedBytes {
		clear(rc.recs)
		rc.bytes = 0
	}
	rc.recs[k] = cachedRecord{raw: string(raw), v: v}
	rc.bytes += len(k) + len(raw)
}

// getCached is getJSON for a record type with a deep copy: through rc
// when it is not nil. It reports whether the record exists.
func getCached[T any](rc *recordCache, st State, k string, clone func(T) T) (T, bool, error) {
	var v T
	b, err := st.Get(k)
	if err != nil {
		return v, false, fmt.Errorf("read %s: %w", k, err)
	}
	if b == nil {
		return v, false, nil
	}
	if rc != nil {
		if c, ok := rc.lookup(k, b); ok {
			return clone(c.(T)), true, nil
		}
	}
	if !decodeCanonicalRecord(&v, b) {
		if err := json.Unmarshal(b, &v); err != nil {
			return v, false, fmt.Errorf("decode %s: %w", k, err)
		}
	}
	if rc != nil {
		rc.store(k, b, clone(v))
	}
	return v, true, nil
}

// cloneParticipant returns a copy of p sharing no memory with it.
func cloneParticipant(p Participant) Participant {
	p.PublicKey = bytes.Clone(p.PublicKey)
	return p
}

// cloneRequest returns a copy of r sharing no mutable memory with it.
func cloneRequest(r Request) Request {
	r.Scope = slices.Clone(r.Scope)
	if r.Approval != nil {
		a := *r.Approval
		r.Approval = &a
	}
	if r.Decision != nil {
		d := *r.Decision
		r.Decision = &d
	}
	return r
}

func readParticipant(rc *recordCache, st State, id ParticipantID) (Participant, error) {
	p, ok, err := getCached(rc, st, key(pParticipant, string(id)), cloneParticipant)
	if err != nil {
		return Participant{}, err
	}
	if !ok {
		return Participant{}, fmt.Errorf("participant %q: %w", id, ErrNotFound)
	}
	return p, nil
}

func readRequest(rc *recordCache, st State, id RequestID) (Request, error) {
	r, ok, err := getCached(rc, st, key(pRequest, string(id)), cloneRequest)
	if err != nil {
		return Request{}, err
	}
	if !ok {
		return Request{}, fmt.Errorf("request %q: %w", id, ErrNotFound)
	}
	return r, nil
}

// participant reads a participant, through the contract's cache.
func (c *call) participant(id ParticipantID) (Participant, error) {
	return readParticipant(c.cache, c.st, id)
}

// request reads a request record (without its escrow, see withEscrow),
// through the contract's cache.
func (c *call) request(id RequestID) (Request, error) { return readRequest(c.cache, c.st, id) }
