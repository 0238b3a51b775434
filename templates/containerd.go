package templates

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
)

// Where containerd and the CNI plugins keep their files.
const (
	ContainerdConfigFile = "/etc/containerd/config.toml"
	// ContainerdCertsDir is containerd's registry host configuration
	// directory (config_path): <registry>/hosts.toml.
	ContainerdCertsDir = "/etc/containerd/certs.d"
	CNIBinDir          = "/opt/cni/bin"
	CNIConfDir         = "/etc/cni/net.d"
)

// KubeletCgroupDriver is the cgroup driver KubeletConfig writes; the
// container runtime must use the same one (containerd: SystemdCgroup).
const KubeletCgroupDriver = "systemd"

// ContainerdOptions are the host-dependent settings of containerd's
// configuration.
type ContainerdOptions struct {
	// Major is containerd's major version: 1 (1.6, 1.7) reads configuration
	// version 2, 2 (2.x) version 3, with the CRI plugin split into images
	// and runtime plugins. 0 means 1.
	Major int
	// RestrictOOMScoreAdj keeps containers' oom_score_adj at or above
	// containerd's own, for hosts where a negative oom_score_adj is not
	// permitted (no CAP_SYS_RESOURCE: nested and unprivileged containers).
	RestrictOOMScoreAdj bool
}

// ContainerdHeader starts every file kubeboot writes for containerd, so a
// later run knows which hosts.toml files are its own.
const ContainerdHeader = "# Written by kubeboot (prepare phase); changes are overwritten on the next run.\n"

// ContainerdConfig is /etc/containerd/config.toml for a Kubernetes node: the
// CRI plugin's sandbox (pause) image is the one the kubelet and kubeadm use,
// from imageRepository (so a mirror of registry.k8s.io is used for it too),
// runc uses the systemd cgroup driver as the kubelet does, the CNI plugins
// are in /opt/cni/bin with their configuration in /etc/cni/net.d, and
// registries are configured by hosts.toml files under
// /etc/containerd/certs.d (ContainerdHostsTOML).
func ContainerdConfig(cfg *inventory.Cluster, opts ContainerdOptions) []byte {
	var b strings.Builder
	b.WriteString(ContainerdHeader)
	systemd := KubeletCgroupDriver == "systemd"
	oom := ""
	if opts.RestrictOOMScoreAdj {
		oom = "    # This host does not permit a negative oom_score_adj (no CAP_SYS_RESOURCE).\n    restrict_oom_score_adj = true\n"
	}
	if opts.Major >= 2 {
		const images, runtime = "plugins.'io.containerd.cri.v1.images'", "plugins.'io.containerd.cri.v1.runtime'"
		fmt.Fprintf(&b, "version = 3\n\n[plugins]\n")
		fmt.Fprintf(&b, "  [%s]\n", images)
		fmt.Fprintf(&b, "    [%s.pinned_images]\n      sandbox = %s\n", images, tomlString(Image(cfg, Pause)))
		fmt.Fprintf(&b, "    [%s.registry]\n      config_path = %s\n", images, tomlString(ContainerdCertsDir))
		fmt.Fprintf(&b, "  [%s]\n%s", runtime, oom)
		fmt.Fprintf(&b, "    [%s.cni]\n      bin_dir = %s\n      conf_dir = %s\n", runtime, tomlString(CNIBinDir), tomlString(CNIConfDir))
		fmt.Fprintf(&b, "    [%s.containerd]\n      default_runtime_name = \"runc\"\n", runtime)
		fmt.Fprintf(&b, "      [%s.containerd.runtimes.runc]\n        runtime_type = \"io.containerd.runc.v2\"\n", runtime)
		fmt.Fprintf(&b, "        [%s.containerd.runtimes.runc.options]\n          SystemdCgroup = %t\n", runtime, systemd)
		return []byte(b.String())
	}
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	fmt.Fprintf(&b, "version = 2\n\n[plugins]\n")
	fmt.Fprintf(&b, "  [%s]\n    sandbox_image = %s\n%s", cri, tomlString(Image(cfg, Pause)), oom)
	fmt.Fprintf(&b, "    [%s.cni]\n      bin_dir = %s\n      conf_dir = %s\n", cri, tomlString(CNIBinDir), tomlString(CNIConfDir))
	fmt.Fprintf(&b, "    [%s.containerd]\n      default_runtime_name = \"runc\"\n", cri)
	fmt.Fprintf(&b, "      [%s.containerd.runtimes.runc]\n        runtime_type = \"io.containerd.runc.v2\"\n", cri)
	fmt.Fprintf(&b, "        [%s.containerd.runtimes.runc.options]\n          SystemdCgroup = %t\n", cri, systemd)
	fmt.Fprintf(&b, "    [%s.registry]\n      config_path = %s\n", cri, tomlString(ContainerdCertsDir))
	return []byte(b.String())
}

// ContainerdHostsPath is the hosts.toml of a registry ("docker.io",
// "registry.example.com:5000", "_default").
func ContainerdHostsPath(registry string) string {
	return path.Join(ContainerdCertsDir, registry, "hosts.toml")
}

// ContainerdHostsTOML is a registry's hosts.toml: the mirrors, in order,
// for pulling and resolving, then the registry itself (server) as the
// fallback. _default applies to every registry without its own file and
// has no server.
func ContainerdHostsTOML(registry string, mirrors []string) []byte {
	var b strings.Builder
	b.WriteString(ContainerdHeader)
	b.WriteString("# Mirrors from the cluster configuration (containerd.registryMirrors).\n")
	switch registry {
	case "_default":
	case "docker.io":
		b.WriteString("server = \"https://registry-1.docker.io\"\n")
	default:
		fmt.Fprintf(&b, "server = %s\n", tomlString("https://"+registry))
	}
	for _, m := range mirrors {
		fmt.Fprintf(&b, "\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n", tomlString(m))
	}
	return []byte(b.String())
}

// ContainerdRegistries lists the registries of cfg's mirrors, sorted.
func ContainerdRegistries(cfg *inventory.Cluster) []string {
	out := make([]string, 0, len(cfg.Containerd.RegistryMirrors))
	for r := range cfg.Containerd.RegistryMirrors {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
