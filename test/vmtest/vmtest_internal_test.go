package vmtest

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readCPIO parses a newc archive back into entries (without the trailer).
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	align := func(n int) int { return (n + 3) &^ 3 }
	off := 0
	for {
		if off+110 > len(b) {
			t.Fatalf("archive ends at %d without a trailer", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("header field %d at %d: %v", i, off, err)
			}
			return int(n)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		data := align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		out = append(out, cpioEntry{Name: name, Mode: uint32(mode), Data: b[data : data+size]})
		off = align(data + size)
	}
}

func TestWriteCPIO(t *testing.T) {
	entries := []cpioEntry{
		{Name: "bin", Mode: cpioDir | 0o755},
		{Name: "bin/x", Mode: cpioRegular | 0o755, Data: []byte("12345")},
		{Name: "bin/uinit", Mode: cpioSymlink | 0o777, Data: []byte("x")},
		{Name: "etc/uinit.flags", Mode: cpioRegular | 0o644, Data: []byte("\"-test.v\"\n")},
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, entries); err != nil {
		t.Fatalf("writeCPIO: %v", err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	got := readCPIO(t, buf.Bytes())
	if d := cmp.Diff(entries, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	if err := writeCPIO(&buf, []cpioEntry{{Name: "/abs"}}); err == nil {
		t.Error("writeCPIO accepted an absolute path")
	}
}

func TestParseConsole(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		out       string
		code      int
		found     bool
	}{
		{
			name: "passing run amid kernel noise",
			log: "[    0.000000] Linux version 6.1\r\nWelcome to u-root!\r\nvmtest guest: modules loaded 3\r\n" +
				"VMTEST-START uptime=4.20\r\n=== RUN   TestX\r\n--- PASS: TestX (0.00s)\r\nPASS\r\n\r\nVMTEST-RESULT exit=0\r\n[   9.1] reboot: Power down\r\n",
			out:   "vmtest guest: modules loaded 3\n=== RUN   TestX\n--- PASS: TestX (0.00s)\nPASS",
			found: true,
		},
		{
			name:  "failing run, marker after output without a newline",
			log:   "VMTEST-START uptime=1\nFAIL\nsome outputVMTEST-RESULT exit=1\n",
			out:   "FAIL\nsome output",
			code:  1,
			found: true,
		},
		{
			name: "crash before the result",
			log:  "VMTEST-START uptime=1\npanic: test timed out after 2m30s\n",
			out:  "panic: test timed out after 2m30s",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code, found := parseConsole([]byte(tc.log))
			if d := cmp.Diff(tc.out, out); d != "" {
				t.Errorf("out (-want +got):\n%s", d)
			}
			if code != tc.code || found != tc.found {
				t.Errorf("code, found = %d, %v; want %d, %v", code, found, tc.code, tc.found)
			}
		})
	}
}

func TestRanNothing(t *testing.T) {
	for out, want := range map[string]string{
		"=== RUN   TestX\n--- PASS: TestX (0.00s)\nPASS":                                             "",
		"=== RUN   TestX\n=== RUN   TestX/a\n    --- PASS: TestX/a (0.00s)\n--- PASS: TestX (0.01s)": "",
		"testing: warning: no tests to run\nPASS":                                                    "no in-VM test ran",
		"=== RUN   TestX\n--- SKIP: TestX (0.00s)\n    x_test.go:9: no md\nPASS":                     "in-VM tests skipped: TestX",
		"--- PASS: TestA (0.00s)\n--- SKIP: TestB (0.00s)\nPASS":                                     "in-VM tests skipped: TestB",
	} {
		if got := ranNothing(out); got != want {
			t.Errorf("ranNothing(%q) = %q, want %q", out, got, want)
		}
	}
}

func TestTestArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", Config{Timeout: 3 * time.Minute}, []string{"-test.v", "-test.timeout=2m30s"}},
		{"run", Config{Timeout: time.Minute, TestArgs: []string{"-test.run", "TestX"}}, []string{"-test.v", "-test.run", "TestX", "-test.timeout=30s"}},
		{"caller's own", Config{Timeout: time.Minute, TestArgs: []string{"-test.v=false", "-test.timeout=5s"}}, []string{"-test.v=false", "-test.timeout=5s"}},
		{"short timeout", Config{Timeout: 20 * time.Second}, []string{"-test.v"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, testArgs(tc.cfg)); d != "" {
				t.Errorf("testArgs (-want +got):\n%s", d)
			}
		})
	}
	if MAC(0) != "52:54:00:76:00:01" || MAC(2) != "52:54:00:76:00:03" || DiskSerial(1) != "vmtest-d1" {
		t.Errorf("MAC(0), MAC(2), DiskSerial(1) = %s, %s, %s", MAC(0), MAC(2), DiskSerial(1))
	}
}
