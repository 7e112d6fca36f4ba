package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
)

// Client is the typed face of the contract that the rest of MedX uses. It
// signs actions with the caller's Signer and moves them through a Backend.
// Errors match the contract's sentinels (ErrNotFound, ErrForbidden, ...)
// with errors.Is, whichever backend carried them. A Client is safe for
// concurrent use if its Backend is.
type Client struct {
	b Backend
}

// NewClient returns a Client over b.
func NewClient(b Backend) *Client { return &Client{b: b} }

// Backend returns the backend the client calls.
func (c *Client) Backend() Backend { return c.b }

// Bootstrap registers op as the ledger's first operator. It fails with
// ErrExists once an operator exists.
func (c *Client) Bootstrap(ctx context.Context, op Signer, name string) error {
	return c.submit(ctx, op, FnBootstrap, BootstrapArgs{ID: op.ID, Name: name, PublicKey: op.Public()}, nil)
}

// RegisterParticipant registers p (its ID, Role, Name and PublicKey) on an
// operator's signature. Patients cannot be registered this way.
func (c *Client) RegisterParticipant(ctx context.Context, op Signer, p Participant) error {
	return c.submit(ctx, op, FnRegisterParticipant, Registration{ID: p.ID, Role: p.Role, Name: p.Name, PublicKey: p.PublicKey}, nil)
}

// Mint creates amt MedTokens in to's balance; op must be an operator.
func (c *Client) Mint(ctx context.Context, op Signer, to ParticipantID, amt Amount) error {
	return c.submit(ctx, op, FnMint, MintArgs{To: to, Amount: amt}, nil)
}

// Transfer moves amt MedTokens from from's balance to to's (ErrFunds if
// short).
func (c *Client) Transfer(ctx context.Context, from Signer, to ParticipantID, amt Amount) error {
	return c.submit(ctx, from, FnTransfer, TransferArgs{To: to, Amount: amt}, nil)
}

// PostRequest posts a cohort request and escrows its budget.
func (c *Client) PostRequest(ctx context.Context, sponsor Signer, d RequestDraft) (Request, error) {
	var r Request
	err := c.submit(ctx, sponsor, FnPostRequest, d, &r)
	return r, err
}

// ApproveRequest opens a pending request under the board's terms.
func (c *Client) ApproveRequest(ctx context.Context, board Signer, id RequestID, t ApprovalTerms) (Request, error) {
	var r Request
	err := c.submit(ctx, board, FnApproveRequest, ApproveArgs{Request: id, ApprovalTerms: t}, &r)
	return r, err
}

// RejectRequest rejects a pending request and refunds its escrow.
func (c *Client) RejectRequest(ctx context.Context, board Signer, id RequestID, reason string) (Request, error) {
	var r Request
	err := c.submit(ctx, board, FnRejectRequest, DecisionArgs{Request: id, Reason: reason}, &r)
	return r, err
}

// HaltRequest halts an open request and refunds its unspent escrow.
func (c *Client) HaltRequest(ctx context.Context, board Signer, id RequestID, reason string) (Request, error) {
	var r Request
	err := c.submit(ctx, board, FnHaltRequest, DecisionArgs{Request: id, Reason: reason}, &r)
	return r, err
}

// CloseRequest closes the sponsor's own pending or open request and
// refunds its unspent escrow.
func (c *Client) CloseRequest(ctx context.Context, sponsor Signer, id RequestID, reason string) (Request, error) {
	var r Request
	err := c.submit(ctx, sponsor, FnCloseRequest, DecisionArgs{Request: id, Reason: reason}, &r)
	return r, err
}

// ExpireRequest settles a pending or open request whose recruitment
// deadline has passed, by ledger time: it becomes expired and its unspent
// escrow is refunded to the sponsor. Any registered participant may ask
// (ErrState before the deadline or for a request without one).
func (c *Client) ExpireRequest(ctx context.Context, by Signer, id RequestID) (Request, error) {
	var r Request
	err := c.submit(ctx, by, FnExpireRequest, DecisionArgs{Request: id}, &r)
	return r, err
}

