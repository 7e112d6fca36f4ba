// Package client is a Go client of the MedX HTTP API (exchange/httpapi),
// for the CLI, notebooks and tests. Query results arrive encrypted under
// the sponsor's own BGV public key and are decrypted here, with the
// sponsor's privacy.SponsorKey, which is never sent to the server.
// Patients may sign on their own device: AcceptSigned and RevokeSigned
// sign with the patient's per-study key locally.
package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// Client calls one MedX API as the holder of one bearer token. It is safe
// for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client of the API at baseURL ("http://127.0.0.1:8080")
// using token; a nil hc means a client with a 5 minute timeout.
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// Error is an API problem (RFC 9457). It matches, with errors.Is, the
// ledger or exchange sentinel its type names (ledger.ErrNotFound,
// exchange.ErrNotOffered, ...).
type Error struct {
	Status int
	Type   string
	Title  string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("medx api: %d %s: %s", e.Status, e.Title, e.Detail)
	}
	return fmt.Sprintf("medx api: %d %s", e.Status, e.Title)
}

// ErrUnauthenticated matches a 401 Error.
var ErrUnauthenticated = errors.New("unauthenticated")

// Unwrap returns the sentinel the problem type names, if any.
func (e *Error) Unwrap() error {
	switch strings.TrimPrefix(e.Type, "urn:medx:problem:") {
	case "unauthenticated":
		return ErrUnauthenticated
	case "forbidden", "role-forbidden", "no-custodial-key":
		return ledger.ErrForbidden
	case "not-found", "no-route":
		return ledger.ErrNotFound
	case "unknown-custodian":
		return exchange.ErrNoCustodian
	case "insufficient-funds":
		return ledger.ErrFunds
	case "privacy-budget-exhausted":
		return ledger.ErrBudget
	case "not-offered":
		return exchange.ErrNotOffered
	case "replay":
		return ledger.ErrReplay
	case "exists":
		return ledger.ErrExists
	case "state":
		return ledger.ErrState
	case "disclosure-refused":
		return exchange.ErrRefused
	case "bad-signature":
		return ledger.ErrBadSignature
	case "invalid", "too-large", "unsupported-media-type":
		return ledger.ErrInvalid
	}
	return nil
}

// do sends a JSON request and decodes a JSON response into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if res.StatusCode >= 400 {
		e := &Error{Status: res.StatusCode, Title: http.StatusText(res.StatusCode)}
		json.Unmarshal(b, e)
		var p struct{ Type, Title, Detail string }
		if json.Unmarshal(b, &p) == nil {
			e.Type, e.Detail = p.Type, p.Detail
			if p.Title != "" {
				e.Title = p.Title
			}
		}
		return fmt.Errorf("%s %s: %w", method, path, e)
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// call is do for a response of type T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var v T
	err := c.do(ctx, method, path, in, &v)
	return v, err
}

func esc(s string) string { return url.PathEscape(s) }

