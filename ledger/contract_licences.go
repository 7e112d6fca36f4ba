package ledger

import (
	"crypto/ed25519"
	"fmt"
	"time"
)

// acceptOffer registers a new per-study pseudonym, certified by its
// custodian, grants it a licence on an open request and pays it the reward
// out of one of the request's escrow places (takePlace). The action's
// signature was checked against the pseudonym key in the payload by
// authenticate.
func (c *call) acceptOffer() ([]byte, *Event, error) {
	a := *c.acceptance // decoded and checked by authenticate
	pn := c.act.Actor
	pub := ed25519.PublicKey(a.PublicKey)
	// One key per study: the pseudonym's first action is its acceptance.
	if err := c.absent(key(pParticipant, string(pn))); err != nil {
		return nil, nil, fmt.Errorf("accept: pseudonym %s: %w", pn, err)
	}
	r, err := c.lookupRequest(a.Terms.Request, "accept")
	if err != nil {
		return nil, nil, err
	}
	if err := c.checkCertificate(a.Certificate, r.ID, pub); err != nil {
		return nil, nil, err
	}
	if err := checkStatus(r, "accept", StatusOpen); err != nil {
		return nil, nil, err
	}
	if err := c.beforeDeadline(r, "accept"); err != nil {
		return nil, nil, err
	}
	t := a.Terms
	if !sameSet(r.Scope, t.Scope) || t.LicenceSeconds != r.LicenceSeconds || t.Reward != r.RewardPerPatient {
		return nil, nil, fmt.Errorf("accept %s: signed terms (scope %v, %ds, reward %d) differ from the request's (scope %v, %ds, reward %d): %w",
			r.ID, t.Scope, t.LicenceSeconds, t.Reward, r.Scope, r.LicenceSeconds, r.RewardPerPatient, ErrInvalid)
	}
	// The reward comes out of one of the request's escrow places; the
	// request record is read, not written.
	if err := c.takePlace(r, pn); err != nil {
		return nil, nil, err
	}
	bal, err := getBalance(c.st, pn)
	if err != nil {
		return nil, nil, fmt.Errorf("accept: %w", err)
	}
	id := LicenceID(deriveID(idPrefixLic, c.tx.TxID))
	if err := c.absent(key(pLicenceIndex, string(id))); err != nil {
		return nil, nil, fmt.Errorf("accept: licence %s: %w", id, err)
	}

	part := Participant{ID: pn, Role: RolePatient, PublicKey: a.PublicKey, Custodian: a.Certificate.Custodian, Registered: c.ts}
	lic := Licence{
		ID:        id,
		Request:   r.ID,
		Patient:   pn,
		Custodian: a.Certificate.Custodian,
		Scope:     r.Scope,
		Reward:    r.RewardPerPatient,
		Granted:   c.ts,
		Expires:   c.ts.Add(time.Duration(r.LicenceSeconds) * time.Second),
	}
	pb, err := encodeParticipant(part)
	if err != nil {
		return nil, nil, fmt.Errorf("encode participant %s: %w", pn, err)
	}
	c.put(key(pParticipant, string(pn)), pb)
	lb, err := encodeLicence(lic)
	if err != nil {
		return nil, nil, fmt.Errorf("encode licence %s: %w", id, err)
	}
	c.put(key(pLicence, string(r.ID), string(id)), lb) // and the result
	c.put(key(pLicenceIndex, string(id)), []byte(r.ID))
	c.put(key(pPatientLic, string(pn), string(id)), []byte(r.ID))
	c.putAmount(key(pBalance, string(pn)), bal+r.RewardPerPatient)
	return withEvent(lb, EventLicenceGranted, EventPayload{
		Request: r.ID, Sponsor: r.Sponsor, Licence: id, Patient: pn, Custodian: lic.Custodian, Amount: lic.Reward,
	})
}

// checkCertificate verifies that a registered custodian certified pub as
// one of its patients' keys for request req.
func (c *call) checkCertificate(cert Certificate, req RequestID, pub ed25519.PublicKey) error {
	cust, err := c.participant(cert.Custodian)
	if isNotFound(err) {
		return fmt.Errorf("accept: certificate by unknown participant %q: %w", cert.Custodian, ErrBadSignature)
	}
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	if cust.Role != RoleCustodian {
		return fmt.Errorf("accept: certificate by %s, a %s, not a custodian: %w", cust.ID, cust.Role, ErrBadSignature)
	}
	if len(cust.PublicKey) != ed25519.PublicKeySize || !c.tx.verifySig(cust.PublicKey, CertificateBytes(req, pub), cert.Signature) {
		return fmt.Errorf("accept: certificate of %s for request %s does not verify: %w", cust.ID, req, ErrBadSignature)
	}
	return nil
}

// revokeLicence lets a licence's patient revoke it. Later queries exclude
// it; the reward already paid stays paid.
func (c *call) revokeLicence() ([]byte, *Event, error) {
	var a RevokeArgs
	if err := c.payload(&a); err != nil {
		return nil, nil, err
	}
	if !isRecordID(idPrefixLic, string(a.Licence)) {
		return nil, nil, fmt.Errorf("revoke: licence %q: %w", a.Licence, ErrNotFound)
	}
	l, err := getLicence(c.st, a.Licence)
	if err != nil {
		return nil, nil, fmt.Errorf("revoke: %w", err)
	}
	if l.Patient != c.actor.ID {
		return nil, nil, fmt.Errorf("revoke %s: %s is not its patient: %w", l.ID, c.actor.ID, ErrForbidden)
	}
	if l.Revoked != nil {
		return nil, nil, fmt.Errorf("revoke %s: already revoked: %w", l.ID, ErrState)
	}
	if !c.ts.Before(l.Expires) {
		return nil, nil, fmt.Errorf("revoke %s: expired at %s: %w", l.ID, l.Expires.Format(time.RFC3339), ErrState)
	}
	at := c.ts
	l.Revoked = &at
	if err := c.putJSON(key(pLicence, string(l.Request), string(l.ID)), l); err != nil {
		return nil, nil, err
	}
	return encodeResult(l, EventLicenceRevoked, EventPayload{Request: l.Request, Licence: l.ID, Patient: l.Patient, Custodian: l.Custodian})
}
