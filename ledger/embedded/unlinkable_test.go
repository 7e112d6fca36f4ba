package embedded

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/medx/medx/ledger"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/hkdf"
)

// studyKey derives a patient's key for one study from the patient's
// secret seed, as exchange.Patient.StudyKey does.
func studyKey(t *testing.T, seed []byte, req ledger.RequestID) ledger.Signer {
	t.Helper()
	r := hkdf.New(sha256.New, seed, nil, []byte("medx/study-key/v1\x00"+string(req)))
	s := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, s); err != nil {
		t.Fatal(err)
	}
	k := ed25519.NewKeyFromSeed(s)
	return ledger.Signer{ID: ledger.PseudonymID(k.Public().(ed25519.PublicKey)), Key: k}
}

// footprint is what the ledger holds of one acceptance: the values that
// identify that pseudonym, in every encoding the file may hold them in.
type footprint struct {
	lic    ledger.Licence
	tokens [][]byte
}

func newFootprint(pn ledger.Signer, lic ledger.Licence, act ledger.Action, cert ledger.Certificate) footprint {
	var toks [][]byte
	add := func(b []byte) {
		toks = append(toks, b, []byte(hex.EncodeToString(b)), []byte(base64.StdEncoding.EncodeToString(b)))
	}
	add(pn.Public())
	add(cert.Signature)
	add(act.Sig)
	toks = append(toks, []byte(pn.ID), []byte(lic.ID), []byte(act.Nonce))
	return footprint{lic: lic, tokens: toks}
}

func (f footprint) in(b []byte) bool {
	for _, tok := range f.tokens {
		if bytes.Contains(b, tok) {
			return true
		}
	}
	return false
}

