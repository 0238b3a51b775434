package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/version"
)

// OwnControlPlane reports whether the node already runs the control plane
// that this configuration describes: every static Pod manifest init writes
// is there, byte for byte what this run would write (a re-run of the same
// init). kubeadm refuses such a node; kubeboot's phases reuse what they
// find, so a re-run must get past preflight. Any other manifest (another
// configuration, another cluster, a joined control plane) keeps kubeadm's
// refusal.
func OwnControlPlane(ctx context.Context, h transport.Host, cfg *inventory.Cluster) (bool, error) {
	builds := map[string]func(*inventory.Cluster) (*corev1.Pod, error){
		"kube-apiserver": func(cfg *inventory.Cluster) (*corev1.Pod, error) {
			return controlplane.APIServerPod(ctx, h, cfg)
		},
		"kube-controller-manager": templates.ControllerManagerPod,
		"kube-scheduler":          templates.SchedulerPod,
	}
	if cfg.Etcd.External == nil {
		builds["etcd"] = templates.EtcdPod
	}
	for component, build := range builds {
		pod, err := build(cfg)
		if err != nil {
			return false, nil // the phase that renders it reports the problem
		}
		want, err := templates.MarshalPod(pod)
		if err != nil {
			return false, nil
		}
		have, err := h.ReadFile(ctx, inventory.ManifestPath(component))
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", inventory.ManifestPath(component), err)
		}
		if !bytes.Equal(have, want) {
			return false, nil
		}
	}
	return true, nil
}

