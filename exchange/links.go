package exchange

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/medx/medx/ledger"
)

var declinedBucket = []byte("declined")

// Pseudonyms returns the per-study pseudonyms the custodian certified for
// record, sorted: only the custodian (and the patient) can make this link.
func (c *Custodian) Pseudonyms(record string) ([]ledger.ParticipantID, error) {
	var out []ledger.ParticipantID
	err := c.links.View(func(tx *bolt.Tx) error {
		return tx.Bucket(linksBucket).ForEach(func(k, v []byte) error {
			if string(v) == record {
				out = append(out, ledger.ParticipantID(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("custodian %s: read links: %w", c.signer.ID, err)
	}
	slices.Sort(out)
	return out, nil
}

// owns reports whether the custodian certified pseudonym for record.
func (c *Custodian) owns(pseudonym ledger.ParticipantID, record string) (bool, error) {
	rs, err := c.Records([]ledger.ParticipantID{pseudonym})
	if err != nil {
		return false, err
	}
	return len(rs) == 1 && rs[0] == record, nil
}

// decline remembers, privately, that record's patient declined request id.
func (c *Custodian) decline(record string, id ledger.RequestID) error {
	err := c.links.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(declinedBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(record+"\x00"+string(id)), []byte{1})
	})
	if err != nil {
		return fmt.Errorf("custodian %s: store decline: %w", c.signer.ID, err)
	}
	return nil
}

// declined reports whether record's patient declined request id.
func (c *Custodian) declined(record string, id ledger.RequestID) (bool, error) {
	var ok bool
	err := c.links.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(declinedBucket); b != nil {
			ok = b.Get([]byte(record+"\x00"+string(id))) != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("custodian %s: read declines: %w", c.signer.ID, err)
	}
	return ok, nil
}
