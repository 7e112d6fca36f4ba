package ledger

import (
	"bytes"
	"slices"
	"sort"
)

// MemState is an in-memory State: for replaying a ledger's history during an
// audit and for tests of the contract itself. It is not safe for concurrent
// use. Writes are visible to later reads at once.
type MemState struct {
	vals   map[string][]byte
	sorted []string // sorted keys, possibly holding deleted ones
	added  []string // keys put since the last sort, unsorted
	dirty  bool     // sorted holds deleted keys
}

// NewMemState returns an empty state.
func NewMemState() *MemState { return NewMemStateSize(0) }

// NewMemStateSize returns an empty state with room for about n keys.
func NewMemStateSize(n int) *MemState {
	return &MemState{vals: make(map[string][]byte, max(n, 0))}
}

var _ State = (*MemState)(nil)

// Get returns a copy of the value at key, or nil, nil when absent.
func (m *MemState) Get(key string) ([]byte, error) {
	v, ok := m.vals[key]
	if !ok {
		return nil, nil
	}
	return bytes.Clone(v), nil
}

// Holds reports whether key is present and, if so, whether its value
// is v (Get cannot tell an absent key from a nil value). It only reads
// the state, so it may run alongside other reads, unlike Range, which may
// first sort the keys; and it copies nothing.
func (m *MemState) Holds(key string, v []byte) (present, equal bool) {
	w, ok := m.vals[key]
	return ok, ok && bytes.Equal(w, v)
}

// Put stores a copy of value at key.
func (m *MemState) Put(key string, value []byte) error {
	if _, ok := m.vals[key]; !ok {
		m.added = append(m.added, key)
	}
	m.vals[key] = bytes.Clone(value)
	return nil
}

// Delete removes key; deleting an absent key is not an error.
func (m *MemState) Delete(key string) error {
	if _, ok := m.vals[key]; ok {
		delete(m.vals, key)
		m.dirty = true
	}
	return nil
}

// Range calls fn for each key in [start, end) in ascending order. An empty
// end means no upper bound (as Fabric's GetStateByRange). fn may write to
// the state; the iteration covers the keys present when Range was called.
func (m *MemState) Range(start, end string, fn func(key string, value []byte) (bool, error)) error {
	m.compact()
	keys := m.sorted
	i := sort.SearchStrings(keys, start)
	for ; i < len(keys); i++ {
		k := keys[i]
		if end != "" && k >= end {
			break
		}
		v, ok := m.vals[k]
		if !ok {
			continue // deleted by fn during this iteration
		}
		more, err := fn(k, bytes.Clone(v))
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// each calls fn for every key and its value (not a copy: fn must not
// change it), in no particular order, until fn returns an error. Like
// Holds it only reads the state.
func (m *MemState) each(fn func(key string, value []byte) error) error {
	for k, v := range m.vals {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of keys.
func (m *MemState) Len() int { return len(m.vals) }

// Clone returns an independent copy of m.
func (m *MemState) Clone() *MemState {
	c := NewMemState()
	for k, v := range m.vals {
		c.vals[k] = bytes.Clone(v)
	}
	m.compact()
	c.sorted = slices.Clone(m.sorted)
	return c
}

// Equal reports whether m and o hold the same keys and values.
func (m *MemState) Equal(o *MemState) bool {
	if len(m.vals) != len(o.vals) {
		return false
	}
	for k, v := range m.vals {
		w, ok := o.vals[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// compact merges the keys added since the last Range into the sorted index
// and drops deleted ones, so a burst of writes costs one merge, not one
// insertion each.
func (m *MemState) compact() {
	if len(m.added) == 0 && !m.dirty {
		return
	}
	sort.Strings(m.added)
	merged := make([]string, 0, len(m.sorted)+len(m.added))
	i, j := 0, 0
	for i < len(m.sorted) || j < len(m.added) {
		var k string
		switch {
		case j == len(m.added) || (i < len(m.sorted) && m.sorted[i] < m.added[j]):
			k = m.sorted[i]
			i++
		case i == len(m.sorted) || m.added[j] < m.sorted[i]:
			k = m.added[j]
			j++
		default: // equal: re-added after a delete
			k = m.sorted[i]
			i++
			j++
		}
		if _, ok := m.vals[k]; ok && (len(merged) == 0 || merged[len(merged)-1] != k) {
			merged = append(merged, k)
		}
	}
	m.sorted, m.added, m.dirty = merged, nil, false
}
