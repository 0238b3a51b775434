// Package prepare is kubeboot's prepare phase: what kubeadm assumes is
// already on a node (kernel modules and sysctls, swap off, containerd, runc,
// the CNI plugins, kubelet and kubectl with their units, the images),
// installed from an offline bundle or the distribution's packages. Its
// steps act on Data; init and join run them as their first phase.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"strings"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// Data is what prepare's steps act on and share within one run.
type Data struct {
	Host   transport.Host
	Cfg    *inventory.Cluster
	Out    *workflow.Printer
	DryRun bool
	// Bundle is the offline bundle on the node (--bundle).
	Bundle string
	// Facts probes the host, once per run; when nil, prepare does.
	Facts func(ctx context.Context) (hostutil.HostFacts, error)
	// Plan is every leaf phase the run will run (Runner's Prepare).
	Plan []string
	// Role is what the node is prepared for (RoleControlPlane,
	// RoleWorker, RoleUnknown), which the bundle must serve.
	Role string

	st *prepareState
}

// prepareState is what prepare's sub-phases share within one run.
type prepareState struct {
	// the host's facts when Data.Facts is nil
	facts hostutil.FactsOnce
	// manifest is the bundle's, read by the parent phase.
	manifest *bundle.Manifest
	// staged is the set of bundle paths unpacked and verified below
	// stagingDir.
	staged map[string]bool
	// containerdChanged is set when containerd's binaries or unit changed,
	// so the containerd sub-phase restarts it.
	containerdChanged bool
	// rec is the host's record of what prepare installed.
	rec recorder
}

func (d *Data) state() *prepareState {
	if d.st == nil {
		d.st = &prepareState{staged: map[string]bool{}}
	}
	return d.st
}

// Files and directories prepare writes.
const (
	// 99-: applied after the distribution's files, which may turn
	// forwarding off.
	sysctlFile = "/etc/sysctl.d/99-kubeboot.conf"
	fstabFile  = "/etc/fstab"
	// stagingDir is where a bundle is unpacked and verified: on disk
	// (images are large), not in /tmp, which may be memory.
	stagingDir = "/var/lib/kubeboot/bundle-staging"
)

// prepareSysctls are what kubeadm's preflight and the pod network need:
// forwarding, and bridged traffic through iptables (kube-proxy's rules
// must see pod-to-pod traffic on one node's bridge). IPv6 forwarding only
// for clusters with IPv6 addresses.
func prepareSysctls(d *Data) []hostutil.Sysctl {
	s := []hostutil.Sysctl{
		{Key: "net.bridge.bridge-nf-call-iptables", Value: "1"},
		{Key: "net.bridge.bridge-nf-call-ip6tables", Value: "1"},
		{Key: "net.ipv4.ip_forward", Value: "1"},
	}
	v6 := false
	for _, cidr := range strings.Split(d.Cfg.Networking.PodSubnet+","+d.Cfg.Networking.ServiceSubnet, ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil && p.Addr().Is6() {
			v6 = true
		}
	}
	if ip, err := netip.ParseAddr(d.Cfg.Node.AdvertiseAddress); err == nil && ip.Is6() {
		v6 = true
	}
	if v6 {
		s = append(s, hostutil.Sysctl{Key: "net.ipv6.conf.all.forwarding", Value: "1"}, hostutil.Sysctl{Key: "net.ipv6.conf.default.forwarding", Value: "1"})
	}
	return s
}

const writtenByKubeboot = "# Written by kubeboot (prepare phase); changes are overwritten on the next run.\n"

// Kernel loads the kernel modules and sets the sysctls Kubernetes needs,
// now and persistently (modules-load.d, sysctl.d).
func Kernel(ctx context.Context, d *Data) error {
	const tag = "prepare"
	h := d.Host
	var mods strings.Builder
	mods.WriteString(writtenByKubeboot)
	for _, m := range hostutil.KernelModules {
		mods.WriteString(m.Name + "\n")
	}
	if err := writeReport(ctx, d, hostutil.ModulesLoadFile, "kernel modules to load at boot", []byte(mods.String()), 0o644); err != nil {
		return err
	}
	for _, m := range hostutil.KernelModules {
		if m.Present(ctx, h) {
			d.Out.Printf(tag, "Kernel module %s: available (loaded or built in)", m.Name)
			continue
		}
		_, err := h.Run(ctx, transport.Cmd{Args: []string{"modprobe", m.Name}})
		switch {
		case d.DryRun:
			d.Out.Printf(tag, "Kernel module %s: not loaded; would run modprobe %s", m.Name, m.Name)
		case err == nil || m.Present(ctx, h):
			d.Out.Printf(tag, "Kernel module %s: loaded", m.Name)
			if err := d.note(ctx, func(r *Record) (changed bool) { r.Modules, changed = addUnique(r.Modules, m.Name); return }); err != nil {
				return err
			}
		default:
			return fmt.Errorf("kernel module %s is missing on %s and cannot be loaded (%v): load it on the host (modprobe %s), or use a kernel that has it", m.Name, h.Name(), err, m.Name)
		}
	}

	var conf strings.Builder
	conf.WriteString(writtenByKubeboot)
	for _, s := range prepareSysctls(d) {
		fmt.Fprintf(&conf, "%s = %s\n", s.Key, s.Value)
	}
	if err := writeReport(ctx, d, sysctlFile, "kernel parameters", []byte(conf.String()), 0o644); err != nil {
		return err
	}
	var set []string
	for _, s := range prepareSysctls(d) {
		file := "/proc/sys/" + strings.ReplaceAll(s.Key, ".", "/")
		cur, err := hostutil.ReadTrimmed(ctx, h, file)
		if err == nil && cur == s.Value {
			continue
		}
		if err == nil {
			if err := d.note(ctx, func(r *Record) bool {
				if _, ok := r.Sysctls[s.Key]; ok {
					return false
				}
				if r.Sysctls == nil {
					r.Sysctls = map[string]string{}
				}
				r.Sysctls[s.Key] = cur
				return true
			}); err != nil {
				return err
			}
		}
		if _, err := h.Run(ctx, transport.Cmd{Args: []string{"sysctl", "-w", s.Key + "=" + s.Value}}); err != nil {
			return fmt.Errorf("set %s=%s: %w", s.Key, s.Value, err)
		}
		set = append(set, s.Key+"="+s.Value)
	}
	if len(set) == 0 {
		d.Out.Printf(tag, "Kernel parameters are set (%s)", sysctlFile)
	} else {
		d.Out.Printf(tag, "Set %s", strings.Join(set, ", "))
	}
	return nil
}

