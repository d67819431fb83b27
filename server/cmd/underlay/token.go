package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
	"underlay.dev/server/node"
)

func (a *app) newTokenCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "token",
		Short: "Manage enrollment tokens",
		Long: `Manage enrollment tokens. A token lets something join the cluster:
  server     a new management node joins the Raft cluster
  agent      an agent on an existing machine or cloud VM enrolls
  discovery  the PXE discovery image registers machines (nothing else)
Only a hash of the secret is stored; the secret is shown once, at creation.`,
		Example: `  underlay token create --kind discovery --ttl 24h --uses 100 --description "rack 12"
  underlay token ls
  underlay token revoke t-3f9a2c`,
	})
	cmd.AddCommand(a.newTokenCreateCmd(), a.newTokenListCmd(), a.newTokenRevokeCmd())
	return cmd
}

func (a *app) newTokenCreateCmd() *cobra.Command {
	var (
		kind        string
		ttl         time.Duration
		uses        int32
		description string
	)
	cmd := &cobra.Command{
		Use:   "create --kind server|agent|discovery",
		Short: "Create a token and print its secret once",
		Long: `Create an enrollment token and print its secret. The secret is shown only
now: store it or use it right away. --ttl 0 means no expiry, --uses 0 means
unlimited uses.`,
		Example: `  underlay token create --kind discovery --ttl 24h --uses 50
  underlay token create --kind server --ttl 1h --uses 1 --description "join n4"
  underlay token create --kind agent -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, names, ok := parseEnum(underlayv1.TokenKind(0).Descriptor(), "TOKEN_KIND_", kind)
			if !ok {
				return flagEnum("kind", kind, names)
			}
			if ttl < 0 {
				return usagef("--ttl %s is negative", ttl)
			}
			if uses < 0 {
				return usagef("--uses %d is negative", uses)
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Tokens.Create(ctx, &underlayv1.CreateTokenRequest{
					Kind:        underlayv1.TokenKind(k),
					TtlSeconds:  int64(ttl / time.Second),
					Uses:        uses,
					Description: description,
				})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { a.tokenCreated(w, p, r) })
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "token kind: server, agent or discovery (required)")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid; 0 for no expiry")
	f.Int32Var(&uses, "uses", 1, "how many times the token may be used; 0 for unlimited")
	f.StringVar(&description, "description", "", "free text shown in 'token ls'")
	return cmd
}

// tokenCreated prints the secret once, with how to use it.
func (a *app) tokenCreated(w io.Writer, p *printer, r *underlayv1.CreateTokenResponse) {
	t := r.GetToken()
	uses := "unlimited"
	if t.GetUsesAllowed() > 0 {
		uses = fmt.Sprint(t.GetUsesAllowed())
	}
	expires := "never expires"
	if t.GetExpires() != nil {
		expires = "expires " + p.ago(t.GetExpires())
	}
	fmt.Fprintf(w, "Created %s token %s (%s uses, %s).\n\n", tokenKindName(t.GetKind()), t.GetId(), uses, expires)
	fmt.Fprintf(w, "Secret (shown only now, store it safely):\n\n    %s\n\n", r.GetSecret())
	servers, _ := a.serverList()
	srv := strings.Join(servers, ",")
	fp := a.caFingerprint()
	switch t.GetKind() {
	case underlayv1.TokenKind_TOKEN_KIND_DISCOVERY:
		fmt.Fprintf(w, "Add to the discovery image's kernel command line:\n\n    underlay.servers=%s underlay.fp=%s underlay.token=%s\n", srv, fp, r.GetSecret())
	case underlayv1.TokenKind_TOKEN_KIND_AGENT:
		host := servers[0]
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		base := "https://" + net.JoinHostPort(host, "7446")
		fmt.Fprintf(w, "On an existing machine or cloud VM, as root, paste (the CA is checked against its fingerprint first;\n%s is the node's --https-listen address):\n\n    %s\n\n", base, node.JoinCommand(base, fp, r.GetSecret()))
		fmt.Fprintf(w, "or, with the underlay-agent binary already there:\n\n    underlay-agent install --server %s --ca-fingerprint %s --token %s\n", srv, fp, r.GetSecret())
	case underlayv1.TokenKind_TOKEN_KIND_SERVER:
		fmt.Fprintf(w, "Join a new management node (empty data directory) with:\n\n    underlay server --join %s --ca-fingerprint %s --token %s\n", srv, fp, r.GetSecret())
	}
}

// caFingerprint is the SHA-256 fingerprint of the cluster root from the
// local credentials, or a placeholder if it cannot be read.
func (a *app) caFingerprint() string {
	creds, err := mtls.LoadCreds(a.credsDirectory())
	if err == nil {
		if certs, err := mtls.ParseCertsPEM(creds.CAPEM); err == nil && len(certs) > 0 {
			return mtls.Fingerprint(certs[0])
		}
	}
	return "<ca-fingerprint>"
}

func (a *app) newTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List tokens",
		Long:    `List enrollment tokens with their kind, status (active, revoked, expired, used-up), uses and expiry.`,
		Example: `  underlay token ls
  underlay token ls -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Tokens.List(ctx, &underlayv1.ListTokensRequest{Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.tokensTable(w, r.GetTokens()) })
			})
		},
	}
}

func (a *app) newTokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a token",
		Long:    `Revoke a token so that it cannot be used again. What it already enrolled stays enrolled.`,
		Example: `  underlay token revoke t-3f9a2c`,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Tokens.Revoke(ctx, &underlayv1.RevokeTokenRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { fmt.Fprintf(w, "Token %s revoked.\n", args[0]) })
			})
		},
	}
}
