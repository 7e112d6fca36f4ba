package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/httpapi"
	"github.com/medx/medx/ledger"
)

// Development tokens are issued by the data directory's own key.
const (
	defaultIssuer   = "medx"
	defaultAudience = "medx-api"
)

// jwtKey loads the data directory's token-signing key, creating
// keys/jwt.key on first use.
func jwtKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, "keys", "jwt.key")
	k, err := readKey(path)
	if err == nil {
		return k, nil
	}
	if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
		return nil, fmt.Errorf("token key: %w", err)
	}
	_, k, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	if err := writeKey(path, k); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	return k, nil
}

// issueDevToken signs a development token for role and sub.
func issueDevToken(key ed25519.PrivateKey, role ledger.Role, sub string, ttl time.Duration, now time.Time) (string, error) {
	return httpapi.IssueToken(key, "", httpapi.TokenClaims{Issuer: defaultIssuer, Audience: defaultAudience,
		Subject: sub, Role: role, IssuedAt: now, Expires: now.Add(ttl)})
}

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	dir := fs.String("dir", "", "data directory whose keys/jwt.key signs the token (created on first use)")
	role := fs.String("role", "", "role: patient, sponsor, ethics_board, custodian or operator")
	sub := fs.String("sub", "", `subject: a participant id, or "<custodian>/<record>" for a patient`)
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *sub == "" {
		return fmt.Errorf("%w: medx token --dir DIR --role ROLE --sub ID", errUsage)
	}
	if !slices.Contains(exchange.Roles(), ledger.Role(*role)) {
		return fmt.Errorf("%w: --role %q: want one of %v", errUsage, *role, exchange.Roles())
	}
	if p := (exchange.Principal{Role: ledger.Role(*role), ID: *sub}); p.Role == ledger.RolePatient {
		if _, _, err := p.PatientRef(); err != nil {
			return fmt.Errorf("%w: --sub: %w", errUsage, err)
		}
	}
	if *ttl <= 0 {
		return fmt.Errorf("%w: --ttl %s: want a positive duration", errUsage, *ttl)
	}
	if _, err := os.Stat(filepath.Join(*dir, "medx.json")); err != nil {
		return fmt.Errorf("%s is not a MedX data directory (no medx.json)", *dir)
	}
	k, err := jwtKey(*dir)
	if err != nil {
		return err
	}
	tok, err := issueDevToken(k, ledger.Role(*role), *sub, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
