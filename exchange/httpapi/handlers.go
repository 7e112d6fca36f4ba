package httpapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// Request and response types live in their handlers; ledger records carry
// their stored JSON format and are encoded as they are.

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func requestID(r *http.Request) ledger.RequestID { return ledger.RequestID(mux.Vars(r)["id"]) }

// signer is the custodial signing key of a non-patient principal.
func (s *Server) signer(p exchange.Principal) (ledger.Signer, error) {
	return s.o.Keystore.Signer(p.Participant())
}

// reply is the handler of the common shape: call one exchange method (f)
// and encode its result with status.
func reply[T any](status int, f func(r *http.Request, p exchange.Principal) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		v, err := f(r, p)
		if err != nil {
			return err
		}
		encode(w, status, v)
		return nil
	}
}

// list is reply for a list, encoded [] rather than null when empty.
func list[T any](f func(r *http.Request, p exchange.Principal) ([]T, error)) handler {
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) ([]T, error) {
		v, err := f(r, p)
		return nonNil(v), err
	})
}

// signed is reply for a write the server signs: it decodes a body of type
// In, then takes the caller's custodial signing key, then calls f.
func signed[In, T any](s *Server, status int, f func(r *http.Request, sg ledger.Signer, in In) (T, error)) handler {
	return reply(status, func(r *http.Request, p exchange.Principal) (T, error) {
		var zero T
		in, err := decode[In](r)
		if err != nil {
			return zero, err
		}
		sg, err := s.signer(p)
		if err != nil {
			return zero, err
		}
		return f(r, sg, in)
	})
}

func handleHealth() handler {
	return func(w http.ResponseWriter, r *http.Request, _ exchange.Principal) error {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}
}

func (s *Server) handleMetrics() handler {
	return func(w http.ResponseWriter, r *http.Request, _ exchange.Principal) error {
		promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return nil
	}
}

func handleOpenAPI() handler {
	return func(w http.ResponseWriter, r *http.Request, _ exchange.Principal) error {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI())
		return nil
	}
}

func handleMe() handler {
	type response struct {
		Role ledger.Role `json:"role"`
		ID   string      `json:"id"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		encode(w, http.StatusOK, response{p.Role, p.ID})
		return nil
	}
}

func (s *Server) handleParticipants() handler {
	return list(func(r *http.Request, p exchange.Principal) ([]ledger.Participant, error) {
		return s.ex.Participants(r.Context(), p)
	})
}

func (s *Server) handleParticipant() handler {
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) (ledger.Participant, error) {
		return s.ex.Participant(r.Context(), p, ledger.ParticipantID(mux.Vars(r)["id"]))
	})
}

func (s *Server) handleRegister() handler {
	type request struct {
		ID        ledger.ParticipantID `json:"id"`
		Role      ledger.Role          `json:"role"`
		Name      string               `json:"name"`
		PublicKey []byte               `json:"publicKey"`
	}
	return signed(s, http.StatusCreated, func(r *http.Request, op ledger.Signer, req request) (ledger.Participant, error) {
		return s.ex.Register(r.Context(), op, ledger.Participant{ID: req.ID, Role: req.Role, Name: req.Name, PublicKey: req.PublicKey})
	})
}

func (s *Server) handleRequests() handler {
	return list(func(r *http.Request, p exchange.Principal) ([]ledger.Request, error) {
		return s.ex.Requests(r.Context(), p)
	})
}

func (s *Server) handleRequest() handler {
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) (ledger.Request, error) {
		return s.ex.Request(r.Context(), p, requestID(r))
	})
}

func (s *Server) handlePostRequest() handler {
	return signed(s, http.StatusCreated, func(r *http.Request, sg ledger.Signer, d ledger.RequestDraft) (ledger.Request, error) {
		return s.ex.PostRequest(r.Context(), sg, d)
	})
}

func (s *Server) handleApprove() handler {
	type request struct {
		MinCell       int64   `json:"minCell"`
		EpsilonBudget float64 `json:"epsilonBudget"`
		Reason        string  `json:"reason"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		// Zero means omitted: the exchange applies the defaults.
		if req.EpsilonBudget < 0 || req.EpsilonBudget > 1000 {
			return fmt.Errorf("epsilonBudget %g: want a value in (0, 1000]: %w", req.EpsilonBudget, errBadRequest)
		}
		sg, err := s.signer(p)
		if err != nil {
			return err
		}
		out, err := s.ex.Approve(r.Context(), sg, requestID(r), ledger.ApprovalTerms{
			MinCell: req.MinCell, EpsilonBudget: ledger.EpsilonFromFloat(req.EpsilonBudget), Reason: req.Reason,
		})
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, out)
		return nil
	}
}

