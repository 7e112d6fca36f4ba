package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/medx/medx/cohorts"
)

const generateUsage = "medx generate --out DIR [--patients N] [--seed S] [--ref-date YYYY-MM-DD] [--id-prefix P]"

// runGenerate writes a seeded synthetic dataset to DIR/patients.parquet and
// prints its manifest: the same flags give a byte-identical file.
func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	out := addOutFlags(fs, "reference date YYYY-MM-DD at which ages are counted")
	patients := fs.Int("patients", 10000, "patients to generate (1 to 100,000,000)")
	seed := fs.Uint64("seed", 1, "seed: the same seed and flags give the same dataset")
	prefix := fs.String("id-prefix", "", "prefix of the patient ids (e.g. c1- for c1-000042), to keep several custodians' ids apart")
	if err := parseFlags(fs, args); err != nil {
		return fmt.Errorf("%w (%s)", err, generateUsage)
	}
	ref, err := out.check(generateUsage)
	if err != nil {
		return err
	}
	if *patients < 1 {
		return fmt.Errorf("%w: --patients %d: want at least 1", errUsage, *patients)
	}
	path, created, err := prepareOut(*out.dir)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	start := time.Now()
	m, err := cohorts.Generate(ctx, path, cohorts.GenerateOptions{Patients: *patients, Seed: *seed, RefDate: ref, IDPrefix: *prefix})
	if err != nil {
		if created {
			os.Remove(*out.dir) // only if still empty
		}
		return err
	}
	fmt.Fprintf(stdout, "generated %d synthetic patients (seed %d) in %.2fs\n", m.Rows, *seed, time.Since(start).Seconds())
	printManifest(stdout, m)
	return nil
}
