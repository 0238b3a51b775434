package reset

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/prepare"
	"github.com/kubeboot/kubeboot/transport"
)

const renewTimerUnit = "kubeboot-certs-renew.timer"

// StopKubelet stops the kubelet, so that it restarts no static pod or
// container while reset removes them, and kubeboot's renewal timer.
func StopKubelet(ctx context.Context, d *Data) error {
	facts, err := d.facts(ctx)
	if err != nil {
		return err
	}
	if !facts.SystemdPID1 {
		d.Out.Printf(tag, "systemd is not PID 1 on %s: stop the kubelet yourself before the containers are removed", d.Host.Name())
		d.left("the kubelet process: systemd is not PID 1, kubeboot cannot stop it")
		return nil
	}
	if out, _ := transport.Output(ctx, d.Host, "systemctl", "is-active", "kubelet"); out == "active" || out == "activating" {
		d.Out.Printf(tag, "Stopping the kubelet service")
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"systemctl", "stop", "kubelet"}}); err != nil {
			return fmt.Errorf("stop the kubelet: %w; see systemctl status kubelet", err)
		}
	} else {
		d.Out.Printf(tag, "The kubelet is not running")
	}
	if ok, err := transport.Exists(ctx, d.Host, pki.RenewTimer); err != nil {
		return err
	} else if ok {
		d.Out.Printf(tag, "Disabling %s", renewTimerUnit)
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"systemctl", "disable", "--now", renewTimerUnit}}); err != nil {
			return fmt.Errorf("disable %s: %w", renewTimerUnit, err)
		}
	}
	return nil
}

// RemoveContainers stops and removes every pod sandbox, with its
// containers, through the CRI (crictl, as kubeadm), so the CNI tears
// their network down; without crictl, containerd's own client removes the
// containers of its k8s.io namespace.
func RemoveContainers(ctx context.Context, d *Data) error {
	h := d.Host
	endpoint, socket := d.criSocket(), d.socketPath()
	if fi, err := h.Stat(ctx, socket); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		d.Out.Printf(tag, "The container runtime is not running (no %s): no pod sandboxes or containers to remove", socket)
		d.left("containers and pod sandboxes, if any: the container runtime is not running (%s)", socket)
		return nil
	}
	if crictl, err := hostutil.LookPath(ctx, h, "crictl"); err == nil {
		cri := func(args ...string) []string {
			return append([]string{crictl, "--runtime-endpoint", endpoint, "--timeout", "30s"}, args...)
		}
		pods, err := transport.Output(ctx, h, cri("pods", "-q")...)
		if err != nil {
			return fmt.Errorf("list the pod sandboxes: %w", err)
		}
		n := len(strings.Fields(pods))
		if n > 0 {
			if _, err := h.Run(ctx, transport.Cmd{Args: cri("rmp", "-a", "-f")}); err != nil {
				return fmt.Errorf("remove the pod sandboxes: %w", err)
			}
		}
		ctrs, err := transport.Output(ctx, h, cri("ps", "-a", "-q")...)
		if err != nil {
			return fmt.Errorf("list the containers: %w", err)
		}
		if len(strings.Fields(ctrs)) > 0 {
			if _, err := h.Run(ctx, transport.Cmd{Args: cri("rm", "-a", "-f")}); err != nil {
				return fmt.Errorf("remove the containers: %w", err)
			}
		}
		d.Out.Printf(tag, "%s %d pod sandbox(es) and their containers through the CRI (%s)", d.verb("Removed", "Would remove"), n, endpoint)
		if n > 0 {
			d.removed("%d pod sandboxes and their containers", n)
		}
		return nil
	}
	ctr := func(args ...string) []string { return prepare.Ctr(socket, args...) }
	out, err := transport.Output(ctx, h, ctr("containers", "ls", "-q")...)
	if err != nil {
		return fmt.Errorf("crictl is not installed, and containerd's client cannot list the containers: %w", err)
	}
	ids := strings.Fields(out)
	for _, id := range ids {
		// A container without a task has nothing to kill.
		_, _ = h.Run(ctx, transport.Cmd{Args: ctr("tasks", "kill", "--all", "--signal", "SIGKILL", id)})
		_, _ = h.Run(ctx, transport.Cmd{Args: ctr("tasks", "delete", "--force", id)})
	}
	if len(ids) > 0 {
		if _, err := h.Run(ctx, transport.Cmd{Args: ctr(append([]string{"containers", "delete"}, ids...)...)}); err != nil {
			return fmt.Errorf("remove the containers: %w", err)
		}
		d.removed("%d containers", len(ids))
	}
	d.Out.Printf(tag, "crictl is not installed: %s %d container(s) of containerd's k8s.io namespace with ctr; the CRI's pod sandboxes are not removed by it (install crictl for a full cleanup)", d.verb("removed", "would remove"), len(ids))
	return nil
}

