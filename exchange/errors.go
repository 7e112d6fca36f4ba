package exchange

import (
	"errors"
	"fmt"
)

// Errors callers branch on. Ledger sentinels (ledger.ErrForbidden, ...) pass
// through wrapped, so errors.Is works for both.
var (
	ErrInvalid     = errors.New("invalid input")
	ErrNotOffered  = errors.New("no such offer for this patient")
	ErrNoCustodian = errors.New("unknown custodian")
	ErrRefused     = errors.New("refused by disclosure control")
	// ErrTooFewLicences is a query refused because fewer licences than the
	// minimum cell cover what it reads; it is also ErrRefused.
	ErrTooFewLicences = fmt.Errorf("too few licences in force: %w", ErrRefused)
)
