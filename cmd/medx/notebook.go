package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange/client"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
	"github.com/medx/medx/notebooks"
	"github.com/medx/medx/privacy"
)

const notebookUsage = `usage:
  medx notebook run FILE --exchange URL --token TOKEN --key SPONSOR_KEY --request ID [--out DIR] [--epsilon E]
  medx notebook verify REPORT (--exchange URL --token TOKEN | --dir DIR)
  medx notebook demo-study --dir DIR --exchange URL [--epsilon-budget E]`

func runNotebook(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, notebookUsage)
		return fmt.Errorf("%w: medx notebook run|verify|demo-study", errUsage)
	}
	switch args[0] {
	case "run":
		return runNotebookRun(ctx, args[1:], stdout, stderr)
	case "verify":
		return runNotebookVerify(ctx, args[1:], stdout, stderr)
	case "demo-study":
		return runNotebookDemoStudy(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stderr, notebookUsage)
		return fmt.Errorf("%w: medx notebook run|verify|demo-study (each has -h)", errUsage)
	}
	fmt.Fprintln(stderr, notebookUsage)
	return fmt.Errorf("%w: unknown notebook command %q", errUsage, args[0])
}

// parseWithFile parses flags with one positional FILE, before or after
// them.
func parseWithFile(fs *flag.FlagSet, args []string, what string) (string, error) {
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", fmt.Errorf("%w: %w", errUsage, err)
	}
	rest := fs.Args()
	if file == "" && len(rest) > 0 {
		file, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("%w: unexpected arguments: %s", errUsage, strings.Join(rest, " "))
	}
	if file == "" {
		return "", fmt.Errorf("%w: no %s given", errUsage, what)
	}
	return file, nil
}

// runNotebookRun runs a notebook against an exchange as the sponsor and
// writes its HTML report and Jupyter notebook. Cells that fail show their
// error in place; the run is recorded and written all the same, and the
// command then exits non-zero.
func runNotebookRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("notebook run", stderr)
	base := fs.String("exchange", "", "the exchange's API, e.g. http://127.0.0.1:8080")
	token := fs.String("token", "", "the sponsor's bearer token ('medx token --dir DIR --role sponsor --sub ID')")
	keyPath := fs.String("key", "", "the sponsor's BGV key file (in a data directory: sponsors/<sponsor>/bgv.key)")
	request := fs.String("request", "", "the sponsor's approved request (study) to query")
	out := fs.String("out", "reports", "directory for the report (NAME.html) and notebook (NAME.ipynb)")
	eps := fs.Float64("epsilon", 0, "epsilon per cell without an epsilon= option (0: the exchange's default)")
	file, err := parseWithFile(fs, args, "notebook FILE")
	if err != nil {
		return err
	}
	if *base == "" || *token == "" || *keyPath == "" || *request == "" {
		return fmt.Errorf("%w: --exchange, --token, --key and --request are required", errUsage)
	}
	if *eps < 0 {
		return fmt.Errorf("%w: --epsilon %g: want 0 or more", errUsage, *eps)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("notebook: %w", err)
	}
	nb, err := notebooks.Read(filepath.Base(file), src)
	if err != nil {
		return err
	}
	key, err := readSponsorKey(*keyPath)
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	htmlPath, ipynbPath := filepath.Join(*out, name+".html"), filepath.Join(*out, name+".ipynb")
	if same(ipynbPath, file) || same(htmlPath, file) {
		return fmt.Errorf("%w: --out %s would overwrite the notebook %s", errUsage, *out, file)
	}
	c := client.New(*base, *token, nil)
	runner := &clientRunner{c: c, req: ledger.RequestID(*request), key: key, epsilon: *eps}
	run, err := notebooks.Execute(ctx, nb, runner, time.Now)
	if run == nil || (err != nil && !errors.Is(err, notebooks.ErrCellsFailed)) {
		return err
	}
	run.Request = *request
	for _, res := range run.Results {
		if res.Err != nil {
			fmt.Fprintf(stdout, "cell %-16s FAILED: %v\n", res.Cell.Name, res.Err)
			continue
		}
		d := res.Output.Disclosure
		fmt.Fprintf(stdout, "cell %-16s ok: query %s, %d values suppressed, epsilon %.2f spent, %.2f left\n",
			res.Cell.Name, res.Output.QueryID, len(d.SuppressedSlots), d.EpsilonSpent, d.EpsilonLeft)
	}
	if err := writeOutputs(run, htmlPath, ipynbPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report   %s\nnotebook %s\nrun %s recorded on the ledger (notebook %s…, each cell's query and result hash)\n",
		htmlPath, ipynbPath, run.RecordID, nb.Hash[:12])
	return err
}

