package ledger

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// LicencesDigest is the digest a QueryRecord keeps of the licences a query
// used: hex SHA-256 over the sorted ids joined by "\n". An auditor holding
// the list recomputes it.
func LicencesDigest(ids []LicenceID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	sort.Strings(s)
	sum := sha256.Sum256([]byte(strings.Join(s, "\n")))
	return hexOf(sum[:])
}

// authorizeQuery charges a query's epsilon to the request's budget and
// fixes the licences it may use: those of the request active at the
// transaction's time whose scope covers the query's categories.
func (c *call) authorizeQuery() ([]byte, *Event, error) {
	if err := c.requireRole(RoleSponsor); err != nil {
		return nil, nil, err
	}
	var q QueryDraft
	if err := c.payload(&q); err != nil {
		return nil, nil, err
	}
	if !isHash(q.QueryHash) {
		return nil, nil, fmt.Errorf("authorize query: query hash must be 64 lowercase hex digits: %w", ErrInvalid)
	}
	if q.Epsilon <= 0 {
		return nil, nil, fmt.Errorf("authorize query: epsilon %d must be positive: %w", q.Epsilon, ErrInvalid)
	}
	if err := checkCategories("categories", q.Categories, false); err != nil {
		return nil, nil, fmt.Errorf("authorize query: %w", err)
	}
	r, err := c.lookupRequest(q.Request, "authorize query")
	if err != nil {
		return nil, nil, err
	}
	if r.Sponsor != c.actor.ID {
		return nil, nil, fmt.Errorf("authorize query on %s: %s is not its sponsor: %w", r.ID, c.actor.ID, ErrForbidden)
	}
	if err := checkStatus(r, "authorize query", StatusOpen); err != nil {
		return nil, nil, err
	}
	if err := c.beforeDeadline(r, "authorize query on"); err != nil {
		return nil, nil, err
	}
	if r.Approval == nil {
		return nil, nil, fmt.Errorf("authorize query on %s: open without approval: %w", r.ID, ErrState)
	}
	if left := r.Approval.EpsilonBudget - r.Approval.EpsilonSpent; q.Epsilon > left {
		return nil, nil, fmt.Errorf("authorize query on %s: epsilon %s exceeds the %s left: %w",
			r.ID, fmtEpsilon(q.Epsilon), fmtEpsilon(left), ErrBudget)
	}
	id := QueryID(deriveID(idPrefixQuery, c.tx.TxID))
	if _, err := getQuery(c.st, id); !isNotFound(err) {
		return nil, nil, fmt.Errorf("authorize query: %s: %w", id, orExists(err))
	}

	lics, err := rangeJSON[Licence](c.st, key(pLicence, string(r.ID), ""))
	if err != nil {
		return nil, nil, fmt.Errorf("authorize query on %s: %w", r.ID, err)
	}
	refs := []LicenceRef{}
	ids := []LicenceID{}
	for _, l := range lics {
		if l.ActiveAt(c.ts) && l.Covers(q.Categories) {
			refs = append(refs, LicenceRef{Licence: l.ID, Patient: l.Patient, Custodian: l.Custodian})
			ids = append(ids, l.ID)
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Licence < refs[j].Licence })

	rec := QueryRecord{
		ID:             id,
		Request:        r.ID,
		Sponsor:        c.actor.ID,
		QueryHash:      q.QueryHash,
		Categories:     q.Categories,
		Licences:       int64(len(refs)),
		LicencesDigest: LicencesDigest(ids),
		EpsilonCharged: q.Epsilon,
		Status:         QueryAuthorized,
		Authorized:     c.ts,
	}
	if rec.Categories == nil {
		rec.Categories = []string{}
	}
	r.Approval.EpsilonSpent += q.Epsilon
	if err := c.putJSON(key(pRequest, string(r.ID)), r); err != nil {
		return nil, nil, err
	}
	if err := c.putJSON(key(pQuery, string(r.ID), string(id)), rec); err != nil {
		return nil, nil, err
	}
	c.put(key(pQueryIndex, string(id)), []byte(r.ID))
	// Each licence's access history: which queries used it.
	for _, ref := range refs {
		c.put(key(pLicenceQuery, string(ref.Licence), string(id)), []byte(r.ID))
	}
	return encodeResult(QueryAuthorization{Query: rec, Licences: refs}, EventQueryAuthorized, EventPayload{
		Request: r.ID, Sponsor: r.Sponsor, Query: id, Licences: rec.Licences, LicencesDigest: rec.LicencesDigest, Epsilon: q.Epsilon,
	})
}

