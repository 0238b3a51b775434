package phases

import (
	"context"
	"fmt"
	"path"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/online"
)

// BootstrapTokenPhase is kubeadm's `bootstrap-token`: the bootstrap token
// Secret, the RBAC rules for TLS bootstrap and CSR auto-approval, the
// kubeadm:cluster-admins binding admin.conf relies on, and the cluster-info
// ConfigMap with the Role letting anonymous users read it.
func BootstrapTokenPhase() *Phase {
	return &Phase{
		Name:  "bootstrap-token",
		Short: "Generates bootstrap tokens used to join a node to a cluster",
		Run:   runBootstrapToken,
	}
}

func runBootstrapToken(ctx context.Context, d *Data) error {
	a, err := d.api(ctx, false)
	if err != nil {
		return err
	}
	tok, err := online.EnsureToken(ctx, a, d.Init.Token, d.Init.TokenTTL, d.Clock())
	if err != nil {
		return err
	}
	d.Init.Token = tok.String()
	if !d.Init.SkipTokenPrint {
		d.Out.Printf("bootstrap-token", "Using token: %s", tok)
	}
	ca, caPath, err := d.clusterCA(ctx)
	if err != nil {
		return err
	}
	return online.ConfigureBootstrap(ctx, a, tok, inventory.ControlPlaneEndpoint(d.Cfg), ca, caPath)
}

// clusterCA is ca.crt as this run wrote or read it, else read from the host.
func (d *Data) clusterCA(ctx context.Context) (ca []byte, file string, err error) {
	file = path.Join(d.Cfg.CertificatesDir, "ca.crt")
	if ca, ok := d.pki().CACertFile(file); ok {
		return ca, file, nil
	}
	if ca, err = d.Host.ReadFile(ctx, file); err != nil {
		return nil, file, fmt.Errorf("read %s on %s: %w (run the certs phase first)", file, d.Host.Name(), err)
	}
	return ca, file, nil
}
