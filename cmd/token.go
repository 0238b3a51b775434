package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/phases"
)

// tokenClients connects the token commands to a cluster: the kubeconfig
// file's bytes (for the join command's endpoint and CA) and a client.
type tokenClients func(kubeconfig string) ([]byte, kubernetes.Interface, error)

// kubeconfigClient reads the --kubeconfig file and builds a client from it.
func kubeconfigClient(kubeconfig string) ([]byte, kubernetes.Interface, error) {
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	cfg, err := apiclient.RESTConfig(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	return b, c, err
}

func newTokenCommand(out io.Writer) *cobra.Command {
	return tokenCommand(out, kubeconfigClient, time.Now)
}

// tokenCommand is `kubeboot token`, kubeadm's token commands, with the
// cluster connection and clock injected for tests.
func tokenCommand(out io.Writer, connect tokenClients, now func() time.Time) *cobra.Command {
	var kubeconfig string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage bootstrap tokens",
		Long: `Manage the bootstrap tokens that let nodes join the cluster (kubeadm's token commands).

A token is [a-z0-9]{6}.[a-z0-9]{16}: its first part is the public ID, the second the secret.
It is stored in the Secret kube-system/bootstrap-token-<id>.`,
	}
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "/etc/kubernetes/admin.conf", "The kubeconfig file to use when talking to the cluster")

	var (
		ttl              time.Duration
		description      string
		usages, groups   []string
		printJoinCommand bool
		certificateKey   string
	)
	create := &cobra.Command{
		Use:   "create [token]",
		Short: "Create a bootstrap token on the server",
		Long: `Create a bootstrap token on the server and print it (or, with --print-join-command, the
'kubeboot join' command that uses it). A token given as the argument is used; else one is generated.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ctx := c.Context()
			var tok bootstraptoken.Token
			var err error
			if len(args) == 1 {
				if tok, err = bootstraptoken.Parse(args[0]); err != nil {
					return err
				}
			} else if tok, err = bootstraptoken.Generate(); err != nil {
				return err
			}
			if certificateKey != "" {
				if _, err := copycerts.ParseCertificateKey(certificateKey); err != nil {
					return fmt.Errorf("--certificate-key: %w", err)
				}
			}
			opts := bootstraptoken.Options{TTL: ttl, Description: description, Usages: usages, Groups: groups}
			s, err := bootstraptoken.Secret(tok, opts, now())
			if err != nil {
				return err
			}
			raw, client, err := connect(kubeconfig)
			if err != nil {
				return err
			}
			var join phases.JoinCommand
			if printJoinCommand {
				endpoint, pins, err := phases.JoinTargetFromKubeconfig(raw)
				if err != nil {
					return fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
				}
				join = phases.JoinCommand{Endpoint: endpoint, Token: tok.String(), CACertHashes: pins, ControlPlane: certificateKey != "", CertificateKey: certificateKey}
			}
			if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, s, metav1.CreateOptions{}); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("a bootstrap token with id %q already exists: choose another token, or delete it with `kubeboot token delete %s`", tok.ID, tok.ID)
				}
				return fmt.Errorf("create the bootstrap token Secret %s: %w", s.Name, err)
			}
			if printJoinCommand {
				fmt.Fprintln(out, join.OneLine())
				return nil
			}
			fmt.Fprintln(out, tok.String())
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", bootstraptoken.DefaultTTL, "The duration before the token is automatically deleted (e.g. 1s, 2m, 3h). If set to '0', the token will never expire")
	create.Flags().StringVar(&description, "description", "", "A human friendly description of how this token is used")
	create.Flags().StringSliceVar(&usages, "usages", bootstraptoken.DefaultUsages(), fmt.Sprintf("Describes the ways in which this token can be used. You can pass --usages multiple times or provide a comma separated list of options. Valid options: [%s]", strings.Join(bootstrapapi.KnownTokenUsages, ",")))
	create.Flags().StringSliceVar(&groups, "groups", []string{bootstraptoken.DefaultGroup}, fmt.Sprintf("Extra groups that this token will authenticate as when used for authentication. Must match %q", bootstrapapi.BootstrapGroupPattern))
	create.Flags().BoolVar(&printJoinCommand, "print-join-command", false, "Instead of printing only the token, print the full 'kubeboot join' flag needed to join the cluster using the token")
	create.Flags().StringVar(&certificateKey, "certificate-key", "", "When used together with '--print-join-command', print the full 'kubeboot join' flag needed to join the cluster as a control-plane. To create a new certificate key you must use 'kubeboot init phase upload-certs --upload-certs'")

	var output string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List bootstrap tokens on the server",
		Long:    "List the bootstrap tokens on the server: kubeadm's table, or (-o json|yaml) one BootstrapToken object (output.kubeadm.k8s.io/v1alpha3) per token.",
		Args:    cobra.NoArgs,
		Aliases: []string{"ls"},
		RunE: func(c *cobra.Command, _ []string) error {
			switch output {
			case "text", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: the output formats are text, json and yaml", output)
			}
			_, client, err := connect(kubeconfig)
			if err != nil {
				return err
			}
			infos, err := listTokens(c.Context(), client, c.ErrOrStderr())
			if err != nil {
				return err
			}
			return printTokens(out, infos, output, now())
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "text", "Output format: text, json or yaml")

	del := &cobra.Command{
		Use:   "delete [token-value|token-id] ...",
		Short: "Delete bootstrap tokens on the server",
		Long:  "Delete bootstrap tokens on the server, given as whole tokens or as token IDs (the part before the dot).",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var ids []string
			for _, a := range args {
				id := a
				if t, err := bootstraptoken.Parse(a); err == nil {
					id = t.ID
				} else if !bootstraputil.IsValidBootstrapTokenID(a) {
					return fmt.Errorf("%q is neither a bootstrap token (%s) nor a token ID ([a-z0-9]{6})", redactArg(a), bootstraptoken.Format)
				}
				ids = append(ids, id)
			}
			_, client, err := connect(kubeconfig)
			if err != nil {
				return err
			}
			for _, id := range ids {
				name := bootstraptoken.SecretName(id)
				err := client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(c.Context(), name, metav1.DeleteOptions{})
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("bootstrap token %q not found (no Secret kube-system/%s); `kubeboot token list` shows the tokens", id, name)
				}
				if err != nil {
					return fmt.Errorf("delete bootstrap token %q: %w", id, err)
				}
				fmt.Fprintf(out, "bootstrap token %q deleted\n", id)
			}
			return nil
		},
	}

	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate and print a bootstrap token, but do not create it on the server",
		Long:  "Generate and print a bootstrap token, to pass to `kubeboot init --token` or `kubeboot token create`.",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			t, err := bootstraptoken.Generate()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, t.String())
			return nil
		},
	}
	cmd.AddCommand(create, list, del, gen)
	return cmd
}

// redactArg keeps a mistyped token's secret part out of the error.
func redactArg(s string) string {
	if i := strings.IndexAny(s, ".:"); i >= 0 {
		return s[:i+1] + "..."
	}
	return s
}

// listTokens reads every bootstrap token Secret, sorted by ID; invalid ones
// are reported on errOut and skipped, as kubeadm does.
func listTokens(ctx context.Context, c kubernetes.Interface, errOut io.Writer) ([]bootstraptoken.Info, error) {
	return bootstraptoken.List(ctx, c.CoreV1().Secrets(metav1.NamespaceSystem), func(name string, err error) {
		fmt.Fprintf(errOut, "[token] WARNING: skipping %s: %v\n", name, err)
	})
}

// outputToken is kubeadm's output.kubeadm.k8s.io/v1alpha3 BootstrapToken.
type outputToken struct {
	metav1.TypeMeta `json:",inline"`
	Token           string       `json:"token"`
	Description     string       `json:"description,omitempty"`
	Expires         *metav1.Time `json:"expires,omitempty"`
	Usages          []string     `json:"usages,omitempty"`
	Groups          []string     `json:"groups,omitempty"`
}

func printTokens(out io.Writer, infos []bootstraptoken.Info, format string, now time.Time) error {
	if format == "text" {
		return bootstraptoken.FormatTable(out, infos, now)
	}
	for i, info := range infos {
		o := outputToken{
			TypeMeta:    metav1.TypeMeta{APIVersion: "output.kubeadm.k8s.io/v1alpha3", Kind: "BootstrapToken"},
			Token:       info.Token.String(),
			Description: info.Description,
			Usages:      info.Usages,
			Groups:      info.Groups,
		}
		if info.Expires != nil {
			o.Expires = &metav1.Time{Time: *info.Expires}
		}
		var b []byte
		var err error
		if format == "json" {
			b, err = json.MarshalIndent(o, "", "    ")
			b = append(b, '\n')
		} else {
			b, err = yaml.Marshal(o)
			if i > 0 {
				b = append([]byte("---\n"), b...)
			}
		}
		if err != nil {
			return err
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
	}
	return nil
}