// same reports whether two paths name one file.
func same(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(fa, fb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

func writeOutputs(run *notebooks.Run, htmlPath, ipynbPath string) error {
	for _, o := range []struct {
		path  string
		write func(io.Writer, *notebooks.Run) error
	}{{htmlPath, notebooks.WriteHTML}, {ipynbPath, notebooks.WriteIPYNB}} {
		if err := os.MkdirAll(filepath.Dir(o.path), 0o755); err != nil {
			return fmt.Errorf("output directory: %w", err)
		}
		f, err := os.Create(o.path)
		if err != nil {
			return fmt.Errorf("create %s: %w", o.path, err)
		}
		if err := o.write(f, run); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", o.path, err)
		}
	}
	return nil
}

// readSponsorKey reads a sponsor's BGV key pair, as written in a data
// directory's sponsors/<id>/bgv.key, under MedX's parameters.
func readSponsorKey(path string) (*privacy.SponsorKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sponsor key: %w", err)
	}
	p, err := privacy.NewParams(privacy.DefaultParams())
	if err != nil {
		return nil, fmt.Errorf("privacy parameters: %w", err)
	}
	k, err := privacy.UnmarshalSponsorKey(p, b)
	if err != nil {
		return nil, fmt.Errorf("sponsor key %s: %w", path, err)
	}
	return k, nil
}

// clientRunner runs notebook cells as the sponsor over the HTTP API,
// decrypting each result locally with the sponsor's own key.
type clientRunner struct {
	c       *client.Client
	req     ledger.RequestID
	key     *privacy.SponsorKey
	epsilon float64
}

func (r *clientRunner) Query(ctx context.Context, src string, epsilon float64) (*notebooks.Output, error) {
	if epsilon == 0 {
		epsilon = r.epsilon
	}
	res, err := r.c.Query(ctx, r.req, src, epsilon, r.key)
	if err != nil {
		return nil, err
	}
	return &notebooks.Output{Table: res.Table, QueryID: string(res.Record.ID), QueryHash: res.Record.QueryHash, Disclosure: res.Disclosure}, nil
}

func (r *clientRunner) Record(ctx context.Context, p notebooks.Provenance) (string, error) {
	n, err := r.c.RecordNotebookRun(ctx, r.req, p.NotebookHash, p.LedgerCells())
	if err != nil {
		return "", err
	}
	return string(n.ID), nil
}