type decision int

const (
	decisionReject decision = iota
	decisionHalt
	decisionClose
)

// handleDecision serves reject, halt and close: each ends a request with a
// reason and refunds its unspent escrow.
func (s *Server) handleDecision(d decision) handler {
	type request struct {
		Reason string `json:"reason"`
	}
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) (ledger.Request, error) {
		var req request
		if _, err := decodeOptional(r, &req); err != nil {
			return ledger.Request{}, err
		}
		sg, err := s.signer(p)
		if err != nil {
			return ledger.Request{}, err
		}
		switch d {
		case decisionReject:
			return s.ex.Reject(r.Context(), sg, requestID(r), req.Reason)
		case decisionHalt:
			return s.ex.Halt(r.Context(), sg, requestID(r), req.Reason)
		default:
			return s.ex.Close(r.Context(), sg, requestID(r), req.Reason)
		}
	})
}

func (s *Server) handleQueryRecords() handler {
	return list(func(r *http.Request, p exchange.Principal) ([]ledger.QueryRecord, error) {
		return s.ex.QueryRecords(r.Context(), p, requestID(r))
	})
}

// queryResponse is a released result: a ciphertext only the sponsor's key
// opens, and what disclosure control applied. The server never decrypts.
type queryResponse struct {
	Record     ledger.QueryRecord `json:"record"`
	Query      string             `json:"query"`
	Ciphertext []byte             `json:"ciphertext"`
	Suppressed []bool             `json:"suppressed"`
	Disclosure privacy.Disclosure `json:"disclosure"`
}

