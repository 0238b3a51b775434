package preflight

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

// The parts of kubeadm's system validators (k8s.io/system-validators,
// DefaultSysSpec) that kubeboot checks: OS, kernel release, kernel
// configuration and cgroup controllers.
var (
	minKernel         = [2]int{4, 19}
	cgroupsV1         = []string{"cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"}
	cgroupsV1Optional = []string{"hugetlb", "blkio"}
	cgroupsV2         = []string{"cpu", "cpuset", "devices", "freezer", "memory", "pids"}
	cgroupsV2Optional = []string{"hugetlb", "io"}
)

func checkSystemVerification(ctx context.Context, h transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, errs []error) {
	if ostype, err := hostutil.ReadTrimmed(ctx, h, "/proc/sys/kernel/ostype"); err == nil && ostype != "Linux" {
		errs = append(errs, fmt.Errorf("unsupported operating system: %s", ostype))
	}
	release, err := hostutil.ReadTrimmed(ctx, h, "/proc/sys/kernel/osrelease")
	if err != nil {
		return nil, append(errs, fmt.Errorf("failed to get kernel release: %w", err))
	}
	kernel, kerr := parseKernelRelease(release)
	if kerr != nil || kernel[0] < minKernel[0] || kernel[0] == minKernel[0] && kernel[1] < minKernel[1] {
		errs = append(errs, fmt.Errorf("unsupported kernel release: %s: Kubernetes v1.34 needs 4.19 or newer (any 5.x or 6.x is supported)", release))
	}

	if config, err := kernelConfig(ctx, h, release); err != nil {
		warns = append(warns, fmt.Errorf("failed to parse kernel config: %w", err))
	} else {
		var bad []string
		for _, names := range hostutil.RequiredKernelConfig {
			found := false
			for _, n := range names {
				if v := config["CONFIG_"+n]; v == "y" || v == "m" {
					found = true
					break
				}
			}
			if !found {
				bad = append(bad, "CONFIG_"+names[0])
			}
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Errorf("unexpected kernel config: %s", strings.Join(bad, " ")))
		}
	}

	var required, optional, have []string
	if facts.CgroupV1 {
		warns = append(warns, errors.New("cgroups v1 support is in maintenance mode, please migrate to cgroups v2"))
		required, optional = cgroupsV1, cgroupsV1Optional
		b, err := h.ReadFile(ctx, "/proc/cgroups")
		if err != nil {
			return warns, append(errs, fmt.Errorf("failed to get cgroups v1 subsystems: %w", err))
		}
		for _, line := range strings.Split(string(b), "\n") {
			// #subsys_name hierarchy num_cgroups enabled
			f := strings.Fields(line)
			if len(f) == 0 || strings.HasPrefix(f[0], "#") || len(f) >= 4 && f[3] == "0" {
				continue
			}
			have = append(have, f[0])
		}
	} else {
		required, optional = cgroupsV2, cgroupsV2Optional
		b, err := h.ReadFile(ctx, "/sys/fs/cgroup/cgroup.controllers")
		if err != nil {
			return warns, append(errs, fmt.Errorf("failed to get cgroups v2 subsystems: %w", err))
		}
		// devices is implicit in cgroup v2 (an eBPF program), and so is
		// freezer (cgroup.freeze) from kernel 5.2.
		have = append(strings.Fields(string(b)), "devices")
		if kerr == nil && (kernel[0] > 5 || kernel[0] == 5 && kernel[1] >= 2) {
			have = append(have, "freezer")
		}
	}
	if missing := missingFrom(required, have); len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing required cgroups: %s", strings.Join(missing, " ")))
	}
	if missing := missingFrom(optional, have); len(missing) > 0 {
		warns = append(warns, fmt.Errorf("missing optional cgroups: %s", strings.Join(missing, " ")))
	}
	return warns, errs
}

