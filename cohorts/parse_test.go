package cohorts

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name, src, want string
		categories      []string
	}{
		{
			name: "brief example, lower case, semicolon",
			src: "select count(*), avg(HbA1c) as mean_a1c, stddev(hba1c), sum(ldl), histogram(bmi, 18.5, 25, 30, 35) from Cohort " +
				"where age between 40 and 75 and has_condition('44054006') and hba1c > 7.0 group by sex;",
			want: "SELECT COUNT(*), AVG(hba1c) AS mean_a1c, STDDEV(hba1c), SUM(ldl), HISTOGRAM(bmi, 18.5, 25, 30, 35) FROM cohort " +
				"WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7 GROUP BY sex",
			categories: []string{CatConditions, CatDemographics, CatLabs, CatVitals},
		},
		{
			name:       "count only",
			src:        "SELECT COUNT(*) FROM cohort",
			want:       "SELECT COUNT(*) FROM cohort",
			categories: []string{},
		},
		{
			name:       "multi-line with comments",
			src:        "-- feasibility\nSELECT COUNT(*) -- patients\n  FROM cohort\n WHERE HAS_MEDICATION('8609*', '314076')\n",
			want:       "SELECT COUNT(*) FROM cohort WHERE HAS_MEDICATION('8609*', '314076')",
			categories: []string{CatMedications},
		},
		{
			name:       "precedence and parentheses",
			src:        "SELECT COUNT(*) FROM cohort WHERE (age > 1 OR bmi < 2) AND NOT (sbp >= 3 AND dbp <= 4) OR ldl <> 5",
			want:       "SELECT COUNT(*) FROM cohort WHERE (age > 1 OR bmi < 2) AND NOT (sbp >= 3 AND dbp <= 4) OR ldl != 5",
			categories: []string{CatDemographics, CatLabs, CatVitals},
		},
		{
			name:       "redundant parentheses and nested AND flatten",
			src:        "SELECT COUNT(*) FROM cohort WHERE ((age > 1)) AND (bmi < 2 AND (sbp = 3))",
			want:       "SELECT COUNT(*) FROM cohort WHERE age > 1 AND bmi < 2 AND sbp = 3",
			categories: []string{CatDemographics, CatVitals},
		},
		{
			name:       "numbers in shortest form",
			src:        "SELECT COUNT(*) FROM cohort WHERE hba1c BETWEEN .5 AND 007.50 AND ldl > -0.250",
			want:       "SELECT COUNT(*) FROM cohort WHERE hba1c BETWEEN 0.5 AND 7.5 AND ldl > -0.25",
			categories: []string{CatLabs},
		},
		{
			name:       "sex literal normalised, NOT BETWEEN, IS NULL",
			src:        "SELECT COUNT(*) FROM cohort WHERE sex = 'f' AND age NOT BETWEEN 20 AND 30 AND hba1c IS NOT NULL AND NOT NOT ldl IS NULL",
			want:       "SELECT COUNT(*) FROM cohort WHERE sex = 'F' AND age NOT BETWEEN 20 AND 30 AND hba1c IS NOT NULL AND NOT NOT ldl IS NULL",
			categories: []string{CatDemographics, CatLabs},
		},
		{
			name:       "count of a column",
			src:        "SELECT COUNT(hba1c) AS measured, COUNT(*) FROM cohort",
			want:       "SELECT COUNT(hba1c) AS measured, COUNT(*) FROM cohort",
			categories: []string{CatLabs},
		},
		{
			name:       "IN and NOT IN on numeric and categorical columns",
			src:        "SELECT COUNT(*) FROM cohort WHERE age in (40, 50.0, 60) AND sex NOT IN ('f') AND vital_status in ('Alive', 'DECEASED') AND ldl not in (100)",
			want:       "SELECT COUNT(*) FROM cohort WHERE age IN (40, 50, 60) AND sex NOT IN ('F') AND vital_status IN ('alive', 'deceased') AND ldl NOT IN (100)",
			categories: []string{CatDemographics, CatLabs},
		},
		{
			name:       "VARIANCE, vital status and age bands",
			src:        "select variance(sbp) as v, count(*) from cohort where vital_status = 'alive' group by age_band(10), sex",
			want:       "SELECT VARIANCE(sbp) AS v, COUNT(*) FROM cohort WHERE vital_status = 'alive' GROUP BY AGE_BAND(10), sex",
			categories: []string{CatDemographics, CatVitals},
		},
		{
			name:       "group by a declared categorical",
			src:        "SELECT COUNT(*) FROM cohort GROUP BY Vital_Status",
			want:       "SELECT COUNT(*) FROM cohort GROUP BY vital_status",
			categories: []string{CatDemographics},
		},
		{
			name:       "group by only reads demographics",
			src:        "SELECT COUNT(*) FROM cohort GROUP BY SEX",
			want:       "SELECT COUNT(*) FROM cohort GROUP BY sex",
			categories: []string{CatDemographics},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery(tt.src)
			if err != nil {
				t.Fatalf("ParseQuery(%q) error: %v", tt.src, err)
			}
			if got := q.String(); got != tt.want {
				t.Errorf("ParseQuery(%q).String() =\n%s\nwant\n%s", tt.src, got, tt.want)
			}
			if diff := cmp.Diff(tt.categories, q.Categories()); diff != "" {
				t.Errorf("Categories() mismatch (-want +got):\n%s", diff)
			}
			again, err := ParseQuery(q.String())
			if err != nil {
				t.Fatalf("re-parse of %q: %v", q.String(), err)
			}
			if again.String() != q.String() {
				t.Errorf("re-parse String() = %q, want %q", again.String(), q.String())
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	tests := []struct {
		name, src, want string // want is the whole error text
	}{
		{"bare column", "SELECT hba1c FROM cohort",
			`1:8: expected an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM), found column "hba1c": queries return aggregates only`},
		{"star outside COUNT", "SELECT * FROM cohort",
			`1:8: expected an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM), found "*": queries return aggregates only; "*" is allowed only in COUNT(*)`},
		{"star in SUM", "SELECT SUM(*) FROM cohort",
			`1:12: "*" is allowed only in COUNT(*): SUM needs a numeric column`},
		{"MIN", "SELECT COUNT(*), min(age) FROM cohort",
			`1:18: MIN is not allowed: it would reveal individual values; use AVG, STDDEV or HISTOGRAM`},
		{"MAX", "SELECT MAX(bmi) FROM cohort",
			`1:8: MAX is not allowed: it would reveal individual values; use AVG, STDDEV or HISTOGRAM`},
		{"patient_id selected", "SELECT patient_id FROM cohort",
			`1:8: column "patient_id" can never be queried: it identifies a patient`},
		{"patient_id in aggregate", "SELECT COUNT(patient_id) FROM cohort",
			`1:14: column "patient_id" can never be queried: it identifies a patient`},
		{"patient_id in WHERE", "SELECT COUNT(*) FROM cohort WHERE patient_id = 'c1-000001'",
			`1:35: column "patient_id" can never be queried: it identifies a patient`},
		{"patient_id in GROUP BY", "SELECT COUNT(*) FROM cohort GROUP BY patient_id",
			`1:38: column "patient_id" can never be queried: it identifies a patient`},
		{"group by numeric", "SELECT COUNT(*) FROM cohort GROUP BY age",
			`1:38: cannot GROUP BY "age": use AGE_BAND(width) to group ages; GROUP BY accepts only sex, vital_status, AGE_BAND(width)`},
		{"group by codes", "SELECT COUNT(*) FROM cohort GROUP BY conditions",
			`1:38: cannot GROUP BY "conditions": it holds lists of codes; GROUP BY accepts only sex, vital_status, AGE_BAND(width)`},
		{"group by repeated", "SELECT COUNT(*) FROM cohort GROUP BY sex, sex",
			`1:43: GROUP BY sex is repeated`},
		{"unknown column", "SELECT AVG(weight) FROM cohort",
			`1:12: unknown column "weight" (columns: sex, birth_year, age, vital_status, conditions, medications, hba1c, bmi, sbp, dbp, ldl)`},
		{"unknown function", "SELECT FOO(age) FROM cohort",
			`1:8: unknown function FOO: expected an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM)`},
		{"unknown function in WHERE", "SELECT COUNT(*) FROM cohort WHERE LOWER(sex) = 'f'",
			`1:35: unknown function LOWER in a condition: expected HAS_CONDITION or HAS_MEDICATION`},
		{"non-numeric aggregate", "SELECT AVG(sex) FROM cohort",
			`1:12: AVG needs a numeric column, "sex" is not numeric`},
		{"codes aggregated", "SELECT SUM(conditions) FROM cohort",
			`1:12: SUM needs a numeric column, "conditions" is not numeric`},
		{"two arguments", "SELECT AVG(age, bmi) FROM cohort",
			`1:15: AVG takes one argument`},
		{"missing FROM", "SELECT COUNT(*)",
			`1:16: expected "," or FROM, found end of input`},
		{"wrong table", "SELECT COUNT(*) FROM patients",
			`1:22: unknown table "patients": queries read FROM cohort`},
		{"trailing clause", "SELECT COUNT(*) FROM cohort LIMIT 5",
			`1:29: expected WHERE, GROUP BY or end of query, found "LIMIT"`},
		{"trailing after WHERE", "SELECT COUNT(*) FROM cohort WHERE age > 5 ORDER BY age",
			`1:43: expected AND, OR, GROUP BY or end of query, found "ORDER"`},
		{"error on third line", "SELECT COUNT(*)\nFROM cohort\nWHERE hba1c > 'high'",
			`3:15: expected a number to compare with "hba1c", found string 'high'`},
		{"column compared with column", "SELECT COUNT(*) FROM cohort WHERE sbp > dbp",
			`1:41: expected a number to compare with "sbp", found "dbp"`},
		{"sex value", "SELECT COUNT(*) FROM cohort WHERE sex = 'X'",
			`1:41: sex is 'F' or 'M', found string 'X'`},
		{"sex ordering", "SELECT COUNT(*) FROM cohort WHERE sex > 'F'",
			`1:39: sex can only be compared with = or != (or IN)`},
		{"codes compared", "SELECT COUNT(*) FROM cohort WHERE conditions = '44054006'",
			`1:35: column "conditions" holds a list of codes: test it with HAS_CONDITION('code')`},
		{"empty code list", "SELECT COUNT(*) FROM cohort WHERE HAS_CONDITION()",
			`1:49: expected a code in quotes, e.g. '44054006' or '4405*', found ")"`},
		{"bare wildcard", "SELECT COUNT(*) FROM cohort WHERE HAS_MEDICATION('*')",
			`1:50: code prefix '*' is empty: give at least one character before '*'`},
		{"bad code", "SELECT COUNT(*) FROM cohort WHERE HAS_CONDITION('4405 4006')",
			`1:49: invalid code: code "4405 4006" contains ' ': codes are letters, digits, '.', '-', '_'`},
		{"IS NULL on non-null column", "SELECT COUNT(*) FROM cohort WHERE age IS NULL",
			`1:39: column "age" is never NULL`},
		{"BETWEEN on sex", "SELECT COUNT(*) FROM cohort WHERE sex BETWEEN 1 AND 2",
			`1:39: BETWEEN needs a numeric column, "sex" is not numeric`},
		{"histogram one edge", "SELECT HISTOGRAM(bmi, 25) FROM cohort",
			`1:25: HISTOGRAM(bmi, e1, e2, ...) needs at least two bin edges`},
		{"histogram decreasing", "SELECT HISTOGRAM(bmi, 18.5, 30, 25) FROM cohort",
			`1:33: bin edges must be strictly increasing: 25 after 30`},
		{"histogram out of bounds", "SELECT HISTOGRAM(ldl, 0, 100) FROM cohort",
			`1:23: bin edge 0 is outside ldl's declared bounds [20, 400]`},
		{"histogram too precise", "SELECT HISTOGRAM(bmi, 18.55, 25) FROM cohort",
			`1:23: bin edge 18.55 has more than 1 decimals, the precision of bmi`},
		{"histogram too many bins", "SELECT HISTOGRAM(age, " + edges(34) + ") FROM cohort",
			`1:145: HISTOGRAM has at most 32 bins (33 edges)`},
		{"duplicate output", "SELECT AVG(age), avg(age) FROM cohort",
			`1:18: output column "avg(age)" is already defined at 1:8: use AS to name it differently`},
		{"alias clashes with GROUP BY", "SELECT COUNT(*) AS Sex FROM cohort GROUP BY sex",
			`1:8: output column "sex" clashes with GROUP BY sex: use AS to name it differently`},
		{"keyword alias", "SELECT COUNT(*) AS from FROM cohort",
			`1:20: expected a name after AS, found "from"`},
		{"unterminated string", "SELECT COUNT(*) FROM cohort WHERE HAS_CONDITION('4405",
			`1:49: unterminated string: strings are 'single-quoted'`},
		{"double quotes", `SELECT COUNT(*) FROM cohort WHERE sex = "F"`,
			`1:41: unexpected '"': strings are 'single-quoted' and identifiers are not quoted`},
		{"bang", "SELECT COUNT(*) FROM cohort WHERE age ! 3",
			`1:39: unexpected "!": did you mean "!="?`},
		{"unexpected character", "SELECT COUNT(*) FROM cohort WHERE age > 3 & bmi > 2",
			`1:43: unexpected character '&'`},
		{"empty", "", `1:1: expected SELECT, found end of input`},
		{"too deep", "SELECT COUNT(*) FROM cohort WHERE " + strings.Repeat("(", 70) + "age > 1" + strings.Repeat(")", 70),
			`1:99: expression nested more than 64 deep`},
		{"missing condition after AND", "SELECT COUNT(*) FROM cohort WHERE age > 1 AND",
			`1:46: expected a condition (a column comparison, BETWEEN, IN, HAS_CONDITION, HAS_MEDICATION, NOT or "("), found end of input`},
		{"AGE_BAND too narrow", "SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(2)",
			`1:47: AGE_BAND width must be a whole number of years from 5 to 120 (narrower bands come close to single ages), found number 2`},
		{"AGE_BAND fractional", "SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(7.5)",
			`1:47: AGE_BAND width must be a whole number of years from 5 to 120 (narrower bands come close to single ages), found number 7.5`},
		{"AGE_BAND without width", "SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND()",
			`1:47: AGE_BAND width must be a whole number of years from 5 to 120 (narrower bands come close to single ages), found ")"`},
		{"AGE_BAND twice", "SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(10), AGE_BAND(5)",
			`1:52: GROUP BY AGE_BAND(10) is repeated`},
		{"other function in GROUP BY", "SELECT COUNT(*) FROM cohort GROUP BY YEAR(birth_year)",
			`1:38: unknown function YEAR in GROUP BY: expected AGE_BAND(width)`},
		{"IN without list", "SELECT COUNT(*) FROM cohort WHERE age IN 40",
			`1:42: expected "(" after IN, found number 40`},
		{"IN empty", "SELECT COUNT(*) FROM cohort WHERE age IN ()",
			`1:43: expected a number to compare with "age", found ")"`},
		{"IN string on numeric", "SELECT COUNT(*) FROM cohort WHERE hba1c IN (7, 'x')",
			`1:48: expected a number to compare with "hba1c", found string 'x'`},
		{"IN number on categorical", "SELECT COUNT(*) FROM cohort WHERE sex IN ('F', 1)",
			`1:48: expected 'F' or 'M', found number 1`},
		{"IN unknown category", "SELECT COUNT(*) FROM cohort WHERE vital_status IN ('dead')",
			`1:52: vital_status is 'alive' or 'deceased', found string 'dead'`},
		{"IN unterminated", "SELECT COUNT(*) FROM cohort WHERE age IN (1, 2",
			`1:47: expected "," or ")", found end of input`},
		{"IN too long", "SELECT COUNT(*) FROM cohort WHERE age IN (" + edges(257) + ")",
			`1:1213: IN takes at most 256 values`},
		{"NOT without BETWEEN or IN", "SELECT COUNT(*) FROM cohort WHERE age NOT 5",
			`1:43: expected BETWEEN or IN after NOT, found number 5`},
		{"vital status ordering", "SELECT COUNT(*) FROM cohort WHERE vital_status < 'alive'",
			`1:48: vital_status can only be compared with = or != (or IN)`},
		{"MEDIAN refused", "SELECT MEDIAN(hba1c) FROM cohort",
			`1:8: MEDIAN is not allowed: it would reveal individual values; use AVG, STDDEV or HISTOGRAM`},
		{"VARIANCE of a category", "SELECT VARIANCE(sex) FROM cohort",
			`1:17: VARIANCE needs a numeric column, "sex" is not numeric`},
		{"nested aggregate", "SELECT AVG(COUNT(*)) FROM cohort",
			`1:12: AVG(COUNT(...)) is not allowed: an aggregate takes a column, not another aggregate or a function`},
		{"DISTINCT", "SELECT COUNT(DISTINCT sex) FROM cohort",
			`1:14: DISTINCT is not allowed: distinct values can single out patients; COUNT(*) counts patients and COUNT(column) non-null values`},
		{"subquery", "SELECT COUNT(*) FROM (SELECT * FROM cohort)",
			`1:22: subqueries are not supported: queries read FROM cohort, one row per patient`},
		{"arithmetic", "SELECT SUM(age)/COUNT(*) FROM cohort",
			`1:16: unexpected character '/': arithmetic is not supported; compute ratios and differences from the released aggregates`},
		{"JOIN", "SELECT COUNT(*) FROM cohort JOIN other",
			`1:29: expected WHERE, GROUP BY or end of query, found "JOIN"`},
		{"UNION", "SELECT COUNT(*) FROM cohort UNION SELECT hba1c FROM cohort",
			`1:29: expected WHERE, GROUP BY or end of query, found "UNION"`},
		{"second statement", "SELECT COUNT(*) FROM cohort; SELECT hba1c FROM cohort",
			`1:30: expected WHERE, GROUP BY or end of query, found "SELECT"`},
		{"HAVING", "SELECT COUNT(*) FROM cohort GROUP BY sex HAVING COUNT(*) > 1",
			`1:42: expected "," or end of query, found "HAVING"`},
		{"literal selected", "SELECT 1 FROM cohort",
			`1:8: expected an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM), found number 1`},
		{"bare column beside an aggregate", "SELECT COUNT(*), hba1c FROM cohort GROUP BY sex",
			`1:18: expected an aggregate (COUNT, SUM, AVG, STDDEV, VARIANCE, HISTOGRAM), found column "hba1c": queries return aggregates only`},
		{"group by birth year", "SELECT COUNT(*) FROM cohort GROUP BY birth_year",
			`1:38: cannot GROUP BY "birth_year": numeric columns have unbounded cardinality; GROUP BY accepts only sex, vital_status, AGE_BAND(width)`},
		{"group by a condition", "SELECT COUNT(*) FROM cohort GROUP BY HAS_CONDITION('44054006')",
			`1:38: unknown function HAS_CONDITION in GROUP BY: expected AGE_BAND(width)`},
		{"PERCENTILE", "SELECT PERCENTILE(hba1c, 0.5) FROM cohort",
			`1:8: PERCENTILE is not allowed: it would reveal individual values; use AVG, STDDEV or HISTOGRAM`},
		{"aggregate in WHERE", "SELECT COUNT(*) FROM cohort WHERE AVG(age) > 3",
			`1:35: unknown function AVG in a condition: expected HAS_CONDITION or HAS_MEDICATION`},
		{"column position after non-ASCII comment", "-- età\nSELECT médian FROM cohort",
			`2:9: unexpected character 'é'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery(tt.src)
			if err == nil {
				t.Fatalf("ParseQuery(%q) = %q, want error %q", tt.src, q, tt.want)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseQuery(%q) error %T %v, want *SyntaxError", tt.src, err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseQuery(%q) error\n got %s\nwant %s", tt.src, err, tt.want)
			}
		})
	}
}

// edges returns "0, 1, 2, ..." with n numbers.
func edges(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, formatNum(float64(i)))
	}
	return strings.Join(parts, ", ")
}

func TestParseCriteria(t *testing.T) {
	tests := []struct {
		src, want string
		cats      []string
		err       string
	}{
		{src: "age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7",
			want: "age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7",
			cats: []string{CatConditions, CatDemographics, CatLabs}},
		{src: "has_condition('E11*') or has_medication('860975')",
			want: "HAS_CONDITION('E11*') OR HAS_MEDICATION('860975')",
			cats: []string{CatConditions, CatMedications}},
		{src: "not (bmi >= 30 or sbp > 140);", want: "NOT (bmi >= 30 OR sbp > 140)", cats: []string{CatVitals}},
		{src: "", err: "1:1: expected a condition, found end of input"},
		{src: "WHERE age > 3", err: `1:1: expected a condition, found keyword WHERE`},
		{src: "age > 3 GROUP BY sex", err: `1:9: expected AND, OR or end of criteria, found "GROUP"`},
		{src: "COUNT(*) > 3", err: "1:1: unknown function COUNT in a condition: expected HAS_CONDITION or HAS_MEDICATION"},
	}
	for _, tt := range tests {
		c, err := ParseCriteria(tt.src)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseCriteria(%q) error = %v, want %s", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCriteria(%q) error: %v", tt.src, err)
			continue
		}
		if got := c.String(); got != tt.want {
			t.Errorf("ParseCriteria(%q).String() = %q, want %q", tt.src, got, tt.want)
		}
		if diff := cmp.Diff(tt.cats, c.Categories()); diff != "" {
			t.Errorf("ParseCriteria(%q).Categories() mismatch (-want +got):\n%s", tt.src, diff)
		}
	}
}

func TestLayout(t *testing.T) {
	q, err := ParseQuery("SELECT COUNT(*), AVG(hba1c), STDDEV(hba1c) AS sd, HISTOGRAM(bmi, 18.5, 25, 30), SUM(age) FROM cohort GROUP BY sex")
	if err != nil {
		t.Fatal(err)
	}
	cell := func(c int) []Slot {
		b := c * 8
		return []Slot{
			{Cell: c, Name: "count", Kind: SlotCount, Group: 0, Gate: b, Sensitivity: 1, MaxAbs: 1},
			{Cell: c, Name: "n(hba1c)", Kind: SlotCount, Group: 1, Gate: b + 1, Sensitivity: 1, MaxAbs: 1},
			// hba1c [3,20] d=1: fixed [30,200], centred at 115, half-range 85
			{Cell: c, Name: "sum(hba1c)", Kind: SlotSum, Group: 2, Gate: b + 1, Sensitivity: 85, MaxAbs: 85},
			{Cell: c, Name: "sumsq(hba1c)", Kind: SlotSum, Group: 3, Gate: b + 1, Sensitivity: 85 * 85, MaxAbs: 85 * 85},
			{Cell: c, Name: "bin(bmi)[18.5,25)", Kind: SlotCount, Group: 4, Gate: b + 4, Sensitivity: 1, MaxAbs: 1},
			{Cell: c, Name: "bin(bmi)[25,30]", Kind: SlotCount, Group: 4, Gate: b + 5, Sensitivity: 1, MaxAbs: 1},
			{Cell: c, Name: "n(age)", Kind: SlotCount, Group: 5, Gate: b + 6, Sensitivity: 1, MaxAbs: 1},
			// age [0,120] d=0: centred at 60, half-range 60
			{Cell: c, Name: "sum(age)", Kind: SlotSum, Group: 6, Gate: b + 6, Sensitivity: 60, MaxAbs: 60},
		}
	}
	want := Layout{
		Cells: []Cell{{Labels: []string{"F"}}, {Labels: []string{"M"}}},
		Slots: append(cell(0), cell(1)...),
	}
	if diff := cmp.Diff(want, q.Layout()); diff != "" {
		t.Errorf("Layout() mismatch (-want +got):\n%s", diff)
	}
	wantCols := []string{"count", "avg(hba1c)", "sd", "histogram(bmi)[18.5,25)", "histogram(bmi)[25,30]", "sum(age)"}
	if diff := cmp.Diff(wantCols, q.OutputColumns()); diff != "" {
		t.Errorf("OutputColumns() mismatch (-want +got):\n%s", diff)
	}

	// No GROUP BY: one cell without labels.
	q, err = ParseQuery("SELECT COUNT(*) FROM cohort WHERE sex = 'F'")
	if err != nil {
		t.Fatal(err)
	}
	want = Layout{Cells: []Cell{{Labels: []string{}}}, Slots: []Slot{{Name: "count", Sensitivity: 1, MaxAbs: 1}}}
	if diff := cmp.Diff(want, q.Layout()); diff != "" {
		t.Errorf("Layout() mismatch (-want +got):\n%s", diff)
	}

	// Age bands: enumerated from the age bounds, the last one open-ended.
	for _, tt := range []struct {
		src    string
		labels [][]string
	}{
		{"SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(10)", [][]string{{"0-9"}, {"10-19"}, {"20-29"}, {"30-39"}, {"40-49"}, {"50-59"},
			{"60-69"}, {"70-79"}, {"80-89"}, {"90-99"}, {"100-109"}, {"110+"}}},
		{"SELECT COUNT(*) FROM cohort GROUP BY AGE_BAND(50), sex", [][]string{{"0-49", "F"}, {"0-49", "M"}, {"50-99", "F"}, {"50-99", "M"}, {"100+", "F"}, {"100+", "M"}}},
		{"SELECT COUNT(*) FROM cohort GROUP BY vital_status, AGE_BAND(120)", [][]string{{"alive", "0+"}, {"deceased", "0+"}}},
	} {
		q, err := ParseQuery(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		for _, c := range q.Layout().Cells {
			got = append(got, c.Labels)
		}
		if diff := cmp.Diff(tt.labels, got); diff != "" {
			t.Errorf("ParseQuery(%q) cells mismatch (-want +got):\n%s", tt.src, diff)
		}
	}

	// The copy is the caller's.
	l := q.Layout()
	l.Slots[0].Name = "changed"
	if q.Layout().Slots[0].Name != "count" {
		t.Error("modifying a returned Layout changed the query")
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"SELECT COUNT(*), AVG(hba1c) AS mean_a1c, STDDEV(hba1c), SUM(ldl), HISTOGRAM(bmi, 18.5, 25, 30, 35) FROM cohort WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7 GROUP BY sex",
		"SELECT COUNT(*) FROM cohort WHERE NOT (sex = 'F' OR hba1c IS NULL) AND HAS_MEDICATION('86*', '314076')",
		"select count(hba1c) as n from cohort where ldl <> -1.5 -- c\n;",
		"SELECT hba1c FROM cohort",
		"SELECT COUNT(*) FROM cohort WHERE ((((age > 1))))",
		"SELECT HISTOGRAM(age, 0, 1, 2) FROM cohort GROUP BY sex, sex",
		"SELECT 'x''y' FROM cohort",
		"SELECT VARIANCE(ldl), COUNT(*) FROM cohort WHERE age IN (40, 50) AND vital_status NOT IN ('deceased') GROUP BY AGE_BAND(10), vital_status",
		"SELECT COUNT(*) FROM cohort GROUP BY age_band(5), sex",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := ParseQuery(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseQuery(%q) error %T, want *SyntaxError", src, err)
			}
			if se.Line < 1 || se.Col < 1 {
				t.Fatalf("ParseQuery(%q) error position %d:%d", src, se.Line, se.Col)
			}
			return
		}
		s := q.String()
		again, err := ParseQuery(s)
		if err != nil {
			t.Fatalf("ParseQuery(%q).String() = %q does not parse: %v", src, s, err)
		}
		if again.String() != s {
			t.Fatalf("re-parse of %q gives %q", s, again.String())
		}
		if diff := cmp.Diff(q.Layout(), again.Layout()); diff != "" {
			t.Fatalf("re-parse of %q changes the layout:\n%s", s, diff)
		}
	})
}

func FuzzParseCriteria(f *testing.F) {
	for _, s := range []string{
		"age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7",
		"NOT NOT (bmi >= 30 OR sbp > 140 AND dbp < 90)",
		"sex != 'm' OR ldl IS NOT NULL",
		"HAS_CONDITION('E11.9', 'E1*')",
		"age NOT BETWEEN .5 AND -3.",
		"sex IN ('f', 'M') AND NOT hba1c NOT IN (7, 8.5) OR vital_status = 'Deceased'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := ParseCriteria(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseCriteria(%q) error %T, want *SyntaxError", src, err)
			}
			return
		}
		s := c.String()
		again, err := ParseCriteria(s)
		if err != nil {
			t.Fatalf("ParseCriteria(%q).String() = %q does not parse: %v", src, s, err)
		}
		if again.String() != s {
			t.Fatalf("re-parse of %q gives %q", s, again.String())
		}
	})
}
