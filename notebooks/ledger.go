package notebooks

import "github.com/medx/medx/ledger"

// LedgerCells is a run's provenance as the ledger records it.
func (p Provenance) LedgerCells() []ledger.NotebookCell {
	var cells []ledger.NotebookCell
	for _, c := range p.Cells {
		cells = append(cells, ledger.NotebookCell{Name: c.Name, Query: ledger.QueryID(c.QueryID), QueryHash: c.QueryHash, ResultHash: c.ResultHash, Error: c.Error})
	}
	return cells
}

// RecordedOf is the ledger's record of a run, as Verify takes it.
func RecordedOf(n ledger.NotebookRun) Recorded {
	rec := Recorded{ID: string(n.ID), Request: string(n.Request), Sponsor: string(n.Sponsor), At: n.At,
		Provenance: Provenance{NotebookHash: n.NotebookHash}}
	for _, c := range n.Cells {
		rec.Cells = append(rec.Cells, CellProvenance{Name: c.Name, QueryID: string(c.Query), QueryHash: c.QueryHash, ResultHash: c.ResultHash, Error: c.Error})
	}
	return rec
}
