package cohorts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
)

// Data categories. A licence's scope is a set of categories; a query may read
// a column only if the scope covers the column's category.
const (
	CatDemographics = "demographics"
	CatConditions   = "conditions"
	CatLabs         = "labs"
	CatVitals       = "vitals"
	CatMedications  = "medications"
)

// SchemaVersion is the version of the patient table schema written by this
// package and required by [Open].
const SchemaVersion = "2"

// Schema metadata keys.
const (
	metaSchemaVersion = "medx.schema_version"
	metaRefDate       = "medx.ref_date"
	metaCategory      = "medx.category"
	metaMin           = "medx.min"
	metaMax           = "medx.max"
	metaDecimals      = "medx.decimals"
)

// refDateLayout is the layout of the reference date in the schema metadata.
const refDateLayout = "2006-01-02"

// Categories returns all data categories, sorted.
func Categories() []string {
	c := []string{CatDemographics, CatConditions, CatLabs, CatVitals, CatMedications}
	slices.Sort(c)
	return c
}

// Values of the vital_status column: whether the patient had died by the
// reference date. Ages are counted at the reference date for every patient,
// so a query about living patients says vital_status = 'alive'.
const (
	VitalAlive    = "alive"
	VitalDeceased = "deceased"
)

// colKind says how a column is stored and what a query may do with it.
type colKind int

const (
	kindID    colKind = iota // utf8, never queryable
	kindCat                  // utf8 from a declared domain (sex, vital_status), groupable
	kindInt                  // int32, numeric
	kindFloat                // float64 nullable, numeric
	kindCodes                // list<utf8>, HAS_CONDITION / HAS_MEDICATION
)

// Field indices of the patient table, in schema order.
const (
	fID = iota
	fSex
	fBirthYear
	fAge
	fVital
	fConditions
	fMedications
	fHbA1c
	fBMI
	fSBP
	fDBP
	fLDL
	numFields
)

// column describes one column of the patient table.
type column struct {
	name     string
	field    int
	kind     colKind
	category string
	lo, hi   float64  // declared public bounds (numeric columns)
	decimals int      // fixed-point decimals (numeric columns)
	groups   []string // kindCat: the declared domain, in cell order
}

func (c column) numeric() bool { return c.kind == kindInt || c.kind == kindFloat }

// groupIndex returns the index of v in a categorical column's domain,
// matching case-insensitively, so 'f' means "F" and 'Deceased' "deceased".
func (c column) groupIndex(v string) (int, bool) {
	for i, g := range c.groups {
		if strings.EqualFold(g, v) {
			return i, true
		}
	}
	return 0, false
}

