package notebooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/privacy"
)

// Runner answers a notebook's queries as the sponsor and records the run.
// The exchange's Go client implements it over HTTP; in one process an
// adapter over exchange.Exchange does.
type Runner interface {
	// Query runs one aggregate query, spending epsilon of the study's
	// privacy budget (0: the runner's default), and returns the sponsor's
	// decrypted, disclosure-controlled result. Its errors are shown in the
	// failing cell's place.
	Query(ctx context.Context, query string, epsilon float64) (*Output, error)
	// Record writes the run's provenance on the ledger and returns its id.
	Record(ctx context.Context, p Provenance) (string, error)
}

// Output is one cell's released result.
type Output struct {
	Table      *cohorts.Table
	QueryID    string
	QueryHash  string
	Disclosure privacy.Disclosure
}

// Provenance is what the ledger keeps of a run.
type Provenance struct {
	NotebookHash string           `json:"notebookHash"`
	Cells        []CellProvenance `json:"cells"`
}

// CellProvenance ties one cell to its ledger query and its result.
// ResultHash is the hash of the result as published (see Published.Hash):
// the numbers a report shows, so that a report can be checked against the
// ledger from its own content.
type CellProvenance struct {
	Name       string `json:"name"`
	QueryID    string `json:"queryId,omitempty"`
	QueryHash  string `json:"queryHash"`
	ResultHash string `json:"resultHash,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Result is one cell's outcome: an output or an error, shown in place.
type Result struct {
	Cell   *Cell
	Output *Output
	Err    error
}

// Run is an executed notebook.
type Run struct {
	Notebook *Notebook
	Results  []Result
	// Request is the study the run queried; the caller sets it, for the
	// report.
	Request    string
	Provenance Provenance // as recorded
	RecordID   string     // ledger id of the recorded run
	Started    time.Time
	Finished   time.Time
}

// Failed counts the cells that failed.
func (r *Run) Failed() int {
	n := 0
	for _, res := range r.Results {
		if res.Err != nil {
			n++
		}
	}
	return n
}

// maxErrorText bounds the error text recorded for a failed cell.
const maxErrorText = 400

// hashText is the hex SHA-256 of s: how the exchange hashes a normalised
// query's text, and how a failed cell's text as written is hashed.
func hashText(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ErrCellsFailed is returned (wrapped) by Execute when any cell failed; the
// run is still complete and recorded.
var ErrCellsFailed = errors.New("notebook cells failed")

// Execute runs every cell in order. A failing cell (syntax, budget,
// licence) records its error in place and the run goes on; Execute then
// returns the complete run together with an error wrapping ErrCellsFailed.
func Execute(ctx context.Context, nb *Notebook, r Runner, now func() time.Time) (*Run, error) {
	run := &Run{Notebook: nb, Started: now()}
	prov := Provenance{NotebookHash: nb.Hash}
	for _, c := range nb.Cells() {
		out, err := r.Query(ctx, c.Query, c.Epsilon)
		run.Results = append(run.Results, Result{Cell: c, Output: out, Err: err})
		cp := CellProvenance{Name: c.Name}
		if err != nil {
			// A failed cell is recorded too, under the hash of its text as
			// written: the ledger shows what was attempted and why it failed.
			cp.QueryHash = hashText(c.Query)
			cp.Error = truncate(err.Error(), maxErrorText)
		} else {
			cp.QueryID, cp.QueryHash, cp.ResultHash = out.QueryID, out.QueryHash, Publish(out.Table).Hash()
		}
		prov.Cells = append(prov.Cells, cp)
	}
	run.Provenance = prov
	id, err := r.Record(ctx, prov)
	if err != nil {
		return run, fmt.Errorf("record notebook run: %w", err)
	}
	run.RecordID = id
	run.Finished = now()
	if n := run.Failed(); n > 0 {
		return run, fmt.Errorf("%d of %d cells: %w", n, len(run.Results), ErrCellsFailed)
	}
	return run, nil
}