// Me is the authenticated principal.
func (c *Client) Me(ctx context.Context) (exchange.Principal, error) {
	var r struct {
		Role ledger.Role `json:"role"`
		ID   string      `json:"id"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/me", nil, &r)
	return exchange.Principal{Role: r.Role, ID: r.ID}, err
}

// Requests lists the requests the caller may see.
func (c *Client) Requests(ctx context.Context) ([]ledger.Request, error) {
	return call[[]ledger.Request](ctx, c, http.MethodGet, "/v1/requests", nil)
}

// Request returns one request.
func (c *Client) Request(ctx context.Context, id ledger.RequestID) (ledger.Request, error) {
	return call[ledger.Request](ctx, c, http.MethodGet, "/v1/requests/"+esc(string(id)), nil)
}

// PostRequest posts a cohort request as the sponsor.
func (c *Client) PostRequest(ctx context.Context, d ledger.RequestDraft) (ledger.Request, error) {
	return call[ledger.Request](ctx, c, http.MethodPost, "/v1/requests", d)
}

// Approve approves a request as an ethics board.
func (c *Client) Approve(ctx context.Context, id ledger.RequestID, minCell int64, epsilonBudget float64, reason string) (ledger.Request, error) {
	return call[ledger.Request](ctx, c, http.MethodPost, "/v1/requests/"+esc(string(id))+"/approve",
		map[string]any{"minCell": minCell, "epsilonBudget": epsilonBudget, "reason": reason})
}

func (c *Client) decide(ctx context.Context, id ledger.RequestID, verb, reason string) (ledger.Request, error) {
	return call[ledger.Request](ctx, c, http.MethodPost, "/v1/requests/"+esc(string(id))+"/"+verb, map[string]string{"reason": reason})
}

// Reject rejects a pending request as an ethics board.
func (c *Client) Reject(ctx context.Context, id ledger.RequestID, reason string) (ledger.Request, error) {
	return c.decide(ctx, id, "reject", reason)
}

// Halt halts an open study as an ethics board.
func (c *Client) Halt(ctx context.Context, id ledger.RequestID, reason string) (ledger.Request, error) {
	return c.decide(ctx, id, "halt", reason)
}

// Close closes the sponsor's own request.
func (c *Client) Close(ctx context.Context, id ledger.RequestID, reason string) (ledger.Request, error) {
	return c.decide(ctx, id, "close", reason)
}

// Offer is an open request matching the calling patient, with the terms
// accepting it signs.
type Offer struct {
	Request ledger.Request      `json:"request"`
	Terms   ledger.LicenceTerms `json:"terms"`
}

// Offers lists the calling patient's offers.
func (c *Client) Offers(ctx context.Context) ([]Offer, error) {
	return call[[]Offer](ctx, c, http.MethodGet, "/v1/offers", nil)
}

// Accept accepts an offer through the server's custodial keystore.
func (c *Client) Accept(ctx context.Context, id ledger.RequestID) (ledger.Licence, error) {
	return call[ledger.Licence](ctx, c, http.MethodPost, "/v1/requests/"+esc(string(id))+"/accept", nil)
}

// AcceptSigned accepts an offer signing on this side with the patient
// wallet's per-study key: the custodian certifies the key, this client
// checks the action it is asked to sign and signs it, and the server
// submits it.
func (c *Client) AcceptSigned(ctx context.Context, id ledger.RequestID, w *exchange.Patient) (ledger.Licence, error) {
	key := w.StudyKey(id)
	var cert struct {
		Action ledger.Action `json:"action"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/requests/"+esc(string(id))+"/certificate",
		map[string]any{"publicKey": []byte(key.Public())}, &cert); err != nil {
		return ledger.Licence{}, err
	}
	a := cert.Action
	var acc ledger.Acceptance
	if err := json.Unmarshal(a.Payload, &acc); err != nil {
		return ledger.Licence{}, fmt.Errorf("accept %s: action payload: %w", id, err)
	}
	if a.Fn != ledger.FnAcceptOffer || a.Actor != key.ID || acc.Terms.Request != id || !ed25519.PublicKey(acc.PublicKey).Equal(key.Public()) {
		return ledger.Licence{}, fmt.Errorf("accept %s: the server asked to sign a different action: %w", id, ledger.ErrInvalid)
	}
	a.Sig = ed25519.Sign(key.Key, a.SigningBytes())
	return call[ledger.Licence](ctx, c, http.MethodPost, "/v1/requests/"+esc(string(id))+"/accept", map[string]any{"action": a})
}

// Decline declines an offer.
func (c *Client) Decline(ctx context.Context, id ledger.RequestID) error {
	return c.do(ctx, http.MethodPost, "/v1/requests/"+esc(string(id))+"/decline", nil, nil)
}

// Licences lists the calling patient's licences.
func (c *Client) Licences(ctx context.Context) ([]ledger.Licence, error) {
	return call[[]ledger.Licence](ctx, c, http.MethodGet, "/v1/licences", nil)
}

// Accesses lists the queries that used the calling patient's licences.
func (c *Client) Accesses(ctx context.Context) ([]ledger.QueryRecord, error) {
	return call[[]ledger.QueryRecord](ctx, c, http.MethodGet, "/v1/accesses", nil)
}

// Revoke revokes the patient's licence through the custodial keystore.
func (c *Client) Revoke(ctx context.Context, id ledger.LicenceID) (ledger.Licence, error) {
	return call[ledger.Licence](ctx, c, http.MethodPost, "/v1/licences/"+esc(string(id))+"/revoke", nil)
}

// RevokeSigned revokes the patient's licence for request req, signed here
// with the wallet's per-study key.
func (c *Client) RevokeSigned(ctx context.Context, id ledger.LicenceID, req ledger.RequestID, w *exchange.Patient) (ledger.Licence, error) {
	a, err := w.StudyKey(req).Sign(ledger.FnRevokeLicence, ledger.RevokeArgs{Licence: id})
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("revoke %s: %w", id, err)
	}
	return call[ledger.Licence](ctx, c, http.MethodPost, "/v1/licences/"+esc(string(id))+"/revoke", map[string]any{"action": a})
}

