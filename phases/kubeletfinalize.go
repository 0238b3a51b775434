package phases

import (
	"context"
	"fmt"
	"path"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// KubeletFinalizePhase is kubeadm's `kubelet-finalize` with its v1.34
// sub-phase enable-client-cert-rotation: once the kubelet has rotated its
// client certificate, kubelet.conf points at
// /var/lib/kubelet/pki/kubelet-client-current.pem instead of the certificate
// the kubeconfig phase embedded (which expires after a year).
func KubeletFinalizePhase() *Phase {
	return &Phase{
		Name:  "kubelet-finalize",
		Short: "Updates settings relevant to the kubelet after TLS bootstrap",
		Phases: []*Phase{
			{Name: "enable-client-cert-rotation", Short: "Enable kubelet client certificate rotation", Run: runEnableClientCertRotation},
		},
	}
}

// KubeletClientCertPath is the kubelet's rotated client certificate and key
// (one PEM file, a symlink the kubelet keeps current), in the kubelet's
// --cert-dir (node.kubeletExtraArgs cert-dir, as kubeadm honours it).
func KubeletClientCertPath(n inventory.Node) string {
	dir := inventory.KubeletPKIDir
	if v := n.KubeletExtraArgs["cert-dir"]; v != "" {
		dir = v
	}
	return path.Join(dir, "kubelet-client-current.pem")
}

func runEnableClientCertRotation(ctx context.Context, d *Data) error {
	const tag = "kubelet-finalize"
	pem := KubeletClientCertPath(d.Cfg.Node)
	file := inventory.KubeletKubeconfig
	ok, err := transport.Exists(ctx, d.Host, pem)
	if err != nil {
		return fmt.Errorf("stat %s on %s: %w", pem, d.Host.Name(), err)
	}
	if !ok {
		d.Out.Printf(tag, "Skipping: %s does not exist on %s (the kubelet writes it once it runs and has its client certificate); %s keeps its embedded certificate. Run `kubeboot init phase kubelet-finalize` again later", pem, d.Host.Name(), file)
		return nil
	}
	b, err := d.Host.ReadFile(ctx, file)
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", file, d.Host.Name(), err)
	}
	kc, err := clientcmd.Load(b)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	user := "system:node:" + d.Cfg.Node.Name
	info, ok := kc.AuthInfos[user]
	if !ok {
		return fmt.Errorf("%s has no credentials for user %q: is node.name %q this node's name?", file, user, d.Cfg.Node.Name)
	}
	if info.ClientCertificate == pem && info.ClientKey == pem && len(info.ClientCertificateData) == 0 && len(info.ClientKeyData) == 0 {
		d.Out.Printf(tag, "%s already points at the rotatable kubelet client certificate and key %s", file, pem)
		return nil
	}
	d.Out.Printf(tag, "Updating %q to point to a rotatable kubelet client certificate and key", file)
	info.ClientCertificateData, info.ClientKeyData = nil, nil
	info.ClientCertificate, info.ClientKey = pem, pem
	out, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("encode %s: %w", file, err)
	}
	if err := d.Host.WriteFile(ctx, file, out, 0o600); err != nil {
		return fmt.Errorf("write %s on %s: %w", file, d.Host.Name(), err)
	}
	return restartKubelet(ctx, d, tag)
}
