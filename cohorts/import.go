package cohorts

import (
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ImportOptions configures ImportFHIR, ImportOMOP and ImportCSV.
type ImportOptions struct {
	// RefDate is the dataset's reference date, normally the data's export
	// date. Required. Ages are counted at it, and the dataset is the data as
	// it stood on that day: records dated after it are ignored, patients born
	// after it are skipped, and a patient who died after it is alive.
	RefDate time.Time
	// Progress, if not nil, is called from the importing goroutine as input
	// is read, with the bytes read so far and the total (-1 if unknown).
	Progress ProgressFunc
}

// ImportResult says what an import wrote and what it read.
type ImportResult struct {
	Manifest Manifest
	Stats    ImportStats
}

// ImportStats counts what an import read, kept and skipped.
type ImportStats struct {
	Files    int   // input files read (zip entries count one each)
	Bytes    int64 // input bytes read (uncompressed)
	Records  int64 // FHIR resources, OMOP rows or CSV rows read
	Patients int64 // patients written
	Codes    int64 // distinct condition and medication codes kept, summed over patients
	Measures int64 // measurement values considered (the latest of each kind is kept)
	Skipped  map[string]int64
	// ExportDate is the export date the data states, if it states one
	// (OMOP cdm_source.source_release_date); zero otherwise.
	ExportDate time.Time
}

func (s *ImportStats) skip(reason string) {
	if s.Skipped == nil {
		s.Skipped = map[string]int64{}
	}
	s.Skipped[reason]++
}

// SkippedText lists the skipped records by reason, one "reason: n" per
// line, sorted, for printing.
func (s ImportStats) SkippedText() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s.Skipped)) {
		fmt.Fprintf(&b, "%s: %d\n", k, s.Skipped[k])
	}
	return b.String()
}

// Reasons a record is skipped, as counted in ImportStats.Skipped.
const (
	SkipSexUnknown      = "patient: sex is neither female nor male"
	SkipNoBirthDate     = "patient: no birth date"
	SkipBornAfterRef    = "patient: born after the reference date"
	SkipAfterRef        = "record dated after the reference date"
	SkipNoCode          = "record without a code in a supported code system"
	SkipNotMeasure      = "observation of another kind (not a table column)"
	SkipNoValue         = "measurement without a numeric value"
	SkipNoDate          = "measurement without a date"
	SkipStatus          = "record refuted, cancelled or entered in error"
	SkipUnusedResource  = "resource of another type"
	SkipUnknownVocab    = "concept outside the mapped vocabularies"
	SkipEmptyMedication = "medication request without an RxNorm code"
)

// InputError reports malformed input: the file and the position in it, and
// what is wrong. Import functions return it (wrapped) for input they refuse.
type InputError struct {
	File string // the input file; "archive.zip!/entry" inside a zip
	Line int    // 1-based line, 0 if the position is not a line
	Col  int    // 1-based column in characters, with Line
	Row  int64  // 1-based row of a Parquet table, 0 otherwise
	Msg  string
	Err  error // the underlying error, if any
}

func (e *InputError) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Row > 0:
		return fmt.Sprintf("%s: row %d: %s", e.File, e.Row, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

func (e *InputError) Unwrap() error { return e.Err }

// source is one input file: a plain file or a zip entry.
type source struct {
	name string // for messages
	path string // a plain file's path; "" for a zip entry
	zf   *zip.File
	size int64 // uncompressed bytes, -1 if unknown
}

func (s *source) open() (io.ReadCloser, error) {
	if s.zf != nil {
		return s.zf.Open()
	}
	return os.Open(s.path)
}

// inputSet is the files of an import input: one file, the files of a
// directory tree, or the entries of a zip archive.
type inputSet struct {
	sources []*source
	zr      *zip.ReadCloser
}

func (in *inputSet) Close() error {
	if in.zr != nil {
		return in.zr.Close()
	}
	return nil
}

func (in *inputSet) total() int64 {
	var n int64
	for _, s := range in.sources {
		if s.size < 0 {
			return -1
		}
		n += s.size
	}
	return n
}

// ignoredName reports whether a directory or zip path is metadata to skip:
// hidden files, macOS resource forks and __MACOSX folders.
func ignoredName(p string) bool {
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		if part == "__MACOSX" || strings.HasPrefix(part, ".") && part != "." && part != ".." {
			return true
		}
	}
	return false
}

