package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medx/medx/exchange"
	"github.com/medx/medx/exchange/httpapi"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
)

// runServe serves the HTTP API over a data directory. A directory without
// medx.json (missing or empty) is first set up as the demo's: cast,
// datasets, key shares and a funded sponsor, without running the story.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	dir := fs.String("dir", "medx-data", "data directory (created with the demo cast if it has no medx.json)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	patients := fs.Int("patients", 4000, "patients in the demo dataset, when the directory is created")
	jwks := fs.String("jwks", "", "verify tokens with this JWKS URL instead of the directory's keys/jwt.key")
	issuer := fs.String("issuer", defaultIssuer, "token issuer (iss)")
	audience := fs.String("audience", defaultAudience, "token audience (aud)")
	ttl := fs.Duration("token-ttl", 24*time.Hour, "validity of the demo tokens printed at start")
	level := fs.String("log", "info", "log level")
	kind := fs.String("ledger", "embedded", "ledger backend: embedded (the directory's) or fabric")
	fabricConfig := fs.String("fabric-config", "", "Fabric gateway config file (JSON, see docs/fabric.md), with --ledger fabric")
	noise := fs.Bool("noise", true, "add disclosure noise to released values (turn off only to compare with plaintext or for reproducible reports)")
	custodialKeys := fs.Bool("custodial-sponsor-keys", true, "let sponsors choose a result key held by the exchange (POST /v1/custodial-sponsor-key), so the web console can show decrypted results; false: every sponsor decrypts on its own side")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	open, err := ledgerFlag(*kind, *fabricConfig)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	s, created, err := openOrCreateSite(ctx, *dir, *patients, *noise, open, log)
	if err != nil {
		return err
	}
	defer s.Close()
	ks, err := s.keystore()
	if err != nil {
		return err
	}
	key, err := jwtKey(*dir)
	if err != nil {
		return err
	}
	var keys httpapi.KeySource = httpapi.StaticKey(key.Public())
	if *jwks != "" {
		keys = httpapi.NewJWKS(*jwks, nil, 5*time.Minute)
	}
	opts := httpapi.Options{
		Auth:     httpapi.NewAuthenticator(*issuer, *audience, keys),
		Keystore: ks,
		Events:   func(ctx context.Context) <-chan exchange.Notice { return siteNotices(ctx, s, log) },
		Log:      log,
	}
	if s.led != nil {
		opts.Replay = func(ctx context.Context, from uint64) <-chan exchange.Notice {
			return notices(ctx, s.led.Events(ctx, from))
		}
		opts.Trail = s.led.Trail
	}
	if *custodialKeys {
		opts.SponsorKeys = exchange.NewSponsorKeys(s.ex.Params())
	}
	api := httpapi.New(s.ex, opts)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if created {
		fmt.Fprintf(stdout, "created demo data directory %s\n", *dir)
	}
	if *jwks == "" && *issuer == defaultIssuer && *audience == defaultAudience {
		if err := s.printDemoTokens(ctx, stdout, key, *ttl); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintf(stdout, "listening on %s (OpenAPI at %s/openapi.json)\n", base, base)
	log.Info("serving", "addr", base, "dir", *dir)
	return httpapi.Serve(ctx, ln, api, 10*time.Second, log)
}

// openOrCreateSite opens dir, or creates the demo's directory there.
func openOrCreateSite(ctx context.Context, dir string, patients int, noise bool, open ledgerOpener, log *slog.Logger) (*site, bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "medx.json")); err == nil {
		cfg := exchange.DefaultConfig()
		cfg.Noise = noise
		s, err := openSiteOn(ctx, dir, cfg, open, log)
		return s, false, err
	}
	if patients < 100 {
		return nil, false, fmt.Errorf("%w: --patients %d: want at least 100", errUsage, patients)
	}
	s, err := createDemoSite(ctx, demoOptions{dir: dir, seed: 1, patients: patients, noise: noise, epsilon: 0.25, places: 3000, ledger: open, randomKeys: true}, log)
	if err != nil {
		return nil, false, err
	}
	op, err := s.signer(s.cfg.Operator)
	if err == nil {
		for _, sp := range s.cfg.Sponsors {
			if err = s.client.Mint(ctx, op, sp, 100_000); err != nil {
				break
			}
		}
	}
	if err != nil {
		s.Close()
		return nil, false, fmt.Errorf("fund the demo sponsors: %w", err)
	}
	return s, true, nil
}

