package cohorts

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// batchRows is the number of rows per record batch and per Parquet row group.
const batchRows = 64 * 1024

// createdBy is written into every Parquet footer instead of the library's
// default, so files do not change with the Arrow version and the same input
// gives byte-identical files.
const createdBy = "medx cohorts (schema " + SchemaVersion + ")"

// Measure is a nullable measurement.
type Measure struct {
	Value float64
	Valid bool // false: not measured (NULL)
}

// Measured returns a valid measurement of x.
func Measured(x float64) Measure { return Measure{Value: x, Valid: true} }

// Patient is one row of the patient table, as importers and the generator
// produce it. Measurements outside a column's declared bounds are stored as
// given and clamped when queried.
type Patient struct {
	ID          string // the custodian's pseudonymous record id
	Sex         string // "F" or "M"
	BirthYear   int
	Age         int      // whole years at the dataset's reference date (see AgeAt), also for the deceased
	Deceased    bool     // died on or before the reference date: vital_status 'deceased'
	Conditions  []string // SNOMED CT (or ICD-10) codes
	Medications []string // RxNorm codes
	HbA1c       Measure  // %
	BMI         Measure  // kg/m2
	SBP, DBP    Measure  // mmHg
	LDL         Measure  // mg/dL
}

// validate checks p against the schema and the reference year.
func (p *Patient) validate(refYear int) error {
	if p.ID == "" {
		return errors.New("empty patient id")
	}
	if p.Sex != "F" && p.Sex != "M" {
		return fmt.Errorf("patient %s: sex %q is not \"F\" or \"M\"", p.ID, p.Sex)
	}
	if p.Age < 0 || p.Age > 150 {
		return fmt.Errorf("patient %s: age %d out of range", p.ID, p.Age)
	}
	if d := refYear - p.BirthYear - p.Age; d != 0 && d != 1 {
		return fmt.Errorf("patient %s: age %d does not match birth year %d at reference year %d", p.ID, p.Age, p.BirthYear, refYear)
	}
	for _, list := range []struct {
		name  string
		codes []string
	}{{"condition", p.Conditions}, {"medication", p.Medications}} {
		for _, code := range list.codes {
			if err := checkCode(code); err != nil {
				return fmt.Errorf("patient %s: %s code: %w", p.ID, list.name, err)
			}
		}
	}
	for _, m := range []struct {
		name string
		m    Measure
	}{{"hba1c", p.HbA1c}, {"bmi", p.BMI}, {"sbp", p.SBP}, {"dbp", p.DBP}, {"ldl", p.LDL}} {
		if m.m.Valid && (math.IsNaN(m.m.Value) || math.IsInf(m.m.Value, 0)) {
			return fmt.Errorf("patient %s: %s is %v", p.ID, m.name, m.m.Value)
		}
	}
	return nil
}

// checkCode accepts codes of letters, digits, '.', '-' and '_' (SNOMED CT,
// ICD-10, RxNorm); a '*' would be read as a prefix wildcard by queries.
func checkCode(code string) error {
	if code == "" {
		return errors.New("empty code")
	}
	if len(code) > 64 {
		return fmt.Errorf("code %.20q... is longer than 64 characters", code)
	}
	for _, r := range code {
		if !codeChar(r) {
			return fmt.Errorf("code %q contains %q: codes are letters, digits, '.', '-', '_'", code, r)
		}
	}
	return nil
}

func codeChar(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '-' || r == '_'
}

// DatasetWriter streams patients into a new dataset file. The file appears at
// its path only when Close succeeds; until then it is a temporary file in the
// same directory, removed by Abort or a failed Close.
type DatasetWriter struct {
	path    string
	refDate time.Time
	mem     memory.Allocator
	tmp     *os.File
	buf     *bufio.Writer
	hash    hash.Hash
	fw      *pqarrow.FileWriter
	rb      *array.RecordBuilder
	rows    int64
	pending int
	done    bool

	// typed builders, in schema order
	id, sex, vital    *array.StringBuilder
	birthYear, age    *array.Int32Builder
	conds, meds       *array.ListBuilder
	condVals, medVals *array.StringBuilder
	hba1c, bmi, sbp   *array.Float64Builder
	dbp, ldl          *array.Float64Builder
}

// hashingWriter writes to a buffered file and a hash, and is not an
// io.Closer, so the Parquet writer cannot close the file behind our back.
type hashingWriter struct{ w io.Writer }

func (h hashingWriter) Write(p []byte) (int, error) { return h.w.Write(p) }

// CreateDataset starts a dataset file at path whose ages are counted at
// refDate (only its date is kept).
func CreateDataset(ctx context.Context, path string, refDate time.Time) (*DatasetWriter, error) {
	return createDataset(ctx, path, refDate, memory.DefaultAllocator)
}

