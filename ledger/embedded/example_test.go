package embedded_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
)

// Open a ledger file, commit transactions through the typed client, and
// verify the whole history independently.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "medx-embedded")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	seed := sha256.Sum256([]byte("node key"))
	l, err := embedded.Open(filepath.Join(dir, "ledger.db"), ed25519.NewKeyFromSeed(seed[:]), embedded.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	ctx := context.Background()
	opSeed := sha256.Sum256([]byte("operator key"))
	op := ledger.Signer{ID: "medx-operator", Key: ed25519.NewKeyFromSeed(opSeed[:])}
	c := ledger.NewClient(l)
	if err := c.Bootstrap(ctx, op, "MedX"); err != nil {
		log.Fatal(err)
	}
	if err := c.Mint(ctx, op, op.ID, 100); err != nil {
		log.Fatal(err)
	}
	fmt.Println("height", l.Height())

	rep, err := l.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("blocks", rep.Blocks, "transactions", rep.Transactions, "state matches", rep.StateMatches, "ok", rep.OK())
	// Output:
	// height 2
	// blocks 2 transactions 2 state matches true ok true
}
