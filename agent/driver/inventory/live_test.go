package inventory_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"underlay.dev/agent/driver/inventory"
)

// TestCollectLive is a smoke test: collecting the machine the test runs on
// must not fail, and must find at least a CPU and memory.
func TestCollectLive(t *testing.T) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	inv, err := inventory.Collect(context.Background(), inventory.Options{Log: log})
	if err != nil {
		t.Fatalf("Collect(live) error = %v", err)
	}
	if inv.GetCpu().GetThreads() == 0 {
		t.Errorf("Collect(live) cpu threads = 0, want > 0")
	}
	if inv.GetMemory().GetTotalBytes() == 0 {
		t.Errorf("Collect(live) memory total = 0, want > 0")
	}
	if inv.GetHostname() == "" || inv.GetKernel() == "" {
		t.Errorf("Collect(live) hostname = %q kernel = %q, want both set", inv.GetHostname(), inv.GetKernel())
	}
	if testing.Verbose() {
		t.Logf("inventory: %s", protojson.Format(inv))
		t.Logf("identity: %s", protojson.Format(inventory.Identity(inv)))
	}
}
