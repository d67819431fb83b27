package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"underlay.dev/pkg/client"
	"underlay.dev/pkg/mtls"
	underlayv1 "underlay.dev/proto/underlay/v1"
)

// errCredsExist is returned when operator create would overwrite a key.
var errCredsExist = errors.New("credentials already exist")

func (a *app) newOperatorCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "operator",
		Short: "Manage operators (people and tools that use this API)",
		Long: `Manage operators. An operator is identified by a client certificate for
spiffe://underlay/operator/NAME; its role is admin (may change things) or
readonly (may only read).`,
		Example: `  underlay operator create alice --role admin --out ~/.config/underlay/creds
  underlay operator ls`,
	})
	cmd.AddCommand(a.newOperatorCreateCmd(), a.newOperatorListCmd())
	return cmd
}

func (a *app) newOperatorCreateCmd() *cobra.Command {
	var (
		role string
		ttl  time.Duration
		out  string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --role admin|readonly",
		Short: "Create an operator and write its credentials",
		Long: `Create an operator. The private key is generated here and never sent: only a
certificate signing request for spiffe://underlay/operator/NAME goes to the
cluster, which returns the signed certificate. ca.pem, cert.pem and key.pem are
written to --out (default ./NAME-creds), which then works as --creds.
An existing key in --out is never overwritten.`,
		Example: `  underlay operator create alice --role admin
  underlay operator create grafana --role readonly --ttl 720h --out /etc/grafana/underlay`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			id := mtls.Identity{Kind: mtls.KindOperator, Name: name}
			if err := id.Validate(); err != nil {
				return usagef("bad operator name: %w", err)
			}
			r, names, ok := parseEnum(underlayv1.OperatorRole(0).Descriptor(), "OPERATOR_ROLE_", role)
			if !ok {
				return flagEnum("role", role, names)
			}
			if ttl < 0 {
				return usagef("--ttl %s is negative", ttl)
			}
			if out == "" {
				out = name + "-creds"
			}
			if _, err := os.Stat(filepath.Join(out, mtls.KeyFile)); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w in %s: choose another --out", errCredsExist, out)
			}
			key, keyPEM, err := mtls.NewKey()
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			csr, err := mtls.NewCSR(key, id, nil, nil)
			if err != nil {
				return fmt.Errorf("create csr: %w", err)
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				resp, err := c.Access.CreateOperator(ctx, &underlayv1.CreateOperatorRequest{
					Name:       name,
					Role:       underlayv1.OperatorRole(r),
					CsrPem:     csr,
					TtlSeconds: int64(ttl / time.Second),
				})
				if err != nil {
					return err
				}
				if err := mtls.WriteCreds(out, resp.GetCaPem(), resp.GetCertPem(), keyPEM); err != nil {
					return fmt.Errorf("write credentials for operator %s (the operator exists; revoke it with 'underlay cert revoke --identity %s'): %w", name, id, err)
				}
				// The response carries no secret; print the operator for json/yaml.
				return p.print(resp.GetOperator(), func(w io.Writer) {
					fmt.Fprintf(w, "Operator %s (%s) created.\nCredentials written to %s\nUse them with: underlay --creds %s whoami\n",
						name, roleName(resp.GetOperator().GetRole()), out, out)
				})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "operator role: admin or readonly (required)")
	f.DurationVar(&ttl, "ttl", 0, "certificate lifetime; 0 lets the cluster choose")
	f.StringVar(&out, "out", "", "directory to write ca.pem, cert.pem, key.pem to (default ./NAME-creds)")
	return cmd
}

func (a *app) newOperatorListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List operators",
		Long:    `List operators with their role and who created them.`,
		Example: `  underlay operator ls`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Access.ListOperators(ctx, &underlayv1.ListOperatorsRequest{Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.operatorsTable(w, r.GetOperators()) })
			})
		},
	}
}

func (a *app) newCertCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "cert",
		Short: "Revoke certificates and list revocations",
		Long: `Revoke certificates issued by the cluster CA, by serial number or by the
identity they were issued to, and list what is revoked.`,
		Example: `  underlay cert revoke 0x5f3a9c... --reason "laptop lost"
  underlay cert revoke --identity spiffe://underlay/operator/bob
  underlay cert revocations`,
	})
	cmd.AddCommand(a.newCertRevokeCmd(), a.newCertRevocationsCmd())
	return cmd
}

func (a *app) newCertRevokeCmd() *cobra.Command {
	var identity, reason string
	cmd := &cobra.Command{
		Use:   "revoke [SERIAL | --identity spiffe://underlay/KIND/NAME]",
		Short: "Revoke a certificate, or every certificate of an identity",
		Long: `Revoke one certificate by its serial number (decimal or 0x-prefixed hex), or
with --identity every certificate issued to that identity. Revoked
certificates are refused by every node.`,
		Example: `  underlay cert revoke 0x1f2e3d4c --reason "key leaked"
  underlay cert revoke --identity spiffe://underlay/operator/bob`,
		Args: rangeArgs(0, 1, "a SERIAL or --identity"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &underlayv1.RevokeCertRequest{Identity: identity, Reason: reason}
			switch {
			case len(args) == 1 && identity != "":
				return usagef("give either a SERIAL or --identity, not both")
			case len(args) == 1:
				req.Serial = args[0]
			case identity == "":
				return usagef("give a SERIAL or --identity")
			default:
				if _, err := mtls.ParseIdentity(identity); err != nil {
					return usagef("--identity %q: %w", identity, err)
				}
			}
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Access.RevokeCert(ctx, req)
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) {
					if len(r.GetRevoked()) == 0 {
						fmt.Fprintln(w, "Nothing was revoked.")
						return
					}
					p.revocationsTable(w, r.GetRevoked())
				})
			})
		},
	}
	cmd.Flags().StringVar(&identity, "identity", "", "revoke every certificate issued to this spiffe identity")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the revocation")
	return cmd
}

func (a *app) newCertRevocationsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revocations",
		Short:   "List revoked certificates",
		Long:    `List revoked certificates that have not expired yet.`,
		Example: `  underlay cert revocations -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Access.ListRevocations(ctx, &underlayv1.ListRevocationsRequest{Read: a.readOptions()})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.revocationsTable(w, r.GetRevocations()) })
			})
		},
	}
}

func (a *app) newWhoAmICmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the cluster thinks you are",
		Long: `Show the identity, role, certificate serial and expiry the cluster sees for the
credentials in --creds. Handy to check that credentials and --server work.`,
		Example: `  underlay whoami
  underlay --creds ./alice-creds whoami`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c *client.Client, p *printer) error {
				r, err := c.Access.WhoAmI(ctx, &underlayv1.WhoAmIRequest{})
				if err != nil {
					return err
				}
				return p.print(r, func(w io.Writer) { p.whoamiTable(w, r) })
			})
		},
	}
}
