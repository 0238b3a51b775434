package prepare

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/preflight"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// Binaries installs containerd, runc, the CNI plugins, kubelet and kubectl
// with their units: from the bundle, or the distribution's packages.
func Binaries(ctx context.Context, d *Data) (err error) {
	st := d.state()
	if st.manifest != nil {
		defer func() { st.doneWithBundle(ctx, d, "prepare/binaries", err != nil) }()
		return binariesFromBundle(ctx, d, st)
	}
	return binariesFromPackages(ctx, d, st)
}

func planned(d *Data, phase string) bool {
	for _, p := range d.Plan {
		if p == phase {
			return true
		}
	}
	return false
}

func binariesFromBundle(ctx context.Context, d *Data, st *prepareState) error {
	const tag = "prepare"
	h := d.Host
	m := st.manifest
	files := append(m.ByType(bundle.TypeBinary), m.ByType(bundle.TypeCNIPlugin)...)
	outdated, err := outdatedFiles(ctx, h, files)
	if err != nil {
		return err
	}
	if len(outdated) == 0 {
		d.Out.Printf(tag, "The bundle's %d binaries and CNI plugins are installed; not reinstalling them", len(files))
	} else {
		if err := st.stage(ctx, d, st.planFiles(d)); err != nil {
			return err
		}
		verb := "Installed"
		if d.DryRun {
			verb = "Would install"
		}
		var dsts []string
		for _, f := range outdated {
			dsts = append(dsts, bundle.InstallPath(f))
		}
		if err := d.willWrite(ctx, dsts, nil); err != nil {
			return err
		}
		for _, f := range outdated {
			dst := bundle.InstallPath(f)
			if err := InstallFile(ctx, h, path.Join(stagingDir, f.Path), dst, 0o755); err != nil {
				return err
			}
			if f.Type == bundle.TypeBinary {
				d.Out.Printf(tag, "%s %s %s as %s", verb, f.Name, f.Version, dst)
			}
			if f.Name == "containerd" || f.Name == "containerd-shim-runc-v2" {
				st.containerdChanged = true
			}
		}
		if n := len(outdated) - countType(outdated, bundle.TypeBinary); n > 0 {
			d.Out.Printf(tag, "%s %d CNI plugins %s in %s", verb, n, m.CNIPluginsVersion, bundle.CNIBinDir)
		}
	}
	warnShadowingRunc(ctx, d)
	containerdBin, _ := m.Binary("containerd")
	units := []struct{ file, what string }{
		{templates.ContainerdUnitFile, "containerd systemd unit"},
		{templates.KubeletUnitFile, "kubelet systemd unit"},
	}
	data := [][]byte{templates.ContainerdService(bundle.InstallPath(containerdBin)), templates.KubeletService()}
	changed := false
	for i, u := range units {
		c, err := d.writeIfChanged(ctx, u.file, data[i], 0o644)
		if err != nil {
			return err
		}
		if c {
			d.Out.Printf(tag, "Writing the %s to %s", u.what, u.file)
			changed = true
			if i == 0 {
				st.containerdChanged = true
			}
		} else {
			d.Out.Printf(tag, "Using existing %s %s", u.what, u.file)
		}
	}
	if _, ok := m.Binary("crictl"); ok {
		// crictl looks for the runtime on several sockets and warns
		// without this file.
		endpoint := "unix://" + criSocketPath(d.Cfg)
		conf := fmt.Sprintf("runtime-endpoint: %s\nimage-endpoint: %s\n", endpoint, endpoint)
		if err := writeReport(ctx, d, crictlConfigFile, "crictl configuration", []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return enableUnits(ctx, d, changed, "containerd", "kubelet")
}

const crictlConfigFile = "/etc/crictl.yaml"

func countType(files []bundle.File, t string) int {
	n := 0
	for _, f := range files {
		if f.Type == t {
			n++
		}
	}
	return n
}

// warnShadowingRunc warns about a runc earlier in the PATH than the one
// prepare installs: containerd would run that one.
func warnShadowingRunc(ctx context.Context, d *Data) {
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin"} {
		p := path.Join(dir, "runc")
		if ok, _ := transport.Exists(ctx, d.Host, p); ok {
			d.Out.Printf("prepare", "WARNING: %s comes before %s in the PATH: containerd will run it, not the bundle's runc", p, path.Join(bundle.SbinDir, "runc"))
		}
	}
}

// enableUnits reloads systemd when units changed and enables containerd and
// the kubelet (the kubelet starts in kubelet-start, as kubeadm's packages
// leave it enabled but crash-looping until then).
func enableUnits(ctx context.Context, d *Data, reload bool, units ...string) error {
	facts, err := d.facts(ctx)
	if err != nil {
		return err
	}
	if !facts.SystemdPID1 {
		d.Out.Printf("prepare", "systemd is not PID 1 on %s: the units are written but not enabled", d.Host.Name())
		return nil
	}
	if reload {
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"systemctl", "daemon-reload"}}); err != nil {
			return err
		}
	}
	for _, unit := range units {
		if out, err := transport.Output(ctx, d.Host, "systemctl", "is-enabled", unit); err == nil && out == "enabled" {
			continue
		}
		if err := d.note(ctx, func(r *Record) (changed bool) { r.Units, changed = addUnique(r.Units, unit); return }); err != nil {
			return err
		}
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"systemctl", "enable", unit}}); err != nil {
			return fmt.Errorf("%w; see systemctl status %s", err, unit)
		}
		d.Out.Printf("prepare", "Enabled %s.service", unit)
	}
	return nil
}

