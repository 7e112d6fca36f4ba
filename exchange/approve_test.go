package exchange_test

import (
	"testing"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

func TestApproveDefaults(t *testing.T) {
	f := exchangetest.New(t, 200)
	ctx := t.Context()
	for _, tc := range []struct {
		name          string
		terms         ledger.ApprovalTerms
		wantMin       int64
		wantBudgetMil ledger.Epsilon
	}{
		{"board sets nothing", ledger.ApprovalTerms{}, exchange.DefaultMinCell, 1_000_000},
		{"board sets both", ledger.ApprovalTerms{MinCell: 25, EpsilonBudget: 500_000}, 25, 500_000},
		{"board sets the minimum only", ledger.ApprovalTerms{MinCell: 5}, 5, 1_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := f.Exchange.PostRequest(ctx, f.Signer(exchangetest.Sponsor), exchangetest.Draft(5))
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Exchange.Approve(ctx, f.Signer(exchangetest.Board), r.ID, tc.terms)
			if err != nil {
				t.Fatal(err)
			}
			if a := got.Approval; a.MinCell != tc.wantMin || a.EpsilonBudget != tc.wantBudgetMil {
				t.Errorf("Approve(%+v) = min cell %d, budget %d; want %d, %d", tc.terms, a.MinCell, a.EpsilonBudget, tc.wantMin, tc.wantBudgetMil)
			}
		})
	}
	r, err := f.Exchange.PostRequest(ctx, f.Signer(exchangetest.Sponsor), exchangetest.Draft(5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Exchange.Approve(ctx, f.Signer(exchangetest.Board), r.ID, ledger.ApprovalTerms{MinCell: -1}); err == nil {
		t.Error("a negative minimum cell was accepted")
	}
}
