package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// containerdSocketWait bounds the wait for containerd's socket after a
// (re)start; containerdSocketPoll is how often it is looked for.
var (
	containerdSocketWait = 60 * time.Second
	containerdSocketPoll = 250 * time.Millisecond
)

// criSocketPath is the file of the node's CRI endpoint (unix://...).
func criSocketPath(cfg *inventory.Cluster) string {
	s := cfg.Node.CRISocket
	if s == "" {
		s = inventory.DefaultCRISocket
	}
	return strings.TrimPrefix(s, "unix://")
}

// Containerd writes containerd's configuration and registry mirrors, and
// (re)starts it when they or its binaries changed.
func Containerd(ctx context.Context, d *Data) (err error) {
	const tag = "prepare"
	h := d.Host
	st := d.state()
	// The run stops here on an error: the bundle's files unpacked for
	// prepare/images would stay on disk until the next run.
	defer func() {
		if err != nil && len(st.staged) > 0 {
			st.cleanup(ctx, d)
		}
	}()
	facts, err := d.facts(ctx)
	if err != nil {
		return err
	}

	// The configuration format follows the installed containerd: 1.x
	// reads version 2, 2.x version 3. With a bundle it is the bundle's
	// containerd, the one its unit runs, even when another one comes first
	// in the PATH (/usr/local/bin/containerd from an upstream tarball).
	major := 1
	bin, lerr := hostutil.LookPath(ctx, h, "containerd")
	if st.manifest != nil {
		if b, ok := st.manifest.Binary("containerd"); ok {
			bin, lerr = bundle.InstallPath(b), nil
			if ok, _ := transport.Exists(ctx, h, bin); !ok {
				lerr = hostutil.NotInPathError("containerd")
			}
		}
	}
	if lerr == nil {
		v, mj, err := containerdVersion(ctx, h, bin)
		if err != nil && !d.DryRun {
			return fmt.Errorf("%s on %s: %w", bin, h.Name(), err)
		}
		if err == nil {
			major = mj
			d.Out.Printf(tag, "containerd %s reads configuration version %d", v, map[bool]int{true: 3, false: 2}[major >= 2])
		}
	} else if st.manifest != nil {
		if b, ok := st.manifest.Binary("containerd"); ok && strings.HasPrefix(strings.TrimPrefix(b.Version, "v"), "2.") {
			major = 2
		}
	} else if !d.DryRun {
		return fmt.Errorf("containerd is not installed on %s: run the prepare/binaries phase, or install it", h.Name())
	}

	opts := templates.ContainerdOptions{Major: major, RestrictOOMScoreAdj: !facts.NegativeOOMScoreAdj}
	changed, err := d.writeIfChanged(ctx, templates.ContainerdConfigFile, templates.ContainerdConfig(d.Cfg, opts), 0o644)
	if err != nil {
		return err
	}
	if changed {
		d.Out.Printf(tag, "Writing containerd's configuration to %s (sandbox image %s, SystemdCgroup = true)", templates.ContainerdConfigFile, templates.Image(d.Cfg, templates.Pause))
	} else {
		d.Out.Printf(tag, "Using existing containerd configuration %s", templates.ContainerdConfigFile)
	}
	if opts.RestrictOOMScoreAdj {
		d.Out.Printf(tag, "A negative oom_score_adj is not permitted on %s: containerd sets restrict_oom_score_adj = true", h.Name())
	}
	if err := writeRegistryHosts(ctx, d); err != nil {
		return err
	}

	socket := criSocketPath(d.Cfg)
	if !facts.SystemdPID1 {
		running, _ := isSocket(ctx, h, socket)
		switch {
		case running && (changed || st.containerdChanged):
			d.Out.Printf(tag, "systemd is not PID 1 on %s: kubeboot cannot restart containerd; restart it yourself to apply the new configuration", h.Name())
		case !running:
			if bin == "" {
				bin = "containerd"
			}
			d.Out.Printf(tag, "systemd is not PID 1 on %s: kubeboot cannot start containerd; start it yourself (%s)", h.Name(), bin)
		}
		return nil
	}
	active := false
	if out, err := transport.Output(ctx, h, "systemctl", "is-active", "containerd"); err == nil && out == "active" {
		active = true
	}
	if active && !changed && !st.containerdChanged {
		d.Out.Printf(tag, "containerd is running with this configuration; not restarting it")
		return nil
	}
	verb := "Starting"
	if active {
		verb = "Restarting"
	}
	d.Out.Printf(tag, "%s containerd", verb)
	if _, err := h.Run(ctx, transport.Cmd{Args: []string{"systemctl", "restart", "containerd"}}); err != nil {
		return fmt.Errorf("%w; see systemctl status containerd and journalctl -u containerd", err)
	}
	st.containerdChanged = false
	if d.DryRun {
		return nil
	}
	return waitForSocket(ctx, h, socket)
}

