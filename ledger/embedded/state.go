package embedded

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sort"
	"sync"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

// Each stored state value is prefixed with a MAC under a key derived from
// the node key, binding it to its key. A value altered in the file (a
// flipped byte, an edit through bbolt) is refused when read, not used.
const macSize = 16

// stateMAC authenticates state values.
type stateMAC struct {
	key []byte
	hs  *sync.Pool // of HMAC states keyed with key, reused across calls
}

func newStateMAC(seed []byte) stateMAC {
	sum := sha256.Sum256(append([]byte("medx/embedded/state-mac/v1"), seed...))
	key := sum[:]
	return stateMAC{key: key, hs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

func (m stateMAC) sum(k string, v []byte) []byte {
	h := m.hs.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(k))
	h.Write([]byte{0})
	h.Write(v)
	var out [sha256.Size]byte
	sum := h.Sum(out[:0])
	m.hs.Put(h)
	return sum[:macSize]
}

// seal returns the stored form of v.
func (m stateMAC) seal(k string, v []byte) []byte {
	out := make([]byte, 0, macSize+len(v))
	out = append(out, m.sum(k, v)...)
	return append(out, v...)
}

// check checks a stored value and returns its payload, not copied.
func (m stateMAC) check(k string, stored []byte) ([]byte, error) {
	if len(stored) < macSize || !hmac.Equal(stored[:macSize], m.sum(k, stored[macSize:])) {
		return nil, fmt.Errorf("state value at %q fails its integrity check: %w", k, ErrCorrupt)
	}
	return stored[macSize:], nil
}

// open checks a stored value and returns a copy of its payload.
func (m stateMAC) open(k string, stored []byte) ([]byte, error) {
	v, err := m.check(k, stored)
	return bytes.Clone(v), err
}

// boltState is the contract's State over the state bucket of a bbolt
// transaction. In a read-only transaction Put and Delete fail.
type boltState struct {
	b   *bolt.Bucket
	mac stateMAC
}

var _ ledger.State = boltState{}

func (s boltState) Get(k string) ([]byte, error) {
	v := s.b.Get([]byte(k))
	if v == nil {
		return nil, nil
	}
	return s.mac.open(k, v)
}

func (s boltState) Put(k string, v []byte) error {
	if k == "" {
		return errors.New("empty state key")
	}
	if err := s.b.Put([]byte(k), s.mac.seal(k, v)); err != nil {
		return fmt.Errorf("put %q: %w", k, err)
	}
	return nil
}

func (s boltState) Delete(k string) error {
	if err := s.b.Delete([]byte(k)); err != nil {
		return fmt.Errorf("delete %q: %w", k, err)
	}
	return nil
}

func (s boltState) Range(start, end string, fn func(string, []byte) (bool, error)) error {
	c := s.b.Cursor()
	for k, v := c.Seek([]byte(start)); k != nil; k, v = c.Next() {
		ks := string(k)
		if end != "" && ks >= end {
			return nil
		}
		val, err := s.mac.open(ks, v)
		if err != nil {
			return err
		}
		more, err := fn(ks, val)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// overlay buffers one transaction's writes over a base State. Reads see
// the base plus the buffer; flush applies the buffer in key order, and
// dropping the overlay discards a failed transaction's writes.
type overlay struct {
	base   ledger.State
	writes map[string]*[]byte // nil pointer: deleted
}

func newOverlay(base ledger.State) *overlay {
	return &overlay{base: base, writes: make(map[string]*[]byte)}
}

func (o *overlay) Get(k string) ([]byte, error) {
	if w, ok := o.writes[k]; ok {
		if w == nil {
			return nil, nil
		}
		return bytes.Clone(*w), nil
	}
	return o.base.Get(k)
}

func (o *overlay) Put(k string, v []byte) error {
	if k == "" {
		return errors.New("empty state key")
	}
	c := bytes.Clone(v)
	if c == nil {
		c = []byte{}
	}
	o.writes[k] = &c
	return nil
}

func (o *overlay) Delete(k string) error {
	o.writes[k] = nil
	return nil
}

// sortedWrites returns the buffered keys in [start, end), sorted.
func (o *overlay) sortedWrites(start, end string) []string {
	var ks []string
	for k := range o.writes {
		if k >= start && (end == "" || k < end) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

func (o *overlay) Range(start, end string, fn func(string, []byte) (bool, error)) error {
	pending := o.sortedWrites(start, end)
	stopped := false
	// emit yields buffered keys below limit ("" = all).
	emit := func(limit string) (bool, error) {
		for len(pending) > 0 && (limit == "" || pending[0] < limit) {
			k := pending[0]
			pending = pending[1:]
			if w := o.writes[k]; w != nil {
				if more, err := fn(k, bytes.Clone(*w)); err != nil || !more {
					return false, err
				}
			}
		}
		return true, nil
	}
	err := o.base.Range(start, end, func(k string, v []byte) (bool, error) {
		more, err := emit(k)
		if err != nil || !more {
			stopped = true
			return false, err
		}
		if _, ok := o.writes[k]; ok {
			if len(pending) > 0 && pending[0] == k {
				pending = pending[1:]
			}
			w := o.writes[k]
			if w == nil {
				return true, nil
			}
			v = bytes.Clone(*w)
		}
		more, err = fn(k, v)
		if err != nil || !more {
			stopped = true
		}
		return more, err
	})
	if err != nil || stopped {
		return err
	}
	_, err = emit("")
	return err
}

// mergeInto moves the buffered writes into parent, an overlay the
// transaction's overlay is stacked on: the same as flush when the base is
// parent, without copying or sorting. o must not be used afterwards.
func (o *overlay) mergeInto(parent *overlay) {
	for k, w := range o.writes {
		parent.writes[k] = w
	}
	o.writes = nil
}

// flush applies the buffered writes to the base in key order.
func (o *overlay) flush() error {
	for _, k := range o.sortedWrites("", "") {
		var err error
		if w := o.writes[k]; w == nil {
			err = o.base.Delete(k)
		} else {
			err = o.base.Put(k, *w)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
