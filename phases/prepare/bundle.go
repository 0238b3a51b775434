package prepare

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// CheckBundle runs before prepare's sub-phases: with --bundle it
// reads the bundle's manifest on the node and checks that it is for this
// cluster's Kubernetes version and the node's architecture, before anything
// is installed.
func CheckBundle(ctx context.Context, d *Data) error {
	st := d.state()
	file := d.Bundle
	if file == "" {
		return nil
	}
	if !path.IsAbs(file) {
		return fmt.Errorf("--bundle %s: give the bundle's absolute path on %s", file, d.Host.Name())
	}
	if _, err := d.Host.Stat(ctx, file); err != nil {
		return fmt.Errorf("--bundle %s: %w; copy the bundle to %s first", file, err, d.Host.Name())
	}
	args := append([]string{"tar"}, tarFlags(file, "-xO")...)
	args = append(args, "--occurrence=1", bundle.ManifestName)
	out, err := d.Host.Run(ctx, transport.Cmd{Args: args, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("--bundle %s: cannot read its %s (is it a kubeboot bundle?): %w", file, bundle.ManifestName, err)
	}
	m, err := bundle.ParseManifest(out.Stdout)
	if err != nil {
		return fmt.Errorf("--bundle %s: %w", file, err)
	}
	if m.KubernetesVersion != d.Cfg.KubernetesVersion {
		return fmt.Errorf("--bundle %s is for Kubernetes %s, but the cluster is %s: create a bundle for %s (kubeboot bundle create), or set kubernetesVersion: %s",
			file, m.KubernetesVersion, d.Cfg.KubernetesVersion, d.Cfg.KubernetesVersion, m.KubernetesVersion)
	}
	if machine, err := transport.Output(ctx, d.Host, "uname", "-m"); err == nil && m.Arch != "" && bundle.UnameArch(machine) != m.Arch {
		return fmt.Errorf("--bundle %s holds %s binaries, but %s is %s (%s)", file, m.Arch, d.Host.Name(), bundle.UnameArch(machine), machine)
	}
	role := d.Role
	if m.Role == bundle.RoleWorker && role == RoleControlPlane {
		return fmt.Errorf("--bundle %s is a worker bundle (kubeboot bundle slice, from %s): it has no %s image, which a control plane runs; give %s the whole bundle",
			file, m.Source, strings.Join(bundle.ControlPlaneImages, ", "), d.Host.Name())
	}
	st.manifest = m
	what := ""
	if m.Role != "" {
		what = ", the " + m.Role + " part"
	}
	d.Out.Printf("prepare", "Using bundle %s: Kubernetes %s for %s%s, %d binaries, %d CNI plugins, %d images",
		file, m.KubernetesVersion, m.Arch, what, len(m.ByType(bundle.TypeBinary)), len(m.ByType(bundle.TypeCNIPlugin)), m.ImageCount())
	if missing := missingImages(d, m, role); len(missing) > 0 {
		d.Out.Printf("prepare", "[WARNING] The bundle has no %s, which this %s runs: the kubelet will pull it from the registry (an offline node cannot; add it to the bundle, or set imageRepository to the registry the bundle's images name)",
			strings.Join(missing, ", "), role)
	}
	if m.Role == bundle.RoleWorker && role == RoleUnknown {
		d.Out.Printf("prepare", "This is a worker bundle: the node can join as a worker; init and join --control-plane refuse it")
	}
	return nil
}

// The role a node is prepared for, as far as the workflow tells.
const (
	RoleControlPlane = "control plane"
	RoleWorker       = "worker"
	// roleUnknown: `init phase prepare` alone, as apply runs it on
	// every host before any init or join.
	RoleUnknown = "node"
)

// missingImages are the images the node's role runs that the bundle does
// not hold, by the names the kubelet asks for (templates.Image): pause and
// kube-proxy on every node, the control plane's own on a control plane.
func missingImages(d *Data, m *bundle.Manifest, role string) []string {
	if len(m.ByType(bundle.TypeImages)) == 0 {
		return nil // no images at all: the kubelet pulls, as without a bundle
	}
	have := map[string]bool{}
	for _, f := range m.ByType(bundle.TypeImages) {
		for _, im := range f.Images {
			have[im.Ref] = true
		}
	}
	need := []string{templates.Pause, templates.KubeProxy}
	if role == RoleControlPlane {
		need = append(need, templates.Etcd, templates.KubeAPIServer, templates.KubeControllerManager, templates.KubeScheduler)
	}
	var missing []string
	for _, c := range need {
		if role == RoleControlPlane && c == templates.Etcd && d.Cfg.Etcd.External != nil {
			continue
		}
		ref := templates.Image(d.Cfg, c)
		if full, err := bundle.NormalizeRef(ref); err == nil && !have[full] {
			missing = append(missing, ref)
		}
	}
	return missing
}

// tarFlags are tar's flags for reading file: op ("-x", "-xO") with gzip's z
// for a .gz/.tgz name (GNU tar also detects it on its own).
func tarFlags(file, op string) []string {
	if bundle.IsGzip(file) {
		op += "z"
	}
	return []string{op + "f", file}
}

// planFiles are the bundle's files that the planned sub-phases use: the
// binaries and CNI plugins for prepare/binaries, the image tarballs for
// prepare/images. Whenever anything is to be installed from the bundle, all
// of them are unpacked and verified first, so one damaged file stops the
// run with nothing installed, even a file that is not needed this time.
func (st *prepareState) planFiles(d *Data) []bundle.File {
	var out []bundle.File
	if planned(d, "prepare/binaries") {
		out = append(out, st.manifest.ByType(bundle.TypeBinary)...)
		out = append(out, st.manifest.ByType(bundle.TypeCNIPlugin)...)
	}
	if planned(d, "prepare/images") {
		out = append(out, st.manifest.ByType(bundle.TypeImages)...)
	}
	return out
}

// stage unpacks the bundle's files below stagingDir and verifies each
// against the manifest's size and sha256, all before anything is
// installed: one bad file stops the run with nothing installed. Files
// already staged in this run are not unpacked again.
func (st *prepareState) stage(ctx context.Context, d *Data, files []bundle.File) error {
	var todo []bundle.File
	for _, f := range files {
		if !st.staged[f.Path] {
			todo = append(todo, f)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	h := d.Host
	if len(st.staged) == 0 {
		if _, err := h.Run(ctx, transport.Cmd{Args: []string{"rm", "-rf", "--", stagingDir}}); err != nil {
			return fmt.Errorf("clear %s: %w", stagingDir, err)
		}
	}
	if err := h.MkdirAll(ctx, stagingDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", stagingDir, err)
	}
	args := append([]string{"tar"}, tarFlags(d.Bundle, "-x")...)
	args = append(args, "-C", stagingDir, "--no-same-owner", "--")
	for _, f := range todo {
		args = append(args, f.Path)
	}
	d.Out.Printf("prepare", "Unpacking %d files of %s into %s", len(todo), d.Bundle, stagingDir)
	if _, err := h.Run(ctx, transport.Cmd{Args: args}); err != nil {
		st.cleanup(ctx, d)
		return fmt.Errorf("unpack %s: %w", d.Bundle, err)
	}
	if d.DryRun {
		d.Out.Printf("prepare", "Dry run: the %d files would be verified against the bundle's sha256 sums before anything is installed (kubeboot bundle inspect verifies a bundle now)", len(todo))
		for _, f := range todo {
			st.staged[f.Path] = true
		}
		return nil
	}
	if err := verifyFiles(ctx, h, stagingDir, todo); err != nil {
		st.cleanup(ctx, d)
		return fmt.Errorf("bundle %s: %w; nothing was installed: the bundle is damaged, copy it again (kubeboot bundle inspect checks it)", d.Bundle, err)
	}
	for _, f := range todo {
		st.staged[f.Path] = true
	}
	d.Out.Printf("prepare", "Verified %d files against the bundle's sha256 sums", len(todo))
	return nil
}

// verifyFiles checks files below dir on h against their sizes and sums:
// sizes by stat, sums with one sha256sum.
func verifyFiles(ctx context.Context, h transport.Host, dir string, files []bundle.File) error {
	var paths []string
	for _, f := range files {
		p := path.Join(dir, f.Path)
		fi, err := h.Stat(ctx, p)
		if err != nil {
			return fmt.Errorf("%s: not in the archive (%v)", f.Path, err)
		}
		if fi.Size() != f.Size {
			return fmt.Errorf("%s: %d bytes, the manifest says %d", f.Path, fi.Size(), f.Size)
		}
		paths = append(paths, p)
	}
	sums, err := sha256Sums(ctx, h, paths)
	if err != nil {
		return err
	}
	for _, f := range files {
		p := path.Join(dir, f.Path)
		if got := sums[p]; got != f.SHA256 {
			return fmt.Errorf("%s: sha256 %s, the manifest says %s", f.Path, got, f.SHA256)
		}
	}
	return nil
}

// sha256Sums runs sha256sum on files that may be missing and returns the
// sums of those that exist.
func sha256Sums(ctx context.Context, h transport.Host, files []string) (map[string]string, error) {
	sums := map[string]string{}
	if len(files) == 0 {
		return sums, nil
	}
	res, err := h.Run(ctx, transport.Cmd{Args: append([]string{"sha256sum", "--"}, files...), ReadOnly: true})
	var ee *transport.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode == 1) {
		// 1: some file is missing or unreadable, which the caller sees.
		return nil, fmt.Errorf("sha256sum: %w", err)
	}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		if !ok {
			sum, file, ok = strings.Cut(line, " *")
		}
		if ok && len(sum) == 64 {
			sums[file] = sum
		}
	}
	return sums, nil
}

// cleanup removes the staging directory.
func (st *prepareState) cleanup(ctx context.Context, d *Data) {
	if len(st.staged) == 0 {
		if ok, _ := transport.Exists(ctx, d.Host, stagingDir); !ok {
			return
		}
	}
	st.staged = map[string]bool{}
	if _, err := d.Host.Run(ctx, transport.Cmd{Args: []string{"rm", "-rf", "--", stagingDir}}); err != nil {
		d.Out.Printf("prepare", "WARNING: could not remove %s: %v", stagingDir, err)
		return
	}
	d.Out.Printf("prepare", "Removed %s", stagingDir)
}

// lastBundlePhase is the last sub-phase of the plan that uses the bundle's
// files; it (or a failing one) removes the staging directory.
func (st *prepareState) doneWithBundle(ctx context.Context, d *Data, phase string, failed bool) {
	last := ""
	for _, p := range d.Plan {
		if p == "prepare/binaries" || p == "prepare/images" {
			last = p
		}
	}
	if failed || last == "" || last == phase {
		st.cleanup(ctx, d)
	}
}

// InstallFile installs src (on the host) as dst with mode, atomically: a
// temporary file next to dst, renamed over it, so a running program or a
// crash never sees half a binary.
func InstallFile(ctx context.Context, h transport.Host, src, dst string, mode fs.FileMode) error {
	defer hostutil.ForgetPaths(ctx) // LookPath may find dst now
	if err := h.MkdirAll(ctx, path.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path.Dir(dst), err)
	}
	tmp := path.Join(path.Dir(dst), "."+path.Base(dst)+".kubeboot-new")
	for _, args := range [][]string{
		{"install", "-m", fmt.Sprintf("%04o", mode.Perm()), "-T", "--", src, tmp},
		{"mv", "-f", "-T", "--", tmp, dst},
	} {
		if _, err := h.Run(ctx, transport.Cmd{Args: args}); err != nil {
			return fmt.Errorf("install %s: %w", dst, err)
		}
	}
	return nil
}

// outdatedFiles returns, in manifest order, the files whose installed copy (InstallPath)
// differs from the bundle's: missing, another size, mode or sum.
func outdatedFiles(ctx context.Context, h transport.Host, files []bundle.File) ([]bundle.File, error) {
	var check []bundle.File
	outdated := map[string]bool{}
	for _, f := range files {
		fi, err := h.Stat(ctx, bundle.InstallPath(f))
		if err != nil || fi.Size() != f.Size || fi.Mode().Perm()&0o111 == 0 {
			outdated[f.Path] = true
			continue
		}
		check = append(check, f)
	}
	var paths []string
	for _, f := range check {
		paths = append(paths, bundle.InstallPath(f))
	}
	sums, err := sha256Sums(ctx, h, paths)
	if err != nil {
		return nil, err
	}
	for _, f := range check {
		if sums[bundle.InstallPath(f)] != f.SHA256 {
			outdated[f.Path] = true
		}
	}
	var out []bundle.File
	for _, f := range files {
		if outdated[f.Path] {
			out = append(out, f)
		}
	}
	return out, nil
}
