package fabric_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
	"github.com/medx/medx/ledger/fabric/chaincode"
	"github.com/medx/medx/ledger/fabric/fabrictest"
	"github.com/medx/medx/ledger/ledgertest"
	"google.golang.org/grpc"
)

// startNetwork starts fabrictest running the MedX chaincode.
func startNetwork(t testing.TB, opts fabrictest.Options) *fabrictest.Network {
	t.Helper()
	cc, err := chaincode.New()
	if err != nil {
		t.Fatal(err)
	}
	return fabrictest.Start(t, cc, opts)
}

// config writes the network's user identity (and TLS root) to files and
// returns a config naming them, as an operator's file would.
func config(t testing.TB, n *fabrictest.Network, user *fabrictest.Identity) fabric.Config {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("msp/signcerts/cert.pem", user.CertPEM)
	write("msp/keystore/priv_sk", user.KeyPEM)
	return fabric.Config{
		PeerEndpoint:          n.Target(),
		TLS:                   n.TLS(),
		TLSCACert:             write("tls/ca.crt", n.TLSCA.CertPEM),
		TLSServerNameOverride: n.ServerName,
		MSPID:                 user.MSPID,
		Cert:                  filepath.Join(dir, "msp", "signcerts"),
		PrivateKey:            filepath.Join(dir, "msp", "keystore"),
		Channel:               n.Channel,
		Chaincode:             n.Chaincode,
		Timeouts:              fabric.Timeouts{CommitStatus: fabric.Duration(30 * time.Second)},
	}
}

// open opens the backend on n as its user.
func open(t testing.TB, n *fabrictest.Network, cfg fabric.Config, clock func() time.Time) *fabric.Ledger {
	t.Helper()
	l, err := fabric.Open(cfg, fabric.Options{Clock: clock, DialOptions: []grpc.DialOption{n.DialOption()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestConformance runs the conformance suite on the Fabric backend over
// fabrictest, with the chaincode in-process and as a service.
func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name  string
		ccaas bool
	}{{"InProc", false}, {"CCaaS", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.Run(t, func(t *testing.T, clock func() time.Time) ledger.Backend {
				n := startNetwork(t, fabrictest.Options{CCaaS: mode.ccaas, TLS: true})
				return open(t, n, config(t, n, n.User), clock)
			})
		})
	}
}

// TestRealPeer runs the suite against a real gateway peer when
// MEDX_FABRIC_CONFIG names a config file (see docs/fabric.md). Every
// subtest needs an empty ledger: MEDX_FABRIC_CHAINCODES lists freshly
// committed chaincode names, one per subtest (without it, only the first
// subtest runs, on the config's chaincode).
func TestRealPeer(t *testing.T) {
	path := os.Getenv("MEDX_FABRIC_CONFIG")
	if path == "" {
		t.Skip("MEDX_FABRIC_CONFIG not set: no real Fabric peer to test against")
	}
	cfg, err := fabric.ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{cfg.Chaincode}
	if s := os.Getenv("MEDX_FABRIC_CHAINCODES"); s != "" {
		names = strings.Split(s, ",")
	}
	var mu sync.Mutex
	ledgertest.Run(t, func(t *testing.T, clock func() time.Time) ledger.Backend {
		mu.Lock()
		if len(names) == 0 {
			mu.Unlock()
			t.Skip("no fresh chaincode left in MEDX_FABRIC_CHAINCODES")
		}
		c := cfg
		c.Chaincode, names = strings.TrimSpace(names[0]), names[1:]
		mu.Unlock()
		l, err := fabric.Open(c, fabric.Options{Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}
