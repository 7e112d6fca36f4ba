package cohorts

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CSVMapping says which column of a CSV file holds which field of the
// patient table. It is read from a small JSON file, for example:
//
//	{
//	  "delimiter": ",",
//	  "code_separator": ";",
//	  "date_format": "DD/MM/YYYY",
//	  "fields": {
//	    "id":            {"column": "mrn"},
//	    "sex":           {"column": "gender", "female": ["f", "female"], "male": ["m", "male"]},
//	    "birth_date":    {"column": "dob"},
//	    "deceased_date": {"column": "date_of_death"},
//	    "conditions":    {"column": "snomed_codes"},
//	    "medications":   {"column": "rxnorm_codes", "separator": "|"},
//	    "hba1c":         {"column": "a1c", "unit": "mmol/mol"},
//	    "ldl":           {"column": "ldl", "unit_column": "ldl_unit"}
//	  }
//	}
//
// Fields: id and sex are required, and one of birth_date or birth_year.
// Optional: deceased_date (a date on or before the reference date means
// deceased) or deceased (a flag column; "values" lists the cell values that
// mean deceased, by default 1, true, yes, y, deceased, dead), conditions and
// medications (lists of codes), and the measurements hba1c, bmi, sbp, dbp,
// ldl, each with either a fixed "unit" or a "unit_column" (units as in
// FHIR: %, mmol/mol, kg/m2, mm[Hg], mmHg, kPa, mg/dL, mmol/L). Date formats
// are written with YYYY, MM and DD (default YYYY-MM-DD); a field's "format"
// overrides date_format. The sex values match case-insensitively and default
// to F/female and M/male; an empty sex cell skips the patient.
type CSVMapping struct {
	Delimiter     string              `json:"delimiter,omitempty"`
	CodeSeparator string              `json:"code_separator,omitempty"`
	DateFormat    string              `json:"date_format,omitempty"`
	Fields        map[string]CSVField `json:"fields"`

	delim rune
	name  string // the mapping file, for messages
}

// CSVField maps one field of the patient table to a CSV column.
type CSVField struct {
	Column     string   `json:"column"`
	Unit       string   `json:"unit,omitempty"`
	UnitColumn string   `json:"unit_column,omitempty"`
	Format     string   `json:"format,omitempty"`
	Separator  string   `json:"separator,omitempty"`
	Female     []string `json:"female,omitempty"`
	Male       []string `json:"male,omitempty"`
	Values     []string `json:"values,omitempty"`

	layout string // Go layout of a date field
}

// csvFields lists the field names a mapping may use.
func csvFields() []string {
	return []string{"id", "sex", "birth_date", "birth_year", "deceased_date", "deceased", "conditions", "medications", "hba1c", "bmi", "sbp", "dbp", "ldl"}
}

// ReadCSVMapping reads and validates a mapping file.
func ReadCSVMapping(path string) (*CSVMapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("csv mapping: %w", err)
	}
	return ParseCSVMapping(path, data)
}

// ParseCSVMapping parses and validates a mapping; name is its file name in
// errors, which are *InputError.
func ParseCSVMapping(name string, data []byte) (*CSVMapping, error) {
	mapErr := func(off int64, err error, format string, args ...any) error {
		return errorAtBytes(name, data, off, err, format, args...)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m CSVMapping
	if err := dec.Decode(&m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, mapErr(max(se.Offset-1, 0), err, "malformed JSON: %v", se)
		case errors.As(err, &te):
			return nil, mapErr(max(te.Offset-1, 0), err, "%s", typeErrorText(te))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, mapErr(int64(len(data)), err, "truncated JSON: unexpected end of input")
		default:
			// An unknown key: point at its first occurrence.
			msg := strings.TrimPrefix(err.Error(), "json: ")
			off := dec.InputOffset()
			if key, ok := strings.CutPrefix(msg, "unknown field "); ok {
				if i := bytes.Index(data, []byte(key)); i >= 0 {
					off = int64(i)
				}
			}
			return nil, mapErr(off, err, "%s", msg)
		}
	}
	if dec.More() {
		return nil, mapErr(dec.InputOffset(), nil, "unexpected data after the mapping object")
	}
	m.name = name
	if err := m.validate(); err != nil {
		return nil, &InputError{File: name, Msg: err.Error(), Err: err}
	}
	return &m, nil
}