func createDataset(ctx context.Context, path string, refDate time.Time, mem memory.Allocator) (*DatasetWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create dataset %s: %w", path, err)
	}
	if path == "" {
		return nil, errors.New("create dataset: empty path")
	}
	if refDate.IsZero() {
		return nil, fmt.Errorf("create dataset %s: reference date is required", path)
	}
	refDate = dateOnly(refDate)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create dataset %s: %w", path, err)
	}
	w := &DatasetWriter{path: path, refDate: refDate, mem: mem, tmp: tmp, hash: sha256.New()}
	w.buf = bufio.NewWriterSize(io.MultiWriter(tmp, w.hash), 1<<20)
	schema := arrowSchema(refDate)
	props := parquet.NewWriterProperties(
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCreatedBy(createdBy),
		parquet.WithMaxRowGroupLength(batchRows),
		parquet.WithDictionaryFor("patient_id", false), // unique values: a dictionary only costs
	)
	w.fw, err = pqarrow.NewFileWriter(schema, hashingWriter{w.buf}, props,
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema(), pqarrow.WithAllocator(mem)))
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("create dataset %s: parquet writer: %w", path, err)
	}
	w.rb = array.NewRecordBuilder(mem, schema)
	w.id = w.rb.Field(fID).(*array.StringBuilder)
	w.sex = w.rb.Field(fSex).(*array.StringBuilder)
	w.birthYear = w.rb.Field(fBirthYear).(*array.Int32Builder)
	w.age = w.rb.Field(fAge).(*array.Int32Builder)
	w.vital = w.rb.Field(fVital).(*array.StringBuilder)
	w.conds = w.rb.Field(fConditions).(*array.ListBuilder)
	w.condVals = w.conds.ValueBuilder().(*array.StringBuilder)
	w.meds = w.rb.Field(fMedications).(*array.ListBuilder)
	w.medVals = w.meds.ValueBuilder().(*array.StringBuilder)
	w.hba1c = w.rb.Field(fHbA1c).(*array.Float64Builder)
	w.bmi = w.rb.Field(fBMI).(*array.Float64Builder)
	w.sbp = w.rb.Field(fSBP).(*array.Float64Builder)
	w.dbp = w.rb.Field(fDBP).(*array.Float64Builder)
	w.ldl = w.rb.Field(fLDL).(*array.Float64Builder)
	w.reserve()
	return w, nil
}

func (w *DatasetWriter) reserve() {
	w.rb.Reserve(batchRows)
}

// Write validates p and appends it. An invalid patient returns an error and
// is not written; the writer stays usable. The writer keeps no reference to p,
// so callers may reuse it (and its slices) for the next patient.
func (w *DatasetWriter) Write(ctx context.Context, p *Patient) error {
	if w.done {
		return errors.New("write patient: dataset writer is closed")
	}
	if err := p.validate(w.refDate.Year()); err != nil {
		return fmt.Errorf("write patient: %w", err)
	}
	w.id.Append(p.ID)
	w.sex.Append(p.Sex)
	w.birthYear.Append(int32(p.BirthYear))
	w.age.Append(int32(p.Age))
	if p.Deceased {
		w.vital.Append(VitalDeceased)
	} else {
		w.vital.Append(VitalAlive)
	}
	w.conds.Append(true)
	for _, c := range p.Conditions {
		w.condVals.Append(c)
	}
	w.meds.Append(true)
	for _, m := range p.Medications {
		w.medVals.Append(m)
	}
	appendMeasure(w.hba1c, p.HbA1c)
	appendMeasure(w.bmi, p.BMI)
	appendMeasure(w.sbp, p.SBP)
	appendMeasure(w.dbp, p.DBP)
	appendMeasure(w.ldl, p.LDL)
	w.pending++
	if w.pending == batchRows {
		return w.flush(ctx)
	}
	return nil
}

func appendMeasure(b *array.Float64Builder, m Measure) {
	if m.Valid {
		b.Append(m.Value)
	} else {
		b.AppendNull()
	}
}

// flush writes the pending rows as one record batch and row group.
func (w *DatasetWriter) flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write dataset %s: %w", w.path, err)
	}
	if w.pending == 0 {
		return nil
	}
	rec := w.rb.NewRecord()
	defer rec.Release()
	if err := w.fw.Write(rec); err != nil {
		return fmt.Errorf("write dataset %s: %w", w.path, err)
	}
	w.rows += int64(w.pending)
	w.pending = 0
	w.reserve()
	return nil
}

// Rows returns the number of patients written so far.
func (w *DatasetWriter) Rows() int64 { return w.rows + int64(w.pending) }

// Close writes the remaining rows and the footer, syncs the file, moves it to
// its path and returns its manifest. On error nothing is left at the path.
func (w *DatasetWriter) Close(ctx context.Context) (Manifest, error) {
	if w.done {
		return Manifest{}, errors.New("close dataset: already closed")
	}
	if err := w.flush(ctx); err != nil {
		w.Abort()
		return Manifest{}, err
	}
	w.done = true
	w.rb.Release()
	err := w.fw.Close()
	if err == nil {
		err = w.buf.Flush()
	}
	if err == nil {
		err = w.tmp.Sync()
	}
	if cerr := w.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.tmp.Name())
		return Manifest{}, fmt.Errorf("close dataset %s: %w", w.path, err)
	}
	schemaHash := canonicalSchemaHash(arrowSchema(w.refDate))
	return Manifest{
		ContentHash: hex.EncodeToString(w.hash.Sum(nil)),
		SchemaHash:  schemaHash,
		Rows:        w.rows,
		RefDate:     w.refDate,
		Path:        w.path,
	}, nil
}

// Abort discards everything written and removes the temporary file. It is a
// no-op after Close.
func (w *DatasetWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.rb.Release()
	w.fw.Close() // releases buffers; the output is discarded anyway
	w.tmp.Close()
	if err := os.Remove(w.tmp.Name()); err != nil {
		return fmt.Errorf("abort dataset %s: %w", w.path, err)
	}
	return nil
}

// setMeasure stores m in p's measurement column f (one of the float
// fields: fHbA1c, fBMI, fSBP, fDBP, fLDL); other fields are ignored.
func (p *Patient) setMeasure(f int, m Measure) {
	switch f {
	case fHbA1c:
		p.HbA1c = m
	case fBMI:
		p.BMI = m
	case fSBP:
		p.SBP = m
	case fDBP:
		p.DBP = m
	case fLDL:
		p.LDL = m
	}
}