// writeRegistryHosts writes a hosts.toml per configured registry and removes
// the ones an earlier run wrote for registries no longer configured (files
// without kubeboot's header are the administrator's and stay).
func writeRegistryHosts(ctx context.Context, d *Data) error {
	want := map[string]bool{}
	for _, r := range templates.ContainerdRegistries(d.Cfg) {
		want[r] = true
		file := templates.ContainerdHostsPath(r)
		data := templates.ContainerdHostsTOML(r, d.Cfg.Containerd.RegistryMirrors[r])
		if err := writeReport(ctx, d, file, "registry mirrors for "+r, data, 0o644); err != nil {
			return err
		}
	}
	entries, err := d.Host.ReadDir(ctx, templates.ContainerdCertsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", templates.ContainerdCertsDir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || want[e.Name()] {
			continue
		}
		file := templates.ContainerdHostsPath(e.Name())
		b, err := d.Host.ReadFile(ctx, file)
		if err != nil || !strings.HasPrefix(string(b), templates.ContainerdHeader) {
			continue
		}
		if err := d.Host.Remove(ctx, file); err != nil {
			return err
		}
		_ = d.Host.Remove(ctx, path.Dir(file)) // only when empty
		d.Out.Printf("prepare", "Removed %s: %s has no mirrors in the configuration any more", file, e.Name())
	}
	return nil
}

func isSocket(ctx context.Context, h transport.Host, p string) (bool, error) {
	fi, err := h.Stat(ctx, p)
	if err != nil {
		return false, err
	}
	return fi.Mode()&fs.ModeSocket != 0, nil
}

// waitForSocket waits, bounded, for containerd's socket.
func waitForSocket(ctx context.Context, h transport.Host, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, containerdSocketWait)
	defer cancel()
	for {
		if ok, _ := isSocket(ctx, h, socket); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd did not create %s within %s; see systemctl status containerd and journalctl -u containerd", socket, containerdSocketWait)
		case <-time.After(containerdSocketPoll):
		}
	}
}

