package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
)

// kubeconfigServer is the server a kubeconfig points at, as kubeadm v1.34
// does: admin, super-admin and kubelet use the control-plane endpoint; the
// controller-manager and scheduler talk to their own node's API server.
func kubeconfigServer(cfg *inventory.Cluster, name string) string {
	switch name {
	case "controller-manager", "scheduler":
		return inventory.LocalAPIEndpoint(cfg)
	}
	return inventory.ControlPlaneEndpoint(cfg)
}

// Kubeconfig makes or checks the kubeconfig file name (certs.KubeconfigSpecs),
// its client certificate signed by the cluster's CA.
func Kubeconfig(ctx context.Context, d *Data, name string) error {
	var spec certs.KubeconfigSpec
	found := false
	for _, k := range certs.KubeconfigSpecs(d.Cfg) {
		if k.Name == name {
			spec, found = k, true
		}
	}
	if !found {
		return fmt.Errorf("unknown kubeconfig %q", name)
	}
	_, ca, caKey, err := loadCA(ctx, d, "ca")
	if err != nil {
		return err
	}
	file := path.Join(inventory.KubernetesDir, spec.File)
	server := kubeconfigServer(d.Cfg, name)
	existing, err := d.Host.ReadFile(ctx, file)
	switch {
	case err == nil:
		if err := certs.CheckKubeconfig(existing, d.Cfg, server, spec, ca, d.Clock()); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		d.Out.Printf("kubeconfig", "Using existing kubeconfig file: %q", file)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", file, err)
	}
	key, err := getKey(d, "kubeconfig-"+name)
	if err != nil {
		return err
	}
	cert, err := certs.NewSigned(spec.CertSpec(), d.Cfg, key, ca, caKey, d.Clock())
	if err != nil {
		return fmt.Errorf("create the client certificate for %s: %w", spec.File, err)
	}
	data, err := certs.BuildKubeconfig(d.Cfg, server, spec, ca, cert, key)
	if err != nil {
		return fmt.Errorf("build %s: %w", spec.File, err)
	}
	d.Out.Printf("kubeconfig", "Writing %q kubeconfig file", spec.File)
	// Kubeconfigs embed a private key: 0600, as kubeadm writes them.
	if err := d.Host.WriteFile(ctx, file, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
