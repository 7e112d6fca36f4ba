package fabrictest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// ccStream is the peer's end of a chaincode stream.
type ccStream interface {
	Send(*peer.ChaincodeMessage) error
	Recv() (*peer.ChaincodeMessage, error)
}

// pipe is a chaincode stream in memory for shim.StartInProc. Every
// message is marshalled and unmarshalled on its way, as on the wire.
type pipe struct {
	in, out chan []byte // in: to the chaincode; out: from it
	done    chan struct{}
	once    sync.Once
}

func newPipe() *pipe {
	return &pipe{in: make(chan []byte, 64), out: make(chan []byte, 64), done: make(chan struct{})}
}

func (p *pipe) close() { p.once.Do(func() { close(p.done) }) }

func send(ch chan []byte, done chan struct{}, m *peer.ChaincodeMessage) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	select {
	case ch <- b:
		return nil
	case <-done:
		return io.EOF
	}
}

func recv(ch chan []byte, done chan struct{}) (*peer.ChaincodeMessage, error) {
	select {
	case b := <-ch:
		m := new(peer.ChaincodeMessage)
		return m, proto.Unmarshal(b, m)
	case <-done:
		return nil, io.EOF
	}
}

// ccSide is the chaincode's end (shim.ClientStream).
type ccSide struct{ p *pipe }

func (s ccSide) Send(m *peer.ChaincodeMessage) error   { return send(s.p.out, s.p.done, m) }
func (s ccSide) Recv() (*peer.ChaincodeMessage, error) { return recv(s.p.in, s.p.done) }
func (s ccSide) CloseSend() error                      { s.p.close(); return nil }

// peerSide is the peer's end.
type peerSide struct{ p *pipe }

func (s peerSide) Send(m *peer.ChaincodeMessage) error   { return send(s.p.in, s.p.done, m) }
func (s peerSide) Recv() (*peer.ChaincodeMessage, error) { return recv(s.p.out, s.p.done) }

// ccHost plays the peer's chaincode support for one connected chaincode:
// it sends transactions and answers the shim's state calls through the
// simulator of each transaction.
type ccHost struct {
	name   string
	stream ccStream
	sendMu sync.Mutex // gRPC streams forbid concurrent Send
	mu     sync.Mutex
	txs    map[string]*simulation // by channel+txid
	closed chan struct{}
	err    error
	stop   func()
}

// startInProc runs cc through shim.StartInProc over an in-memory stream.
func startInProc(name string, cc shim.Chaincode) (*ccHost, error) {
	p := newPipe()
	go shim.StartInProc(name, ccSide{p}, cc) //nolint:errcheck // ends with the pipe
	return connect(name, peerSide{p}, p.close)
}

// startCCaaS serves cc as a shim.ChaincodeServer on a loopback gRPC
// listener and dials it as a peer does with the ccaas builder.
func startCCaaS(name string, cc shim.Chaincode) (*ccHost, error) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	peer.RegisterChaincodeServer(srv, &shim.ChaincodeServer{CCID: name + ":fabrictest", CC: cc})
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	h, err := dialChaincode(name, "passthrough:///chaincode",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		srv.Stop()
		return nil, err
	}
	stop := h.stop
	h.stop = func() { stop(); srv.Stop() }
	return h, nil
}

// dialChaincode connects to a chaincode server at target.
func dialChaincode(name, target string, opts ...grpc.DialOption) (*ccHost, error) {
	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := peer.NewChaincodeClient(conn).Connect(ctx)
	if err != nil {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("connect to chaincode server %s: %w", target, err)
	}
	return connect(name, stream, func() { cancel(); conn.Close() })
}

