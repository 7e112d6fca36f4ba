package cohorts

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// Codes the generator uses.
const (
	// SNOMED CT
	CodeType2Diabetes   = "44054006"
	CodePrediabetes     = "15777000"
	CodeHypertension    = "59621000" // essential hypertension
	CodeHyperlipidaemia = "55822004"
	CodeCKD             = "431855005" // chronic kidney disease
	CodeAsthma          = "195967001"
	CodeObesityBMI30    = "162864005" // body mass index 30+ - obesity (finding)
	// RxNorm
	CodeMetformin           = "860975"
	CodeInsulin             = "106892"
	CodeLisinopril          = "314076"
	CodeHydrochlorothiazide = "316049"
	CodeAtorvastatin        = "617312"
	CodeSimvastatin         = "316672"
	CodeAlbuterol           = "745679"
)

// maxGenerate bounds GenerateOptions.Patients.
const maxGenerate = 100_000_000

// GenerateOptions configures Generate.
type GenerateOptions struct {
	Patients int
	Seed     uint64
	RefDate  time.Time // reference date for ages
	IDPrefix string    // patient ids are IDPrefix + zero-padded index, e.g. "c1-000042"
}

// Generate writes a seeded synthetic dataset as one Parquet file (zstd),
// streaming in record batches. The same options give a byte-identical file.
//
// The distributions are those of an adult population: ages 18–95 skewed to
// younger adults, about 51 % women, a log-normal BMI around 27 rising mildly
// with age, systolic pressure rising with age and BMI and diastolic
// correlated with it, type 2 diabetes rising with age and BMI (about 11 % of
// adults, over 20 % at 65+), prediabetes, essential hypertension driven by
// blood pressure, hyperlipidaemia driven by LDL, rarer chronic kidney disease
// among diabetics and hypertensives, and asthma. HbA1c is about 5.3 % when
// normal, 6.0 % in prediabetes and 7.5 ± 1.3 % in diabetes, and is measured
// mostly in (pre)diabetics and in about 30 % of the others; other
// measurements are missing for some patients. Medications follow the
// conditions (metformin for most diabetics, lisinopril for hypertension, a
// statin for hyperlipidaemia) and treatment lowers the measured values.
// Some patients have died by the reference date (vital_status 'deceased'):
// about 1 % at 40, 20 % at 85, more with diabetes or kidney disease.
func Generate(ctx context.Context, path string, opts GenerateOptions) (Manifest, error) {
	return generate(ctx, path, opts, memory.DefaultAllocator)
}

