package fabrictest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/gateway"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// gatewayServer is the Gateway service of the network's one peer.
type gatewayServer struct {
	gateway.UnimplementedGatewayServer
	n *Network
}

// proposal is a signed proposal unpacked and checked as a peer's
// endorser checks it (core/endorser/msgvalidation.go).
type proposal struct {
	signed  *peer.SignedProposal
	header  *common.Header
	chdr    *common.ChannelHeader
	shdr    *common.SignatureHeader
	cis     *peer.ChaincodeInvocationSpec
	cppNoTM []byte // the ChaincodeProposalPayload without its transient map
	hash    []byte
}

// endorserError is a refusal by the endorser: the gateway reports it in
// an ErrorDetail.
type endorserError struct{ msg string }

func (e *endorserError) Error() string { return e.msg }

func refuse(format string, args ...any) error { return &endorserError{fmt.Sprintf(format, args...)} }

// unpack parses and validates a signed proposal.
func (g *gatewayServer) unpack(sp *peer.SignedProposal) (*proposal, error) {
	n := g.n
	p := &proposal{signed: sp, header: &common.Header{}, chdr: &common.ChannelHeader{}, shdr: &common.SignatureHeader{}, cis: &peer.ChaincodeInvocationSpec{}}
	var prop peer.Proposal
	var cpp peer.ChaincodeProposalPayload
	var ext peer.ChaincodeHeaderExtension
	if err := proto.Unmarshal(sp.GetProposalBytes(), &prop); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "failed to unpack transaction proposal: error unmarshalling Proposal: %v", err)
	}
	steps := []struct {
		b func() []byte
		m proto.Message
	}{
		{func() []byte { return prop.Header }, p.header},
		{p.header.GetChannelHeader, p.chdr},
		{p.header.GetSignatureHeader, p.shdr},
		{func() []byte { return prop.Payload }, &cpp},
		{func() []byte { return cpp.Input }, p.cis},
		{p.chdr.GetExtension, &ext},
	}
	for _, u := range steps {
		if err := proto.Unmarshal(u.b(), u.m); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "failed to unpack transaction proposal: %v", err)
		}
	}
	if p.chdr.ChannelId != n.Channel {
		return nil, status.Errorf(codes.NotFound, "channel '%s' not found", p.chdr.ChannelId)
	}
	if common.HeaderType(p.chdr.Type) != common.HeaderType_ENDORSER_TRANSACTION {
		return nil, refuse("invalid header type %s", common.HeaderType(p.chdr.Type))
	}
	if p.chdr.Epoch != 0 {
		return nil, refuse("epoch is non-zero")
	}
	if len(p.shdr.Nonce) == 0 {
		return nil, refuse("nonce is empty")
	}
	if len(p.shdr.Creator) == 0 {
		return nil, refuse("creator is empty")
	}
	sum := sha256.Sum256(append(bytes.Clone(p.shdr.Nonce), p.shdr.Creator...))
	if want := hex.EncodeToString(sum[:]); p.chdr.TxId != want {
		return nil, refuse("incorrectly computed txid '%s' -- expected '%s'", p.chdr.TxId, want)
	}
	pub, mspID, err := n.msps.deserialize(p.shdr.Creator)
	if err != nil {
		n.logf("proposal %s: creator refused: %v", p.chdr.TxId, err)
		return nil, refuse("access denied: channel [%s] creator org [%s]", n.Channel, mspID)
	}
	if err := verify(pub, sp.ProposalBytes, sp.Signature); err != nil {
		n.logf("proposal %s: signature refused: %v", p.chdr.TxId, err)
		return nil, refuse("access denied: channel [%s] creator org [%s]", n.Channel, mspID)
	}
	if _, _, done := n.led.status(p.chdr.TxId); done {
		return nil, refuse("duplicate transaction found [%s]. Creator [%x]", p.chdr.TxId, p.shdr.Creator)
	}
	cc := p.cis.GetChaincodeSpec().GetChaincodeId().GetName()
	if cc != n.Chaincode || ext.GetChaincodeId().GetName() != cc {
		return nil, refuse("make sure the chaincode %s has been successfully defined on channel %s and try again: chaincode definition for '%s' not found", cc, n.Channel, cc)
	}
	if p.cppNoTM, err = proto.Marshal(&peer.ChaincodeProposalPayload{Input: cpp.Input}); err != nil {
		return nil, status.Errorf(codes.Internal, "marshal proposal payload: %v", err)
	}
	h := sha256.New()
	h.Write(p.header.ChannelHeader)
	h.Write(p.header.SignatureHeader)
	h.Write(p.cppNoTM)
	p.hash = h.Sum(nil)
	return p, nil
}