// writeReport writes a file when its content differs and says which it was.
func writeReport(ctx context.Context, d *Data, file, what string, data []byte, mode fs.FileMode) error {
	changed, err := d.writeIfChanged(ctx, file, data, mode)
	if err != nil {
		return err
	}
	if changed {
		d.Out.Printf("prepare", "Writing %s to %s", what, file)
	} else {
		d.Out.Printf("prepare", "Using existing %s %s", what, file)
	}
	return nil
}

// Swap turns swap off, now and in /etc/fstab.
func Swap(ctx context.Context, d *Data) error {
	const tag = "prepare"
	h := d.Host
	if b, err := h.ReadFile(ctx, "/proc/swaps"); err == nil && len(strings.Split(strings.TrimSpace(string(b)), "\n")) > 1 {
		if c := containerHost(ctx, h); c != "" {
			// /proc/swaps is not namespaced: this is the host's swap, and
			// swapoff would change the machine this container runs on.
			d.Out.Printf(tag, "WARNING: swap is on, and %s is a container (%s): the swap is the host's; turn it off there (swapoff -a), or the kubelet will not start", h.Name(), c)
		} else if _, err := h.Run(ctx, transport.Cmd{Args: []string{"swapoff", "-a"}}); err != nil {
			return fmt.Errorf("turn swap off: %w", err)
		} else {
			d.Out.Printf(tag, "Turned swap off (swapoff -a)")
		}
	} else {
		d.Out.Printf(tag, "Swap is off")
	}

	b, err := h.ReadFile(ctx, fstabFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", fstabFile, err)
	}
	out, n := disableSwapInFstab(string(b))
	if n == 0 {
		d.Out.Printf(tag, "No swap in %s", fstabFile)
		return nil
	}
	mode := fs.FileMode(0o644)
	if fi, err := h.Stat(ctx, fstabFile); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := d.note(ctx, func(r *Record) bool { changed := !r.FstabSwap; r.FstabSwap = true; return changed }); err != nil {
		return err
	}
	if err := h.WriteFile(ctx, fstabFile, []byte(out), mode); err != nil {
		return fmt.Errorf("write %s: %w", fstabFile, err)
	}
	d.Out.Printf(tag, "Commented out %d swap entr%s in %s", n, map[bool]string{true: "y", false: "ies"}[n == 1], fstabFile)
	return nil
}

// swapCommentPrefix marks the fstab lines prepare turned off.
const swapCommentPrefix = "#kubeboot swap off# "

// disableSwapInFstab comments out every swap entry of an fstab and says how
// many there were.
func disableSwapInFstab(fstab string) (string, int) {
	lines := strings.SplitAfter(fstab, "\n")
	n := 0
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) >= 3 && !strings.HasPrefix(f[0], "#") && f[2] == "swap" {
			lines[i] = swapCommentPrefix + line
			n++
		}
	}
	return strings.Join(lines, ""), n
}

// containerHost says which container manager h runs under, or "".
func containerHost(ctx context.Context, h transport.Host) string {
	if b, err := h.ReadFile(ctx, "/run/systemd/container"); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if ok, _ := transport.Exists(ctx, h, f); ok {
			return path.Base(f)
		}
	}
	return ""
}

// Phase is prepare with its sub-phases. Each sub-phase can be re-run alone
// (`init phase prepare containerd`) or skipped (--skip-phases prepare/swap);
// the parent's Run, which checks the bundle, runs before any of them.
func Phase() *workflow.Phase[*Data] {
	return &workflow.Phase[*Data]{
		Name:  "prepare",
		Short: "Install and configure the container runtime, kubelet, kubectl and kernel settings the node needs",
		Prepare: func(_ context.Context, d *Data, plan []string) error {
			d.Plan = plan
			return nil
		},
		Run: CheckBundle,
		Phases: []*workflow.Phase[*Data]{
			{Name: "kernel", Short: "Load the overlay and br_netfilter modules and set the forwarding and bridge sysctls, persistently", Run: Kernel},
			{Name: "swap", Short: "Turn swap off, now and in /etc/fstab", Run: Swap},
			{Name: "binaries", Short: "Install containerd, runc, the CNI plugins, kubelet, kubectl and their units (from --bundle, or the distribution's packages)", Run: Binaries},
			{Name: "containerd", Short: "Write containerd's configuration and registry mirrors, and (re)start it when they changed", Run: Containerd},
			{Name: "images", Short: "Import the bundle's images into containerd's k8s.io namespace (with --bundle)", Run: Images},
		},
	}
}

// facts are the host's facts, through Facts when set, else probed once.
func (d *Data) facts(ctx context.Context) (hostutil.HostFacts, error) {
	if d.Facts != nil {
		return d.Facts(ctx)
	}
	return d.state().facts.Get(ctx, d.Host)
}