// errorAtBytes is errorAt for input held in memory.
func errorAtBytes(name string, data []byte, off int64, err error, format string, args ...any) *InputError {
	off = min(max(off, 0), int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	lineStart := bytes.LastIndexByte(data[:off], '\n') + 1
	col := 1 + utf8.RuneCount(data[lineStart:off])
	return &InputError{File: name, Line: line, Col: col, Msg: fmt.Sprintf(format, args...), Err: err}
}

// dateLayout turns a YYYY/MM/DD format into a Go layout.
func dateLayout(format string) (string, error) {
	if !strings.Contains(format, "YYYY") || !strings.Contains(format, "MM") || !strings.Contains(format, "DD") {
		return "", fmt.Errorf("date format %q needs YYYY, MM and DD", format)
	}
	l := strings.NewReplacer("YYYY", "2006", "MM", "01", "DD", "02").Replace(format)
	for _, r := range l {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' {
			return "", fmt.Errorf("date format %q: only YYYY, MM, DD and separators are allowed", format)
		}
	}
	return l, nil
}

func (m *CSVMapping) validate() error {
	m.delim = ','
	if m.Delimiter != "" {
		r, n := utf8.DecodeRuneInString(m.Delimiter)
		if n != len(m.Delimiter) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
			return fmt.Errorf("delimiter %q must be one character, not a quote or a line break", m.Delimiter)
		}
		m.delim = r
	}
	if m.CodeSeparator == "" {
		m.CodeSeparator = ";"
	}
	if m.DateFormat == "" {
		m.DateFormat = "YYYY-MM-DD"
	}
	if len(m.Fields) == 0 {
		return errors.New(`no "fields": map at least id, sex and birth_date or birth_year to columns`)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Fields)) {
		f := m.Fields[name]
		if !slices.Contains(csvFields(), name) {
			return fmt.Errorf("unknown field %q (fields: %s)", name, strings.Join(csvFields(), ", "))
		}
		if f.Column == "" {
			return fmt.Errorf("field %q has no column", name)
		}
		spec, isMeasure := measureByName(name)
		switch {
		case isMeasure:
			if (f.Unit == "") == (f.UnitColumn == "") {
				return fmt.Errorf("field %q needs exactly one of unit and unit_column", name)
			}
			if f.Unit != "" {
				if _, ok := spec.convert(1, f.Unit); !ok {
					return fmt.Errorf("field %q: unknown unit %q (want %s)", name, f.Unit, spec.unitNames)
				}
			}
		case f.Unit != "" || f.UnitColumn != "":
			return fmt.Errorf("field %q is not a measurement: it takes no unit", name)
		}
		if name == "birth_date" || name == "deceased_date" {
			format := m.DateFormat
			if f.Format != "" {
				format = f.Format
			}
			l, err := dateLayout(format)
			if err != nil {
				return fmt.Errorf("field %q: %w", name, err)
			}
			f.layout = l
		} else if f.Format != "" {
			return fmt.Errorf("field %q is not a date: it takes no format", name)
		}
		if name == "sex" {
			if len(f.Female) == 0 {
				f.Female = []string{"F", "female"}
			}
			if len(f.Male) == 0 {
				f.Male = []string{"M", "male"}
			}
			for _, v := range f.Female {
				if slices.ContainsFunc(f.Male, func(w string) bool { return strings.EqualFold(v, w) }) {
					return fmt.Errorf("sex value %q is listed as both female and male", v)
				}
			}
		} else if len(f.Female)+len(f.Male) > 0 {
			return fmt.Errorf("field %q is not sex: it takes no female or male values", name)
		}
		if name == "deceased" && len(f.Values) == 0 {
			f.Values = []string{"1", "true", "yes", "y", "deceased", "dead"}
		}
		m.Fields[name] = f
	}
	for _, req := range []string{"id", "sex"} {
		if _, ok := m.Fields[req]; !ok {
			return fmt.Errorf("field %q is required", req)
		}
	}
	_, bd := m.Fields["birth_date"]
	_, by := m.Fields["birth_year"]
	if bd == by {
		return errors.New(`map exactly one of "birth_date" and "birth_year"`)
	}
	_, dd := m.Fields["deceased_date"]
	_, df := m.Fields["deceased"]
	if dd && df {
		return errors.New(`map at most one of "deceased_date" and "deceased"`)
	}
	return nil
}

func measureByName(name string) (measureSpec, bool) {
	for _, s := range measureSpecs() {
		if s.name == name {
			return s, true
		}
	}
	return measureSpec{}, false
}

