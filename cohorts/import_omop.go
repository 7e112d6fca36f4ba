package cohorts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/decimal128"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// OMOP CDM concept ids the importer knows without the concept table.
const (
	omopMale   = 8507
	omopFemale = 8532
)

// omopMeasureConcept maps standard measurement concepts to LOINC codes, for
// a vocabulary subset that lacks them.
func omopMeasureConcept(id int64) string {
	switch id {
	case 3004410: // Hemoglobin A1c/Hemoglobin.total in Blood
		return "4548-4"
	case 3038553: // Body mass index
		return "39156-5"
	case 3004249: // Systolic blood pressure
		return "8480-6"
	case 3012888: // Diastolic blood pressure
		return "8462-4"
	case 3009966: // Cholesterol in LDL, direct assay
		return "18262-6"
	}
	return ""
}

// omopVocabulary reports whether the importer keeps concepts of vocabulary v.
func omopVocabulary(v string) bool {
	switch v {
	case "SNOMED", "ICD10", "ICD10CM", "RxNorm", "RxNorm Extension", "LOINC", "UCUM":
		return true
	}
	return false
}

// ImportOMOP imports an OMOP CDM 5.4 database stored as Parquet, one file
// per table named after it (person.parquet, ...), into a new dataset at out.
// input is a directory (searched recursively) or a .zip of the files.
//
// Tables read: person (required: gender 8532 F, 8507 M, others skipped;
// birth from birth_datetime or year/month/day_of_birth), death (optional),
// concept (required with any of the next three: maps concept ids to codes),
// condition_occurrence (conditions as SNOMED CT or ICD-10 codes, every
// occurrence starting on or before the reference date), drug_exposure
// (RxNorm codes, every exposure starting on or before it), measurement
// (HbA1c, BMI, blood pressure and LDL by their LOINC concepts, the latest
// value on or before the reference date, units from unit_concept_id or
// unit_source_value, checked and converted), and cdm_source (optional: its
// source_release_date is reported as ImportStats.ExportDate). Patient ids
// are the person_id values.
//
// Tables are read in record batches of selected columns; tables inside a
// zip are extracted to a temporary directory first, because Parquet is read
// from the end. Malformed input (a missing table or column, a column of the
// wrong type, an unknown unit, a duplicate person, a row about a person the
// person table lacks) is an *InputError naming the table file and row; the
// import then leaves nothing at out.
func ImportOMOP(ctx context.Context, input, out string, opts ImportOptions) (ImportResult, error) {
	if err := checkImport(ctx, out, opts); err != nil {
		return ImportResult{}, fmt.Errorf("import omop: %w", err)
	}
	in, err := openInput(input, ".parquet")
	if err != nil {
		return ImportResult{}, fmt.Errorf("import omop: %w", err)
	}
	defer in.Close()
	tmp, err := os.MkdirTemp("", "medx-omop-*")
	if err != nil {
		return ImportResult{}, fmt.Errorf("import omop: %w", err)
	}
	defer os.RemoveAll(tmp)
	imp := &omopImport{
		ref: dateOnly(opts.RefDate), tmp: tmp, tables: map[string]*source{}, mem: memory.DefaultAllocator,
		persons: map[int64]*patientAcc{}, personRow: map[int64]int64{}, concepts: map[int64]omopConcept{},
		intern: interner{}, specs: measureSpecs(), byLOINC: map[string]int{},
	}
	for i, s := range imp.specs {
		for _, c := range s.loinc {
			imp.byLOINC[c] = i
		}
	}
	imp.prog = newProgress(opts.Progress, -1)
	if err := imp.run(ctx, in); err != nil {
		return ImportResult{}, fmt.Errorf("import omop: %w", err)
	}
	imp.prog.finish()
	m, err := writePatients(ctx, out, opts.RefDate, imp.order, &imp.stats)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import omop %s: %w", input, err)
	}
	return ImportResult{Manifest: m, Stats: imp.stats}, nil
}

