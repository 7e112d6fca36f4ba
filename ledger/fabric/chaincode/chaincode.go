// Package chaincode runs MedX's contract (ledger.Contract) as Hyperledger
// Fabric chaincode with fabric-contract-api-go. It holds no contract logic
// of its own: each transaction function hands the raw arguments, the
// transaction id and timestamp and a State over the stub to the same
// ledger.Contract the embedded backend runs, and turns the outcome into a
// chaincode response and one chaincode event.
//
// State-changing functions are the default contract's transactions
// (ledger.InvokeFunctions, e.g. "Mint"); read-only ones live in the
// contract named QueryContract ("query:GetParticipant"), so that a submit
// of a read or an evaluate of a write is refused by the chaincode itself,
// as the embedded backend refuses it. Contract errors travel as
// ledger.EncodeError strings and keep their sentinel at the client.
package chaincode

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hyperledger/fabric-contract-api-go/v2/contractapi"
	"github.com/medx/medx/ledger"
)

// Names the chaincode answers to.
const (
	// QueryContract is the contract holding the read-only functions.
	QueryContract = "query"
	// EventName names the one chaincode event every committed transaction emits.
	EventName = "medx"
	// Version is the chaincode's version in its metadata.
	Version = "1.0.0"
)

// Event is the payload of the chaincode event of a transaction: the
// function, the transaction time, and the contract's event if it emitted
// one. Like the contract's events it carries ids and pseudonyms only.
type Event struct {
	Fn    string        `json:"fn"`
	Time  time.Time     `json:"time"`
	Event *ledger.Event `json:"event,omitempty"`
}

// New returns the MedX chaincode. Start it with its Start method
// (chaincode-as-a-service when CHAINCODE_SERVER_ADDRESS and
// CORE_CHAINCODE_ID_NAME are set), or hand it to a shim.
//
// Both contracts share one ledger.Contract from ledger.NewContract for the
// chaincode's lifetime, so that a record read again unchanged (a request,
// a custodian) is not decoded again; it computes exactly what
// ledger.Contract{} computes.
func New() (*contractapi.ContractChaincode, error) {
	ct := ledger.NewContract()
	inv := &Invokes{ct: ct}
	inv.Name = "medx"
	inv.Info.Version = Version
	inv.UnknownTransaction = unknown
	q := &Queries{ct: ct}
	q.Name = QueryContract
	q.Info.Version = Version
	q.UnknownTransaction = unknown
	cc, err := contractapi.NewChaincode(inv, q)
	if err != nil {
		return nil, fmt.Errorf("medx chaincode: %w", err)
	}
	cc.Info.Title = "medx"
	cc.Info.Version = Version
	return cc, nil
}

// unknown answers a function name neither contract has.
func unknown(ctx contractapi.TransactionContextInterface) error {
	fn, _ := ctx.GetStub().GetFunctionAndParameters()
	return errors.New(ledger.EncodeError(fmt.Errorf("chaincode function %q: %w", fn, ledger.ErrUnknownMethod)))
}

// txContext is what the contract may know of the transaction.
func txContext(ctx contractapi.TransactionContextInterface) (ledger.TxContext, error) {
	stub := ctx.GetStub()
	ts, err := stub.GetTxTimestamp()
	if err != nil {
		return ledger.TxContext{}, fmt.Errorf("transaction timestamp: %w", err)
	}
	tx := ledger.TxContext{TxID: stub.GetTxID(), Timestamp: ts.AsTime().UTC()}
	if ci := ctx.GetClientIdentity(); ci != nil {
		msp, err1 := ci.GetMSPID()
		id, err2 := ci.GetID()
		if err1 == nil && err2 == nil {
			tx.Submitter = "fabric:" + msp + ":" + id
		}
	}
	return tx, nil
}

// args returns the call's raw arguments after checking that the stub's
// function is exactly fn (contractapi also accepts a lower-case first
// letter; the contract does not).
func args(ctx contractapi.TransactionContextInterface, ns, fn string) ([][]byte, error) {
	all := ctx.GetStub().GetArgs()
	if len(all) == 0 {
		return nil, fmt.Errorf("no chaincode function: %w", ledger.ErrUnknownMethod)
	}
	if got := string(all[0]); got != fn && got != ns+":"+fn {
		return nil, fmt.Errorf("chaincode function %q: %w", got, ledger.ErrUnknownMethod)
	}
	return all[1:], nil
}

// invoke runs a state-changing contract function and emits the event.
func invoke(ctx contractapi.TransactionContextInterface, ct ledger.Contract, fn string) (res string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(ledger.EncodeError(fmt.Errorf("%s: contract panic: %v", fn, r)))
		}
	}()
	res, err = invokeContract(ctx, ct, fn)
	if err != nil {
		return "", errors.New(ledger.EncodeError(err))
	}
	return res, nil
}

func invokeContract(ctx contractapi.TransactionContextInterface, ct ledger.Contract, fn string) (string, error) {
	a, err := args(ctx, "medx", fn)
	if err != nil {
		return "", err
	}
	tx, err := txContext(ctx)
	if err != nil {
		return "", err
	}
	res, ev, err := ct.Invoke(tx, State{Stub: ctx.GetStub()}, fn, a)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(Event{Fn: fn, Time: tx.Timestamp, Event: ev})
	if err != nil {
		return "", fmt.Errorf("%s: encode event: %w", fn, err)
	}
	if err := ctx.GetStub().SetEvent(EventName, b); err != nil {
		return "", fmt.Errorf("%s: set event: %w", fn, err)
	}
	return string(res), nil
}

// query runs a read-only contract function.
func query(ctx contractapi.TransactionContextInterface, ct ledger.Contract, fn string) (res string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(ledger.EncodeError(fmt.Errorf("%s: contract panic: %v", fn, r)))
		}
	}()
	a, err := args(ctx, QueryContract, fn)
	if err != nil {
		return "", errors.New(ledger.EncodeError(err))
	}
	tx, err := txContext(ctx)
	if err != nil {
		return "", errors.New(ledger.EncodeError(err))
	}
	b, err := ct.Query(tx, State{Stub: ctx.GetStub()}, fn, a)
	if err != nil {
		return "", errors.New(ledger.EncodeError(err))
	}
	return string(b), nil
}