// domainText lists a categorical column's values for messages: 'F' or 'M'.
func (c column) domainText() string {
	q := make([]string, len(c.groups))
	for i, g := range c.groups {
		q[i] = quoteSQL(g)
	}
	if len(q) <= 2 {
		return strings.Join(q, " or ")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// scale is 10^decimals.
func (c column) scale() int64 {
	s := int64(1)
	for range c.decimals {
		s *= 10
	}
	return s
}

// fixedBounds returns the declared bounds in fixed point.
func (c column) fixedBounds() (lo, hi int64) {
	s := float64(c.scale())
	return int64(math.Round(c.lo * s)), int64(math.Round(c.hi * s))
}

// centre returns the fixed-point midpoint m that sums are centred at and the
// largest |x−m| of a clamped fixed-point value x (the half-range).
func (c column) centre() (mid, half int64) {
	lo, hi := c.fixedBounds()
	mid = lo + (hi-lo)/2
	return mid, max(hi-mid, mid-lo)
}

// arrowType returns the column's Arrow type.
func (c column) arrowType() arrow.DataType {
	switch c.kind {
	case kindInt:
		return arrow.PrimitiveTypes.Int32
	case kindFloat:
		return arrow.PrimitiveTypes.Float64
	case kindCodes:
		return arrow.ListOf(arrow.BinaryTypes.String)
	default:
		return arrow.BinaryTypes.String
	}
}

// allColumns returns the patient table's columns in schema order.
func allColumns() []column {
	return []column{
		{name: "patient_id", field: fID, kind: kindID},
		{name: "sex", field: fSex, kind: kindCat, category: CatDemographics, groups: []string{"F", "M"}},
		{name: "birth_year", field: fBirthYear, kind: kindInt, category: CatDemographics, lo: 1900, hi: 2030},
		{name: "age", field: fAge, kind: kindInt, category: CatDemographics, lo: 0, hi: 120},
		{name: "vital_status", field: fVital, kind: kindCat, category: CatDemographics, groups: []string{VitalAlive, VitalDeceased}},
		{name: "conditions", field: fConditions, kind: kindCodes, category: CatConditions},
		{name: "medications", field: fMedications, kind: kindCodes, category: CatMedications},
		{name: "hba1c", field: fHbA1c, kind: kindFloat, category: CatLabs, lo: 3, hi: 20, decimals: 1},
		{name: "bmi", field: fBMI, kind: kindFloat, category: CatVitals, lo: 10, hi: 80, decimals: 1},
		{name: "sbp", field: fSBP, kind: kindFloat, category: CatVitals, lo: 60, hi: 260},
		{name: "dbp", field: fDBP, kind: kindFloat, category: CatVitals, lo: 30, hi: 160},
		{name: "ldl", field: fLDL, kind: kindFloat, category: CatLabs, lo: 20, hi: 400},
	}
}

// lookupColumn finds a column by its (lower-case) name.
func lookupColumn(name string) (column, bool) {
	for _, c := range allColumns() {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

// ColumnInfo describes one column of the patient table for callers that list
// what can be queried (UIs, documentation, licence scopes).
type ColumnInfo struct {
	Name      string
	Category  string   // "" for patient_id, which can never be queried
	ArrowType string   // e.g. "utf8", "int32", "float64", "list<item: utf8>"
	Nullable  bool     // measurements may be missing
	Numeric   bool     // usable in SUM, AVG, STDDEV, HISTOGRAM and comparisons
	Min, Max  float64  // declared public bounds of a numeric column; values are clamped to them
	Decimals  int      // decimals kept in fixed point
	GroupBy   []string // the cells of a GROUP BY on this column; nil if it cannot be grouped by
}

// Columns describes the patient table's columns in schema order.
func Columns() []ColumnInfo {
	var out []ColumnInfo
	for _, c := range allColumns() {
		out = append(out, ColumnInfo{
			Name:      c.name,
			Category:  c.category,
			ArrowType: c.arrowType().String(),
			Nullable:  c.kind == kindFloat,
			Numeric:   c.numeric(),
			Min:       c.lo,
			Max:       c.hi,
			Decimals:  c.decimals,
			GroupBy:   slices.Clone(c.groups),
		})
	}
	return out
}

// arrowSchema builds the self-describing Arrow schema for a dataset whose ages
// are counted at refDate.
func arrowSchema(refDate time.Time) *arrow.Schema {
	cols := allColumns()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		var keys, vals []string
		if c.category != "" {
			keys = append(keys, metaCategory)
			vals = append(vals, c.category)
		}
		if c.numeric() {
			keys = append(keys, metaMin, metaMax, metaDecimals)
			vals = append(vals, formatNum(c.lo), formatNum(c.hi), strconv.Itoa(c.decimals))
		}
		f := arrow.Field{Name: c.name, Type: c.arrowType(), Nullable: c.kind == kindFloat}
		if len(keys) > 0 {
			f.Metadata = arrow.NewMetadata(keys, vals)
		}
		fields[i] = f
	}
	md := arrow.NewMetadata(
		[]string{metaSchemaVersion, metaRefDate},
		[]string{SchemaVersion, refDate.Format(refDateLayout)},
	)
	return arrow.NewSchema(fields, &md)
}

// verifySchema checks that a schema read from a file is the patient table
// schema (names, types, nullability, categories, bounds, version) and returns
// its reference date and canonical hash.
func verifySchema(s *arrow.Schema) (refDate time.Time, schemaHash string, err error) {
	md := s.Metadata()
	if v, ok := metaValue(md, metaSchemaVersion); !ok {
		return time.Time{}, "", fmt.Errorf("schema metadata has no %s: not a MedX patient table", metaSchemaVersion)
	} else if v != SchemaVersion {
		return time.Time{}, "", fmt.Errorf("schema version %q is not supported (want %q)", v, SchemaVersion)
	}
	rd, ok := metaValue(md, metaRefDate)
	if !ok {
		return time.Time{}, "", fmt.Errorf("schema metadata has no %s", metaRefDate)
	}
	refDate, err = time.Parse(refDateLayout, rd)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("schema reference date %q: %w", rd, err)
	}
	cols := allColumns()
	if s.NumFields() != len(cols) {
		return time.Time{}, "", fmt.Errorf("schema has %d columns, want %d", s.NumFields(), len(cols))
	}
	for i, c := range cols {
		f := s.Field(i)
		if f.Name != c.name {
			return time.Time{}, "", fmt.Errorf("column %d is %q, want %q", i, f.Name, c.name)
		}
		if !sameType(f.Type, c.arrowType()) {
			return time.Time{}, "", fmt.Errorf("column %q has type %s, want %s", c.name, f.Type, c.arrowType())
		}
		if f.Nullable && c.kind != kindFloat {
			return time.Time{}, "", fmt.Errorf("column %q is nullable, want not null", c.name)
		}
		if got, _ := metaValue(f.Metadata, metaCategory); got != c.category {
			return time.Time{}, "", fmt.Errorf("column %q has category %q, want %q", c.name, got, c.category)
		}
		if c.numeric() {
			for _, kv := range [][2]string{
				{metaMin, formatNum(c.lo)}, {metaMax, formatNum(c.hi)}, {metaDecimals, strconv.Itoa(c.decimals)},
			} {
				if got, _ := metaValue(f.Metadata, kv[0]); got != kv[1] {
					return time.Time{}, "", fmt.Errorf("column %q has %s %q, want %q", c.name, kv[0], got, kv[1])
				}
			}
		}
	}
	return refDate, canonicalSchemaHash(s), nil
}

// sameType compares types ignoring the name of a list's element field, which
// Parquet round trips may rename.
func sameType(got, want arrow.DataType) bool {
	gl, ok1 := got.(*arrow.ListType)
	wl, ok2 := want.(*arrow.ListType)
	if ok1 || ok2 {
		return ok1 && ok2 && arrow.TypeEqual(gl.Elem(), wl.Elem())
	}
	return arrow.TypeEqual(got, want)
}

// canonicalSchemaHash hashes a canonical description of the schema: version,
// then per column name, type, nullability, category, bounds and decimals. It
// does not cover the reference date, so datasets of different dates share it.
func canonicalSchemaHash(s *arrow.Schema) string {
	var b strings.Builder
	v, _ := metaValue(s.Metadata(), metaSchemaVersion)
	fmt.Fprintf(&b, "medx.cohorts.schema/%s\n", v)
	for _, f := range s.Fields() {
		typ := f.Type.String()
		if l, ok := f.Type.(*arrow.ListType); ok {
			typ = "list<" + l.Elem().String() + ">"
		}
		cat, _ := metaValue(f.Metadata, metaCategory)
		lo, _ := metaValue(f.Metadata, metaMin)
		hi, _ := metaValue(f.Metadata, metaMax)
		d, _ := metaValue(f.Metadata, metaDecimals)
		fmt.Fprintf(&b, "%s|%s|%t|%s|%s|%s|%s\n", f.Name, typ, f.Nullable, cat, lo, hi, d)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func metaValue(md arrow.Metadata, key string) (string, bool) {
	i := md.FindKey(key)
	if i < 0 {
		return "", false
	}
	return md.Values()[i], true
}

// formatNum formats a number in its shortest exact decimal form.
func formatNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// dateOnly keeps t's calendar date (in t's own location) at midnight UTC.
func dateOnly(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// AgeAt returns the age in whole years at ref of someone born on birth.
// Importers use it so every dataset computes ages the same way.
func AgeAt(birth, ref time.Time) int {
	by, bm, bd := birth.Date()
	ry, rm, rd := ref.Date()
	age := ry - by
	if rm < bm || (rm == bm && rd < bd) {
		age--
	}
	return age
}
