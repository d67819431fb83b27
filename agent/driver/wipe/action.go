package wipe

import (
	"context"
	"fmt"
	"strings"

	"underlay.dev/agent/runner"
)

// Action runs Wipe with cfg as the runner action "wipe". The arg
// "devices", a comma-separated list of device paths, replaces
// cfg.Devices when given. It fails when any disk that was not skipped
// could not be wiped.
func Action(cfg Config) runner.Action {
	return runner.ActionFunc(func(ctx context.Context, job runner.Job) error {
		spec := job.Spec()
		for name := range spec.Args {
			if name != "devices" {
				return fmt.Errorf("wipe: unknown arg %q (known: devices): %w", name, runner.ErrArg)
			}
		}
		if v := strings.TrimSpace(spec.Args["devices"]); v != "" {
			cfg.Devices = nil
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					cfg.Devices = append(cfg.Devices, d)
				}
			}
		}
		log := job.Log()
		reports, err := Wipe(ctx, cfg, log)
		for _, r := range reports {
			switch {
			case r.Wiped:
				fmt.Fprintf(log, "%s: wiped (%d regions zeroed)\n", r.Device, len(r.Zeroed))
			case r.Skipped != "":
				fmt.Fprintf(log, "%s: not wiped: %s\n", r.Device, r.Skipped)
			case r.Error != "":
				fmt.Fprintf(log, "%s: not wiped: %s\n", r.Device, r.Error)
			}
		}
		if err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
		return nil
	})
}
