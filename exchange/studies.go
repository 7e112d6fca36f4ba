package exchange

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/medx/medx/ledger"
)

// This file holds the exchange's methods for callers that reach it over a
// network (exchange/httpapi): each takes the authenticated Principal and
// applies what that role may see. Patients are named by custodian and
// record; their pseudonyms are found through the custodian's private links,
// so the same methods serve patients who sign on their own device and
// patients whose wallet a custodial Keystore holds.

// seesAll reports whether role sees every request and participant.
func seesAll(r ledger.Role) bool { return r == ledger.RoleOperator || r == ledger.RoleEthicsBoard }

// visible reports whether p may see request r. Patients and custodians see
// only approved, open requests; sponsors their own.
func visible(p Principal, r ledger.Request) bool {
	switch {
	case seesAll(p.Role):
		return true
	case p.Role == ledger.RoleSponsor:
		return r.Sponsor == p.Participant()
	default:
		return r.Status == ledger.StatusOpen
	}
}

// Requests lists the requests p may see, by id.
func (ex *Exchange) Requests(ctx context.Context, p Principal) ([]ledger.Request, error) {
	all, err := ex.led.Requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	out := make([]ledger.Request, 0, len(all))
	for _, r := range all {
		if visible(p, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Request returns request id if p may see it, else ErrNotFound.
func (ex *Exchange) Request(ctx context.Context, p Principal, id ledger.RequestID) (ledger.Request, error) {
	r, err := ex.led.Request(ctx, id)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("request %s: %w", id, err)
	}
	if !visible(p, r) {
		return ledger.Request{}, fmt.Errorf("request %s: %w", id, ledger.ErrNotFound)
	}
	return r, nil
}

// Halt records an ethics board's halt of an open request; the unspent
// escrow is refunded and no later query is answered.
func (ex *Exchange) Halt(ctx context.Context, board ledger.Signer, id ledger.RequestID, reason string) (ledger.Request, error) {
	r, err := ex.led.HaltRequest(ctx, board, id, reason)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("halt %s: %w", id, err)
	}
	return r, nil
}

// Close closes the sponsor's own request and refunds its unspent escrow.
func (ex *Exchange) Close(ctx context.Context, sponsor ledger.Signer, id ledger.RequestID, reason string) (ledger.Request, error) {
	r, err := ex.led.CloseRequest(ctx, sponsor, id, reason)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("close %s: %w", id, err)
	}
	return r, nil
}

// Participants lists the registered participants p may see: the operator
// and ethics boards see every one, others only the named participants
// (sponsors, boards, custodians, operators), never patients' pseudonyms.
func (ex *Exchange) Participants(ctx context.Context, p Principal) ([]ledger.Participant, error) {
	all, err := ex.led.Participants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list participants: %w", err)
	}
	if seesAll(p.Role) {
		return all, nil
	}
	return slices.DeleteFunc(all, func(x ledger.Participant) bool { return x.Role == ledger.RolePatient }), nil
}

// Participant returns participant id if p may see it, else ErrNotFound.
func (ex *Exchange) Participant(ctx context.Context, p Principal, id ledger.ParticipantID) (ledger.Participant, error) {
	x, err := ex.led.Participant(ctx, id)
	if err != nil {
		return ledger.Participant{}, fmt.Errorf("participant %s: %w", id, err)
	}
	if x.Role == ledger.RolePatient && !seesAll(p.Role) {
		return ledger.Participant{}, fmt.Errorf("participant %s: %w", id, ledger.ErrNotFound)
	}
	return x, nil
}

// Register registers a participant on an operator's signature.
func (ex *Exchange) Register(ctx context.Context, op ledger.Signer, x ledger.Participant) (ledger.Participant, error) {
	if err := ex.led.RegisterParticipant(ctx, op, x); err != nil {
		return ledger.Participant{}, fmt.Errorf("register %s: %w", x.ID, err)
	}
	got, err := ex.led.Participant(ctx, x.ID)
	if err != nil {
		return ledger.Participant{}, fmt.Errorf("registered %s: %w", x.ID, err)
	}
	return got, nil
}

// Mint creates MedTokens in to's balance on an operator's signature.
func (ex *Exchange) Mint(ctx context.Context, op ledger.Signer, to ledger.ParticipantID, amt ledger.Amount) (ledger.Amount, error) {
	if amt <= 0 {
		return 0, fmt.Errorf("mint %d: want a positive amount: %w", amt, ErrInvalid)
	}
	if err := ex.led.Mint(ctx, op, to, amt); err != nil {
		return 0, fmt.Errorf("mint to %s: %w", to, err)
	}
	bal, err := ex.led.Balance(ctx, to)
	if err != nil {
		return 0, fmt.Errorf("balance of %s: %w", to, err)
	}
	return bal, nil
}

