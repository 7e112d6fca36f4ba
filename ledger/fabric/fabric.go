// Package fabric is MedX's Hyperledger Fabric backend: it moves the
// contract's transactions through a Fabric Gateway peer with
// fabric-gateway, running the chaincode of ledger/fabric/chaincode.
// Submits whose reads conflict with a concurrent commit (MVCC or phantom
// read conflicts) are retried as new transactions; every error names its
// transaction id and stage and keeps the contract's sentinel; Listen
// follows the chaincode events from a checkpoint.
package fabric

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric/chaincode"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Options are what a Config file does not say.
type Options struct {
	// Clock, if set, stamps proposals instead of the wall clock: the
	// contract's time is the transaction timestamp, which the client
	// sets. For tests and replays only.
	Clock  func() time.Time
	Logger *slog.Logger // nil = discard
	// DialOptions are added when dialling the peer (a test listener).
	DialOptions []grpc.DialOption
}

// Ledger is the Fabric backend. It is safe for concurrent use.
type Ledger struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	conn    *grpc.ClientConn // owned, when Open dialled it
	gw      *client.Gateway
	network *client.Network
	invokes *client.Contract
	queries *client.Contract

	closeOnce sync.Once
	closeErr  error
}

var _ ledger.Backend = (*Ledger)(nil)

// Open dials the peer of cfg and connects as cfg's identity.
func Open(cfg Config, opts Options) (*Ledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg.TLS {
		tc, err := cfg.tlsConfig()
		if err != nil {
			return nil, fmt.Errorf("fabric: %w", err)
		}
		creds = credentials.NewTLS(tc)
	}
	certPEM, err := loadPEM("cert", cfg.Cert)
	if err != nil {
		return nil, fmt.Errorf("fabric: %w", err)
	}
	cert, err := identity.CertificateFromPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("fabric: cert: %w", err)
	}
	id, err := identity.NewX509Identity(cfg.MSPID, cert)
	if err != nil {
		return nil, fmt.Errorf("fabric: identity: %w", err)
	}
	keyPEM, err := loadPEM("private_key", cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("fabric: %w", err)
	}
	key, err := identity.PrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("fabric: private_key: %w", err)
	}
	sign, err := identity.NewPrivateKeySign(key)
	if err != nil {
		return nil, fmt.Errorf("fabric: private_key: %w", err)
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts.DialOptions...)
	conn, err := grpc.NewClient(cfg.PeerEndpoint, dial...)
	if err != nil {
		return nil, fmt.Errorf("fabric: dial %s: %w", cfg.PeerEndpoint, err)
	}
	l, err := New(conn, id, sign, cfg, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	l.conn = conn
	return l, nil
}

// New connects over an existing gRPC connection (which the caller
// closes) as id, signing with sign. Only cfg's channel, chaincode,
// timeouts, endorsing organisations, event checkpoint file and attempts
// are used.
func New(conn grpc.ClientConnInterface, id identity.Identity, sign identity.Sign, cfg Config, opts Options) (*Ledger, error) {
	if cfg.Channel == "" || cfg.Chaincode == "" {
		return nil, errors.New("fabric: channel and chaincode are required")
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	t := cfg.Timeouts
	gw, err := client.Connect(id,
		client.WithSign(sign),
		client.WithHash(func(m []byte) []byte { d := sha256.Sum256(m); return d[:] }),
		client.WithClientConnection(conn),
		client.WithEvaluateTimeout(t.Evaluate.or(5*time.Second)),
		client.WithEndorseTimeout(t.Endorse.or(15*time.Second)),
		client.WithSubmitTimeout(t.Submit.or(5*time.Second)),
		client.WithCommitStatusTimeout(t.CommitStatus.or(time.Minute)),
	)
	if err != nil {
		return nil, fmt.Errorf("fabric: connect: %w", err)
	}
	nw := gw.GetNetwork(cfg.Channel)
	return &Ledger{
		cfg: cfg, opts: opts, log: opts.Logger, gw: gw, network: nw,
		invokes: nw.GetContract(cfg.Chaincode),
		queries: nw.GetContractWithName(cfg.Chaincode, chaincode.QueryContract),
	}, nil
}

// Close closes the gateway (and the connection Open dialled).
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		err := l.gw.Close()
		if l.conn != nil {
			err = errors.Join(err, l.conn.Close())
		}
		if err != nil {
			l.closeErr = fmt.Errorf("fabric: close: %w", err)
		}
	})
	return l.closeErr
}

// Receipt tells how a submitted transaction committed.
type Receipt struct {
	TxID   string
	Block  uint64
	Result []byte
	// Conflicts are the earlier attempts, each invalidated by a read
	// conflict and retried as a new transaction.
	Conflicts []*CommitError
}

// Submit runs a state-changing contract function and returns its result
// once committed.
func (l *Ledger) Submit(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	r, err := l.SubmitTx(ctx, fn, args...)
	return r.Result, err
}

