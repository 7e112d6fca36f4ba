package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/ledger"
	"github.com/medx/medx/ledger/fabric"
	"github.com/medx/medx/ledger/fabric/fabrictest"
	"google.golang.org/grpc"
)

// TestChaincodeServer runs 'medx chaincode' as a service on a loopback
// port, has a fabrictest peer dial it as a peer with the ccaas builder
// does, and runs transactions through it with the Fabric backend.
func TestChaincodeServer(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	env := map[string]string{"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0", "CORE_CHAINCODE_ID_NAME": "medx_1.0:abc123"}
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"chaincode", "--log", "error"}, func(k string) string { return env[k] }, &out, &bytes.Buffer{})
	}()
	serving := regexp.MustCompile(`serving chaincode medx_1.0:abc123 on ([0-9.:]+)`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; {
		if m := serving.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("medx chaincode ended early: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("medx chaincode did not start:\n%s", out.String())
		}
	}
	n := fabrictest.Start(t, nil, fabrictest.Options{ChaincodeAddress: addr})
	cfg := fabric.Config{PeerEndpoint: n.Target(), MSPID: n.MSPID, Cert: string(n.User.CertPEM), PrivateKey: string(n.User.KeyPEM),
		Channel: n.Channel, Chaincode: n.Chaincode}
	l, err := fabric.Open(cfg, fabric.Options{DialOptions: []grpc.DialOption{n.DialOption()}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := ledger.NewClient(l)
	seed := sha256.Sum256([]byte("operator"))
	op := ledger.Signer{ID: "operator", Key: ed25519.NewKeyFromSeed(seed[:])}
	if err := c.Bootstrap(ctx, op, "MedX"); err != nil {
		t.Fatal(err)
	}
	if ps, err := c.Participants(ctx); err != nil || len(ps) != 1 || ps[0].ID != op.ID {
		t.Fatalf("Participants = %v, %v; want the operator", ps, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("medx chaincode: %v", err)
	}
}

func TestChaincodeServerConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no address", map[string]string{"CORE_CHAINCODE_ID_NAME": "x"}, "CHAINCODE_SERVER_ADDRESS"},
		{"no id", map[string]string{"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0"}, "CORE_CHAINCODE_ID_NAME"},
		{"tls without key", map[string]string{"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0", "CORE_CHAINCODE_ID_NAME": "x", "CORE_PEER_TLS_ENABLED": "true"}, "CORE_TLS_CLIENT_KEY_FILE"},
		{"bad bool", map[string]string{"CHAINCODE_SERVER_ADDRESS": "127.0.0.1:0", "CORE_CHAINCODE_ID_NAME": "x", "CORE_PEER_TLS_ENABLED": "yes please"}, "CORE_PEER_TLS_ENABLED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(t.Context(), []string{"chaincode"}, func(k string) string { return tc.env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("medx chaincode with %v: %v, want an error naming %s", tc.env, err, tc.want)
			}
		})
	}
}
