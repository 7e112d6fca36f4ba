package fabric

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is how the backend reaches a Fabric gateway peer and who it is
// there. It is read from a JSON file (ReadConfig); certificate and key
// fields take a PEM value, a file, or a directory holding one file (an MSP
// signcerts/ or keystore/ folder). Relative paths are relative to the file.
type Config struct {
	PeerEndpoint string `json:"peer_endpoint"` // "dns:///localhost:7051"
	TLS          bool   `json:"tls_enabled"`
	TLSCACert    string `json:"tls_ca_cert"` // the peer's TLS root
	// TLSServerNameOverride is the name in the peer's TLS certificate,
	// when dialling it by another name (localhost, an IP).
	TLSServerNameOverride string `json:"tls_server_name_override"`
	// TLSClientCert and TLSClientKey, if set, authenticate the client at
	// the TLS layer (a peer with clientAuthRequired).
	TLSClientCert string `json:"tls_client_cert"`
	TLSClientKey  string `json:"tls_client_key"`

	MSPID      string `json:"msp_id"`
	Cert       string `json:"cert"`
	PrivateKey string `json:"private_key"`

	Channel   string `json:"channel"`
	Chaincode string `json:"chaincode"`

	Timeouts Timeouts `json:"timeouts"`
	// EndorsingOrgs pins the organisations that endorse submits (empty:
	// the gateway plans endorsement from the chaincode's policy).
	EndorsingOrgs []string `json:"endorsing_orgs"`
	// EventCheckpointFile, if set, keeps the position of the event
	// listener so that it resumes after a restart.
	EventCheckpointFile string `json:"event_checkpoint_file"`
	// MaxAttempts bounds the new transactions tried for one Submit whose
	// reads conflicted with a concurrent commit (MVCC or phantom); 0 is 100.
	MaxAttempts int `json:"max_attempts"`
}

// Timeouts of the gateway calls (zero: the defaults shown).
type Timeouts struct {
	Evaluate     Duration `json:"evaluate"`      // 5s
	Endorse      Duration `json:"endorse"`       // 15s
	Submit       Duration `json:"submit"`        // 5s
	CommitStatus Duration `json:"commit_status"` // 1m
}

// Duration is a time.Duration written as "5s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads "1m30s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration %s: want a string like \"5s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as "5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d Duration) or(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// ReadConfig reads a JSON config file; relative paths in it are made
// relative to the file's directory.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("fabric config: %w", err)
	}
	var c Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("fabric config %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for _, p := range []*string{&c.TLSCACert, &c.TLSClientCert, &c.TLSClientKey, &c.Cert, &c.PrivateKey, &c.EventCheckpointFile} {
		if *p != "" && !isPEM(*p) && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return c, c.Validate()
}

// Validate refuses a config missing a required field.
func (c Config) Validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"peer_endpoint", c.PeerEndpoint}, {"msp_id", c.MSPID}, {"cert", c.Cert},
		{"private_key", c.PrivateKey}, {"channel", c.Channel}, {"chaincode", c.Chaincode},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if c.TLS && c.TLSCACert == "" {
		missing = append(missing, "tls_ca_cert (tls_enabled is set)")
	}
	if (c.TLSClientCert == "") != (c.TLSClientKey == "") {
		missing = append(missing, "tls_client_cert and tls_client_key together")
	}
	if len(missing) > 0 {
		return fmt.Errorf("fabric config: missing %s", strings.Join(missing, ", "))
	}
	if c.MaxAttempts < 0 {
		return errors.New("fabric config: max_attempts must not be negative")
	}
	return nil
}

func isPEM(s string) bool { return strings.Contains(s, "-----BEGIN ") }

// loadPEM returns a PEM value given inline, in a file, or as the one file
// of a directory.
func loadPEM(what, v string) ([]byte, error) {
	if isPEM(v) {
		return []byte(v), nil
	}
	st, err := os.Stat(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	path := v
	if st.IsDir() {
		es, err := os.ReadDir(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		var files []string
		for _, e := range es {
			if !e.IsDir() {
				files = append(files, e.Name())
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: directory %s holds no file", what, v)
		}
		sort.Strings(files)
		path = filepath.Join(v, files[0])
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// tlsConfig builds the client TLS configuration.
func (c Config) tlsConfig() (*tls.Config, error) {
	ca, err := loadPEM("tls_ca_cert", c.TLSCACert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("tls_ca_cert %s: no PEM certificate", c.TLSCACert)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: c.TLSServerNameOverride, MinVersion: tls.VersionTLS12}
	if c.TLSClientCert != "" {
		cert, err := loadPEM("tls_client_cert", c.TLSClientCert)
		if err != nil {
			return nil, err
		}
		key, err := loadPEM("tls_client_key", c.TLSClientKey)
		if err != nil {
			return nil, err
		}
		kp, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}