func generate(ctx context.Context, path string, opts GenerateOptions, mem memory.Allocator) (Manifest, error) {
	switch {
	case opts.Patients < 1 || opts.Patients > maxGenerate:
		return Manifest{}, fmt.Errorf("generate %s: Patients = %d, want 1 to %d", path, opts.Patients, maxGenerate)
	case opts.RefDate.IsZero():
		return Manifest{}, fmt.Errorf("generate %s: RefDate is required", path)
	case len(opts.IDPrefix) > 64 || strings.ContainsFunc(opts.IDPrefix, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return Manifest{}, fmt.Errorf("generate %s: IDPrefix %q must be at most 64 printable characters", path, opts.IDPrefix)
	}
	w, err := createDataset(ctx, path, opts.RefDate, mem)
	if err != nil {
		return Manifest{}, fmt.Errorf("generate: %w", err)
	}
	g := newGenerator(opts)
	var p Patient
	for i := range opts.Patients {
		g.patient(i, &p)
		if err := w.Write(ctx, &p); err != nil {
			w.Abort()
			return Manifest{}, fmt.Errorf("generate: %w", err)
		}
	}
	m, err := w.Close(ctx)
	if err != nil {
		return Manifest{}, fmt.Errorf("generate: %w", err)
	}
	return m, nil
}

type generator struct {
	rng        *rand.Rand
	vital      *rand.Rand // a stream of its own, so vital status leaves the other columns as they were
	prefix     string
	width      int
	refYear    int
	notYetBorn float64 // share of a year's birthdays after the reference date
	idBuf      []byte
}

func newGenerator(opts GenerateOptions) *generator {
	ref := dateOnly(opts.RefDate)
	daysInYear := time.Date(ref.Year(), 12, 31, 0, 0, 0, 0, time.UTC).YearDay()
	return &generator{
		// The second PCG word is fixed ("medxcoho") so the seed alone picks the stream.
		rng:        rand.New(rand.NewPCG(opts.Seed, 0x6d656478636f686f)),
		vital:      rand.New(rand.NewPCG(opts.Seed, 0x6d65647876697461)), // "medxvita"
		prefix:     opts.IDPrefix,
		width:      max(6, len(strconv.Itoa(opts.Patients-1))),
		refYear:    ref.Year(),
		notYetBorn: float64(daysInYear-ref.YearDay()) / float64(daysInYear),
	}
}

// age draws an age from bands approximating an adult population.
func (g *generator) age() int {
	// lower bound, upper bound (inclusive), cumulative share
	bands := [...]struct {
		lo, hi int
		cum    float64
	}{
		{18, 24, 0.115}, {25, 34, 0.290}, {35, 44, 0.455}, {45, 54, 0.610},
		{55, 64, 0.775}, {65, 74, 0.905}, {75, 84, 0.975}, {85, 95, 1},
	}
	u := g.rng.Float64()
	for _, b := range bands {
		if u < b.cum {
			return b.lo + g.rng.IntN(b.hi-b.lo+1)
		}
	}
	return 95
}

func (g *generator) bernoulli(p float64) bool { return g.rng.Float64() < p }

func logistic(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// patient fills p with the i-th synthetic patient, reusing p's slices.
func (g *generator) patient(i int, p *Patient) {
	r := g.rng
	g.idBuf = append(g.idBuf[:0], g.prefix...)
	digits := strconv.Itoa(i)
	for range g.width - len(digits) {
		g.idBuf = append(g.idBuf, '0')
	}
	g.idBuf = append(g.idBuf, digits...)
	p.ID = string(g.idBuf)

	age := g.age()
	male := !g.bernoulli(0.51)
	p.Sex = "F"
	if male {
		p.Sex = "M"
	}
	p.Age = age
	p.BirthYear = g.refYear - age
	if g.bernoulli(g.notYetBorn) {
		p.BirthYear--
	}
	fa := float64(age)
	sexTerm := 0.0
	if male {
		sexTerm = 1
	}

	// Body mass index: log-normal, median rising to about 27.7 at 60.
	median := 25.0 + 0.065*(min(fa, 60)-18) - 0.05*max(fa-70, 0) + 0.4*sexTerm
	bmi := round1(median * math.Exp(0.17*r.NormFloat64()))

	// Untreated blood pressure rises with age and BMI.
	sbp := 108 + 0.42*(fa-18) + 0.7*(bmi-27) + 5*sexTerm + 12*r.NormFloat64()
	dbp := 30 + 0.35*sbp - 0.12*max(fa-60, 0) + 6*r.NormFloat64()

	// Glycaemia.
	diabetic := g.bernoulli(logistic(-5.3 + 0.05*fa + 0.12*(bmi-27) + 0.25*sexTerm))
	prediabetic := !diabetic && g.bernoulli(logistic(-3.3+0.03*fa+0.08*(bmi-27)))

	// Hypertension is diagnosed from the untreated pressure.
	var pHTN float64
	switch {
	case sbp >= 140:
		pHTN = 0.85
	case sbp >= 130:
		pHTN = 0.5
	case sbp >= 120:
		pHTN = 0.15
	default:
		pHTN = 0.04
	}
	if diabetic {
		pHTN = min(1, pHTN+0.1)
	}
	hypertensive := g.bernoulli(pHTN)

	// LDL and hyperlipidaemia.
	ldl := 105 + 0.6*(min(fa, 65)-18) + 30*r.NormFloat64()
	if diabetic {
		ldl += 8
	}
	var pHLD float64
	switch {
	case ldl >= 160:
		pHLD = 0.8
	case ldl >= 130:
		pHLD = 0.4
	default:
		pHLD = 0.08
	}
	if diabetic {
		pHLD = min(1, pHLD+0.15)
	}
	hyperlipidaemic := g.bernoulli(pHLD)

	ckdLogit := -6.2 + 0.045*fa
	if diabetic {
		ckdLogit += 1.0
	}
	if hypertensive {
		ckdLogit += 0.8
	}
	ckd := g.bernoulli(logistic(ckdLogit))
	asthma := g.bernoulli(0.08 - 0.02*sexTerm)
	obese := bmi >= 30 && g.bernoulli(0.5)

	var hba1c float64
	switch {
	case diabetic:
		hba1c = max(5.5, 7.5+1.3*r.NormFloat64())
	case prediabetic:
		hba1c = min(max(6.0+0.2*r.NormFloat64(), 5.7), 6.4)
	default:
		hba1c = min(max(5.3+0.25*r.NormFloat64(), 4.0), 5.6)
	}
	hba1c = round1(hba1c)

	// Conditions, in a fixed order.
	p.Conditions = p.Conditions[:0]
	add := func(list *[]string, ok bool, code string) {
		if ok {
			*list = append(*list, code)
		}
	}
	add(&p.Conditions, diabetic, CodeType2Diabetes)
	add(&p.Conditions, prediabetic, CodePrediabetes)
	add(&p.Conditions, hypertensive, CodeHypertension)
	add(&p.Conditions, hyperlipidaemic, CodeHyperlipidaemia)
	add(&p.Conditions, ckd, CodeCKD)
	add(&p.Conditions, asthma, CodeAsthma)
	add(&p.Conditions, obese, CodeObesityBMI30)

	// Medications follow the conditions; treatment lowers what is measured.
	p.Medications = p.Medications[:0]
	add(&p.Medications, diabetic && g.bernoulli(0.8), CodeMetformin)
	pInsulin := 0.1
	if hba1c > 9 {
		pInsulin = 0.5
	}
	add(&p.Medications, diabetic && g.bernoulli(pInsulin), CodeInsulin)
	lisinopril := hypertensive && g.bernoulli(0.7)
	hctz := hypertensive && g.bernoulli(0.35)
	add(&p.Medications, lisinopril, CodeLisinopril)
	add(&p.Medications, hctz, CodeHydrochlorothiazide)
	statin := hyperlipidaemic && g.bernoulli(0.85) || diabetic && age >= 40 && g.bernoulli(0.5)
	atorva := statin && g.bernoulli(0.7)
	add(&p.Medications, atorva, CodeAtorvastatin)
	add(&p.Medications, statin && !atorva, CodeSimvastatin)
	add(&p.Medications, asthma && g.bernoulli(0.8), CodeAlbuterol)
	if lisinopril || hctz {
		sbp -= 9 + 4*r.NormFloat64()
		dbp -= 5 + 3*r.NormFloat64()
	}
	if statin {
		ldl *= 0.65 + 0.05*r.NormFloat64()
	}

	p.BMI = maybe(g.bernoulli(0.92), bmi)
	bp := g.bernoulli(0.9)
	p.SBP = maybe(bp, math.Round(sbp))
	p.DBP = maybe(bp, math.Round(min(dbp, sbp-10)))
	measureA1c := 0.3
	switch {
	case diabetic:
		measureA1c = 0.95
	case prediabetic:
		measureA1c = 0.85
	}
	p.HbA1c = maybe(g.bernoulli(measureA1c), hba1c)
	measureLDL := 0.45
	if diabetic || hypertensive || hyperlipidaemic || age >= 40 {
		measureLDL = 0.8
	}
	p.LDL = maybe(g.bernoulli(measureLDL), math.Round(max(ldl, 25)))

	// Records outlive patients: deaths by the reference date rise with age,
	// diabetes and chronic kidney disease.
	deathLogit := -7.6 + 0.07*fa
	if diabetic {
		deathLogit += 0.4
	}
	if ckd {
		deathLogit += 0.6
	}
	p.Deceased = g.vital.Float64() < logistic(deathLogit)
}

func maybe(ok bool, v float64) Measure {
	if !ok {
		return Measure{}
	}
	return Measured(v)
}
