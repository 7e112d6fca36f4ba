package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/privacy"
)

// benchQuery is the typical query of the benchmark: three predicates,
// COUNT, AVG, STDDEV and a 10-bin histogram, grouped by sex.
const benchQuery = "SELECT COUNT(*) AS patients, AVG(hba1c) AS mean_hba1c, STDDEV(hba1c) AS sd_hba1c, " +
	"HISTOGRAM(bmi, 15, 20, 22.5, 25, 27.5, 30, 32.5, 35, 40, 50, 80) AS bmi FROM cohort " +
	"WHERE age BETWEEN 40 AND 80 AND HAS_CONDITION('44054006') AND sbp >= 90 GROUP BY sex"

// Benchmark targets (issue 4): encrypted at most 3× plaintext plus 15 ms,
// and a cryptographic critical path of at most 15 ms.
const (
	benchTargetRatio   = 3
	benchTargetSlackMS = 15
	benchTargetCrypto  = 15
)

// benchResult is the one JSON object `medx bench query` prints. Times are
// medians over the runs, in milliseconds.
type benchResult struct {
	Patients     int         `json:"patients"`
	Custodians   int         `json:"custodians"`
	KeyHolders   int         `json:"key_holders"` // custodians and the ethics board
	Seed         uint64      `json:"seed"`
	Runs         int         `json:"runs"`
	GOMAXPROCS   int         `json:"gomaxprocs"`
	Query        string      `json:"query"`
	Slots        int         `json:"slots"`
	PlaintextMS  float64     `json:"plaintext_ms"`   // every custodian's scan, summed in the clear
	EncryptedMS  float64     `json:"encrypted_ms"`   // the same scans, then the whole protocol and the sponsor's decryption
	Ratio        float64     `json:"ratio"`          // encrypted_ms / plaintext_ms
	ScanMS       float64     `json:"scan_ms"`        // the scans inside the encrypted path
	CryptoMS     float64     `json:"crypto_ms"`      // critical path in CPU time: each step's slowest party, plus the sponsor's decryption
	CryptoWallMS float64     `json:"crypto_wall_ms"` // the same path in wall time, waits for a core included
	CryptoSteps  []benchStep `json:"crypto_steps"`   // the steps of crypto_ms
	MessageBytes int64       `json:"message_bytes"`  // every message of one query
	Match        bool        `json:"match"`          // a noise-off pass equals the plaintext exactly
	TargetMS     float64     `json:"target_encrypted_ms"`
	WithinTarget bool        `json:"within_target"`
	CryptoTarget bool        `json:"crypto_within_target"`
	SetupMS      float64     `json:"setup_ms"` // data generation, loading and the key ceremony (not timed above)
}