// TestPseudonymsAreUnlinkable has one patient join two studies, both
// certified by the same custodian, among other patients, and checks that
// nothing in the ledger file links the two licences: no stored entry and
// no block transaction holds identifying bytes of both, the patient's seed
// and record id appear nowhere, and the two licences share no field that
// two different patients' licences in the same studies would not share.
func TestPseudonymsAreUnlinkable(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openAt(t, path, testKey("node"), nil)
	w := newCast(t, l)
	sponsor2 := signer("globex-bio")
	if err := w.c.RegisterParticipant(ctx, w.op, ledger.Participant{ID: sponsor2.ID, Role: ledger.RoleSponsor, PublicKey: sponsor2.Public()}); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Mint(ctx, w.op, sponsor2.ID, 10_000); err != nil {
		t.Fatal(err)
	}
	r1 := w.openStudy(t, 20)
	r2, err := w.c.PostRequest(ctx, sponsor2, ledger.RequestDraft{Title: "Other", Purpose: "p", Criteria: "age > 50", Scope: []string{"demographics", "labs"},
		RewardPerPatient: 5, MaxParticipants: 20, LicenceSeconds: 3600 * 24 * 365})
	if err != nil {
		t.Fatal(err)
	}
	if r2, err = w.c.ApproveRequest(ctx, w.board, r2.ID, ledger.ApprovalTerms{MinCell: 5, EpsilonBudget: 1_000_000}); err != nil {
		t.Fatal(err)
	}

	// Alice's secrets: her wallet seed, and her record at the custodian.
	aliceSeed := sha256.Sum256([]byte("alice's wallet seed"))
	const aliceRecord = "MRN-0042-ALICE-SMITH"
	join := func(seed []byte, r ledger.Request) footprint {
		t.Helper()
		pn := studyKey(t, seed, r.ID)
		a := ledger.Acceptance{
			Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
			PublicKey:   pn.Public(),
			Certificate: w.cust.Certify(r.ID, pn.Public()),
		}
		act, err := pn.Sign(ledger.FnAcceptOffer, a)
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.c.SubmitAction(ctx, act)
		if err != nil {
			t.Fatal(err)
		}
		var lic ledger.Licence
		if err := json.Unmarshal(res, &lic); err != nil {
			t.Fatal(err)
		}
		return newFootprint(pn, lic, act, a.Certificate)
	}
	seedOf := func(name string) []byte { s := sha256.Sum256([]byte(name)); return s[:] }
	for i := range 4 { // others in both studies
		join(seedOf(fmt.Sprint("other-", i)), r1)
		join(seedOf(fmt.Sprint("other-", i)), r2)
	}
	alice1 := join(aliceSeed[:], r1)
	bob1 := join(seedOf("bob"), r1)
	alice2 := join(aliceSeed[:], r2)
	carol2 := join(seedOf("carol"), r2)
	// Alice acts under both pseudonyms: she revokes one licence and spends
	// from the other; a query uses her remaining licence.
	if _, err := w.c.RevokeLicence(ctx, studyKey(t, aliceSeed[:], r2.ID), alice2.lic.ID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Transfer(ctx, studyKey(t, aliceSeed[:], r1.ID), w.cust.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.AuthorizeQuery(ctx, w.sponsor, ledger.QueryDraft{Request: r1.ID, QueryHash: fmt.Sprintf("%064x", 1), Epsilon: 1000}); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Different pseudonyms, keys and certificates, each certificate over
	// its own key only.
	k1, k2 := studyKey(t, aliceSeed[:], r1.ID), studyKey(t, aliceSeed[:], r2.ID)
	if k1.ID == k2.ID || bytes.Equal(k1.Public(), k2.Public()) || alice1.lic.Patient == alice2.lic.Patient {
		t.Fatalf("the two studies gave the same pseudonym %s or key", k1.ID)
	}
	custPub := w.cust.Public()
	c1, c2 := w.cust.Certify(r1.ID, k1.Public()), w.cust.Certify(r2.ID, k2.Public())
	if !ed25519.Verify(custPub, ledger.CertificateBytes(r1.ID, k1.Public()), c1.Signature) ||
		ed25519.Verify(custPub, ledger.CertificateBytes(r2.ID, k2.Public()), c1.Signature) || bytes.Equal(c1.Signature, c2.Signature) {
		t.Error("a certificate verifies over the other study's key, or both are the same")
	}

	// No stored entry and no block transaction holds both footprints.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	items := fileItems(t, path)
	seen1, seen2 := 0, 0
	for _, it := range items {
		in1, in2 := alice1.in(it.data), alice2.in(it.data)
		if in1 && in2 {
			t.Errorf("%s holds identifying bytes of both of alice's pseudonyms", it.name)
		}
		if in1 {
			seen1++
		}
		if in2 {
			seen2++
		}
	}
	if seen1 < 4 || seen2 < 4 {
		t.Fatalf("the scan found alice's pseudonyms in only %d and %d of %d items: it is not looking", seen1, seen2, len(items))
	}

	// Her secrets, and a key made directly from her seed, appear nowhere.
	master := ed25519.NewKeyFromSeed(aliceSeed[:]).Public().(ed25519.PublicKey)
	for name, secret := range map[string][]byte{
		"seed": aliceSeed[:], "seed (hex)": []byte(hex.EncodeToString(aliceSeed[:])),
		"seed (base64)": []byte(base64.StdEncoding.EncodeToString(aliceSeed[:])), "record id": []byte(aliceRecord),
		"master key": master, "master key (base64)": []byte(base64.StdEncoding.EncodeToString(master)),
		"master pseudonym": []byte(ledger.PseudonymID(master)),
	} {
		if bytes.Contains(raw, secret) {
			t.Errorf("the ledger file contains alice's %s", name)
		}
		for _, it := range items {
			if bytes.Contains(it.data, secret) {
				t.Errorf("%s contains alice's %s", it.name, name)
			}
		}
	}

	// Every field alice's two records share, two different patients'
	// records in the same two studies share too.
	records := func(f footprint) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, it := range items {
			if it.kind == "state" && f.in(it.data) {
				var m map[string]any
				if json.Unmarshal(it.value, &m) == nil {
					out[it.prefix] = m
				}
			}
		}
		return out
	}
	shared := func(a, b footprint) []string {
		ra, rb := records(a), records(b)
		var s []string
		for prefix, ma := range ra {
			mb, ok := rb[prefix]
			if !ok {
				continue
			}
			for k, v := range ma {
				if reflect.DeepEqual(v, mb[k]) {
					s = append(s, prefix+"."+k)
				}
			}
		}
		sort.Strings(s)
		return s
	}
	same, control := shared(alice1, alice2), shared(bob1, carol2)
	inControl := map[string]bool{}
	for _, f := range control {
		inControl[f] = true
	}
	for _, f := range same {
		if !inControl[f] {
			t.Errorf("alice's two records share %s, which two different patients' records do not", f)
		}
	}
	if len(same) == 0 {
		t.Error("found no records to compare")
	}
	t.Logf("fields alice's records share: %v (as do bob's and carol's)", same)
}

// fileItem is one stored entry or block transaction of a ledger file.
type fileItem struct {
	name   string
	kind   string // "state", "meta", "tx"
	prefix string // state key type ("part", "lic", ...)
	data   []byte // key and value (or every field of a transaction)
	value  []byte // state value without its MAC
}

// fileItems reads every entry of every bucket and every transaction of
// every block of a closed ledger file.
func fileItems(t *testing.T, path string) []fileItem {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var items []fileItem
	err = db.View(func(tx *bolt.Tx) error {
		_ = tx.Bucket([]byte(bucketState)).ForEach(func(k, v []byte) error {
			prefix, _, _ := bytes.Cut(k, []byte("/"))
			items = append(items, fileItem{name: "state " + string(k), kind: "state", prefix: string(prefix),
				data: append(bytes.Clone(k), v...), value: bytes.Clone(v[macSize:])})
			return nil
		})
		_ = tx.Bucket([]byte(bucketMeta)).ForEach(func(k, v []byte) error {
			items = append(items, fileItem{name: "meta " + string(k), kind: "meta", data: append(bytes.Clone(k), v...)})
			return nil
		})
		return tx.Bucket([]byte(bucketBlocks)).ForEach(func(k, v []byte) error {
			b, err := decodeBlock(v)
			if err != nil {
				return err
			}
			for _, x := range b.Txs {
				data := []byte(x.ID + x.Fn)
				for _, a := range x.Args {
					data = append(data, a...)
				}
				data = append(data, x.Result...)
				if x.Event != nil {
					data = append(append(data, x.Event.Name...), x.Event.Payload...)
				}
				// The block's own JSON holds the same bytes in base64.
				enc, _ := json.Marshal(x)
				data = append(data, enc...)
				items = append(items, fileItem{name: fmt.Sprintf("block %d tx %s (%s)", b.Height, x.ID, x.Fn), kind: "tx", data: data})
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}