// Tokens is the MedToken supply and where it sits.
func (ex *Exchange) Tokens(ctx context.Context) (ledger.TokenSummary, error) {
	s, err := ex.led.Tokens(ctx)
	if err != nil {
		return s, fmt.Errorf("token summary: %w", err)
	}
	return s, nil
}

// Balance is p's MedToken balance; a patient's is the sum over the
// pseudonyms its custodian certified.
func (ex *Exchange) Balance(ctx context.Context, p Principal) (ledger.Amount, error) {
	if p.Role != ledger.RolePatient {
		b, err := ex.led.Balance(ctx, p.Participant())
		if err != nil {
			return 0, fmt.Errorf("balance of %s: %w", p.ID, err)
		}
		return b, nil
	}
	v, err := ex.History(ctx, p)
	if err != nil {
		return 0, err
	}
	return v.Balance, nil
}

// patientOf resolves a patient principal to its custodian's node.
func (ex *Exchange) patientOf(p Principal) (*Custodian, string, error) {
	cid, record, err := p.PatientRef()
	if err != nil {
		return nil, "", err
	}
	c, err := ex.custodian(cid)
	if err != nil {
		return nil, "", fmt.Errorf("patient's custodian: %w", err)
	}
	return c, record, nil
}

// History is what patient p sees of their own participation: licences,
// the queries that used them, and what they earned. It finds the patient's
// pseudonyms through the custodian's links.
func (ex *Exchange) History(ctx context.Context, p Principal) (PatientView, error) {
	c, record, err := ex.patientOf(p)
	if err != nil {
		return PatientView{}, err
	}
	pns, err := c.Pseudonyms(record)
	if err != nil {
		return PatientView{}, err
	}
	var v PatientView
	for _, pn := range pns {
		lics, err := ex.led.PatientLicences(ctx, pn)
		if errors.Is(err, ledger.ErrNotFound) {
			continue // certified, never accepted
		}
		if err != nil {
			return PatientView{}, fmt.Errorf("licences of %s: %w", pn, err)
		}
		if err := ex.addToView(ctx, &v, pn, lics); err != nil {
			return PatientView{}, err
		}
	}
	return v, nil
}

// OffersFor lists the open requests whose criteria patient p's record
// meets and that p has neither accepted nor declined. Offer.Pseudonym is
// empty: the patient's device derives its own.
func (ex *Exchange) OffersFor(ctx context.Context, p Principal) ([]Offer, error) {
	c, record, err := ex.patientOf(p)
	if err != nil {
		return nil, err
	}
	v, err := ex.History(ctx, p)
	if err != nil {
		return nil, err
	}
	reqs, err := ex.allRequests(ctx)
	if err != nil {
		return nil, err
	}
	var offers []Offer
	for _, r := range reqs {
		if r.Status != ledger.StatusOpen || r.Participants >= r.MaxParticipants {
			continue
		}
		if slices.ContainsFunc(v.Licences, func(l ledger.Licence) bool { return l.Request == r.ID }) {
			continue
		}
		if ok, err := c.declined(record, r.ID); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		ok, err := c.Matches(ctx, r, record)
		if err != nil {
			return nil, err
		}
		if ok {
			offers = append(offers, Offer{Request: r})
		}
	}
	return offers, nil
}

// offered returns request id if it is open and matches p's record.
func (ex *Exchange) offered(ctx context.Context, c *Custodian, record string, id ledger.RequestID) (ledger.Request, error) {
	r, err := ex.led.Request(ctx, id)
	if err != nil {
		return ledger.Request{}, fmt.Errorf("request %s: %w", id, err)
	}
	if r.Status != ledger.StatusOpen {
		return ledger.Request{}, fmt.Errorf("request %s (status %s): %w", id, r.Status, ErrNotOffered)
	}
	ok, err := c.Matches(ctx, r, record)
	if err != nil {
		return ledger.Request{}, err
	}
	if !ok {
		return ledger.Request{}, fmt.Errorf("request %s: %w", id, ErrNotOffered)
	}
	return r, nil
}

// Decline records, with the patient's custodian only, that p declined
// request id: it is not offered to p again. Nothing goes on the ledger.
func (ex *Exchange) Decline(ctx context.Context, p Principal, id ledger.RequestID) error {
	c, record, err := ex.patientOf(p)
	if err != nil {
		return err
	}
	if _, err := ex.offered(ctx, c, record, id); err != nil {
		return fmt.Errorf("decline: %w", err)
	}
	return c.decline(record, id)
}

