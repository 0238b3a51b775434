package reset

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/prepare"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// containerdState is where a containerd that prepare installed keeps its
// images, snapshots and runtime state; it goes with that containerd.
var containerdState = []string{"/var/lib/containerd", "/run/containerd", "/opt/containerd"}

// Uninstall undoes, with All, exactly what prepare recorded: the units it
// enabled, the packages it added, the files it created, the host's
// versions of the files it replaced, the directories it made, the swap
// entries and sysctls it turned off or set, the images it imported (or
// the whole state of a containerd it installed). Without All it says what
// stays.
func Uninstall(ctx context.Context, d *Data) error {
	h := d.Host
	r, found, err := prepare.LoadRecord(ctx, h)
	if err != nil {
		return err
	}
	if !d.All {
		if found && !r.Empty() {
			d.Out.Printf(tag, "What prepare installed stays (%d files, %d packages, %d units, %d images; %s lists them): kubeboot reset --all removes it", len(r.Created)+len(r.Replaced), len(r.Packages), len(r.Units), len(r.Images), prepare.RecordFile)
			d.left("what prepare installed (%d files, %d packages, %d units enabled, %d images, kernel settings; listed in %s): needed to init or join again; reset --all removes it", len(r.Created)+len(r.Replaced), len(r.Packages), len(r.Units), len(r.Images), prepare.RecordFile)
		}
		return nil
	}
	if err := d.removeEtcdUser(ctx); err != nil {
		return err
	}
	if !found {
		d.Out.Printf(tag, "No record of what prepare installed (%s): nothing of prepare's is removed", prepare.RecordFile)
		d.left("what prepare installed, if anything: %s is missing (a kubeboot before the record, or it was removed)", prepare.RecordFile)
		return nil
	}
	facts, err := d.facts(ctx)
	if err != nil {
		return err
	}
	ownsContainerd := slices.ContainsFunc(r.Created, func(p string) bool { return path.Base(p) == "containerd" })

	// Images first, while containerd runs: a containerd prepare did not
	// install stays, without the images prepare imported into it.
	if !ownsContainerd && len(r.Images) > 0 {
		if _, err := h.Run(ctx, transport.Cmd{Args: prepare.Ctr(d.socketPath(), append([]string{"images", "rm"}, r.Images...)...)}); err != nil {
			d.left("the images prepare imported into the host's containerd: %v", err)
		} else {
			d.removed("%d images from containerd's k8s.io namespace", len(r.Images))
		}
	}
	if facts.SystemdPID1 {
		for _, u := range r.Units {
			if _, err := h.Run(ctx, transport.Cmd{Args: []string{"systemctl", "disable", "--now", u}}); err != nil {
				return fmt.Errorf("disable %s: %w", u, err)
			}
			d.Out.Printf(tag, "%s %s.service", d.verb("Stopped and disabled", "Would stop and disable"), u)
			d.removed("%s.service enabled by prepare (stopped and disabled)", u)
		}
	}
	if ownsContainerd {
		if _, err := d.unmountBelow(ctx, "/run/containerd/", "/var/lib/containerd/"); err != nil {
			return err
		}
		if err := d.removePaths(ctx, containerdState...); err != nil {
			return err
		}
		// With its containerd gone, the CNI configuration directory
		// cleanup-node/network keeps for it goes too, when empty.
		if !d.DryRun {
			for _, dir := range []string{templates.CNIConfDir, path.Dir(templates.CNIConfDir)} {
				if err := d.removeIfEmpty(ctx, dir, ""); err != nil {
					return err
				}
			}
		}
	} else if ok, _ := transport.Exists(ctx, h, templates.CNIConfDir); ok {
		d.left("%s: the host's containerd, still running, watches it", templates.CNIConfDir)
	}

	if len(r.Packages) > 0 {
		if err := d.removePackages(ctx, r); err != nil {
			return err
		}
	}

	if err := d.removePaths(ctx, r.Created...); err != nil {
		return err
	}
	for _, p := range r.Replaced {
		backup := path.Join(prepare.BackupDir, p)
		if ok, _ := transport.Exists(ctx, h, backup); !ok {
			d.left("%s: prepare replaced it and its backup %s is gone; kept as prepare wrote it", p, backup)
			continue
		}
		if _, err := h.Run(ctx, transport.Cmd{Args: []string{"mv", "-f", "-T", "--", backup, p}}); err != nil {
			return fmt.Errorf("restore %s: %w", p, err)
		}
		d.Out.Printf(tag, "%s the host's %s (prepare had replaced it)", d.verb("Restored", "Would restore"), p)
		d.removed("prepare's %s (the host's version restored)", p)
	}
	dirs := append([]string(nil), r.Dirs...)
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // deepest first
	if !d.DryRun {
		for _, dir := range dirs {
			if err := d.removeIfEmpty(ctx, dir, "prepare made the directory; these are not prepare's"); err != nil {
				return err
			}
		}
	}

	if r.FstabSwap {
		if err := d.restoreFstab(ctx); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(r.Sysctls))
	for k := range r.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := h.Run(ctx, transport.Cmd{Args: []string{"sysctl", "-w", k + "=" + r.Sysctls[k]}}); err != nil {
			d.left("sysctl %s: cannot restore %s (%v)", k, r.Sysctls[k], err)
			continue
		}
		d.removed("sysctl %s (back to %s)", k, r.Sysctls[k])
	}
	if len(keys) > 0 {
		d.Out.Printf(tag, "%s the kernel parameters prepare set to their old values", d.verb("Restored", "Would restore"))
	}
	if len(r.Modules) > 0 {
		d.left("kernel modules %s: still loaded (unloading what something may use is not safe); no longer loaded at boot", strings.Join(r.Modules, ", "))
	}
	if facts.SystemdPID1 && !d.DryRun {
		if _, err := h.Run(ctx, transport.Cmd{Args: []string{"systemctl", "daemon-reload"}}); err != nil {
			return err
		}
	}
	// Last: the record itself, the backups and the bundle staging.
	if err := d.removePaths(ctx, prepare.StateDir); err != nil {
		return err
	}
	d.left("the kubeboot binary that ran this reset")
	return nil
}