// ImportCSV imports a CSV file with a header row and one row per patient
// into a new dataset at out, reading columns as m says. The file is read
// row by row and patients are written as they are read, so memory does not
// grow with the file, apart from the set of ids seen (to refuse duplicates).
//
// Malformed input (bad quoting, a row with the wrong number of fields, a
// missing column, a value that is not a number or a date, an unknown unit or
// sex value, an invalid code, a duplicate patient id) is an *InputError with
// the file, line and column; the import then leaves nothing at out.
func ImportCSV(ctx context.Context, input string, m *CSVMapping, out string, opts ImportOptions) (ImportResult, error) {
	if err := checkImport(ctx, out, opts); err != nil {
		return ImportResult{}, fmt.Errorf("import csv: %w", err)
	}
	if m == nil || m.delim == 0 {
		return ImportResult{}, errors.New("import csv: no validated mapping (use ReadCSVMapping or ParseCSVMapping)")
	}
	f, err := os.Open(input)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import csv: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ImportResult{}, fmt.Errorf("import csv: %w", err)
	}
	if fi.IsDir() {
		return ImportResult{}, fmt.Errorf("import csv: %s is a directory, want a CSV file", input)
	}
	imp := &csvImport{m: m, name: input, ref: dateOnly(opts.RefDate), ids: map[string]int{}}
	imp.prog = newProgress(opts.Progress, fi.Size())
	w, err := CreateDataset(ctx, out, opts.RefDate)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import csv: %w", err)
	}
	if err := imp.read(ctx, f, w); err != nil {
		w.Abort()
		return ImportResult{}, fmt.Errorf("import csv: %w", err)
	}
	imp.prog.finish()
	imp.stats.Files = 1
	imp.stats.Bytes = imp.prog.done
	if imp.stats.Patients == 0 {
		w.Abort()
		return ImportResult{}, fmt.Errorf("import csv %s: no patients to write", input)
	}
	man, err := w.Close(ctx)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import csv %s: %w", input, err)
	}
	return ImportResult{Manifest: man, Stats: imp.stats}, nil
}

type csvImport struct {
	m     *CSVMapping
	name  string
	ref   time.Time
	prog  *progress
	stats ImportStats
	ids   map[string]int // id -> line
	cols  map[string]int // header name -> index
}

