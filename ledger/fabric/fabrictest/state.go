package fabrictest

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/queryresult"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// version is the height of the transaction that last wrote a key.
type version struct{ block, tx uint64 }

func (v version) proto() *kvrwset.Version {
	return &kvrwset.Version{BlockNum: v.block, TxNum: v.tx}
}

func sameVersion(v *kvrwset.Version, e entry, ok bool) bool {
	if !ok {
		return v == nil
	}
	return v != nil && v.BlockNum == e.ver.block && v.TxNum == e.ver.tx
}

type entry struct {
	value []byte
	ver   version
}

// worldState is one namespace's committed state, LevelDB-like: sorted
// keys, each with the version that wrote it.
type worldState struct {
	vals map[string]entry
	keys []string // sorted
}

func newWorldState() *worldState { return &worldState{vals: map[string]entry{}} }

func (w *worldState) get(k string) (entry, bool) {
	e, ok := w.vals[k]
	return e, ok
}

func (w *worldState) put(k string, v []byte, ver version) {
	if _, ok := w.vals[k]; !ok {
		i := sort.SearchStrings(w.keys, k)
		w.keys = slices.Insert(w.keys, i, k)
	}
	w.vals[k] = entry{value: bytes.Clone(v), ver: ver}
}

func (w *worldState) del(k string) {
	if _, ok := w.vals[k]; !ok {
		return
	}
	delete(w.vals, k)
	i := sort.SearchStrings(w.keys, k)
	w.keys = slices.Delete(w.keys, i, i+1)
}

type kvResult struct {
	ns, key string
	value   []byte
	ver     version
}

func (r kvResult) kv() *queryresult.KV {
	return &queryresult.KV{Namespace: r.ns, Key: r.key, Value: r.value}
}

func (r kvResult) read() *kvrwset.KVRead {
	return &kvrwset.KVRead{Key: r.key, Version: r.ver.proto()}
}

// rangeOf returns the keys in [start, end), end "" meaning unbounded.
func (w *worldState) rangeOf(ns, start, end string) []kvResult {
	var out []kvResult
	for i := sort.SearchStrings(w.keys, start); i < len(w.keys); i++ {
		k := w.keys[i]
		if end != "" && k >= end {
			break
		}
		e := w.vals[k]
		out = append(out, kvResult{ns: ns, key: k, value: e.value, ver: e.ver})
	}
	return out
}

// rangeRead is a range query of a simulation, for phantom validation.
type rangeRead struct {
	start, end string
	reads      []*kvrwset.KVRead
	exhausted  bool
}

// simulation is one transaction's execution against the committed state:
// reads always see committed values (no read-your-writes, as on Fabric),
// the first read of a key records its version, writes are buffered.
type simulation struct {
	txid  string
	ns    string
	state *worldState

	reads   map[string]*kvrwset.KVRead
	writes  map[string]*kvrwset.KVWrite
	ranges  []*rangeRead
	iters   map[string]*iterator
	iterSeq int

	event *peer.ChaincodeEvent
	res   *peer.Response
	err   error
	done  chan struct{}
	once  sync.Once
}

func newSimulation(txid, ns string, st *worldState) *simulation {
	return &simulation{
		txid: txid, ns: ns, state: st,
		reads: map[string]*kvrwset.KVRead{}, writes: map[string]*kvrwset.KVWrite{},
		iters: map[string]*iterator{}, done: make(chan struct{}),
	}
}

func (s *simulation) finish(res *peer.Response, err error) {
	s.once.Do(func() {
		s.res, s.err = res, err
		close(s.done)
	})
}

func reply(payload []byte) *peer.ChaincodeMessage {
	return &peer.ChaincodeMessage{Type: peer.ChaincodeMessage_RESPONSE, Payload: payload}
}

func replyError(format string, args ...any) *peer.ChaincodeMessage {
	return &peer.ChaincodeMessage{Type: peer.ChaincodeMessage_ERROR, Payload: fmt.Appendf(nil, format, args...)}
}

func (s *simulation) read(k string) []byte {
	e, ok := s.state.get(k)
	if _, seen := s.reads[k]; !seen {
		r := &kvrwset.KVRead{Key: k}
		if ok {
			r.Version = e.ver.proto()
		}
		s.reads[k] = r
	}
	if !ok {
		return nil
	}
	return e.value
}

func (s *simulation) write(k string, v []byte, del bool) *peer.ChaincodeMessage {
	if k == "" {
		return replyError("invalid key: empty")
	}
	if !del && len(v) == 0 {
		del = true // an empty value is a delete on Fabric
	}
	s.writes[k] = &kvrwset.KVWrite{Key: k, IsDelete: del, Value: v}
	return reply(nil)
}

