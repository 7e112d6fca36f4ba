package exchange

import (
	"fmt"
	"sync"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/privacy"
)

// SponsorKeys is a custodial keystore of sponsors' BGV result keys, for
// sponsors who explicitly chose to let the exchange decrypt their released
// results for them (a browser without a BGV implementation cannot). A key
// exists only after its sponsor asked for one (Create), and is used only to
// decrypt results released to that sponsor's own requests. Sponsors who
// decrypt on their own side (CLI, notebooks, the Go client) never appear
// here. Keys live in memory: a restart forgets them and the sponsor creates
// a new one. Safe for concurrent use.
type SponsorKeys struct {
	params privacy.Params
	mu     sync.Mutex
	keys   map[ledger.ParticipantID]*privacy.SponsorKey
}

// NewSponsorKeys returns an empty keystore of result keys under params.
func NewSponsorKeys(params privacy.Params) *SponsorKeys {
	return &SponsorKeys{params: params, keys: map[ledger.ParticipantID]*privacy.SponsorKey{}}
}

// Create makes sponsor's custodial result key, unless it has one already,
// and reports whether it made one.
func (k *SponsorKeys) Create(sponsor ledger.ParticipantID) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.keys[sponsor]; ok {
		return false, nil
	}
	sk, err := privacy.NewSponsorKey(k.params)
	if err != nil {
		return false, fmt.Errorf("custodial result key of %s: %w", sponsor, err)
	}
	k.keys[sponsor] = sk
	return true, nil
}

// Key returns sponsor's custodial result key, or ErrNoKey if the sponsor
// never chose one.
func (k *SponsorKeys) Key(sponsor ledger.ParticipantID) (*privacy.SponsorKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	sk, ok := k.keys[sponsor]
	if !ok {
		return nil, fmt.Errorf("sponsor %s chose no custodial result key (POST /v1/custodial-sponsor-key): %w", sponsor, ErrNoKey)
	}
	return sk, nil
}
