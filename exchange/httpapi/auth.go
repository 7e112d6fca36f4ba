package httpapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
)

// Token algorithms accepted: EdDSA (Ed25519) and ES256. Every other alg,
// "none" and the HMAC family included, is refused before any key is used.
var validAlgs = []string{"EdDSA", "ES256"}

// KeySource finds the public key that verifies a token: kid is the token's
// key id (possibly empty), alg its algorithm.
type KeySource interface {
	Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error)
}

// StaticKey is a KeySource of one configured public key (ed25519.PublicKey
// or a P-256 *ecdsa.PublicKey), whatever the kid.
func StaticKey(pub crypto.PublicKey) KeySource { return staticKey{pub} }

type staticKey struct{ pub crypto.PublicKey }

func (s staticKey) Key(context.Context, string, string) (crypto.PublicKey, error) { return s.pub, nil }

// JWKS is a KeySource over a JSON Web Key Set URL. It caches the set for
// its TTL and refetches early, at most once per MinRefresh, when a token
// names a kid it does not hold (key rotation). It is safe for concurrent use.
type JWKS struct {
	url        string
	client     *http.Client
	ttl        time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	fetched time.Time
}

// NewJWKS returns a JWKS source for url; a nil client means a client with a
// 10 s timeout. ttl is how long a fetched set is trusted (0 means 5 min).
func NewJWKS(url string, client *http.Client, ttl time.Duration) *JWKS {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return &JWKS{url: url, client: client, ttl: ttl, minRefresh: 10 * time.Second, now: time.Now}
}

// Key returns the key named kid (or the only key, for an empty kid).
func (j *JWKS) Key(ctx context.Context, kid, alg string) (crypto.PublicKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := j.now()
	stale := j.keys == nil || now.Sub(j.fetched) >= j.ttl
	if !stale {
		if k, ok := j.lookup(kid); ok {
			return k, nil
		}
		stale = now.Sub(j.fetched) >= j.minRefresh
	}
	if stale {
		keys, err := j.fetch(ctx)
		if err != nil {
			if j.keys == nil {
				return nil, err
			}
			// Keep serving the last good set; an unknown kid fails below.
		} else {
			j.keys, j.fetched = keys, now
		}
	}
	if k, ok := j.lookup(kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("jwks: no key %q", kid)
}

func (j *JWKS) lookup(kid string) (crypto.PublicKey, bool) {
	if kid == "" && len(j.keys) == 1 {
		for _, k := range j.keys {
			return k, true
		}
	}
	k, ok := j.keys[kid]
	return k, ok
}

func (j *JWKS) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: fetch %s: status %d", j.url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("jwks: read: %w", err)
	}
	return ParseJWKS(b)
}

// jwk is one JSON Web Key (RFC 7517/8037), public parts only.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// ParseJWKS parses a JSON Web Key Set of OKP/Ed25519 and EC/P-256 keys by
// kid; keys of other types are skipped.
func ParseJWKS(b []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	out := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			return nil, fmt.Errorf("jwks: key %q: x: %w", k.Kid, err)
		}
		switch {
		case k.Kty == "OKP" && k.Crv == "Ed25519":
			if len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("jwks: key %q: Ed25519 key of %d bytes", k.Kid, len(x))
			}
			out[k.Kid] = ed25519.PublicKey(x)
		case k.Kty == "EC" && k.Crv == "P-256":
			y, err := base64.RawURLEncoding.DecodeString(k.Y)
			if err != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("jwks: key %q: bad P-256 coordinates", k.Kid)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("jwks: key %q: %w", k.Kid, err)
			}
			out[k.Kid] = pub
		}
	}
	return out, nil
}

// MarshalJWKS renders public keys (ed25519.PublicKey or P-256
// *ecdsa.PublicKey) by kid as a JSON Web Key Set.
func MarshalJWKS(keys map[string]crypto.PublicKey) ([]byte, error) {
	kids := make([]string, 0, len(keys))
	for k := range keys {
		kids = append(kids, k)
	}
	slices.Sort(kids)
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, kid := range kids {
		switch pub := keys[kid].(type) {
		case ed25519.PublicKey:
			set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: "EdDSA", Use: "sig"})
		case *ecdsa.PublicKey:
			b, err := pub.Bytes()
			if err != nil || len(b) != 65 {
				return nil, fmt.Errorf("jwks: key %q: not a P-256 key", kid)
			}
			set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(b[1:33]),
				Y: base64.RawURLEncoding.EncodeToString(b[33:]), Kid: kid, Alg: "ES256", Use: "sig"})
		default:
			return nil, fmt.Errorf("jwks: key %q: unsupported type %T", kid, pub)
		}
	}
	return json.Marshal(set)
}

// Authenticator turns bearer tokens into principals. A token must be
// signed with EdDSA or ES256 by a key of its KeySource, name the
// configured issuer and audience, carry exp (and nbf, if present, must be
// past), a sub and a role claim naming one of the five roles. A patient's
// sub is "<custodian>/<record>": the custodian authenticates its own
// patients and issues their tokens.
//
// A token verified once is remembered, by the SHA-256 of its exact text,
// for at most verifiedTTL and never past its exp: the signature check
// (most of the cost of a small request) is not redone for every request
// of a session. Any change to the token is a different text and is
// verified in full. A key withdrawn from a JWKS stops working for tokens
// already seen within verifiedTTL.
type Authenticator struct {
	issuer, audience string
	keys             KeySource
	leeway           time.Duration
	now              func() time.Time

	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedToken
}

// Bounds of the verified-token cache.
const (
	verifiedTTL = time.Minute
	verifiedMax = 8192
)

