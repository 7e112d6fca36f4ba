package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
)

// Errors of the HTTP layer itself; fail maps them with the domain's.
var (
	errUnauthenticated = errors.New("missing or invalid bearer token")
	errRole            = errors.New("role not allowed on this route")
	errBadRequest      = errors.New("bad request")
	errTooLarge        = errors.New("request body too large")
	errMediaType       = errors.New("unsupported media type")
	errNotImplemented  = errors.New("not implemented")
	errNoRoute         = errors.New("no such route")
	errMethod          = errors.New("method not allowed")
)

// ProblemTypeBase prefixes every problem type URI. Each problem type names
// one error a client may branch on; the list is problemTypes.
const ProblemTypeBase = "urn:medx:problem:"

// problemKind is one row of the errors-to-status table.
type problemKind struct {
	err    error
	status int
	code   string // the stable type is ProblemTypeBase+code
	title  string
}

// problemTypes is the one errors-to-status table, checked in order: the
// first sentinel an error matches decides. Choices:
//   - MedTokens short (ledger.ErrFunds) is 402 Payment Required: the caller
//     must add funds; a spent privacy budget (ErrBudget) is 409: no payment
//     helps, the study's state forbids it.
//   - A query disclosure control refuses before spending anything
//     (exchange.ErrRefused) is 422: well-formed, but not answerable.
//   - A bad signature inside a body (ErrBadSignature) is 400: the caller is
//     authenticated; what it submitted is wrong.
//   - A participant the keystore holds no key for (exchange.ErrNoKey) is 403.
func problemTypes() []problemKind {
	return []problemKind{
		{errUnauthenticated, http.StatusUnauthorized, "unauthenticated", "Unauthenticated"},
		{errRole, http.StatusForbidden, "role-forbidden", "Role not allowed"},
		{exchange.ErrNoKey, http.StatusForbidden, "no-custodial-key", "No custodial key"},
		{ledger.ErrForbidden, http.StatusForbidden, "forbidden", "Forbidden"},
		{errNoRoute, http.StatusNotFound, "no-route", "No such route"},
		{ledger.ErrNotFound, http.StatusNotFound, "not-found", "Not found"},
		{exchange.ErrNoCustodian, http.StatusNotFound, "unknown-custodian", "Unknown custodian"},
		{errMethod, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"},
		{errTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
		{errMediaType, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
		{ledger.ErrFunds, http.StatusPaymentRequired, "insufficient-funds", "Insufficient MedTokens"},
		{ledger.ErrBudget, http.StatusConflict, "privacy-budget-exhausted", "Privacy budget exhausted"},
		{exchange.ErrNotOffered, http.StatusConflict, "not-offered", "No such offer"},
		{ledger.ErrReplay, http.StatusConflict, "replay", "Replayed action"},
		{ledger.ErrExists, http.StatusConflict, "exists", "Already exists"},
		{ledger.ErrState, http.StatusConflict, "state", "Not allowed in the current state"},
		{exchange.ErrTooFewLicences, http.StatusUnprocessableEntity, "too-few-licences", "Too few licences in force"},
		{exchange.ErrRefused, http.StatusUnprocessableEntity, "disclosure-refused", "Refused by disclosure control"},
		{ledger.ErrBadSignature, http.StatusBadRequest, "bad-signature", "Bad signature"},
		{exchange.ErrInvalid, http.StatusBadRequest, "invalid", "Invalid input"},
		{ledger.ErrInvalid, http.StatusBadRequest, "invalid", "Invalid input"},
		{errBadRequest, http.StatusBadRequest, "invalid", "Invalid input"},
		{errNotImplemented, http.StatusNotImplemented, "not-implemented", "Not implemented"},
	}
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// classify finds err's problem kind; unknown errors are 500.
func classify(err error) problemKind {
	for _, k := range problemTypes() {
		if errors.Is(err, k.err) {
			return k
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return problemKind{status: http.StatusServiceUnavailable, code: "unavailable", title: "Unavailable"}
	}
	return problemKind{status: http.StatusInternalServerError, code: "internal", title: "Internal error"}
}

// fail is the only place errors become statuses. A 4xx carries the
// error's message; a 5xx is logged and the client gets "internal error".
func fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	k := classify(err)
	p := problem{Type: ProblemTypeBase + k.code, Title: k.title, Status: k.status, Instance: r.URL.Path}
	if k.status < 500 {
		p.Detail = err.Error()
	} else {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", routeOf(r), "err", err)
		p.Detail = "internal error"
	}
	if k.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="medx"`)
	}
	if st, ok := w.(*statusWriter); ok {
		st.problem = k.code
	}
	writeJSON(w, k.status, "application/problem+json", p)
}

// wrapBad marks a decoding error as the client's.
func wrapBad(what string, err error) error {
	return fmt.Errorf("%s: %v: %w", what, err, errBadRequest)
}
