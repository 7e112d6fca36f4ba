// Package fabrictest is a Fabric network in one process, for tests: one
// organisation's peer with its Gateway service on an in-memory gRPC
// listener, checking proposals and signatures as a peer does, running
// real chaincode through the real shim handler (in-process, or as
// chaincode-as-a-service over a loopback gRPC stream), keeping a
// versioned world state that validates MVCC and phantom reads at commit,
// cutting blocks, and serving commit status and chaincode events of valid
// transactions, with the real gateway's error codes.
//
// It stands in for a network the test machines cannot run (see
// notes/fabric.md); ordering, discovery, several organisations, private
// data and LevelDB are simplified away.
package fabrictest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/ledger/rwset/kvrwset"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
)

// Options configure a network. Zero values take the defaults shown.
type Options struct {
	Channel   string // "mychannel"
	Chaincode string // "medx"
	MSPID     string // "Org1MSP"
	// CCaaS runs the chaincode as a shim.ChaincodeServer dialled over
	// gRPC, as a peer with the ccaas builder does; otherwise it runs
	// through shim.StartInProc.
	CCaaS bool
	// ChaincodeAddress, if set, is a chaincode server already running
	// (host:port, without TLS) that the peer dials instead of running the
	// chaincode passed to New, which may then be nil.
	ChaincodeAddress string
	// TLS serves the gateway over TLS with a server certificate for
	// ServerName from the org's TLS CA; MutualTLS also requires a client
	// certificate from that CA.
	TLS, MutualTLS bool
	// BatchTimeout and MaxMessageCount cut blocks as configtx.yaml does
	// (2ms, 100).
	BatchTimeout    time.Duration
	MaxMessageCount int
	// Address, if set ("127.0.0.1:0"), serves the gateway on a TCP
	// listener there, for a client configured by file; otherwise on an
	// in-memory listener reached with DialOption.
	Address string
	// Logf, if set, receives the reasons the peer logs but does not tell
	// the client (why a creator was refused).
	Logf func(format string, args ...any)
}

// Network is a running one-peer network.
type Network struct {
	Channel, Chaincode, MSPID string
	// PeerAddress names the peer in error details; ServerName is the
	// name in its TLS certificate.
	PeerAddress, ServerName string
	CA                      *CA       // the org's MSP root
	TLSCA                   *CA       // the org's TLS root
	User                    *Identity // a client identity of the org
	TLSClient               *Identity // a TLS client certificate (MutualTLS)

	opts Options
	peer *Identity
	msps *msps
	led  *channelLedger
	cc   *ccHost
	lis  *bufconn.Listener // nil with Options.Address
	tcp  net.Listener
	srv  *grpc.Server
}