// handle answers one state call of the shim.
func (s *simulation) handle(m *peer.ChaincodeMessage) *peer.ChaincodeMessage {
	switch m.Type {
	case peer.ChaincodeMessage_GET_STATE:
		var g peer.GetState
		if err := proto.Unmarshal(m.Payload, &g); err != nil {
			return replyError("unmarshal GetState: %v", err)
		}
		if g.Collection != "" {
			return replyError("private data collections %v", errUnsupported)
		}
		return reply(s.read(g.Key))
	case peer.ChaincodeMessage_PUT_STATE:
		var p peer.PutState
		if err := proto.Unmarshal(m.Payload, &p); err != nil {
			return replyError("unmarshal PutState: %v", err)
		}
		if p.Collection != "" {
			return replyError("private data collections %v", errUnsupported)
		}
		return s.write(p.Key, p.Value, false)
	case peer.ChaincodeMessage_DEL_STATE:
		var d peer.DelState
		if err := proto.Unmarshal(m.Payload, &d); err != nil {
			return replyError("unmarshal DelState: %v", err)
		}
		return s.write(d.Key, nil, true)
	case peer.ChaincodeMessage_WRITE_BATCH_STATE:
		var b peer.WriteBatchState
		if err := proto.Unmarshal(m.Payload, &b); err != nil {
			return replyError("unmarshal WriteBatchState: %v", err)
		}
		for _, r := range b.Rec {
			if r.Collection != "" {
				return replyError("private data collections %v", errUnsupported)
			}
			var res *peer.ChaincodeMessage
			switch r.Type {
			case peer.WriteRecord_PUT_STATE:
				res = s.write(r.Key, r.Value, false)
			case peer.WriteRecord_DEL_STATE:
				res = s.write(r.Key, nil, true)
			default:
				return replyError("write batch record %s %v", r.Type, errUnsupported)
			}
			if res.Type == peer.ChaincodeMessage_ERROR {
				return res
			}
		}
		return reply(nil)
	case peer.ChaincodeMessage_GET_STATE_BY_RANGE:
		var g peer.GetStateByRange
		if err := proto.Unmarshal(m.Payload, &g); err != nil {
			return replyError("unmarshal GetStateByRange: %v", err)
		}
		if g.Collection != "" || len(g.Metadata) > 0 {
			return replyError("private data and paginated range queries %v", errUnsupported)
		}
		info := &rangeRead{start: g.StartKey, end: g.EndKey}
		s.ranges = append(s.ranges, info)
		it := &iterator{info: info, results: s.state.rangeOf(s.ns, g.StartKey, g.EndKey)}
		id := s.nextIterID()
		s.iters[id] = it
		return replyProto(it.page(id))
	case peer.ChaincodeMessage_QUERY_STATE_NEXT:
		var q peer.QueryStateNext
		if err := proto.Unmarshal(m.Payload, &q); err != nil {
			return replyError("unmarshal QueryStateNext: %v", err)
		}
		it, ok := s.iters[q.Id]
		if !ok {
			return replyError("query iterator not found")
		}
		return replyProto(it.page(q.Id))
	case peer.ChaincodeMessage_QUERY_STATE_CLOSE:
		var q peer.QueryStateClose
		if err := proto.Unmarshal(m.Payload, &q); err != nil {
			return replyError("unmarshal QueryStateClose: %v", err)
		}
		delete(s.iters, q.Id)
		return replyProto(&peer.QueryResponse{Id: q.Id})
	case peer.ChaincodeMessage_GET_QUERY_RESULT:
		return replyError("ExecuteQuery not supported for leveldb")
	}
	return replyError("%s %v", m.Type, errUnsupported)
}

func replyProto(m proto.Message) *peer.ChaincodeMessage {
	b, err := proto.Marshal(m)
	if err != nil {
		return replyError("marshal: %v", err)
	}
	return reply(b)
}

// rwset returns the transaction's read-write set, sorted by key as a peer
// sorts it.
func (s *simulation) rwset() ([]byte, error) {
	kv := &kvrwset.KVRWSet{}
	for _, k := range sortedKeys(s.reads) {
		kv.Reads = append(kv.Reads, s.reads[k])
	}
	for _, k := range sortedKeys(s.writes) {
		kv.Writes = append(kv.Writes, s.writes[k])
	}
	for _, r := range s.ranges {
		kv.RangeQueriesInfo = append(kv.RangeQueriesInfo, &kvrwset.RangeQueryInfo{
			StartKey: r.start, EndKey: r.end, ItrExhausted: r.exhausted,
			ReadsInfo: &kvrwset.RangeQueryInfo_RawReads{RawReads: &kvrwset.QueryReads{KvReads: r.reads}},
		})
	}
	b, err := proto.Marshal(kv)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&rwset.TxReadWriteSet{
		DataModel: rwset.TxReadWriteSet_KV,
		NsRwset:   []*rwset.NsReadWriteSet{{Namespace: s.ns, Rwset: b}},
	})
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// conflict validates a transaction's reads against the state as committed
// so far, including earlier valid transactions of the same block.
func (w *worldState) conflict(kv *kvrwset.KVRWSet) peer.TxValidationCode {
	for _, r := range kv.Reads {
		e, ok := w.get(r.Key)
		if !sameVersion(r.Version, e, ok) {
			return peer.TxValidationCode_MVCC_READ_CONFLICT
		}
	}
	for _, q := range kv.RangeQueriesInfo {
		reads := q.GetRawReads().GetKvReads()
		now := w.rangeOf("", q.StartKey, q.EndKey)
		if q.ItrExhausted && len(now) != len(reads) || len(now) < len(reads) {
			return peer.TxValidationCode_PHANTOM_READ_CONFLICT
		}
		for i, r := range reads {
			e := entry{ver: now[i].ver}
			if now[i].key != r.Key || !sameVersion(r.Version, e, true) {
				return peer.TxValidationCode_PHANTOM_READ_CONFLICT
			}
		}
	}
	return peer.TxValidationCode_VALID
}

// apply writes a valid transaction's writes at version ver.
func (w *worldState) apply(kv *kvrwset.KVRWSet, ver version) {
	for _, wr := range kv.Writes {
		if wr.IsDelete {
			w.del(wr.Key)
		} else {
			w.put(wr.Key, wr.Value, ver)
		}
	}
}
