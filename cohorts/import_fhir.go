package cohorts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
)

// FHIR code systems the importer reads.
const (
	systemSNOMED = "http://snomed.info/sct"
	systemLOINC  = "http://loinc.org"
	systemRxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
	systemUCUM   = "http://unitsofmeasure.org"
)

// ImportFHIR imports FHIR R4 data into a new dataset at out. input is a
// Bundle (or single resource) .json file, an .ndjson file (one resource or
// Bundle per line, as FHIR bulk data export writes), a directory of such
// files, or a .zip of them. Synthea's output is read as it is.
//
// Resources are read one at a time from a streaming JSON decoder, so memory
// depends on the number of patients and their distinct codes, never on the
// size of the input. A patient's resources may be spread over files in any
// order.
//
// What becomes of each resource:
//   - Patient: id, gender (female, male; other and unknown are skipped, the
//     table knows only F and M), birthDate, deceased[x].
//   - Condition: every condition ever recorded for the patient (active or
//     resolved: the history, as OMOP's condition_occurrence holds it) whose
//     onset (or recorded date) is on or before the reference date and whose
//     verification status is not refuted or entered-in-error. The code is the
//     SNOMED CT coding, else an ICD-10 one.
//   - Observation: HbA1c (LOINC 4548-4, 17856-6), BMI (39156-5), systolic and
//     diastolic blood pressure (8480-6, 8462-4, also as component[] of a
//     panel such as 85354-9 or 55284-4) and LDL cholesterol (18262-6, 2089-1,
//     13457-7); the latest value by effective[x] (else issued) on or before
//     the reference date. Units are checked and converted (see
//     measureSpecs); an unknown unit is an error naming the file, line and
//     column of the resource.
//   - MedicationRequest: every RxNorm code ever prescribed on or before the
//     reference date (medicationCodeableConcept, or a Medication resource
//     referenced by medicationReference), unless cancelled, draft or
//     entered in error.
//
// Malformed input (truncated or invalid JSON, values of the wrong JSON type,
// unknown units, duplicate patients, references to patients the input does
// not contain) is an *InputError with the file and position; the import
// then leaves nothing at out.
func ImportFHIR(ctx context.Context, input, out string, opts ImportOptions) (ImportResult, error) {
	if err := checkImport(ctx, out, opts); err != nil {
		return ImportResult{}, fmt.Errorf("import fhir: %w", err)
	}
	in, err := openInput(input, ".json", ".ndjson", ".jsonl")
	if err != nil {
		return ImportResult{}, fmt.Errorf("import fhir: %w", err)
	}
	defer in.Close()
	imp := newFHIRImport(opts, in.total())
	for _, src := range in.sources {
		if err := imp.readSource(ctx, src); err != nil {
			return ImportResult{}, fmt.Errorf("import fhir: %w", err)
		}
	}
	imp.prog.finish()
	accs, err := imp.finish()
	if err != nil {
		return ImportResult{}, fmt.Errorf("import fhir: %w", err)
	}
	m, err := writePatients(ctx, out, opts.RefDate, accs, &imp.stats)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import fhir %s: %w", input, err)
	}
	return ImportResult{Manifest: m, Stats: imp.stats}, nil
}

type fhirImport struct {
	ref      time.Time
	stats    ImportStats
	prog     *progress
	specs    []measureSpec
	byLOINC  map[string]int
	patients map[string]*patientAcc // by Patient id, or by reference key until the Patient is read
	firstAt  map[string]position    // where each patients key was first read
	order    []*patientAcc          // patients in the order their Patient resources were read
	aliases  map[string]string      // an entry's fullUrl key -> the Patient id, when they differ
	medRefs  map[*patientAcc][]string
	meds     map[string]string // Medication id or fullUrl key -> RxNorm code
	intern   interner
	seq      int64
	entryBuf json.RawMessage
	skipBuf  json.RawMessage
}

func newFHIRImport(opts ImportOptions, total int64) *fhirImport {
	imp := &fhirImport{
		ref:      dateOnly(opts.RefDate),
		prog:     newProgress(opts.Progress, total),
		specs:    measureSpecs(),
		byLOINC:  map[string]int{},
		patients: map[string]*patientAcc{},
		firstAt:  map[string]position{},
		aliases:  map[string]string{},
		medRefs:  map[*patientAcc][]string{},
		meds:     map[string]string{},
		intern:   interner{},
	}
	for i, s := range imp.specs {
		for _, c := range s.loinc {
			imp.byLOINC[c] = i
		}
	}
	return imp
}