// detailed is the gateway's error for an endorser's refusal or a
// chaincode error, with the per-peer detail the client exposes.
func (g *gatewayServer) detailed(code codes.Code, msg, detail string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&gateway.ErrorDetail{Address: g.n.PeerAddress, MspId: g.n.MSPID, Message: detail}); err == nil {
		st = d
	}
	return st.Err()
}

// simulate runs the proposal's chaincode against the committed state.
func (g *gatewayServer) simulate(ctx context.Context, p *proposal) (*peer.Response, *simulation, error) {
	led := g.n.led
	led.mu.RLock()
	defer led.mu.RUnlock()
	sim := newSimulation(p.chdr.TxId, g.n.Chaincode, led.state)
	res, err := g.n.cc.execute(ctx, sim, p.chdr.ChannelId, p.cis.ChaincodeSpec.Input, p.signed)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, nil, refuse("error in simulation: %v", err)
	}
	return res, sim, nil
}

// Evaluate runs a proposal without ordering it.
func (g *gatewayServer) Evaluate(ctx context.Context, req *gateway.EvaluateRequest) (*gateway.EvaluateResponse, error) {
	if req.GetProposedTransaction() == nil {
		return nil, status.Error(codes.InvalidArgument, "an evaluate request is required")
	}
	p, err := g.unpack(req.ProposedTransaction)
	if err == nil {
		var res *peer.Response
		if res, _, err = g.simulate(ctx, p); err == nil {
			if res.Status < 200 || res.Status >= 400 {
				msg := fmt.Sprintf("chaincode response %d, %s", res.Status, res.Message)
				return nil, g.detailed(codes.Unknown, "evaluate call to endorser returned error: "+msg, msg)
			}
			return &gateway.EvaluateResponse{Result: res}, nil
		}
	}
	if e, ok := err.(*endorserError); ok {
		return nil, g.detailed(codes.Unknown, "evaluate call to endorser returned error: "+e.msg, e.msg)
	}
	return nil, err
}

// Endorse simulates a proposal, signs the result as the org's peer and
// returns the transaction envelope for the client to sign.
func (g *gatewayServer) Endorse(ctx context.Context, req *gateway.EndorseRequest) (*gateway.EndorseResponse, error) {
	if req.GetProposedTransaction() == nil {
		return nil, status.Error(codes.InvalidArgument, "an endorse request is required")
	}
	env, err := g.endorse(ctx, req)
	if e, ok := err.(*endorserError); ok {
		return nil, g.detailed(codes.Aborted, "failed to endorse transaction, see attached details for more info", e.msg)
	}
	if err != nil {
		return nil, err
	}
	return &gateway.EndorseResponse{PreparedTransaction: env}, nil
}

func (g *gatewayServer) endorse(ctx context.Context, req *gateway.EndorseRequest) (*common.Envelope, error) {
	n := g.n
	p, err := g.unpack(req.ProposedTransaction)
	if err != nil {
		return nil, err
	}
	if req.TransactionId != p.chdr.TxId || req.ChannelId != p.chdr.ChannelId {
		return nil, status.Errorf(codes.InvalidArgument, "transaction id %q or channel %q do not match the proposal's", req.TransactionId, req.ChannelId)
	}
	for _, org := range req.EndorsingOrganizations {
		if _, ok := n.msps.orgs[org]; !ok {
			return nil, status.Errorf(codes.Unavailable, "no peers available to evaluate chaincode %s in channel %s with endorsing organization %s", n.Chaincode, n.Channel, org)
		}
	}
	res, sim, err := g.simulate(ctx, p)
	if err != nil {
		return nil, err
	}
	if res.Status < 200 || res.Status >= 400 {
		return nil, refuse("chaincode response %d, %s", res.Status, res.Message)
	}
	results, err := sim.rwset()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "rwset: %v", err)
	}
	var events []byte
	if sim.event != nil {
		sim.event.ChaincodeId, sim.event.TxId = n.Chaincode, p.chdr.TxId
		if events, err = proto.Marshal(sim.event); err != nil {
			return nil, status.Errorf(codes.Internal, "event: %v", err)
		}
	}
	ca, err := proto.Marshal(&peer.ChaincodeAction{Results: results, Events: events, Response: res, ChaincodeId: &peer.ChaincodeID{Name: n.Chaincode, Version: "1.0"}})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "chaincode action: %v", err)
	}
	prp, err := proto.Marshal(&peer.ProposalResponsePayload{ProposalHash: p.hash, Extension: ca})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "proposal response payload: %v", err)
	}
	endorser := n.peer.Serialized()
	sig, err := sign(n.peer.Key, append(bytes.Clone(prp), endorser...))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "endorse: %v", err)
	}
	cap, err := proto.Marshal(&peer.ChaincodeActionPayload{
		ChaincodeProposalPayload: p.cppNoTM,
		Action:                   &peer.ChaincodeEndorsedAction{ProposalResponsePayload: prp, Endorsements: []*peer.Endorsement{{Endorser: endorser, Signature: sig}}},
	})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "action payload: %v", err)
	}
	tx, err := proto.Marshal(&peer.Transaction{Actions: []*peer.TransactionAction{{Header: p.header.SignatureHeader, Payload: cap}}})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "transaction: %v", err)
	}
	payload, err := proto.Marshal(&common.Payload{Header: p.header, Data: tx})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "payload: %v", err)
	}
	return &common.Envelope{Payload: payload}, nil
}

