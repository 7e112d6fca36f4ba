package exchange

import (
	"fmt"
	"strings"

	"github.com/medx/medx/ledger"
)

// Principal is an authenticated caller: its role and its id. Sponsors,
// ethics boards, custodians and the operator are known by their ledger
// participant id; a patient is known to the exchange only as
// "<custodian>/<record>", the identity its custodian authenticates (the
// custodian's own patient record), never by a ledger id.
type Principal struct {
	Role ledger.Role
	ID   string
}

// Participant is the principal's ledger id. It is meaningless for patients.
func (p Principal) Participant() ledger.ParticipantID { return ledger.ParticipantID(p.ID) }

// PatientRef splits a patient principal's id into its custodian and the
// record id the custodian holds.
func (p Principal) PatientRef() (ledger.ParticipantID, string, error) {
	if p.Role != ledger.RolePatient {
		return "", "", fmt.Errorf("principal is a %s, not a patient: %w", p.Role, ledger.ErrForbidden)
	}
	c, r, ok := strings.Cut(p.ID, "/")
	if !ok || c == "" || r == "" || strings.Contains(r, "/") {
		return "", "", fmt.Errorf("patient id %q: want <custodian>/<record>: %w", p.ID, ErrInvalid)
	}
	return ledger.ParticipantID(c), r, nil
}

// Roles are every role a principal may have, in a fixed order.
func Roles() []ledger.Role {
	return []ledger.Role{ledger.RolePatient, ledger.RoleSponsor, ledger.RoleEthicsBoard, ledger.RoleCustodian, ledger.RoleOperator}
}