type omopConcept struct {
	vocab, code string
}

type omopImport struct {
	ref       time.Time
	tmp       string
	mem       memory.Allocator
	tables    map[string]*source
	prog      *progress
	stats     ImportStats
	persons   map[int64]*patientAcc
	personRow map[int64]int64
	order     []*patientAcc
	concepts  map[int64]omopConcept
	intern    interner
	specs     []measureSpec
	byLOINC   map[string]int
	seq       int64
}

func (imp *omopImport) run(ctx context.Context, in *inputSet) error {
	var total int64
	for _, src := range in.sources {
		name := strings.ToLower(strings.TrimSuffix(path.Base(filepathToSlash(src.name)), path.Ext(src.name)))
		if prev, dup := imp.tables[name]; dup {
			return &InputError{File: src.name, Msg: fmt.Sprintf("a second %s table (the first is %s)", name, prev.name)}
		}
		imp.tables[name] = src
	}
	for _, t := range []string{"person", "death", "concept", "cdm_source", "condition_occurrence", "drug_exposure", "measurement"} {
		if src, ok := imp.tables[t]; ok && src.size > 0 {
			total += src.size
		}
	}
	imp.prog.total = total
	if _, ok := imp.tables["person"]; !ok {
		return errors.New("input has no person table (person.parquet)")
	}
	needConcepts := false
	for _, t := range []string{"condition_occurrence", "drug_exposure", "measurement"} {
		_, ok := imp.tables[t]
		needConcepts = needConcepts || ok
	}
	steps := []struct {
		table    string
		required bool
		read     func(context.Context, *omopTable) error
	}{
		{"cdm_source", false, imp.readSource},
		{"concept", needConcepts, imp.readConcepts},
		{"person", true, imp.readPersons},
		{"death", false, imp.readDeaths},
		{"condition_occurrence", false, imp.readConditions},
		{"drug_exposure", false, imp.readDrugs},
		{"measurement", false, imp.readMeasurements},
	}
	for _, s := range steps {
		src, ok := imp.tables[s.table]
		if !ok {
			if s.required {
				return fmt.Errorf("input has no %s table (%s.parquet), needed to map concept ids to codes", s.table, s.table)
			}
			continue
		}
		t, err := imp.open(src)
		if err != nil {
			return err
		}
		err = s.read(ctx, t)
		t.close()
		if err != nil {
			return err
		}
		imp.stats.Files++
		if src.size > 0 {
			imp.stats.Bytes += src.size
			imp.prog.add(src.size)
		}
	}
	return nil
}

func filepathToSlash(p string) string { return strings.ReplaceAll(p, "\\", "/") }

// omopTable is one open Parquet table.
type omopTable struct {
	src *source
	f   *os.File
	fr  *pqarrow.FileReader
	pf  *file.Reader
}

func (t *omopTable) close() {
	t.pf.Close()
	t.f.Close()
}

// open opens a table, extracting it from the zip first if need be.
func (imp *omopImport) open(src *source) (*omopTable, error) {
	p := src.path
	if p == "" {
		r, err := src.open()
		if err != nil {
			return nil, &InputError{File: src.name, Msg: err.Error(), Err: err}
		}
		f, err := os.CreateTemp(imp.tmp, "*.parquet")
		if err == nil {
			_, err = io.Copy(f, r)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("extract %s: %w", src.name, err)
		}
		p = f.Name()
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.name, err)
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		f.Close()
		return nil, &InputError{File: src.name, Msg: "not a readable Parquet file: " + err.Error(), Err: err}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: batchRows}, imp.mem)
	if err != nil {
		pf.Close()
		f.Close()
		return nil, &InputError{File: src.name, Msg: "not a readable Parquet file: " + err.Error(), Err: err}
	}
	return &omopTable{src: src, f: f, fr: fr, pf: pf}, nil
}

// omopBatch is one record batch of a table, with the rows before it.
type omopBatch struct {
	t    *omopTable
	rec  arrow.Record
	row0 int64
}

