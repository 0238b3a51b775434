package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// joinKubeconfigs are the kubeconfigs of a joining control plane (kubeadm's
// CreateJoinControlPlaneKubeConfigFiles): kubelet.conf comes from the
// kubelet's TLS bootstrap, and there is one super-admin, made by init.
var joinKubeconfigs = []string{"admin", "controller-manager", "scheduler"}

// JoinCerts is init's certs phase for a joining control plane: the CAs
// and the service-account key must already be here (downloaded or copied)
// and are checked and reused; every leaf certificate is this node's own.
func JoinCerts(ctx context.Context, d *Data) error {
	cfg := d.Cfg
	d.Out.Printf("certs", "Using certificateDir folder %q", cfg.CertificatesDir)
	startJoinKeys(ctx, d)
	specs := certs.Specs(cfg)
	for _, s := range specs {
		if s.IsCA() {
			if err := requireCA(ctx, d, s); err != nil {
				return err
			}
		}
	}
	for _, s := range specs {
		if !s.IsCA() {
			if err := ensureLeaf(ctx, d, s); err != nil {
				return err
			}
		}
	}
	return requireSA(ctx, d)
}

// startJoinKeys generates, in the background, the keys of the leaves and
// kubeconfigs this node does not have yet.
func startJoinKeys(ctx context.Context, d *Data) {
	if d.Keys == nil {
		return
	}
	var names []string
	missing := func(p string) bool {
		ok, err := transport.Exists(ctx, d.Host, p)
		return err == nil && !ok
	}
	for _, s := range certs.Specs(d.Cfg) {
		if !s.IsCA() && missing(s.CertPath(d.Cfg)) {
			names = append(names, "cert-"+s.Name)
		}
	}
	for _, k := range certs.KubeconfigSpecs(d.Cfg) {
		for _, n := range joinKubeconfigs {
			if k.Name == n && missing(path.Join(inventory.KubernetesDir, k.File)) {
				names = append(names, "kubeconfig-"+n)
			}
		}
	}
	d.Keys.Start(names...)
}

// requireCA checks a shared CA that must exist on a joining control plane.
func requireCA(ctx context.Context, d *Data, spec certs.Spec) error {
	cert, key, err := readCA(ctx, d, spec, "copy both from a control-plane node again")
	if err != nil {
		return err
	}
	if cert == nil || key == nil {
		return fmt.Errorf("the %s certificate authority (%s and %s) is missing: a joining control plane uses the cluster's, never a new one; join with --certificate-key (after `kubeboot init phase upload-certs --upload-certs`), or copy both from a control-plane node", spec.Name, spec.CertPath(d.Cfg), spec.KeyPath(d.Cfg))
	}
	d.Out.Printf("certs", "Using existing %s certificate authority", spec.Name)
	return nil
}

// requireSA checks the shared service-account key pair.
func requireSA(ctx context.Context, d *Data) error {
	keyPath, pubPath := saKeyPath(d.Cfg), saPubPath(d.Cfg)
	b, err := d.Host.ReadFile(ctx, keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: every control plane signs service account tokens with the cluster's key; join with --certificate-key, or copy %s and %s from a control-plane node", keyPath, keyPath, pubPath)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", keyPath, err)
	}
	key, err := certs.ParseKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", keyPath, err)
	}
	return useExistingSA(ctx, d, key, "copy both from a control-plane node again")
}

// JoinKubeconfigs makes or checks a joining control plane's kubeconfigs
// (admin, controller-manager, scheduler), signed by the cluster's CA.
func JoinKubeconfigs(ctx context.Context, d *Data) error {
	d.Out.Printf("kubeconfig", "Using kubeconfig folder %q", inventory.KubernetesDir)
	for _, name := range joinKubeconfigs {
		if err := Kubeconfig(ctx, d, name); err != nil {
			return err
		}
	}
	return nil
}
