package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/peer"

	"github.com/medx/medx/exchange/client"
	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric/chaincode"
	"github.com/medx/medx/ledger/fabric/fabrictest"
)

// TestServeOnFabric runs 'medx serve --ledger fabric --fabric-config FILE'
// against a fabrictest peer on a TCP port, configured by file as an
// operator would (TLS root, MSP signcerts and keystore directories), and
// posts a request over HTTP: it lands on the Fabric ledger.
func TestServeOnFabric(t *testing.T) {
	cc, err := chaincode.New()
	if err != nil {
		t.Fatal(err)
	}
	n := fabrictest.Start(t, cc, fabrictest.Options{Address: "127.0.0.1:0", TLS: true})
	cfgDir := t.TempDir()
	for name, b := range map[string][]byte{
		"tls/ca.crt": n.TLSCA.CertPEM, "msp/signcerts/cert.pem": n.User.CertPEM, "msp/keystore/key_sk": n.User.KeyPEM,
	} {
		if err := writeFile(filepath.Join(cfgDir, name), b); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := json.Marshal(map[string]any{
		"peer_endpoint": n.Target(), "tls_enabled": true, "tls_ca_cert": "tls/ca.crt", "tls_server_name_override": n.ServerName,
		"msp_id": n.MSPID, "cert": "msp/signcerts", "private_key": "msp/keystore", "channel": n.Channel, "chaincode": n.Chaincode,
		"timeouts": map[string]string{"commit_status": "30s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(cfgDir, "fabric.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dir := t.TempDir()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dir", dir, "--addr", "127.0.0.1:0", "--patients", "300", "--log", "error",
			"--ledger", "fabric", "--fabric-config", cfgFile}, func(string) string { return "" }, &out, &bytes.Buffer{})
	}()
	listening := regexp.MustCompile(`listening on (http://[0-9.:]+)`)
	var base string
	for deadline := time.Now().Add(60 * time.Second); base == ""; {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
	}
	var tok string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "token" && f[1] == string(ledger.RoleSponsor) {
			tok = f[3]
		}
	}
	before := len(n.Transactions())
	r, err := client.New(base, tok, nil).PostRequest(ctx, ledger.RequestDraft{Title: "T2D", Purpose: "Plan a trial.", Criteria: demoCriteria,
		Scope: []string{"demographics", "conditions", "labs"}, RewardPerPatient: 5, MaxParticipants: 10, LicenceSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	txs := n.Transactions()
	if len(txs) != before+1 || txs[len(txs)-1].Code != peer.TxValidationCode_VALID || before < 5 {
		t.Errorf("Fabric ledger: %d transactions before the post (want the demo cast), %d after; last %+v", before, len(txs), txs[len(txs)-1])
	}
	if r.Status != ledger.StatusPending || r.Escrow != 50 {
		t.Errorf("posted request %+v, want pending with escrow 50", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
