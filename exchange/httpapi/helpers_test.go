package httpapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

const (
	testIssuer   = "medx-test"
	testAudience = "medx-api"
)

// env is a real exchange behind a real HTTP server.
type env struct {
	f       *exchangetest.Fixture
	srv     *httptest.Server
	jwtKey  ed25519.PrivateKey
	openapi *openapiChecker

	mu      sync.Mutex
	covered map[string]bool // "METHOD pattern" with a 2xx response
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := exchangetest.New(t, 300)
	_, priv, _ := ed25519.GenerateKey(nil)
	s := New(f.Exchange, Options{
		Auth:        NewAuthenticator(testIssuer, testAudience, StaticKey(priv.Public())),
		Keystore:    f.Keystore,
		Events:      exchangetest.Notices(f.Ledger),
		Replay:      exchangetest.NoticesFrom(f.Ledger),
		Trail:       f.Ledger.Trail,
		SponsorKeys: exchange.NewSponsorKeys(f.Params),
		Log:         testLog(t),
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{f: f, srv: srv, jwtKey: priv, openapi: newOpenAPIChecker(t), covered: map[string]bool{}}
}

func (e *env) token(t testing.TB, role ledger.Role, sub string) string {
	t.Helper()
	now := time.Now()
	tok, err := IssueToken(e.jwtKey, "", TokenClaims{Issuer: testIssuer, Audience: testAudience, Subject: sub, Role: role,
		IssuedAt: now, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) patientToken(t testing.TB, c ledger.ParticipantID, record string) string {
	return e.token(t, ledger.RolePatient, string(c)+"/"+record)
}

// resp is one HTTP exchange's outcome.
type resp struct {
	status int
	ctype  string
	body   []byte
}

func (r resp) problemType() string {
	var p problem
	json.Unmarshal(r.body, &p)
	return strings.TrimPrefix(p.Type, ProblemTypeBase)
}

// call sends method on pattern (with {id} replaced by id) and validates the
// response against the OpenAPI document. body is JSON-encoded unless it is
// a []byte or nil.
func (e *env) call(t testing.TB, method, pattern, id, token string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	path := strings.ReplaceAll(pattern, "{id}", url.PathEscape(id))
	pattern, _, _ = strings.Cut(pattern, "?")
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := resp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: b}
	e.openapi.check(t, method, pattern, r)
	if r.status/100 == 2 {
		e.mu.Lock()
		e.covered[method+" "+pattern] = true
		e.mu.Unlock()
	}
	return r
}

// ok calls and requires want, decoding the body into out (if not nil).
func (e *env) ok(t testing.TB, want int, method, pattern, id, token string, body, out any) {
	t.Helper()
	r := e.call(t, method, pattern, id, token, body)
	if r.status != want {
		t.Fatalf("%s %s (%s) = %d %s, want %d", method, pattern, id, r.status, r.body, want)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, pattern, r.body, err)
		}
	}
}

// openapiChecker validates responses against the embedded OpenAPI 3.1
// document: 3.1 schemas are JSON Schema 2020-12, compiled with formats and
// content encodings asserted.
type openapiChecker struct {
	mu  sync.Mutex // the compiler is not safe for concurrent use
	doc map[string]any
	c   *jsonschema.Compiler
}

const docURL = "https://medx.test/openapi.json"

func newOpenAPIChecker(t testing.TB) *openapiChecker {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	if err := c.AddResource(docURL, inst); err != nil {
		t.Fatal(err)
	}
	return &openapiChecker{doc: doc, c: c}
}

func ptrEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check validates r as a response of method on pattern.
func (o *openapiChecker) check(t testing.TB, method, pattern string, r resp) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	paths, _ := o.doc["paths"].(map[string]any)
	item, ok := paths[pattern].(map[string]any)
	if !ok {
		if pattern != "unmatched" {
			t.Errorf("openapi: no path %s", pattern)
		}
		return
	}
	op, ok := item[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Errorf("openapi: no operation %s %s", method, pattern)
		return
	}
	responses := op["responses"].(map[string]any)
	key := strconv.Itoa(r.status)
	loc := "#/paths/" + ptrEscape(pattern) + "/" + strings.ToLower(method) + "/responses/"
	rsp, ok := responses[key].(map[string]any)
	if !ok {
		key = "default"
		rsp = responses["default"].(map[string]any)
		if r.status < 400 {
			t.Errorf("openapi: %s %s: status %d is not documented", method, pattern, r.status)
			return
		}
	}
	loc += key
	if ref, ok := rsp["$ref"].(string); ok {
		loc = ref
		rsp = o.resolve(ref)
	}
	content, _ := rsp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(r.body)) != 0 {
			t.Errorf("openapi: %s %s %d: undocumented body %s", method, pattern, r.status, r.body)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(r.ctype)
	if err != nil {
		t.Errorf("openapi: %s %s %d: content type %q: %v", method, pattern, r.status, r.ctype, err)
		return
	}
	if _, ok := content[mt]; !ok {
		t.Errorf("openapi: %s %s %d: content type %s not documented", method, pattern, r.status, mt)
		return
	}
	if mt != "application/json" && mt != "application/problem+json" {
		return
	}
	sch, err := o.c.Compile(docURL + loc + "/content/" + ptrEscape(mt) + "/schema")
	if err != nil {
		t.Fatalf("openapi: compile schema of %s %s %d: %v", method, pattern, r.status, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Errorf("openapi: %s %s %d: body is not JSON: %v", method, pattern, r.status, err)
		return
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("openapi: %s %s %d: response does not match the schema: %v\nbody: %.600s", method, pattern, r.status, err, r.body)
	}
}

func (o *openapiChecker) resolve(ref string) map[string]any {
	var cur any = o.doc
	for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		cur = cur.(map[string]any)[p]
	}
	return cur.(map[string]any)
}

// testLog discards: the request log is exercised, not read.
func testLog(testing.TB) *slog.Logger { return slog.New(slog.DiscardHandler) }