// countingReader counts the bytes read from one source, to place
// "unexpected end of input" at the end of what was read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// fhirReader reads one source.
type fhirReader struct {
	imp *fhirImport
	src *source
	cr  *countingReader
}

func (imp *fhirImport) readSource(ctx context.Context, src *source) error {
	r, err := src.open()
	if err != nil {
		return fmt.Errorf("%s: %w", src.name, err)
	}
	defer r.Close()
	imp.stats.Files++
	cr := &countingReader{r: imp.prog.reader(r)}
	defer func() { imp.stats.Bytes += cr.n }()
	fr := &fhirReader{imp: imp, src: src, cr: cr}
	dec := json.NewDecoder(bufio.NewReaderSize(cr, 256<<10))
	lower := strings.ToLower(src.name)
	if strings.HasSuffix(lower, ".ndjson") || strings.HasSuffix(lower, ".jsonl") {
		return fr.readNDJSON(ctx, dec)
	}
	return fr.readDocument(ctx, dec, 0, true)
}

// jsonError turns an error of dec (reading from base, the value in question
// starting at or after off0) into an *InputError at the right place.
func (fr *fhirReader) jsonError(dec *json.Decoder, base, off0 int64, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errorAt(fr.src, fr.cr.n, err, "truncated JSON: unexpected end of input")
	case errors.As(err, &se):
		return errorAt(fr.src, fr.syntaxOffset(base, off0, se), err, "malformed JSON: %s", se.Error())
	case errors.As(err, &te):
		return errorAt(fr.src, base+max(te.Offset-1, 0), err, "%s", typeErrorText(te))
	}
	return &InputError{File: fr.src.name, Msg: err.Error(), Err: err}
}

// syntaxOffset finds the exact offset of a syntax error. A Decoder's errors
// inside a value it decodes count only the bytes its scanner saw, so the
// value is decoded again on its own, from a fresh reader.
func (fr *fhirReader) syntaxOffset(base, off0 int64, se *json.SyntaxError) int64 {
	r, err := fr.src.open()
	if err != nil {
		return base + se.Offset
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, base+off0); err != nil {
		return base + se.Offset
	}
	br := bufio.NewReader(r)
	skipped, err := skipSeparator(br)
	if err != nil {
		return base + se.Offset
	}
	var raw json.RawMessage
	err = json.NewDecoder(br).Decode(&raw)
	var se2 *json.SyntaxError
	if errors.As(err, &se2) {
		return base + off0 + skipped + max(se2.Offset-1, 0)
	}
	// The error was in the structure around values, which the decoder
	// places exactly.
	return base + se.Offset
}

// skipSeparator skips white space and at most one ',' or ':' between JSON
// tokens, returning the bytes skipped.
func skipSeparator(br *bufio.Reader) (int64, error) {
	var n int64
	sep := false
	for {
		c, err := br.ReadByte()
		if err != nil {
			return n, err
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' || (c == ',' || c == ':') && !sep {
			sep = sep || c == ',' || c == ':'
			n++
			continue
		}
		return n, br.UnreadByte()
	}
}

// tokenAt returns the offset of the token that follows offset off, for
// errors about it.
func (fr *fhirReader) tokenAt(off int64) int64 {
	r, err := fr.src.open()
	if err != nil {
		return off
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return off
	}
	n, _ := skipSeparator(bufio.NewReader(r))
	return off + n
}

// valueStart moves the offset end, just after a scalar value in raw, back
// to the value's first byte.
func valueStart(raw []byte, end int64) int64 {
	i := int(end) - 1
	if i < 0 || i >= len(raw) {
		return max(end-1, 0)
	}
	if raw[i] == '"' {
		for j := i - 1; j >= 0; j-- {
			if raw[j] != '"' {
				continue
			}
			k := j
			for k > 0 && raw[k-1] == '\\' {
				k--
			}
			if (j-k)%2 == 0 {
				return int64(j)
			}
		}
		return int64(i)
	}
	j := i
	for j > 0 && strings.IndexByte("0123456789+-.eEtruefalsn", raw[j-1]) >= 0 {
		j--
	}
	return int64(j)
}