func (d *Data) verb(done, dry string) string {
	if d.DryRun {
		return dry
	}
	return done
}

// Mount points reset unmounts: what the kubelet mounted for pods, and the
// network namespaces the CNI left mounted.
var mountPrefixes = []string{inventory.KubeletDir + "/", "/run/netns/cni-", "/var/run/netns/cni-"}

// Unmount unmounts, deepest first, what is mounted below the kubelet's
// directory (volumes, projected secrets), so that removing the directory
// removes no data of a volume.
func Unmount(ctx context.Context, d *Data) error {
	n, err := d.unmountBelow(ctx, mountPrefixes...)
	if err != nil {
		return err
	}
	if n == 0 {
		d.Out.Printf(tag, "Nothing is mounted below %s", inventory.KubeletDir)
	}
	return nil
}

// unmountBelow unmounts every mount point that starts with one of
// prefixes, deepest first, and says how many.
func (d *Data) unmountBelow(ctx context.Context, prefixes ...string) (int, error) {
	b, err := d.Host.ReadFile(ctx, "/proc/mounts")
	if err != nil {
		return 0, fmt.Errorf("read /proc/mounts on %s: %w", d.Host.Name(), err)
	}
	points := mountPoints(string(b), prefixes)
	n := 0
	for _, p := range points {
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"umount", "--", p}}); err != nil {
			// Busy: detach it now, it goes when the last user does.
			if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"umount", "--lazy", "--", p}}); err != nil {
				d.Out.Printf(tag, "WARNING: cannot unmount %s: %v; what is below it stays", p, err)
				d.left("%s: still mounted (%v)", p, err)
				continue
			}
		}
		n++
	}
	if n > 0 {
		d.Out.Printf(tag, "%s %d mount(s) below %s", d.verb("Unmounted", "Would unmount"), n, strings.Join(prefixes, ", "))
		d.removed("%d mounts below %s", n, strings.Join(prefixes, ", "))
	}
	return n, nil
}

