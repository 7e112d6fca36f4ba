package ledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medx/medx/ledger"
)

// openStudy posts and approves a request of sponsor-a for places
// participants at reward each, funding it first.
func openStudy(t *testing.T, w *world, reward ledger.Amount, places int64) ledger.Request {
	t.Helper()
	sp := w.sponsors[0]
	w.mustInvoke(w.op, ledger.FnMint, ledger.MintArgs{To: sp.ID, Amount: reward * ledger.Amount(places)})
	var r ledger.Request
	res := w.mustInvoke(sp, ledger.FnPostRequest, ledger.RequestDraft{Title: "t", Purpose: "p", Criteria: "c", Scope: []string{"labs"},
		RewardPerPatient: reward, MaxParticipants: places, LicenceSeconds: 86400})
	if err := json.Unmarshal(res, &r); err != nil {
		t.Fatal(err)
	}
	w.mustInvoke(w.board, ledger.FnApproveRequest, ledger.ApproveArgs{Request: r.ID, ApprovalTerms: ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1}})
	return r
}

// acceptBy has pseudonym pn accept r and returns the keys it wrote.
func acceptBy(w *world, r ledger.Request, pn ledger.Signer) ([]string, error) {
	_, err := w.call("accept", pn, ledger.FnAcceptOffer, ledger.Acceptance{
		Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
		PublicKey:   pn.Public(),
		Certificate: w.custs[0].Certify(r.ID, pn.Public()),
	})
	return slices.Clone(w.st.keys), err
}

// places returns the escrow places of r in the raw state, by key.
func places(t *testing.T, w *world, r ledger.RequestID) map[string]ledger.Amount {
	t.Helper()
	out := map[string]ledger.Amount{}
	prefix := "place/" + string(r) + "/"
	err := w.st.MemState.Range(prefix, prefix[:len(prefix)-1]+"0", func(k string, v []byte) (bool, error) {
		a, err := strconv.ParseInt(string(v), 10, 64)
		out[k] = ledger.Amount(a)
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEscrowPlacesLayout: posting spreads the budget over the escrow
// places, one per participant up to 256 keys, evenly beyond.
func TestEscrowPlacesLayout(t *testing.T) {
	for _, tc := range []struct {
		max       int64
		keys      int
		big, bigN int64 // the first bigN keys hold big places, the others big-1
	}{
		{1, 1, 1, 1},
		{7, 7, 1, 7},
		{256, 256, 1, 256},
		{257, 256, 2, 1},
		{1000, 256, 4, 1000 - 3*256},
	} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			w := newWorld(t, 1)
			r := openStudy(t, w, 3, tc.max)
			ps := places(t, w, r.ID)
			if got := ledger.EscrowPlaces(tc.max); got != tc.keys || len(ps) != tc.keys {
				t.Fatalf("EscrowPlaces(%d) = %d, %d keys in state; want %d", tc.max, got, len(ps), tc.keys)
			}
			for i := range tc.keys {
				k := fmt.Sprintf("place/%s/%04x", r.ID, i)
				want := 3 * ledger.Amount(tc.big)
				if int64(i) >= tc.bigN {
					want -= 3
				}
				if ps[k] != want {
					t.Errorf("%s holds %d, want %d", k, ps[k], want)
				}
			}
			// Each pseudonym's probe order visits every key once.
			for _, pn := range []string{"a", "b", "c", "d"} {
				seen := map[int]bool{}
				for j := range tc.keys {
					p := ledger.EscrowPlace(ledger.ParticipantID(pn), tc.max, j)
					if p < 0 || p >= tc.keys || seen[p] {
						t.Fatalf("EscrowPlace(%s, %d, %d) = %d: out of [0, %d) or seen", pn, tc.max, j, p, tc.keys)
					}
					seen[p] = true
				}
			}
			s, err := ledger.Tokens(w.st.MemState)
			if err != nil || s.Escrow != r.Budget || s.Minted != s.Balances+s.Escrow {
				t.Errorf("Tokens = %+v, %v; want the budget %d in escrow", s, err, r.Budget)
			}
		})
	}
}

