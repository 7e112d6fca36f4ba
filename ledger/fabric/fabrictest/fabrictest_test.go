package fabrictest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-gateway/pkg/client"
	"github.com/hyperledger/fabric-gateway/pkg/identity"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/medx/medx/ledger/fabric/fabrictest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kv is a small chaincode for exercising the peer: blind puts, a counter
// (read-modify-write) and a range count.
type kv struct{}

func (kv) Init(shim.ChaincodeStubInterface) *peer.Response { return shim.Success(nil) }

func (kv) Invoke(stub shim.ChaincodeStubInterface) *peer.Response {
	fn, args := stub.GetFunctionAndParameters()
	switch fn {
	case "put":
		if err := stub.PutState(args[0], []byte(args[1])); err != nil {
			return shim.Error(err.Error())
		}
		if err := stub.SetEvent("put", []byte(args[0])); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(nil)
	case "get":
		v, err := stub.GetState(args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success(v)
	case "incr":
		v, err := stub.GetState(args[0])
		if err != nil {
			return shim.Error(err.Error())
		}
		n, _ := strconv.Atoi(string(v))
		if err := stub.PutState(args[0], []byte(strconv.Itoa(n+1))); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success([]byte(strconv.Itoa(n + 1)))
	case "count":
		it, err := stub.GetStateByRange(args[0], args[1])
		if err != nil {
			return shim.Error(err.Error())
		}
		defer it.Close()
		n := 0
		for it.HasNext() {
			if _, err := it.Next(); err != nil {
				return shim.Error(err.Error())
			}
			n++
		}
		if err := stub.PutState("count", []byte(strconv.Itoa(n))); err != nil {
			return shim.Error(err.Error())
		}
		return shim.Success([]byte(strconv.Itoa(n)))
	case "fail":
		return shim.Error("boom: " + strings.Join(args, " "))
	}
	return shim.Error("unknown function " + fn)
}

func connect(t *testing.T, n *fabrictest.Network, user *fabrictest.Identity) *client.Contract {
	t.Helper()
	return network(t, n, user).GetContract(n.Chaincode)
}

func network(t *testing.T, n *fabrictest.Network, user *fabrictest.Identity) *client.Network {
	t.Helper()
	conn, err := n.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cert, err := identity.CertificateFromPEM(user.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.NewX509Identity(user.MSPID, cert)
	if err != nil {
		t.Fatal(err)
	}
	sign, err := identity.NewPrivateKeySign(user.Key)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := client.Connect(id, client.WithSign(sign), client.WithClientConnection(conn), client.WithCommitStatusTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	return gw.GetNetwork(n.Channel)
}

// twoInOneBlock endorses and submits a, then b, while blocks are held,
// so that both were simulated on the same state and commit in one block
// in that order; it returns their codes.
func twoInOneBlock(t *testing.T, n *fabrictest.Network, c *client.Contract, a, b []string) [2]peer.TxValidationCode {
	t.Helper()
	n.Pause()
	var commits []*client.Commit
	for _, call := range [][]string{a, b} {
		_, commit, err := c.SubmitAsync(call[0], client.WithArguments(call[1:]...))
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, commit)
	}
	if err := n.WaitPending(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	n.Resume()
	var codes [2]peer.TxValidationCode
	var blocks [2]uint64
	for i, commit := range commits {
		st, err := commit.Status()
		if err != nil {
			t.Fatal(err)
		}
		codes[i], blocks[i] = st.Code, st.BlockNumber
	}
	if blocks[0] != blocks[1] {
		t.Fatalf("transactions in blocks %v, want one block", blocks)
	}
	return codes
}

func TestValidation(t *testing.T) {
	for _, mode := range []struct {
		name  string
		ccaas bool
	}{{"InProc", false}, {"CCaaS", true}} {
		t.Run(mode.name, func(t *testing.T) {
			n := fabrictest.Start(t, kv{}, fabrictest.Options{CCaaS: mode.ccaas})
			nw := network(t, n, n.User)
			c := nw.GetContract(n.Chaincode)
			if _, err := c.SubmitTransaction("put", "k1", "a"); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name string
				a, b []string
				want [2]peer.TxValidationCode
			}{
				{"read-modify-write twice", []string{"incr", "n"}, []string{"incr", "n"},
					[2]peer.TxValidationCode{peer.TxValidationCode_VALID, peer.TxValidationCode_MVCC_READ_CONFLICT}},
				{"insert into a range read later in the block", []string{"put", "k2", "b"}, []string{"count", "k", "l"},
					[2]peer.TxValidationCode{peer.TxValidationCode_VALID, peer.TxValidationCode_PHANTOM_READ_CONFLICT}},
				{"range read before the insert", []string{"count", "k", "l"}, []string{"put", "k3", "c"},
					[2]peer.TxValidationCode{peer.TxValidationCode_VALID, peer.TxValidationCode_VALID}},
				{"blind writes", []string{"put", "x", "1"}, []string{"put", "x", "2"},
					[2]peer.TxValidationCode{peer.TxValidationCode_VALID, peer.TxValidationCode_VALID}},
			}
			for _, tc := range tests {
				if got := twoInOneBlock(t, n, c, tc.a, tc.b); got != tc.want {
					t.Errorf("%s: codes %v, want %v", tc.name, got, tc.want)
				}
			}
			// Reads see the committed state of the valid transactions only.
			for key, want := range map[string]string{"n": "1", "count": "2", "x": "2"} {
				if got, err := c.EvaluateTransaction("get", key); err != nil || string(got) != want {
					t.Errorf("get %s = %q, %v; want %q", key, got, err, want)
				}
			}
			// Events: the valid puts only, in commit order.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			events, err := nw.ChaincodeEvents(ctx, n.Chaincode, client.WithStartBlock(0))
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for ev := range events {
				keys = append(keys, string(ev.Payload))
				if len(keys) == 5 {
					break
				}
			}
			if got := strings.Join(keys, " "); got != "k1 k2 k3 x x" {
				t.Errorf("put events %q, want k1 k2 k3 x x", got)
			}
		})
	}
}

func TestGatewayErrors(t *testing.T) {
	n := fabrictest.Start(t, kv{}, fabrictest.Options{})
	nw := network(t, n, n.User)
	c := nw.GetContract(n.Chaincode)

	_, err := c.SubmitTransaction("fail", "badly")
	var ee *client.EndorseError
	if !errors.As(err, &ee) || status.Code(err) != codes.Aborted || len(ee.Details()) != 1 ||
		ee.Details()[0].Message != "chaincode response 500, boom: badly" || ee.Details()[0].MspId != n.MSPID {
		t.Errorf("submit of a failing transaction: %v; want Aborted with the chaincode's message in a detail", err)
	}
	_, err = c.EvaluateTransaction("fail", "quietly")
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "chaincode response 500, boom: quietly") {
		t.Errorf("evaluate of a failing transaction: %v; want Unknown with the message", err)
	}

	// A transaction id is used once: endorsing a committed proposal again is refused.
	p, err := c.NewProposal("put", client.WithArguments("once", "1"))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := p.Endorse()
	if err != nil {
		t.Fatal(err)
	}
	commit, err := tx.Submit()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := commit.Status(); err != nil || !st.Successful {
		t.Fatalf("status %+v, %v", st, err)
	}
	if _, err := p.Endorse(); status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "duplicate transaction found") {
		t.Errorf("endorsing a committed transaction again: %v; want duplicate transaction found", err)
	}

	// An unknown chaincode and an identity from a foreign CA.
	other := nw.GetContract("nosuchcc")
	if _, err := other.EvaluateTransaction("get", "k"); !strings.Contains(err.Error(), "make sure the chaincode nosuchcc has been successfully defined") {
		t.Errorf("unknown chaincode: %v", err)
	}
	rogue, err := fabrictest.NewForeignIdentity(n.MSPID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, n, rogue).SubmitTransaction("put", "k", "v"); status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("foreign identity: %v; want access denied", err)
	}
}
