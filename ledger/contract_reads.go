package ledger

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Query runs a read-only function (the FnGet*/FnList* names, FnBalance,
// FnTokenSummary). Arguments are JSON-encoded ids. It never writes.
//
// Errors match ErrUnknownMethod, ErrInvalid (bad arguments) or ErrNotFound.
func (Contract) Query(tx TxContext, st State, fn string, args [][]byte) ([]byte, error) {
	r := reader{st: st, fn: fn, args: args}
	var v any
	var err error
	switch fn {
	case FnGetParticipant:
		v, err = r.participant()
	case FnListParticipants:
		v, err = r.list(pParticipant, func(st State, p string) (any, error) { return rangeJSON[Participant](st, p) })
	case FnGetRequest:
		v, err = r.request()
	case FnListRequests:
		v, err = r.list(pRequest, func(st State, _ string) (any, error) { return listRequests(st) })
	case FnGetLicence:
		v, err = r.licence()
	case FnListLicences:
		v, err = r.licences()
	case FnListPatientLicences:
		v, err = r.patientLicences()
	case FnListLicenceQueries:
		v, err = r.licenceQueries()
	case FnBalance:
		v, err = r.balance()
	case FnTokenSummary:
		v, err = r.tokens()
	case FnGetQuery:
		v, err = r.query()
	case FnListQueries:
		v, err = r.queries()
	case FnGetNotebookRun:
		v, err = r.notebookRun()
	case FnGetDataset:
		v, err = r.dataset()
	case FnListDatasets:
		v, err = r.list(pDataset, func(st State, p string) (any, error) { return rangeJSON[Dataset](st, p) })
	case FnGetFeasibility:
		v, err = r.feasibility()
	case FnListFeasibility:
		v, err = r.feasibilities()
	default:
		return nil, fmt.Errorf("query %q: %w", fn, ErrUnknownMethod)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: encode result: %w", fn, err)
	}
	return b, nil
}

// reader is one Query in progress.
type reader struct {
	st   State
	fn   string
	args [][]byte
}

// id decodes the single JSON string argument.
func (r reader) id() (string, error) {
	if len(r.args) != 1 {
		return "", fmt.Errorf("want 1 argument (a JSON id), got %d: %w", len(r.args), ErrInvalid)
	}
	var s string
	if err := json.Unmarshal(r.args[0], &s); err != nil {
		return "", fmt.Errorf("decode id: %v: %w", err, ErrInvalid)
	}
	// Ids never hold "/" (our key separator) and are short.
	if s == "" || len(s) > 128 || strings.Contains(s, keySep) {
		return "", fmt.Errorf("id %q: %w", s, ErrNotFound)
	}
	return s, nil
}

func (r reader) list(prefix string, f func(State, string) (any, error)) (any, error) {
	if len(r.args) != 0 {
		return nil, fmt.Errorf("want no arguments, got %d: %w", len(r.args), ErrInvalid)
	}
	return f(r.st, prefix)
}

func (r reader) participant() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return getParticipant(r.st, ParticipantID(id))
}

func (r reader) request() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return loadRequest(r.st, RequestID(id))
}

func (r reader) licence() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return getLicence(r.st, LicenceID(id))
}

func (r reader) licences() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	if _, err := getRequest(r.st, RequestID(id)); err != nil {
		return nil, err
	}
	return rangeJSON[Licence](r.st, key(pLicence, id, ""))
}

func (r reader) patientLicences() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	if _, err := getParticipant(r.st, ParticipantID(id)); err != nil {
		return nil, err
	}
	ids, err := rangeKeys(r.st, key(pPatientLic, id, ""))
	if err != nil {
		return nil, err
	}
	out := []Licence{}
	for _, lid := range ids {
		l, err := getLicence(r.st, LicenceID(lid))
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (r reader) licenceQueries() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	if _, err := getLicence(r.st, LicenceID(id)); err != nil {
		return nil, err
	}
	ids, err := rangeKeys(r.st, key(pLicenceQuery, id, ""))
	if err != nil {
		return nil, err
	}
	out := []QueryRecord{}
	for _, qid := range ids {
		q, err := getQuery(r.st, QueryID(qid))
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

func (r reader) balance() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	if _, err := getParticipant(r.st, ParticipantID(id)); err != nil {
		return nil, err
	}
	return getBalance(r.st, ParticipantID(id))
}

func (r reader) tokens() (any, error) {
	if len(r.args) != 0 {
		return nil, fmt.Errorf("want no arguments, got %d: %w", len(r.args), ErrInvalid)
	}
	return Tokens(r.st)
}

// Tokens sums the MedToken supply, balances and escrows of a state. The
// contract keeps Minted == Balances + Escrow.
func Tokens(st State) (TokenSummary, error) {
	// Escrow is in the places of pending and open requests (a decided
	// request's record keeps none).
	s := newSummary(time.Time{})
	if err := s.ranges(st, pBalance, pPlace); err != nil {
		return TokenSummary{}, fmt.Errorf("sum tokens: %w", err)
	}
	return s.tokens, nil
}

func (r reader) query() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	return getQuery(r.st, QueryID(id))
}

func (r reader) queries() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	if _, err := getRequest(r.st, RequestID(id)); err != nil {
		return nil, err
	}
	return rangeJSON[QueryRecord](r.st, key(pQuery, id, ""))
}

func (r reader) notebookRun() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	var run NotebookRun
	ok, err := getJSON(r.st, key(pNotebookRun, id), &run)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("notebook run %q: %w", id, ErrNotFound)
	}
	return run, nil
}

func (r reader) dataset() (any, error) {
	id, err := r.id()
	if err != nil {
		return nil, err
	}
	var ds Dataset
	ok, err := getJSON(r.st, key(pDataset, id), &ds)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("dataset %q: %w", id, ErrNotFound)
	}
	return ds, nil
}

// rangeKeys returns the last attribute of every key under prefix.
func rangeKeys(st State, prefix string) ([]string, error) {
	var out []string
	err := st.Range(prefix, prefixEnd(prefix), func(k string, _ []byte) (bool, error) {
		out = append(out, k[len(prefix):])
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("range %s: %w", prefix, err)
	}
	return out, nil
}
