package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

var netnsSeq atomic.Int32

// newNetns creates a network namespace holding n tap devices (tap0..),
// up, and removes it when the test ends. The taps go with it.
func newNetns(tb testing.TB, n int) (string, []string) {
	tb.Helper()
	ns := fmt.Sprintf("uvmt%d-%d", os.Getpid(), netnsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		tb.Fatalf("vmtest: ip netns add %s: %v: %s", ns, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			tb.Logf("vmtest: ip netns del %s: %v: %s", ns, err, out)
		}
	})
	in := func(args ...string) {
		tb.Helper()
		argv := append([]string{"netns", "exec", ns}, args...)
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			tb.Fatalf("vmtest: ip %s: %v: %s", strings.Join(argv, " "), err, out)
		}
	}
	in("ip", "link", "set", "lo", "up")
	var taps []string
	for i := 0; i < n; i++ {
		tap := fmt.Sprintf("tap%d", i)
		in("ip", "tuntap", "add", tap, "mode", "tap")
		in("ip", "link", "set", tap, "up")
		taps = append(taps, tap)
	}
	return ns, taps
}
