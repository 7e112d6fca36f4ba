// Command medx is MedX's one binary: `medx demo` runs a whole study in one
// process on the embedded ledger; other subcommands open the same data
// directory.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "medx:", err)
		os.Exit(1)
	}
}
