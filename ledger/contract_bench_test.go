package ledger_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
)

// BenchmarkContractAccept measures the contract's own CPU per licence
// acceptance: Prepare and InvokePrepared over a MemState, with every
// signature verified ahead (outside the timer) and passed as Verified, as the
// embedded backend applies transactions. It runs the zero Contract and
// one from NewContract (which remembers decoded records).
func BenchmarkContractAccept(b *testing.B) {
	b.Run("zero", func(b *testing.B) { benchContractAccept(b, ledger.Contract{}) })
	b.Run("cached", func(b *testing.B) { benchContractAccept(b, ledger.NewContract()) })
}

func benchContractAccept(b *testing.B, ct ledger.Contract) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := ledger.NewMemState()
	step := 0
	txc := func() ledger.TxContext {
		step++
		sum := sha256.Sum256(fmt.Appendf(nil, "bench/tx/%d", step))
		return ledger.TxContext{TxID: hex.EncodeToString(sum[:]), Timestamp: now, Submitter: "bench"}
	}
	must := func(s ledger.Signer, fn string, payload any) []byte {
		b.Helper()
		act, err := s.Sign(fn, payload)
		if err != nil {
			b.Fatal(err)
		}
		arg, err := json.Marshal(act)
		if err != nil {
			b.Fatal(err)
		}
		res, _, err := ct.Invoke(txc(), st, fn, [][]byte{arg})
		if err != nil {
			b.Fatalf("%s: %v", fn, err)
		}
		return res
	}
	op, sp, board, cust := signer("operator"), signer("sponsor-a"), signer("board"), signer("cust-a")
	must(op, ledger.FnBootstrap, ledger.BootstrapArgs{ID: op.ID, Name: "op", PublicKey: op.Public()})
	for _, p := range []struct {
		s    ledger.Signer
		role ledger.Role
	}{{sp, ledger.RoleSponsor}, {board, ledger.RoleEthicsBoard}, {cust, ledger.RoleCustodian}} {
		must(op, ledger.FnRegisterParticipant, ledger.Registration{ID: p.s.ID, Role: p.role, PublicKey: p.s.Public()})
	}
	must(op, ledger.FnMint, ledger.MintArgs{To: sp.ID, Amount: 1 << 40})
	var r ledger.Request
	res := must(sp, ledger.FnPostRequest, ledger.RequestDraft{Title: "Bench", Purpose: "throughput", Criteria: "age > 18",
		Scope: []string{"demographics", "labs"}, RewardPerPatient: 1, MaxParticipants: int64(b.N) + 1, LicenceSeconds: 86400 * 365})
	if err := json.Unmarshal(res, &r); err != nil {
		b.Fatal(err)
	}
	must(board, ledger.FnApproveRequest, ledger.ApproveArgs{Request: r.ID, ApprovalTerms: ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1}})

	args := make([][]byte, b.N)
	txs := make([]ledger.TxContext, b.N)
	keys := map[ledger.ParticipantID]ed25519.PublicKey{cust.ID: cust.Public()}
	for i := range args {
		pn := pseudonym(fmt.Sprintf("bench/%d", i))
		act, err := pn.Sign(ledger.FnAcceptOffer, ledger.Acceptance{
			Terms:       ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
			PublicKey:   pn.Public(),
			Certificate: cust.Certify(r.ID, pn.Public()),
		})
		if err != nil {
			b.Fatal(err)
		}
		if args[i], err = json.Marshal(act); err != nil {
			b.Fatal(err)
		}
		sigs := ct.Signatures(ledger.FnAcceptOffer, [][]byte{args[i]}, func(id ledger.ParticipantID) ed25519.PublicKey { return keys[id] })
		txs[i] = txc()
		txs[i].Sigs = ledger.VerifiedOf(sigs, ledger.VerifySignatures(sigs))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := ct.InvokePrepared(txs[i], st, ct.Prepare(ledger.FnAcceptOffer, [][]byte{args[i]})); err != nil {
			b.Fatalf("accept %d: %v", i, err)
		}
	}
}
