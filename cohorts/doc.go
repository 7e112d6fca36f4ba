// Package cohorts provides MedX patient datasets: a self-describing patient
// table held as Arrow record batches and stored as Parquet (zstd), a seeded
// synthetic generator, an aggregate-only query language, and the local,
// vectorised evaluation a custodian runs before encrypting its result.
//
// # The patient table
//
// One row per patient. The columns, their data categories and their declared
// public bounds are fixed by the schema (see [Columns]); the schema metadata
// carries the dataset's reference date (ages are whole years at that date) and
// a schema version. patient_id is the custodian's pseudonymous record id: it
// has no category and can never appear in a query.
//
// Numeric columns are evaluated in fixed point: a value x of a column with d
// declared decimals contributes round(clamp(x)·10^d), where clamp limits x to
// the column's declared bounds. Values outside the bounds are therefore
// clamped, never dropped: an HbA1c of 25 % counts as 20 %. Sums are centred at
// the midpoint of the bounds, so one patient moves a sum by at most half the
// range; [Query.Finalize] adds the midpoint back.
//
// # Query language
//
// An aggregate-only SQL subset:
//
//	SELECT COUNT(*), AVG(hba1c) AS mean_a1c, STDDEV(hba1c), HISTOGRAM(bmi, 18.5, 25, 30, 35)
//	FROM cohort
//	WHERE age BETWEEN 40 AND 75 AND HAS_CONDITION('44054006') AND hba1c > 7
//	GROUP BY sex
//
// SELECT holds only aggregates (COUNT(*), COUNT(col), SUM, AVG, STDDEV,
// VARIANCE, HISTOGRAM(col, edges...), each with an optional AS alias); MIN,
// MAX, MEDIAN and the like, bare columns and patient_id are refused with a
// message saying why. WHERE combines comparisons (=, !=, <>, <, <=, >, >=),
// [NOT] BETWEEN, [NOT] IN (values...), IS [NOT] NULL, HAS_CONDITION(codes...)
// and HAS_MEDICATION(codes...) (exact codes, or prefixes written 'E11*') with
// AND, OR, NOT and parentheses. GROUP BY takes at most two terms of bounded
// cardinality: a declared categorical column (sex: 'F', 'M'; vital_status:
// 'alive', 'deceased') or AGE_BAND(width), bands of width years from 0 with
// the last one open-ended (AGE_BAND(10): 0-9, 10-19, ..., 110+). Cells come
// from the declared domains, never from the data, so there is no way to
// output a row or a raw value. A cohort request's inclusion criteria are a
// WHERE expression of the same grammar ([ParseCriteria]). Comparisons use
// SQL's three-valued logic: a NULL measurement satisfies neither
// "hba1c > 7" nor "NOT hba1c > 7", nor any IN or NOT IN.
// Every parse error is a [*SyntaxError] giving the line, the column and what
// was expected.
//
// # Evaluation
//
// [Dataset.Aggregate] produces one int64 per slot of the query's [Layout], a
// data-independent shape that the privacy layer encrypts, adds across
// custodians, gates and noises; [Query.Finalize] turns the resulting vector
// into a [Table].
//
// # Importers
//
// [ImportFHIR] (FHIR R4 bundles or NDJSON, as Synthea and bulk export write
// them), [ImportOMOP] (OMOP CDM 5.4 tables in Parquet) and [ImportCSV] (any
// CSV with a [CSVMapping]) stream their input and write a dataset through
// [DatasetWriter], which validates each [Patient] and produces the same file
// format as [Generate]. The reference date is stated, never guessed from the
// data: ages are counted at it and records dated after it are left out, so
// the dataset is the data as it stood that day. Conditions and medications
// are the patient's history up to that day; measurements are the latest
// value. Malformed input is an [*InputError] naming the file and the
// position (line and column, or Parquet row), and a failed import leaves no
// dataset behind.
package cohorts