func typeErrorText(te *json.UnmarshalTypeError) string {
	field := te.Field
	if field == "" {
		field = "value"
	}
	t := te.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var want string
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		want = "an object"
	case reflect.Slice, reflect.Array:
		want = "an array"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int32, reflect.Int64:
		want = "a number"
	case reflect.Bool:
		want = "a boolean"
	default:
		want = "a " + t.Kind().String()
	}
	return fmt.Sprintf("wrong type: %s is a JSON %s, want %s", field, te.Value, want)
}

// token reads the next token, mapping errors to positions.
func (fr *fhirReader) token(dec *json.Decoder, base int64) (json.Token, error) {
	off0 := dec.InputOffset()
	t, err := dec.Token()
	if err != nil {
		return nil, fr.jsonError(dec, base, off0, err)
	}
	return t, nil
}

// expectDelim reads a delimiter token.
func (fr *fhirReader) expectDelim(dec *json.Decoder, base int64, want json.Delim, what string) error {
	off0 := dec.InputOffset()
	t, err := fr.token(dec, base)
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return errorAt(fr.src, fr.tokenAt(base+off0), nil, "expected %s, found %s", what, tokenText(t))
	}
	return nil
}

func tokenText(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %.40q", v)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// decode reads the next value into v.
func (fr *fhirReader) decode(dec *json.Decoder, base int64, v any) error {
	off0 := dec.InputOffset()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// Offsets of type errors count from the start of the stream's
			// current value; re-read the value to place it.
			return errorAt(fr.src, fr.tokenAt(base+off0), err, "%s", typeErrorText(te))
		}
		return fr.jsonError(dec, base, off0, err)
	}
	return nil
}

// readDocument reads one JSON object from dec: a Bundle, whose entries are
// streamed, or (if single) a lone resource.
func (fr *fhirReader) readDocument(ctx context.Context, dec *json.Decoder, base int64, single bool) error {
	start := dec.InputOffset()
	if err := fr.expectDelim(dec, base, '{', "a JSON object (a FHIR Bundle or resource)"); err != nil {
		return err
	}
	var rt string
	entries := false
	for dec.More() {
		t, err := fr.token(dec, base)
		if err != nil {
			return err
		}
		switch t {
		case "resourceType":
			if err := fr.decode(dec, base, &rt); err != nil {
				return err
			}
		case "entry":
			entries = true
			if err := fr.expectDelim(dec, base, '[', "the array of Bundle entries"); err != nil {
				return err
			}
			for dec.More() {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fr.readEntry(dec, base); err != nil {
					return err
				}
			}
			if err := fr.expectDelim(dec, base, ']', `"]"`); err != nil {
				return err
			}
		default:
			if err := fr.decode(dec, base, &fr.imp.skipBuf); err != nil {
				return err
			}
		}
	}
	if err := fr.expectDelim(dec, base, '}', `"}"`); err != nil {
		return err
	}
	switch {
	case rt == "Bundle":
	case rt == "":
		return errorAt(fr.src, base+start, nil, "not a FHIR resource: the object has no resourceType")
	case entries:
		return errorAt(fr.src, base+start, nil, "resource of type %q has entries: only a Bundle does", rt)
	case single:
		// A lone resource: read it again whole (it is one resource, so small).
		if err := fr.readLone(); err != nil {
			return err
		}
	default:
		return errorAt(fr.src, base+start, nil, "expected a Bundle, found a %s", rt)
	}
	if single {
		off0 := dec.InputOffset()
		if t, err := dec.Token(); err == nil {
			return errorAt(fr.src, fr.tokenAt(off0), nil, "unexpected %s after the %s", tokenText(t), rt)
		} else if !errors.Is(err, io.EOF) {
			return fr.jsonError(dec, base, off0, err)
		}
	}
	return nil
}

// readLone reads a file that holds one resource.
func (fr *fhirReader) readLone() error {
	r, err := fr.src.open()
	if err != nil {
		return fmt.Errorf("%s: %w", fr.src.name, err)
	}
	defer r.Close()
	dec := json.NewDecoder(bufio.NewReader(r))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return fr.jsonError(dec, 0, 0, err)
	}
	return fr.imp.resource(fr.src, raw, dec.InputOffset()-int64(len(raw)), "")
}

