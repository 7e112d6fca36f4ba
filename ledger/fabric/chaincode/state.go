package chaincode

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/medx/medx/ledger"
)

// keySep separates a contract key's type from its attributes ("lic/<request>/<licence>").
const keySep = "/"

// State is ledger.State over a chaincode stub. Contract keys map one to one
// onto composite keys: "lic/<request>/<licence>" is the composite key
// (lic, <request>, <licence>), and a whole-prefix range is a partial
// composite key query, which the peer re-runs at validation (phantom
// reads). Reads see the committed state only, as on every Fabric peer; the
// contract never reads its own writes.
type State struct {
	Stub shim.ChaincodeStubInterface
}

var _ ledger.State = State{}

// CompositeKey returns the composite key of a contract key, and false if
// the key cannot be one (an attribute that is not UTF-8 or holds U+0000):
// no such key can have been written.
func CompositeKey(key string) (string, bool) {
	parts := strings.Split(key, keySep)
	ck, err := shim.CreateCompositeKey(parts[0], parts[1:])
	return ck, err == nil
}

// ContractKey is the inverse of CompositeKey.
func ContractKey(composite string) (string, error) {
	if len(composite) < 2 || composite[0] != 0 || composite[len(composite)-1] != 0 {
		return "", fmt.Errorf("state key %q is not a composite key", composite)
	}
	// "\x00type\x00a1\x00a2\x00" -> "type/a1/a2"
	return strings.ReplaceAll(composite[1:len(composite)-1], "\x00", keySep), nil
}

// Get returns the committed value at key, or nil, nil when absent.
func (s State) Get(key string) ([]byte, error) {
	ck, ok := CompositeKey(key)
	if !ok {
		return nil, nil
	}
	v, err := s.Stub.GetState(ck)
	if err != nil {
		return nil, fmt.Errorf("get state %s: %w", key, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// Put writes value at key in the transaction's write set.
func (s State) Put(key string, value []byte) error {
	ck, ok := CompositeKey(key)
	if !ok {
		return fmt.Errorf("put state %q: not a valid composite key: %w", key, ledger.ErrInvalid)
	}
	if err := s.Stub.PutState(ck, value); err != nil {
		return fmt.Errorf("put state %s: %w", key, err)
	}
	return nil
}

// Delete deletes key in the transaction's write set.
func (s State) Delete(key string) error {
	ck, ok := CompositeKey(key)
	if !ok {
		return nil
	}
	if err := s.Stub.DelState(ck); err != nil {
		return fmt.Errorf("delete state %s: %w", key, err)
	}
	return nil
}

// Range supports what the contract asks for: the keys under a prefix
// ending in "/", up to the key just past that prefix, from the prefix
// itself or from a later start key under it (the feasibility window reads
// "feas/<sponsor>/<from>" onwards). The peer sees, and re-runs at
// validation, the partial composite key query of the whole prefix, so a
// later start only filters what the contract is shown. Keys come back in
// contract-key order.
func (s State) Range(start, end string, fn func(key string, value []byte) (bool, error)) error {
	prefix, ok := rangePrefix(start, end)
	if !ok {
		return fmt.Errorf("range [%q, %q): only ranges up to the end of a whole prefix map onto partial composite keys: %w", start, end, ledger.ErrInvalid)
	}
	parts := strings.Split(strings.TrimSuffix(prefix, keySep), keySep)
	if _, ok := CompositeKey(strings.TrimSuffix(prefix, keySep)); !ok {
		return nil // no key can exist under an invalid prefix
	}
	it, err := s.Stub.GetStateByPartialCompositeKey(parts[0], parts[1:])
	if err != nil {
		return fmt.Errorf("range %s: %w", start, err)
	}
	defer it.Close()
	type kv struct {
		k string
		v []byte
	}
	var kvs []kv
	sorted := true
	for it.HasNext() {
		r, err := it.Next()
		if err != nil {
			return fmt.Errorf("range %s: %w", start, err)
		}
		k, err := ContractKey(r.Key)
		if err != nil {
			return fmt.Errorf("range %s: %w", start, err)
		}
		if n := len(kvs); n > 0 && kvs[n-1].k > k {
			sorted = false
		}
		if k < start {
			continue
		}
		kvs = append(kvs, kv{k, r.Value})
	}
	// Composite keys order "a\x00" before "a-b\x00" where contract keys
	// order "a-b/" before "a/"; the contract's order is the one callers see.
	if !sorted {
		slices.SortFunc(kvs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	}
	for _, e := range kvs {
		more, err := fn(e.k, e.v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// rangePrefix returns the prefix P (ending in "/") with start under or
// equal to P and end the key just past every key under P.
func rangePrefix(start, end string) (string, bool) {
	for i := len(start) - 1; i >= 0; i-- {
		if start[i] != keySep[0] {
			continue
		}
		p := start[:i+1]
		if end == p[:i]+string(p[i]+1) {
			return p, true
		}
	}
	return "", false
}
