package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
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
			return a.session(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				stream, err := c.Machines.Watch(ctx, &underlayv1.WatchRequest{MachineId: machineID})
				if err != nil {
					return err
				}
				for {
					e, err := stream.Recv()
					if done, err := streamEnd(ctx, err); done {
						return err
					}
					if err := p.line(e, eventLine(e)); err != nil {
						return fmt.Errorf("write event: %w", err)
					}
				}
			})
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
