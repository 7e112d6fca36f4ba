package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/medx/medx/cohorts"
)

// defaultRefDate is --ref-date's default: a fixed date, so that an import
// without the flag is reproducible. It is the date `medx demo` counts ages
// at; a custodian should pass its data's export date.
const defaultRefDate = "2026-01-01"

// datasetFile is the name of the dataset inside an --out or --dataset
// directory.
const datasetFile = "patients.parquet"

const importUsage = "medx import fhir|omop|csv INPUT --out DIR [--ref-date YYYY-MM-DD] [--mapping FILE (csv)]"

// runImport imports records into DIR/patients.parquet and prints its
// manifest. A failed import leaves no dataset behind.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: %s", errUsage, importUsage)
	}
	format := args[0]
	switch format {
	case "fhir", "omop", "csv":
	default:
		return fmt.Errorf("%w: unknown import format %q: %s", errUsage, format, importUsage)
	}
	fs := newFlags("import "+format, stderr)
	out := addOutFlags(fs, "reference date YYYY-MM-DD, normally the data's export date: ages are counted at it, later records are left out")
	mapping := fs.String("mapping", "", "mapping file (JSON) naming the CSV columns; required for csv")
	input, err := parseWithArg(fs, args[1:], "INPUT")
	if err != nil {
		return fmt.Errorf("%w (%s)", err, importUsage)
	}
	ref, err := out.check(importUsage)
	if err != nil {
		return err
	}
	if (format == "csv") != (*mapping != "") {
		if format == "csv" {
			return fmt.Errorf("%w: import csv needs --mapping FILE", errUsage)
		}
		return fmt.Errorf("%w: --mapping is for csv imports only", errUsage)
	}
	var m *cohorts.CSVMapping
	if format == "csv" {
		if m, err = cohorts.ReadCSVMapping(*mapping); err != nil {
			return err
		}
	}
	if _, err := os.Stat(input); err != nil {
		return fmt.Errorf("import %s: %w", format, err)
	}

	path, created, err := prepareOut(*out.dir)
	if err != nil {
		return fmt.Errorf("import %s: %w", format, err)
	}

	bar := newProgressBar(stderr, "import "+format)
	opts := cohorts.ImportOptions{RefDate: ref, Progress: bar.update}
	var res cohorts.ImportResult
	switch format {
	case "fhir":
		res, err = cohorts.ImportFHIR(ctx, input, path, opts)
	case "omop":
		res, err = cohorts.ImportOMOP(ctx, input, path, opts)
	case "csv":
		res, err = cohorts.ImportCSV(ctx, input, m, path, opts)
	}
	bar.finish()
	if err != nil {
		if created {
			os.Remove(*out.dir) // only if still empty
		}
		return err
	}
	printImport(stdout, input, res)
	return nil
}

// parseWithArg parses flags that may come before or after exactly one
// positional argument, which it returns.
func parseWithArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%w: want one %s, got %d arguments", errUsage, what, len(pos))
	}
	return pos[0], nil
}

func printImport(w io.Writer, input string, res cohorts.ImportResult) {
	s, m := res.Stats, res.Manifest
	fmt.Fprintf(w, "imported %d patients from %s\n", m.Rows, input)
	fmt.Fprintf(w, "  read          %d files, %.1f MB, %d records, %d measurements\n", s.Files, float64(s.Bytes)/1e6, s.Records, s.Measures)
	if text := s.SkippedText(); text != "" {
		fmt.Fprintln(w, "  not imported")
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	printManifest(w, m)
	if !s.ExportDate.IsZero() && !s.ExportDate.Equal(m.RefDate) {
		fmt.Fprintf(w, "note: the data states its export date as %s; ages are counted at %s (--ref-date)\n",
			s.ExportDate.Format("2006-01-02"), m.RefDate.Format("2006-01-02"))
	}
}

// prepareOut makes sure directory out exists (created reports whether it
// was made here, so that a failure can remove it) and holds no dataset yet,
// and returns the dataset's path in it.
// outFlags are the flags of a command that writes a dataset: --out and
// --ref-date.
type outFlags struct {
	dir, refDate *string
}

// addOutFlags defines --out and --ref-date on fs; refUsage says what the
// reference date is.
func addOutFlags(fs *flag.FlagSet, refUsage string) outFlags {
	return outFlags{
		dir:     fs.String("out", "", "directory to write "+datasetFile+" into (created if missing; must not hold one already)"),
		refDate: fs.String("ref-date", defaultRefDate, refUsage),
	}
}

// check refuses a missing --out (with the command's usage line) and a
// malformed --ref-date, and returns the reference date.
func (o outFlags) check(usage string) (time.Time, error) {
	if *o.dir == "" {
		return time.Time{}, fmt.Errorf("%w: --out DIR is required (%s)", errUsage, usage)
	}
	ref, err := time.Parse("2006-01-02", *o.refDate)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: --ref-date %q: want YYYY-MM-DD", errUsage, *o.refDate)
	}
	return ref, nil
}

func prepareOut(out string) (path string, created bool, err error) {
	path = filepath.Join(out, datasetFile)
	if _, err := os.Stat(path); err == nil {
		return "", false, fmt.Errorf("%s already exists: remove it or choose another --out", path)
	}
	if _, err := os.Stat(out); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return "", false, err
		}
		created = true
	}
	return path, created, nil
}

// printManifest prints a dataset's manifest, as a custodian registers it.
func printManifest(w io.Writer, m cohorts.Manifest) {
	fmt.Fprintln(w, "dataset manifest")
	fmt.Fprintf(w, "  path          %s\n", m.Path)
	fmt.Fprintf(w, "  rows          %d\n", m.Rows)
	fmt.Fprintf(w, "  content hash  %s\n", m.ContentHash)
	fmt.Fprintf(w, "  schema hash   %s\n", m.SchemaHash)
	fmt.Fprintf(w, "  ref date      %s\n", m.RefDate.Format("2006-01-02"))
}

// progressBar draws a long command's progress (an import's bytes, an
// audit's blocks) on a terminal, and nothing elsewhere (pipes, files,
// tests).
type progressBar struct {
	bar *progressbar.ProgressBar
}

// newProgressBar counts bytes; newCountBar counts items.
func newProgressBar(stderr io.Writer, desc string) *progressBar {
	return newBar(stderr, desc, progressbar.OptionShowBytes(true))
}

func newCountBar(stderr io.Writer, desc string) *progressBar {
	return newBar(stderr, desc, progressbar.OptionShowCount())
}

func newBar(stderr io.Writer, desc string, unit progressbar.Option) *progressBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progressBar{}
	}
	return &progressBar{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(desc),
		unit,
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progressBar) update(done, total int64) {
	if p.bar == nil {
		return
	}
	if total > 0 && p.bar.GetMax64() != total {
		p.bar.ChangeMax64(total)
	}
	p.bar.Set64(done)
}

func (p *progressBar) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
