package fabric_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
	"github.com/medx/medx/ledger/fabric/fabrictest"
)

// study is a world with an ethics board and a custodian, and one open
// request of alice's (funded with 10000 more MedTokens) for places
// participants.
type study struct {
	*world
	board, cust ledger.Signer
	req         ledger.Request
}

func newStudy(t *testing.T, places int64) *study {
	t.Helper()
	s := &study{world: newWorld(t, fabrictest.Options{}), board: signer("board"), cust: signer("st-marys")}
	ctx := t.Context()
	must(t, s.c.RegisterParticipant(ctx, s.op, ledger.Participant{ID: s.board.ID, Role: ledger.RoleEthicsBoard, PublicKey: s.board.Public()}))
	must(t, s.c.RegisterParticipant(ctx, s.op, ledger.Participant{ID: s.cust.ID, Role: ledger.RoleCustodian, PublicKey: s.cust.Public()}))
	must(t, s.c.Mint(ctx, s.op, s.alice.ID, 10_000))
	r, err := s.c.PostRequest(ctx, s.alice, ledger.RequestDraft{
		Title: "Hot study", Purpose: "many patients at once", Criteria: "age > 18", Scope: []string{"labs"},
		RewardPerPatient: 3, MaxParticipants: places, LicenceSeconds: 3600,
	})
	must(t, err)
	s.req, err = s.c.ApproveRequest(ctx, s.board, r.ID, ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1})
	must(t, err)
	return s
}

// pseudonymNo returns the i-th test pseudonym.
func pseudonymNo(i int) ledger.Signer {
	seed := sha256.Sum256(fmt.Appendf(nil, "medx/fabric_test/pseudonym/%d", i))
	k := ed25519.NewKeyFromSeed(seed[:])
	return ledger.Signer{ID: ledger.PseudonymID(k.Public().(ed25519.PublicKey)), Key: k}
}

// pseudonymsAt returns one pseudonym per wanted first place, in order.
func (s *study) pseudonymsAt(t *testing.T, places []int) []ledger.Signer {
	t.Helper()
	out := make([]ledger.Signer, len(places))
	used := map[int]bool{}
	for k, p := range places {
		for i := 0; out[k].Key == nil; i++ {
			if i > 100_000 {
				t.Fatalf("no pseudonym with first place %d", p)
			}
			if pn := pseudonymNo(i); !used[i] && ledger.EscrowPlace(pn.ID, s.req.MaxParticipants, 0) == p {
				out[k], used[i] = pn, true
			}
		}
	}
	return out
}

// acceptArg is pn's signed acceptance of the study, certified by its custodian.
func (s *study) acceptArg(t *testing.T, pn ledger.Signer) []byte {
	t.Helper()
	r := s.req
	a, err := pn.Sign(ledger.FnAcceptOffer, ledger.Acceptance{
		Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
		PublicKey:   pn.Public(),
		Certificate: s.cust.Certify(r.ID, pn.Public()),
	})
	must(t, err)
	b, err := json.Marshal(a)
	must(t, err)
	return b
}

// acceptInOneBlock endorses every pseudonym's acceptance before any of
// them is ordered, so that the first attempts share one block, and
// returns each one's receipt and error.
func (s *study) acceptInOneBlock(t *testing.T, pns []ledger.Signer) ([]fabric.Receipt, []error) {
	t.Helper()
	ctx := t.Context()
	args := make([][]byte, len(pns))
	for i, pn := range pns {
		args[i] = s.acceptArg(t, pn)
	}
	receipts := make([]fabric.Receipt, len(pns))
	errs := make([]error, len(pns))
	s.n.Pause()
	var wg sync.WaitGroup
	for i := range args {
		wg.Add(1)
		go func() {
			defer wg.Done()
			receipts[i], errs[i] = s.l.SubmitTx(ctx, ledger.FnAcceptOffer, args[i])
		}()
	}
	must(t, s.n.WaitPending(ctx, len(args)))
	s.n.Resume()
	wg.Wait()
	return receipts, errs
}

