package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/medx/medx/ledger"
)

// TestBatchedSignatures submits at once more acceptances than a
// verification batch holds, some with a corrupted patient signature or
// custodian certificate: the committer verifies them together, and
// exactly the corrupted ones are refused, as ErrBadSignature, in blocks
// that also commit the good ones; the audit, which verifies them in
// batches again, finds the ledger intact.
func TestBatchedSignatures(t *testing.T) {
	ctx := t.Context()
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"), testKey("node"), Options{MaxBatch: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := newCast(t, l)
	const n = 3 * ledger.SigBatch
	r := w.openStudy(t, n)
	badSig := func(i int) bool { return i%7 == 3 }
	badCert := func(i int) bool { return i%11 == 5 }
	args := make([][]byte, n)
	for i := range args {
		pn := ledger.Signer{Key: testKey(fmt.Sprintf("batched/%d", i))}
		pn.ID = ledger.PseudonymID(pn.Public())
		cert := w.cust.Certify(r.ID, pn.Public())
		if badCert(i) {
			cert.Signature[17] ^= 4
		}
		a, err := pn.Sign(ledger.FnAcceptOffer, ledger.Acceptance{
			Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
			PublicKey:   pn.Public(),
			Certificate: cert,
		})
		if err != nil {
			t.Fatal(err)
		}
		if badSig(i) {
			a.Sig[40] ^= 1
		}
		if args[i], err = json.Marshal(a); err != nil {
			t.Fatal(err)
		}
	}
	h0, tx0 := l.Height(), mustVerify(t, l).Transactions
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range args {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Submit(ctx, ledger.FnAcceptOffer, args[i])
		}()
	}
	wg.Wait()
	good := 0
	for i, err := range errs {
		switch {
		case badSig(i) || badCert(i):
			if !errors.Is(err, ledger.ErrBadSignature) {
				t.Errorf("acceptance %d (bad signature %v, bad certificate %v): %v, want ErrBadSignature", i, badSig(i), badCert(i), err)
			}
		case err != nil:
			t.Errorf("acceptance %d: %v", i, err)
		default:
			good++
		}
	}
	if blocks := l.Height() - h0; blocks >= uint64(good) {
		t.Errorf("%d acceptances took %d blocks: they were not batched", good, blocks)
	}
	ls, err := w.c.Licences(ctx, r.ID)
	if err != nil || len(ls) != good {
		t.Fatalf("%d licences, %v; want %d", len(ls), err, good)
	}
	if rep := mustVerify(t, l); rep.Transactions != tx0+int64(good) {
		t.Errorf("audit counted %d transactions, want %d", rep.Transactions, tx0+int64(good))
	}
}