// WithoutOwnControlPlaneChecks drops the checks that the node's own
// running control plane fails: its ports (API server, scheduler,
// controller-manager, kubelet, etcd), its manifests and etcd's data.
func WithoutOwnControlPlaneChecks(cfg *inventory.Cluster, checks []Check) []Check {
	bindPort := cfg.Node.BindPort
	if bindPort == 0 {
		bindPort = inventory.DefaultBindPort
	}
	skip := map[string]bool{}
	for _, p := range append([]int{bindPort, KubeSchedulerPort, KubeControllerManagerPort, KubeletPort, EtcdListenClientPort, EtcdListenPeerPort}, loadBalancerPorts(cfg)...) {
		skip[PortCheck(p).Name] = true
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		skip[FileAvailableCheck(inventory.ManifestPath(c)).Name] = true
	}
	if local := cfg.Etcd.Local; local != nil {
		dataDir := local.DataDir
		if dataDir == "" {
			dataDir = inventory.DefaultEtcdDataDir
		}
		skip[DirAvailableCheck(dataDir).Name] = true
	}
	var out []Check
	for _, c := range checks {
		if !skip[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// InitChecks returns the checks of `init`, in kubeadm v1.34's order and with
// its names, followed by kubeboot's own (CgroupVersion, OOMScoreAdj,
// SystemdPID1). Two kubeadm checks are left out: ImagePull (pulling images
// changes the host) and ExternalEtcdVersion (an HTTPS request from the host
// to the etcd endpoints).
func InitChecks(cfg *inventory.Cluster) []Check {
	bindPort := cfg.Node.BindPort
	if bindPort == 0 {
		bindPort = inventory.DefaultBindPort
	}
	checks := []Check{
		{Name: "IsPrivilegedUser", Run: checkPrivilegedUser},
		numCPUCheck(controlPlaneNumCPU),
		memCheck(controlPlaneMemMB),
		{Name: "KubernetesVersion", Run: checkKubernetesVersion},
		firewalldCheck([]int{bindPort, KubeletPort}),
		PortCheck(bindPort),
		PortCheck(KubeSchedulerPort),
		PortCheck(KubeControllerManagerPort),
		FileAvailableCheck(inventory.ManifestPath("kube-apiserver")),
		FileAvailableCheck(inventory.ManifestPath("kube-controller-manager")),
		FileAvailableCheck(inventory.ManifestPath("kube-scheduler")),
		FileAvailableCheck(inventory.ManifestPath("etcd")),
		httpProxyCheck("https", cfg.Node.AdvertiseAddress),
	}
	var ipv4, ipv6 bool
	family := func(cidr string) {
		if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
			ipv4 = ipv4 || p.Addr().Is4()
			ipv6 = ipv6 || p.Addr().Is6()
		}
	}
	for _, cidr := range strings.Split(cfg.Networking.ServiceSubnet, ",") {
		checks = append(checks, httpProxyCIDRCheck("https", cidr))
		family(cidr)
	}
	for _, cidr := range strings.Split(cfg.Networking.PodSubnet, ",") {
		checks = append(checks, httpProxyCIDRCheck("https", cidr))
		family(cidr)
	}
	checks = append(checks, commonChecks(cfg)...)
	if ip, err := netip.ParseAddr(cfg.Node.AdvertiseAddress); err == nil {
		ipv4 = ipv4 || ip.Is4()
		ipv6 = ipv6 || ip.Is6()
	}
	if ipv4 {
		checks = append(checks, fileContentCheck(IPv4Forward, "1"))
	}
	if ipv6 {
		checks = append(checks, fileContentCheck(ipv6DefaultForwarding, "1"))
	}
	if local := cfg.Etcd.Local; local != nil {
		dataDir := local.DataDir
		if dataDir == "" {
			dataDir = inventory.DefaultEtcdDataDir
		}
		checks = append(checks,
			PortCheck(EtcdListenClientPort),
			PortCheck(EtcdListenPeerPort),
			DirAvailableCheck(dataDir),
		)
	}
	if ext := cfg.Etcd.External; ext != nil {
		for _, f := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
			if f != "" {
				checks = append(checks, fileExistingCheck(f, "ExternalEtcdClientCertificates"))
			}
		}
	}
	checks = append(checks, LoadBalancerChecks(cfg, true)...)
	return append(checks, kubebootChecks()...)
}

// kubebootChecks are the checks kubeboot adds to kubeadm's, on every node:
// what the host can do decides how it is configured.
func kubebootChecks() []Check {
	return []Check{
		{Name: "CgroupVersion", Run: checkCgroupVersion},
		{Name: "OOMScoreAdj", Run: checkOOMScoreAdj},
		{Name: "SystemdPID1", Run: checkSystemdPID1},
		{Name: "KernelModules", Run: CheckKernelModules},
		{Name: "KernelTunables", Run: CheckKernelTunables},
	}
}

// commonChecks are kubeadm's checks for every node (init and join).
func commonChecks(cfg *inventory.Cluster) []Check {
	checks := []Check{
		{Name: "CRI", Run: checkCRI},
		{Name: "Swap", Run: checkSwap},
	}
	checks = append(checks, execChecks(cfg.KubernetesVersion)...)
	return append(checks,
		Check{Name: "SystemVerification", Run: checkSystemVerification},
		Check{Name: "Hostname", Run: checkHostname},
		Check{Name: "KubeletVersion", Run: checkKubeletVersion},
		Check{Name: "Service-Kubelet", Run: checkKubeletService},
		PortCheck(KubeletPort),
	)
}

// execChecks are the FileExisting-<program> checks. kubeadm v1.34 requires
// losetup, mount and cp (and conntrack before v1.32). kubeboot adds, as
// warnings, the tools kubeadm checked for until v1.31 that node
// troubleshooting and some CNI and proxy setups still use.
func execChecks(k8sVersion string) []Check {
	var checks []Check
	if v, err := parseSemver(k8sVersion); err == nil && v.LessThan(version.MustParseSemantic("1.32.0")) {
		checks = append(checks, inPathCheck("conntrack", true))
	}
	for _, exe := range []string{"losetup", "mount", "cp"} {
		checks = append(checks, inPathCheck(exe, true))
	}
	for _, exe := range []string{"ip", "iptables", "nsenter", "ebtables", "ethtool", "socat", "tc", "touch"} {
		checks = append(checks, inPathCheck(exe, false))
	}
	return checks
}

// JoinChecks are kubeadm v1.34's JoinNodeChecks, root first, followed by
// kubeboot's own (CgroupVersion, OOMScoreAdj, SystemdPID1, KernelModules,
// KernelTunables). As in kubeadm,
// the common checks get no Kubernetes version (the kubelet's is not
// compared with the control plane's), and a control plane may already have
// the cluster CA (copied by hand for a join without --certificate-key).
func JoinChecks(cfg *inventory.Cluster) []Check {
	checks := []Check{
		{Name: "IsPrivilegedUser", Run: checkPrivilegedUser},
		FileAvailableCheck(inventory.KubeletKubeconfig),
		FileAvailableCheck(inventory.BootstrapKubeconfig),
	}
	// kubeadm passes no Kubernetes version to the common checks of join.
	common := *cfg
	common.KubernetesVersion = ""
	checks = append(checks, commonChecks(&common)...)
	if cfg.Join == nil || !cfg.Join.ControlPlane {
		checks = append(checks, FileAvailableCheck(path.Join(cfg.CertificatesDir, "ca.crt")))
	}
	if cfg.Join != nil {
		if host, _, err := net.SplitHostPort(cfg.Join.APIServerEndpoint); err == nil {
			checks = append(checks, httpProxyCheck("https", host))
			if ip, err := netip.ParseAddr(host); err == nil {
				if ip.Is4() {
					checks = append(checks, fileContentCheck(IPv4Forward, "1"))
				} else {
					checks = append(checks, fileContentCheck(ipv6DefaultForwarding, "1"))
				}
			}
		}
	}
	if cfg.Join == nil || !cfg.Join.ControlPlane {
		checks = append(checks, LoadBalancerChecks(cfg, false)...)
	}
	return append(checks, kubebootChecks()...)
}

// JoinControlPlaneChecks are kubeadm's InitNodeChecks for a secondary
// control plane: init's checks without the ones JoinChecks already ran (root,
// the common node checks, kubeboot's own) and the forwarding sysctl, and,
// with a certificate key, the external etcd client files download-certs
// brings. The Kubernetes version checked is the cluster's.
func JoinControlPlaneChecks(cfg *inventory.Cluster) []Check {
	already := map[string]bool{}
	for _, c := range JoinChecks(cfg) {
		already[c.Name] = true
	}
	delete(already, "HTTPProxy") // a check per host: the advertise address is another one
	if cfg.Join != nil && cfg.Join.CertificateKey != "" {
		// download-certs brings the external etcd client files.
		already["ExternalEtcdClientCertificates"] = true
	}
	var out []Check
	for _, c := range InitChecks(cfg) {
		if already[c.Name] || c.Name == checkName("FileContent", IPv4Forward) || c.Name == checkName("FileContent", ipv6DefaultForwarding) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// NodeChecks are the checks `kubeboot preflight` runs on a host before
// anything changes on it (kubeboot apply runs them on every new host at
// once): join's checks for a worker, with a control plane's on top. They
// need no cluster: the discovery-dependent parts of join's preflight run
// later, in join itself.
func NodeChecks(cfg *inventory.Cluster, controlPlane bool) []Check {
	c := *cfg
	j := inventory.Join{ControlPlane: controlPlane}
	if cfg.Join != nil {
		j = *cfg.Join
		j.ControlPlane = controlPlane
	}
	c.Join = &j
	checks := JoinChecks(&c)
	if controlPlane {
		checks = append(checks, JoinControlPlaneChecks(&c)...)
	}
	return checks
}

// PreparedChecks are the checks whose failure the prepare phase fixes (the
// runtime, swap, the kubelet, the forwarding sysctls, the kernel modules):
// before prepare they only warn.
func PreparedChecks() []string {
	return []string{"CRI", "Swap", "KubeletVersion", "Service-Kubelet", "KernelModules",
		checkName("FileContent", IPv4Forward), checkName("FileContent", ipv6DefaultForwarding)}
}