// AcceptOffer accepts an open request's offer under a new per-study
// pseudonym. pseudonym.ID must be PseudonymID of its key (an empty ID is
// filled in), and an empty a.PublicKey is set to the pseudonym's key.
func (c *Client) AcceptOffer(ctx context.Context, pseudonym Signer, a Acceptance) (Licence, error) {
	if err := checkSigner(FnAcceptOffer, pseudonym); err != nil {
		return Licence{}, err
	}
	pub := pseudonym.Public()
	if pseudonym.ID == "" {
		pseudonym.ID = PseudonymID(pub)
	}
	if want := PseudonymID(pub); pseudonym.ID != want {
		return Licence{}, fmt.Errorf("ledger %s: signer id %s is not the pseudonym %s of its key: %w", FnAcceptOffer, pseudonym.ID, want, ErrInvalid)
	}
	if len(a.PublicKey) == 0 {
		a.PublicKey = pub
	}
	var l Licence
	err := c.submit(ctx, pseudonym, FnAcceptOffer, a, &l)
	return l, err
}

// SubmitAction submits an action signed elsewhere (a patient's browser) and
// returns the contract's raw JSON result.
func (c *Client) SubmitAction(ctx context.Context, a Action) ([]byte, error) {
	arg, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: encode action: %w", a.Fn, err)
	}
	res, err := c.b.Submit(ctx, a.Fn, arg)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", a.Fn, withSentinel(err))
	}
	return res, nil
}

// RevokeLicence revokes the patient's own licence.
func (c *Client) RevokeLicence(ctx context.Context, patient Signer, id LicenceID) (Licence, error) {
	var l Licence
	err := c.submit(ctx, patient, FnRevokeLicence, RevokeArgs{Licence: id}, &l)
	return l, err
}

// AuthorizeQuery charges a query's epsilon and returns the licences it may
// use (ErrBudget, charging nothing, if the budget is short).
func (c *Client) AuthorizeQuery(ctx context.Context, sponsor Signer, q QueryDraft) (QueryAuthorization, error) {
	var a QueryAuthorization
	err := c.submit(ctx, sponsor, FnAuthorizeQuery, q, &a)
	return a, err
}

// CompleteQuery records the outcome of an authorised query; op must be an
// operator.
func (c *Client) CompleteQuery(ctx context.Context, op Signer, done QueryCompletion) (QueryRecord, error) {
	var q QueryRecord
	err := c.submit(ctx, op, FnCompleteQuery, done, &q)
	return q, err
}

// RecordNotebookRun records a notebook run on one of the sponsor's requests.
func (c *Client) RecordNotebookRun(ctx context.Context, sponsor Signer, d NotebookRunDraft) (NotebookRun, error) {
	var n NotebookRun
	err := c.submit(ctx, sponsor, FnRecordNotebookRun, d, &n)
	return n, err
}

// RegisterDataset records a custodian's dataset manifest.
func (c *Client) RegisterDataset(ctx context.Context, custodian Signer, m DatasetManifest) (Dataset, error) {
	var d Dataset
	err := c.submit(ctx, custodian, FnRegisterDataset, m, &d)
	return d, err
}

// Participant returns a participant (ErrNotFound if absent).
func (c *Client) Participant(ctx context.Context, id ParticipantID) (Participant, error) {
	var p Participant
	err := c.evaluate(ctx, FnGetParticipant, &p, id)
	return p, err
}

// Participants returns every participant, pseudonyms included, by id.
func (c *Client) Participants(ctx context.Context) ([]Participant, error) {
	var ps []Participant
	err := c.evaluate(ctx, FnListParticipants, &ps)
	return ps, err
}

// Request returns a request (ErrNotFound if absent).
func (c *Client) Request(ctx context.Context, id RequestID) (Request, error) {
	var r Request
	err := c.evaluate(ctx, FnGetRequest, &r, id)
	return r, err
}

// Requests returns every request, by id.
func (c *Client) Requests(ctx context.Context) ([]Request, error) {
	var rs []Request
	err := c.evaluate(ctx, FnListRequests, &rs)
	return rs, err
}

// Licence returns a licence (ErrNotFound if absent).
func (c *Client) Licence(ctx context.Context, id LicenceID) (Licence, error) {
	var l Licence
	err := c.evaluate(ctx, FnGetLicence, &l, id)
	return l, err
}

// Licences returns a request's licences, by id (ErrNotFound if the
// request is absent).
func (c *Client) Licences(ctx context.Context, req RequestID) ([]Licence, error) {
	var ls []Licence
	err := c.evaluate(ctx, FnListLicences, &ls, req)
	return ls, err
}