// readNDJSON reads one resource or Bundle per line.
func (fr *fhirReader) readNDJSON(ctx context.Context, dec *json.Decoder) error {
	var raw json.RawMessage
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		off0 := dec.InputOffset()
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fr.jsonError(dec, 0, off0, err)
		}
		start := dec.InputOffset() - int64(len(raw))
		if raw[0] != '{' {
			return errorAt(fr.src, start, nil, "expected a JSON object (a FHIR resource or Bundle) on each line")
		}
		var hdr struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(raw, &hdr); err != nil {
			return fr.imp.valueError(fr.src, raw, start, err)
		}
		if hdr.ResourceType == "Bundle" {
			sub := json.NewDecoder(bytes.NewReader(raw))
			if err := fr.readDocument(ctx, sub, start, false); err != nil {
				return err
			}
			continue
		}
		if err := fr.imp.resource(fr.src, raw, start, ""); err != nil {
			return err
		}
	}
}

// readEntry reads one Bundle entry.
func (fr *fhirReader) readEntry(dec *json.Decoder, base int64) error {
	imp := fr.imp
	if err := fr.expectDelim(dec, base, '{', "a Bundle entry (an object)"); err != nil {
		return err
	}
	var fullURL string
	var resStart int64 = -1
	imp.entryBuf = imp.entryBuf[:0]
	for dec.More() {
		t, err := fr.token(dec, base)
		if err != nil {
			return err
		}
		switch t {
		case "fullUrl":
			if err := fr.decode(dec, base, &fullURL); err != nil {
				return err
			}
		case "resource":
			if err := fr.decode(dec, base, &imp.entryBuf); err != nil {
				return err
			}
			resStart = base + dec.InputOffset() - int64(len(imp.entryBuf))
		default:
			if err := fr.decode(dec, base, &imp.skipBuf); err != nil {
				return err
			}
		}
	}
	if err := fr.expectDelim(dec, base, '}', `"}"`); err != nil {
		return err
	}
	if resStart < 0 {
		return nil // e.g. a transaction response or a delete: nothing to import
	}
	return imp.resource(fr.src, imp.entryBuf, resStart, fullURL)
}

// FHIR data types, as far as the importer reads them.
type (
	fhirCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	fhirConcept struct {
		Coding []fhirCoding `json:"coding"`
	}
	fhirRef struct {
		Reference string `json:"reference"`
	}
	fhirPeriod struct {
		Start string `json:"start"`
	}
	fhirQuantity struct {
		Value  *float64 `json:"value"`
		Unit   string   `json:"unit"`
		System string   `json:"system"`
		Code   string   `json:"code"`
	}
	fhirComponent struct {
		Code          fhirConcept   `json:"code"`
		ValueQuantity *fhirQuantity `json:"valueQuantity"`
	}
	// fhirResource holds the fields of Patient, Condition, Observation,
	// MedicationRequest and Medication that the importer reads.
	fhirResource struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Status       string `json:"status"`
		// Patient
		Gender           string `json:"gender"`
		BirthDate        string `json:"birthDate"`
		DeceasedBoolean  *bool  `json:"deceasedBoolean"`
		DeceasedDateTime string `json:"deceasedDateTime"`
		// Condition, Observation, MedicationRequest
		Subject            *fhirRef        `json:"subject"`
		Code               *fhirConcept    `json:"code"`
		VerificationStatus *fhirConcept    `json:"verificationStatus"`
		OnsetDateTime      string          `json:"onsetDateTime"`
		OnsetPeriod        *fhirPeriod     `json:"onsetPeriod"`
		RecordedDate       string          `json:"recordedDate"`
		EffectiveDateTime  string          `json:"effectiveDateTime"`
		EffectiveInstant   string          `json:"effectiveInstant"`
		EffectivePeriod    *fhirPeriod     `json:"effectivePeriod"`
		Issued             string          `json:"issued"`
		ValueQuantity      *fhirQuantity   `json:"valueQuantity"`
		Component          []fhirComponent `json:"component"`
		MedicationConcept  *fhirConcept    `json:"medicationCodeableConcept"`
		MedicationRef      *fhirRef        `json:"medicationReference"`
		AuthoredOn         string          `json:"authoredOn"`
	}
)

// code returns the first coding of c in system, or "".
func (c *fhirConcept) code(system string) string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if cd.System == system && cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

// icd10 returns an ICD-10 (or ICD-10-CM) coding of c, or "".
func (c *fhirConcept) icd10() string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if strings.Contains(strings.ToLower(cd.System), "icd-10") && cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

