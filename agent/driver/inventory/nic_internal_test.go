package inventory

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	underlayv1 "underlay.dev/proto/underlay/v1"
)

func TestBondingMastersIsNotANIC(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys/class/net/eth0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sys/class/net/eth0/address"), []byte("52:54:00:00:00:01\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sys/class/net/bonding_masters"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &collector{root: root, log: slog.New(slog.DiscardHandler)}
	inv := &underlayv1.Inventory{}
	if err := c.nics(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range inv.GetNics() {
		names = append(names, n.GetName())
	}
	if diff := cmp.Diff([]string{"eth0"}, names); diff != "" {
		t.Fatalf("NICs (-want +got):\n%s", diff)
	}
}
