// Command redfish-sim runs the Redfish BMC simulator standalone, for demos
// and manual testing:
//
//	redfish-sim -listen 127.0.0.1:8443 -user admin -password secret -ca /tmp/bmc-ca.pem
//
// With -qemu the first system powers a real QEMU virtual machine (the
// command line is split on spaces; the word {boot} becomes
// "-boot once=n" for a one-time PXE boot, "-boot once=c" for disk, and
// nothing otherwise):
//
//	redfish-sim -qemu 'ip netns exec lab qemu-system-x86_64 -nodefaults -display none -m 512 {boot}'
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sim "underlay.dev/test/redfish"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "redfish-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8443", "address to serve HTTPS on")
	user := flag.String("user", "admin", "BMC user name")
	password := flag.String("password", "", "BMC password (default: $REDFISH_SIM_PASSWORD, else \"password\")")
	systems := flag.Int("systems", 1, "number of ComputerSystems (IDs 1, 2, ...)")
	attrsFile := flag.String("attributes", "", "JSON file with the BIOS attribute registry: [{\"name\",\"type\",\"value\",\"allowed\"}] (default: a built-in set)")
	caFile := flag.String("ca", "", "write the CA certificate (PEM) to this file")
	on := flag.Bool("on", false, "start with the systems powered on (memory power only)")
	qemu := flag.String("qemu", "", "QEMU command line for system 1 ({boot} marks the boot order)")
	qmpSock := flag.String("qmp", filepath.Join(os.TempDir(), "redfish-sim-qmp.sock"), "QMP socket path for -qemu")
	hosts := flag.String("hosts", "", "comma-separated extra names or IPs for the certificate")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *password == "" {
		*password = os.Getenv("REDFISH_SIM_PASSWORD")
	}
	if *password == "" {
		*password = "password"
	}
	if *systems < 1 {
		return fmt.Errorf("-systems %d: want at least 1", *systems)
	}
	attrs := sim.DefaultAttributes()
	if *attrsFile != "" {
		data, err := os.ReadFile(*attrsFile)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		attrs = nil
		if err := dec.Decode(&attrs); err != nil {
			return fmt.Errorf("attributes %s: %w", *attrsFile, err)
		}
	}

	cfg := sim.Config{Username: *user, Password: *password, Listen: *listen, Logger: log}
	if *hosts != "" {
		cfg.Hosts = strings.Split(*hosts, ",")
	}
	var qp *sim.QEMUPower
	for i := 1; i <= *systems; i++ {
		sc := sim.SystemConfig{
			ID: strconv.Itoa(i), Manufacturer: "Underlay", Model: "Simulated Server",
			Serial: fmt.Sprintf("SIM%05d", i), Attributes: attrs, Power: sim.NewMemoryPower(*on),
		}
		if i == 1 && *qemu != "" {
			words := strings.Fields(*qemu)
			p, err := sim.NewQEMUPower(sim.QEMUConfig{
				Argv: func(bootOnce string) []string { return expand(words, bootOnce) }, QMPSocket: *qmpSock,
				Output: os.Stderr, Logger: log,
			})
			if err != nil {
				return err
			}
			qp, sc.Power = p, p
		}
		cfg.Systems = append(cfg.Systems, sc)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bmc, err := sim.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if *caFile != "" {
		if err := os.WriteFile(*caFile, bmc.CAPEM(), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("redfish-sim: %s (user %s)", bmc.URL(), *user)
	if *caFile != "" {
		fmt.Printf(", CA in %s", *caFile)
	}
	fmt.Println()
	<-ctx.Done()
	err = bmc.Close()
	if qp != nil {
		if cerr := qp.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// expand replaces the word {boot} with QEMU's one-time boot order.
func expand(words []string, bootOnce string) []string {
	var out []string
	for _, w := range words {
		if w != "{boot}" {
			out = append(out, w)
			continue
		}
		switch bootOnce {
		case "Pxe":
			out = append(out, "-boot", "once=n")
		case "Hdd":
			out = append(out, "-boot", "once=c")
		}
	}
	return out
}