// Submit hands a signed transaction to the orderer.
func (g *gatewayServer) Submit(ctx context.Context, req *gateway.SubmitRequest) (*gateway.SubmitResponse, error) {
	env := req.GetPreparedTransaction()
	if env == nil {
		return nil, status.Error(codes.InvalidArgument, "a submit request is required")
	}
	if len(env.Signature) == 0 {
		return nil, status.Error(codes.InvalidArgument, "prepared transaction must be signed")
	}
	if req.ChannelId != g.n.Channel {
		return nil, status.Errorf(codes.NotFound, "channel '%s' not found", req.ChannelId)
	}
	tx, err := g.n.prevalidate(env)
	if err != nil {
		return nil, status.Errorf(codes.Aborted, "received unsuccessful response from orderer: status=BAD_REQUEST, info=%v", err)
	}
	if tx.txid != req.TransactionId {
		return nil, status.Errorf(codes.InvalidArgument, "transaction id %q does not match the envelope's %q", req.TransactionId, tx.txid)
	}
	if err := g.n.led.order(ctx, tx); err != nil {
		return nil, err
	}
	return &gateway.SubmitResponse{}, nil
}

// checkSigned verifies a signed request against the identity inside it.
func (g *gatewayServer) checkSigned(identity, msg, sig []byte) error {
	pub, _, err := g.n.msps.deserialize(identity)
	if err == nil {
		err = verify(pub, msg, sig)
	}
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "%v", err)
	}
	return nil
}

// CommitStatus waits for a transaction's validation code.
func (g *gatewayServer) CommitStatus(ctx context.Context, req *gateway.SignedCommitStatusRequest) (*gateway.CommitStatusResponse, error) {
	var r gateway.CommitStatusRequest
	if err := proto.Unmarshal(req.GetRequest(), &r); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "failed to unmarshal request: %v", err)
	}
	if err := g.checkSigned(r.Identity, req.Request, req.Signature); err != nil {
		return nil, err
	}
	if r.ChannelId != g.n.Channel {
		return nil, status.Errorf(codes.NotFound, "channel '%s' not found", r.ChannelId)
	}
	code, block, err := g.n.led.waitStatus(ctx, r.TransactionId)
	if err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return &gateway.CommitStatusResponse{Result: code, BlockNumber: block}, nil
}

// ChaincodeEvents streams the events of valid transactions, block by block.
func (g *gatewayServer) ChaincodeEvents(req *gateway.SignedChaincodeEventsRequest, stream gateway.Gateway_ChaincodeEventsServer) error {
	var r gateway.ChaincodeEventsRequest
	if err := proto.Unmarshal(req.GetRequest(), &r); err != nil {
		return status.Errorf(codes.InvalidArgument, "failed to unmarshal request: %v", err)
	}
	if err := g.checkSigned(r.Identity, req.Request, req.Signature); err != nil {
		return err
	}
	if r.ChannelId != g.n.Channel {
		return status.Errorf(codes.NotFound, "channel '%s' not found", r.ChannelId)
	}
	led := g.n.led
	next := led.height()
	if s := r.GetStartPosition().GetSpecified(); s != nil {
		next = s.Number
	} else if r.GetStartPosition().GetOldest() != nil {
		next = 0
	}
	after := r.AfterTransactionId
	ctx := stream.Context()
	for {
		b, err := led.block(ctx, next)
		if err != nil {
			return status.FromContextError(err).Err()
		}
		var evs []*peer.ChaincodeEvent
		for _, t := range b.txs {
			if after != "" {
				if t.txid == after {
					after = ""
				}
				continue
			}
			if t.code == peer.TxValidationCode_VALID && t.event != nil && t.event.ChaincodeId == r.ChaincodeId {
				evs = append(evs, t.event)
			}
		}
		if after != "" { // not in the start block: nothing to skip
			after = ""
			evs = evs[:0]
			for _, t := range b.txs {
				if t.code == peer.TxValidationCode_VALID && t.event != nil && t.event.ChaincodeId == r.ChaincodeId {
					evs = append(evs, t.event)
				}
			}
		}
		if len(evs) > 0 {
			if err := stream.Send(&gateway.ChaincodeEventsResponse{BlockNumber: b.num, Events: evs}); err != nil {
				return err
			}
		}
		next++
	}
}