// connect runs the registration handshake and starts the receive loop.
func connect(name string, s ccStream, stop func()) (*ccHost, error) {
	m, err := s.Recv()
	if err != nil {
		stop()
		return nil, fmt.Errorf("chaincode register: %w", err)
	}
	var id peer.ChaincodeID
	if m.Type != peer.ChaincodeMessage_REGISTER || proto.Unmarshal(m.Payload, &id) != nil {
		stop()
		return nil, fmt.Errorf("chaincode sent %s, want REGISTER", m.Type)
	}
	params, _ := proto.Marshal(&peer.ChaincodeAdditionalParams{UseWriteBatch: true, MaxSizeWriteBatch: 1000})
	h := &ccHost{name: name, stream: s, txs: map[string]*simulation{}, closed: make(chan struct{}), stop: stop}
	for _, t := range []peer.ChaincodeMessage_Type{peer.ChaincodeMessage_REGISTERED, peer.ChaincodeMessage_READY} {
		msg := &peer.ChaincodeMessage{Type: t}
		if t == peer.ChaincodeMessage_READY {
			msg.Payload = params
		}
		if err := h.send(msg); err != nil {
			stop()
			return nil, fmt.Errorf("chaincode handshake: %w", err)
		}
	}
	go h.loop()
	return h, nil
}

func (h *ccHost) send(m *peer.ChaincodeMessage) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	return h.stream.Send(m)
}

func (h *ccHost) close() {
	h.stop()
	<-h.closed
}

// loop dispatches the chaincode's messages to their transactions.
func (h *ccHost) loop() {
	defer close(h.closed)
	for {
		m, err := h.stream.Recv()
		if err != nil {
			h.mu.Lock()
			h.err = fmt.Errorf("chaincode stream: %w", err)
			for _, sim := range h.txs {
				sim.finish(nil, h.err)
			}
			h.txs = map[string]*simulation{}
			h.mu.Unlock()
			return
		}
		if m.Type == peer.ChaincodeMessage_KEEPALIVE {
			continue
		}
		h.mu.Lock()
		sim := h.txs[m.ChannelId+m.Txid]
		h.mu.Unlock()
		if sim == nil {
			continue // a late message for a transaction that is over
		}
		switch m.Type {
		case peer.ChaincodeMessage_COMPLETED:
			var res peer.Response
			if err := proto.Unmarshal(m.Payload, &res); err != nil {
				sim.finish(nil, fmt.Errorf("chaincode response: %w", err))
			} else {
				sim.event = m.ChaincodeEvent
				sim.finish(&res, nil)
			}
		case peer.ChaincodeMessage_ERROR:
			sim.finish(&peer.Response{Status: shim.ERROR, Message: string(m.Payload)}, nil)
		default:
			reply := sim.handle(m)
			reply.Txid, reply.ChannelId = m.Txid, m.ChannelId
			if err := h.send(reply); err != nil {
				sim.finish(nil, err)
			}
		}
	}
}

// execute runs one transaction proposal through the chaincode.
func (h *ccHost) execute(ctx context.Context, sim *simulation, channel string, input *peer.ChaincodeInput, sp *peer.SignedProposal) (*peer.Response, error) {
	payload, err := proto.Marshal(input)
	if err != nil {
		return nil, err
	}
	k := channel + sim.txid
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return nil, h.err
	}
	if _, dup := h.txs[k]; dup {
		h.mu.Unlock()
		return nil, fmt.Errorf("txid: %s(%s) exists", sim.txid, channel)
	}
	h.txs[k] = sim
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.txs, k)
		h.mu.Unlock()
	}()
	if err := h.send(&peer.ChaincodeMessage{Type: peer.ChaincodeMessage_TRANSACTION, Payload: payload, Txid: sim.txid, ChannelId: channel, Proposal: sp}); err != nil {
		return nil, err
	}
	select {
	case <-sim.done:
		return sim.res, sim.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// iterator is a range query in progress, paged as a peer pages it.
type iterator struct {
	info    *rangeRead
	results []kvResult
	next    int
}

const pageSize = 100

func (it *iterator) page(id string) *peer.QueryResponse {
	end := min(it.next+pageSize, len(it.results))
	resp := &peer.QueryResponse{Id: id, HasMore: end < len(it.results)}
	for _, r := range it.results[it.next:end] {
		b, _ := proto.Marshal(r.kv())
		resp.Results = append(resp.Results, &peer.QueryResultBytes{ResultBytes: b})
		it.info.reads = append(it.info.reads, r.read())
	}
	it.next = end
	it.info.exhausted = end == len(it.results)
	return resp
}

func (s *simulation) nextIterID() string {
	s.iterSeq++
	return strconv.Itoa(s.iterSeq)
}

var errUnsupported = errors.New("not supported by fabrictest")