func (b *omopBatch) n() int { return int(b.rec.NumRows()) }

// rowError returns an *InputError at row i of the batch.
func (b *omopBatch) rowError(i int, format string, args ...any) *InputError {
	return &InputError{File: b.t.src.name, Row: b.row0 + int64(i) + 1, Msg: fmt.Sprintf(format, args...)}
}

func (b *omopBatch) column(name string) arrow.Array {
	idx := b.rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return b.rec.Column(idx[0])
}

func (b *omopBatch) typeError(name string, a arrow.Array, want string) error {
	return &InputError{File: b.t.src.name, Msg: fmt.Sprintf("column %s has type %s, want %s", name, a.DataType(), want)}
}

// ints returns a reader of an integer column.
func (b *omopBatch) ints(name string) (func(int) (int64, bool), error) {
	switch a := b.column(name).(type) {
	case *array.Int32:
		return func(i int) (int64, bool) { return int64(a.Value(i)), a.IsValid(i) }, nil
	case *array.Int64:
		return func(i int) (int64, bool) { return a.Value(i), a.IsValid(i) }, nil
	case *array.Int16:
		return func(i int) (int64, bool) { return int64(a.Value(i)), a.IsValid(i) }, nil
	case nil:
		return func(int) (int64, bool) { return 0, false }, nil
	default:
		return nil, b.typeError(name, a, "an integer")
	}
}

// dates returns a reader of a date or timestamp column.
func (b *omopBatch) dates(name string) (func(int) (time.Time, bool), error) {
	switch a := b.column(name).(type) {
	case *array.Date32:
		return func(i int) (time.Time, bool) { return a.Value(i).ToTime(), a.IsValid(i) }, nil
	case *array.Date64:
		return func(i int) (time.Time, bool) { return a.Value(i).ToTime(), a.IsValid(i) }, nil
	case *array.Timestamp:
		toTime, err := a.DataType().(*arrow.TimestampType).GetToTimeFunc()
		if err != nil {
			return nil, b.typeError(name, a, "a date or timestamp")
		}
		return func(i int) (time.Time, bool) { return toTime(a.Value(i)), a.IsValid(i) }, nil
	case nil:
		return func(int) (time.Time, bool) { return time.Time{}, false }, nil
	default:
		return nil, b.typeError(name, a, "a date or timestamp")
	}
}

// numbers returns a reader of a numeric column (decimal, float or integer).
func (b *omopBatch) numbers(name string) (func(int) (float64, bool), error) {
	switch a := b.column(name).(type) {
	case *array.Decimal128:
		scale := a.DataType().(*arrow.Decimal128Type).Scale
		return func(i int) (float64, bool) { return decimalFloat(a.Value(i), scale), a.IsValid(i) }, nil
	case *array.Float64:
		return func(i int) (float64, bool) { return a.Value(i), a.IsValid(i) }, nil
	case *array.Float32:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }, nil
	case *array.Int32:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }, nil
	case *array.Int64:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }, nil
	case nil:
		return func(int) (float64, bool) { return 0, false }, nil
	default:
		return nil, b.typeError(name, a, "a number")
	}
}

// decimalFloat returns the float64 nearest to the decimal n·10^-scale.
// (decimal128.Num.ToFloat64 can be one unit off: 6.1 becomes
// 6.1000000000000005.) Small values divide two exact floats, which rounds
// correctly; others go through the decimal text.
func decimalFloat(n decimal128.Num, scale int32) float64 {
	const exact = 1 << 53
	lo, hi := int64(n.LowBits()), n.HighBits()
	if scale >= 0 && scale <= 22 && (hi == 0 && lo >= 0 || hi == -1 && lo < 0) && lo > -exact && lo < exact {
		return float64(lo) / math.Pow10(int(scale))
	}
	f, err := strconv.ParseFloat(n.ToString(scale), 64)
	if err != nil {
		return n.ToFloat64(scale)
	}
	return f
}