// runNotebookVerify checks a report (HTML or .ipynb) against the ledger's
// record of its run, read over the API or from a data directory.
func runNotebookVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("notebook verify", stderr)
	base := fs.String("exchange", "", "the exchange's API (with --token)")
	token := fs.String("token", "", "a bearer token of an ethics board, the operator or the run's sponsor")
	dir := fs.String("dir", "", "read the ledger of this data directory instead (verified first; not while 'medx serve' holds it)")
	file, err := parseWithFile(fs, args, "REPORT")
	if err != nil {
		return err
	}
	if (*dir == "") == (*base == "") || (*base != "" && *token == "") {
		return fmt.Errorf("%w: give --exchange URL --token TOKEN, or --dir DIR", errUsage)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	rep, err := notebooks.ReadReport(filepath.Base(file), b)
	if err != nil {
		return err
	}
	id := ledger.NotebookRunID(rep.Stamp.Run)
	var n ledger.NotebookRun
	if *dir != "" {
		n, err = notebookRunFromDir(ctx, *dir, id)
	} else {
		n, err = client.New(*base, *token, nil).NotebookRun(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("ledger record of run %s: %w", id, err)
	}
	rec := notebooks.RecordedOf(n)
	if err := notebooks.Verify(rep, rec); err != nil {
		fmt.Fprintf(stdout, "NOT VERIFIED: %s\n", file)
		return err
	}
	fmt.Fprintf(stdout, "verified: %s is run %s, recorded %s by sponsor %s on request %s;\n  notebook %s… and all %d cells' query and result hashes match the ledger\n",
		file, rec.ID, rec.At.UTC().Format(time.RFC3339), rec.Sponsor, rec.Request, rec.NotebookHash[:12], len(rec.Cells))
	return nil
}

// notebookRunFromDir verifies a data directory's ledger and reads a run
// from it.
func notebookRunFromDir(ctx context.Context, dir string, id ledger.NotebookRunID) (ledger.NotebookRun, error) {
	path := filepath.Join(dir, "ledger.db")
	rep, err := embedded.VerifyFile(ctx, path)
	if err != nil {
		return ledger.NotebookRun{}, fmt.Errorf("verify %s: %w", path, err)
	}
	if !rep.OK() {
		return ledger.NotebookRun{}, fmt.Errorf("ledger %s does not verify: 'medx audit verify --dir %s' says why", path, dir)
	}
	nodeKey, err := readKey(filepath.Join(dir, "keys", "node.key"))
	if err != nil {
		return ledger.NotebookRun{}, fmt.Errorf("ledger node: %w", err)
	}
	l, err := embedded.Open(path, nodeKey, embedded.Options{})
	if err != nil {
		return ledger.NotebookRun{}, fmt.Errorf("open ledger: %w", err)
	}
	defer l.Close()
	return ledger.NewClient(l).NotebookRun(ctx, id)
}

// runNotebookDemoStudy prepares a study on a running 'medx serve' demo
// directory for the example notebooks, over the API as each party: the
// sponsor posts the demo request, the ethics board approves it, and a
// seeded share of the matching patients accept through the custodial
// keystore. The directory supplies what only its operator has: the token
// key and the custodians' datasets (to find the matching patients). It
// prints the request id alone on stdout.
func runNotebookDemoStudy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("notebook demo-study", stderr)
	dir := fs.String("dir", "", "the data directory 'medx serve' is serving")
	base := fs.String("exchange", "", "the API 'medx serve' is serving, e.g. http://127.0.0.1:8080")
	budget := fs.Float64("epsilon-budget", 5, "the privacy budget the ethics board approves for the study (the three examples spend 3.75)")
	minCell := fs.Int64("min-cell", 10, "the minimum cell size the ethics board approves")
	accept := fs.Float64("accept", 0.7, "share of matching patients who accept")
	seed := fs.Uint64("seed", 1, "seed for the patients' decisions")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *base == "" {
		return fmt.Errorf("%w: medx notebook demo-study --dir DIR --exchange URL", errUsage)
	}
	if !(*budget > 0) || *minCell < 1 || !(*accept > 0 && *accept <= 1) {
		return fmt.Errorf("%w: want --epsilon-budget > 0, --min-cell >= 1 and --accept in (0, 1]", errUsage)
	}
	b, err := os.ReadFile(filepath.Join(*dir, "medx.json"))
	if err != nil {
		return fmt.Errorf("%s is not a MedX data directory: %w", *dir, err)
	}
	var cfg siteConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("medx.json: %w", err)
	}
	if len(cfg.Sponsors) == 0 || len(cfg.Boards) == 0 {
		return fmt.Errorf("%s has no sponsor or no ethics board", *dir)
	}
	key, err := jwtKey(*dir)
	if err != nil {
		return err
	}
	now := time.Now()
	as := func(role ledger.Role, sub string) (*client.Client, error) {
		tok, err := issueDevToken(key, role, sub, time.Hour, now)
		if err != nil {
			return nil, err
		}
		return client.New(*base, tok, nil), nil
	}
	sponsor, err := as(ledger.RoleSponsor, string(cfg.Sponsors[0]))
	if err != nil {
		return err
	}
	board, err := as(ledger.RoleEthicsBoard, string(cfg.Boards[0]))
	if err != nil {
		return err
	}
	r, err := sponsor.PostRequest(ctx, ledger.RequestDraft{
		Title:            "Type 2 diabetes, adults 40-75: baseline, glycaemic control, blood pressure",
		Purpose:          "Describe the cohort's baseline characteristics, HbA1c by age band and blood pressure by sex and BMI group, to plan a phase III trial.",
		Criteria:         demoCriteria,
		Scope:            []string{cohorts.CatDemographics, cohorts.CatConditions, cohorts.CatLabs, cohorts.CatVitals},
		RewardPerPatient: 10,
		MaxParticipants:  2000,
		LicenceSeconds:   365 * 24 * 3600,
	})
	if err != nil {
		return fmt.Errorf("post the demo request: %w", err)
	}
	if _, err := board.Approve(ctx, r.ID, *minCell, *budget, "Aggregate-only analyses of consented patients; proportionate to purpose."); err != nil {
		return fmt.Errorf("approve %s: %w", r.ID, err)
	}
	// Decisions are seeded; the accepting patients then call in parallel,
	// as patients' devices would (the ledger groups them into blocks).
	rng := rand.New(rand.NewPCG(*seed, 0x6e6f7465626f6f6b))
	var subs []string
	matching := 0
	for _, cust := range cfg.Custodians {
		ids, err := matchingRecords(ctx, filepath.Join(*dir, "custodians", string(cust), "patients.parquet"))
		if err != nil {
			return fmt.Errorf("custodian %s: %w", cust, err)
		}
		matching += len(ids)
		for _, id := range ids {
			if rng.Float64() < *accept {
				subs = append(subs, string(cust)+"/"+id)
			}
		}
	}
	var accepted atomic.Int64
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				p, err := as(ledger.RolePatient, subs[i])
				if err == nil {
					_, err = p.Accept(ctx, r.ID)
				}
				switch {
				case errors.Is(err, ledger.ErrState): // the study is full
				case err != nil:
					errs[i] = fmt.Errorf("patient %s accepts %s: %w", subs[i], r.ID, err)
				default:
					accepted.Add(1)
				}
			}
		})
	}
	for i := range subs {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "request %s approved by %s: minimum cell %d, privacy budget epsilon %.2f\n%d of %d matching patients accepted\n"+
		"sponsor token: medx token --dir %s --role sponsor --sub %s\nsponsor key:   %s\n",
		r.ID, cfg.Boards[0], *minCell, *budget, accepted.Load(), matching, *dir, cfg.Sponsors[0], filepath.Join(*dir, "sponsors", string(cfg.Sponsors[0]), "bgv.key"))
	fmt.Fprintln(stdout, r.ID)
	return nil
}

func matchingRecords(ctx context.Context, path string) ([]string, error) {
	ds, err := cohorts.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	return ds.Match(ctx, mustCriteria(demoCriteria))
}
