package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

func (a *app) newClusterCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "cluster",
		Short: "Inspect and change the management cluster",
		Long: `Inspect and change the Raft cluster of management nodes.

A node is a management server; managed hosts are machines (see 'underlay machine').`,
		Example: `  underlay cluster status
  underlay cluster members --stale
  underlay cluster remove n3`,
	})
	cmd.AddCommand(a.newClusterStatusCmd(), a.newClusterMembersCmd(), a.newClusterRemoveCmd())
	return cmd
}

func (a *app) newClusterStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's leader, term, indexes and members",
		Long: `Show the cluster ID, the current leader and term, the commit and applied Raft
indexes, which node answered, and every member with its role, health and how
long ago the leader last heard from it.`,
		Example: `  underlay cluster status
  underlay cluster status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				s, err := c.Cluster.Status(ctx, &underlayv1.ClusterStatusRequest{})
				if err != nil {
					return err
				}
				return p.print(s, func(w io.Writer) { p.clusterStatusTable(w, s) })
			})
		},
	}
}

func (a *app) newClusterMembersCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "members",
		Short:   "List the Raft members",
		Long:    `List the management nodes that are members of the Raft cluster.`,
		Example: `  underlay cluster members`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Cluster.Members(ctx, &underlayv1.MembersRequest{Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.membersTable(w, r.GetMembers()) })
			})
		},
	}
}

func (a *app) newClusterRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a node from the Raft cluster",
		Long: `Remove a management node from the Raft cluster by its node ID. Use this for a
node that is gone for good; a node that is only down rejoins by itself.`,
		Example: `  underlay cluster remove n3`,
		Args:    exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Cluster.RemoveMember(ctx, &underlayv1.RemoveMemberRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					fmt.Fprintf(w, "Node %s removed from the cluster (raft index %d).\n", args[0], r.GetIndex())
				})
			})
		},
	}
}
