package notebooks

import (
	"context"
	"testing"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

// exchangeRunner answers cells through a real exchange (exchangetest: an
// embedded bbolt ledger, generated Parquet datasets, the collective BGV key,
// noise off) as the sponsor, decrypting with the sponsor's own key, and
// records runs on that exchange's ledger.
type exchangeRunner struct {
	f       *exchangetest.Fixture
	sponsor ledger.Signer
	pub     []byte
	req     ledger.RequestID
}

// newExchangeRunner posts an approved study (minimum cell 10, budget 5) on
// a new exchange and has every matching patient of both custodians accept.
func newExchangeRunner(t *testing.T) *exchangeRunner {
	t.Helper()
	ctx := t.Context()
	f := exchangetest.New(t, 150)
	r := &exchangeRunner{f: f, sponsor: f.Signer(exchangetest.Sponsor)}
	var err error
	if r.pub, err = f.SponsorSK.PublicKey(); err != nil {
		t.Fatal(err)
	}
	req, err := f.Exchange.PostRequest(ctx, r.sponsor, exchangetest.Draft(1000))
	if err != nil {
		t.Fatal(err)
	}
	r.req = req.ID
	if _, err := f.Exchange.Approve(ctx, f.Signer(exchangetest.Board), req.ID, ledger.ApprovalTerms{MinCell: 10, EpsilonBudget: ledger.EpsilonFromFloat(5)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range exchangetest.Custodians {
		for _, rec := range f.MatchingPatients(t, c, exchangetest.Criteria, 1000) {
			if _, err := f.Exchange.Accept(ctx, exchangetest.Wallet(t, c, rec), req.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r
}

func (r *exchangeRunner) Query(ctx context.Context, src string, epsilon float64) (*Output, error) {
	res, err := r.f.Exchange.Query(ctx, r.sponsor, r.pub, r.req, src, exchange.QueryOptions{Epsilon: epsilon})
	if err != nil {
		return nil, err
	}
	t, err := res.Decrypt(r.f.SponsorSK)
	if err != nil {
		return nil, err
	}
	return &Output{Table: t, QueryID: string(res.Record.ID), QueryHash: res.Record.QueryHash, Disclosure: res.Disclosure}, nil
}

func (r *exchangeRunner) Record(ctx context.Context, p Provenance) (string, error) {
	d := ledger.NotebookRunDraft{Request: r.req, NotebookHash: p.NotebookHash, Cells: p.LedgerCells()}
	run, err := r.f.Client.RecordNotebookRun(ctx, r.sponsor, d)
	return string(run.ID), err
}

// recorded is the ledger's record of a run, as notebooks.Verify takes it.
func (r *exchangeRunner) recorded(t *testing.T, id string) Recorded {
	t.Helper()
	n, err := r.f.Client.NotebookRun(t.Context(), ledger.NotebookRunID(id))
	if err != nil {
		t.Fatal(err)
	}
	return RecordedOf(n)
}
