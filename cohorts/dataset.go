package cohorts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// Manifest identifies a dataset file: what a custodian signs and publishes on
// the ledger as the dataset's pointer.
type Manifest struct {
	ContentHash string // hex sha256 of the file bytes
	SchemaHash  string // hex sha256 of a canonical description of the schema
	Rows        int64
	RefDate     time.Time
	Path        string
}

// Dataset is a patient table loaded in memory as Arrow record batches. It is
// safe for concurrent use by several queries; Close must not race with them.
type Dataset struct {
	manifest Manifest
	batches  []batch
	rows     int64
	closed   bool
}

// batch is one record batch with typed views of its columns, built once at
// Open so evaluation never goes through the arrow.Array interface per row.
type batch struct {
	rec    arrow.Record
	n      int
	id     *array.String
	cats   [numFields][]uint8 // categorical columns: index into column.groups
	ints   [numFields]*array.Int32
	floats [numFields]*array.Float64
	codes  [numFields]codeList
}

// codeList is a list<utf8> column: row i's codes are values[offsets[i]:offsets[i+1]].
type codeList struct {
	offsets []int32 // len n+1, already adjusted for the array's offset
	values  *array.String
}

// Open reads the Parquet file at path into Arrow record batches in memory,
// verifies that its schema is the patient table schema and that its values
// are well formed (non-empty unique patient ids, sex "F" or "M", finite
// measurements), and hashes its bytes for the manifest.
func Open(ctx context.Context, path string) (*Dataset, error) {
	return openDataset(ctx, path, memory.DefaultAllocator)
}

func openDataset(ctx context.Context, path string, mem memory.Allocator) (*Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	sum := sha256.Sum256(data)
	d, err := readDataset(ctx, data, mem)
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", path, err)
	}
	d.manifest.ContentHash = hex.EncodeToString(sum[:])
	d.manifest.Path = path
	return d, nil
}

func readDataset(ctx context.Context, data []byte, mem memory.Allocator) (_ *Dataset, err error) {
	pf, err := file.NewParquetReader(bytes.NewReader(data), file.WithReadProps(nil))
	if err != nil {
		return nil, fmt.Errorf("read parquet: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batchRows}, mem)
	if err != nil {
		return nil, fmt.Errorf("read parquet: %w", err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	refDate, schemaHash, err := verifySchema(schema)
	if err != nil {
		return nil, fmt.Errorf("verify schema: %w", err)
	}
	d := &Dataset{manifest: Manifest{SchemaHash: schemaHash, RefDate: refDate}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("read records: %w", err)
	}
	defer rr.Release()
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec := rr.Record()
		rec.Retain()
		b, err := newBatch(rec)
		if err != nil {
			rec.Release()
			return nil, fmt.Errorf("row %d: %w", d.rows, err)
		}
		d.batches = append(d.batches, b)
		d.rows += int64(b.n)
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read records: %w", err)
	}
	if d.rows != pf.NumRows() {
		return nil, fmt.Errorf("read %d rows, file says %d", d.rows, pf.NumRows())
	}
	if err := d.checkUniqueIDs(); err != nil {
		return nil, err
	}
	d.manifest.Rows = d.rows
	return d, nil
}

// newBatch builds the typed views of rec and validates its values.
func newBatch(rec arrow.Record) (batch, error) {
	n := int(rec.NumRows())
	b := batch{rec: rec, n: n}
	var ok bool
	if b.id, ok = rec.Column(fID).(*array.String); !ok || b.id.NullN() > 0 {
		return batch{}, errors.New("patient_id must be non-null utf8")
	}
	for i := range n {
		if b.id.Value(i) == "" {
			return batch{}, fmt.Errorf("row %d: empty patient_id", i)
		}
	}
	for _, c := range allColumns() {
		col := rec.Column(c.field)
		switch c.kind {
		case kindCat:
			a, ok := col.(*array.String)
			if !ok || a.NullN() > 0 {
				return batch{}, fmt.Errorf("%s must be non-null utf8", c.name)
			}
			codes := make([]uint8, n)
			for i := range n {
				// Exact match: files hold the declared spelling.
				j := slices.Index(c.groups, a.Value(i))
				if j < 0 {
					return batch{}, fmt.Errorf("patient %s: %s %q is not %s", b.id.Value(i), c.name, a.Value(i), c.domainText())
				}
				codes[i] = uint8(j)
			}
			b.cats[c.field] = codes
		case kindInt:
			a, ok := col.(*array.Int32)
			if !ok || a.NullN() > 0 {
				return batch{}, fmt.Errorf("%s must be non-null int32", c.name)
			}
			b.ints[c.field] = a
		case kindFloat:
			a, ok := col.(*array.Float64)
			if !ok {
				return batch{}, fmt.Errorf("%s must be float64", c.name)
			}
			for i, v := range a.Float64Values() {
				if a.IsValid(i) && (math.IsNaN(v) || math.IsInf(v, 0)) {
					return batch{}, fmt.Errorf("patient %s: %s is %v", b.id.Value(i), c.name, v)
				}
			}
			b.floats[c.field] = a
		case kindCodes:
			a, ok := col.(*array.List)
			if !ok || a.NullN() > 0 {
				return batch{}, fmt.Errorf("%s must be a non-null list", c.name)
			}
			vals, ok := a.ListValues().(*array.String)
			if !ok {
				return batch{}, fmt.Errorf("%s must be a list of utf8", c.name)
			}
			b.codes[c.field] = codeList{offsets: a.Offsets()[a.Offset() : a.Offset()+n+1], values: vals}
		}
	}
	return b, nil
}

func (d *Dataset) checkUniqueIDs() error {
	seen := make(map[string]struct{}, d.rows)
	for _, b := range d.batches {
		for i := range b.n {
			id := b.id.Value(i)
			if _, dup := seen[id]; dup {
				return fmt.Errorf("duplicate patient_id %q", id)
			}
			seen[id] = struct{}{}
		}
	}
	return nil
}

// Manifest returns the dataset's manifest.
func (d *Dataset) Manifest() Manifest { return d.manifest }

// Rows returns the number of patients.
func (d *Dataset) Rows() int64 { return d.rows }

// RefDate returns the reference date at which ages are counted.
func (d *Dataset) RefDate() time.Time { return d.manifest.RefDate }

// Close releases the record batches. It is safe to call more than once.
func (d *Dataset) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	for _, b := range d.batches {
		b.rec.Release()
	}
	d.batches = nil
	return nil
}

// PatientIDs returns all patient ids in file order. They are the custodian's
// record ids: for custodian-side use only.
func (d *Dataset) PatientIDs() []string {
	ids := make([]string, 0, d.rows)
	for _, b := range d.batches {
		for i := range b.n {
			ids = append(ids, strings.Clone(b.id.Value(i)))
		}
	}
	return ids
}

// ErrClosed is returned by methods of a closed Dataset.
var ErrClosed = errors.New("dataset is closed")
