package exchange

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/medx/medx/cohorts"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

var linksBucket = []byte("pseudonyms")

// Custodian is a data holder's node: its patient dataset, its share of the
// collective key, and its private table linking the per-study pseudonyms it
// certified to its own record ids. Nothing here leaves the custodian except
// encrypted aggregates, decryption shares and pseudonym certificates.
type Custodian struct {
	signer ledger.Signer
	data   *cohorts.Dataset
	holder *privacy.KeyHolder
	links  *bolt.DB

	mu      sync.Mutex
	matches map[string]map[string]bool // criteria text -> matching record ids
}

// OpenCustodian opens custodian signer's node: its dataset, key-holder share
// and the pseudonym link store at linksPath (created if missing).
func OpenCustodian(signer ledger.Signer, data *cohorts.Dataset, holder *privacy.KeyHolder, linksPath string) (*Custodian, error) {
	db, err := bolt.Open(linksPath, 0o600, nil)
	if err != nil {
		return nil, fmt.Errorf("custodian %s: open link store: %w", signer.ID, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(linksBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("custodian %s: init link store: %w", signer.ID, err)
	}
	return &Custodian{signer: signer, data: data, holder: holder, links: db, matches: map[string]map[string]bool{}}, nil
}

// ID is the custodian's participant id.
func (c *Custodian) ID() ledger.ParticipantID { return c.signer.ID }

// Signer is the custodian's ledger identity.
func (c *Custodian) Signer() ledger.Signer { return c.signer }

// Dataset is the custodian's patient table.
func (c *Custodian) Dataset() *cohorts.Dataset { return c.data }

// KeyHolder is the custodian's share of the collective key.
func (c *Custodian) KeyHolder() *privacy.KeyHolder { return c.holder }

// Close closes the link store and the dataset.
func (c *Custodian) Close() error {
	return errors.Join(c.links.Close(), c.data.Close())
}

// matching returns the set of record ids matching criteria, computed once.
func (c *Custodian) matching(ctx context.Context, criteria string) (map[string]bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.matches[criteria]; ok {
		return m, nil
	}
	crit, err := cohorts.ParseCriteria(criteria)
	if err != nil {
		return nil, fmt.Errorf("criteria: %w: %w", ErrInvalid, err)
	}
	ids, err := c.data.Match(ctx, crit)
	if err != nil {
		return nil, fmt.Errorf("custodian %s: match criteria: %w", c.signer.ID, err)
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	c.matches[criteria] = m
	return m, nil
}

// Matches reports whether record matches req's inclusion criteria.
func (c *Custodian) Matches(ctx context.Context, req ledger.Request, record string) (bool, error) {
	m, err := c.matching(ctx, req.Criteria)
	if err != nil {
		return false, err
	}
	return m[record], nil
}

// countAll is q's plaintext vector over all the custodian's patients,
// licensed or not: a feasibility count's contribution. It stays inside the
// custodian: only the noisy total across custodians ever leaves.
func (c *Custodian) countAll(ctx context.Context, q *cohorts.Query) ([]int64, error) {
	vec, err := c.data.Aggregate(ctx, q, cohorts.AllPatients())
	if err != nil {
		return nil, fmt.Errorf("custodian %s: count: %w", c.signer.ID, err)
	}
	return vec, nil
}

// Certify certifies pub as record's per-study key for req, after checking
// that the record is one of the custodian's and matches the request, and
// remembers the link privately.
func (c *Custodian) Certify(ctx context.Context, req ledger.Request, record string, pub ed25519.PublicKey) (ledger.Certificate, error) {
	ok, err := c.Matches(ctx, req, record)
	if err != nil {
		return ledger.Certificate{}, err
	}
	if !ok {
		return ledger.Certificate{}, fmt.Errorf("certify for %s: %w", req.ID, ErrNotOffered)
	}
	pn := ledger.PseudonymID(pub)
	if err := c.links.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(linksBucket).Put([]byte(pn), []byte(record))
	}); err != nil {
		return ledger.Certificate{}, fmt.Errorf("custodian %s: store link: %w", c.signer.ID, err)
	}
	return c.signer.Certify(req.ID, pub), nil
}

// Contribute computes q's plaintext aggregate vector over exactly the
// records behind pseudonyms (those the custodian certified; others are not
// its patients and are ignored).
func (c *Custodian) Contribute(ctx context.Context, q *cohorts.Query, pseudonyms []ledger.ParticipantID) ([]int64, error) {
	records, err := c.Records(pseudonyms)
	if err != nil {
		return nil, err
	}
	vec, err := c.data.Aggregate(ctx, q, cohorts.NewPatientSet(records))
	if err != nil {
		return nil, fmt.Errorf("custodian %s: aggregate: %w", c.signer.ID, err)
	}
	return vec, nil
}

// Records maps pseudonyms the custodian certified to its record ids, sorted.
func (c *Custodian) Records(pseudonyms []ledger.ParticipantID) ([]string, error) {
	records := make([]string, 0, len(pseudonyms))
	err := c.links.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(linksBucket)
		for _, pn := range pseudonyms {
			if r := b.Get([]byte(pn)); r != nil {
				records = append(records, string(r))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("custodian %s: read links: %w", c.signer.ID, err)
	}
	slices.Sort(records)
	return records, nil
}
