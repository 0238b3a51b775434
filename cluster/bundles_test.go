package cluster

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/bundle/bundletest"
)

// testBundle writes bundletest's fixture bundle (pause and etcd in a
// docker-archive, coredns in an OCI layout) below dir.
func testBundle(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "kubeboot-v1.34.3-amd64.tar")
	bundletest.Build(t, bundletest.Fixture(t, filepath.Join(dir, "src")), out)
	return out
}

// The hosts that are only workers get the worker part of the bundle, cut
// once into the cache and sent and prepared from; control planes (and a
// host with both roles) get the whole bundle. A second run cuts and sends
// nothing.
func TestApplyWorkersGetTheWorkerPart(t *testing.T) {
	dir := t.TempDir()
	whole := testBundle(t, dir)
	inv := loadTestInventory(t, withBundle(testInventory, whole)+
		"  - {name: cw, address: 10.0.0.31, roles: [control-plane, worker]}\n")
	cache := filepath.Join(dir, "cache")
	fc, o, out := applyWithCache(t, inv, cache, nil)
	wholeSum, wholeSize, _ := fileSum(whole)
	parts, _ := filepath.Glob(filepath.Join(cache, "*.tar"))
	if len(parts) != 1 || filepath.Base(parts[0]) != wholeSum[:16]+"-worker.tar" {
		t.Fatalf("the cache holds %v, want the worker part alone", parts)
	}
	slice := parts[0]
	m, err := bundle.Verify(slice)
	if err != nil || m.Role != bundle.RoleWorker || m.Source != "sha256:"+wholeSum {
		t.Fatalf("the cached slice: %+v, %v", m, err)
	}
	for _, f := range m.Files {
		for _, im := range f.Images {
			if bundle.ControlPlaneOnly(im.Ref) {
				t.Errorf("the workers' part holds %s", im.Ref)
			}
		}
	}
	sliceSum, sliceSize, _ := fileSum(slice)
	if sliceSize >= wholeSize {
		t.Errorf("the worker part is %d bytes, the whole bundle %d", sliceSize, wholeSize)
	}
	sliceData, _ := os.ReadFile(slice)
	wholeData, _ := os.ReadFile(whole)
	if !strings.Contains(out.String(), "[bundle] the workers get the worker part of the bundle") || !strings.Contains(out.String(), "cut in") {
		t.Errorf("output does not say the workers' part was cut:\n%s", out.String())
	}
	for name, f := range fc.hosts {
		remote, want := remoteBundleDir+"/"+wholeSum[:16]+".tar", wholeData
		if strings.HasPrefix(name, "w") {
			remote, want = remoteBundleDir+"/"+sliceSum[:16]+".tar", sliceData
		}
		if got, _, ok := f.File(remote); !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: %s uploaded %v, or not the right bundle", name, remote, ok)
		}
		prepared := false
		for _, c := range f.Commands() {
			if strings.Contains(c, " init phase prepare ") {
				prepared = strings.Contains(c, "--bundle "+remote)
			}
		}
		if !prepared {
			t.Errorf("%s: prepare did not use %s: %v", name, remote, f.Commands())
		}
	}
	st, _ := os.Stat(slice)

	// Again: the cached part checks, nothing is cut or sent.
	out.Reset()
	if _, err := Apply(context.Background(), inv, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if st2, _ := os.Stat(slice); !os.SameFile(st, st2) || !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the cached worker part was cut again")
	}
	if !strings.Contains(out.String(), "cut before") || strings.Contains(out.String(), "bundle's worker part (") {
		t.Errorf("second run:\n%s", out.String())
	}

	// A damaged cached part is cut again, not sent.
	os.WriteFile(slice, append(sliceData[:len(sliceData)/2:len(sliceData)/2], make([]byte, len(sliceData)/2+1)...), 0o644)
	out.Reset()
	if _, err := Apply(context.Background(), inv, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got, _ := os.ReadFile(slice); !bytes.Equal(got, sliceData) || !strings.Contains(out.String(), "does not check") {
		t.Errorf("a damaged cache was not cut again:\n%s", out.String())
	}
}

// --whole-bundle: every host gets the whole bundle; nothing is cut.
func TestApplyWholeBundle(t *testing.T) {
	dir := t.TempDir()
	whole := testBundle(t, dir)
	inv := loadTestInventory(t, withBundle(testInventory, whole))
	fc, o, _ := applyWithCache(t, inv, filepath.Join(dir, "cache"), func(o *Options) { o.WholeBundle = true })
	checkWholeBundleEverywhere(t, fc, whole)
	if parts, _ := filepath.Glob(filepath.Join(o.CacheDir, "*-worker.tar")); len(parts) > 0 {
		t.Errorf("--whole-bundle cut a worker part: %v", parts)
	}
}

