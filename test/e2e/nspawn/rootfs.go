package nspawn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Rootfs describes the Debian root file system every machine boots from.
type Rootfs struct {
	// Suite is the Debian release (bookworm).
	Suite string
	// Variant is debootstrap's --variant (minbase).
	Variant string
	// Packages are installed on top of the variant (--include).
	Packages []string
	// Mirror is the Debian mirror; "" is DefaultMirror. It is not part of
	// the cache key: every mirror serves the same packages.
	Mirror string
}

// DefaultMirror is the mirror apt on a Debian host uses.
const DefaultMirror = "http://deb.debian.org/debian"

// DefaultRootfs is Debian bookworm minbase with what a Kubernetes node and
// the tests need: systemd as PID 1, sshd, and the userland kubelet and
// kubeadm-style preflight checks exec (iptables, conntrack, socat, ethtool,
// kmod, mount, ...). containerd, runc, the CNI plugins and kubelet are not
// here: kubeboot installs them from its bundle.
var DefaultRootfs = Rootfs{
	Suite:   "bookworm",
	Variant: "minbase",
	Packages: []string{
		"systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "iptables",
		"conntrack", "socat", "ethtool", "kmod", "ca-certificates", "procps", "curl",
	},
}

// customizeRevision changes whenever customize changes what it writes, so
// that cached root file systems built by an older harness are not reused.
const customizeRevision = "3"

// kbInit is PID 1 of every machine. nspawn mounts the cgroup v1
// controllers read-only (only name=systemd is writable) while containerd,
// runc and kubelet need them writable; and kubelet insists on setting four
// host-global sysctls, which are shadowed with files holding the values it
// wants so that it neither fails on the read-only /proc/sys nor changes the
// host. Then systemd takes over.
const kbInit = `#!/bin/sh
mount -o remount,bind,rw /sys/fs/cgroup 2>/dev/null
for d in /sys/fs/cgroup/*; do
  [ -L "$d" ] && continue
  mountpoint -q "$d" && mount -o remount,bind,rw "$d"
done
mkdir -p /run/kb-sysctl
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1; do
  k=${kv%%=*}; v=${kv#*=}; f=/run/kb-sysctl/$(echo "$k" | tr / _)
  echo "$v" > "$f"; mount --bind "$f" "/proc/sys/$k"
done
exec /lib/systemd/systemd "$@"
`

// InitPath is where kbInit lives inside a machine.
const InitPath = "/usr/local/sbin/kb-init"

// sshdConfig is read before the distribution's settings (first match wins).
const sshdConfig = `# kubeboot e2e machines: root login with the run's key only.
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100:30:200
UseDNS no
`

// maskedUnits are useless or failing inside a container.
var maskedUnits = []string{
	"systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
	"e2scrub_all.timer", "fstrim.timer", "getty@tty1.service", "console-getty.service",
}

// Key identifies the root file system in the cache: the suite, variant,
// package list and the harness's customization.
func (r Rootfs) Key() string {
	pkgs := append([]string(nil), r.Packages...)
	sort.Strings(pkgs)
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nvariant=%s\npackages=%s\nrevision=%s\n", r.Suite, r.Variant, strings.Join(pkgs, ","), customizeRevision)
	h.Write([]byte(kbInit))
	h.Write([]byte(sshdConfig))
	fmt.Fprintf(h, "masked=%s\n", strings.Join(maskedUnits, ","))
	return r.Suite + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// EnsureRootfs returns the directory of r's root file system under
// cacheDir/rootfs, building it with debootstrap first if it is not cached.
// A partly built tree is never used: it is built under a temporary name and
// renamed when complete.
func EnsureRootfs(ctx context.Context, cacheDir string, r Rootfs, logf func(string, ...any)) (dir string, built bool, err error) {
	dir = filepath.Join(cacheDir, "rootfs", r.Key())
	if _, err := os.Stat(filepath.Join(dir, InitPath)); err == nil {
		return dir, false, nil
	}
	if err := requireRoot(); err != nil {
		return "", false, err
	}
	if _, err := lookPath("debootstrap"); err != nil {
		return "", false, fmt.Errorf("debootstrap is not installed: apt-get install -y debootstrap")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-"+r.Key()+"-")
	if err != nil {
		return "", false, err
	}
	defer removeBuildDir(tmp, logf)
	// MkdirTemp's 0700 would become the machines' "/", which no service
	// running as another user could traverse.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, err
	}
	mirror := r.Mirror
	if mirror == "" {
		mirror = DefaultMirror
	}
	start := time.Now()
	logf("debootstrap %s (%s + %d packages) from %s", r.Suite, r.Variant, len(r.Packages), mirror)
	args := []string{"--variant=" + r.Variant, "--include=" + strings.Join(r.Packages, ","), r.Suite, tmp, mirror}
	if out, err := command(ctx, "debootstrap", args...).CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("debootstrap %s: %v\n%s", r.Suite, err, tail(out, 30))
	}
	if err := customize(ctx, tmp); err != nil {
		return "", false, fmt.Errorf("customize rootfs: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", false, err
	}
	logf("rootfs %s built in %s", dir, time.Since(start).Round(time.Second))
	return dir, true, nil
}

// customize applies the machine-independent changes; each machine's own
// files (hostname, addresses, keys, machine-id) are written at boot.
func customize(ctx context.Context, root string) error {
	p := func(rel string) string { return filepath.Join(root, rel) }
	write := func(rel, data string, mode os.FileMode) error {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p(rel), []byte(data), mode)
	}
	if err := write("etc/hostname", "base\n", 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(p("root/.ssh"), 0o700); err != nil {
		return err
	}
	if err := write("etc/ssh/sshd_config.d/kubeboot-e2e.conf", sshdConfig, 0o644); err != nil {
		return err
	}
	// Host keys are generated per machine and per run.
	keys, _ := filepath.Glob(p("etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if out, err := command(ctx, "chroot", root, "systemctl", "enable", "systemd-networkd.service", "ssh.service").CombinedOutput(); err != nil {
		return fmt.Errorf("enable networkd and ssh: %v: %s", err, out)
	}
	for _, u := range maskedUnits {
		// A unit that is not installed cannot be masked by name on every
		// systemd version; masking is a symlink to /dev/null anyway.
		if err := os.MkdirAll(p("etc/systemd/system"), 0o755); err != nil {
			return err
		}
		link := p("etc/systemd/system/" + u)
		_ = os.Remove(link)
		if err := os.Symlink("/dev/null", link); err != nil {
			return err
		}
	}
	// A fresh machine-id per machine: empty here, written at boot; dbus
	// must not keep the one debootstrap generated.
	if err := write("etc/machine-id", "", 0o444); err != nil {
		return err
	}
	_ = os.Remove(p("var/lib/dbus/machine-id"))
	if err := os.Symlink("/etc/machine-id", p("var/lib/dbus/machine-id")); err != nil {
		return err
	}
	if err := write(InitPath[1:], kbInit, 0o755); err != nil {
		return err
	}
	if err := write("etc/systemd/journald.conf.d/kubeboot-e2e.conf", "[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n", 0o644); err != nil {
		return err
	}
	if out, err := command(ctx, "chroot", root, "apt-get", "clean").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get clean: %v: %s", err, out)
	}
	return nil
}