func fmtEpsilon(e Epsilon) string { return fmt.Sprintf("%.6f", e.Float()) }

// completeQuery records the outcome of an authorised query; only an
// operator (the exchange) may.
func (c *call) completeQuery() ([]byte, *Event, error) {
	if err := c.requireRole(RoleOperator); err != nil {
		return nil, nil, err
	}
	var d QueryCompletion
	if err := c.payload(&d); err != nil {
		return nil, nil, err
	}
	status := QueryCompleted
	switch {
	case d.Error != "":
		status = QueryFailed
		if err := checkText("error", d.Error, true, maxReason); err != nil {
			return nil, nil, fmt.Errorf("complete query %s: %w", d.Query, err)
		}
		if d.ResultHash != "" && !isHash(d.ResultHash) {
			return nil, nil, fmt.Errorf("complete query %s: result hash must be 64 lowercase hex digits: %w", d.Query, ErrInvalid)
		}
	case !isHash(d.ResultHash):
		return nil, nil, fmt.Errorf("complete query %s: a completed query needs a result hash of 64 lowercase hex digits: %w", d.Query, ErrInvalid)
	}
	if len(d.Disclosure) > 0 && !json.Valid(d.Disclosure) {
		return nil, nil, fmt.Errorf("complete query %s: disclosure is not JSON: %w", d.Query, ErrInvalid)
	}
	if len(d.Disclosure) > maxText {
		return nil, nil, fmt.Errorf("complete query %s: disclosure longer than %d bytes: %w", d.Query, maxText, ErrInvalid)
	}
	if !isRecordID(idPrefixQuery, string(d.Query)) {
		return nil, nil, fmt.Errorf("complete query: query %q: %w", d.Query, ErrNotFound)
	}
	q, err := getQuery(c.st, d.Query)
	if err != nil {
		return nil, nil, fmt.Errorf("complete query: %w", err)
	}
	if q.Status != QueryAuthorized {
		return nil, nil, fmt.Errorf("complete query %s: already %s: %w", q.ID, q.Status, ErrState)
	}
	at := c.ts
	q.Status = status
	q.Completed = &at
	q.Disclosure = d.Disclosure
	q.ResultHash = d.ResultHash
	q.Error = d.Error
	if err := c.putJSON(key(pQuery, string(q.Request), string(q.ID)), q); err != nil {
		return nil, nil, err
	}
	return encodeResult(q, EventQueryCompleted, EventPayload{
		Request: q.Request, Sponsor: q.Sponsor, Query: q.ID, Licences: q.Licences, LicencesDigest: q.LicencesDigest, Epsilon: q.EpsilonCharged, Status: string(status),
	})
}

// recordNotebookRun records a notebook run: each cell's query, when named,
// must be one of the request's queries with the same query hash.
func (c *call) recordNotebookRun() ([]byte, *Event, error) {
	if err := c.requireRole(RoleSponsor); err != nil {
		return nil, nil, err
	}
	var d NotebookRunDraft
	if err := c.payload(&d); err != nil {
		return nil, nil, err
	}
	if !isHash(d.NotebookHash) {
		return nil, nil, fmt.Errorf("record notebook run: notebook hash must be 64 lowercase hex digits: %w", ErrInvalid)
	}
	if len(d.Cells) == 0 || len(d.Cells) > maxNotebookCells {
		return nil, nil, fmt.Errorf("record notebook run: %d cells, want 1..%d: %w", len(d.Cells), maxNotebookCells, ErrInvalid)
	}
	r, err := c.lookupRequest(d.Request, "record notebook run")
	if err != nil {
		return nil, nil, err
	}
	if r.Sponsor != c.actor.ID {
		return nil, nil, fmt.Errorf("record notebook run on %s: %s is not its sponsor: %w", r.ID, c.actor.ID, ErrForbidden)
	}
	for i, cell := range d.Cells {
		if err := checkCell(c.st, r.ID, cell); err != nil {
			return nil, nil, fmt.Errorf("record notebook run: cell %d (%q): %w", i, cell.Name, err)
		}
	}
	id := NotebookRunID(deriveID(idPrefixNbRun, c.tx.TxID))
	var existing NotebookRun
	if ok, err := getJSON(c.st, key(pNotebookRun, string(id)), &existing); err != nil || ok {
		return nil, nil, fmt.Errorf("record notebook run %s: %w", id, orExists(err))
	}
	run := NotebookRun{ID: id, Sponsor: c.actor.ID, NotebookRunDraft: d, At: c.ts}
	if err := c.putJSON(key(pNotebookRun, string(id)), run); err != nil {
		return nil, nil, err
	}
	return encodeResult(run, EventNotebookRecorded, EventPayload{Request: r.ID, Sponsor: r.Sponsor, NotebookRun: id})
}