// keystore is the directory's custodial keystore: the keys in keys/ of the
// operator, sponsors, boards and custodians, and keys/patients.master for
// custodial patients (created on first use). The keys are stored 0600 in
// the clear: a real deployment keeps them in an HSM or encrypted at rest.
func (s *site) keystore() (*exchange.Keystore, error) {
	ids := append([]ledger.ParticipantID{s.cfg.Operator}, s.cfg.Sponsors...)
	ids = append(append(ids, s.cfg.Boards...), s.cfg.Custodians...)
	var signers []ledger.Signer
	for _, id := range ids {
		sg, err := s.signer(id)
		if err != nil {
			return nil, err
		}
		signers = append(signers, sg)
	}
	path := s.path("keys", "patients.master")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		m := make([]byte, 32)
		rand.Read(m)
		b = []byte(hex.EncodeToString(m) + "\n")
		err = writeFile(path, b)
	}
	if err != nil {
		return nil, fmt.Errorf("patient keystore: %w", err)
	}
	master, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(master) != 32 {
		return nil, fmt.Errorf("patient keystore %s: not 32 hex bytes", path)
	}
	return exchange.NewKeystore(signers, master), nil
}

// printDemoTokens prints a development token for each of the cast and two
// demo patients whose records match the demo criteria.
func (s *site) printDemoTokens(ctx context.Context, w io.Writer, k ed25519.PrivateKey, ttl time.Duration) error {
	now := time.Now()
	line := func(role ledger.Role, sub string) error {
		tok, err := issueDevToken(k, role, sub, ttl, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "token %s %s %s\n", role, sub, tok)
		return nil
	}
	fmt.Fprintf(w, "demo tokens (valid %s; 'medx token --dir %s' issues more):\n", ttl, s.dir)
	for _, p := range []struct {
		role ledger.Role
		ids  []ledger.ParticipantID
	}{
		{ledger.RoleOperator, []ledger.ParticipantID{s.cfg.Operator}}, {ledger.RoleSponsor, s.cfg.Sponsors},
		{ledger.RoleEthicsBoard, s.cfg.Boards}, {ledger.RoleCustodian, s.cfg.Custodians},
	} {
		for _, id := range p.ids {
			if err := line(p.role, string(id)); err != nil {
				return err
			}
		}
	}
	if len(s.custs) == 0 {
		return nil
	}
	ids, err := s.custs[0].Dataset().Match(ctx, mustCriteria(demoCriteria))
	if err != nil {
		return fmt.Errorf("demo patients: %w", err)
	}
	for _, id := range ids[:min(2, len(ids))] {
		if err := line(ledger.RolePatient, string(s.custs[0].ID())+"/"+id); err != nil {
			return err
		}
	}
	return nil
}

// notices adapts the embedded ledger's block events to the exchange's
// notices.
func notices(ctx context.Context, in <-chan embedded.BlockEvent) <-chan exchange.Notice {
	out := make(chan exchange.Notice)
	go func() {
		defer close(out)
		for b := range in {
			for _, tx := range b.Txs {
				if tx.Event == nil {
					continue
				}
				n := exchange.Notice{Height: b.Height, Time: b.Time, TxID: tx.TxID, Name: tx.Event.Name}
				if err := json.Unmarshal(tx.Event.Payload, &n.Payload); err != nil {
					continue
				}
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