// PatientLicences returns a pseudonym's licences (ErrNotFound if the
// pseudonym is absent).
func (c *Client) PatientLicences(ctx context.Context, pseudonym ParticipantID) ([]Licence, error) {
	var ls []Licence
	err := c.evaluate(ctx, FnListPatientLicences, &ls, pseudonym)
	return ls, err
}

// LicenceQueries returns the queries that used a licence: the patient's
// access history (ErrNotFound if the licence is absent).
func (c *Client) LicenceQueries(ctx context.Context, id LicenceID) ([]QueryRecord, error) {
	var qs []QueryRecord
	err := c.evaluate(ctx, FnListLicenceQueries, &qs, id)
	return qs, err
}

// Balance returns a participant's MedToken balance (ErrNotFound if the
// participant is absent).
func (c *Client) Balance(ctx context.Context, id ParticipantID) (Amount, error) {
	var a Amount
	err := c.evaluate(ctx, FnBalance, &a, id)
	return a, err
}

// Tokens returns the MedToken supply and where it sits.
func (c *Client) Tokens(ctx context.Context) (TokenSummary, error) {
	var s TokenSummary
	err := c.evaluate(ctx, FnTokenSummary, &s)
	return s, err
}

// Query returns a query record (ErrNotFound if absent).
func (c *Client) Query(ctx context.Context, id QueryID) (QueryRecord, error) {
	var q QueryRecord
	err := c.evaluate(ctx, FnGetQuery, &q, id)
	return q, err
}

// Queries returns a request's query records, by id (ErrNotFound if the
// request is absent).
func (c *Client) Queries(ctx context.Context, req RequestID) ([]QueryRecord, error) {
	var qs []QueryRecord
	err := c.evaluate(ctx, FnListQueries, &qs, req)
	return qs, err
}

// NotebookRun returns a recorded notebook run (ErrNotFound if absent).
func (c *Client) NotebookRun(ctx context.Context, id NotebookRunID) (NotebookRun, error) {
	var n NotebookRun
	err := c.evaluate(ctx, FnGetNotebookRun, &n, id)
	return n, err
}

// Dataset returns a registered dataset (ErrNotFound if absent).
func (c *Client) Dataset(ctx context.Context, id DatasetID) (Dataset, error) {
	var d Dataset
	err := c.evaluate(ctx, FnGetDataset, &d, id)
	return d, err
}

// Datasets returns every registered dataset, by id.
func (c *Client) Datasets(ctx context.Context) ([]Dataset, error) {
	var ds []Dataset
	err := c.evaluate(ctx, FnListDatasets, &ds)
	return ds, err
}

// submit signs payload as an fn action by s, submits it and decodes the
// result into out (if not nil).
func (c *Client) submit(ctx context.Context, s Signer, fn string, payload any, out any) error {
	if err := checkSigner(fn, s); err != nil {
		return err
	}
	if _, err := json.Marshal(payload); err != nil {
		return fmt.Errorf("ledger %s: encode payload: %v: %w", fn, err, ErrInvalid)
	}
	a, err := s.Sign(fn, payload)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", fn, err)
	}
	res, err := c.SubmitAction(ctx, a)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("ledger %s: decode result: %w", fn, err)
	}
	return nil
}

// evaluate runs a read-only function with JSON-encoded args and decodes its
// result into out.
func (c *Client) evaluate(ctx context.Context, fn string, out any, args ...any) error {
	raw := make([][]byte, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("ledger %s: encode argument: %w", fn, err)
		}
		raw[i] = b
	}
	res, err := c.b.Evaluate(ctx, fn, raw...)
	if err != nil {
		return fmt.Errorf("ledger %s: %w", fn, withSentinel(err))
	}
	if err := json.Unmarshal(res, out); err != nil {
		return fmt.Errorf("ledger %s: decode result: %w", fn, err)
	}
	return nil
}

// checkSigner refuses a signer without a usable private key, which would
// make ed25519 panic.
func checkSigner(fn string, s Signer) error {
	if len(s.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("ledger %s: signer %q has no valid Ed25519 private key: %w", fn, s.ID, ErrInvalid)
	}
	return nil
}
