package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/exchange"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
	"github.com/medx/medx/privacy"
)

// A MedX data directory:
//
//	medx.json                  who's who, the ceremony seed and parameters
//	ledger.db                  the embedded ledger (bbolt)
//	keys/<participant>.key     Ed25519 signing keys held in this directory (0600)
//	keys/node.key              the ledger node's block-signing key
//	privacy/collective.pk      the collective BGV public key
//	custodians/<id>/           patients.parquet, links.db (pseudonym links), keyshare.bin
//	boards/<id>/keyshare.bin   an ethics board's share of the collective key
//	sponsors/<id>/bgv.key      a sponsor's own BGV key pair (its secret never leaves)
const siteVersion = 1

type siteConfig struct {
	Version    int                    `json:"version"`
	Operator   ledger.ParticipantID   `json:"operator"`
	Sponsors   []ledger.ParticipantID `json:"sponsors"`
	Boards     []ledger.ParticipantID `json:"boards"`
	Custodians []ledger.ParticipantID `json:"custodians"`
	CRS        string                 `json:"crs"` // hex public ceremony seed
	Params     privacy.ParamsLiteral  `json:"params"`
}

// site is an opened data directory: ledger, custodians' nodes, key shares
// and the exchange over them, all in this process.
type site struct {
	dir string
	cfg siteConfig
	led *embedded.Ledger // nil when the ledger is elsewhere (Fabric)
	// backend is the ledger the client calls: led, or one ledgerOpener opened.
	backend ledger.Backend
	client  *ledger.Client
	params  privacy.Params
	pk      *privacy.PublicKey
	custs   []*exchange.Custodian
	boards  []*privacy.KeyHolder
	ex      *exchange.Exchange
}

func (s *site) path(elem ...string) string { return filepath.Join(append([]string{s.dir}, elem...)...) }

// writeKey stores an Ed25519 key's seed, readable by the owner only.
func writeKey(path string, key ed25519.PrivateKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key file %s: not a hex Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// signer loads participant id's signing key from the directory.
func (s *site) signer(id ledger.ParticipantID) (ledger.Signer, error) {
	k, err := readKey(s.path("keys", string(id)+".key"))
	if err != nil {
		return ledger.Signer{}, fmt.Errorf("participant %s: %w", id, err)
	}
	return ledger.Signer{ID: id, Key: k}, nil
}

// sponsorKey loads a sponsor's BGV key pair.
func (s *site) sponsorKey(id ledger.ParticipantID) (*privacy.SponsorKey, error) {
	b, err := os.ReadFile(s.path("sponsors", string(id), "bgv.key"))
	if err != nil {
		return nil, fmt.Errorf("sponsor %s key: %w", id, err)
	}
	return privacy.UnmarshalSponsorKey(s.params, b)
}

// ledgerOpener opens a site's ledger when it is not the embedded one in
// the directory (the Fabric backend).
type ledgerOpener func(ctx context.Context, log *slog.Logger) (ledger.Backend, error)

// openSite opens the data directory at dir, on its embedded ledger.
func openSite(ctx context.Context, dir string, cfg exchange.Config, log *slog.Logger) (*site, error) {
	return openSiteOn(ctx, dir, cfg, nil, log)
}

// openSiteOn opens the data directory at dir on the ledger open opens
// (nil: the directory's embedded ledger).
func openSiteOn(ctx context.Context, dir string, cfg exchange.Config, open ledgerOpener, log *slog.Logger) (_ *site, err error) {
	s := &site{dir: dir}
	b, err := os.ReadFile(s.path("medx.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a MedX data directory (no medx.json); create one with 'medx demo --dir %s'", dir, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read medx.json: %w", err)
	}
	if err := json.Unmarshal(b, &s.cfg); err != nil {
		return nil, fmt.Errorf("medx.json: %w", err)
	}
	if s.cfg.Version != siteVersion {
		return nil, fmt.Errorf("medx.json: version %d, this medx reads version %d", s.cfg.Version, siteVersion)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.params, err = privacy.NewParams(s.cfg.Params); err != nil {
		return nil, fmt.Errorf("medx.json parameters: %w", err)
	}
	if open != nil {
		if s.backend, err = open(ctx, log); err != nil {
			return nil, fmt.Errorf("open ledger: %w", err)
		}
	} else {
		nodeKey, err := readKey(s.path("keys", "node.key"))
		if err != nil {
			return nil, fmt.Errorf("ledger node: %w", err)
		}
		if s.led, err = embedded.Open(s.path("ledger.db"), nodeKey, embedded.Options{Logger: log}); err != nil {
			return nil, fmt.Errorf("open ledger: %w", err)
		}
		s.backend = s.led
	}
	s.client = ledger.NewClient(s.backend)
	pkb, err := os.ReadFile(s.path("privacy", "collective.pk"))
	if err != nil {
		return nil, fmt.Errorf("collective public key: %w", err)
	}
	if s.pk, err = privacy.UnmarshalPublicKey(s.params, pkb); err != nil {
		return nil, fmt.Errorf("collective public key: %w", err)
	}
	for _, id := range s.cfg.Custodians {
		c, err := s.openCustodian(ctx, id)
		if err != nil {
			return nil, err
		}
		s.custs = append(s.custs, c)
	}
	for _, id := range s.cfg.Boards {
		h, err := s.keyHolder(s.path("boards", string(id), "keyshare.bin"))
		if err != nil {
			return nil, fmt.Errorf("board %s: %w", id, err)
		}
		s.boards = append(s.boards, h)
	}
	op, err := s.signer(s.cfg.Operator)
	if err != nil {
		return nil, err
	}
	s.ex = exchange.New(s.client, op, s.params, s.pk, s.custs, s.boards, cfg, log)
	return s, nil
}

func (s *site) keyHolder(path string) (*privacy.KeyHolder, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key share: %w", err)
	}
	h, err := privacy.UnmarshalKeyHolder(s.params, b)
	if err != nil {
		return nil, fmt.Errorf("key share %s: %w", path, err)
	}
	return h, nil
}

func (s *site) openCustodian(ctx context.Context, id ledger.ParticipantID) (*exchange.Custodian, error) {
	sg, err := s.signer(id)
	if err != nil {
		return nil, err
	}
	h, err := s.keyHolder(s.path("custodians", string(id), "keyshare.bin"))
	if err != nil {
		return nil, fmt.Errorf("custodian %s: %w", id, err)
	}
	ds, err := cohorts.Open(ctx, s.path("custodians", string(id), "patients.parquet"))
	if err != nil {
		return nil, fmt.Errorf("custodian %s dataset: %w", id, err)
	}
	c, err := exchange.OpenCustodian(sg, ds, h, s.path("custodians", string(id), "links.db"))
	if err != nil {
		ds.Close()
		return nil, err
	}
	return c, nil
}

// Close releases everything the site opened.
func (s *site) Close() error {
	var errs []error
	for _, c := range s.custs {
		errs = append(errs, c.Close())
	}
	if s.backend != nil {
		errs = append(errs, s.backend.Close())
	}
	return errors.Join(errs...)
}