func (s *Server) handleQuery() handler {
	type request struct {
		Query            string  `json:"query"`
		Epsilon          float64 `json:"epsilon"`
		SponsorPublicKey []byte  `json:"sponsorPublicKey"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if len(req.SponsorPublicKey) == 0 {
			return fmt.Errorf("sponsorPublicKey is required: %w", errBadRequest)
		}
		sg, err := s.signer(p)
		if err != nil {
			return err
		}
		res, err := s.ex.Query(r.Context(), sg, req.SponsorPublicKey, requestID(r), req.Query, exchange.QueryOptions{Epsilon: req.Epsilon})
		if err != nil {
			return err
		}
		res.Disclosure.SuppressedSlots = nonNil(res.Disclosure.SuppressedSlots)
		res.Disclosure.NoiseScales = nonNil(res.Disclosure.NoiseScales)
		encode(w, http.StatusCreated, queryResponse{Record: res.Record, Query: res.Query, Ciphertext: res.Ciphertext,
			Suppressed: nonNil(res.Suppressed), Disclosure: res.Disclosure})
		return nil
	}
}

func (s *Server) handleNotebookRun() handler {
	type request struct {
		NotebookHash string                `json:"notebookHash"`
		Cells        []ledger.NotebookCell `json:"cells"`
	}
	return signed(s, http.StatusCreated, func(r *http.Request, sg ledger.Signer, req request) (ledger.NotebookRun, error) {
		return s.ex.RecordNotebook(r.Context(), sg, ledger.NotebookRunDraft{Request: requestID(r), NotebookHash: req.NotebookHash, Cells: req.Cells})
	})
}

// handleGetNotebookRun returns a recorded notebook run, for verifying a
// report against the ledger: boards and the operator see every run, a
// sponsor its own.
func (s *Server) handleGetNotebookRun() handler {
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) (ledger.NotebookRun, error) {
		return s.ex.NotebookRun(r.Context(), p, ledger.NotebookRunID(mux.Vars(r)["id"]))
	})
}

// handleCertificate is step one of accepting on the patient's own device:
// the custodian certifies the patient's per-study public key, and the
// response carries the action to sign (fresh nonce, canonical payload) and
// its signing bytes. Step two posts the signed action to accept.
func (s *Server) handleCertificate() handler {
	type request struct {
		PublicKey []byte `json:"publicKey"`
	}
	type response struct {
		Certificate  ledger.Certificate  `json:"certificate"`
		Terms        ledger.LicenceTerms `json:"terms"`
		Action       ledger.Action       `json:"action"`
		SigningBytes []byte              `json:"signingBytes"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		cert, terms, err := s.ex.Certify(r.Context(), p, requestID(r), ed25519.PublicKey(req.PublicKey))
		if err != nil {
			return err
		}
		payload, err := json.Marshal(ledger.Acceptance{Terms: terms, PublicKey: req.PublicKey, Certificate: cert})
		if err != nil {
			return fmt.Errorf("encode acceptance: %w", err)
		}
		var nonce [16]byte
		rand.Read(nonce[:])
		a := ledger.Action{Fn: ledger.FnAcceptOffer, Actor: ledger.PseudonymID(req.PublicKey), Nonce: hex.EncodeToString(nonce[:]), Payload: payload}
		encode(w, http.StatusOK, response{Certificate: cert, Terms: terms, Action: a, SigningBytes: a.SigningBytes()})
		return nil
	}
}

// signedAction is the optional body of accept and revoke: with an action,
// the patient signed on their own device; without, the custodial keystore
// signs for them.
type signedAction struct {
	Action *ledger.Action `json:"action"`
}

type patientAct int

const (
	actAccept patientAct = iota // POST /v1/requests/{id}/accept: 201 and the licence
	actRevoke                   // POST /v1/licences/{id}/revoke: 200 and the licence
)

// handlePatientAction serves accept and revoke, each signed either on the
// patient's device (an action in the body) or by the custodial keystore.
func (s *Server) handlePatientAction(act patientAct) handler {
	status := http.StatusCreated
	if act == actRevoke {
		status = http.StatusOK
	}
	return reply(status, func(r *http.Request, p exchange.Principal) (ledger.Licence, error) {
		var req signedAction
		if _, err := decodeOptional(r, &req); err != nil {
			return ledger.Licence{}, err
		}
		ctx, id := r.Context(), mux.Vars(r)["id"]
		if req.Action != nil {
			if act == actAccept {
				return s.ex.SubmitAccept(ctx, p, ledger.RequestID(id), *req.Action)
			}
			return s.ex.SubmitRevoke(ctx, p, ledger.LicenceID(id), *req.Action)
		}
		c, rec, err := p.PatientRef()
		if err != nil {
			return ledger.Licence{}, err
		}
		wallet, err := s.o.Keystore.Patient(c, rec)
		if err != nil {
			return ledger.Licence{}, err
		}
		if act == actAccept {
			return s.ex.AcceptFor(ctx, p, wallet, ledger.RequestID(id))
		}
		return s.ex.RevokeFor(ctx, p, wallet, ledger.LicenceID(id))
	})
}