// Certify is the first step of an acceptance signed on the patient's own
// device: p's custodian checks that p's record matches open request id and
// certifies pub as p's per-study key, without saying which patient. It
// returns the certificate and the licence terms p is to sign.
//
// Here the exchange process hosts the custodians' nodes; across machines
// this call goes to the patient's custodian, which authenticates its own
// patients.
func (ex *Exchange) Certify(ctx context.Context, p Principal, id ledger.RequestID, pub ed25519.PublicKey) (ledger.Certificate, ledger.LicenceTerms, error) {
	if len(pub) != ed25519.PublicKeySize {
		return ledger.Certificate{}, ledger.LicenceTerms{}, fmt.Errorf("certify: public key is %d bytes, want %d: %w", len(pub), ed25519.PublicKeySize, ErrInvalid)
	}
	c, record, err := ex.patientOf(p)
	if err != nil {
		return ledger.Certificate{}, ledger.LicenceTerms{}, err
	}
	r, err := ex.offered(ctx, c, record, id)
	if err != nil {
		return ledger.Certificate{}, ledger.LicenceTerms{}, fmt.Errorf("certify: %w", err)
	}
	cert, err := c.Certify(ctx, r, record, pub)
	if err != nil {
		return ledger.Certificate{}, ledger.LicenceTerms{}, fmt.Errorf("certify: %w", err)
	}
	return cert, TermsOf(r), nil
}

// SubmitAccept submits an acceptance of request id that patient p signed
// on their own device with the per-study key p's custodian certified.
func (ex *Exchange) SubmitAccept(ctx context.Context, p Principal, id ledger.RequestID, a ledger.Action) (ledger.Licence, error) {
	c, record, err := ex.patientOf(p)
	if err != nil {
		return ledger.Licence{}, err
	}
	if a.Fn != ledger.FnAcceptOffer {
		return ledger.Licence{}, fmt.Errorf("accept %s: action is %q, want %q: %w", id, a.Fn, ledger.FnAcceptOffer, ErrInvalid)
	}
	var acc ledger.Acceptance
	if err := json.Unmarshal(a.Payload, &acc); err != nil {
		return ledger.Licence{}, fmt.Errorf("accept %s: payload: %v: %w", id, err, ErrInvalid)
	}
	if acc.Terms.Request != id {
		return ledger.Licence{}, fmt.Errorf("accept %s: the signed terms are for %q: %w", id, acc.Terms.Request, ErrInvalid)
	}
	if len(acc.PublicKey) != ed25519.PublicKeySize || a.Actor != ledger.PseudonymID(acc.PublicKey) {
		return ledger.Licence{}, fmt.Errorf("accept %s: actor is not the pseudonym of the signed key: %w", id, ErrInvalid)
	}
	if ok, err := c.owns(a.Actor, record); err != nil {
		return ledger.Licence{}, err
	} else if !ok {
		return ledger.Licence{}, fmt.Errorf("accept %s: key not certified for this patient: %w", id, ledger.ErrForbidden)
	}
	return submitAs[ledger.Licence](ctx, ex, "accept "+string(id), a)
}

// AcceptFor accepts request id for patient p with the custodial wallet w,
// which must be p's.
func (ex *Exchange) AcceptFor(ctx context.Context, p Principal, w *Patient, id ledger.RequestID) (ledger.Licence, error) {
	c, record, err := ex.patientOf(p)
	if err != nil {
		return ledger.Licence{}, err
	}
	if w.Custodian != c.ID() || w.RecordID != record {
		return ledger.Licence{}, fmt.Errorf("accept %s: wallet is not the caller's: %w", id, ledger.ErrForbidden)
	}
	return ex.Accept(ctx, w, id)
}

// ownLicence returns licence id if it belongs to patient p.
func (ex *Exchange) ownLicence(ctx context.Context, p Principal, id ledger.LicenceID) (ledger.Licence, error) {
	c, record, err := ex.patientOf(p)
	if err != nil {
		return ledger.Licence{}, err
	}
	l, err := ex.led.Licence(ctx, id)
	if err != nil {
		return ledger.Licence{}, fmt.Errorf("licence %s: %w", id, err)
	}
	if ok, err := c.owns(l.Patient, record); err != nil {
		return ledger.Licence{}, err
	} else if !ok || l.Custodian != c.ID() {
		return ledger.Licence{}, fmt.Errorf("licence %s is not the caller's: %w", id, ledger.ErrForbidden)
	}
	return l, nil
}