func (c *fhirConcept) has(codes ...string) bool {
	if c == nil {
		return false
	}
	for _, cd := range c.Coding {
		if slices.Contains(codes, cd.Code) {
			return true
		}
	}
	return false
}

// parseFHIRDate parses a FHIR date, dateTime or instant. A partial date
// stands for its first day.
func parseFHIRDate(s string) (time.Time, error) {
	var layout string
	switch len(s) {
	case 4:
		layout = "2006"
	case 7:
		layout = "2006-01"
	case 10:
		layout = "2006-01-02"
	case 19:
		layout = "2006-01-02T15:04:05" // no zone: not FHIR, but unambiguous enough for a date
	default:
		layout = time.RFC3339 // also reads fractional seconds
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a FHIR date or dateTime", s)
	}
	return t, nil
}

// refKey returns the key of a Patient reference: the id of "Patient/id"
// (relative or absolute, with or without a version) or of "urn:uuid:id".
func refKey(ref string) (string, bool) {
	if id, ok := strings.CutPrefix(ref, "urn:uuid:"); ok && id != "" {
		return id, true
	}
	if i := strings.LastIndex(ref, "Patient/"); i >= 0 && (i == 0 || ref[i-1] == '/') {
		id, _, _ := strings.Cut(ref[i+len("Patient/"):], "/")
		if id != "" {
			return id, true
		}
	}
	return "", false
}

// medicationKey returns the key of a Medication reference, as refKey does
// for Patients.
func medicationKey(ref string) (string, bool) {
	if id, ok := strings.CutPrefix(ref, "urn:uuid:"); ok && id != "" {
		return id, true
	}
	if i := strings.LastIndex(ref, "Medication/"); i >= 0 && (i == 0 || ref[i-1] == '/') {
		id, _, _ := strings.Cut(ref[i+len("Medication/"):], "/")
		return id, id != ""
	}
	return "", false
}

// valueError places an error of json.Unmarshal of a resource starting at start.
func (imp *fhirImport) valueError(src *source, raw []byte, start int64, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return errorAt(src, start+valueStart(raw, te.Offset), err, "%s", typeErrorText(te))
	case errors.As(err, &se):
		return errorAt(src, start+max(se.Offset-1, 0), err, "malformed JSON: %s", se.Error())
	}
	return errorAt(src, start, err, "%v", err)
}

// resource imports one resource whose JSON raw starts at offset start of src.
func (imp *fhirImport) resource(src *source, raw json.RawMessage, start int64, fullURL string) error {
	imp.stats.Records++
	imp.seq++
	var hdr struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return imp.valueError(src, raw, start, err)
	}
	pos := position{src: src, off: start}
	switch hdr.ResourceType {
	case "Patient", "Condition", "Observation", "MedicationRequest", "Medication":
	case "":
		return pos.errorf("resource without a resourceType")
	default:
		imp.stats.skip(SkipUnusedResource)
		return nil
	}
	var r fhirResource
	if err := json.Unmarshal(raw, &r); err != nil {
		return imp.valueError(src, raw, start, err)
	}
	switch r.ResourceType {
	case "Patient":
		return imp.patient(&r, pos, fullURL)
	case "Condition":
		return imp.condition(&r, pos)
	case "Observation":
		return imp.observation(&r, pos)
	case "MedicationRequest":
		return imp.medicationRequest(&r, pos)
	default: // Medication
		if code := r.Code.code(systemRxNorm); code != "" {
			if r.ID != "" {
				imp.meds[r.ID] = code
			}
			if k, ok := medicationKey(fullURL); ok {
				imp.meds[k] = code
			}
		}
		return nil
	}
}

