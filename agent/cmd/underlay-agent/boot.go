package main

import (
	"context"
	"io"

	"underlay.dev/agent/bootenv"
)

// prepareBoot readies the discovery image (modules, links, DHCP) when the
// agent runs as its uinit. It keeps trying DHCP until ctx ends; a failure is
// logged and the agent starts anyway, since its own retries are the only
// thing left to do. The returned func stops renewing the boot lease: a
// role's network config replaces it (the lease's link may become a bond
// slave, and a renewal would put the old address and routes back).
func prepareBoot(ctx context.Context, logTo io.Writer) (stopLease func()) {
	log := newLogger(logTo, false).With("component", "bootenv")
	log.Info("discovery image boot: preparing environment")
	lctx, cancel := context.WithCancel(ctx)
	if _, err := bootenv.Prepare(lctx, bootenv.Options{Log: log}); err != nil {
		log.Error("boot environment incomplete", "err", err)
	}
	return cancel
}