// strs returns a reader of a string column.
func (b *omopBatch) strs(name string) (func(int) (string, bool), error) {
	switch a := b.column(name).(type) {
	case *array.String:
		return func(i int) (string, bool) { return a.Value(i), a.IsValid(i) }, nil
	case *array.LargeString:
		return func(i int) (string, bool) { return a.Value(i), a.IsValid(i) }, nil
	case nil:
		return func(int) (string, bool) { return "", false }, nil
	default:
		return nil, b.typeError(name, a, "a string")
	}
}

// scan reads the named columns of t batch by batch. Columns in required
// must exist; the others read as NULL when absent.
func (imp *omopImport) scan(ctx context.Context, t *omopTable, required, optional []string, fn func(b *omopBatch) error) error {
	schema, err := t.fr.Schema()
	if err != nil {
		return &InputError{File: t.src.name, Msg: "read schema: " + err.Error(), Err: err}
	}
	var cols []int
	for _, name := range append(append([]string{}, required...), optional...) {
		idx := schema.FieldIndices(name)
		if len(idx) == 0 {
			if slices.Contains(required, name) {
				return &InputError{File: t.src.name, Msg: fmt.Sprintf("no column %s", name)}
			}
			continue
		}
		leaves, err := leafIndices(t, idx[0])
		if err != nil {
			return err
		}
		cols = append(cols, leaves...)
	}
	rr, err := t.fr.GetRecordReader(ctx, cols, nil)
	if err != nil {
		return &InputError{File: t.src.name, Msg: "read: " + err.Error(), Err: err}
	}
	defer rr.Release()
	var row0 int64
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := rr.Record()
		b := &omopBatch{t: t, rec: rec, row0: row0}
		if err := fn(b); err != nil {
			return err
		}
		row0 += rec.NumRows()
		imp.stats.Records += rec.NumRows()
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return &InputError{File: t.src.name, Row: row0 + 1, Msg: "read: " + err.Error(), Err: err}
	}
	return nil
}

// leafIndices returns the Parquet leaf columns of top-level field i.
func leafIndices(t *omopTable, field int) ([]int, error) {
	m := t.fr.Manifest
	if field >= len(m.Fields) {
		return nil, &InputError{File: t.src.name, Msg: fmt.Sprintf("field %d out of range", field)}
	}
	var out []int
	var walk func(f pqarrow.SchemaField)
	walk = func(f pqarrow.SchemaField) {
		if f.IsLeaf() {
			out = append(out, f.ColIndex)
		}
		for _, c := range f.Children {
			walk(c)
		}
	}
	walk(m.Fields[field])
	return out, nil
}

func (imp *omopImport) readSource(ctx context.Context, t *omopTable) error {
	return imp.scan(ctx, t, nil, []string{"source_release_date"}, func(b *omopBatch) error {
		date, err := b.dates("source_release_date")
		if err != nil {
			return err
		}
		for i := range b.n() {
			if d, ok := date(i); ok {
				imp.stats.ExportDate = dateOnly(d)
			}
		}
		return nil
	})
}

func (imp *omopImport) readConcepts(ctx context.Context, t *omopTable) error {
	return imp.scan(ctx, t, []string{"concept_id", "vocabulary_id", "concept_code"}, nil, func(b *omopBatch) error {
		id, err := b.ints("concept_id")
		if err != nil {
			return err
		}
		vocab, err := b.strs("vocabulary_id")
		if err != nil {
			return err
		}
		code, err := b.strs("concept_code")
		if err != nil {
			return err
		}
		for i := range b.n() {
			v, _ := vocab(i)
			if !omopVocabulary(v) {
				continue
			}
			cid, ok1 := id(i)
			c, ok2 := code(i)
			if ok1 && ok2 {
				imp.concepts[cid] = omopConcept{vocab: imp.intern.get(v), code: imp.intern.get(c)}
			}
		}
		return nil
	})
}

