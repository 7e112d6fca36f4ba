package httpapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/exchangetest"
	"github.com/medx/medx/ledger"
)

// TestRoleMatrix walks every route with no token and with every role: no
// token is 401, a role the table does not list is 403 role-forbidden, a
// listed role gets past authentication (whatever the route then says).
func TestRoleMatrix(t *testing.T) {
	e := newEnv(t)
	sponsorTok := e.token(t, ledger.RoleSponsor, string(exchangetest.Sponsor))
	var r ledger.Request
	e.ok(t, 201, "POST", "/v1/requests", "", sponsorTok, exchangetest.Draft(5), &r)
	subs := map[ledger.Role]string{
		ledger.RolePatient: string(exchangetest.Custodians[0]) + "/c1-000001", ledger.RoleSponsor: string(exchangetest.Sponsor),
		ledger.RoleEthicsBoard: string(exchangetest.Board), ledger.RoleCustodian: string(exchangetest.Custodians[0]), ledger.RoleOperator: string(exchangetest.Operator),
	}
	for _, rt := range (&Server{}).routes() {
		id := string(r.ID)
		if strings.HasPrefix(rt.pattern, "/v1/participants/") {
			id = string(exchangetest.Sponsor)
		}
		if rt.public {
			if got := e.call(t, rt.method, rt.pattern, id, "", nil); got.status != 200 {
				t.Errorf("%s %s without token = %d, want 200", rt.method, rt.pattern, got.status)
			}
			continue
		}
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			if rt.pattern == "/v1/events" {
				checkEventsRoles(t, e, rt, subs)
				return
			}
			got := e.call(t, rt.method, rt.pattern, id, "", nil)
			if got.status != 401 || got.problemType() != "unauthenticated" {
				t.Errorf("no token = %d %s, want 401 unauthenticated", got.status, got.body)
			}
			for _, role := range exchange.Roles() {
				got := e.call(t, rt.method, rt.pattern, id, e.token(t, role, subs[role]), nil)
				allowed := contains(rt.roles, role)
				switch {
				case allowed && (got.status == 401 || got.problemType() == "role-forbidden"):
					t.Errorf("%s (allowed) = %d %s", role, got.status, got.body)
				case !allowed && (got.status != 403 || got.problemType() != "role-forbidden"):
					t.Errorf("%s (not allowed) = %d %s, want 403 role-forbidden", role, got.status, got.body)
				}
			}
		})
	}
}