// Images imports the bundle's images into containerd's k8s.io namespace.
func Images(ctx context.Context, d *Data) (err error) {
	const tag = "prepare"
	st := d.state()
	if st.manifest == nil {
		d.Out.Printf(tag, "No --bundle: the kubelet pulls the images from %s", d.Cfg.ImageRepository)
		return nil
	}
	defer func() { st.doneWithBundle(ctx, d, "prepare/images", err != nil) }()
	archives := st.manifest.ByType(bundle.TypeImages)
	if len(archives) == 0 {
		d.Out.Printf(tag, "The bundle holds no images: the kubelet pulls them from %s", d.Cfg.ImageRepository)
		return nil
	}
	h := d.Host
	socket := criSocketPath(d.Cfg)
	ctr := Ctr(socket)
	if ok, _ := isSocket(ctx, h, socket); !ok {
		facts, _ := d.facts(ctx)
		if !facts.SystemdPID1 || d.DryRun {
			d.Out.Printf(tag, "containerd is not running (no %s): the bundle's %d image archives are not imported; run `kubeboot init phase prepare images --bundle %s` once it runs", socket, len(archives), d.Bundle)
			return nil
		}
		return fmt.Errorf("containerd is not running (no %s): cannot import the bundle's images", socket)
	}
	present, err := presentImages(ctx, h, ctr)
	if err != nil {
		return err
	}
	var todo []bundle.File
	for _, a := range archives {
		for _, im := range a.Images {
			ok, err := imagePresent(ctx, h, ctr, present, im)
			if err != nil {
				return err
			}
			if !ok {
				todo = append(todo, a)
				break
			}
		}
	}
	total := 0
	for _, a := range archives {
		total += len(a.Images)
	}
	if len(todo) == 0 {
		d.Out.Printf(tag, "The bundle's %d images are in containerd (namespace k8s.io); not importing them", total)
		return nil
	}
	if err := st.stage(ctx, d, st.planFiles(d)); err != nil {
		return err
	}
	for _, a := range todo {
		d.Out.Printf(tag, "Importing %s (%d image(s)) into containerd's k8s.io namespace", a.Path, len(a.Images))
		if _, err := h.Run(ctx, transport.Cmd{Args: append(append([]string(nil), ctr...), "images", "import", path.Join(stagingDir, a.Path))}); err != nil {
			return fmt.Errorf("import %s: %w", a.Path, err)
		}
		var refs []string
		for _, im := range a.Images {
			if _, ok := present[im.Ref]; !ok { // the host's own image stays
				refs = append(refs, im.Ref)
			}
		}
		if err := d.note(ctx, func(r *Record) (changed bool) { r.Images, changed = addUnique(r.Images, refs...); return }); err != nil {
			return err
		}
	}
	if d.DryRun {
		return nil
	}
	present, err = presentImages(ctx, h, ctr)
	if err != nil {
		return err
	}
	for _, a := range todo {
		for _, im := range a.Images {
			if ok, err := imagePresent(ctx, h, ctr, present, im); err != nil || !ok {
				return fmt.Errorf("%s is not in containerd after importing %s (%v)", im.Ref, a.Path, err)
			}
		}
	}
	return nil
}

// Ctr is containerd's client on socket, in the CRI's k8s.io namespace,
// with args.
func Ctr(socket string, args ...string) []string {
	return append([]string{"ctr", "--address", socket, "--namespace", "k8s.io"}, args...)
}

// presentImages lists containerd's images: reference → target digest.
func presentImages(ctx context.Context, h transport.Host, ctr []string) (map[string]string, error) {
	out, err := transport.Output(ctx, h, append(append([]string(nil), ctr...), "images", "ls")...)
	if err != nil {
		return nil, fmt.Errorf("list containerd's images: %w", err)
	}
	m := map[string]string{}
	for i, line := range strings.Split(out, "\n") {
		// REF TYPE DIGEST SIZE PLATFORMS LABELS
		f := strings.Fields(line)
		if i == 0 || len(f) < 3 {
			continue
		}
		m[f[0]] = f[2]
	}
	return m, nil
}

// imagePresent reports whether containerd has im under its reference with
// the same content: the target digest of an OCI tarball's image, or, for a
// docker-archive (whose manifest containerd writes itself on import), the
// config digest of the manifest containerd has.
func imagePresent(ctx context.Context, h transport.Host, ctr []string, present map[string]string, im bundle.Image) (bool, error) {
	target, ok := present[im.Ref]
	if !ok {
		return false, nil
	}
	if im.Digest != "" {
		return target == im.Digest, nil
	}
	out, err := transport.Output(ctx, h, append(append([]string(nil), ctr...), "content", "get", target)...)
	if err != nil {
		return false, nil // content gone: import again
	}
	var manifest struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &manifest); err != nil {
		return false, nil
	}
	return manifest.Config.Digest == im.ConfigDigest, nil
}