// check compares the study as read back with want licences granted and
// checks MedToken conservation.
func (s *study) check(t *testing.T, want int64) {
	t.Helper()
	ctx := t.Context()
	r, err := s.c.Request(ctx, s.req.ID)
	must(t, err)
	ls, err := s.c.Licences(ctx, s.req.ID)
	must(t, err)
	escrow := s.req.RewardPerPatient * ledger.Amount(s.req.MaxParticipants-want)
	if r.Participants != want || r.Escrow != escrow || int64(len(ls)) != want {
		t.Errorf("study: %d participants, escrow %d, %d licences; want %d, %d, %d", r.Participants, r.Escrow, len(ls), want, escrow, want)
	}
	tok, err := s.c.Tokens(ctx)
	must(t, err)
	if tok.Minted != tok.Balances+tok.Escrow || tok.Escrow != escrow {
		t.Errorf("tokens %+v: want minted = balances + escrow, escrow %d", tok, escrow)
	}
}

// TestAcceptancesShareNoKey puts concurrent acceptances of one study into
// one block. The request record is read, not written, and each acceptance
// consumes one escrow place, the first non-empty one in its pseudonym's
// order (EscrowPlace): with distinct first places none conflicts; a pair
// sharing a first place costs one conflict (the later one retries and
// probes on), where one request-wide escrow key would cost one conflict
// per acceptance but one.
func TestAcceptancesShareNoKey(t *testing.T) {
	for _, tc := range []struct {
		name      string
		places    int64
		first     []int // each acceptance's first place
		conflicts int
	}{
		{"distinct places", 8, []int{0, 1, 2, 3, 4, 5, 6, 7}, 0},
		{"one clash", 8, []int{0, 1, 2, 3, 4, 5, 2}, 1},
		{"shared keys", 1000, []int{7, 8, 9, 10, 11, 100, 200, 255}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStudy(t, tc.places)
			pns := s.pseudonymsAt(t, tc.first)
			receipts, errs := s.acceptInOneBlock(t, pns)
			conflicts := 0
			blocks := map[uint64]bool{}
			for i, r := range receipts {
				if errs[i] != nil {
					t.Fatalf("acceptance %d: %v", i, errs[i])
				}
				for _, c := range r.Conflicts {
					if c.Code != peer.TxValidationCode_MVCC_READ_CONFLICT {
						t.Errorf("acceptance %d: conflict %v, want MVCC_READ_CONFLICT", i, c)
					}
				}
				conflicts += len(r.Conflicts)
				if len(r.Conflicts) == 0 {
					blocks[r.Block] = true
				}
			}
			if conflicts != tc.conflicts || len(blocks) != 1 {
				t.Errorf("%d acceptances: %d conflicts, first attempts committed in %d blocks; want %d conflicts, one block",
					len(pns), conflicts, len(blocks), tc.conflicts)
			}
			s.check(t, int64(len(pns)))
		})
	}
}

// TestLastPlaceNotOversold has more patients than places accept at once,
// in one block: exactly the places are granted, the others are refused as
// full (after the backend's retries), and the escrow is spent exactly.
func TestLastPlaceNotOversold(t *testing.T) {
	const places, patients = 3, 10
	s := newStudy(t, places)
	pns := make([]ledger.Signer, patients)
	for i := range pns {
		pns[i] = pseudonymNo(1000 + i)
	}
	_, errs := s.acceptInOneBlock(t, pns)
	granted, full := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			granted++
		case errors.Is(err, ledger.ErrState):
			full++
		default:
			t.Errorf("acceptance %d: %v", i, err)
		}
	}
	if granted != places || full != patients-places {
		t.Errorf("%d granted, %d refused as full; want %d and %d", granted, full, places, patients-places)
	}
	s.check(t, places)
	// Once full, a late patient is refused as today.
	_, err := s.l.Submit(t.Context(), ledger.FnAcceptOffer, s.acceptArg(t, pseudonymNo(5000)))
	if want := fmt.Sprintf("accept %s: all %d places taken", s.req.ID, places); !errors.Is(err, ledger.ErrState) || !strings.Contains(err.Error(), want) {
		t.Errorf("acceptance of a full study: %v; want ErrState %q", err, want)
	}
	// Closing the full study refunds nothing and keeps the participants.
	before := s.balance(t, s.alice)
	r, err := s.c.CloseRequest(t.Context(), s.alice, s.req.ID, "done")
	must(t, err)
	if r.Participants != places || r.Escrow != 0 {
		t.Errorf("closed: %d participants, escrow %d; want %d, 0", r.Participants, r.Escrow, places)
	}
	if got := s.balance(t, s.alice); got != before {
		t.Errorf("sponsor balance %d after closing a full study, want %d", got, before)
	}
}