// distro is how the host's distribution packages what prepare needs.
type distro struct {
	name string // PRETTY_NAME
	// manager is apt-get, dnf or yum; empty when kubeboot does not know
	// the distribution's packages.
	manager string
	// packages maps containerd, runc and cni to package names.
	packages map[string]string
	// cniDir is where the CNI plugin package puts the plugins.
	cniDir string
}

func detectDistro(ctx context.Context, h transport.Host) distro {
	d := distro{name: h.Name()}
	b, err := h.ReadFile(ctx, "/etc/os-release")
	if err != nil {
		return d
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	if kv["PRETTY_NAME"] != "" {
		d.name = kv["PRETTY_NAME"]
	}
	family := " " + kv["ID"] + " " + kv["ID_LIKE"] + " "
	has := func(ids ...string) bool {
		for _, id := range ids {
			if strings.Contains(family, " "+id+" ") {
				return true
			}
		}
		return false
	}
	switch {
	case has("debian", "ubuntu"):
		d.manager, d.cniDir = "apt-get", "/usr/lib/cni"
		d.packages = map[string]string{"containerd": "containerd", "runc": "runc", "cni": "containernetworking-plugins"}
	case has("fedora", "rhel", "centos", "rocky", "almalinux"):
		d.manager, d.cniDir = "dnf", "/usr/libexec/cni"
		if ok, _ := transport.Exists(ctx, h, "/usr/bin/dnf"); !ok {
			d.manager = "yum"
		}
		d.packages = map[string]string{"containerd": "containerd", "runc": "runc", "cni": "containernetworking-plugins"}
	}
	return d
}

// installPackages installs packages with the distribution's package manager.
// apt-get's package lists are refreshed only when the first try fails.
func installPackages(ctx context.Context, d *Data, dist distro, pkgs []string) (err error) {
	defer hostutil.ForgetPaths(ctx) // LookPath may find what they installed
	if !d.DryRun {
		// Record what the install adds (the packages and their
		// dependencies), also when it fails half-way: reset --all
		// removes exactly those.
		before, lerr := InstalledPackages(ctx, d.Host, dist.manager)
		if lerr != nil {
			return lerr
		}
		defer func() {
			after, lerr := InstalledPackages(ctx, d.Host, dist.manager)
			if lerr != nil {
				err = errors.Join(err, lerr)
				return
			}
			var added []string
			for p := range after {
				if !before[p] {
					added = append(added, p)
				}
			}
			slices.Sort(added)
			err = errors.Join(err, d.note(ctx, func(r *Record) (changed bool) {
				r.Manager = dist.manager
				r.Packages, changed = addUnique(r.Packages, added...)
				return
			}))
		}()
	}
	var install [][]string
	switch dist.manager {
	case "apt-get":
		apt := []string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confold"}
		install = [][]string{append(append(apt, "install", "--no-install-recommends"), pkgs...)}
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: install[0]}); err == nil {
			return nil
		}
		d.Out.Printf("prepare", "apt-get install failed; updating the package lists and trying again")
		install = [][]string{append(apt, "update"), install[0]}
	default:
		install = [][]string{append([]string{dist.manager, "install", "-y"}, pkgs...)}
	}
	for _, args := range install {
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: args}); err != nil {
			return err
		}
	}
	return nil
}

