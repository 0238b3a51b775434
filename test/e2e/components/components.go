// Package components builds what a kubeboot bundle carries from real
// components, and caches every result under the kubeboot cache directory
// (~/.cache/kubeboot) keyed by version or content hash:
//
//   - Kubernetes v1.34.3 and etcd v3.6.5 from the Go module proxy
//     (test/k8sbin/build.sh, version-stamped);
//   - crictl from sigs.k8s.io/cri-tools (test/k8sbin/crictl, its own module,
//     version-stamped);
//   - outside the bundle, for the scenario to copy into machines itself: the
//     real kubeadm (test/k8sbin/build.sh) and kube-bench with its benchmark
//     definitions (test/k8sbin/kube-bench, its own module, version-stamped);
//   - CoreDNS, flanneld and the flannel CNI plugin from their Go modules
//     (test/e2e/addons/*, each its own module);
//   - containerd, runc and the CNI plugins from Debian packages
//     (apt-get download + dpkg-deb -x: the host needs none of them installed);
//   - container images, without Docker, by test/e2e/mkimages
//     (go-containerregistry, its own module), on a glibc base layer trimmed
//     from the machines' Debian rootfs for the images that exec iptables and
//     conntrack.
package components

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The versions the e2e bundle is built from.
const (
	KubernetesVersion = "v1.34.3"
	EtcdVersion       = "v3.6.5"
	CoreDNSVersion    = "v1.12.1" // what kubeadm v1.34.3 deploys
	FlannelVersion    = "v0.26.7"
	// FlannelCNIVersion is github.com/containernetworking/plugins' version
	// whose meta/flannel is the flannel CNI plugin (the flannel-cni-plugin
	// image's /flannel).
	FlannelCNIVersion = "v0.9.1"
	// CrictlVersion is sigs.k8s.io/cri-tools' version: the crictl the bundle
	// installs as /usr/bin/crictl, for reset to remove pod sandboxes and
	// containers through the CRI as kubeadm does.
	CrictlVersion = "v1.34.0"
	// KubeBenchVersion is github.com/aquasecurity/kube-bench's version: the
	// CIS Kubernetes Benchmark runner the scenario copies into its machines
	// (not into the bundle).
	KubeBenchVersion = "v0.14.0"
)

// KubernetesComponents are the binaries built by test/k8sbin/build.sh.
var KubernetesComponents = []string{
	"kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd",
}

// Builder builds into Cache from the kubeboot checkout at Repo.
type Builder struct {
	Repo  string
	Cache string
	Logf  func(format string, args ...any)
}

func (b *Builder) logf(format string, args ...any) {
	if b.Logf != nil {
		b.Logf(format, args...)
	}
}

// Kubernetes returns the directory holding KubernetesComponents, building
// the missing ones (≈12-15 minutes cold on 2 cores, nothing when cached).
func (b *Builder) Kubernetes(ctx context.Context) (string, error) {
	return b.k8sbin(ctx, KubernetesComponents...)
}

// Kubeadm returns the real kubeadm KubernetesVersion, built by
// test/k8sbin/build.sh into the same cache directory as Kubernetes (≈1
// minute cold once Kubernetes' modules are downloaded). It is not in the
// bundle: the scenario copies it in for its kubeadm reference.
func (b *Builder) Kubeadm(ctx context.Context) (string, error) {
	dir, err := b.k8sbin(ctx, "kubeadm")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kubeadm"), nil
}

// k8sbin runs test/k8sbin/build.sh for components and returns its cache
// directory.
func (b *Builder) k8sbin(ctx context.Context, components ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(b.Repo, "test/k8sbin/build.sh"), components...)
	cmd.Env = append(os.Environ(), "KUBEBOOT_CACHE="+b.Cache)
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, logWriter{b})
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/k8sbin/build.sh: %v\n%s", err, tail(stderr.Bytes(), 30))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	for _, c := range components {
		if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
			return "", fmt.Errorf("test/k8sbin/build.sh did not build %s: %w", c, err)
		}
	}
	return dir, nil
}

// Crictl builds (or finds) crictl, static, stamped with CrictlVersion as
// cri-tools' release does (crictl --version: "crictl version v1.34.0").
func (b *Builder) Crictl(ctx context.Context) (string, error) {
	return b.goBuild(ctx, goBin{
		module: "test/k8sbin/crictl", pkg: "sigs.k8s.io/cri-tools/cmd/crictl", out: "crictl",
		version: CrictlVersion,
		ldflags: "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=" + CrictlVersion,
	})
}