func (s *Server) handleDecline() handler {
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		if err := s.ex.Decline(r.Context(), p, requestID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) handleOffers() handler {
	type offer struct {
		Request ledger.Request      `json:"request"`
		Terms   ledger.LicenceTerms `json:"terms"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		offers, err := s.ex.OffersFor(r.Context(), p)
		if err != nil {
			return err
		}
		out := make([]offer, len(offers))
		for i, o := range offers {
			out[i] = offer{Request: o.Request, Terms: exchange.TermsOf(o.Request)}
		}
		encode(w, http.StatusOK, out)
		return nil
	}
}

func (s *Server) handleLicences() handler {
	return list(func(r *http.Request, p exchange.Principal) ([]ledger.Licence, error) {
		v, err := s.ex.History(r.Context(), p)
		return v.Licences, err
	})
}

func (s *Server) handleAccesses() handler {
	return list(func(r *http.Request, p exchange.Principal) ([]ledger.QueryRecord, error) {
		v, err := s.ex.History(r.Context(), p)
		return v.Accesses, err
	})
}

func (s *Server) handleBalance() handler {
	type response struct {
		Balance ledger.Amount `json:"balance"`
	}
	return reply(http.StatusOK, func(r *http.Request, p exchange.Principal) (response, error) {
		b, err := s.ex.Balance(r.Context(), p)
		return response{b}, err
	})
}

func (s *Server) handleSupply() handler {
	return reply(http.StatusOK, func(r *http.Request, _ exchange.Principal) (ledger.TokenSummary, error) {
		return s.ex.Tokens(r.Context())
	})
}

func (s *Server) handleMint() handler {
	type request struct {
		To     ledger.ParticipantID `json:"to"`
		Amount ledger.Amount        `json:"amount"`
	}
	type response struct {
		To      ledger.ParticipantID `json:"to"`
		Balance ledger.Amount        `json:"balance"`
	}
	return signed(s, http.StatusOK, func(r *http.Request, op ledger.Signer, req request) (response, error) {
		bal, err := s.ex.Mint(r.Context(), op, req.To, req.Amount)
		return response{req.To, bal}, err
	})
}

func (s *Server) handleTrail() handler {
	type study struct {
		Request  ledger.Request       `json:"request"`
		Licences []ledger.Licence     `json:"licences"`
		Queries  []ledger.QueryRecord `json:"queries"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		var filter []ledger.RequestStatus
		if st := r.URL.Query().Get("status"); st != "" {
			for _, f := range strings.Split(st, ",") {
				filter = append(filter, ledger.RequestStatus(f))
			}
		}
		trail, err := s.ex.Trail(r.Context(), filter...)
		if err != nil {
			return err
		}
		out := make([]study, len(trail))
		for i, t := range trail {
			out[i] = study{t.Request, nonNil(t.Licences), nonNil(t.Queries)}
		}
		encode(w, http.StatusOK, out)
		return nil
	}
}

func (s *Server) handleAuditSummary() handler {
	type response struct {
		Verified        bool                `json:"verified"`
		Report          ledger.AuditReport  `json:"report"`
		Requests        int                 `json:"requests"`
		LicencesActive  int                 `json:"licencesActive"`
		LicencesRevoked int                 `json:"licencesRevoked"`
		LicencesExpired int                 `json:"licencesExpired"`
		Queries         int                 `json:"queries"`
		Tokens          ledger.TokenSummary `json:"tokens"`
		Conserved       bool                `json:"conserved"`
		At              time.Time           `json:"at"`
	}
	return func(w http.ResponseWriter, r *http.Request, p exchange.Principal) error {
		a, err := s.ex.Audit(r.Context(), s.o.Now())
		if err != nil {
			return err
		}
		a.Report.Problems = nonNil(a.Report.Problems)
		encode(w, http.StatusOK, response{Verified: a.Report.OK(), Report: a.Report, Requests: a.Requests,
			LicencesActive: a.LicencesActive, LicencesRevoked: a.LicencesRevoked, LicencesExpired: a.LicencesExpired,
			Queries: a.Queries, Tokens: a.Tokens, Conserved: a.Conserved(), At: a.At})
		return nil
	}
}