func missingFrom(want, have []string) []string {
	set := map[string]bool{}
	for _, s := range have {
		set[s] = true
	}
	var missing []string
	for _, s := range want {
		if !set[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

var kernelReleaseRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

func parseKernelRelease(release string) ([2]int, error) {
	m := kernelReleaseRE.FindStringSubmatch(release)
	if m == nil {
		return [2]int{}, fmt.Errorf("cannot parse kernel release %q", release)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return [2]int{major, minor}, nil
}

// kernelConfig reads the kernel's build configuration from where the
// system validators look for it. Unlike kubeadm it does not modprobe the
// configs module: preflight changes nothing on the host.
func kernelConfig(ctx context.Context, h transport.Host, release string) (map[string]string, error) {
	paths := []string{
		"/proc/config.gz",
		"/boot/config-" + release,
		"/usr/src/linux-" + release + "/.config",
		"/usr/src/linux/.config",
		"/usr/lib/modules/" + release + "/config",
		"/usr/lib/ostree-boot/config-" + release,
		"/usr/lib/kernel/config-" + release,
		"/usr/src/linux-headers-" + release + "/.config",
		"/lib/modules/" + release + "/build/.config",
	}
	for _, p := range paths {
		b, err := h.ReadFile(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		var r io.Reader = bytes.NewReader(b)
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			r = zr
		}
		config := map[string]string{}
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64*1024), 1024*1024)
		for s.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(s.Text()), "=")
			if ok && strings.HasPrefix(k, "CONFIG_") {
				config[k] = v
			}
		}
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return config, nil
	}
	return nil, fmt.Errorf("no config path in %v is available", paths)
}

// kubeletSysctls are the kernel parameters the kubelet sets when it starts
// (its container manager's setupKernelTunables); it does not start when it
// cannot set one that differs.
var kubeletSysctls = []hostutil.Sysctl{
	{Key: "vm.overcommit_memory", Value: "1"},
	{Key: "vm.panic_on_oom", Value: "0"},
	{Key: "kernel.panic", Value: "10"},
	{Key: "kernel.panic_on_oops", Value: "1"},
	{Key: "kernel.keys.root_maxkeys", Value: "1000000"},
	{Key: "kernel.keys.root_maxbytes", Value: "25000000"},
}

// CheckKernelTunables is kubeboot's KernelTunables check: a kernel parameter
// the kubelet sets that differs and cannot be written here (a read-only
// /proc/sys, as in containers and systemd-nspawn machines, where these
// parameters are the host's) stops the kubelet from starting. They have to
// be set on the host, or in /proc/sys by whatever runs the container.
func CheckKernelTunables(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
	var bad []string
	for _, s := range kubeletSysctls {
		file := "/proc/sys/" + strings.ReplaceAll(s.Key, ".", "/")
		cur, err := hostutil.ReadTrimmed(ctx, h, file)
		if err != nil || cur == s.Value {
			continue // absent (another kernel), or already right
		}
		_, err = h.Run(ctx, transport.Cmd{Args: []string{"test", "-w", file}, ReadOnly: true})
		var ee *transport.ExitError
		if errors.As(err, &ee) && ee.ExitCode == 1 {
			bad = append(bad, fmt.Sprintf("%s = %s (the kubelet sets %s)", s.Key, cur, s.Value))
		}
	}
	if len(bad) > 0 {
		errs = append(errs, fmt.Errorf("%s: read-only here, so the kubelet will not start; set them where they can be written (on the host of this container: sysctl -w)", strings.Join(bad, ", ")))
	}
	return nil, errs
}

// CheckKernelModules is kubeboot's KernelModules check: the overlay file
// system (containerd's snapshotter) and bridge netfilter (kube-proxy's
// rules must see bridged pod traffic) are present, and whether modprobe can
// load them here: on hosts without /lib/modules for the running kernel
// (nested containers, some minimal images) the features must be built in or
// loaded by the host, and the prepare phase only checks for them.
func CheckKernelModules(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, _ []error) {
	var missing []string
	for _, m := range hostutil.KernelModules {
		if !m.Present(ctx, h) {
			missing = append(missing, m.Name)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	release, _ := hostutil.ReadTrimmed(ctx, h, "/proc/sys/kernel/osrelease")
	how := fmt.Sprintf("run modprobe %s (the prepare phase does, and persists it in %s)", strings.Join(missing, " "), hostutil.ModulesLoadFile)
	if _, err := hostutil.LookPath(ctx, h, "modprobe"); err != nil {
		how = "modprobe is not installed (kmod): load them on the host"
	} else if ok, _ := transport.Exists(ctx, h, path.Join("/lib/modules", release)); !ok {
		how = fmt.Sprintf("modprobe cannot load them here (no /lib/modules/%s, as in a container): load them on the host", release)
	}
	return []error{fmt.Errorf("kernel module(s) %s not loaded: %s", strings.Join(missing, ", "), how)}, nil
}
