package inventory

import (
	"net"
	"path/filepath"
	"strconv"
)

// kubeadm's well-known paths on a node. kubeboot writes the same files in the
// same places so that a kubeadm user finds everything where they expect it.
const (
	KubernetesDir        = "/etc/kubernetes"
	ManifestsDir         = "/etc/kubernetes/manifests"
	KubeletDir           = "/var/lib/kubelet"
	KubeletConfigFile    = "/var/lib/kubelet/config.yaml"
	KubeletEnvFile       = "/var/lib/kubelet/kubeadm-flags.env"
	KubeletDropInFile    = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
	KubeletKubeconfig    = "/etc/kubernetes/kubelet.conf"
	BootstrapKubeconfig  = "/etc/kubernetes/bootstrap-kubelet.conf"
	KubeletPKIDir        = "/var/lib/kubelet/pki"
	AdminKubeconfig      = "/etc/kubernetes/admin.conf"
	SuperAdminKubeconfig = "/etc/kubernetes/super-admin.conf"
)

// ManifestPath is the static pod manifest of a component ("etcd", "kube-apiserver").
func ManifestPath(component string) string {
	return filepath.Join(ManifestsDir, component+".yaml")
}

// ControlPlaneEndpoint is the URL clients outside the node use:
// controlPlaneEndpoint (port defaulting to bindPort) or the advertise address.
func ControlPlaneEndpoint(cfg *Cluster) string {
	if cfg.ControlPlaneEndpoint != "" {
		host, port, err := net.SplitHostPort(cfg.ControlPlaneEndpoint)
		if err != nil {
			host, port = cfg.ControlPlaneEndpoint, strconv.Itoa(cfg.Node.BindPort)
		}
		return "https://" + net.JoinHostPort(host, port)
	}
	return LocalAPIEndpoint(cfg)
}

// LocalAPIEndpoint is this node's own API server.
func LocalAPIEndpoint(cfg *Cluster) string {
	return "https://" + net.JoinHostPort(cfg.Node.AdvertiseAddress, strconv.Itoa(cfg.Node.BindPort))
}