// mountPoints are the mount points of /proc/mounts below prefixes, deepest
// (and latest mounted) first, each once.
func mountPoints(mounts string, prefixes []string) []string {
	seen := map[string]bool{}
	var out []string
	lines := strings.Split(mounts, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) < 2 {
			continue
		}
		p := unescapeMount(f[1])
		for _, pre := range prefixes {
			if strings.HasPrefix(p, pre) && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// kubeconfigs are the kubeconfig files init and join write.
var kubeconfigs = []string{inventory.AdminKubeconfig, inventory.SuperAdminKubeconfig, inventory.KubeletKubeconfig, inventory.BootstrapKubeconfig,
	path.Join(inventory.KubernetesDir, "controller-manager.conf"), path.Join(inventory.KubernetesDir, "scheduler.conf")}

// RemoveFiles removes what init and join wrote: /etc/kubernetes's
// manifests, kubeconfigs and PKI, the kubelet's directory and drop-in,
// the etcd data of a stacked member, kubeboot's renewal units; the
// administrator's other files in /etc/kubernetes stay, and are listed.
func RemoveFiles(ctx context.Context, d *Data) error {
	if err := d.inspect(ctx); err != nil {
		return err
	}
	if n, err := d.unmountBelow(ctx, mountPrefixes[0]); err != nil {
		return err
	} else if n > 0 {
		d.Out.Printf(tag, "(mounts appeared below %s since cleanup-node/mounts)", inventory.KubeletDir)
	}
	paths := []string{inventory.ManifestsDir, d.certDir(), path.Dir(controlplane.RestartDir)}
	paths = append(paths, kubeconfigs...)
	// the API server's encryption key, audit policy and admission configuration
	paths = append(paths, inventory.EncryptionConfigPath, inventory.AuditPolicyPath, inventory.AdmissionConfigPath)
	paths = append(paths, inventory.KubeletDir, inventory.KubeletDropInFile, "/run/kubernetes", pki.RenewService, pki.RenewTimer)
	if d.st.etcdManifest != "" {
		paths = append(paths, d.st.etcdDataDir)
	}
	if err := d.removePaths(ctx, paths...); err != nil {
		return err
	}
	if !d.DryRun {
		for _, dir := range []string{path.Dir(inventory.KubeletDropInFile), inventory.KubernetesDir} {
			if err := d.removeIfEmpty(ctx, dir, "not written by kubeboot's init or join"); err != nil {
				return err
			}
		}
		facts, _ := d.facts(ctx)
		if facts.SystemdPID1 {
			if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"systemctl", "daemon-reload"}}); err != nil {
				return err
			}
		}
	}
	if d.st.controlPlane && d.st.etcdManifest == "" {
		d.left("the external etcd's data: reset does not touch an external etcd cluster")
	}
	if err := d.auditLog(ctx); err != nil {
		return err
	}
	d.left("$HOME/.kube/config and other copies of admin.conf: reset does not know where they are; check and remove them")
	return nil
}

// auditLog removes the API server's audit log with --all; a plain reset
// keeps it (a record of what happened, which a reset should not erase)
// and says so.
func (d *Data) auditLog(ctx context.Context) error {
	ok, err := transport.Exists(ctx, d.Host, inventory.AuditLogDir)
	if err != nil || !ok {
		return err
	}
	if !d.All {
		d.left("%s: the API server's audit log, a record of what happened; reset --all removes it", inventory.AuditLogDir)
		return nil
	}
	if err := d.removePaths(ctx, inventory.AuditLogDir); err != nil {
		return err
	}
	if d.DryRun {
		return nil
	}
	return d.removeIfEmpty(ctx, path.Dir(inventory.AuditLogDir), "not written by kubeboot's API server")
}

// listForeign reports what is left in dir, with why.
func (d *Data) listForeign(ctx context.Context, dir, why string) error {
	entries, err := d.Host.ReadDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	d.leftIn(dir, entries, why)
	return nil
}

// leftIn reports entries of dir as left, with why; nothing when there
// are none or why is empty.
func (d *Data) leftIn(dir string, entries []fs.DirEntry, why string) {
	if len(entries) == 0 || why == "" {
		return
	}
	var names []string
	for _, e := range entries {
		names = append(names, path.Join(dir, e.Name()))
	}
	d.left("%s: %s, kept", strings.Join(names, ", "), why)
}

// removeIfEmpty removes dir when nothing is left in it, and lists what is
// with why (whose the files are not), unless why is empty.
func (d *Data) removeIfEmpty(ctx context.Context, dir, why string) error {
	entries, err := d.Host.ReadDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		d.leftIn(dir, entries, why)
		return nil
	}
	if err := d.Host.Remove(ctx, dir); err != nil {
		return err
	}
	d.removed("%s", dir)
	return nil
}
