package main

import (
	"context"
	"fmt"
	"io"

	"github.com/medx/medx/ledger/fabric/chaincode"
)

// runChaincode serves the MedX chaincode as a service for Fabric peers
// (the ccaas builder), configured by the environment contractapi's Start
// reads: CHAINCODE_SERVER_ADDRESS, CORE_CHAINCODE_ID_NAME and, for TLS,
// CORE_PEER_TLS_ENABLED, CORE_TLS_CLIENT_KEY_FILE, CORE_TLS_CLIENT_CERT_FILE
// and CORE_PEER_TLS_ROOTCERT_FILE. Flags override the address and id.
func runChaincode(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("chaincode", stderr)
	addr := fs.String("address", "", "listen address (default $CHAINCODE_SERVER_ADDRESS)")
	ccid := fs.String("ccid", "", "chaincode package id (default $CORE_CHAINCODE_ID_NAME)")
	level := fs.String("log", "info", "log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	env := func(k string) string {
		switch {
		case k == "CHAINCODE_SERVER_ADDRESS" && *addr != "":
			return *addr
		case k == "CORE_CHAINCODE_ID_NAME" && *ccid != "":
			return *ccid
		}
		return getenv(k)
	}
	cfg, err := chaincode.ServerConfigFromEnv(env)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	lis, err := cfg.Listen()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "serving chaincode %s on %s (tls %t)\n", cfg.CCID, lis.Addr(), cfg.TLS)
	log.Info("chaincode server", "ccid", cfg.CCID, "addr", lis.Addr().String(), "tls", cfg.TLS)
	return chaincode.Serve(ctx, lis, cfg)
}
