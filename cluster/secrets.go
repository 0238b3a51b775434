package cluster

import (
	"context"
	"fmt"
	"io"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/encryption"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// RotateKeyOptions are `kubeboot secrets rotate-key -f`'s.
type RotateKeyOptions struct {
	// Provider is the new key's; empty: the inventory's
	// encryptionAtRest.provider.
	Provider string
	Out      io.Writer
	// Health checks a host's endpoints; nil: through its SSH connection.
	Health func(h transport.Host) controlplane.HealthChecker
}

// RotateEncryptionKey rotates the key Secrets are encrypted with on every
// control plane of inv (encryption.Rotate): one connection per control
// plane, its API server restarted through it, and the Secrets rewritten
// through the first control plane's API.
func RotateEncryptionKey(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), o RotateKeyOptions) (encryption.RotateReport, error) {
	p := workflow.NewPrinter(o.Out)
	var nodes []encryption.Node
	for i := range inv.Hosts {
		hh := &inv.Hosts[i]
		if !hh.IsControlPlane() {
			continue
		}
		h, cfg, closeHost, err := openHost(ctx, inv, connect, i)
		if err != nil {
			return encryption.RotateReport{}, fmt.Errorf("%s: %w", hh.Name, err)
		}
		defer closeHost()
		hc := controlplane.NewHTTPHealthChecker()
		if o.Health != nil {
			hc = o.Health(h)
		} else if d, ok := h.(Dialer); ok {
			hc = controlplane.NewHTTPHealthCheckerVia(d.DialContext)
		}
		nodes = append(nodes, encryption.Node{Name: hh.Name, Host: h, Restart: APIServerRestart(controlplane.Wait{Health: hc, Out: p, Host: hh.Name}, h, cfg)})
	}
	if len(nodes) == 0 {
		return encryption.RotateReport{}, fmt.Errorf("%s has no control plane", inv.Path)
	}
	client, err := KubeClient(ctx, nodes[0].Host, inv.BindPort())
	if err != nil {
		return encryption.RotateReport{}, fmt.Errorf("%s: %w", nodes[0].Name, err)
	}
	prov := o.Provider
	if prov == "" {
		prov = inv.Cluster.EncryptionAtRest.Provider
	}
	return encryption.Rotate(ctx, nodes, encryption.RotateOptions{Provider: prov, Client: client, Out: p})
}

// APIServerRestart restarts kube-apiserver on h with w (Wait.Reload: a
// new Pod for its changed files); one without a manifest is an error: it
// would not have read the new configuration when rotate-key goes on.
func APIServerRestart(w controlplane.Wait, h transport.Host, cfg *inventory.Cluster) func(context.Context) error {
	return func(ctx context.Context) error {
		restarted, err := w.Reload(ctx, h, cfg)
		if err != nil {
			return err
		}
		if !restarted {
			return fmt.Errorf("kube-apiserver is not running on %s (or has no manifest): start it, then run rotate-key again", h.Name())
		}
		return nil
	}
}
