package exchange

import (
	"context"
	"time"

	"github.com/medx/medx/ledger"
)

// Notice is one ledger event, as notifications carry it: ids, pseudonyms
// and amounts, never personal data.
type Notice struct {
	Height  uint64
	Time    time.Time
	TxID    string
	Name    string
	Payload ledger.EventPayload
}

// Notify reports whether principal p is to be told of n. Ethics boards and
// the operator see every event; a sponsor the events of its own requests;
// a custodian those naming it; a patient only those naming one of their own
// pseudonyms (as their custodian's links say), and approvals of new
// requests, which may be offers.
func (ex *Exchange) Notify(ctx context.Context, p Principal, n Notice) (bool, error) {
	switch p.Role {
	case ledger.RoleOperator, ledger.RoleEthicsBoard:
		return true, nil
	case ledger.RoleSponsor:
		return n.Payload.Sponsor == p.Participant(), nil
	case ledger.RoleCustodian:
		return n.Payload.Custodian == p.Participant(), nil
	case ledger.RolePatient:
		if n.Name == ledger.EventRequestApproved {
			return true, nil
		}
		if n.Payload.Patient == "" {
			return false, nil
		}
		c, record, err := ex.patientOf(p)
		if err != nil {
			return false, err
		}
		return c.owns(n.Payload.Patient, record)
	}
	return false, nil
}
