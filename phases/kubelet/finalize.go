package kubelet

import (
	"context"
	"fmt"
	"path"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// ClientCertPath is the kubelet's rotated client certificate and key
// (one PEM file, a symlink the kubelet keeps current), in the kubelet's
// --cert-dir (node.kubeletExtraArgs cert-dir, as kubeadm honours it).
func ClientCertPath(n inventory.Node) string {
	dir := inventory.KubeletPKIDir
	if v := n.KubeletExtraArgs["cert-dir"]; v != "" {
		dir = v
	}
	return path.Join(dir, "kubelet-client-current.pem")
}

// EnableClientCertRotation points kubelet.conf on h at the kubelet's
// rotated client certificate once the kubelet wrote it, as kubeadm's
// kubelet-finalize; changed says the kubelet must be restarted.
func EnableClientCertRotation(ctx context.Context, h transport.Host, node inventory.Node, out *workflow.Printer) (changed bool, err error) {
	const tag = "kubelet-finalize"
	pem := ClientCertPath(node)
	file := inventory.KubeletKubeconfig
	ok, err := transport.Exists(ctx, h, pem)
	if err != nil {
		return false, fmt.Errorf("stat %s on %s: %w", pem, h.Name(), err)
	}
	if !ok {
		out.Printf(tag, "Skipping: %s does not exist on %s (the kubelet writes it once it runs and has its client certificate); %s keeps its embedded certificate. Run `kubeboot init phase kubelet-finalize` again later", pem, h.Name(), file)
		return false, nil
	}
	b, err := h.ReadFile(ctx, file)
	if err != nil {
		return false, fmt.Errorf("read %s on %s: %w", file, h.Name(), err)
	}
	kc, err := clientcmd.Load(b)
	if err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	user := "system:node:" + node.Name
	info, ok := kc.AuthInfos[user]
	if !ok {
		return false, fmt.Errorf("%s has no credentials for user %q: is node.name %q this node's name?", file, user, node.Name)
	}
	if info.ClientCertificate == pem && info.ClientKey == pem && len(info.ClientCertificateData) == 0 && len(info.ClientKeyData) == 0 {
		out.Printf(tag, "%s already points at the rotatable kubelet client certificate and key %s", file, pem)
		return false, nil
	}
	out.Printf(tag, "Updating %q to point to a rotatable kubelet client certificate and key", file)
	info.ClientCertificateData, info.ClientKeyData = nil, nil
	info.ClientCertificate, info.ClientKey = pem, pem
	b, err = clientcmd.Write(*kc)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", file, err)
	}
	if err := h.WriteFile(ctx, file, b, 0o600); err != nil {
		return false, fmt.Errorf("write %s on %s: %w", file, h.Name(), err)
	}
	return true, nil
}
