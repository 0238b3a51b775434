package cluster

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/inventory"
)

// hostBundle is a bundle apply sends to hosts: the inventory's whole
// bundle, or its worker part for the hosts that are only workers.
type hostBundle struct {
	local  string // on the operator's machine
	sum    string // sha256 hex of the file
	size   int64
	remote string // on the hosts: named by its checksum
	m      *bundle.Manifest
}

func newHostBundle(local, sum string, size int64, m *bundle.Manifest) *hostBundle {
	return &hostBundle{local: local, sum: sum, size: size, m: m, remote: path.Join(remoteBundleDir, sum[:16]+".tar")}
}

// what names the bundle in the upload's line.
func (b *hostBundle) what() string {
	if b.m.Role != "" {
		return "bundle's " + b.m.Role + " part"
	}
	return "bundle"
}

// missingOn says whether the host of f still needs b uploaded (false
// without a bundle).
func (b *hostBundle) missingOn(f facts) bool { return b != nil && f.bundleSum != b.sum }

// bundleFor is the bundle host h gets, or nil without one.
func (a *applier) bundleFor(h *inventory.Host) *hostBundle {
	if a.worker != nil && !h.IsControlPlane() {
		return a.worker
	}
	return a.full
}

// localBundles reads the inventory's bundle (its checksum, its manifest,
// which must be for the cluster's version and for every node) and, when
// some hosts are only workers, finds or makes its worker part.
func (a *applier) localBundles() error {
	b := a.inv.BundlePath()
	if b == "" {
		return nil
	}
	sum, size, err := a.sums.sum(b)
	if err != nil {
		return fmt.Errorf("%s: bundle: %w", a.inv.Path, err)
	}
	m, err := readBundleManifest(b)
	if err != nil {
		return fmt.Errorf("%s: bundle %s: %w", a.inv.Path, b, err)
	}
	if m.KubernetesVersion != a.inv.KubernetesVersion {
		return fmt.Errorf("%s: bundle %s carries Kubernetes %s, the cluster is %s: build a bundle for %s (kubeboot bundle create) or set kubernetesVersion: %s",
			a.inv.Path, b, m.KubernetesVersion, a.inv.KubernetesVersion, a.inv.KubernetesVersion, m.KubernetesVersion)
	}
	if m.Role != "" {
		var cps []string
		for _, h := range a.inv.ControlPlanes() {
			cps = append(cps, h.Name)
		}
		return fmt.Errorf("%s: bundle %s is the %s part of a bundle (sliced from %s): the control planes (%s) need the whole bundle; give bundle: the whole one, and apply slices it for the workers itself",
			a.inv.Path, b, m.Role, m.Source, strings.Join(cps, ", "))
	}
	a.full = newHostBundle(b, sum, size, m)
	a.bundleArch = m.Arch
	if len(a.inv.Workers()) == 0 || a.o.WholeBundle || !hasControlPlaneImages(m) {
		return nil
	}
	a.worker, err = a.workerBundle()
	return err
}

// workerBundle returns the worker part of the whole bundle from the cache
// (CacheDir, ~/.cache/kubeboot/bundles), checked against its manifest and
// its source, or cuts it there (bundle.Slice) when it is missing or does
// not check.
func (a *applier) workerBundle() (*hostBundle, error) {
	dir := a.cacheDir()
	if dir == "" {
		a.p.line("bundle", "", "no cache directory (%v): the workers get the whole bundle", a.cacheErr)
		return nil, nil
	}
	name := a.full.sum[:16] + "-" + bundle.RoleWorker + ".tar"
	if bundle.IsGzip(a.full.local) {
		name += ".gz"
	}
	p := filepath.Join(dir, name)
	if wb, err := a.checkedSlice(p); err == nil {
		a.p.line("bundle", "", "the workers get the %s part of the bundle (%s of %s, no control-plane images): %s, cut before", bundle.RoleWorker, mib(wb.size), mib(a.full.size), p)
		return wb, nil
	} else if !os.IsNotExist(err) {
		a.p.line("bundle", "", "the cached %s does not check (%v): cutting it again", p, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("the cache for the workers' bundle: %w", err)
	}
	start := time.Now()
	if _, err := bundle.Slice(a.full.local, p, bundle.RoleWorker, nil); err != nil {
		return nil, fmt.Errorf("cut the workers' part of the bundle: %w", err)
	}
	wb, err := a.checkedSlice(p)
	if err != nil {
		return nil, fmt.Errorf("the workers' part of the bundle, just cut: %w", err)
	}
	a.p.line("bundle", "", "the workers get the %s part of the bundle (%s of %s, no control-plane images): cut in %s to %s",
		bundle.RoleWorker, mib(wb.size), mib(a.full.size), time.Since(start).Round(100*time.Millisecond), p)
	return wb, nil
}

// cacheDir is where apply keeps the workers' part of the bundle and the
// sums of what it sends: Options.CacheDir, else ~/.cache/kubeboot/bundles;
// "" when there is none (a.cacheErr says why).
func (a *applier) cacheDir() string {
	if a.o.CacheDir != "" {
		return a.o.CacheDir
	}
	c, err := os.UserCacheDir()
	if err != nil {
		a.cacheErr = err
		return ""
	}
	return filepath.Join(c, "kubeboot", "bundles")
}

// checkedSlice reads a cached slice once: every file against its manifest,
// the manifest against the whole bundle it must come from, and the file's
// checksum for the upload. A slice that checked before and whose stat has
// not changed since (the sum cache) is not read again, but its manifest
// must still name the whole bundle.
func (a *applier) checkedSlice(p string) (*hostBundle, error) {
	full := a.full
	check := func(m *bundle.Manifest) error {
		if m.Role != bundle.RoleWorker || m.Source != "sha256:"+full.sum {
			return fmt.Errorf("it is the %q part of %s, not the worker part of %s", m.Role, m.Source, full.local)
		}
		return nil
	}
	if e, ok := a.sums.get(p); ok && e.Verified {
		m, err := readBundleManifest(p)
		if err != nil {
			return nil, err
		}
		if err := check(m); err != nil {
			return nil, err
		}
		return newHostBundle(p, e.SHA256, e.Size, m), nil
	}
	before, _ := statEntry(p)
	m, sum, size, err := bundle.VerifyFile(p)
	if err != nil {
		return nil, err
	}
	if err := check(m); err != nil {
		return nil, err
	}
	a.sums.put(p, before, sum, true)
	return newHostBundle(p, sum, size, m), nil
}

// hasControlPlaneImages says whether a worker's part of the bundle would be
// smaller than the bundle.
func hasControlPlaneImages(m *bundle.Manifest) bool {
	for _, f := range m.ByType(bundle.TypeImages) {
		for _, im := range f.Images {
			if bundle.ControlPlaneOnly(im.Ref) {
				return true
			}
		}
	}
	return false
}
