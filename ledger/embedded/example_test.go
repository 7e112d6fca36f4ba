package embedded_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
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

// Verify a bare copy of a ledger file, with neither the node's key nor any
// other state, and stream its trail as CSV.
func ExampleVerifyFile() {
	dir, err := os.MkdirTemp("", "medx-embedded")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	key := func(name string) ed25519.PrivateKey {
		seed := sha256.Sum256([]byte(name))
		return ed25519.NewKeyFromSeed(seed[:])
	}
	path := filepath.Join(dir, "ledger.db")
	l, err := embedded.Open(path, key("node key"), embedded.Options{})
	if err != nil {
		log.Fatal(err)
	}
	c := ledger.NewClient(l)
	op := ledger.Signer{ID: "medx-operator", Key: key("operator key")}
	if err := c.Bootstrap(ctx, op, "MedX"); err != nil {
		log.Fatal(err)
	}
	if err := c.Mint(ctx, op, op.ID, 100); err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	rep, err := embedded.VerifyFile(ctx, path)
	if err != nil {
		log.Fatal(err) // an *embedded.AuditError names the first bad block
	}
	fmt.Println("blocks", rep.Blocks, "ok", rep.OK(), "minted", rep.Tokens.Minted, "node key", rep.NodeKey == fmt.Sprintf("%x", key("node key").Public()))

	w := csv.NewWriter(os.Stdout)
	err = embedded.TrailFile(ctx, path, ledger.TrailFilter{}, func(r ledger.TrailRecord) error {
		return w.Write([]string{fmt.Sprint(r.Height), r.Fn, string(r.Actor), string(r.To), fmt.Sprint(r.Amount)})
	})
	if err != nil {
		log.Fatal(err)
	}
	w.Flush()
	// Output:
	// blocks 2 ok true minted 100 node key true
	// 1,Bootstrap,medx-operator,,0
	// 2,Mint,medx-operator,medx-operator,100
}

// Follow the ledger's events from a stored position: blocks already
// committed first, then new ones as they commit.
func ExampleLedger_Events() {
	dir, err := os.MkdirTemp("", "medx-embedded")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seed := sha256.Sum256([]byte("node key"))
	l, err := embedded.Open(filepath.Join(dir, "ledger.db"), ed25519.NewKeyFromSeed(seed[:]), embedded.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	opSeed := sha256.Sum256([]byte("operator key"))
	op := ledger.Signer{ID: "medx-operator", Key: ed25519.NewKeyFromSeed(opSeed[:])}
	c := ledger.NewClient(l)
	if err := c.Bootstrap(ctx, op, "MedX"); err != nil {
		log.Fatal(err)
	}

	lastHandled := uint64(0) // kept by the subscriber across restarts
	events := l.Events(ctx, lastHandled+1)
	go func() {
		if err := c.RegisterParticipant(ctx, op, ledger.Participant{ID: "acme-pharma", Role: ledger.RoleSponsor, PublicKey: op.Public()}); err != nil {
			log.Fatal(err)
		}
	}()
	for range 2 {
		ev := <-events
		for _, tx := range ev.Txs {
			fmt.Println(ev.Height, tx.Fn, tx.Event.Name)
		}
		lastHandled = ev.Height
	}
	// Output:
	// 1 Bootstrap participant_registered
	// 2 RegisterParticipant participant_registered
}