func (imp *omopImport) readPersons(ctx context.Context, t *omopTable) error {
	return imp.scan(ctx, t, []string{"person_id", "gender_concept_id", "year_of_birth"}, []string{"month_of_birth", "day_of_birth", "birth_datetime"}, func(b *omopBatch) error {
		pid, err := b.ints("person_id")
		if err != nil {
			return err
		}
		gender, err := b.ints("gender_concept_id")
		if err != nil {
			return err
		}
		year, err := b.ints("year_of_birth")
		if err != nil {
			return err
		}
		month, err := b.ints("month_of_birth")
		if err != nil {
			return err
		}
		day, err := b.ints("day_of_birth")
		if err != nil {
			return err
		}
		birthTS, err := b.dates("birth_datetime")
		if err != nil {
			return err
		}
		for i := range b.n() {
			id, ok := pid(i)
			if !ok {
				return b.rowError(i, "person_id is NULL")
			}
			row := b.row0 + int64(i) + 1
			if first, dup := imp.personRow[id]; dup {
				return b.rowError(i, "duplicate person_id %d (first at row %d)", id, first)
			}
			imp.personRow[id] = row
			acc := &patientAcc{id: strconv.FormatInt(id, 10), seen: true}
			imp.persons[id] = acc
			imp.order = append(imp.order, acc)
			switch g, _ := gender(i); g {
			case omopFemale:
				acc.sex = "F"
			case omopMale:
				acc.sex = "M"
			default:
				acc.skip = SkipSexUnknown
			}
			if ts, ok := birthTS(i); ok {
				acc.birth = dateOnly(ts)
			} else if y, ok := year(i); ok {
				m, okm := month(i)
				d, okd := day(i)
				if !okm || m < 1 || m > 12 {
					m = 1
				}
				if !okd || d < 1 || d > 31 {
					d = 1
				}
				acc.birth = time.Date(int(y), time.Month(m), int(d), 0, 0, 0, 0, time.UTC)
			} else if acc.skip == "" {
				acc.skip = SkipNoBirthDate
			}
			if acc.skip == "" && bornAfter(acc.birth, imp.ref) {
				acc.skip = SkipBornAfterRef
			}
			if acc.skip != "" {
				imp.stats.skip(acc.skip)
			}
		}
		return nil
	})
}

// person returns the accumulator of row i's person_id.
func (imp *omopImport) person(b *omopBatch, pid func(int) (int64, bool), i int) (*patientAcc, error) {
	id, ok := pid(i)
	if !ok {
		return nil, b.rowError(i, "person_id is NULL")
	}
	acc := imp.persons[id]
	if acc == nil {
		return nil, b.rowError(i, "person_id %d is not in the person table", id)
	}
	return acc, nil
}

func (imp *omopImport) readDeaths(ctx context.Context, t *omopTable) error {
	return imp.scan(ctx, t, []string{"person_id"}, []string{"death_date"}, func(b *omopBatch) error {
		pid, err := b.ints("person_id")
		if err != nil {
			return err
		}
		date, err := b.dates("death_date")
		if err != nil {
			return err
		}
		for i := range b.n() {
			acc, err := imp.person(b, pid, i)
			if err != nil {
				return err
			}
			if d, ok := date(i); !ok || !afterRef(d, imp.ref) {
				acc.deceased = true
			}
		}
		return nil
	})
}

