package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/medx/medx/exchange"
)

// runAuditVerify re-verifies a data directory's ledger from genesis: hash
// chain, block signatures, transaction roots, and a full replay of every
// transaction through the contract, then summarises the trail.
func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	dir := fs.String("dir", "", "MedX data directory (required)")
	level := fs.String("log", "warn", "log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir is required", errUsage)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	s, err := openSite(ctx, *dir, exchange.DefaultConfig(), log)
	if err != nil {
		return err
	}
	defer s.Close()
	a, err := s.ex.Audit(ctx, time.Now())
	if err != nil {
		return err
	}
	printAudit(stdout, a)
	if !a.Report.StateMatches || len(a.Report.Problems) > 0 || !a.Conserved() {
		return fmt.Errorf("verification failed")
	}
	return nil
}
