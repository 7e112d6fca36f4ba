package chaincode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hyperledger/fabric-chaincode-go/v2/shim"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// ServerConfig runs the chaincode as a service (the peer's ccaas builder
// dials it). Its fields are the environment of contractapi's Start,
// named in the comments.
type ServerConfig struct {
	Address string // CHAINCODE_SERVER_ADDRESS, e.g. 0.0.0.0:9999
	CCID    string // CORE_CHAINCODE_ID_NAME: the package id from `peer lifecycle chaincode calculatepackageid`
	TLS     bool   // CORE_PEER_TLS_ENABLED
	// KeyFile and CertFile are the server's TLS key and certificate
	// (CORE_TLS_CLIENT_KEY_FILE, CORE_TLS_CLIENT_CERT_FILE); ClientCAFile,
	// if set, requires the peer to present a certificate it issued
	// (CORE_PEER_TLS_ROOTCERT_FILE).
	KeyFile, CertFile, ClientCAFile string
}

// ServerConfigFromEnv reads the contractapi variables through getenv.
func ServerConfigFromEnv(getenv func(string) string) (ServerConfig, error) {
	c := ServerConfig{
		Address:      getenv("CHAINCODE_SERVER_ADDRESS"),
		CCID:         getenv("CORE_CHAINCODE_ID_NAME"),
		KeyFile:      getenv("CORE_TLS_CLIENT_KEY_FILE"),
		CertFile:     getenv("CORE_TLS_CLIENT_CERT_FILE"),
		ClientCAFile: getenv("CORE_PEER_TLS_ROOTCERT_FILE"),
	}
	if v := getenv("CORE_PEER_TLS_ENABLED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("CORE_PEER_TLS_ENABLED=%q: want true or false", v)
		}
		c.TLS = b
	}
	return c, c.Validate()
}

// Validate refuses a config the server cannot start with.
func (c ServerConfig) Validate() error {
	switch {
	case c.Address == "":
		return errors.New("chaincode server: CHAINCODE_SERVER_ADDRESS (listen address) is not set")
	case c.CCID == "":
		return errors.New("chaincode server: CORE_CHAINCODE_ID_NAME (the chaincode package id) is not set")
	case c.TLS && (c.KeyFile == "" || c.CertFile == ""):
		return errors.New("chaincode server: TLS needs CORE_TLS_CLIENT_KEY_FILE and CORE_TLS_CLIENT_CERT_FILE")
	}
	return nil
}

// Listen opens the server's listener.
func (c ServerConfig) Listen() (net.Listener, error) {
	lis, err := net.Listen("tcp", c.Address)
	if err != nil {
		return nil, fmt.Errorf("chaincode server: %w", err)
	}
	return lis, nil
}

// Serve serves the MedX chaincode on lis, as shim.ChaincodeServer does
// (same keepalive and TLS settings), until ctx ends.
func Serve(ctx context.Context, lis net.Listener, c ServerConfig) error {
	cc, err := New()
	if err != nil {
		return err
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Minute, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(100 << 20), grpc.MaxSendMsgSize(100 << 20),
		grpc.ConnectionTimeout(5 * time.Second),
	}
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	srv := grpc.NewServer(opts...)
	peer.RegisterChaincodeServer(srv, &shim.ChaincodeServer{CCID: c.CCID, CC: cc})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		return fmt.Errorf("chaincode server: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	return nil
}

func (c ServerConfig) tlsConfig() (*tls.Config, error) {
	kp, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("chaincode server TLS: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		b, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("chaincode server TLS: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("chaincode server TLS: %s holds no PEM certificate", c.ClientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
