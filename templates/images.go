package templates

import (
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
)

// Versions of the images kubeadm v1.34.3 uses besides the Kubernetes ones.
const (
	EtcdVersion    = "3.6.5-0"
	PauseVersion   = "3.10.1"
	CoreDNSVersion = "v1.12.1"
)

// Component names, as kubeadm names the static pods, containers and images.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	KubeProxy             = "kube-proxy"
	Pause                 = "pause"
	CoreDNS               = "coredns"
)

// Image returns the image kubeadm v1.34.3 uses for a component: the
// Kubernetes components (and any other name) are
// <imageRepository>/<component>:<kubernetesVersion> ("+" in the version
// becomes "_", as kubeadm does), etcd and pause carry their own versions, and
// CoreDNS is registry.k8s.io/coredns/coredns:v1.12.1 from the default
// repository but <imageRepository>/coredns:v1.12.1 from any other (kubeadm's
// rule: mirrors flatten the path).
func Image(cfg *inventory.Cluster, component string) string {
	repo := cfg.ImageRepository
	if repo == "" {
		repo = inventory.DefaultImageRepository
	}
	repo = strings.TrimSuffix(repo, "/")
	switch component {
	case Etcd:
		return fmt.Sprintf("%s/etcd:%s", repo, EtcdVersion)
	case Pause:
		return fmt.Sprintf("%s/pause:%s", repo, PauseVersion)
	case CoreDNS:
		if repo == inventory.DefaultImageRepository {
			repo += "/coredns"
		}
		return fmt.Sprintf("%s/coredns:%s", repo, CoreDNSVersion)
	}
	version := cfg.KubernetesVersion
	if version == "" {
		version = inventory.DefaultKubernetesVersion
	}
	return fmt.Sprintf("%s/%s:%s", repo, component, strings.ReplaceAll(version, "+", "_"))
}