// InstalledPackages lists the names of the packages installed through
// manager (dpkg's or rpm's database).
func InstalledPackages(ctx context.Context, h transport.Host, manager string) (map[string]bool, error) {
	args := []string{"rpm", "-qa", "--qf", "%{NAME}\\n"}
	if manager == "apt-get" {
		args = []string{"dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Package}\\n"}
	}
	out, err := transport.Output(ctx, h, args...)
	if err != nil {
		return nil, fmt.Errorf("list the installed packages on %s: %w", h.Name(), err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if manager == "apt-get" {
			// "ii  name": installed; "rc  name": removed, configuration left
			st, name, ok := strings.Cut(line, " ")
			if !ok || !strings.HasPrefix(st, "i") {
				continue
			}
			line = name
		}
		if name := strings.TrimSpace(line); name != "" {
			names[name] = true
		}
	}
	return names, nil
}

var (
	containerdVersionRE = regexp.MustCompile(`\s(v?(\d+)\.(\d+)\.\d+\S*)`)
	kubeVersionLineRE   = regexp.MustCompile(`v\d+\.\d+\.\d+[-+.\w]*`)
)

// containerdVersion runs `containerd --version` and returns the version and
// its major number.
func containerdVersion(ctx context.Context, h transport.Host, bin string) (string, int, error) {
	out, err := transport.Output(ctx, h, bin, "--version")
	if err != nil {
		return "", 0, err
	}
	m := containerdVersionRE.FindStringSubmatch(" " + strings.TrimPrefix(out, "containerd "))
	if m == nil {
		return "", 0, fmt.Errorf("cannot parse %q", out)
	}
	major := 0
	fmt.Sscan(m[2], &major)
	minor := 0
	fmt.Sscan(m[3], &minor)
	if major == 1 && minor < 6 {
		return m[1], major, fmt.Errorf("containerd %s is too old: Kubernetes %s needs containerd 1.6 or newer", m[1], preflight.KubebootVersion)
	}
	return m[1], major, nil
}

// kubeVersion runs a Kubernetes binary's version command and returns its
// version (v1.34.3).
func kubeVersion(ctx context.Context, h transport.Host, args ...string) (string, error) {
	out, err := transport.Output(ctx, h, args...)
	if err != nil {
		return "", err
	}
	v := kubeVersionLineRE.FindString(out)
	if v == "" {
		return "", fmt.Errorf("cannot parse %q", out)
	}
	return v, nil
}

func binariesFromPackages(ctx context.Context, d *Data, st *prepareState) error {
	const tag = "prepare"
	h := d.Host
	dist := detectDistro(ctx, h)
	want := d.Cfg.KubernetesVersion
	var pkgs, missing []string
	need := func(component string) {
		if p := dist.packages[component]; p != "" {
			pkgs = append(pkgs, p)
		} else {
			missing = append(missing, component)
		}
	}

	containerd, cerr := hostutil.LookPath(ctx, h, "containerd")
	if cerr != nil {
		need("containerd")
	}
	if _, err := hostutil.LookPath(ctx, h, "runc"); err != nil {
		need("runc")
	}
	cniMissing := missingCNIPlugins(ctx, h, templates.CNIBinDir)
	if len(cniMissing) > 0 && (dist.cniDir == "" || len(missingCNIPlugins(ctx, h, dist.cniDir)) > 0) {
		need("cni")
	}
	if len(pkgs) > 0 {
		d.Out.Printf(tag, "Installing %s from %s's packages (%s)", strings.Join(pkgs, ", "), dist.name, dist.manager)
		if err := installPackages(ctx, d, dist, pkgs); err != nil {
			if d.DryRun {
				return err
			}
			return fmt.Errorf("install %s on %s: %w; or give --bundle FILE (kubeboot bundle create)", strings.Join(pkgs, " "), h.Name(), err)
		}
		st.containerdChanged = true
	}

	// The CNI plugins the distribution keeps elsewhere: copy the ones
	// /opt/cni/bin lacks (ones already there are left alone).
	if len(cniMissing) > 0 && dist.cniDir != "" {
		copied, err := copyCNIPlugins(ctx, d, dist.cniDir)
		if err != nil {
			return err
		}
		if copied > 0 {
			d.Out.Printf(tag, "Copied %d CNI plugins from %s to %s", copied, dist.cniDir, templates.CNIBinDir)
		}
	} else if len(cniMissing) == 0 {
		d.Out.Printf(tag, "Using the CNI plugins in %s", templates.CNIBinDir)
	}

	if cerr == nil || len(pkgs) > 0 {
		if containerd == "" {
			containerd = "/usr/bin/containerd"
		}
		if v, _, err := containerdVersion(ctx, h, containerd); err == nil {
			d.Out.Printf(tag, "Using containerd %s (%s)", v, containerd)
		} else if !d.DryRun {
			return fmt.Errorf("containerd on %s: %w", h.Name(), err)
		}
	}

	var skew []string
	for _, k := range []struct {
		name string
		args []string
	}{
		{"kubelet", []string{"--version"}},
		{"kubectl", []string{"version", "--client"}},
	} {
		bin, err := hostutil.LookPath(ctx, h, k.name)
		if err != nil {
			missing = append(missing, k.name)
			continue
		}
		v, err := kubeVersion(ctx, h, append([]string{bin}, k.args...)...)
		switch {
		case err != nil:
			return fmt.Errorf("%s on %s: %w", bin, h.Name(), err)
		case v == want:
			d.Out.Printf(tag, "Using existing %s %s (%s)", k.name, v, bin)
		default:
			skew = append(skew, fmt.Sprintf("%s %s (%s)", k.name, v, bin))
		}
	}
	if len(skew) > 0 {
		d.Out.Printf(tag, "WARNING: %s installed, the cluster is %s; preflight checks the version skew", strings.Join(skew, " and "), want)
	}

	reload := false
	if !slices.Contains(missing, "kubelet") {
		if has, err := hasUnit(ctx, h, "kubelet.service"); err != nil {
			return err
		} else if !has {
			if err := writeReport(ctx, d, templates.KubeletUnitFile, "kubelet systemd unit", templates.KubeletService(), 0o644); err != nil {
				return err
			}
			reload = true
		}
	}
	units := []string{"containerd", "kubelet"}
	if slices.Contains(missing, "kubelet") {
		units = units[:1]
	}
	if err := enableUnits(ctx, d, reload, units...); err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	err := missingError(h.Name(), dist, missing, want)
	if d.DryRun {
		d.Out.Printf(tag, "Dry run: a real run would stop here: %v", err)
		return nil
	}
	return err
}

// missingError says what the node lacks and where to get it.
func missingError(host string, dist distro, missing []string, version string) error {
	var kube, other []string
	for _, m := range missing {
		if m == "kubelet" || m == "kubectl" {
			kube = append(kube, m)
		} else {
			other = append(other, m)
		}
	}
	var parts []string
	if len(kube) > 0 {
		verb, pron := "are", "them"
		if len(kube) == 1 {
			verb, pron = "is", "it"
		}
		parts = append(parts, fmt.Sprintf("%s %s not installed and %s has no packages for %s: give --bundle FILE (kubeboot bundle create), or install %s %s from pkgs.k8s.io",
			strings.Join(kube, " and "), verb, dist.name, pron, strings.Join(kube, "/"), version))
	}
	if len(other) > 0 {
		parts = append(parts, fmt.Sprintf("%s: not installed, and kubeboot does not know %s's packages for %s; give --bundle FILE, or install them", strings.Join(other, ", "), dist.name, strings.Join(other, ", ")))
	}
	return fmt.Errorf("%s: %s", host, strings.Join(parts, "; "))
}

// missingCNIPlugins lists the plugins kubeboot needs that dir lacks.
func missingCNIPlugins(ctx context.Context, h transport.Host, dir string) []string {
	var out []string
	for _, p := range bundle.RequiredCNIPlugins {
		if fi, err := h.Stat(ctx, path.Join(dir, p)); err != nil || !fi.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// copyCNIPlugins copies the plugins of dir that /opt/cni/bin lacks.
func copyCNIPlugins(ctx context.Context, d *Data, dir string) (int, error) {
	entries, err := d.Host.ReadDir(ctx, dir)
	if err != nil {
		if d.DryRun && errors.Is(err, fs.ErrNotExist) {
			d.Out.Printf("prepare", "Dry run: would copy the CNI plugins from %s to %s once the package is installed", dir, templates.CNIBinDir)
			return 0, nil
		}
		return 0, fmt.Errorf("read %s: %w", dir, err)
	}
	n := 0
	for _, e := range entries {
		dst := path.Join(templates.CNIBinDir, e.Name())
		if ok, _ := transport.Exists(ctx, d.Host, dst); ok || e.IsDir() {
			continue
		}
		if err := d.willWrite(ctx, []string{dst}, map[string]bool{dst: false}); err != nil {
			return n, err
		}
		if err := InstallFile(ctx, d.Host, path.Join(dir, e.Name()), dst, 0o755); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// hasUnit reports whether a systemd unit file exists where systemd looks.
func hasUnit(ctx context.Context, h transport.Host, unit string) (bool, error) {
	for _, dir := range []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"} {
		ok, err := transport.Exists(ctx, h, path.Join(dir, unit))
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}
