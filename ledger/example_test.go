package ledger_test

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

// A study's life on the ledger: registration, an escrowed request, ethics
// approval, a patient's signed acceptance under a certified pseudonym, and
// an authorised query.
func ExampleClient() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "medx-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	newKey := func(name string) ed25519.PrivateKey {
		seed := sha256.Sum256([]byte(name))
		return ed25519.NewKeyFromSeed(seed[:])
	}
	backend, err := embedded.Open(filepath.Join(dir, "ledger.db"), newKey("node"), embedded.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	c := ledger.NewClient(backend)

	op := ledger.Signer{ID: "medx-operator", Key: newKey("operator")}
	sponsor := ledger.Signer{ID: "acme-pharma", Key: newKey("sponsor")}
	board := ledger.Signer{ID: "ethics-board", Key: newKey("board")}
	hospital := ledger.Signer{ID: "st-marys", Key: newKey("hospital")}
	check := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	check(c.Bootstrap(ctx, op, "MedX"))
	for _, p := range []ledger.Participant{
		{ID: sponsor.ID, Role: ledger.RoleSponsor, Name: "Acme Pharma", PublicKey: sponsor.Public()},
		{ID: board.ID, Role: ledger.RoleEthicsBoard, Name: "Ethics Board", PublicKey: board.Public()},
		{ID: hospital.ID, Role: ledger.RoleCustodian, Name: "St Mary's", PublicKey: hospital.Public()},
	} {
		check(c.RegisterParticipant(ctx, op, p))
	}
	check(c.Mint(ctx, op, sponsor.ID, 1000))

	req, err := c.PostRequest(ctx, sponsor, ledger.RequestDraft{
		Title: "HbA1c in type 2 diabetes", Purpose: "glycaemic control by age",
		Criteria: "HAS_CONDITION('44054006')", Scope: []string{ledger.CategoryDemographics, ledger.CategoryLabs},
		RewardPerPatient: 10, MaxParticipants: 50, LicenceSeconds: 90 * 24 * 3600,
	})
	check(err)
	req, err = c.ApproveRequest(ctx, board, req.ID, ledger.ApprovalTerms{MinCell: 10, EpsilonBudget: ledger.EpsilonFromFloat(1)})
	check(err)
	fmt.Println("request", req.Status, "escrow", req.Escrow)

	// The patient's device derives a key for this study; the hospital
	// certifies it as one of its patients without saying which.
	pnKey := newKey("patient/study-1")
	pn := ledger.Signer{Key: pnKey}
	pn.ID = ledger.PseudonymID(pn.Public())
	lic, err := c.AcceptOffer(ctx, pn, ledger.Acceptance{
		Terms:       ledger.LicenceTerms{Request: req.ID, Scope: req.Scope, LicenceSeconds: req.LicenceSeconds, Reward: req.RewardPerPatient},
		PublicKey:   pn.Public(),
		Certificate: hospital.Certify(req.ID, pn.Public()),
	})
	check(err)
	earned, err := c.Balance(ctx, lic.Patient)
	check(err)
	fmt.Println("licence granted; patient earned", earned)

	qa, err := c.AuthorizeQuery(ctx, sponsor, ledger.QueryDraft{
		Request: req.ID, QueryHash: fmt.Sprintf("%x", sha256.Sum256([]byte("SELECT AVG(hba1c) FROM cohort"))),
		Categories: []string{ledger.CategoryLabs}, Epsilon: ledger.EpsilonFromFloat(0.1),
	})
	check(err)
	req, err = c.Request(ctx, req.ID)
	check(err)
	fmt.Printf("query uses %d licence(s); epsilon left %.1f\n", qa.Query.Licences, (req.Approval.EpsilonBudget - req.Approval.EpsilonSpent).Float())

	t, err := c.Tokens(ctx)
	check(err)
	fmt.Printf("minted %d = balances %d + escrow %d\n", t.Minted, t.Balances, t.Escrow)
	// Output:
	// request open escrow 500
	// licence granted; patient earned 10
	// query uses 1 licence(s); epsilon left 0.9
	// minted 1000 = balances 510 + escrow 490
}
