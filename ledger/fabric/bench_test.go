package fabric_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/embedded"
	"github.com/medx/medx/ledger/fabric/fabrictest"
)

// BenchmarkContractTx runs the same workload, MedToken transfers from
// benchWorkers concurrent clients each between its own two accounts (no
// conflicts), on the embedded ledger and through fabric-gateway on
// fabrictest (chaincode in-process and as a service), in one run, and
// reports each one's transactions per second and the ratio to embedded.
//
//	go test ./ledger/fabric -run '^$' -bench ContractTx -benchtime 2000x
func BenchmarkContractTx(b *testing.B) {
	seed := sha256.Sum256([]byte("medx/bench/node"))
	backends := []struct {
		name string
		open func(b *testing.B) ledger.Backend
	}{
		{"embedded", func(b *testing.B) ledger.Backend {
			l, err := embedded.Open(filepath.Join(b.TempDir(), "ledger.db"), ed25519.NewKeyFromSeed(seed[:]), embedded.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Close() })
			return l
		}},
		{"fabrictest", func(b *testing.B) ledger.Backend { return benchFabric(b, false) }},
		{"fabrictest-ccaas", func(b *testing.B) ledger.Backend { return benchFabric(b, true) }},
	}
	rates := map[string]float64{}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			c := ledger.NewClient(be.open(b))
			pairs := benchSetup(b, c)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, len(pairs))
			for w, p := range pairs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < b.N; i += len(pairs) {
						if err := c.Transfer(context.Background(), p[0], p[1].ID, 1); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			rates[be.name] = rate
			b.ReportMetric(rate, "tx/s")
			if base, ok := rates["embedded"]; ok && be.name != "embedded" {
				b.ReportMetric(rate/base, "x-embedded")
			}
		})
	}
}

const benchWorkers = 16

func benchFabric(b *testing.B, ccaas bool) ledger.Backend {
	n := startNetwork(b, fabrictest.Options{CCaaS: ccaas, Logf: func(string, ...any) {}})
	return open(b, n, config(b, n, n.User), nil)
}

// benchSetup registers and funds benchWorkers pairs of accounts.
func benchSetup(b *testing.B, c *ledger.Client) [][2]ledger.Signer {
	ctx := context.Background()
	op := signer("operator")
	if err := c.Bootstrap(ctx, op, "bench"); err != nil {
		b.Fatal(err)
	}
	pairs := make([][2]ledger.Signer, benchWorkers)
	for i := range pairs {
		for j := range 2 {
			s := signer(fmt.Sprintf("acct-%d-%d", i, j))
			if err := c.RegisterParticipant(ctx, op, ledger.Participant{ID: s.ID, Role: ledger.RoleSponsor, PublicKey: s.Public()}); err != nil {
				b.Fatal(err)
			}
			pairs[i][j] = s
		}
		if err := c.Mint(ctx, op, pairs[i][0].ID, 1<<40); err != nil {
			b.Fatal(err)
		}
	}
	return pairs
}

// BenchmarkAcceptOffer submits b.N acceptances of one study from
// benchWorkers concurrent clients through fabric-gateway on fabrictest and
// reports acceptances per second and the read conflicts (each one a
// retried transaction) per acceptance: with the escrow in per-place keys,
// acceptances of one study meet on a key only when their places do.
//
//	go test ./ledger/fabric -run '^$' -bench AcceptOffer -benchtime 2000x
func BenchmarkAcceptOffer(b *testing.B) {
	ctx := context.Background()
	n := startNetwork(b, fabrictest.Options{Logf: func(string, ...any) {}})
	l := open(b, n, config(b, n, n.User), nil)
	c := ledger.NewClient(l)
	op, sponsor, board, cust := signer("operator"), signer("acme-pharma"), signer("board"), signer("st-marys")
	if err := c.Bootstrap(ctx, op, "bench"); err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct {
		s    ledger.Signer
		role ledger.Role
	}{{sponsor, ledger.RoleSponsor}, {board, ledger.RoleEthicsBoard}, {cust, ledger.RoleCustodian}} {
		if err := c.RegisterParticipant(ctx, op, ledger.Participant{ID: p.s.ID, Role: p.role, PublicKey: p.s.Public()}); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Mint(ctx, op, sponsor.ID, ledger.Amount(b.N)); err != nil {
		b.Fatal(err)
	}
	r, err := c.PostRequest(ctx, sponsor, ledger.RequestDraft{Title: "Bench", Purpose: "throughput", Criteria: "age > 18",
		Scope: []string{"labs"}, RewardPerPatient: 1, MaxParticipants: int64(b.N), LicenceSeconds: 3600})
	if err != nil {
		b.Fatal(err)
	}
	if r, err = c.ApproveRequest(ctx, board, r.ID, ledger.ApprovalTerms{MinCell: 1, EpsilonBudget: 1}); err != nil {
		b.Fatal(err)
	}
	args := make([][]byte, b.N)
	for i := range args {
		seed := sha256.Sum256(fmt.Appendf(nil, "medx/bench/pseudonym/%d", i))
		k := ed25519.NewKeyFromSeed(seed[:])
		pn := ledger.Signer{ID: ledger.PseudonymID(k.Public().(ed25519.PublicKey)), Key: k}
		a, err := pn.Sign(ledger.FnAcceptOffer, ledger.Acceptance{
			Terms:     ledger.LicenceTerms{Request: r.ID, Scope: r.Scope, LicenceSeconds: r.LicenceSeconds, Reward: r.RewardPerPatient},
			PublicKey: pn.Public(), Certificate: cust.Certify(r.ID, pn.Public()),
		})
		if err != nil {
			b.Fatal(err)
		}
		if args[i], err = json.Marshal(a); err != nil {
			b.Fatal(err)
		}
	}
	var conflicts atomic.Int64
	var next atomic.Int64
	errs := make(chan error, benchWorkers)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
				rc, err := l.SubmitTx(ctx, ledger.FnAcceptOffer, args[i])
				if err != nil {
					errs <- err
					return
				}
				conflicts.Add(int64(len(rc.Conflicts)))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "accepts/s")
	b.ReportMetric(float64(conflicts.Load())/float64(b.N), "conflicts/accept")
}
