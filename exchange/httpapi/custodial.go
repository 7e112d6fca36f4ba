package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// handleValidateCriteria checks a request's criteria as the sponsor
// types them: a well-formed body gets 200 with valid false and the
// problems (with line and column for syntax errors) or valid true and the
// normal form. Nothing is written anywhere.
func handleValidateCriteria() handler {
	type request struct {
		Criteria string   `json:"criteria"`
		Scope    []string `json:"scope"`
	}
	type problemAt struct {
		Line    int    `json:"line,omitempty"`
		Column  int    `json:"column,omitempty"`
		Message string `json:"message"`
	}
	type response struct {
		Valid      bool        `json:"valid"`
		Normalised string      `json:"normalised,omitempty"`
		Categories []string    `json:"categories"`
		Errors     []problemAt `json:"errors"`
	}
	return func(w http.ResponseWriter, r *http.Request, _ exchange.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		c, err := exchange.CheckCriteria(req.Criteria, req.Scope)
		out := response{Valid: err == nil, Normalised: c.Normalised, Categories: nonNil(c.Categories), Errors: []problemAt{}}
		if err != nil {
			var se *cohorts.SyntaxError
			if errors.As(err, &se) {
				out.Errors = append(out.Errors, problemAt{Line: se.Line, Column: se.Col, Message: se.Msg})
			} else {
				out.Errors = append(out.Errors, problemAt{Message: err.Error()})
			}
		}
		encode(w, http.StatusOK, out)
		return nil
	}
}

func (s *Server) sponsorKeys() (*exchange.SponsorKeys, error) {
	if s.o.SponsorKeys == nil {
		return nil, fmt.Errorf("this exchange holds no sponsor result keys: decrypt on your side with your own key: %w", exchange.ErrNoKey)
	}
	return s.o.SponsorKeys, nil
}

// handleCustodialSponsorKey is the sponsor's explicit choice to have the
// exchange hold a BGV result key for it and decrypt its released results
// (for the web console). 201 when made, 200 if the sponsor had one.
func (s *Server) handleCustodialSponsorKey() handler {
	type response struct {
		Sponsor ledger.ParticipantID `json:"sponsor"`
		Created bool                 `json:"created"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		keys, err := s.sponsorKeys()
		if err != nil {
			return err
		}
		if _, err := decodeOptional(r, &struct{}{}); err != nil {
			return err
		}
		created, err := keys.Create(p.Participant())
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		encode(w, status, response{p.Participant(), created})
		return nil
	}
}

// tableJSON is a decrypted result table.
type tableJSON struct {
	Columns []string  `json:"columns"`
	Rows    []rowJSON `json:"rows"`
}

type rowJSON struct {
	Group  []string    `json:"group"`
	Values []valueJSON `json:"values"`
}

type valueJSON struct {
	Value      float64 `json:"value"`
	Suppressed bool    `json:"suppressed"`
	Note       string  `json:"note,omitempty"`
}

func toTableJSON(t *cohorts.Table) tableJSON {
	out := tableJSON{Columns: nonNil(t.Columns), Rows: make([]rowJSON, len(t.Rows))}
	for i, r := range t.Rows {
		vs := make([]valueJSON, len(r.Values))
		for j, v := range r.Values {
			vs[j] = valueJSON{v.Float, v.Suppressed, v.Note}
		}
		out.Rows[i] = rowJSON{Group: nonNil(r.Group), Values: vs}
	}
	return out
}

// handleCustodialQuery runs a query for a sponsor who chose a custodial
// result key: the result is key-switched to that key, exactly as to a
// sponsor's own, and decrypted with it for the sponsor. It is the only
// place the server decrypts, and only with a key made for this purpose.
func (s *Server) handleCustodialQuery() handler {
	type request struct {
		Query   string  `json:"query"`
		Epsilon float64 `json:"epsilon"`
	}
	type response struct {
		Record      ledger.QueryRecord `json:"record"`
		Query       string             `json:"query"`
		Table       tableJSON          `json:"table"`
		Suppressed  []bool             `json:"suppressed"`
		Disclosure  privacy.Disclosure `json:"disclosure"`
		DecryptedBy string             `json:"decryptedBy"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		keys, err := s.sponsorKeys()
		if err != nil {
			return err
		}
		sk, err := keys.Key(p.Participant())
		if err != nil {
			return err
		}
		pub, err := sk.PublicKey()
		if err != nil {
			return fmt.Errorf("custodial result key: %w", err)
		}
		sg, err := s.signer(p)
		if err != nil {
			return err
		}
		res, err := s.ex.Query(r.Context(), sg, pub, requestID(r), req.Query, exchange.QueryOptions{Epsilon: req.Epsilon})
		if err != nil {
			return err
		}
		tbl, err := res.Decrypt(sk)
		if err != nil {
			return fmt.Errorf("decrypt with the custodial result key: %w", err)
		}
		res.Disclosure.SuppressedSlots = nonNil(res.Disclosure.SuppressedSlots)
		res.Disclosure.NoiseScales = nonNil(res.Disclosure.NoiseScales)
		encode(w, http.StatusCreated, response{Record: res.Record, Query: res.Query, Table: toTableJSON(tbl),
			Suppressed: nonNil(res.Suppressed), Disclosure: res.Disclosure, DecryptedBy: "custodial-sponsor-key"})
		return nil
	}
}