func contains(rs []ledger.Role, r ledger.Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// checkEventsRoles opens the event stream briefly as each role.
func checkEventsRoles(t *testing.T, e *env, rt route, subs map[ledger.Role]string) {
	open := func(tok string) int {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+rt.pattern, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := open(""); got != 401 {
		t.Errorf("no token = %d, want 401", got)
	}
	for _, role := range exchange.Roles() {
		if got := open(e.token(t, role, subs[role])); got != 200 {
			t.Errorf("%s = %d, want 200", role, got)
		}
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestTokenAttacks sends forged and invalid tokens: every one is 401 and
// the ledger does not change.
func TestTokenAttacks(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	good := TokenClaims{Issuer: testIssuer, Audience: testAudience, Subject: string(exchangetest.Sponsor), Role: ledger.RoleSponsor, IssuedAt: now, Expires: now.Add(time.Hour)}
	with := func(f func(*TokenClaims)) TokenClaims { c := good; f(&c); return c }
	issue := func(c TokenClaims) string {
		tok, err := IssueToken(e.jwtKey, "", c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongEd, _ := IssueToken(otherEd, "", good)
	wrongEC, _ := IssueToken(otherEC, "", good)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "acme", "role": "sponsor", "exp": now.Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	hmac, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": "acme", "role": "sponsor", "exp": now.Add(time.Hour).Unix()}).
		SignedString([]byte(e.jwtKey.Public().(ed25519.PublicKey)))
	patientTok := issue(with(func(c *TokenClaims) { c.Role = ledger.RolePatient; c.Subject = "st-marys/c1-000001" }))
	parts := strings.Split(patientTok, ".")
	escalated := parts[0] + "." + b64([]byte(`{"iss":"`+testIssuer+`","aud":["`+testAudience+`"],"sub":"acme","role":"sponsor","exp":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`)) + "." + parts[2]
	goodParts := strings.Split(issue(good), ".")
	tampered := goodParts[0] + "." + goodParts[1][:len(goodParts[1])-2] + "AA" + "." + goodParts[2]
	cases := []struct{ name, token string }{
		{"alg none", none},
		{"HMAC with the public key as secret", hmac},
		{"wrong Ed25519 key", wrongEd},
		{"wrong ES256 key", wrongEC},
		{"expired", issue(with(func(c *TokenClaims) { c.Expires = now.Add(-time.Hour); c.IssuedAt = now.Add(-2 * time.Hour) }))},
		{"not yet valid", issue(with(func(c *TokenClaims) { c.NotBefore = now.Add(time.Hour) }))},
		{"wrong audience", issue(with(func(c *TokenClaims) { c.Audience = "other-api" }))},
		{"wrong issuer", issue(with(func(c *TokenClaims) { c.Issuer = "evil" }))},
		{"missing role", issue(with(func(c *TokenClaims) { c.Role = "" }))},
		{"unknown role", issue(with(func(c *TokenClaims) { c.Role = "admin" }))},
		{"no subject", issue(with(func(c *TokenClaims) { c.Subject = "" }))},
		{"patient without custodian", issue(with(func(c *TokenClaims) { c.Role = ledger.RolePatient; c.Subject = "c1-000001" }))},
		{"escalated role, patient's signature", escalated},
		{"tampered payload", tampered},
		{"garbage", "not.a.token"},
	}
	before := e.f.Ledger.Height()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.call(t, "POST", "/v1/requests", "", c.token, exchangetest.Draft(5))
			if got.status != 401 || got.problemType() != "unauthenticated" {
				t.Errorf("POST /v1/requests = %d %s, want 401", got.status, got.body)
			}
		})
	}
	if after := e.f.Ledger.Height(); after != before {
		t.Errorf("ledger height %d -> %d after refused tokens", before, after)
	}
	if got := e.call(t, "POST", "/v1/requests", "", issue(good), exchangetest.Draft(5)); got.status != 201 {
		t.Errorf("the good token = %d %s, want 201", got.status, got.body)
	}
}

// TestJWKS verifies tokens with keys from a JWKS URL: both algorithms,
// caching, refetching on an unknown kid (rotation), and refusing a key
// used with the wrong algorithm.
func TestJWKS(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	_, rotated, _ := ed25519.GenerateKey(rand.Reader)
	var fetches atomic.Int32
	var set atomic.Value
	doc, err := MarshalJWKS(map[string]crypto.PublicKey{"k-ec": ec.Public(), "k-ed": ed.Public()})
	if err != nil {
		t.Fatal(err)
	}
	set.Store(doc)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(set.Load().([]byte))
	}))
	defer srv.Close()
	jwks := NewJWKS(srv.URL, srv.Client(), time.Hour)
	jwks.minRefresh = 0
	a := NewAuthenticator(testIssuer, testAudience, jwks)
	now := time.Now()
	claims := TokenClaims{Issuer: testIssuer, Audience: testAudience, Subject: "irb", Role: ledger.RoleEthicsBoard, IssuedAt: now, Expires: now.Add(time.Hour)}
	verify := func(key crypto.Signer, kid string) error {
		s, err := IssueToken(key, kid, claims)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Verify(t.Context(), s)
		return err
	}
	if err := verify(ec, "k-ec"); err != nil {
		t.Errorf("ES256 token: %v", err)
	}
	if err := verify(ed, "k-ed"); err != nil {
		t.Errorf("EdDSA token: %v", err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetched the set %d times, want 1 (cached)", n)
	}
	if err := verify(ed, "k-ec"); !errors.Is(err, errUnauthenticated) {
		t.Errorf("EdDSA token naming the ECDSA key: %v, want refused", err)
	}
	doc, _ = MarshalJWKS(map[string]crypto.PublicKey{"k-new": rotated.Public()})
	set.Store(doc)
	if err := verify(rotated, "k-new"); err != nil {
		t.Errorf("token of a rotated-in key: %v", err)
	}
	if n := fetches.Load(); n < 2 {
		t.Errorf("fetched the set %d times, want a refetch on the unknown kid", n)
	}
	if err := verify(ed, "k-unknown"); !errors.Is(err, errUnauthenticated) {
		t.Errorf("unknown kid: %v, want refused", err)
	}
}

// TestVerifiedTokenCache: a token verified once is served from the cache
// only while it is valid, and any change to its text is verified in full.
func TestVerifiedTokenCache(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	a := NewAuthenticator(testIssuer, testAudience, StaticKey(priv.Public()))
	now := time.Now()
	a.now = func() time.Time { return now }
	tok, err := IssueToken(priv, "", TokenClaims{Issuer: testIssuer, Audience: testAudience, Subject: "acme", Role: ledger.RoleSponsor,
		IssuedAt: now, Expires: now.Add(2 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if p, err := a.Verify(t.Context(), tok); err != nil || p.ID != "acme" {
			t.Fatalf("Verify #%d = %+v, %v", i+1, p, err)
		}
	}
	sig := strings.LastIndexByte(tok, '.') + 1
	flipped := tok[:sig] + string(rune(tok[sig]^1)) + tok[sig+1:]
	if _, err := a.Verify(t.Context(), flipped); !errors.Is(err, errUnauthenticated) {
		t.Errorf("Verify(altered signature) after the token was cached = %v, want unauthenticated", err)
	}
	now = now.Add(3 * time.Minute) // past exp and the leeway
	if _, err := a.Verify(t.Context(), tok); !errors.Is(err, errUnauthenticated) {
		t.Errorf("Verify(expired, cached before) = %v, want unauthenticated", err)
	}
}