func (imp *fhirImport) patient(r *fhirResource, pos position, fullURL string) error {
	if r.ID == "" {
		return pos.errorf("Patient without an id")
	}
	acc := imp.patients[r.ID]
	if acc != nil && acc.seen {
		return pos.errorf("duplicate Patient %q (first at %s)", r.ID, imp.firstAt[r.ID])
	}
	if acc == nil {
		acc = &patientAcc{id: strings.Clone(r.ID)}
		imp.patients[acc.id] = acc
	}
	acc.seen = true
	imp.firstAt[acc.id] = pos
	imp.order = append(imp.order, acc)
	if k, ok := refKey(fullURL); ok && k != acc.id {
		imp.aliases[k] = acc.id
	}
	switch r.Gender {
	case "female":
		acc.sex = "F"
	case "male":
		acc.sex = "M"
	case "other", "unknown", "":
		acc.skip = SkipSexUnknown
	default:
		return pos.errorf("Patient %q: gender %q is not a FHIR administrative gender (female, male, other, unknown)", r.ID, r.Gender)
	}
	if r.BirthDate == "" {
		if acc.skip == "" {
			acc.skip = SkipNoBirthDate
		}
	} else {
		birth, err := parseFHIRDate(r.BirthDate)
		if err != nil {
			return pos.errorf("Patient %q: birthDate: %v", r.ID, err)
		}
		acc.birth = birth
		if acc.skip == "" && bornAfter(birth, imp.ref) {
			acc.skip = SkipBornAfterRef
		}
	}
	if r.DeceasedDateTime != "" {
		died, err := parseFHIRDate(r.DeceasedDateTime)
		if err != nil {
			return pos.errorf("Patient %q: deceasedDateTime: %v", r.ID, err)
		}
		acc.deceased = !afterRef(died, imp.ref)
	} else if r.DeceasedBoolean != nil {
		acc.deceased = *r.DeceasedBoolean
	}
	if acc.skip != "" {
		imp.stats.skip(acc.skip)
	}
	return nil
}

// subject returns the accumulator of the patient r is about.
func (imp *fhirImport) subject(r *fhirResource, pos position) (*patientAcc, error) {
	if r.Subject == nil || r.Subject.Reference == "" {
		return nil, pos.errorf("%s %q has no subject", r.ResourceType, r.ID)
	}
	key, ok := refKey(r.Subject.Reference)
	if !ok {
		return nil, pos.errorf("%s %q: subject %q is not a Patient reference", r.ResourceType, r.ID, r.Subject.Reference)
	}
	if id, ok := imp.aliases[key]; ok {
		key = id
	}
	acc := imp.patients[key]
	if acc == nil {
		// Referenced before its Patient (or never: checked at the end).
		acc = &patientAcc{id: strings.Clone(key)}
		imp.patients[acc.id] = acc
		imp.firstAt[acc.id] = pos
	}
	return acc, nil
}

// recordDate parses the first non-empty date of a resource.
func recordDate(r *fhirResource, pos position, fields ...string) (time.Time, bool, error) {
	for _, f := range fields {
		var s string
		switch f {
		case "onsetDateTime":
			s = r.OnsetDateTime
		case "onsetPeriod":
			if r.OnsetPeriod != nil {
				s = r.OnsetPeriod.Start
			}
		case "recordedDate":
			s = r.RecordedDate
		case "effectiveDateTime":
			s = r.EffectiveDateTime
		case "effectiveInstant":
			s = r.EffectiveInstant
		case "effectivePeriod":
			if r.EffectivePeriod != nil {
				s = r.EffectivePeriod.Start
			}
		case "issued":
			s = r.Issued
		case "authoredOn":
			s = r.AuthoredOn
		}
		if s == "" {
			continue
		}
		t, err := parseFHIRDate(s)
		if err != nil {
			return time.Time{}, false, pos.errorf("%s %q: %s: %v", r.ResourceType, r.ID, f, err)
		}
		return t, true, nil
	}
	return time.Time{}, false, nil
}

func (imp *fhirImport) condition(r *fhirResource, pos position) error {
	acc, err := imp.subject(r, pos)
	if err != nil {
		return err
	}
	if r.VerificationStatus.has("entered-in-error", "refuted") {
		imp.stats.skip(SkipStatus)
		return nil
	}
	code := r.Code.code(systemSNOMED)
	if code == "" {
		code = r.Code.icd10()
	}
	if code == "" {
		imp.stats.skip(SkipNoCode)
		return nil
	}
	if err := checkCode(code); err != nil {
		return pos.errorf("Condition %q: %v", r.ID, err)
	}
	at, ok, err := recordDate(r, pos, "onsetDateTime", "onsetPeriod", "recordedDate")
	if err != nil {
		return err
	}
	if ok && afterRef(at, imp.ref) {
		imp.stats.skip(SkipAfterRef)
		return nil
	}
	addCode(&acc.conds, imp.intern.get(code))
	return nil
}

