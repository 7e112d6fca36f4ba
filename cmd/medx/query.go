package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/medx/medx/cohorts"
)

const queryUsage = "medx query --dataset DIR 'SELECT ... FROM cohort ...'"

// runQuery evaluates an aggregate query over a custodian's own dataset and
// prints the table. The custodian holds these records anyway, so no
// disclosure control applies; the language still returns aggregates only.
func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query", stderr)
	dataset := fs.String("dataset", "", "dataset: a directory holding "+datasetFile+", or the Parquet file itself")
	src, err := parseWithArg(fs, args, "query")
	if err != nil {
		return fmt.Errorf("%w (%s)", err, queryUsage)
	}
	if *dataset == "" {
		return fmt.Errorf("%w: --dataset is required (%s)", errUsage, queryUsage)
	}
	q, err := cohorts.ParseQuery(src)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	path := *dataset
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, datasetFile)
	}
	d, err := cohorts.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer d.Close()
	vec, err := d.Aggregate(ctx, q, cohorts.AllPatients())
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	tbl, err := q.Finalize(vec, nil)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	fmt.Fprint(stdout, tbl)
	fmt.Fprintf(stdout, "(%d patients in %s, reference date %s; evaluated locally, without disclosure control)\n",
		d.Rows(), path, d.RefDate().Format("2006-01-02"))
	return nil
}
