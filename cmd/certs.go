package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/certs/copycerts"
)

// newCertsCommand is `kubeboot certs`; for now kubeadm's certificate-key.
func newCertsCommand(out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Generate the certificate key that seals the control-plane certificates for joining control planes",
		Long: `Certificate commands. Today there is one: certificate-key, the key that
'kubeboot init --upload-certs' seals the shared control-plane certificates with
(the kubeadm-certs Secret) and 'kubeboot join --control-plane' opens them with.

The certificates themselves are made by 'kubeboot init phase certs' (all, or one:
ca, apiserver, etcd-server, ...); checking their expiry and renewing them are not
built yet.`,
	}
	c.AddCommand(&cobra.Command{
		Use:   "certificate-key",
		Short: "Generate certificate keys",
		Long: `Generate a certificate key: 32 random bytes, hex-encoded, for
'kubeboot init --upload-certs --certificate-key' and 'kubeboot join --control-plane --certificate-key'.
The key encrypts the control-plane certificates in the kubeadm-certs Secret; keep it secret.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			k, err := copycerts.CreateCertificateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(out, k)
			return nil
		},
	})
	return c
}
