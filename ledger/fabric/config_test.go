package fabric_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medx/medx/ledger/fabric"
)

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "fabric.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := fabric.ReadConfig(write(`{"peer_endpoint": "dns:///localhost:7051", "tls_enabled": true, "tls_ca_cert": "tls/ca.crt",
		"msp_id": "Org1MSP", "cert": "/abs/signcerts", "private_key": "msp/keystore", "channel": "mychannel", "chaincode": "medx",
		"timeouts": {"endorse": "15s", "commit_status": "1m"}, "event_checkpoint_file": "events.chk"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSCACert != filepath.Join(dir, "tls/ca.crt") || c.Cert != "/abs/signcerts" || c.EventCheckpointFile != filepath.Join(dir, "events.chk") {
		t.Errorf("paths not made relative to the file: %+v", c)
	}
	if time.Duration(c.Timeouts.Endorse) != 15*time.Second || time.Duration(c.Timeouts.CommitStatus) != time.Minute {
		t.Errorf("timeouts %+v", c.Timeouts)
	}
	tests := []struct {
		name, body, want string
	}{
		{"missing fields", `{"peer_endpoint": "x"}`, "missing msp_id, cert, private_key, channel, chaincode"},
		{"tls without root", `{"peer_endpoint": "x", "msp_id": "m", "cert": "c", "private_key": "k", "channel": "ch", "chaincode": "cc", "tls_enabled": true}`, "tls_ca_cert"},
		{"half mTLS", `{"peer_endpoint": "x", "msp_id": "m", "cert": "c", "private_key": "k", "channel": "ch", "chaincode": "cc", "tls_client_cert": "a"}`, "tls_client_cert and tls_client_key"},
		{"unknown field", `{"peer": "x"}`, "unknown field"},
		{"bad duration", `{"timeouts": {"endorse": "soon"}}`, "duration"},
		{"negative attempts", `{"peer_endpoint": "x", "msp_id": "m", "cert": "c", "private_key": "k", "channel": "ch", "chaincode": "cc", "max_attempts": -1}`, "max_attempts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := fabric.ReadConfig(write(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadConfig(%s) = %v, want an error with %q", tc.body, err, tc.want)
			}
		})
	}
	if _, err := fabric.ReadConfig(filepath.Join(dir, "none.json")); err == nil {
		t.Error("ReadConfig of a missing file succeeded")
	}
}
