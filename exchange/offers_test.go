package exchange_test

import (
	"testing"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

// TestOffersFollowEveryBlock: offers read the request list as of the
// ledger's height, so each change shows at once, through the exchange or
// straight on the ledger, and a study that fills up stops being offered.
func TestOffersFollowEveryBlock(t *testing.T) {
	f := exchangetest.New(t, 200)
	ctx := t.Context()
	cust := exchangetest.Custodians[0]
	recs := f.MatchingPatients(t, cust, exchangetest.Criteria, 2)
	alice := exchange.Principal{Role: ledger.RolePatient, ID: string(cust) + "/" + recs[0]}
	bob := exchange.Principal{Role: ledger.RolePatient, ID: string(cust) + "/" + recs[1]}
	count := func(p exchange.Principal) int {
		t.Helper()
		o, err := f.Exchange.OffersFor(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return len(o)
	}
	r, err := f.Exchange.PostRequest(ctx, f.Signer(exchangetest.Sponsor), exchangetest.Draft(1))
	if err != nil {
		t.Fatal(err)
	}
	if n := count(alice); n != 0 {
		t.Fatalf("%d offers before approval", n)
	}
	// Approved on the ledger directly, not through the exchange.
	if _, err := f.Client.ApproveRequest(ctx, f.Signer(exchangetest.Board), r.ID, ledger.ApprovalTerms{MinCell: 2, EpsilonBudget: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	if n := count(alice); n != 1 {
		t.Fatalf("%d offers after approval, want 1", n)
	}
	w, err := f.Keystore.Patient(cust, recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Exchange.AcceptFor(ctx, alice, w, r.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(bob); n != 0 {
		t.Errorf("bob has %d offers of a study with no place left", n)
	}
}