// openInput lists the files of input (a file, a directory or a .zip) whose
// names end in one of exts. A single file is taken whatever its name.
func openInput(input string, exts ...string) (*inputSet, error) {
	fi, err := os.Stat(input)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	match := func(name string) bool {
		lower := strings.ToLower(name)
		return slices.ContainsFunc(exts, func(e string) bool { return strings.HasSuffix(lower, e) })
	}
	in := &inputSet{}
	switch {
	case fi.IsDir():
		err := filepath.WalkDir(input, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(input, p)
			if rel != "." && ignoredName(rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() && match(d.Name()) {
				info, err := d.Info()
				if err != nil {
					return err
				}
				in.sources = append(in.sources, &source{name: p, path: p, size: info.Size()})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", input, err)
		}
	case strings.EqualFold(filepath.Ext(input), ".zip"):
		zr, err := zip.OpenReader(input)
		if err != nil {
			return nil, &InputError{File: input, Msg: "not a readable zip archive: " + err.Error(), Err: err}
		}
		in.zr = zr
		for _, f := range zr.File {
			if f.FileInfo().IsDir() || ignoredName(f.Name) || !match(f.Name) {
				continue
			}
			size := int64(f.UncompressedSize64)
			if f.UncompressedSize64 > math.MaxInt64 {
				size = -1
			}
			in.sources = append(in.sources, &source{name: input + "!/" + f.Name, zf: f, size: size})
		}
		// Directory order is the archive's; sort so that output is
		// independent of how the archive was written.
		slices.SortFunc(in.sources, func(a, b *source) int { return strings.Compare(a.zf.Name, b.zf.Name) })
	default:
		in.sources = []*source{{name: input, path: input, size: fi.Size()}}
	}
	if len(in.sources) == 0 {
		in.Close()
		return nil, fmt.Errorf("input %s: no %s files found", input, strings.Join(exts, ", "))
	}
	return in, nil
}

// position is a byte offset in a source, resolved to a line and column only
// when an error is reported.
type position struct {
	src *source
	off int64
}

// errorAt returns an *InputError at byte offset off of src. It reads src
// again up to off to find the line and column, so the import itself need not
// track lines.
func errorAt(src *source, off int64, err error, format string, args ...any) *InputError {
	e := &InputError{File: src.name, Msg: fmt.Sprintf(format, args...), Err: err}
	line, col, ok := lineCol(src, off)
	if ok {
		e.Line, e.Col = line, col
	} else {
		e.Msg = fmt.Sprintf("byte offset %d: %s", off, e.Msg)
	}
	return e
}

func (p position) errorf(format string, args ...any) *InputError {
	return errorAt(p.src, p.off, nil, format, args...)
}

// String resolves p for messages that mention a second place, e.g. the first
// of two duplicates.
func (p position) String() string {
	if line, col, ok := lineCol(p.src, p.off); ok {
		return fmt.Sprintf("%s:%d:%d", p.src.name, line, col)
	}
	return fmt.Sprintf("%s: byte offset %d", p.src.name, p.off)
}

// lineCol returns the 1-based line and character column of byte offset off.
func lineCol(src *source, off int64) (line, col int, ok bool) {
	r, err := src.open()
	if err != nil {
		return 0, 0, false
	}
	defer r.Close()
	br := bufio.NewReader(io.LimitReader(r, off))
	line, col = 1, 1
	var pending []byte // an incomplete UTF-8 sequence
	for {
		b, err := br.ReadByte()
		if err != nil {
			break
		}
		switch {
		case b == '\n':
			line, col, pending = line+1, 1, pending[:0]
		case b < utf8.RuneSelf:
			col++
			pending = pending[:0]
		default:
			pending = append(pending, b)
			if utf8.FullRune(pending) {
				col++
				pending = pending[:0]
			}
		}
	}
	return line, col, true
}

// measureSpec maps source codes and units to one measurement column.
type measureSpec struct {
	field int
	name  string
	loinc []string
	// units maps a normalised unit (see normUnit) to a conversion into the
	// column's unit.
	units     map[string]func(float64) float64
	unitNames string // for messages
}

func identity(x float64) float64 { return x }

// measureSpecs lists the measurements importers fill, with the LOINC codes
// and units they accept. Conversions: HbA1c IFCC mmol/mol to NGSP %
// (0.09148·x + 2.152), LDL cholesterol mmol/L to mg/dL (·38.67), kPa to mmHg.
func measureSpecs() []measureSpec {
	mmHg := map[string]func(float64) float64{"mm[hg]": identity, "mmhg": identity, "kpa": func(x float64) float64 { return x * 7.50062 }}
	return []measureSpec{
		{field: fHbA1c, name: "hba1c", loinc: []string{"4548-4", "17856-6"}, unitNames: "%, mmol/mol",
			units: map[string]func(float64) float64{"%": identity, "mmol/mol": func(x float64) float64 { return 0.09148*x + 2.152 }}},
		{field: fBMI, name: "bmi", loinc: []string{"39156-5"}, unitNames: "kg/m2",
			units: map[string]func(float64) float64{"kg/m2": identity, "kg/m^2": identity, "kg/m²": identity}},
		{field: fSBP, name: "sbp", loinc: []string{"8480-6"}, unitNames: "mm[Hg], mmHg, kPa", units: mmHg},
		{field: fDBP, name: "dbp", loinc: []string{"8462-4"}, unitNames: "mm[Hg], mmHg, kPa", units: mmHg},
		{field: fLDL, name: "ldl", loinc: []string{"18262-6", "2089-1", "13457-7"}, unitNames: "mg/dL, mmol/L",
			units: map[string]func(float64) float64{"mg/dl": identity, "mmol/l": func(x float64) float64 { return x * 38.67 }}},
	}
}

// normUnit normalises a unit for lookup: no spaces, lower case.
func normUnit(u string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(u), " ", ""))
}