func checkCell(st State, req RequestID, cell NotebookCell) error {
	if err := checkText("name", cell.Name, true, maxName); err != nil {
		return err
	}
	if err := checkText("error", cell.Error, false, maxReason); err != nil {
		return err
	}
	if !isHash(cell.QueryHash) {
		return fmt.Errorf("query hash must be 64 lowercase hex digits: %w", ErrInvalid)
	}
	if cell.ResultHash != "" && !isHash(cell.ResultHash) {
		return fmt.Errorf("result hash must be 64 lowercase hex digits: %w", ErrInvalid)
	}
	if cell.Query == "" {
		return nil
	}
	if !isRecordID(idPrefixQuery, string(cell.Query)) {
		return fmt.Errorf("query %q does not exist: %w", cell.Query, ErrInvalid)
	}
	q, err := getQuery(st, cell.Query)
	if isNotFound(err) {
		return fmt.Errorf("query %s does not exist: %w", cell.Query, ErrInvalid)
	}
	if err != nil {
		return err
	}
	if q.Request != req {
		return fmt.Errorf("query %s belongs to request %s: %w", q.ID, q.Request, ErrInvalid)
	}
	if q.QueryHash != cell.QueryHash {
		return fmt.Errorf("query hash differs from query %s's: %w", q.ID, ErrInvalid)
	}
	return nil
}

// registerDataset records a custodian's dataset manifest.
func (c *call) registerDataset() ([]byte, *Event, error) {
	if err := c.requireRole(RoleCustodian); err != nil {
		return nil, nil, err
	}
	var m DatasetManifest
	if err := c.payload(&m); err != nil {
		return nil, nil, err
	}
	for _, f := range []struct{ name, v string }{
		{"content hash", m.ContentHash}, {"schema hash", m.SchemaHash}, {"location", m.Location}, {"reference date", m.RefDate},
	} {
		if err := checkText(f.name, f.v, true, maxLocation); err != nil {
			return nil, nil, fmt.Errorf("register dataset: %w", err)
		}
	}
	if _, err := time.Parse(time.DateOnly, m.RefDate); err != nil {
		return nil, nil, fmt.Errorf("register dataset: reference date %q is not YYYY-MM-DD: %w", m.RefDate, ErrInvalid)
	}
	if m.Rows < 0 {
		return nil, nil, fmt.Errorf("register dataset: rows %d is negative: %w", m.Rows, ErrInvalid)
	}
	id := DatasetID(deriveID(idPrefixDS, c.tx.TxID))
	var existing Dataset
	if ok, err := getJSON(c.st, key(pDataset, string(id)), &existing); err != nil || ok {
		return nil, nil, fmt.Errorf("register dataset %s: %w", id, orExists(err))
	}
	ds := Dataset{ID: id, Custodian: c.actor.ID, DatasetManifest: m, Registered: c.ts}
	if err := c.putJSON(key(pDataset, string(id)), ds); err != nil {
		return nil, nil, err
	}
	return encodeResult(ds, EventDatasetRegistered, EventPayload{Dataset: id, Custodian: c.actor.ID})
}
