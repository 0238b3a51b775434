package addons

import (
	"fmt"

	"github.com/kubeboot/kubeboot/inventory"
)

// Versions and published images of the pod networks.
const (
	FlannelVersion          = "v0.26.7"
	FlannelCNIPluginVersion = "v1.6.2-flannel1"
	CalicoVersion           = "v3.29.3"

	FlannelImage          = "ghcr.io/flannel-io/flannel:" + FlannelVersion
	FlannelCNIPluginImage = "ghcr.io/flannel-io/flannel-cni-plugin:" + FlannelCNIPluginVersion
	CalicoCNIImage        = "docker.io/calico/cni:" + CalicoVersion
	CalicoNodeImage       = "docker.io/calico/node:" + CalicoVersion
	CalicoControllerImage = "docker.io/calico/kube-controllers:" + CalicoVersion
)

var (
	flannelTemplate = mustTemplate("kube-flannel.yaml")
	calicoTemplate  = mustTemplate("calico.yaml")
)

// CNIManifest returns the pod network's manifest for cfg, nil for None.
//
// Flannel: flannel v0.26.7's kube-flannel.yml (namespace kube-flannel, its
// RBAC, ConfigMap kube-flannel-cfg, DaemonSet kube-flannel-ds with the
// install-cni-plugin and install-cni init containers), vxlan backend, with
// net-conf.json's Network = the pod subnet's IPv4 CIDR and, for an IPv6 or
// dual-stack pod subnet, EnableIPv6 and IPv6Network (EnableIPv4 false when
// there is no IPv4 CIDR).
//
// Calico: Calico v3.29.3's calico.yaml (Kubernetes API datastore, IPIP) with
// CALICO_IPV4POOL_CIDR = the pod subnet. It is IPv4-only; an IPv6 or
// dual-stack pod subnet is an error.
//
// Images follow the mirror rule of the package documentation.
func CNIManifest(cfg *inventory.Cluster, cni CNI) ([]byte, error) {
	switch cni {
	case None:
		return nil, nil
	case Flannel, "":
		return flannelManifest(cfg)
	case Calico:
		return calicoManifest(cfg)
	}
	return nil, fmt.Errorf("unknown CNI %q: want %s, %s or %s", cni, Flannel, Calico, None)
}

// CNIImages lists the images the pod network's manifest names, after the
// mirror rule: what a mirror or an offline bundle must hold.
func CNIImages(cfg *inventory.Cluster, cni CNI) ([]string, error) {
	switch cni {
	case None:
		return nil, nil
	case Flannel, "":
		return []string{mirrored(cfg, FlannelCNIPluginImage), mirrored(cfg, FlannelImage)}, nil
	case Calico:
		return []string{mirrored(cfg, CalicoCNIImage), mirrored(cfg, CalicoNodeImage), mirrored(cfg, CalicoControllerImage)}, nil
	}
	return nil, fmt.Errorf("unknown CNI %q: want %s, %s or %s", cni, Flannel, Calico, None)
}

func flannelManifest(cfg *inventory.Cluster) ([]byte, error) {
	v4, v6, err := podNetworks(cfg)
	if err != nil {
		return nil, fmt.Errorf("flannel: %w", err)
	}
	data := struct{ Network, IPv6Network, FlannelImage, CNIPluginImage string }{
		FlannelImage:   mirrored(cfg, FlannelImage),
		CNIPluginImage: mirrored(cfg, FlannelCNIPluginImage),
	}
	if v4.IsValid() {
		data.Network = v4.String()
	}
	if v6.IsValid() {
		data.IPv6Network = v6.String()
	}
	return render(flannelTemplate, data)
}

func calicoManifest(cfg *inventory.Cluster) ([]byte, error) {
	v4, v6, err := podNetworks(cfg)
	if err != nil {
		return nil, fmt.Errorf("calico: %w", err)
	}
	if !v4.IsValid() || v6.IsValid() {
		return nil, fmt.Errorf("calico: kubeboot's Calico manifest is IPv4-only, but networking.podSubnet is %q (use flannel for IPv6 or dual-stack)", cfg.Networking.PodSubnet)
	}
	return render(calicoTemplate, struct{ IPv4PoolCIDR, CNIImage, NodeImage, KubeControllersImage string }{
		IPv4PoolCIDR:         v4.String(),
		CNIImage:             mirrored(cfg, CalicoCNIImage),
		NodeImage:            mirrored(cfg, CalicoNodeImage),
		KubeControllersImage: mirrored(cfg, CalicoControllerImage),
	})
}
