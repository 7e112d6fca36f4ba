package fabric_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
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
