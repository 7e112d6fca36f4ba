package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

const usage = `usage: medx <command> [flags]

commands:
  demo          run a whole study end to end on the embedded ledger and print what each party sees
  audit verify  verify a ledger independently (--dir DIR or --ledger FILE) and summarise the trail
  audit export  write the licence and query trail as JSON Lines or CSV, filtered by request, patient, time
  bench query   time one typical query in plaintext and through the encrypted path (one JSON object)
  bench api     load GET /v1/offers and POST accept on loopback against a bare handler returning the same bytes (one JSON object)
  serve         serve the HTTP API over a data directory (the demo's, created if missing)
  token         print a development bearer token signed with a data directory's key
  import        import FHIR R4, OMOP CDM or CSV records into a dataset: medx import fhir|omop|csv INPUT --out DIR
  generate      write a seeded synthetic dataset: medx generate --out DIR [--patients N] [--seed S]
  query         evaluate an aggregate query over a custodian's own dataset: medx query --dataset DIR 'SELECT ...'
  chaincode     serve the MedX Fabric chaincode as a service (CHAINCODE_SERVER_ADDRESS, CORE_CHAINCODE_ID_NAME)
  notebook      run a notebook as the sponsor (HTML report + .ipynb, recorded on the ledger) or verify a report: medx notebook run|verify|demo-study

Run 'medx <command> -h' for a command's flags.`

// errUsage marks errors that are the caller's: wrong command or flags.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		switch {
		case len(args) >= 2 && args[1] == "verify":
			return runAuditVerify(ctx, args[2:], stdout, stderr)
		case len(args) >= 2 && args[1] == "export":
			return runAuditExport(ctx, args[2:], stdout, stderr)
		}
		return fmt.Errorf("%w: medx audit verify|export (--dir DIR | --ledger FILE)", errUsage)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr)
	case "query":
		return runQuery(ctx, args[1:], stdout, stderr)
	case "generate":
		return runGenerate(ctx, args[1:], stdout, stderr)
	case "chaincode":
		return runChaincode(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "notebook":
		return runNotebook(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("medx "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and refuses stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments: %s", errUsage, strings.Join(fs.Args(), " "))
	}
	return nil
}

// newLogger builds the process logger: text to stderr at the given level.
func newLogger(stderr io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: log level %q: want debug, info, warn or error", errUsage, level)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}