// TestAcceptanceWriteSets: acceptances of one study write disjoint keys,
// none of them the request; each takes one reward from one place, the
// first non-empty one in its pseudonym's order (EscrowPlace); a full
// study refuses the next one with ErrState and writes nothing.
func TestAcceptanceWriteSets(t *testing.T) {
	const n = 5
	w := newWorld(t, 2)
	r := openStudy(t, w, 4, n)
	written := map[string]int{}
	taken := map[string]bool{}
	for i := range n {
		pn := pseudonym(fmt.Sprint("writes-", i))
		first := ledger.EscrowPlace(pn.ID, n, 0)
		before := places(t, w, r.ID)
		keys, err := acceptBy(w, r, pn)
		if err != nil {
			t.Fatalf("acceptance %d: %v", i, err)
		}
		// The place taken: the first non-empty one in pn's order.
		want := ""
		for j := range n {
			k := fmt.Sprintf("place/%s/%04x", r.ID, ledger.EscrowPlace(pn.ID, n, j))
			if before[k] > 0 {
				want = k
				break
			}
		}
		after := places(t, w, r.ID)
		if _, left := after[want]; left || !slices.Contains(keys, want) || taken[want] {
			t.Errorf("acceptance %d (first place %d): wrote %v; want it to consume %s", i, first, keys, want)
		}
		taken[want] = true
		for _, k := range keys {
			written[k]++
			if strings.HasPrefix(k, "req/") {
				t.Errorf("acceptance %d wrote the request record %s", i, k)
			}
		}
	}
	for k, c := range written {
		if c > 1 {
			t.Errorf("%s written by %d acceptances", k, c)
		}
	}
	var got ledger.Request
	if err := json.Unmarshal(w.query(ledger.FnGetRequest, r.ID), &got); err != nil {
		t.Fatal(err)
	}
	if got.Participants != n || got.Escrow != 0 || len(places(t, w, r.ID)) != 0 {
		t.Errorf("full study: %d participants, escrow %d, %d places; want %d, 0, 0", got.Participants, got.Escrow, len(places(t, w, r.ID)), n)
	}
	_, err := acceptBy(w, r, pseudonym("writes-late"))
	if want := fmt.Sprintf("accept %s: all %d places taken", r.ID, n); !errors.Is(err, ledger.ErrState) || !strings.Contains(err.Error(), want) {
		t.Errorf("acceptance of a full study: %v; want ErrState %q", err, want)
	}
}

// TestDecisionRefundsPlaces: closing and halting (expiring in ledgertest)
// refund what the places still hold to the sponsor, delete the places and
// record the participants; the record then shows no escrow.
func TestDecisionRefundsPlaces(t *testing.T) {
	for _, verb := range []string{"close", "halt"} {
		t.Run(verb, func(t *testing.T) {
			w := newWorld(t, 3)
			sp := w.sponsors[0]
			r := openStudy(t, w, 2, 300)
			for i := range 3 {
				if _, err := acceptBy(w, r, pseudonym(fmt.Sprint("refund-", i))); err != nil {
					t.Fatal(err)
				}
			}
			var bal ledger.Amount
			_ = json.Unmarshal(w.query(ledger.FnBalance, sp.ID), &bal)
			var res []byte
			if verb == "close" {
				res = w.mustInvoke(sp, ledger.FnCloseRequest, ledger.DecisionArgs{Request: r.ID})
			} else {
				res = w.mustInvoke(w.board, ledger.FnHaltRequest, ledger.DecisionArgs{Request: r.ID})
			}
			var got ledger.Request
			if err := json.Unmarshal(res, &got); err != nil {
				t.Fatal(err)
			}
			var after ledger.Amount
			_ = json.Unmarshal(w.query(ledger.FnBalance, sp.ID), &after)
			if got.Participants != 3 || got.Escrow != 0 || after-bal != 2*297 || len(places(t, w, r.ID)) != 0 {
				t.Errorf("%s: %d participants, escrow %d, refund %d, %d places left; want 3, 0, %d, 0",
					verb, got.Participants, got.Escrow, after-bal, len(places(t, w, r.ID)), 2*297)
			}
		})
	}
}