func (imp *fhirImport) observation(r *fhirResource, pos position) error {
	acc, err := imp.subject(r, pos)
	if err != nil {
		return err
	}
	type value struct {
		spec  int
		loinc string
		q     *fhirQuantity
	}
	var values []value
	find := func(c *fhirConcept, q *fhirQuantity) {
		if c == nil {
			return
		}
		for _, cd := range c.Coding {
			if i, ok := imp.byLOINC[cd.Code]; ok && (cd.System == systemLOINC || cd.System == "") {
				values = append(values, value{i, cd.Code, q})
				return
			}
		}
	}
	find(r.Code, r.ValueQuantity)
	for i := range r.Component {
		find(&r.Component[i].Code, r.Component[i].ValueQuantity)
	}
	if len(values) == 0 {
		imp.stats.skip(SkipNotMeasure)
		return nil
	}
	if r.Status == "entered-in-error" || r.Status == "cancelled" {
		imp.stats.skip(SkipStatus)
		return nil
	}
	at, ok, err := recordDate(r, pos, "effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued")
	if err != nil {
		return err
	}
	if !ok {
		imp.stats.skip(SkipNoDate)
		return nil
	}
	if afterRef(at, imp.ref) {
		imp.stats.skip(SkipAfterRef)
		return nil
	}
	for _, v := range values {
		spec := &imp.specs[v.spec]
		if v.q == nil || v.q.Value == nil {
			imp.stats.skip(SkipNoValue)
			continue
		}
		unit := v.q.Unit
		if v.q.Code != "" && (v.q.System == systemUCUM || unit == "") {
			unit = v.q.Code
		}
		if unit == "" {
			return pos.errorf("Observation %q: %s (LOINC %s) has no unit (want %s)", r.ID, spec.name, v.loinc, spec.unitNames)
		}
		x, ok := spec.convert(*v.q.Value, unit)
		if !ok {
			return pos.errorf("Observation %q: unknown unit %q for %s (LOINC %s): want %s", r.ID, unit, spec.name, v.loinc, spec.unitNames)
		}
		imp.stats.Measures++
		acc.m[v.spec].offer(x, at, imp.seq)
	}
	return nil
}

func (imp *fhirImport) medicationRequest(r *fhirResource, pos position) error {
	acc, err := imp.subject(r, pos)
	if err != nil {
		return err
	}
	switch r.Status {
	case "cancelled", "entered-in-error", "draft":
		imp.stats.skip(SkipStatus)
		return nil
	}
	at, ok, err := recordDate(r, pos, "authoredOn")
	if err != nil {
		return err
	}
	if ok && afterRef(at, imp.ref) {
		imp.stats.skip(SkipAfterRef)
		return nil
	}
	code := r.MedicationConcept.code(systemRxNorm)
	if code == "" {
		if r.MedicationRef != nil {
			if k, ok := medicationKey(r.MedicationRef.Reference); ok {
				imp.medRefs[acc] = append(imp.medRefs[acc], k)
				return nil
			}
		}
		imp.stats.skip(SkipEmptyMedication)
		return nil
	}
	if err := checkCode(code); err != nil {
		return pos.errorf("MedicationRequest %q: %v", r.ID, err)
	}
	addCode(&acc.meds, imp.intern.get(code))
	return nil
}

// finish resolves references and returns the patients in input order.
func (imp *fhirImport) finish() ([]*patientAcc, error) {
	keys := make([]string, 0)
	for k, acc := range imp.patients {
		if !acc.seen {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		acc := imp.patients[k]
		id, ok := imp.aliases[k]
		if !ok {
			pos := imp.firstAt[k]
			return nil, pos.errorf("reference to Patient %q, which the input does not contain", k)
		}
		dst := imp.patients[id]
		for _, c := range acc.conds {
			addCode(&dst.conds, c)
		}
		for _, c := range acc.meds {
			addCode(&dst.meds, c)
		}
		for i := range acc.m {
			if l := acc.m[i]; l.valid {
				dst.m[i].offer(l.value, l.at, l.seq)
			}
		}
		imp.medRefs[dst] = append(imp.medRefs[dst], imp.medRefs[acc]...)
	}
	for _, acc := range imp.order {
		for _, k := range imp.medRefs[acc] {
			if code, ok := imp.meds[k]; ok {
				addCode(&acc.meds, code)
			} else {
				imp.stats.skip(SkipEmptyMedication)
			}
		}
	}
	return imp.order, nil
}
