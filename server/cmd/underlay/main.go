// Command underlay is the Underlay management binary: `underlay server` runs
// a management node and every other verb is the operator CLI, which talks
// mTLS gRPC to the cluster's operator services.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