// Balance is the caller's MedToken balance.
func (c *Client) Balance(ctx context.Context) (ledger.Amount, error) {
	var r struct {
		Balance ledger.Amount `json:"balance"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/tokens/balance", nil, &r)
	return r.Balance, err
}

// Supply is the MedToken supply (ethics boards, operator).
func (c *Client) Supply(ctx context.Context) (ledger.TokenSummary, error) {
	return call[ledger.TokenSummary](ctx, c, http.MethodGet, "/v1/tokens/supply", nil)
}

// Mint mints MedTokens to a participant (operator) and returns its balance.
func (c *Client) Mint(ctx context.Context, to ledger.ParticipantID, amt ledger.Amount) (ledger.Amount, error) {
	var r struct {
		Balance ledger.Amount `json:"balance"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/tokens/mint", map[string]any{"to": to, "amount": amt}, &r)
	return r.Balance, err
}

// QueryRecords lists a request's query records.
func (c *Client) QueryRecords(ctx context.Context, id ledger.RequestID) ([]ledger.QueryRecord, error) {
	return call[[]ledger.QueryRecord](ctx, c, http.MethodGet, "/v1/requests/"+esc(string(id))+"/queries", nil)
}

// A feasibility count arrives as the API encodes it: the fields of
// exchange.Feasibility in camelCase (and its String as "answer"), which
// encoding/json matches to the untagged field names without a copy of
// the struct here.

// Feasibility asks, as a sponsor before posting, how many patients across
// custodians meet criteria: a noisy count, withheld under the threshold,
// charged to the sponsor's feasibility allowance (ledger.ErrBudget when it
// is spent). Its String states the noise and threshold applied.
func (c *Client) Feasibility(ctx context.Context, criteria string) (*exchange.Feasibility, error) {
	return call[*exchange.Feasibility](ctx, c, http.MethodPost, "/v1/feasibility", map[string]string{"criteria": criteria})
}

// RequestFeasibility is Feasibility for the criteria of the sponsor's own
// request id.
func (c *Client) RequestFeasibility(ctx context.Context, id ledger.RequestID) (*exchange.Feasibility, error) {
	return call[*exchange.Feasibility](ctx, c, http.MethodPost, "/v1/requests/"+esc(string(id))+"/feasibility", nil)
}

// FeasibilityRecords lists the counts released for request id's criteria
// (for its sponsor and ethics boards), oldest first.
func (c *Client) FeasibilityRecords(ctx context.Context, id ledger.RequestID) ([]*exchange.Feasibility, error) {
	return call[[]*exchange.Feasibility](ctx, c, http.MethodGet, "/v1/requests/"+esc(string(id))+"/feasibility", nil)
}

// Result is a released query result, decrypted by the sponsor.
type Result struct {
	Table      *cohorts.Table
	Query      string // normalised query text
	Record     ledger.QueryRecord
	Disclosure privacy.Disclosure
}

// Query runs query on request id as the sponsor, spending epsilon (0: the
// exchange's default), and decrypts the result locally with sk. Only sk's
// public key is sent.
func (c *Client) Query(ctx context.Context, id ledger.RequestID, query string, epsilon float64, sk *privacy.SponsorKey) (*Result, error) {
	pub, err := sk.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("sponsor public key: %w", err)
	}
	var r struct {
		Record     ledger.QueryRecord `json:"record"`
		Query      string             `json:"query"`
		Ciphertext []byte             `json:"ciphertext"`
		Suppressed []bool             `json:"suppressed"`
		Disclosure privacy.Disclosure `json:"disclosure"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/requests/"+esc(string(id))+"/queries",
		map[string]any{"query": query, "epsilon": epsilon, "sponsorPublicKey": pub}, &r); err != nil {
		return nil, err
	}
	qr := &exchange.QueryResult{Record: r.Record, Query: r.Query, Ciphertext: r.Ciphertext, Suppressed: r.Suppressed, Disclosure: r.Disclosure}
	t, err := qr.Decrypt(sk)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.Record.ID, err)
	}
	return &Result{Table: t, Query: r.Query, Record: r.Record, Disclosure: r.Disclosure}, nil
}

// RecordNotebookRun records a notebook run on the sponsor's request.
func (c *Client) RecordNotebookRun(ctx context.Context, id ledger.RequestID, notebookHash string, cells []ledger.NotebookCell) (ledger.NotebookRun, error) {
	return call[ledger.NotebookRun](ctx, c, http.MethodPost, "/v1/requests/"+esc(string(id))+"/notebook-runs",
		map[string]any{"notebookHash": notebookHash, "cells": cells})
}

// NotebookRun returns a recorded notebook run (its sponsor, ethics boards,
// the operator).
func (c *Client) NotebookRun(ctx context.Context, id ledger.NotebookRunID) (ledger.NotebookRun, error) {
	return call[ledger.NotebookRun](ctx, c, http.MethodGet, "/v1/notebook-runs/"+esc(string(id)), nil)
}

// AuditSummary is an ethics board's verification summary.
type AuditSummary struct {
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

// Audit verifies the ledger on the server and summarises the trail.
func (c *Client) Audit(ctx context.Context) (AuditSummary, error) {
	return call[AuditSummary](ctx, c, http.MethodGet, "/v1/audit/summary", nil)
}

// StudyTrail is one request's licences and queries.
type StudyTrail struct {
	Request  ledger.Request       `json:"request"`
	Licences []ledger.Licence     `json:"licences"`
	Queries  []ledger.QueryRecord `json:"queries"`
}

// Trail lists every request's licences and queries (ethics boards).
func (c *Client) Trail(ctx context.Context) ([]StudyTrail, error) {
	return call[[]StudyTrail](ctx, c, http.MethodGet, "/v1/audit/trail", nil)
}
