package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"underlay.dev/pkg/version"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

func (a *app) newWatchCmd() *cobra.Command {
	var machineID string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Stream cluster events live until interrupted",
		Long: `Stream events as they happen, one line per event, until Ctrl-C. With
--machine only that machine's events are shown. With -o json every event is one
JSON object on its own line (handy for jq); --timeout does not apply.`,
		Example: `  underlay watch
  underlay watch --machine m-3fa9c0d2e1b4
  underlay watch -o json | jq -r .kind`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			stream, err := c.Machines.Watch(ctx, &underlayv1.WatchRequest{MachineId: machineID})
			if err != nil {
				return err
			}
			for {
				e, err := stream.Recv()
				switch {
				case errors.Is(err, io.EOF):
					return nil
				case err != nil && ctx.Err() != nil && status.Code(err) == codes.Canceled:
					return nil // Ctrl-C
				case err != nil:
					return err
				}
				if err := p.line(e, eventLine(e)); err != nil {
					return fmt.Errorf("write event: %w", err)
				}
			}
		},
	}
	cmd.Flags().StringVar(&machineID, "machine", "", "only events of this machine ID")
	return cmd
}

func (a *app) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of this binary",
		Long:    `Print the version of this binary, the Go version it was built with and its VCS revision.`,
		Example: `  underlay version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(a.stdout, "underlay %s\n", version.String())
			return err
		},
	}
}