// A worker part given as the inventory's bundle stops apply before it
// connects, naming the control planes that need the whole one.
func TestApplyRefusesAWorkerPartAsTheBundle(t *testing.T) {
	dir := t.TempDir()
	whole := testBundle(t, dir)
	part := filepath.Join(dir, "worker.tar")
	if _, err := bundle.Slice(whole, part, bundle.RoleWorker, nil); err != nil {
		t.Fatal(err)
	}
	inv := loadTestInventory(t, withBundle(testInventory, part))
	fc := newFakeCluster(t, inv)
	var out bytes.Buffer
	_, err := Apply(context.Background(), inv, fc.options(t, &out))
	if err == nil || !strings.Contains(err.Error(), "is the worker part of a bundle (sliced from sha256:") || !strings.Contains(err.Error(), "the control planes (cp1, cp2, cp3) need the whole bundle") {
		t.Fatalf("error: %v", err)
	}
	for _, f := range fc.hosts {
		if len(f.Runs()) > 0 {
			t.Errorf("%s: ran %v", f.Name(), f.Commands())
		}
	}
}

// A bundle without control-plane images goes to the workers whole: their
// part would hold the same files.
func TestApplyNoWorkerPartWithoutControlPlaneImages(t *testing.T) {
	dir := t.TempDir()
	specPath := bundletest.Fixture(t, filepath.Join(dir, "src"))
	pause, _ := bundletest.DockerArchive("registry.k8s.io/pause:3.10.1")
	if err := os.WriteFile(filepath.Join(dir, "src", "images", "control-plane.tar"), pause, 0o644); err != nil {
		t.Fatal(err)
	}
	whole := filepath.Join(dir, "b.tar")
	bundletest.Build(t, specPath, whole)
	inv := loadTestInventory(t, withBundle(testInventory, whole))
	fc, o, out := applyWithCache(t, inv, filepath.Join(dir, "cache"), nil)
	checkWholeBundleEverywhere(t, fc, whole)
	if parts, _ := filepath.Glob(filepath.Join(o.CacheDir, "*-worker.tar")); len(parts) > 0 || strings.Contains(out.String(), "worker part") {
		t.Errorf("a worker part was cut of a bundle without control-plane images:\n%s", out.String())
	}
}

// The sums of the binary, the bundle and the worker part are read once:
// a re-run takes them from the cache while the files' stat is unchanged,
// and reads a file again once it changed.
func TestSumCache(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("one"), 0o644)
	c := loadSumCache(dir)
	s1, n, err := c.sum(f)
	if err != nil || n != 3 {
		t.Fatal(s1, n, err)
	}
	c.save()
	if fi, err := os.Stat(filepath.Join(dir, "sums.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sums.json: %v %v", fi, err)
	}
	// A new process: the entry is there, and it is used (a wrong sum in
	// the file shows it is not read again).
	c = loadSumCache(dir)
	e, ok := c.get(f)
	if !ok || e.SHA256 != s1 {
		t.Fatalf("cached: %+v %v", e, ok)
	}
	abs, _ := filepath.Abs(f)
	e.SHA256 = "cached"
	c.entries[abs] = e
	if s, _, _ := c.sum(f); s != "cached" {
		t.Errorf("the cache was not used: %s", s)
	}
	// Changed content (and so size and mtime): read again.
	os.WriteFile(f, []byte("three"), 0o644)
	if s, n, _ := c.sum(f); s == "cached" || s == s1 || n != 5 {
		t.Errorf("a changed file's sum came from the cache: %s %d", s, n)
	}
	// Without a cache directory nothing is written.
	c = loadSumCache("")
	c.sum(f)
	c.save()
}

// checkWholeBundleEverywhere fails t unless every host of fc got the
// bundle whole.
func checkWholeBundleEverywhere(t *testing.T, fc *fakeCluster, whole string) {
	t.Helper()
	sum, _, _ := fileSum(whole)
	for name, f := range fc.hosts {
		if _, _, ok := f.File(remoteBundleDir + "/" + sum[:16] + ".tar"); !ok {
			t.Errorf("%s did not get the whole bundle", name)
		}
	}
}

// applyWithCache applies inv to a fake cluster of it, the bundle's parts
// cut into cache, with the options edit changes (when not nil); apply must
// succeed. It returns the options and the output for the runs after.
func applyWithCache(t *testing.T, inv *Inventory, cache string, edit func(*Options)) (*fakeCluster, Options, *bytes.Buffer) {
	t.Helper()
	t.Setenv("W3_SUDO", "x")
	fc := newFakeCluster(t, inv)
	out := &bytes.Buffer{}
	o := fc.options(t, out)
	o.CacheDir = cache
	if edit != nil {
		edit(&o)
	}
	if _, err := Apply(context.Background(), inv, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return fc, o, out
}
