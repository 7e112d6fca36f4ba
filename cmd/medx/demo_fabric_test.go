package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
	"github.com/medx/medx/ledger/fabric/chaincode"
	"github.com/medx/medx/ledger/fabric/fabrictest"
	"google.golang.org/grpc"
)

// fabrictestLedger opens the Fabric backend on a new fabrictest network
// running the MedX chaincode as a service.
func fabrictestLedger(t *testing.T) ledgerOpener {
	return func(ctx context.Context, log *slog.Logger) (ledger.Backend, error) {
		cc, err := chaincode.New()
		if err != nil {
			return nil, err
		}
		n := fabrictest.Start(t, cc, fabrictest.Options{CCaaS: true})
		cfg := fabric.Config{PeerEndpoint: n.Target(), MSPID: n.MSPID, Cert: string(n.User.CertPEM), PrivateKey: string(n.User.KeyPEM),
			Channel: n.Channel, Chaincode: n.Chaincode}
		return fabric.Open(cfg, fabric.Options{Logger: log, DialOptions: []grpc.DialOption{n.DialOption()}})
	}
}

// TestStoryOnFabric tells the demo's story on the Fabric backend (over
// fabrictest) and on the embedded ledger with the same seed: the same
// patients accept, the decrypted results and the MedToken books agree.
func TestStoryOnFabric(t *testing.T) {
	ctx := t.Context()
	tell := func(o demoOptions) (*site, *story) {
		t.Helper()
		s, err := createDemoSite(ctx, o, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		var out bytes.Buffer
		st, err := tellStory(ctx, s, o, &out)
		if err != nil {
			t.Fatalf("story: %v\n%s", err, out.String())
		}
		return s, st
	}
	o := storyOptions(t, 7, false)
	o.patients = 1200
	es, est := tell(o)
	o.dir = t.TempDir()
	o.ledger = fabrictestLedger(t)
	fs, fst := tell(o)
	if _, ok := fs.backend.(*fabric.Ledger); !ok || fs.led != nil {
		t.Fatalf("story ran on %T, want the Fabric backend", fs.backend)
	}
	if got, want := fingerprint(fs, fst), fingerprint(es, est); got != want || len(fst.accepted) == 0 {
		t.Errorf("who accepted on which terms: fabric %s, embedded %s (%d accepted)", got, want, len(fst.accepted))
	}
	if diff := cmp.Diff(est.tables, fst.tables); diff != "" {
		t.Errorf("decrypted results (-embedded +fabric):\n%s", diff)
	}
	if diff := cmp.Diff(est.tokens, fst.tokens); diff != "" {
		t.Errorf("MedToken books after each step (-embedded +fabric):\n%s", diff)
	}
	for i := range est.results {
		if e, f := est.results[i].Record.Licences, fst.results[i].Record.Licences; e != f {
			t.Errorf("query %d used %d licences on fabric, %d on embedded", i, f, e)
		}
	}
	ea, fa := est.audit, fst.audit
	if ea.Requests != fa.Requests || ea.LicencesActive != fa.LicencesActive || ea.LicencesRevoked != fa.LicencesRevoked ||
		ea.Queries != fa.Queries || ea.Tokens != fa.Tokens || est.late != fst.late {
		t.Errorf("audit (embedded %+v, late %d) != (fabric %+v, late %d)", ea, est.late, fa, fst.late)
	}
}