// removeEtcdUser removes the user etcd when kubeboot made it (the CIS
// settings give it etcd's data directory; controlplane.EtcdUserMarker).
func (d *Data) removeEtcdUser(ctx context.Context) error {
	ok, err := transport.Exists(ctx, d.Host, controlplane.EtcdUserMarker)
	if err != nil || !ok {
		return err
	}
	if !d.DryRun {
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"userdel", "etcd"}}); err != nil {
			d.left("the user etcd kubeboot made: %v", err)
			return nil
		}
		if err := d.Host.Remove(ctx, controlplane.EtcdUserMarker); err != nil {
			return err
		}
	}
	d.removed("the user and group etcd (made by kubeboot for etcd's data directory)")
	return nil
}

// removePackages removes the packages prepare's install added that are
// still installed.
func (d *Data) removePackages(ctx context.Context, r *prepare.Record) error {
	have, err := prepare.InstalledPackages(ctx, d.Host, r.Manager)
	if err != nil {
		return err
	}
	var pkgs []string
	for _, p := range r.Packages {
		if have[p] {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	var args []string
	switch r.Manager {
	case "apt-get":
		args = append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", "purge"}, pkgs...)
	case "dnf", "yum":
		args = append([]string{r.Manager, "remove", "-y"}, pkgs...)
	default:
		d.left("packages %s: installed with %q, which kubeboot does not know how to remove with", strings.Join(pkgs, " "), r.Manager)
		return nil
	}
	d.Out.Printf(tag, "%s the packages prepare installed: %s", d.verb("Removing", "Would remove"), strings.Join(pkgs, " "))
	if _, err := d.Host.Run(ctx, transport.Cmd{Args: args}); err != nil {
		return fmt.Errorf("remove %s: %w", strings.Join(pkgs, " "), err)
	}
	d.removed("packages %s", strings.Join(pkgs, " "))
	return nil
}

// restoreFstab turns the swap entries prepare commented out back on (they
// mount at the next boot, or with swapon -a).
func (d *Data) restoreFstab(ctx context.Context) error {
	const fstab = "/etc/fstab"
	b, err := d.Host.ReadFile(ctx, fstab)
	if err != nil {
		return fmt.Errorf("read %s: %w", fstab, err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	n := 0
	for i, l := range lines {
		if strings.HasPrefix(l, prepare.FstabSwapPrefix) {
			lines[i] = strings.TrimPrefix(l, prepare.FstabSwapPrefix)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	mode := fs.FileMode(0o644)
	if fi, err := d.Host.Stat(ctx, fstab); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := d.Host.WriteFile(ctx, fstab, []byte(strings.Join(lines, "")), mode); err != nil {
		return fmt.Errorf("write %s: %w", fstab, err)
	}
	d.Out.Printf(tag, "%s %d swap entr%s in %s (swap turns on at the next boot, or with swapon -a)", d.verb("Restored", "Would restore"), n, map[bool]string{true: "y", false: "ies"}[n == 1], fstab)
	d.removed("prepare's change to %s (%d swap entries back)", fstab, n)
	return nil
}
