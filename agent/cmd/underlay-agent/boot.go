package main

import (
	"context"
	"io"

	"underlay.dev/agent/bootenv"
)

// prepareBoot readies the discovery image (modules, links, DHCP) when the
// agent runs as its uinit. It keeps trying DHCP until ctx ends; a failure is
// logged and the agent starts anyway, since its own retries are the only
// thing left to do.
func prepareBoot(ctx context.Context, logTo io.Writer) {
	log := newLogger(logTo, false).With("component", "bootenv")
	log.Info("discovery image boot: preparing environment")
	if _, err := bootenv.Prepare(ctx, bootenv.Options{Log: log}); err != nil {
		log.Error("boot environment incomplete", "err", err)
	}
}