// convert converts x in unit to the column's unit.
func (m *measureSpec) convert(x float64, unit string) (float64, bool) {
	f, ok := m.units[normUnit(unit)]
	if !ok {
		return 0, false
	}
	return f(x), true
}

// numMeasures is the number of measureSpecs.
const numMeasures = 5

// latest is the latest value of one measurement of one patient.
type latest struct {
	value float64
	at    time.Time
	seq   int64 // input order: of two values at one time the later one wins
	valid bool
}

func (l *latest) offer(v float64, at time.Time, seq int64) {
	if !l.valid || at.After(l.at) || at.Equal(l.at) && seq > l.seq {
		*l = latest{value: v, at: at, seq: seq, valid: true}
	}
}

// patientAcc accumulates one patient's record while an import reads input in
// any order. Its size depends on the patient's distinct codes, not on the
// number of records read.
type patientAcc struct {
	id       string
	sex      string // "F" | "M"; "" until known
	birth    time.Time
	deceased bool
	skip     string // why the patient is skipped, "" if kept
	seen     bool   // the patient's own record (Patient, person row) was read
	conds    []string
	meds     []string
	m        [numMeasures]latest
}

func addCode(list *[]string, code string) bool {
	if slices.Contains(*list, code) {
		return false
	}
	*list = append(*list, code)
	return true
}

// patient builds the Patient row at refDate. Codes are sorted so that the
// row does not depend on input order.
func (a *patientAcc) patient(refDate time.Time, specs []measureSpec) Patient {
	p := Patient{
		ID: a.id, Sex: a.sex, BirthYear: a.birth.Year(), Age: AgeAt(a.birth, refDate), Deceased: a.deceased,
		Conditions: slices.Sorted(slices.Values(a.conds)), Medications: slices.Sorted(slices.Values(a.meds)),
	}
	for i, s := range specs {
		if !a.m[i].valid {
			continue
		}
		m := Measured(a.m[i].value)
		p.setMeasure(s.field, m)
	}
	return p
}

// interner keeps one copy of each code string across patients.
type interner map[string]string

func (in interner) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	s = strings.Clone(s)
	in[s] = s
	return s
}

// writePatients writes the kept patients, in order, to a new dataset at out.
// On error nothing is left at out.
func writePatients(ctx context.Context, out string, refDate time.Time, accs []*patientAcc, stats *ImportStats) (Manifest, error) {
	w, err := CreateDataset(ctx, out, refDate)
	if err != nil {
		return Manifest{}, err
	}
	specs := measureSpecs()
	for _, a := range accs {
		if a.skip != "" {
			continue
		}
		p := a.patient(refDate, specs)
		if err := w.Write(ctx, &p); err != nil {
			w.Abort()
			return Manifest{}, err
		}
		stats.Patients++
		stats.Codes += int64(len(p.Conditions) + len(p.Medications))
	}
	if stats.Patients == 0 {
		w.Abort()
		return Manifest{}, errors.New("no patients to write")
	}
	return w.Close(ctx)
}

// checkImport validates what every importer needs.
func checkImport(ctx context.Context, out string, opts ImportOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if out == "" {
		return errors.New("empty output path")
	}
	if opts.RefDate.IsZero() {
		return errors.New("a reference date is required (the data's export date)")
	}
	return nil
}

// bornAfter reports whether birth is after the reference date.
func bornAfter(birth, refDate time.Time) bool { return dateOnly(birth).After(dateOnly(refDate)) }

// afterRef reports whether a record dated t (its calendar date as written)
// is after the reference date.
func afterRef(t, refDate time.Time) bool { return dateOnly(t).After(dateOnly(refDate)) }
