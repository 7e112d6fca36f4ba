package embedded

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
)

func rangeAll(t *testing.T, st ledger.State, start, end string) []string {
	t.Helper()
	var out []string
	if err := st.Range(start, end, func(k string, v []byte) (bool, error) {
		out = append(out, k+"="+string(v))
		return true, nil
	}); err != nil {
		t.Fatalf("Range(%q, %q): %v", start, end, err)
	}
	return out
}

// TestOverlayMatchesDirectWrites applies random writes both through an
// overlay (over a MemState and over a bbolt bucket) and directly to a
// reference state: reads through the overlay, and the base after flush,
// must equal the reference.
func TestOverlayMatchesDirectWrites(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mac := newStateMAC([]byte("seed"))
	rng := rand.New(rand.NewPCG(1, 2))
	keyOf := func() string { return fmt.Sprintf("k/%02d", rng.IntN(40)) }
	for round := range 30 {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprint("b", round)))
			if err != nil {
				return err
			}
			bases := map[string]ledger.State{"mem": ledger.NewMemState(), "bolt": boltState{b: b, mac: mac}}
			ref := ledger.NewMemState()
			for i := range 20 {
				k := keyOf()
				v := []byte(fmt.Sprint("base", i))
				_ = ref.Put(k, v)
				for _, st := range bases {
					if err := st.Put(k, v); err != nil {
						return err
					}
				}
			}
			type op struct {
				del  bool
				k, v string
			}
			var ops []op
			for i := range 25 {
				ops = append(ops, op{del: rng.IntN(3) == 0, k: keyOf(), v: fmt.Sprint("new", i)})
			}
			for _, o := range ops {
				if o.del {
					_ = ref.Delete(o.k)
				} else {
					_ = ref.Put(o.k, []byte(o.v))
				}
			}
			for name, base := range bases {
				ov := newOverlay(base)
				for _, o := range ops {
					if o.del {
						_ = ov.Delete(o.k)
					} else {
						_ = ov.Put(o.k, []byte(o.v))
					}
				}
				lo, hi := keyOf(), keyOf()
				if hi < lo {
					lo, hi = hi, lo
				}
				for _, r := range [][2]string{{"", ""}, {lo, hi}, {lo, ""}} {
					if diff := cmp.Diff(rangeAll(t, ref, r[0], r[1]), rangeAll(t, ov, r[0], r[1])); diff != "" {
						t.Errorf("round %d %s: overlay Range(%q, %q) (-want +got):\n%s", round, name, r[0], r[1], diff)
					}
				}
				k := keyOf()
				want, _ := ref.Get(k)
				if got, _ := ov.Get(k); string(got) != string(want) {
					t.Errorf("round %d %s: overlay Get(%q) = %q, want %q", round, name, k, got, want)
				}
				if err := ov.flush(); err != nil {
					return err
				}
				if diff := cmp.Diff(rangeAll(t, ref, "", ""), rangeAll(t, base, "", "")); diff != "" {
					t.Errorf("round %d %s: base after flush (-want +got):\n%s", round, name, diff)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
