package httpapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

// artifactDir is where browser tests leave their screenshots:
// artifacts/browser at the repository root (gitignored), kept after the
// run so CI can upload it.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "artifacts", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromiumPath finds Debian's chromium. It fails, never skips: 'make
// test' installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium found on PATH or at /usr/bin/chromium: the browser tests need Debian's chromium (make test installs it: apt-get install -y chromium)")
	return ""
}

// browser starts a headless chromium with flags that keep it off the
// network (on a closed network it would otherwise hang on updates and
// sync) and returns a context for its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one signed-in user's browser tab (sessionStorage is per tab).
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
	dir  string
	shot int
}

func (e *env) openTab(t *testing.T, parent context.Context, name, token, dir string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	// Accept the confirmations (revoke, halt) as a user would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	tb := &tab{t: t, ctx: ctx, name: name, dir: dir}
	tb.run("sign in",
		chromedp.Navigate(e.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#signin-form")),
		chromedp.SetValue(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("body[data-loaded]")),
	)
	return tb
}

// run runs actions with a bound on time; on failure it saves a screenshot.
func (tb *tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.screenshot("failed-" + what)
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// screenshot saves the whole page as NN-name-what.png.
func (tb *tab) screenshot(what string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", what, err)
		return
	}
	tb.shot++
	name := fmt.Sprintf("%s-%02d-%s.png", tb.name, tb.shot, strings.ReplaceAll(what, " ", "-"))
	if err := os.WriteFile(filepath.Join(tb.dir, name), buf, 0o644); err != nil {
		tb.t.Errorf("save screenshot: %v", err)
	}
}

// value runs an action with a result, bounded in time.
func value[T any](tb *tab, what string, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.screenshot("failed-" + what)
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
	return v
}

// text is the visible text of the first element sel matches.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	return value(tb, "read "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// waitText waits until the text of the first element sel matches
// contains want.
func (tb *tab) waitText(sel, want string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && el.textContent.includes(%q); })()`, sel, want)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
		return chromedp.Void{}, err
	}
}

// attr is an attribute of the first element sel matches.
func (tb *tab) attr(sel, name string) string {
	tb.t.Helper()
	return value(tb, "read "+sel, chromedp.AttributeValue(chromedp.CSS(sel), name)).Value
}

// reload reloads the page and waits until the portal has loaded again.
func (tb *tab) reload() {
	tb.t.Helper()
	tb.run("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("body[data-loaded]")))
}

// a11yProblems lists form controls without a label and buttons without
// a name, and whether the page scrolls sideways (it must not, on a phone).
const a11yProblems = `(() => {
  const out = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.closest('[hidden]')) continue;
    const labelled = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]')) || el.closest('label') || el.getAttribute('aria-label');
    if (!labelled) out.push('unlabelled ' + el.tagName + ' ' + (el.name || el.id));
  }
  for (const b of document.querySelectorAll('button')) {
    if (!b.closest('[hidden]') && !b.textContent.trim() && !b.getAttribute('aria-label')) out.push('nameless button');
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push('scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
  return out;
})()`

func (tb *tab) checkAccessible(what string) {
	tb.t.Helper()
	problems := value(tb, "check accessibility", chromedp.Evaluate[[]string](a11yProblems))
	if len(problems) > 0 {
		tb.t.Errorf("%s: %s: %v", tb.name, what, problems)
	}
}

// smallCohort is criteria that between 1 and 9 of the fixture's patients
// meet: a feasibility count under the threshold of 10.
func smallCohort(t *testing.T, f *exchangetest.Fixture) string {
	t.Helper()
	for age := 18; age < 100; age++ {
		c := fmt.Sprintf("age = %d AND sex = 'F'", age)
		n := 0
		for _, cu := range exchangetest.Custodians {
			n += len(f.MatchingPatients(t, cu, c, 1<<30))
		}
		if n > 0 && n < 10 {
			return c
		}
	}
	t.Fatal("fixture: no small cohort")
	return ""
}

// TestBrowser drives the portal in Debian's headless chromium: a sponsor
// asks feasibility counts before posting (refused for criteria that do not
// validate; "fewer than 10" under the threshold; a count with its
// disclosure metadata, asked from the keyboard), posts a request with live
// criteria validation, an ethics board approves
// it, patients accept (one with the custodial keystore, one signing on
// the device with WebCrypto Ed25519), the sponsor sees a decrypted result
// with its disclosure metadata, the patients revoke. After each step the
// test checks the ledger itself, not only the page. Screenshots go to
// artifacts/browser.
func TestBrowser(t *testing.T) {
	e := newEnv(t)
	f := e.f
	dir := artifactDir(t)
	root := browser(t)
	ctx := t.Context()
	cust := exchangetest.Custodians[0]
	recs := f.MatchingPatients(t, cust, exchangetest.Criteria, 8)

	// The sponsor posts a request; the criteria are checked as typed.
	sp := e.openTab(t, root, "sponsor", e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor)), dir)
	sp.checkAccessible("sponsor console")
	sp.run("type bad criteria",
		chromedp.SetValue(chromedp.CSS("#rq-title"), "Blood pressure in adults"),
		chromedp.SetValue(chromedp.CSS("#rq-purpose"), "Plan a hypertension trial."),
		chromedp.SetValue(chromedp.CSS("#rq-max"), "20"),
		chromedp.SendKeys(chromedp.CSS("#rq-criteria"), "age BETWEEN 30 AND"),
		chromedp.WaitVisible(chromedp.CSS("#criteria-check.bad")),
	)
	if got := sp.text("#criteria-check"); !strings.Contains(got, "Line 1, column 19") {
		t.Errorf("criteria check of an unfinished expression = %q, want its line and column", got)
	}
	sp.screenshot("criteria error")

	// Feasibility before posting: criteria that do not validate are not
	// asked (the live validation error shows, nothing reaches the ledger);
	// valid ones get the count the API released, with its disclosure
	// metadata. The button is reached and pressed from the keyboard.
	sp.run("feasibility of bad criteria",
		chromedp.Click(chromedp.CSS("#feasibility-check")),
		sp.waitText("#feasibility-answer .error", "Not asked"))
	if got := sp.text("#feasibility-answer"); !strings.Contains(got, "Line 1, column 19") {
		t.Errorf("feasibility of an unfinished expression = %q, want the validation error with its line and column", got)
	}
	if got := sp.attr("#rq-criteria", "aria-invalid"); got != "true" {
		t.Errorf("criteria field aria-invalid = %q, want true", got)
	}
	if got := value(sp, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); got != "rq-criteria" {
		t.Errorf("focus after refusing to ask = %q, want the criteria field", got)
	}
	sp.screenshot("feasibility of bad criteria")
	if asks, err := f.Client.Feasibilities(ctx, exchangetest.Sponsor); err != nil || len(asks) != 0 {
		t.Fatalf("ledger after asking feasibility of bad criteria: %+v, %v; want no ask", asks, err)
	}
	small := smallCohort(t, f)
	sp.run("feasibility of a small cohort",
		chromedp.SetValue(chromedp.CSS("#rq-criteria"), small),
		chromedp.Click(chromedp.CSS("#feasibility-check")),
		sp.waitText("#feasibility-answer [data-feasibility]", "Fewer than 10 patients"))
	if got := sp.attr("#feasibility-answer [data-count]", "data-count"); got != "below 10" {
		t.Errorf("withheld feasibility count shown as %q, want below 10", got)
	}
	sp.screenshot("feasibility withheld")
	asks, err := f.Client.Feasibilities(ctx, exchangetest.Sponsor)
	if err != nil || len(asks) != 1 || !asks[0].BelowThreshold || asks[0].Count != 0 {
		t.Fatalf("ledger after asking feasibility of %s in the browser: %+v, %v; want one withheld count", small, asks, err)
	}
	sp.run("fix criteria",
		chromedp.SetValue(chromedp.CSS("#rq-criteria"), "age BETWEEN 30 AND"),
		chromedp.SendKeys(chromedp.CSS("#rq-criteria"), " 90"),
		sp.waitText("#criteria-check.ok", "Stored as: "+exchangetest.Criteria))
	if got := sp.text("#feasibility-answer"); got != "" {
		t.Errorf("feasibility answer after editing the criteria = %q, want it cleared", got)
	}
	sp.run("feasibility by keyboard",
		chromedp.Focus(chromedp.CSS("#rq-criteria")),
		chromedp.KeyEvent("\t"))
	if got := value(sp, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); got != "feasibility-check" {
		t.Errorf("Tab from the criteria field reaches %q, want the feasibility button", got)
	}
	sp.run("feasibility answer",
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("#feasibility-answer [data-feasibility]")))
	asks, err = f.Client.Feasibilities(ctx, exchangetest.Sponsor)
	shown := ledger.FeasibilityID(sp.attr("#feasibility-answer [data-feasibility]", "data-feasibility"))
	i := slices.IndexFunc(asks, func(a ledger.FeasibilityRecord) bool { return a.ID == shown })
	if err != nil || len(asks) != 2 || i < 0 || asks[i].Status != ledger.FeasibilityReleased || asks[i].BelowThreshold || asks[i].Count < 10 {
		t.Fatalf("ledger after asking feasibility in the browser: %+v, %v; want a second, released count, %s as shown", asks, err, shown)
	}
	ask := asks[i]
	if got := sp.attr("#feasibility-answer [data-count]", "data-count"); got != fmt.Sprint(ask.Count) {
		t.Errorf("feasibility count shown %q, ledger released %d", got, ask.Count)
	}
	answer := sp.text("#feasibility-answer")
	for _, want := range []string{
		fmt.Sprintf(`About %d patients\s+meet\s+%s`, ask.Count, regexp.QuoteMeta(exchangetest.Criteria)),
		`Noise\s*none`, `Withheld under\s*10 patients`, `Rounding\s*to a multiple of 5`, `ε spent\s*0\.50`,
		`Allowance left\s*ε \d+\.\d\d, \d+ asks?`, `Ledger record\s*` + regexp.QuoteMeta(string(ask.ID)),
	} {
		if !regexp.MustCompile(want).MatchString(answer) {
			t.Errorf("feasibility answer %q: want %s", answer, want)
		}
	}
	sp.checkAccessible("sponsor console with a feasibility answer")
	sp.screenshot("feasibility")

	sp.run("post",
		chromedp.Click(chromedp.CSS("#post-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#s-requests tr[data-request]")),
	)
	reqs, err := f.Client.Requests(ctx)
	if err != nil || len(reqs) != 1 || reqs[0].Status != ledger.StatusPending || reqs[0].MaxParticipants != 20 || reqs[0].Criteria != exchangetest.Criteria {
		t.Fatalf("ledger after posting in the browser: %+v, %v", reqs, err)
	}
	r := reqs[0]
	sp.run("feasibility", chromedp.Click(chromedp.CSS(`#s-requests button[data-action=feasibility]`)),
		sp.waitText("#flash", "Feasibility of "+string(r.ID)))
	if got, want := sp.text("#flash"), fmt.Sprintf("1 count released; the latest: about %d patients match", ask.Count); !strings.Contains(got, want) {
		t.Errorf("request feasibility = %q, want %q", got, want)
	}

	// The board approves it with its limits.
	bd := e.openTab(t, root, "board", e.token(t, ledger.RoleEthicsBoard, string(exchangetest.Board)), dir)
	bd.checkAccessible("board console")
	card := `#pending article[data-request="` + string(r.ID) + `"]`
	bd.run("approve",
		chromedp.WaitVisible(chromedp.CSS(card)),
		chromedp.SetValue(chromedp.CSS(card+` input[name=minCell]`), "3"),
		chromedp.SetValue(chromedp.CSS(card+` input[name=epsilon]`), "2.5"),
		chromedp.SetValue(chromedp.CSS(card+` input[name=reason]`), "proportionate"),
	)
	bd.screenshot("pending approval")
	bd.run("approve click", chromedp.Click(chromedp.CSS(card+` button[data-action=approve]`)),
		chromedp.WaitVisible(chromedp.CSS(`#open article[data-request="`+string(r.ID)+`"]`)))
	if r, err = f.Client.Request(ctx, r.ID); err != nil || r.Status != ledger.StatusOpen || r.Approval == nil ||
		r.Approval.MinCell != 3 || r.Approval.EpsilonBudget != ledger.EpsilonFromFloat(2.5) || r.Approval.Board != exchangetest.Board {
		t.Fatalf("ledger after approving in the browser: %+v, %v", r, err)
	}

	// Alice accepts with the custodial keystore; Bob signs on his device.
	alice := e.openTab(t, root, "patient-alice", e.patientToken(t, cust, recs[0]), dir)
	offer := `#offers article[data-request="` + string(r.ID) + `"]`
	alice.run("see offer", chromedp.WaitVisible(chromedp.CSS(offer)))
	alice.checkAccessible("patient portal")
	alice.screenshot("offer")
	if got := alice.text(offer); !strings.Contains(got, "Plan a hypertension trial.") || !strings.Contains(got, "10 MedTokens") ||
		!strings.Contains(got, "1 year") || !strings.Contains(got, "your lab results") {
		t.Errorf("offer in plain language = %q", got)
	}
	alice.run("accept", chromedp.Click(chromedp.CSS(offer+` button[data-action=accept]`)),
		chromedp.WaitVisible(chromedp.CSS(`#licences tr[data-status=active]`)))
	aliceWallet, _ := f.Keystore.Patient(cust, recs[0])
	lics, err := f.Client.PatientLicences(ctx, aliceWallet.Pseudonym(r.ID))
	if err != nil || len(lics) != 1 || lics[0].Request != r.ID || lics[0].Revoked != nil {
		t.Fatalf("ledger after alice accepted in the browser: %+v, %v", lics, err)
	}
	aliceLic := lics[0]
	alice.run("balance", alice.waitText("#patient [data-tokens]", "Balance: 10 MedTokens"))

	bob := e.openTab(t, root, "patient-bob", e.patientToken(t, cust, recs[1]), dir)
	bob.run("accept on device",
		chromedp.WaitVisible(chromedp.CSS(offer)),
		chromedp.Click(chromedp.CSS("#device-sign")),
		chromedp.Click(chromedp.CSS(offer+` button[data-action=accept]`)),
		chromedp.WaitVisible(chromedp.CSS(`#licences tr[data-status=active]`)))
	bobLicID := bob.attr(`#licences tr[data-licence]`, "data-licence")
	bobLic, err := f.Client.Licence(ctx, ledger.LicenceID(bobLicID))
	bobWallet, _ := f.Keystore.Patient(cust, recs[1])
	if err != nil || bobLic.Request != r.ID || bobLic.Patient == bobWallet.Pseudonym(r.ID) {
		t.Fatalf("bob's device-signed licence %+v (%v): want one under a key the keystore does not hold", bobLic, err)
	}

	// More patients accept over the API, so that cells pass the minimum.
	for _, rec := range recs[2:6] {
		e.ok(t, 201, "POST", "/v1/requests/{id}/accept", string(r.ID), e.patientToken(t, cust, rec), nil, nil)
	}

	// The sponsor chooses a custodial result key and sees a result.
	sp.reload()
	sp.run("query",
		chromedp.WaitReady(chromedp.CSS(`#q-request option[value="`+string(r.ID)+`"]`)),
		chromedp.Click(chromedp.CSS("#custodial-key")),
		chromedp.WaitVisible(chromedp.CSS("#custodial-state:not(:empty)")),
		chromedp.SetValue(chromedp.CSS("#q-text"), "SELECT COUNT(*) AS n FROM cohort"),
		chromedp.SetValue(chromedp.CSS("#q-eps"), "0.5"),
		chromedp.Click(chromedp.CSS("#query-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#result table")),
	)
	sp.screenshot("result")
	qs, err := f.Client.Queries(ctx, r.ID)
	if err != nil || len(qs) != 1 || qs[0].Status != ledger.QueryCompleted || qs[0].Licences != 6 || qs[0].EpsilonCharged != ledger.EpsilonFromFloat(0.5) {
		t.Fatalf("ledger after the sponsor's query in the browser: %+v, %v", qs, err)
	}
	if got := sp.text("#result tbody td"); got != "6" {
		t.Errorf("result shows COUNT(*) %q, want 6 (noise is off in the fixture)", got)
	}
	if got := sp.text("#result dl"); !strings.Contains(got, "6 active licences") || !strings.Contains(got, "ε 0.50 spent") || !regexp.MustCompile(`Minimum cell size\s*3`).MatchString(got) {
		t.Errorf("disclosure metadata = %q", got)
	}
	sp.run("licence count", sp.waitText(`#s-requests td[data-licences]`, "6 / 20"))

	// Alice sees the access and revokes; Bob revokes with his device key.
	alice.reload()
	if got := alice.text("#accesses tbody"); !strings.Contains(got, string(r.ID)) || !strings.Contains(got, "6") {
		t.Errorf("alice's access history = %q", got)
	}
	alice.run("revoke", chromedp.Click(chromedp.CSS(`#licences button[data-action=revoke]`)),
		chromedp.WaitVisible(chromedp.CSS(`#licences tr[data-status=revoked]`)))
	alice.screenshot("revoked")
	if got := alice.text("#flash"); !strings.Contains(got, "results already released stay released") {
		t.Errorf("revocation message = %q", got)
	}
	bob.run("revoke on device", chromedp.Click(chromedp.CSS(`#licences button[data-action=revoke]`)),
		chromedp.WaitVisible(chromedp.CSS(`#licences tr[data-status=revoked]`)))
	for _, id := range []ledger.LicenceID{aliceLic.ID, bobLic.ID} {
		if l, err := f.Client.Licence(ctx, id); err != nil || l.Revoked == nil {
			t.Errorf("licence %s after revoking in the browser: %+v, %v", id, l, err)
		}
	}

	// The board sees the trail verified, exports it, and halts the study.
	bd.reload()
	verified := bd.attr(`#verify [data-verified]`, "data-verified")
	if verified != "true" {
		t.Errorf("board sees verified=%q", verified)
	}
	bd.run("export", chromedp.SetValue(chromedp.CSS("#trail-request"), string(r.ID)), chromedp.Click(chromedp.CSS("#export")),
		chromedp.WaitVisible(chromedp.CSS("#export-link a")))
	if got := bd.text("#export-link a"); !strings.Contains(got, "records, jsonl") {
		t.Errorf("export link = %q", got)
	}
	halt := `#open article[data-request="` + string(r.ID) + `"]`
	bd.run("halt", chromedp.SetValue(chromedp.CSS(halt+` input[name=reason]`), "safety signal"),
		chromedp.Click(chromedp.CSS(halt+` button[data-action=halt]`)),
		chromedp.WaitNotPresent(chromedp.CSS(halt)))
	bd.screenshot("after halt")
	if r, err = f.Client.Request(ctx, r.ID); err != nil || r.Status != ledger.StatusHalted {
		t.Errorf("ledger after halting in the browser: %s, %v", r.Status, err)
	}

	// On a phone: nothing scrolls sideways, every control is labelled.
	alice.run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS("body[data-loaded]")))
	alice.checkAccessible("patient portal on a phone")
	alice.screenshot("phone")
}