func (imp *csvImport) errorf(line, col int, format string, args ...any) *InputError {
	return &InputError{File: imp.name, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (imp *csvImport) read(ctx context.Context, f io.Reader, w *DatasetWriter) error {
	br := bufio.NewReaderSize(imp.prog.reader(f), 256<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.Comma = imp.m.delim
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return imp.csvError(err, "header")
	}
	imp.cols = map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if _, dup := imp.cols[h]; dup {
			line, col := cr.FieldPos(i)
			return imp.errorf(line, col, "column %q appears twice in the header", h)
		}
		imp.cols[h] = i
	}
	// Every mapped column must exist.
	type colRef struct {
		field string
		idx   int
		unit  int // unit column index, -1 if none
	}
	idx := map[string]colRef{}
	for _, name := range slices.Sorted(maps.Keys(imp.m.Fields)) {
		fm := imp.m.Fields[name]
		ref := colRef{field: name, unit: -1}
		var ok bool
		if ref.idx, ok = imp.cols[fm.Column]; !ok {
			return imp.errorf(1, 1, "field %s: no column %q in the header (columns: %s)", name, fm.Column, strings.Join(header, ", "))
		}
		if fm.UnitColumn != "" {
			if ref.unit, ok = imp.cols[fm.UnitColumn]; !ok {
				return imp.errorf(1, 1, "field %s: no unit column %q in the header", name, fm.UnitColumn)
			}
		}
		idx[name] = ref
	}
	specs := measureSpecs()
	var p Patient
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return imp.csvError(err, "row")
		}
		imp.stats.Records++
		cell := func(field string) (string, int, int) {
			i := idx[field].idx
			line, col := cr.FieldPos(i)
			return strings.TrimSpace(rec[i]), line, col
		}
		p = Patient{}
		id, line, col := cell("id")
		if id == "" {
			return imp.errorf(line, col, "empty patient id")
		}
		if first, dup := imp.ids[id]; dup {
			return imp.errorf(line, col, "duplicate patient %q (first at line %d)", id, first)
		}
		imp.ids[id] = line
		p.ID = id
		skip := ""

		sex, line, col := cell("sex")
		fm := imp.m.Fields["sex"]
		eq := func(v string) func(string) bool { return func(w string) bool { return strings.EqualFold(v, w) } }
		switch {
		case sex == "":
			skip = SkipSexUnknown
		case slices.ContainsFunc(fm.Female, eq(sex)):
			p.Sex = "F"
		case slices.ContainsFunc(fm.Male, eq(sex)):
			p.Sex = "M"
		default:
			return imp.errorf(line, col, "sex %q is neither a female value (%s) nor a male one (%s)", sex, strings.Join(fm.Female, ", "), strings.Join(fm.Male, ", "))
		}

		var birth time.Time
		if _, ok := idx["birth_date"]; ok {
			v, line, col := cell("birth_date")
			if v == "" {
				skip = cmp.Or(skip, SkipNoBirthDate)
			} else if birth, err = time.Parse(imp.m.Fields["birth_date"].layout, v); err != nil {
				return imp.errorf(line, col, "birth_date %q is not a date in the format %s", v, imp.dateFormat("birth_date"))
			}
		} else {
			v, line, col := cell("birth_year")
			if v == "" {
				skip = cmp.Or(skip, SkipNoBirthDate)
			} else if y, err := strconv.Atoi(v); err != nil || y < 1 || y > 9999 {
				return imp.errorf(line, col, "wrong type: birth_year %q is not a year", v)
			} else {
				// A year alone: born on its first day, for an age that is
				// right on or after the birthday.
				birth = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
			}
		}
		if skip == "" && bornAfter(birth, imp.ref) {
			skip = SkipBornAfterRef
		}
		if _, ok := idx["deceased_date"]; ok {
			v, line, col := cell("deceased_date")
			if v != "" {
				died, err := time.Parse(imp.m.Fields["deceased_date"].layout, v)
				if err != nil {
					return imp.errorf(line, col, "deceased_date %q is not a date in the format %s", v, imp.dateFormat("deceased_date"))
				}
				p.Deceased = !afterRef(died, imp.ref)
			}
		}
		if _, ok := idx["deceased"]; ok {
			v, _, _ := cell("deceased")
			p.Deceased = slices.ContainsFunc(imp.m.Fields["deceased"].Values, eq(v))
		}
		for _, l := range []struct {
			field string
			list  *[]string
		}{{"conditions", &p.Conditions}, {"medications", &p.Medications}} {
			if _, ok := idx[l.field]; !ok {
				continue
			}
			v, line, col := cell(l.field)
			sep := imp.m.Fields[l.field].Separator
			if sep == "" {
				sep = imp.m.CodeSeparator
			}
			for code := range strings.SplitSeq(v, sep) {
				code = strings.TrimSpace(code)
				if code == "" {
					continue
				}
				if err := checkCode(code); err != nil {
					return imp.errorf(line, col, "%s: %v", l.field, err)
				}
				addCode(l.list, code)
			}
		}
		for _, s := range specs {
			ref, ok := idx[s.name]
			if !ok {
				continue
			}
			v, line, col := cell(s.name)
			if v == "" {
				continue
			}
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return imp.errorf(line, col, "wrong type: %s %q is not a number", s.name, v)
			}
			unit := imp.m.Fields[s.name].Unit
			if ref.unit >= 0 {
				unit = strings.TrimSpace(rec[ref.unit])
				line, col = cr.FieldPos(ref.unit)
			}
			y, ok := s.convert(x, unit)
			if !ok {
				return imp.errorf(line, col, "unknown unit %q for %s: want %s", unit, s.name, s.unitNames)
			}
			imp.stats.Measures++
			m := Measured(y)
			p.setMeasure(s.field, m)
		}
		if skip != "" {
			imp.stats.skip(skip)
			continue
		}
		p.BirthYear = birth.Year()
		p.Age = AgeAt(birth, imp.ref)
		slices.Sort(p.Conditions)
		slices.Sort(p.Medications)
		if err := w.Write(ctx, &p); err != nil {
			line, col := cr.FieldPos(0)
			return imp.errorf(line, col, "%v", err)
		}
		imp.stats.Patients++
		imp.stats.Codes += int64(len(p.Conditions) + len(p.Medications))
	}
}

func (imp *csvImport) dateFormat(field string) string {
	if f := imp.m.Fields[field].Format; f != "" {
		return f
	}
	return imp.m.DateFormat
}

// csvError places an error of the CSV reader.
func (imp *csvImport) csvError(err error, what string) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		line, col := pe.Line, pe.Column
		if line == 0 {
			line = pe.StartLine
		}
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = fmt.Sprintf("wrong number of fields: the header has %d", len(imp.cols))
		}
		return &InputError{File: imp.name, Line: line, Col: max(col, 1), Msg: msg, Err: err}
	}
	if errors.Is(err, io.EOF) {
		return &InputError{File: imp.name, Line: 1, Col: 1, Msg: "empty file: no " + what, Err: err}
	}
	return &InputError{File: imp.name, Msg: err.Error(), Err: err}
}
