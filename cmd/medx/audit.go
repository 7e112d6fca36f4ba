package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
)

// ledgerPathFlags adds --dir and --ledger and returns a function that
// resolves them to the ledger file: exactly one must be given.
func ledgerPathFlags(fs *flag.FlagSet) func() (string, error) {
	dir := fs.String("dir", "", "MedX data directory (its ledger.db)")
	file := fs.String("ledger", "", "a bare copy of a ledger file")
	return func() (string, error) {
		switch {
		case (*dir == "") == (*file == ""):
			return "", fmt.Errorf("%w: give exactly one of --dir DIR and --ledger FILE", errUsage)
		case *dir != "":
			p := filepath.Join(*dir, "ledger.db")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s is not a MedX data directory: %w", *dir, err)
			}
			return p, nil
		default:
			if _, err := os.Stat(*file); err != nil {
				return "", fmt.Errorf("ledger file: %w", err)
			}
			return *file, nil
		}
	}
}

// runAuditVerify re-verifies a ledger file with no other state: every
// block's hash, link, transaction root and node signature, every actor's
// signature, a full replay of the contract from genesis compared with the
// stored state, and a summary of the trail. It fails naming the first bad
// block and transaction.
func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	path := ledgerPathFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := path()
	if err != nil {
		return err
	}
	bar := newCountBar(stderr, "verify blocks")
	rep, verr := embedded.VerifyFileWith(ctx, p, embedded.VerifyOptions{
		Progress: func(done, total uint64) { bar.update(int64(done), int64(total)) },
	})
	bar.finish()
	var bad *embedded.AuditError
	if verr != nil && !errors.As(verr, &bad) {
		return fmt.Errorf("could not verify: %w", verr) // nothing was checked: no summary
	}
	printReport(stdout, rep)
	switch {
	case verr != nil: // an *AuditError: it names the first bad block and transaction
		return fmt.Errorf("verification FAILED: %w", verr)
	case !rep.OK(): // VerifyFileWith returns an error for such a report; never exit 0 on one
		return fmt.Errorf("verification FAILED: %v", rep.Problems)
	}
	return nil
}

func printReport(w io.Writer, r ledger.AuditReport) {
	verdict := "verified: hash chain, block and actor signatures, transaction roots intact; replaying every transaction reproduces the state"
	if !r.OK() {
		verdict = "NOT verified"
	}
	fmt.Fprintf(w, "ledger %s\n  node key %s\n  %d blocks, %d transactions, head %s, last block %s\n",
		verdict, r.NodeKey, r.Blocks, r.Transactions, r.Head, r.LastBlock.Format(time.RFC3339))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	statuses := make([]string, 0, len(r.RequestsByStatus))
	for s := range r.RequestsByStatus {
		statuses = append(statuses, s)
	}
	slices.Sort(statuses)
	fmt.Fprintf(w, "  participants %d; requests:", r.Participants)
	for _, s := range statuses {
		fmt.Fprintf(w, " %s %d", s, r.RequestsByStatus[s])
	}
	fmt.Fprintf(w, "\n  licences at %s: active %d, revoked %d, expired %d; queries %d\n",
		r.At.Format(time.RFC3339), r.LicencesActive, r.LicencesRevoked, r.LicencesExpired, r.Queries)
	ids := make([]ledger.RequestID, 0, len(r.EpsilonBudget))
	for id := range r.EpsilonBudget {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "  %s: epsilon spent %.2f of %.2f\n", id, r.EpsilonSpent[id].Float(), r.EpsilonBudget[id].Float())
	}
	t := r.Tokens
	ok := "conserved"
	if t.Balances+t.Escrow != t.Minted {
		ok = "NOT CONSERVED"
	}
	fmt.Fprintf(w, "  MedTokens: balances %d + escrow %d = %d, minted %d: %s\n", t.Balances, t.Escrow, t.Balances+t.Escrow, t.Minted, ok)
}

// runAuditExport writes the trail (one record per transaction: ids,
// pseudonyms, amounts, never personal data) as JSON Lines or CSV.
func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit export", stderr)
	path := ledgerPathFlags(fs)
	format := fs.String("format", "jsonl", "jsonl or csv")
	out := fs.String("out", "", "output file (default standard output)")
	req := fs.String("request", "", "only this request's records")
	patient := fs.String("patient", "", "only records of this patient pseudonym (pn-...)")
	from := fs.String("from", "", "only records at or after this time (RFC 3339)")
	to := fs.String("to", "", "only records before this time (RFC 3339)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := path()
	if err != nil {
		return err
	}
	f := ledger.TrailFilter{Request: ledger.RequestID(*req), Pseudonym: ledger.ParticipantID(*patient)}
	for _, t := range []struct {
		name string
		s    string
		dst  *time.Time
	}{{"--from", *from, &f.From}, {"--to", *to, &f.To}} {
		if t.s == "" {
			continue
		}
		if *t.dst, err = time.Parse(time.RFC3339, t.s); err != nil {
			return fmt.Errorf("%w: %s %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", errUsage, t.name, t.s)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return fmt.Errorf("%w: --from must be before --to", errUsage)
	}
	w := stdout
	var file *os.File
	if *out != "" {
		if file, err = os.Create(*out); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		w = file
	}
	var tw ledger.TrailWriter
	switch *format {
	case "jsonl":
		tw = ledger.NewTrailJSONL(w)
	case "csv":
		tw = ledger.NewTrailCSV(w)
	default:
		if file != nil {
			file.Close()
			os.Remove(*out)
		}
		return fmt.Errorf("%w: --format %q: want jsonl or csv", errUsage, *format)
	}
	err = embedded.TrailFile(ctx, p, f, tw.Write)
	if err == nil {
		err = tw.Flush()
	}
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*out)
		}
	}
	if err != nil {
		return fmt.Errorf("export trail: %w", err)
	}
	return nil
}
