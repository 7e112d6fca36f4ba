package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/httpapi"
	"github.com/medx/medx/ledger"
)

// benchAPITarget is issue 6's goal: reads at no less than half the
// throughput of a minimal handler returning the same bytes.
const benchAPITarget = 0.5

// benchAPIResult is the one JSON object `medx bench api` prints. The read
// figures are for GET /v1/offers as patients; the accept figures for POST
// /v1/requests/{id}/accept (custodial signing, one ledger transaction
// each). Each has its baseline: a bare net/http handler on loopback that
// returns the same bytes, loaded the same way in the same run.
type benchAPIResult struct {
	Patients      int     `json:"patients"`
	Concurrency   int     `json:"concurrency"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
	ResponseBytes int     `json:"response_bytes"` // of one offers response
	Requests      int     `json:"requests"`       // reads sent
	RPS           float64 `json:"rps"`
	P50MS         float64 `json:"p50_ms"`
	P99MS         float64 `json:"p99_ms"`
	BaselineRPS   float64 `json:"baseline_rps"`
	BaselineP50MS float64 `json:"baseline_p50_ms"`
	BaselineP99MS float64 `json:"baseline_p99_ms"`
	Ratio         float64 `json:"ratio"` // rps / baseline_rps
	TargetRatio   float64 `json:"target_ratio"`
	WithinTarget  bool    `json:"within_target"`
	Accepts       int     `json:"accepts"` // distinct patients accepting, each once
	AcceptRPS     float64 `json:"accept_rps"`
	AcceptP50MS   float64 `json:"accept_p50_ms"`
	AcceptP99MS   float64 `json:"accept_p99_ms"`
	AcceptBaseRPS float64 `json:"accept_baseline_rps"`
	AcceptRatio   float64 `json:"accept_ratio"`
	Licences      int64   `json:"licences"` // on the ledger afterwards: equals accepts
	SetupMS       float64 `json:"setup_ms"`
}

func runBenchAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench api", stderr)
	patients := fs.Int("patients", 2000, "patients in the generated demo dataset")
	requests := fs.Int("requests", 20000, "GET /v1/offers requests (and as many to the baseline)")
	accepts := fs.Int("accepts", 60, "patients who accept, each once (bounded by the matching patients)")
	conc := fs.Int("concurrency", 8, "concurrent clients")
	limit := fs.Duration("max-time", 60*time.Second, "stop each load phase after this long, whatever the counts")
	dir := fs.String("dir", "", "data directory to create (default: a temporary directory, removed afterwards)")
	level := fs.String("log", "warn", "server log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *patients < 100 || *patients > 1_000_000:
		return fmt.Errorf("%w: --patients %d: want 100 to 1000000", errUsage, *patients)
	case *requests < benchRounds || *requests > 1_000_000:
		return fmt.Errorf("%w: --requests %d: want %d to 1000000", errUsage, *requests, benchRounds)
	case *accepts < 1 || *accepts > 100_000:
		return fmt.Errorf("%w: --accepts %d: want 1 to 100000", errUsage, *accepts)
	case *conc < 1 || *conc > 256:
		return fmt.Errorf("%w: --concurrency %d: want 1 to 256", errUsage, *conc)
	case *limit <= 0:
		return fmt.Errorf("%w: --max-time %s: want a positive duration", errUsage, *limit)
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	return benchRun(stdout, *dir, "medx-bench-api-", "data", func(dir string) (*benchAPIResult, error) {
		return benchAPIRun(ctx, dir, *patients, *requests, *accepts, *conc, *limit, log)
	})
}

func benchAPIRun(ctx context.Context, dir string, patients, requests, accepts, conc int, limit time.Duration, log *slog.Logger) (*benchAPIResult, error) {
	setup := time.Now()
	res := &benchAPIResult{Patients: patients, Concurrency: conc, GOMAXPROCS: runtime.GOMAXPROCS(0), TargetRatio: benchAPITarget}
	s, _, err := openOrCreateSite(ctx, dir, patients, true, nil, log)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ks, err := s.keystore()
	if err != nil {
		return nil, err
	}
	key, err := jwtKey(dir)
	if err != nil {
		return nil, err
	}

	// One open study, offered to the matching patients of the first
	// custodian.
	ids, err := s.custs[0].Dataset().Match(ctx, mustCriteria(demoCriteria))
	if err != nil {
		return nil, fmt.Errorf("matching patients: %w", err)
	}
	if len(ids) < 2 {
		return nil, fmt.Errorf("%w: --patients %d: only %d patients match the demo criteria; want more patients", errUsage, patients, len(ids))
	}
	accepts = min(accepts, len(ids))
	res.Accepts = accepts
	sp, err := s.signer(s.cfg.Sponsors[0])
	if err != nil {
		return nil, err
	}
	board, err := s.signer(s.cfg.Boards[0])
	if err != nil {
		return nil, err
	}
	req, err := s.ex.PostRequest(ctx, sp, ledger.RequestDraft{Title: "Bench study", Purpose: "Load test.", Criteria: demoCriteria,
		Scope: []string{"demographics", "conditions", "labs", "vitals"}, RewardPerPatient: 1, MaxParticipants: int64(len(ids)), LicenceSeconds: 86400})
	if err != nil {
		return nil, err
	}
	if _, err := s.ex.Approve(ctx, board, req.ID, ledger.ApprovalTerms{}); err != nil {
		return nil, err
	}
	now := time.Now()
	tokens := make([]string, len(ids))
	for i, id := range ids {
		if tokens[i], err = issueDevToken(key, ledger.RolePatient, string(s.custs[0].ID())+"/"+id, time.Hour, now); err != nil {
			return nil, err
		}
	}

	api := httpapi.New(s.ex, httpapi.Options{
		Auth:     httpapi.NewAuthenticator(defaultIssuer, defaultAudience, httpapi.StaticKey(key.Public())),
		Keystore: ks,
		Log:      log,
	})
	apiURL, stopAPI, err := benchListen(ctx, api, log)
	if err != nil {
		return nil, err
	}
	defer stopAPI()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: conc * 2, MaxIdleConnsPerHost: conc * 2, IdleConnTimeout: time.Minute}}
	defer hc.CloseIdleConnections()

	// The bytes the baselines return: a real response of each route.
	offers, err := benchCall(ctx, hc, http.MethodGet, apiURL+"/v1/offers", tokens[0], http.StatusOK)
	if err != nil {
		return nil, err
	}
	res.ResponseBytes = len(offers)
	res.SetupMS = ms(time.Since(setup))

	// Reads: every patient's offers, round robin, and the same load on the
	// baseline, in alternating rounds so that load from elsewhere on the
	// machine falls on both alike.
	read := func(base string) func(i int) (int, error) {
		return func(i int) (int, error) {
			_, err := benchCall(ctx, hc, http.MethodGet, base+"/v1/offers", tokens[i%len(tokens)], http.StatusOK)
			return 1, err
		}
	}
	baseURL, stopBase, err := benchListen(ctx, benchBaseline(offers, http.StatusOK), log)
	if err != nil {
		return nil, err
	}
	defer stopBase()
	var lr, lb benchLoadResult
	for round := range benchRounds {
		n := requests / benchRounds
		if round == benchRounds-1 {
			n = requests - n*(benchRounds-1)
		}
		a, err := benchLoad(ctx, n, conc, limit/benchRounds, read(apiURL))
		if err != nil {
			return nil, fmt.Errorf("offers load: %w", err)
		}
		b, err := benchLoad(ctx, n, conc, limit/benchRounds, read(baseURL))
		if err != nil {
			return nil, fmt.Errorf("baseline load: %w", err)
		}
		lr, lb = lr.add(a), lb.add(b)
	}
	res.Requests = lr.n
	res.RPS, res.P50MS, res.P99MS = lr.rps(), lr.pct(0.50), lr.pct(0.99)
	res.BaselineRPS, res.BaselineP50MS, res.BaselineP99MS = lb.rps(), lb.pct(0.50), lb.pct(0.99)
	res.Ratio = res.RPS / res.BaselineRPS
	res.WithinTarget = res.Ratio >= benchAPITarget

	// Accepts: distinct patients, each once (a second would be refused).
	acceptPath := "/v1/requests/" + string(req.ID) + "/accept"
	var licence []byte
	var mu sync.Mutex
	la, err := benchLoad(ctx, accepts, conc, limit, func(i int) (int, error) {
		b, err := benchCall(ctx, hc, http.MethodPost, apiURL+acceptPath, tokens[i], http.StatusCreated)
		mu.Lock()
		if licence == nil {
			licence = b
		}
		mu.Unlock()
		return 1, err
	})
	if err != nil {
		return nil, fmt.Errorf("accept load: %w", err)
	}
	accBase, stopAcc, err := benchListen(ctx, benchBaseline(licence, http.StatusCreated), log)
	if err != nil {
		return nil, err
	}
	defer stopAcc()
	lab, err := benchLoad(ctx, la.n, conc, limit, func(i int) (int, error) {
		_, err := benchCall(ctx, hc, http.MethodPost, accBase+acceptPath, tokens[i], http.StatusCreated)
		return 1, err
	})
	if err != nil {
		return nil, fmt.Errorf("accept baseline load: %w", err)
	}
	res.Accepts = la.n
	res.AcceptRPS, res.AcceptP50MS, res.AcceptP99MS = la.rps(), la.pct(0.50), la.pct(0.99)
	res.AcceptBaseRPS = lab.rps()
	res.AcceptRatio = res.AcceptRPS / res.AcceptBaseRPS
	r, err := s.ex.Request(ctx, exchange.Principal{Role: ledger.RoleOperator, ID: string(s.cfg.Operator)}, req.ID)
	if err != nil {
		return nil, err
	}
	res.Licences = r.Participants
	if res.Licences != int64(la.n) {
		return nil, fmt.Errorf("bench: %d accepts answered 201 but the ledger holds %d licences", la.n, res.Licences)
	}
	return res, nil
}

// benchBaseline is the minimal handler: the same bytes, status and
// content type as the route it stands for, and nothing else.
func benchBaseline(body []byte, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	})
}

// benchListen serves h on a loopback port until the returned stop.
func benchListen(ctx context.Context, h http.Handler, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		httpapi.Serve(sctx, ln, h, 5*time.Second, log)
	}()
	return "http://" + ln.Addr().String(), func() { cancel(); <-done }, nil
}

// benchCall sends one request and requires status; it returns the body.
func benchCall(ctx context.Context, hc *http.Client, method, url, token string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		return nil, fmt.Errorf("%s %s = %d %s, want %d", method, url, res.StatusCode, bytes.TrimSpace(b), want)
	}
	return b, nil
}

// benchLoadResult is one load phase: requests done, their latencies, and
// the wall time.
type benchLoadResult struct {
	n    int
	lat  []time.Duration
	wall time.Duration
}

// benchRounds is how many alternating rounds the read phase has.
const benchRounds = 5

func (l benchLoadResult) add(m benchLoadResult) benchLoadResult {
	lat := slices.Concat(l.lat, m.lat)
	slices.Sort(lat)
	return benchLoadResult{n: l.n + m.n, lat: lat, wall: l.wall + m.wall}
}

func (l benchLoadResult) rps() float64 { return float64(l.n) / l.wall.Seconds() }

func (l benchLoadResult) pct(p float64) float64 {
	if len(l.lat) == 0 {
		return 0
	}
	return ms(l.lat[min(len(l.lat)-1, int(p*float64(len(l.lat))))])
}

// benchLoad runs do(i) for i in [0, n) on conc workers, stopping early
// after limit. The first error stops the phase.
func benchLoad(ctx context.Context, n, conc int, limit time.Duration, do func(i int) (int, error)) (benchLoadResult, error) {
	var next atomic.Int64
	deadline := time.Now().Add(limit)
	lats := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil || time.Now().After(deadline) || errs[w] != nil {
					return
				}
				t := time.Now()
				if _, err := do(i); err != nil {
					errs[w] = err
					return
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	out := benchLoadResult{wall: time.Since(start)}
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return out, err
	}
	for _, l := range lats {
		out.lat = append(out.lat, l...)
	}
	slices.Sort(out.lat)
	out.n = len(out.lat)
	return out, nil
}
