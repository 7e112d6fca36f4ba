package fabric_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
	"github.com/medx/medx/ledger/fabric/chaincode"
	"github.com/medx/medx/ledger/fabric/fabrictest"
	"google.golang.org/grpc"
)

// Open the backend from a config (here pointing at an in-process test
// peer; on a real network, ReadConfig a file) and use the contract
// through the typed client.
func ExampleOpen() {
	cc, err := chaincode.New()
	if err != nil {
		log.Fatal(err)
	}
	n, err := fabrictest.New(cc, fabrictest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	cfg := fabric.Config{
		PeerEndpoint: n.Target(), MSPID: n.MSPID,
		Cert: string(n.User.CertPEM), PrivateKey: string(n.User.KeyPEM),
		Channel: n.Channel, Chaincode: n.Chaincode,
	}
	l, err := fabric.Open(cfg, fabric.Options{DialOptions: []grpc.DialOption{n.DialOption()}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	ctx := context.Background()
	c := ledger.NewClient(l)
	op, sponsor := signer("operator"), signer("acme-pharma")
	if err := c.Bootstrap(ctx, op, "MedX"); err != nil {
		log.Fatal(err)
	}
	if err := c.RegisterParticipant(ctx, op, ledger.Participant{ID: sponsor.ID, Role: ledger.RoleSponsor, PublicKey: sponsor.Public()}); err != nil {
		log.Fatal(err)
	}
	if err := c.Mint(ctx, op, sponsor.ID, 500); err != nil {
		log.Fatal(err)
	}
	bal, err := c.Balance(ctx, sponsor.ID)
	fmt.Println(bal, err)
	// A refusal keeps the contract's sentinel and names the transaction.
	err = c.Transfer(ctx, sponsor, op.ID, 1000)
	fmt.Println(errors.Is(err, ledger.ErrFunds))
	// Output:
	// 500 <nil>
	// true
}