// readCodes reads condition_occurrence or drug_exposure into a code list.
func (imp *omopImport) readCodes(ctx context.Context, t *omopTable, conceptCol, dateCol string, vocabs []string, list func(*patientAcc) *[]string) error {
	return imp.scan(ctx, t, []string{"person_id", conceptCol}, []string{dateCol}, func(b *omopBatch) error {
		pid, err := b.ints("person_id")
		if err != nil {
			return err
		}
		concept, err := b.ints(conceptCol)
		if err != nil {
			return err
		}
		date, err := b.dates(dateCol)
		if err != nil {
			return err
		}
		for i := range b.n() {
			acc, err := imp.person(b, pid, i)
			if err != nil {
				return err
			}
			cid, _ := concept(i)
			if cid == 0 {
				imp.stats.skip(SkipNoCode)
				continue
			}
			c, ok := imp.concepts[cid]
			if !ok || !slices.Contains(vocabs, c.vocab) {
				imp.stats.skip(SkipUnknownVocab)
				continue
			}
			if d, ok := date(i); ok && afterRef(d, imp.ref) {
				imp.stats.skip(SkipAfterRef)
				continue
			}
			if err := checkCode(c.code); err != nil {
				return b.rowError(i, "concept %d: %v", cid, err)
			}
			addCode(list(acc), c.code)
		}
		return nil
	})
}

func (imp *omopImport) readConditions(ctx context.Context, t *omopTable) error {
	return imp.readCodes(ctx, t, "condition_concept_id", "condition_start_date", []string{"SNOMED", "ICD10", "ICD10CM"},
		func(a *patientAcc) *[]string { return &a.conds })
}

func (imp *omopImport) readDrugs(ctx context.Context, t *omopTable) error {
	return imp.readCodes(ctx, t, "drug_concept_id", "drug_exposure_start_date", []string{"RxNorm", "RxNorm Extension"},
		func(a *patientAcc) *[]string { return &a.meds })
}

func (imp *omopImport) readMeasurements(ctx context.Context, t *omopTable) error {
	req := []string{"person_id", "measurement_concept_id", "value_as_number"}
	opt := []string{"measurement_date", "measurement_datetime", "unit_concept_id", "unit_source_value"}
	return imp.scan(ctx, t, req, opt, func(b *omopBatch) error {
		pid, err := b.ints("person_id")
		if err != nil {
			return err
		}
		concept, err := b.ints("measurement_concept_id")
		if err != nil {
			return err
		}
		value, err := b.numbers("value_as_number")
		if err != nil {
			return err
		}
		date, err := b.dates("measurement_date")
		if err != nil {
			return err
		}
		datetime, err := b.dates("measurement_datetime")
		if err != nil {
			return err
		}
		unitConcept, err := b.ints("unit_concept_id")
		if err != nil {
			return err
		}
		unitSource, err := b.strs("unit_source_value")
		if err != nil {
			return err
		}
		for i := range b.n() {
			imp.seq++
			acc, err := imp.person(b, pid, i)
			if err != nil {
				return err
			}
			cid, _ := concept(i)
			loinc := omopMeasureConcept(cid)
			if c, ok := imp.concepts[cid]; ok && c.vocab == "LOINC" {
				loinc = c.code
			}
			si, ok := imp.byLOINC[loinc]
			if !ok {
				imp.stats.skip(SkipNotMeasure)
				continue
			}
			spec := &imp.specs[si]
			x, ok := value(i)
			if !ok {
				imp.stats.skip(SkipNoValue)
				continue
			}
			at, ok := datetime(i)
			if !ok {
				at, ok = date(i)
			}
			if !ok {
				imp.stats.skip(SkipNoDate)
				continue
			}
			if afterRef(at, imp.ref) {
				imp.stats.skip(SkipAfterRef)
				continue
			}
			unit := ""
			if uc, ok := unitConcept(i); ok && uc != 0 {
				if c, ok := imp.concepts[uc]; ok {
					unit = c.code
				}
			}
			if unit == "" {
				unit, _ = unitSource(i)
			}
			if unit == "" {
				return b.rowError(i, "%s (concept %d) has no unit (want %s)", spec.name, cid, spec.unitNames)
			}
			v, ok := spec.convert(x, unit)
			if !ok {
				return b.rowError(i, "unknown unit %q for %s (concept %d): want %s", unit, spec.name, cid, spec.unitNames)
			}
			imp.stats.Measures++
			acc.m[si].offer(v, at, imp.seq)
		}
		return nil
	})
}
