package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/cluster"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/encryption"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
	"k8s.io/client-go/kubernetes"
)

// newSecretsCommand is `kubeboot secrets`: the encryption of Secrets at
// rest (kubeadm has none).
func newSecretsCommand(out io.Writer) *cobra.Command {
	return newSecretsCommandOn(out, nil)
}

func newSecretsCommandOn(out io.Writer, host transport.Host) *cobra.Command {
	c := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the key Secrets are encrypted with in etcd",
		Long: `kubeboot encrypts Secrets in etcd by default (encryptionAtRest.provider: secretbox),
with a key init makes once in /etc/kubernetes/encryption-config.yaml (0600) and every
control plane shares.

  rotate-key  replace the key on every control plane and re-encrypt every Secret`,
	}
	c.AddCommand(newRotateKeyCommand(out, host))
	return c
}

func newRotateKeyCommand(out io.Writer, host transport.Host) *cobra.Command {
	o := &certsOptions{host: host}
	var file, provider string
	c := &cobra.Command{
		Use:   "rotate-key [-f cluster.yaml]",
		Short: "Rotate the key Secrets are encrypted with, and re-encrypt every Secret",
		Long: `Replaces the encryption key in the order Kubernetes documents, so that no API server
ever meets a Secret it cannot read:

  1. the new key is added second on every control plane (all can read it), and each
     API server restarts, one at a time;
  2. the new key moves first (every write uses it), and each restarts again;
  3. every Secret is written again through the API: it is stored under the new key;
  4. the old key is removed, and each restarts a third time.

Without -f it runs on this node only: a cluster with one control plane. With
-f cluster.yaml it runs on every control plane of the inventory over SSH. A rotation
stopped half-way is resumed by running it again. --provider moves the Secrets to
another provider (then set encryptionAtRest.provider in the cluster file to it).
The kubeadm-certs Secret, which holds the old key, is deleted: run
'kubeboot init phase upload-certs --upload-certs' before joining another control plane.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if provider != "" && (provider == inventory.EncryptionNone || !oneOf(provider, inventory.EncryptionProviders)) {
				return fmt.Errorf("--provider %q: want secretbox, aesgcm or aescbc", provider)
			}
			var rep encryption.RotateReport
			var err error
			if file != "" {
				for _, f := range []string{"config", "cert-dir"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s does not go with -f: the cluster file sets the hosts' configuration", f)
					}
				}
				inv, lerr := loadInventory(cmd, file)
				if lerr != nil {
					return lerr
				}
				d := &cluster.SSHDialer{}
				rep, err = cluster.RotateEncryptionKey(ctx, inv, d.Connect, cluster.RotateKeyOptions{Provider: provider, Out: out})
			} else {
				h, cfg, lerr := o.load(cmd)
				if lerr != nil {
					return lerr
				}
				if provider == "" && o.configPath != "" {
					provider = cfg.EncryptionAtRest.Provider
				}
				if provider == "" {
					keys, found, kerr := encryption.ReadKeys(ctx, h)
					if kerr != nil {
						return kerr
					}
					if !found {
						return fmt.Errorf("%s is missing on %s: Secrets are not encrypted here", inventory.EncryptionConfigPath, h.Name())
					}
					provider = keys[0].Provider
				}
				client, cerr := localClient(cmd, h)
				if cerr != nil {
					return cerr
				}
				p := workflow.NewPrinter(out)
				w := controlplane.Wait{Health: controlplane.NewHTTPHealthChecker(), Out: p, Host: h.Name()}
				rep, err = encryption.Rotate(ctx, []encryption.Node{{Name: h.Name(), Host: h, Restart: cluster.APIServerRestart(w, h, cfg)}}, encryption.RotateOptions{Provider: provider, Client: client, Out: p})
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "Secrets are encrypted with %s (they were with %s): %d rewritten, %d API server restarts\n", rep.To, rep.From, rep.Rewritten, rep.Restarts)
			return nil
		},
	}
	o.addFlags(c.Flags())
	c.Flags().StringVarP(&file, "file", "f", "", "The cluster file (kind: Cluster with hosts): rotate on every control plane over SSH")
	c.Flags().StringVar(&provider, "provider", "", "The new key's provider: secretbox, aesgcm or aescbc (default: the cluster file's encryptionAtRest.provider, else the one in use)")
	return c
}

// localClient is the API of this node's admin.conf, read through h.
func localClient(cmd *cobra.Command, h transport.Host) (kubernetes.Interface, error) {
	data, err := h.ReadFile(cmd.Context(), inventory.AdminKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (rotate-key runs on a control plane)", inventory.AdminKubeconfig, err)
	}
	cfg, err := apiclient.RESTConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", inventory.AdminKubeconfig, err)
	}
	return kubernetes.NewForConfig(cfg)
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}