type verifiedToken struct {
	p         exchange.Principal
	notBefore time.Time // zero if the token has no nbf
	until     time.Time // the cache entry's end: min(seen+verifiedTTL, exp+leeway)
}

// NewAuthenticator returns an authenticator for tokens of issuer for
// audience, verified with keys.
func NewAuthenticator(issuer, audience string, keys KeySource) *Authenticator {
	return &Authenticator{issuer: issuer, audience: audience, keys: keys, leeway: 30 * time.Second, now: time.Now,
		verified: map[[sha256.Size]byte]verifiedToken{}}
}

// cached returns the principal of a token verified recently, if still
// valid at now.
func (a *Authenticator) cached(sum [sha256.Size]byte, now time.Time) (exchange.Principal, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.verified[sum]
	if !ok || !now.Before(v.until) || (!v.notBefore.IsZero() && now.Before(v.notBefore.Add(-a.leeway))) {
		return exchange.Principal{}, false
	}
	return v.p, true
}

func (a *Authenticator) remember(sum [sha256.Size]byte, now time.Time, c *claims, p exchange.Principal) {
	v := verifiedToken{p: p, until: now.Add(verifiedTTL)}
	if exp := c.ExpiresAt.Time.Add(a.leeway); exp.Before(v.until) {
		v.until = exp
	}
	if c.NotBefore != nil {
		v.notBefore = c.NotBefore.Time
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.verified) >= verifiedMax {
		for k, old := range a.verified {
			if !now.Before(old.until) {
				delete(a.verified, k)
			}
		}
		if len(a.verified) >= verifiedMax {
			clear(a.verified)
		}
	}
	a.verified[sum] = v
}

type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

// Authenticate verifies the request's bearer token. Every failure wraps
// the same sentinel (a 401) and names no secret.
func (a *Authenticator) Authenticate(r *http.Request) (exchange.Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return exchange.Principal{}, fmt.Errorf("no bearer token: %w", errUnauthenticated)
	}
	return a.Verify(r.Context(), strings.TrimSpace(tok))
}

// Verify verifies a token and returns its principal.
func (a *Authenticator) Verify(ctx context.Context, token string) (exchange.Principal, error) {
	sum := sha256.Sum256([]byte(token))
	now := a.now()
	if p, ok := a.cached(sum, now); ok {
		return p, nil
	}
	c, pr, err := a.verify(ctx, token)
	if err != nil {
		return exchange.Principal{}, err
	}
	a.remember(sum, now, c, pr)
	return pr, nil
}

// verify checks a token in full: signature, claims and role.
func (a *Authenticator) verify(ctx context.Context, token string) (*claims, exchange.Principal, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods(validAlgs),
		jwt.WithIssuer(a.issuer),
		jwt.WithAudience(a.audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(a.leeway),
		jwt.WithTimeFunc(a.now),
	)
	var c claims
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := a.keys.Key(ctx, kid, t.Method.Alg())
		if err != nil {
			return nil, err
		}
		switch k.(type) {
		case ed25519.PublicKey:
			if t.Method.Alg() != "EdDSA" {
				return nil, errors.New("key is Ed25519, token is not EdDSA")
			}
		case *ecdsa.PublicKey:
			if t.Method.Alg() != "ES256" {
				return nil, errors.New("key is ECDSA, token is not ES256")
			}
		default:
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return k, nil
	})
	if err != nil {
		return nil, exchange.Principal{}, fmt.Errorf("token: %v: %w", err, errUnauthenticated)
	}
	role := ledger.Role(c.Role)
	if !slices.Contains(exchange.Roles(), role) {
		return nil, exchange.Principal{}, fmt.Errorf("token: unknown role %q: %w", c.Role, errUnauthenticated)
	}
	if c.Subject == "" {
		return nil, exchange.Principal{}, fmt.Errorf("token: no sub: %w", errUnauthenticated)
	}
	pr := exchange.Principal{Role: role, ID: c.Subject}
	if role == ledger.RolePatient {
		if _, _, err := pr.PatientRef(); err != nil {
			return nil, exchange.Principal{}, fmt.Errorf("token: %v: %w", err, errUnauthenticated)
		}
	}
	return &c, pr, nil
}

// TokenClaims are what IssueToken signs.
type TokenClaims struct {
	Issuer, Audience, Subject string
	Role                      ledger.Role
	IssuedAt, Expires         time.Time
	NotBefore                 time.Time // zero: no nbf claim
}

// IssueToken signs a token with key: an ed25519.PrivateKey (EdDSA) or a
// P-256 *ecdsa.PrivateKey (ES256); kid may be empty.
func IssueToken(key crypto.Signer, kid string, tc TokenClaims) (string, error) {
	var m jwt.SigningMethod
	switch k := key.(type) {
	case ed25519.PrivateKey:
		m = jwt.SigningMethodEdDSA
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("issue token: ECDSA key is not P-256")
		}
		m = jwt.SigningMethodES256
	default:
		return "", fmt.Errorf("issue token: unsupported key type %T", key)
	}
	c := claims{Role: string(tc.Role), RegisteredClaims: jwt.RegisteredClaims{
		Issuer: tc.Issuer, Subject: tc.Subject, Audience: jwt.ClaimStrings{tc.Audience},
		IssuedAt: jwt.NewNumericDate(tc.IssuedAt), ExpiresAt: jwt.NewNumericDate(tc.Expires),
	}}
	if !tc.NotBefore.IsZero() {
		c.NotBefore = jwt.NewNumericDate(tc.NotBefore)
	}
	t := jwt.NewWithClaims(m, c)
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return s, nil
}