// SubmitTx is Submit that also says where the transaction committed and
// which attempts conflicted.
func (l *Ledger) SubmitTx(ctx context.Context, fn string, args ...[]byte) (Receipt, error) {
	var r Receipt
	for attempt := 1; ; attempt++ {
		txid, res, st, err := l.submitOnce(ctx, fn, args)
		if err != nil {
			return r, err
		}
		r.TxID = txid
		if st.Successful {
			r.Block, r.Result = st.BlockNumber, res
			return r, nil
		}
		ce := &CommitError{TransactionID: txid, Code: st.Code}
		retry := st.Code == peer.TxValidationCode_MVCC_READ_CONFLICT || st.Code == peer.TxValidationCode_PHANTOM_READ_CONFLICT
		if !retry || attempt >= l.cfg.MaxAttempts {
			return r, &Error{TxID: txid, Fn: fn, Stage: "commit", err: ce, Attempts: attempt}
		}
		r.Conflicts = append(r.Conflicts, ce)
		l.log.DebugContext(ctx, "fabric read conflict, retrying as a new transaction", "fn", fn, "tx", txid, "code", st.Code, "attempt", attempt)
		// A random pause, growing with the attempts (full jitter, capped),
		// spreads out transactions that keep conflicting over one key:
		// Fabric commits at most one update of a key per block.
		pause := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)) + 1))
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return r, &Error{TxID: txid, Fn: fn, Stage: "retry", err: ctx.Err(), Attempts: attempt}
		}
	}
}

// CommitError is a transaction that was ordered but not committed as
// valid (as fabric-gateway's client.CommitError).
type CommitError struct {
	TransactionID string
	Code          peer.TxValidationCode
}

func (e *CommitError) Error() string {
	return fmt.Sprintf("transaction %s failed to commit with status code %d (%s)", e.TransactionID, int32(e.Code), e.Code)
}

// submitOnce endorses, submits and waits for one transaction.
func (l *Ledger) submitOnce(ctx context.Context, fn string, args [][]byte) (string, []byte, *client.Status, error) {
	opts := []client.ProposalOption{client.WithBytesArguments(args...)}
	if len(l.cfg.EndorsingOrgs) > 0 {
		opts = append(opts, client.WithEndorsingOrganizations(l.cfg.EndorsingOrgs...))
	}
	p, err := l.proposal(l.invokes, fn, opts)
	if err != nil {
		return "", nil, nil, &Error{Fn: fn, Stage: "proposal", err: err}
	}
	txid := p.TransactionID()
	tx, err := p.EndorseWithContext(ctx)
	if err != nil {
		return txid, nil, nil, newError(txid, fn, "endorse", err)
	}
	commit, err := tx.SubmitWithContext(ctx)
	if err != nil {
		return txid, nil, nil, newError(txid, fn, "submit", err)
	}
	st, err := commit.StatusWithContext(ctx)
	if err != nil {
		return txid, nil, nil, newError(txid, fn, "commit status", err)
	}
	return txid, tx.Result(), st, nil
}

// Evaluate runs a read-only contract function on the gateway peer.
func (l *Ledger) Evaluate(ctx context.Context, fn string, args ...[]byte) ([]byte, error) {
	p, err := l.proposal(l.queries, fn, []client.ProposalOption{client.WithBytesArguments(args...)})
	if err != nil {
		return nil, &Error{Fn: fn, Stage: "proposal", err: err}
	}
	res, err := p.EvaluateWithContext(ctx)
	if err != nil {
		return nil, newError(p.TransactionID(), fn, "evaluate", err)
	}
	return res, nil
}

// proposal builds a proposal, stamped by the Clock option if set.
func (l *Ledger) proposal(c *client.Contract, fn string, opts []client.ProposalOption) (*client.Proposal, error) {
	p, err := c.NewProposal(fn, opts...)
	if err != nil || l.opts.Clock == nil {
		return p, err
	}
	b, err := p.Bytes()
	if err != nil {
		return nil, err
	}
	b, err = restamp(b, l.opts.Clock())
	if err != nil {
		return nil, err
	}
	return l.gw.NewProposal(b)
}

// restamp sets the channel header timestamp of a serialized proposed
// transaction; the transaction id (nonce and creator) is unchanged.
func restamp(b []byte, at time.Time) ([]byte, error) {
	var pt gateway.ProposedTransaction
	var prop peer.Proposal
	var hdr common.Header
	var chdr common.ChannelHeader
	if err := proto.Unmarshal(b, &pt); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(pt.GetProposal().GetProposalBytes(), &prop); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(prop.Header, &hdr); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(hdr.ChannelHeader, &chdr); err != nil {
		return nil, err
	}
	chdr.Timestamp = timestamppb.New(at)
	var err error
	if hdr.ChannelHeader, err = proto.Marshal(&chdr); err != nil {
		return nil, err
	}
	if prop.Header, err = proto.Marshal(&hdr); err != nil {
		return nil, err
	}
	if pt.Proposal.ProposalBytes, err = proto.Marshal(&prop); err != nil {
		return nil, err
	}
	return proto.Marshal(&pt)
}
