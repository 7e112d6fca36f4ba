package privacy

import (
	"errors"
	"testing"
)

// study is a key ceremony among real key holders plus a sponsor key pair.
type study struct {
	p       Params
	crs     []byte
	holders []*KeyHolder
	pk      *PublicKey
	sponsor *SponsorKey
	pub     []byte
}

func mustParams(t testing.TB) Params {
	t.Helper()
	p, err := NewParams(DefaultParams())
	if err != nil {
		t.Fatalf("NewParams(DefaultParams()) = %v", err)
	}
	return p
}

// newStudy runs the key ceremony for the named key holders.
func newStudy(t testing.TB, ids ...string) *study {
	t.Helper()
	s := &study{p: mustParams(t), crs: []byte("medx test ceremony seed 0001")}
	var shares [][]byte
	for _, id := range ids {
		h, err := NewKeyHolder(s.p, id)
		if err != nil {
			t.Fatalf("NewKeyHolder(%q) = %v", id, err)
		}
		sh, err := h.PublicKeyShare(s.crs)
		if err != nil {
			t.Fatalf("PublicKeyShare(%q) = %v", id, err)
		}
		s.holders = append(s.holders, h)
		shares = append(shares, sh)
	}
	var err error
	if s.pk, err = CollectivePublicKey(s.p, s.crs, shares); err != nil {
		t.Fatalf("CollectivePublicKey = %v", err)
	}
	if s.sponsor, err = NewSponsorKey(s.p); err != nil {
		t.Fatalf("NewSponsorKey = %v", err)
	}
	if s.pub, err = s.sponsor.PublicKey(); err != nil {
		t.Fatalf("SponsorKey.PublicKey = %v", err)
	}
	return s
}

// threeHolders is the study of the brief: two contributing custodians and the
// ethics board.
func threeHolders(t testing.TB) *study {
	return newStudy(t, "custodian-1", "custodian-2", "board")
}

// cellSlots appends the slots of one GROUP BY cell the way cohorts lays them
// out: COUNT(*), n(x), centred sum(x), sum of squares, and a 3-bin histogram.
// Gates chain count -> n(x) -> sums; bins gate themselves.
func cellSlots(slots []SlotSpec, cell int) []SlotSpec {
	base := len(slots)
	return append(slots,
		SlotSpec{Cell: cell, Group: 0, Gate: base, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
		SlotSpec{Cell: cell, Group: 1, Gate: base, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
		SlotSpec{Cell: cell, Group: 2, Gate: base + 1, Kind: SlotSum, Sensitivity: 500, MaxAbs: 500},
		SlotSpec{Cell: cell, Group: 3, Gate: base + 1, Kind: SlotSum, Sensitivity: 250000, MaxAbs: 250000},
		SlotSpec{Cell: cell, Group: 4, Gate: base + 4, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
		SlotSpec{Cell: cell, Group: 4, Gate: base + 5, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
		SlotSpec{Cell: cell, Group: 4, Gate: base + 6, Kind: SlotCount, Sensitivity: 1, MaxAbs: 1},
	)
}

// sexSpec is a query grouped by sex (two cells of seven slots).
func sexSpec(noise bool) Spec {
	return Spec{
		Slots:   cellSlots(cellSlots(nil, 0), 1),
		Records: 10000,
		MinCell: 10,
		Epsilon: 1,
		Noise:   noise,
	}
}

// sexContributions are two custodians' aggregates for sexSpec. Totals: cell F
// count 65, n 50, sum 900, sumsq 130000, bins 7/35/8 (two bins under 10);
// cell M count 7 (under 10: the whole cell is suppressed).
func sexContributions() [][]int64 {
	return [][]int64{
		{40, 30, 1200, 90000, 5, 20, 5, 4, 3, -100, 5000, 1, 1, 1},
		{25, 20, -300, 40000, 2, 15, 3, 3, 2, 50, 2000, 0, 2, 0},
	}
}

func plainSum(vecs [][]int64) []int64 {
	out := make([]int64, len(vecs[0]))
	for _, v := range vecs {
		for i, x := range v {
			out[i] += x
		}
	}
	return out
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v, want %v", what, err, target)
	}
}