// KubeBench builds (or finds) kube-bench, static, stamped with
// KubeBenchVersion as its release is (kube-bench version: "v0.14.0"), and
// copies the module's cfg/ directory (cfg/config.yaml, where kube-bench
// looks for the components' binaries and files, and the benchmarks'
// definitions, cfg/<benchmark>/*.yaml) next to it. It returns the binary;
// the definitions are in filepath.Join(filepath.Dir(bin), "cfg"). Not in
// the bundle.
func (b *Builder) KubeBench(ctx context.Context) (string, error) {
	const module, pkg = "test/k8sbin/kube-bench", "github.com/aquasecurity/kube-bench"
	bin, err := b.goBuild(ctx, goBin{
		module: module, pkg: pkg, out: "kube-bench",
		version: KubeBenchVersion,
		ldflags: "-s -w -X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion=" + KubeBenchVersion,
	})
	if err != nil {
		return "", err
	}
	cfg := filepath.Join(filepath.Dir(bin), "cfg")
	if _, err := os.Stat(filepath.Join(cfg, "config.yaml")); err == nil {
		return bin, nil
	}
	// The module's source, in the module cache since the build.
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", pkg)
	cmd.Dir = filepath.Join(b.Repo, module)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	src := strings.TrimSpace(string(out))
	if err != nil || src == "" {
		return "", fmt.Errorf("go list -m %s (in %s): %q, %v", pkg, module, src, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(bin), ".cfg-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(filepath.Join(src, "cfg"), tmp); err != nil {
		return "", fmt.Errorf("kube-bench's cfg: %w", err)
	}
	if err := os.Rename(tmp, cfg); err != nil {
		return "", err
	}
	return bin, nil
}

// copyTree copies the regular files below src into dst, files 0644 and
// directories 0755 (the module cache's are read-only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// Addons are the add-on binaries.
type Addons struct {
	CoreDNS    string // coredns
	Flanneld   string // flanneld, static (cgo for its udp backend)
	FlannelCNI string // the flannel CNI plugin, named flannel
}

// Addons builds (or finds) CoreDNS, flanneld and the flannel CNI plugin.
func (b *Builder) Addons(ctx context.Context) (Addons, error) {
	var a Addons
	var err error
	if a.CoreDNS, err = b.goBuild(ctx, goBin{
		module: "test/e2e/addons/coredns", pkg: "github.com/coredns/coredns", out: "coredns",
		version: CoreDNSVersion, ldflags: "-s -w",
	}); err != nil {
		return a, err
	}
	if a.Flanneld, err = b.goBuild(ctx, goBin{
		module: "test/e2e/addons/flannel", pkg: "github.com/flannel-io/flannel", out: "flanneld",
		version: FlannelVersion, cgo: true,
		ldflags: "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=" + FlannelVersion + " -extldflags -static",
	}); err != nil {
		return a, err
	}
	if a.FlannelCNI, err = b.goBuild(ctx, goBin{
		module: "test/e2e/addons/flannel-cni", pkg: "github.com/containernetworking/plugins/plugins/meta/flannel", out: "flannel",
		version: FlannelCNIVersion, ldflags: "-s -w",
	}); err != nil {
		return a, err
	}
	return a, nil
}

// Tools are the small programs the images and the image build need.
type Tools struct {
	Pause    string // the pause image's program
	NetTest  string // the test application image's program
	MkImages string // the image builder
}

// Tools builds (or finds) pause, nettest and mkimages.
func (b *Builder) Tools(ctx context.Context) (Tools, error) {
	var t Tools
	var err error
	if t.Pause, err = b.goBuild(ctx, goBin{module: ".", pkg: "./test/e2e/images/pause", out: "pause", srcDir: "test/e2e/images/pause", ldflags: "-s -w"}); err != nil {
		return t, err
	}
	if t.NetTest, err = b.goBuild(ctx, goBin{module: ".", pkg: "./test/e2e/images/nettest", out: "nettest", srcDir: "test/e2e/images/nettest", ldflags: "-s -w"}); err != nil {
		return t, err
	}
	if t.MkImages, err = b.goBuild(ctx, goBin{module: "test/e2e/mkimages", pkg: ".", out: "mkimages", srcDir: "test/e2e/mkimages"}); err != nil {
		return t, err
	}
	return t, nil
}

// goBin is one Go binary built in a module of the checkout.
type goBin struct {
	module  string // the module's directory, relative to the checkout
	pkg     string // the package to build, in that module
	out     string // the binary's name
	version string // the component's version; "" keys the cache by srcDir's content
	srcDir  string // for version "": the sources to hash
	cgo     bool
	ldflags string
}

// goBuild builds bin into Cache/bin/<out>-<version or source hash>-<go.sum
// hash>/<out> unless it is there.
func (b *Builder) goBuild(ctx context.Context, bin goBin) (string, error) {
	modDir := filepath.Join(b.Repo, bin.module)
	h := sha256.New()
	modFiles := []string{"go.mod", "go.sum"}
	if bin.module == "." {
		modFiles = nil // kubeboot's own module: its tools here use the standard library only
	}
	for _, f := range modFiles {
		data, err := os.ReadFile(filepath.Join(modDir, f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		h.Write(data)
	}
	fmt.Fprintf(h, "cgo=%v ldflags=%s pkg=%s\n", bin.cgo, bin.ldflags, bin.pkg)
	key := bin.version
	if bin.srcDir != "" {
		if err := hashDir(h, filepath.Join(b.Repo, bin.srcDir)); err != nil {
			return "", err
		}
		if key == "" {
			key = "src"
		}
	}
	dir := filepath.Join(b.Cache, "bin", fmt.Sprintf("%s-%s-%s", bin.out, key, hex.EncodeToString(h.Sum(nil))[:12]))
	path := filepath.Join(dir, bin.out)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	tmp := filepath.Join(dir, "."+bin.out+".tmp")
	args := []string{"build", "-trimpath", "-buildvcs=false", "-o", tmp}
	if bin.ldflags != "" {
		args = append(args, "-ldflags", bin.ldflags)
	}
	args = append(args, bin.pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = modDir
	cgo := "0"
	if bin.cgo {
		cgo = "1"
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (in %s): %v\n%s", bin.pkg, bin.module, err, tail(out, 30))
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	b.logf("built %s %s in %s", bin.out, key, time.Since(start).Round(time.Second))
	return path, nil
}

func hashDir(h io.Writer, dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %d\n", rel, len(data))
		h.Write(data)
		return nil
	})
}

type logWriter struct{ b *Builder }

func (w logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "go: downloading") {
			w.b.logf("%s", line)
		}
	}
	return len(p), nil
}

func tail(out []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

// sha256File returns a file's hex sha256.
func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