// Start starts a network running cc and stops it when the test ends.
func Start(t testing.TB, cc shim.Chaincode, opts Options) *Network {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	n, err := New(cc, opts)
	if err != nil {
		t.Fatalf("fabrictest: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// New starts a network running cc. Close stops it.
func New(cc shim.Chaincode, opts Options) (*Network, error) {
	if opts.Channel == "" {
		opts.Channel = "mychannel"
	}
	if opts.Chaincode == "" {
		opts.Chaincode = "medx"
	}
	if opts.MSPID == "" {
		opts.MSPID = "Org1MSP"
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = 2 * time.Millisecond
	}
	if opts.MaxMessageCount <= 0 {
		opts.MaxMessageCount = 100
	}
	n := &Network{Channel: opts.Channel, Chaincode: opts.Chaincode, MSPID: opts.MSPID,
		PeerAddress: "peer0.org1.example.com:7051", ServerName: "peer0.org1.example.com", opts: opts}
	var err error
	if n.CA, err = NewCA("ca.org1.example.com"); err != nil {
		return nil, err
	}
	if n.TLSCA, err = NewCA("tlsca.org1.example.com"); err != nil {
		return nil, err
	}
	if n.peer, err = n.CA.Issue(opts.MSPID, "peer0.org1.example.com", "peer"); err != nil {
		return nil, err
	}
	if n.User, err = n.CA.Issue(opts.MSPID, "User1@org1.example.com", "client"); err != nil {
		return nil, err
	}
	if n.TLSClient, err = n.TLSCA.Issue(opts.MSPID, "User1@org1.example.com", "client"); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(n.CA.Cert)
	n.msps = &msps{orgs: map[string]*mspRoots{opts.MSPID: {id: opts.MSPID, roots: pool}}, known: map[string]*ecdsa.PublicKey{}}
	n.led = newChannelLedger(n)
	switch {
	case opts.ChaincodeAddress != "":
		n.cc, err = dialChaincode(opts.Chaincode, "passthrough:///"+opts.ChaincodeAddress)
	case cc == nil:
		err = errors.New("no chaincode to run")
	case opts.CCaaS:
		n.cc, err = startCCaaS(opts.Chaincode, cc)
	default:
		n.cc, err = startInProc(opts.Chaincode, cc)
	}
	if err != nil {
		n.led.close()
		return nil, err
	}
	var sopts []grpc.ServerOption
	if opts.TLS || opts.MutualTLS {
		srvID, err := n.TLSCA.Issue(opts.MSPID, n.ServerName, "peer", n.ServerName)
		if err != nil {
			n.Close()
			return nil, err
		}
		kp, err := tls.X509KeyPair(srvID.CertPEM, srvID.KeyPEM)
		if err != nil {
			n.Close()
			return nil, err
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
		if opts.MutualTLS {
			roots := x509.NewCertPool()
			roots.AddCert(n.TLSCA.Cert)
			cfg.ClientCAs, cfg.ClientAuth = roots, tls.RequireAndVerifyClientCert
		}
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	var lis net.Listener
	if opts.Address != "" {
		if n.tcp, err = net.Listen("tcp", opts.Address); err != nil {
			n.Close()
			return nil, err
		}
		lis = n.tcp
	} else {
		n.lis = bufconn.Listen(1 << 20)
		lis = n.lis
	}
	n.srv = grpc.NewServer(sopts...)
	gateway.RegisterGatewayServer(n.srv, &gatewayServer{n: n})
	go n.srv.Serve(lis) //nolint:errcheck // ends with Stop
	return n, nil
}

// Close stops the gateway, the orderer and the chaincode.
func (n *Network) Close() {
	if n.srv != nil {
		n.srv.Stop()
	}
	if n.cc != nil {
		n.cc.close()
	}
	n.led.close()
}

// TLS reports whether the gateway serves TLS.
func (n *Network) TLS() bool { return n.opts.TLS || n.opts.MutualTLS }

// Target is the gRPC target to dial (with DialOption).
func (n *Network) Target() string {
	if n.tcp != nil {
		return n.tcp.Addr().String()
	}
	return "passthrough:///" + n.PeerAddress
}

// DialOption connects a gRPC client to the network's in-memory listener
// (nothing with Options.Address).
func (n *Network) DialOption() grpc.DialOption {
	if n.tcp != nil {
		return grpc.EmptyDialOption{}
	}
	return grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return n.lis.DialContext(ctx) })
}

// Dial returns a client connection to the gateway (insecure unless the
// network serves TLS, then trusting TLSCA, with TLSClient under MutualTLS).
func (n *Network) Dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if n.opts.TLS || n.opts.MutualTLS {
		pool := x509.NewCertPool()
		pool.AddCert(n.TLSCA.Cert)
		cfg := &tls.Config{RootCAs: pool, ServerName: n.ServerName, MinVersion: tls.VersionTLS12}
		if n.opts.MutualTLS {
			kp, err := tls.X509KeyPair(n.TLSClient.CertPEM, n.TLSClient.KeyPEM)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{kp}
		}
		creds = credentials.NewTLS(cfg)
	}
	return grpc.NewClient(n.Target(), n.DialOption(), grpc.WithTransportCredentials(creds))
}

// NewUser issues another client identity of the org.
func (n *Network) NewUser(cn string) (*Identity, error) { return n.CA.Issue(n.MSPID, cn, "client") }

// Pause stops cutting blocks: submitted transactions wait in the orderer
// until Resume, which orders them into as few blocks as MaxMessageCount
// allows (to put concurrent transactions into one block).
func (n *Network) Pause() { n.led.setPaused(true) }

// Resume undoes Pause.
func (n *Network) Resume() { n.led.setPaused(false) }

// WaitPending waits until k transactions wait in the orderer.
func (n *Network) WaitPending(ctx context.Context, k int) error {
	for {
		n.led.mu.RLock()
		p := n.led.pending
		n.led.mu.RUnlock()
		if p >= k {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// Height is the number of blocks (the genesis block is block 0).
func (n *Network) Height() uint64 { return n.led.height() }

// TxStatus is one transaction of a committed block.
type TxStatus struct {
	TxID  string
	Block uint64
	Code  peer.TxValidationCode
}

// Transactions returns every ordered transaction with its validation
// code, in commit order.
func (n *Network) Transactions() []TxStatus {
	n.led.mu.RLock()
	defer n.led.mu.RUnlock()
	var out []TxStatus
	for _, b := range n.led.blocks {
		for _, t := range b.txs {
			out = append(out, TxStatus{TxID: t.txid, Block: b.num, Code: t.code})
		}
	}
	return out
}

func (n *Network) logf(format string, args ...any) {
	if n.opts.Logf != nil {
		n.opts.Logf(format, args...)
	}
}

// orderedTx is a submitted transaction, parsed and checked ahead of
// commit as a committer's parallel validation phase does.
type orderedTx struct {
	txid  string
	code  peer.TxValidationCode // VALID or the reason it is not
	kv    *kvrwset.KVRWSet
	event *peer.ChaincodeEvent
}

// prevalidate parses an envelope, checks the creator's signature (an
// error: the orderer refuses it) and the endorsements (a validation code).
func (n *Network) prevalidate(env *common.Envelope) (*orderedTx, error) {
	var pl common.Payload
	var chdr common.ChannelHeader
	var shdr common.SignatureHeader
	if err := proto.Unmarshal(env.Payload, &pl); err != nil {
		return nil, fmt.Errorf("bad payload: %w", err)
	}
	if err := proto.Unmarshal(pl.GetHeader().GetChannelHeader(), &chdr); err != nil {
		return nil, fmt.Errorf("bad channel header: %w", err)
	}
	if err := proto.Unmarshal(pl.GetHeader().GetSignatureHeader(), &shdr); err != nil {
		return nil, fmt.Errorf("bad signature header: %w", err)
	}
	pub, _, err := n.msps.deserialize(shdr.Creator)
	if err == nil {
		err = verify(pub, env.Payload, env.Signature)
	}
	if err != nil {
		return nil, fmt.Errorf("implicit policy evaluation failed - 0 sub-policies were satisfied: %w", err)
	}
	tx := &orderedTx{txid: chdr.TxId, code: peer.TxValidationCode_BAD_PAYLOAD}
	var t peer.Transaction
	var cap peer.ChaincodeActionPayload
	var prp peer.ProposalResponsePayload
	var ca peer.ChaincodeAction
	var rw rwset.TxReadWriteSet
	if proto.Unmarshal(pl.Data, &t) != nil || len(t.Actions) != 1 ||
		proto.Unmarshal(t.Actions[0].Payload, &cap) != nil ||
		proto.Unmarshal(cap.GetAction().GetProposalResponsePayload(), &prp) != nil ||
		proto.Unmarshal(prp.Extension, &ca) != nil || proto.Unmarshal(ca.Results, &rw) != nil {
		return tx, nil
	}
	endorsed := false
	for _, e := range cap.Action.Endorsements {
		epub, _, err := n.msps.deserialize(e.Endorser)
		if err == nil && verify(epub, append(bytes.Clone(cap.Action.ProposalResponsePayload), e.Endorser...), e.Signature) == nil {
			endorsed = true
		}
	}
	if !endorsed {
		tx.code = peer.TxValidationCode_ENDORSEMENT_POLICY_FAILURE
		return tx, nil
	}
	tx.kv = &kvrwset.KVRWSet{}
	for _, ns := range rw.NsRwset {
		if ns.Namespace == n.Chaincode {
			if proto.Unmarshal(ns.Rwset, tx.kv) != nil {
				return tx, nil
			}
		}
	}
	if len(ca.Events) > 0 {
		tx.event = &peer.ChaincodeEvent{}
		if proto.Unmarshal(ca.Events, tx.event) != nil {
			return tx, nil
		}
	}
	tx.code = peer.TxValidationCode_VALID
	return tx, nil
}

type blockTx struct {
	txid  string
	code  peer.TxValidationCode
	event *peer.ChaincodeEvent // of a valid transaction
}

type block struct {
	num uint64
	txs []blockTx
}

type txStatus struct {
	code  peer.TxValidationCode
	block uint64
}

// channelLedger is the channel's orderer and committer.
type channelLedger struct {
	n        *Network
	mu       sync.RWMutex // read: simulations; write: commit
	state    *worldState
	blocks   []*block
	statuses map[string]txStatus
	pending  int
	// committed is closed and replaced when a block commits.
	committed chan struct{}
	queue     chan *orderedTx
	paused    bool
	resume    chan struct{}
	stop      chan struct{}
	stopped   chan struct{}
	once      sync.Once
}

func newChannelLedger(n *Network) *channelLedger {
	l := &channelLedger{
		n: n, state: newWorldState(), blocks: []*block{{num: 0}}, statuses: map[string]txStatus{},
		committed: make(chan struct{}), queue: make(chan *orderedTx, 1<<14),
		stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	go l.orderer()
	return l
}

func (l *channelLedger) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.stopped
}

func (l *channelLedger) height() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return uint64(len(l.blocks))
}

func (l *channelLedger) status(txid string) (peer.TxValidationCode, uint64, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	s, ok := l.statuses[txid]
	return s.code, s.block, ok
}

func (l *channelLedger) order(ctx context.Context, tx *orderedTx) error {
	select {
	case l.queue <- tx:
		// Counted once in the queue, so that a paused orderer that
		// WaitPending saw holding k transactions drains all k into one
		// block. (The queue is buffered: a paused orderer takes no
		// transaction, and the send does not wait for it.)
		l.mu.Lock()
		l.pending++
		l.mu.Unlock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.stop:
		return errors.New("orderer stopped")
	}
}

func (l *channelLedger) setPaused(p bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p && !l.paused {
		l.resume = make(chan struct{})
	}
	if !p && l.paused {
		close(l.resume)
	}
	l.paused = p
}

// orderer cuts blocks on BatchTimeout or MaxMessageCount.
func (l *channelLedger) orderer() {
	defer close(l.stopped)
	max := l.n.opts.MaxMessageCount
	for {
		var batch []*orderedTx
		select {
		case tx := <-l.queue:
			batch = append(batch, tx)
		case <-l.stop:
			return
		}
		timer := time.NewTimer(l.n.opts.BatchTimeout)
	collect:
		for len(batch) < max {
			select {
			case tx := <-l.queue:
				batch = append(batch, tx)
			case <-timer.C:
				break collect
			case <-l.stop:
				timer.Stop()
				return
			}
		}
		timer.Stop()
		l.mu.RLock()
		paused, resume := l.paused, l.resume
		l.mu.RUnlock()
		if paused {
			select {
			case <-resume:
			case <-l.stop:
				return
			}
		drain:
			for len(batch) < max {
				select {
				case tx := <-l.queue:
					batch = append(batch, tx)
				default:
					break drain
				}
			}
		}
		l.commit(batch)
	}
}

// commit validates and applies one block.
func (l *channelLedger) commit(batch []*orderedTx) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &block{num: uint64(len(l.blocks))}
	seen := map[string]bool{}
	for i, tx := range batch {
		code := tx.code
		if code == peer.TxValidationCode_VALID {
			if _, dup := l.statuses[tx.txid]; dup || seen[tx.txid] {
				code = peer.TxValidationCode_DUPLICATE_TXID
			} else {
				code = l.state.conflict(tx.kv)
			}
		}
		bt := blockTx{txid: tx.txid, code: code}
		if code == peer.TxValidationCode_VALID {
			l.state.apply(tx.kv, version{b.num, uint64(i)})
			bt.event = tx.event
		}
		if _, dup := l.statuses[tx.txid]; !dup && !seen[tx.txid] {
			l.statuses[tx.txid] = txStatus{code: code, block: b.num}
		}
		seen[tx.txid] = true
		b.txs = append(b.txs, bt)
	}
	l.blocks = append(l.blocks, b)
	l.pending -= len(batch)
	close(l.committed)
	l.committed = make(chan struct{})
}

// waitStatus waits until txid commits.
func (l *channelLedger) waitStatus(ctx context.Context, txid string) (peer.TxValidationCode, uint64, error) {
	for {
		l.mu.RLock()
		s, ok := l.statuses[txid]
		wait := l.committed
		l.mu.RUnlock()
		if ok {
			return s.code, s.block, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-l.stop:
			return 0, 0, context.Canceled
		}
	}
}

// block waits for block num.
func (l *channelLedger) block(ctx context.Context, num uint64) (*block, error) {
	for {
		l.mu.RLock()
		wait := l.committed
		var b *block
		if num < uint64(len(l.blocks)) {
			b = l.blocks[num]
		}
		l.mu.RUnlock()
		if b != nil {
			return b, nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.stop:
			return nil, context.Canceled
		}
	}
}