// RevokeFor revokes patient p's own licence id with the custodial wallet w.
func (ex *Exchange) RevokeFor(ctx context.Context, p Principal, w *Patient, id ledger.LicenceID) (ledger.Licence, error) {
	if _, err := ex.ownLicence(ctx, p, id); err != nil {
		return ledger.Licence{}, fmt.Errorf("revoke: %w", err)
	}
	return ex.Revoke(ctx, w, id)
}

// SubmitRevoke submits a revocation of licence id that patient p signed on
// their own device.
func (ex *Exchange) SubmitRevoke(ctx context.Context, p Principal, id ledger.LicenceID, a ledger.Action) (ledger.Licence, error) {
	if a.Fn != ledger.FnRevokeLicence {
		return ledger.Licence{}, fmt.Errorf("revoke %s: action is %q, want %q: %w", id, a.Fn, ledger.FnRevokeLicence, ErrInvalid)
	}
	var args ledger.RevokeArgs
	if err := json.Unmarshal(a.Payload, &args); err != nil || args.Licence != id {
		return ledger.Licence{}, fmt.Errorf("revoke %s: payload does not name this licence: %w", id, ErrInvalid)
	}
	if _, err := ex.ownLicence(ctx, p, id); err != nil {
		return ledger.Licence{}, fmt.Errorf("revoke: %w", err)
	}
	return submitAs[ledger.Licence](ctx, ex, "revoke "+string(id), a)
}

// submitAs submits an action signed elsewhere and decodes its result.
func submitAs[T any](ctx context.Context, ex *Exchange, what string, a ledger.Action) (T, error) {
	var out T
	res, err := ex.led.SubmitAction(ctx, a)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return out, fmt.Errorf("%s: decode result: %w", what, err)
	}
	return out, nil
}

// QueryRecords lists the query records of request id for p (its sponsor,
// an ethics board or the operator).
func (ex *Exchange) QueryRecords(ctx context.Context, p Principal, id ledger.RequestID) ([]ledger.QueryRecord, error) {
	if _, err := ex.Request(ctx, p, id); err != nil {
		return nil, err
	}
	qs, err := ex.led.Queries(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queries of %s: %w", id, err)
	}
	return qs, nil
}

// RecordNotebook records a notebook run on the sponsor's request.
func (ex *Exchange) RecordNotebook(ctx context.Context, sponsor ledger.Signer, d ledger.NotebookRunDraft) (ledger.NotebookRun, error) {
	n, err := ex.led.RecordNotebookRun(ctx, sponsor, d)
	if err != nil {
		return ledger.NotebookRun{}, fmt.Errorf("record notebook run on %s: %w", d.Request, err)
	}
	return n, nil
}

// NotebookRun returns a recorded notebook run if p may see it: ethics
// boards and the operator see every run, a sponsor its own; anyone else,
// or a run that does not exist, gets ledger.ErrNotFound.
func (ex *Exchange) NotebookRun(ctx context.Context, p Principal, id ledger.NotebookRunID) (ledger.NotebookRun, error) {
	n, err := ex.led.NotebookRun(ctx, id)
	if err != nil {
		return ledger.NotebookRun{}, fmt.Errorf("notebook run %s: %w", id, err)
	}
	if !seesAll(p.Role) && (p.Role != ledger.RoleSponsor || n.Sponsor != p.Participant()) {
		return ledger.NotebookRun{}, fmt.Errorf("notebook run %s: %w", id, ledger.ErrNotFound)
	}
	return n, nil
}

// StudyTrail is one request's licence and query trail, for ethics boards.
type StudyTrail struct {
	Request  ledger.Request
	Licences []ledger.Licence
	Queries  []ledger.QueryRecord
}

// Trail lists every request with its licences and queries, by request id;
// filter, if not empty, keeps only requests in those statuses.
func (ex *Exchange) Trail(ctx context.Context, filter ...ledger.RequestStatus) ([]StudyTrail, error) {
	reqs, err := ex.led.Requests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	out := []StudyTrail{}
	for _, r := range reqs {
		if len(filter) > 0 && !slices.Contains(filter, r.Status) {
			continue
		}
		t := StudyTrail{Request: r}
		if t.Licences, err = ex.led.Licences(ctx, r.ID); err != nil {
			return nil, fmt.Errorf("licences of %s: %w", r.ID, err)
		}
		if t.Queries, err = ex.led.Queries(ctx, r.ID); err != nil {
			return nil, fmt.Errorf("queries of %s: %w", r.ID, err)
		}
		out = append(out, t)
	}
	return out, nil
}