// benchStep is one step of the cryptographic critical path: the median of
// its slowest party's time.
type benchStep struct {
	Step   string  `json:"step"`
	MS     float64 `json:"ms"`      // CPU time
	WallMS float64 `json:"wall_ms"` // wall time
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "api" {
		return runBenchAPI(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "query" {
		return fmt.Errorf("%w: medx bench query --patients N --custodians K [--seed S] [--runs R] | medx bench api [--requests N --accepts K --concurrency C]", errUsage)
	}
	fs := newFlags("bench query", stderr)
	patients := fs.Int("patients", 100_000, "patients in all, split between the custodians")
	custodians := fs.Int("custodians", 3, "custodians, each with its own generated dataset and key share")
	seed := fs.Uint64("seed", 1, "seed for the generated data")
	runs := fs.Int("runs", 7, "timed runs of each path; medians are reported")
	dir := fs.String("dir", "", "directory for the generated datasets (default: a temporary directory, removed afterwards)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	switch {
	case *custodians < 1 || *custodians >= privacy.MaxKeyHolders:
		return fmt.Errorf("%w: --custodians %d: want 1 to %d", errUsage, *custodians, privacy.MaxKeyHolders-1)
	case *patients < 10**custodians || *patients > 20_000_000:
		return fmt.Errorf("%w: --patients %d: want at least 10 per custodian and at most 20000000", errUsage, *patients)
	case *runs < 1 || *runs > 1000:
		return fmt.Errorf("%w: --runs %d: want 1 to 1000", errUsage, *runs)
	}
	return benchRun(stdout, *dir, "medx-bench-", "", func(dir string) (*benchResult, error) {
		return benchQueryRun(ctx, dir, *patients, *custodians, *seed, *runs)
	})
}

// benchRun runs bench in dir or, when dir is "", in sub below a new
// temporary directory (pattern as os.MkdirTemp's) removed afterwards, and
// prints its result as one JSON object.
func benchRun[R any](stdout io.Writer, dir, pattern, sub string, bench func(dir string) (R, error)) error {
	if dir == "" {
		d, err := os.MkdirTemp("", pattern)
		if err != nil {
			return fmt.Errorf("bench directory: %w", err)
		}
		defer os.RemoveAll(d)
		dir = filepath.Join(d, sub)
	}
	res, err := bench(dir)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// benchNode is one custodian of the benchmark: its dataset and key share.
type benchNode struct {
	data   *cohorts.Dataset
	holder *privacy.KeyHolder
}

func benchQueryRun(ctx context.Context, dir string, patients, custodians int, seed uint64, runs int) (*benchResult, error) {
	setup := time.Now()
	res := &benchResult{Patients: patients, Custodians: custodians, KeyHolders: custodians + 1, Seed: seed, Runs: runs,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Query: benchQuery}
	params, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		return nil, fmt.Errorf("privacy parameters: %w", err)
	}
	q, err := cohorts.ParseQuery(benchQuery)
	if err != nil {
		return nil, fmt.Errorf("bench query: %w", err)
	}

	// Data and key shares, one node per custodian, and the ethics board.
	nodes := make([]benchNode, custodians)
	var holders []*privacy.KeyHolder
	defer func() {
		for _, n := range nodes {
			if n.data != nil {
				n.data.Close()
			}
		}
	}()
	for i := range nodes {
		n := patients / custodians
		if i < patients%custodians {
			n++
		}
		path := filepath.Join(dir, fmt.Sprintf("custodian-%d.parquet", i+1))
		if _, err := cohorts.Generate(ctx, path, cohorts.GenerateOptions{
			Patients: n, Seed: seed*1000 + uint64(i), RefDate: demoRefDate, IDPrefix: fmt.Sprintf("c%d-", i+1),
		}); err != nil {
			return nil, fmt.Errorf("generate custodian %d: %w", i+1, err)
		}
		if nodes[i].data, err = cohorts.Open(ctx, path); err != nil {
			return nil, fmt.Errorf("open custodian %d: %w", i+1, err)
		}
		if nodes[i].holder, err = privacy.NewKeyHolder(params, fmt.Sprintf("custodian-%d", i+1)); err != nil {
			return nil, err
		}
		holders = append(holders, nodes[i].holder)
	}
	board, err := privacy.NewKeyHolder(params, "ethics-board")
	if err != nil {
		return nil, err
	}
	holders = append(holders, board)
	// The key ceremony happens once per study, not per query: not timed.
	pk, err := exchange.KeyCeremony(params, []byte("medx bench query ceremony seed"), holders)
	if err != nil {
		return nil, err
	}
	sponsor, err := privacy.NewSponsorKey(params)
	if err != nil {
		return nil, err
	}
	sponsorPub, err := sponsor.PublicKey()
	if err != nil {
		return nil, err
	}
	var rows int64
	for _, n := range nodes {
		rows += n.data.Rows()
	}
	const minCell, epsilon = 10, 1.0
	spec := exchange.QuerySpec(q, rows, minCell, epsilon, true)
	res.Slots = len(spec.Slots)
	res.SetupMS = ms(time.Since(setup))

	// Plaintext: every custodian's rows, aggregated and summed in the clear.
	plaintext := func() ([]int64, error) {
		total := make([]int64, len(spec.Slots))
		for _, n := range nodes {
			vec, err := n.data.Aggregate(ctx, q, cohorts.AllPatients())
			if err != nil {
				return nil, err
			}
			for i, v := range vec {
				total[i] += v
			}
		}
		return total, nil
	}
	// Encrypted: the same scans, then the protocol, then the sponsor's
	// decryption.
	type encRun struct {
		vec                  []int64
		rel                  *privacy.Release
		scan, total          time.Duration
		decrypt, decryptWall time.Duration
	}
	encrypted := func(spec privacy.Spec) (*encRun, error) {
		start := time.Now()
		contributions := make([][]int64, len(nodes))
		for i, n := range nodes {
			var err error
			if contributions[i], err = n.data.Aggregate(ctx, q, cohorts.AllPatients()); err != nil {
				return nil, err
			}
		}
		r := &encRun{scan: time.Since(start)}
		var err error
		// Custodian i holds key share i: its noise rides in its message.
		if r.rel, err = privacy.RunLocalCustodians(ctx, params, pk, holders, spec, contributions, sponsorPub); err != nil {
			return nil, err
		}
		if r.decryptWall, r.decrypt, err = timed(func() (err error) {
			r.vec, err = sponsor.Decrypt(r.rel.Ciphertext, len(spec.Slots))
			return err
		}); err != nil {
			return nil, err
		}
		r.total = time.Since(start)
		return r, nil
	}

	// The noise-off pass: the sponsor's result equals the plaintext, with
	// exactly the small cells suppressed.
	plain, err := plaintext()
	if err != nil {
		return nil, fmt.Errorf("plaintext: %w", err)
	}
	off := spec
	off.Noise = false
	exact, err := encrypted(off)
	if err != nil {
		return nil, fmt.Errorf("encrypted, noise off: %w", err)
	}
	res.Match = slices.Equal(exact.rel.Suppressed, privacy.Gate(off, plain))
	for i, v := range plain {
		if exact.rel.Suppressed[i] {
			v = 0
		}
		res.Match = res.Match && exact.vec[i] == v
	}

	// Timed runs, alternating the two paths so that both see the same
	// machine; noise on, as in a real study.
	var tPlain, tEnc, tScan, tCrypto, tCryptoWall []time.Duration
	var stepNames []string
	tSteps, tStepsWall := map[string][]time.Duration{}, map[string][]time.Duration{}
	for range runs {
		start := time.Now()
		if _, err := plaintext(); err != nil {
			return nil, fmt.Errorf("plaintext: %w", err)
		}
		tPlain = append(tPlain, time.Since(start))
		r, err := encrypted(spec)
		if err != nil {
			return nil, fmt.Errorf("encrypted: %w", err)
		}
		tEnc = append(tEnc, r.total)
		tScan = append(tScan, r.scan)
		tCrypto = append(tCrypto, r.rel.CryptoCPU+r.decrypt)
		tCryptoWall = append(tCryptoWall, r.rel.CryptoCritical+r.decryptWall)
		for _, st := range append(r.rel.Steps, privacy.Step{Name: "decrypt: sponsor", Slowest: r.decryptWall, CPU: r.decrypt}) {
			if _, ok := tSteps[st.Name]; !ok {
				stepNames = append(stepNames, st.Name)
			}
			tSteps[st.Name] = append(tSteps[st.Name], st.CPU)
			tStepsWall[st.Name] = append(tStepsWall[st.Name], st.Slowest)
		}
		res.MessageBytes = r.rel.MessageBytes
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	res.PlaintextMS = ms(median(tPlain))
	res.EncryptedMS = ms(median(tEnc))
	res.ScanMS = ms(median(tScan))
	res.CryptoMS = ms(median(tCrypto))
	res.CryptoWallMS = ms(median(tCryptoWall))
	for _, name := range stepNames {
		res.CryptoSteps = append(res.CryptoSteps, benchStep{Step: name, MS: ms(median(tSteps[name])), WallMS: ms(median(tStepsWall[name]))})
	}
	if res.PlaintextMS > 0 {
		res.Ratio = round3(res.EncryptedMS / res.PlaintextMS)
	}
	res.TargetMS = round3(benchTargetRatio*res.PlaintextMS + benchTargetSlackMS)
	res.WithinTarget = res.EncryptedMS <= res.TargetMS
	res.CryptoTarget = res.CryptoMS <= benchTargetCrypto
	return res, nil
}

// timed runs f locked to its OS thread and returns its wall time and the
// CPU time it consumed (the wall time where the platform cannot tell).
func timed(f func() error) (wall, cpu time.Duration, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, ok := privacy.ThreadCPU()
	start := time.Now()
	err = f()
	wall = time.Since(start)
	cpu = wall
	if c1, ok1 := privacy.ThreadCPU(); ok && ok1 {
		cpu = c1 - c0
	}
	return wall, cpu, err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
