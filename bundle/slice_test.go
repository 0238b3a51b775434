package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/kubeboot/kubeboot/test/golden"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/bundle/bundletest"
)

// sliceFixture is the fixture bundle with two more image tarballs whose
// images share a base layer: an OCI layout with kube-apiserver,
// kube-scheduler and kube-proxy, and a docker-archive with
// kube-controller-manager alone.
func sliceFixture(t *testing.T, dir, name string) string {
	t.Helper()
	specPath := bundletest.Fixture(t, dir)
	write := func(rel string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("images/components.tar", bundletest.OCIArchiveOn("k8s",
		"registry.k8s.io/kube-apiserver:v1.34.3", "registry.k8s.io/kube-scheduler:v1.34.3", "registry.k8s.io/kube-proxy:v1.34.3"))
	write("images/kcm.tar", bundletest.DockerArchiveOn("k8s", "registry.aliyuncs.com/google_containers/kube-controller-manager:v1.34.3"))
	spec, _ := os.ReadFile(specPath)
	write("spec.yaml", append(spec, "  - path: images/components.tar\n  - path: images/kcm.tar\n"...))
	out := filepath.Join(dir, name)
	bundletest.Build(t, specPath, out)
	return out
}

// entries lists the names in the image tarball path of bundle b.
func imageEntries(t *testing.T, b, path string) []string {
	t.Helper()
	f, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, tr, err := bundle.ReadManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", path, b, err)
		}
		if h.Name != path {
			continue
		}
		var names []string
		itr := tar.NewReader(tr)
		for {
			ih, err := itr.Next()
			if errors.Is(err, io.EOF) {
				sort.Strings(names)
				return names
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, ih.Name)
		}
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestSliceWorker(t *testing.T) {
	for _, name := range []string{"b.tar", "b.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := sliceFixture(t, dir, name)
			full, err := bundle.Verify(src)
			if err != nil {
				t.Fatal(err)
			}
			outDir := filepath.Join(dir, "out")
			os.MkdirAll(outDir, 0o755)
			dst := filepath.Join(outDir, "worker-"+name)
			var lines []string
			m, err := bundle.Slice(src, dst, bundle.RoleWorker, func(f string, a ...any) { lines = append(lines, f) })
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 3 {
				t.Errorf("%d progress lines, want 3 (two tarballs sliced, one dropped)", len(lines))
			}
			if entries, _ := os.ReadDir(outDir); len(entries) != 1 {
				t.Errorf("the output directory holds %d entries, want the slice alone (no staging left)", len(entries))
			}
			got, err := bundle.Verify(dst)
			if err != nil {
				t.Fatalf("the slice does not verify: %v", err)
			}
			if got.Role != bundle.RoleWorker || got.Source != fileSHA(t, src) || m.Source != got.Source {
				t.Errorf("role %q, source %q; want worker, %s", got.Role, got.Source, fileSHA(t, src))
			}
			// The files are the same for .tar and .tar.gz; the source's sum
			// is not.
			gm := *got
			gm.Source = "sha256:<the bundle's>"
			var mb bytes.Buffer
			enc := json.NewEncoder(&mb)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			enc.Encode(gm)
			golden.Check(t, "manifest-worker.json", mb.Bytes())

			// Binaries and plugins as they were; images without the
			// control plane's; the tarball of kube-controller-manager
			// alone is gone.
			before := map[string]bundle.File{}
			for _, f := range full.Files {
				before[f.Path] = f
			}
			var refs []string
			for _, f := range got.Files {
				if f.Type != bundle.TypeImages {
					if b := before[f.Path]; b.SHA256 != f.SHA256 || b.Size != f.Size {
						t.Errorf("%s changed in the slice", f.Path)
					}
					continue
				}
				for _, im := range f.Images {
					refs = append(refs, im.Ref)
				}
			}
			want := "registry.k8s.io/coredns/coredns:v1.12.1 registry.k8s.io/kube-proxy:v1.34.3 registry.k8s.io/pause:3.10.1"
			if sort.Strings(refs); strings.Join(refs, " ") != want {
				t.Errorf("the slice's images: %v\nwant %s", refs, want)
			}
			if _, ok := got.Binary("kubelet"); !ok || len(got.Files) != len(full.Files)-1 {
				t.Errorf("the slice has %d files, want %d (all but images/kcm.tar)", len(got.Files), len(full.Files)-1)
			}
			for _, f := range got.Files {
				if f.Path == "images/kcm.tar" {
					t.Error("images/kcm.tar, with control-plane images only, is in the slice")
				}
				if f.Path == "images/coredns.tar" && f.SHA256 != before[f.Path].SHA256 {
					t.Error("images/coredns.tar, with nothing to drop, was rewritten")
				}
			}
			// The shared base layer stays, the dropped images' own layers,
			// configs and manifests go.
			blobs := strings.Join(imageEntries(t, dst, "images/components.tar"), " ")
			hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
			if !strings.Contains(blobs, hexOf(bundletest.LayerDigest("k8s", ""))) ||
				!strings.Contains(blobs, hexOf(bundletest.LayerDigest("k8s", "registry.k8s.io/kube-proxy:v1.34.3"))) {
				t.Errorf("the shared base layer or kube-proxy's layer is missing: %s", blobs)
			}
			for _, ref := range []string{"registry.k8s.io/kube-apiserver:v1.34.3", "registry.k8s.io/kube-scheduler:v1.34.3"} {
				if strings.Contains(blobs, hexOf(bundletest.LayerDigest("k8s", ref))) {
					t.Errorf("%s's own layer is still in the slice", ref)
				}
			}
			// 2 layers + config + manifest of kube-proxy, oci-layout, index.json
			if n := len(strings.Fields(blobs)); n != 6 {
				t.Errorf("components.tar holds %d entries, want 6: %s", n, blobs)
			}
			if e := imageEntries(t, dst, "images/control-plane.tar"); len(e) != 3 {
				t.Errorf("control-plane.tar holds %v, want pause's config and layer and manifest.json", e)
			}

			// The same bundle gives the same slice, byte for byte.
			again := filepath.Join(dir, "again-"+name)
			if _, err := bundle.Slice(src, again, bundle.RoleWorker, nil); err != nil {
				t.Fatal(err)
			}
			if fileSHA(t, again) != fileSHA(t, dst) {
				t.Error("two slices of one bundle differ")
			}
			if name == "b.tar.gz" {
				b, _ := os.ReadFile(dst)
				if _, err := gzip.NewReader(bytes.NewReader(b)); err != nil {
					t.Errorf("a .tar.gz slice is not gzip: %v", err)
				}
			}
		})
	}
}

func TestSliceRefuses(t *testing.T) {
	dir := t.TempDir()
	src := sliceFixture(t, dir, "b.tar")
	worker := filepath.Join(dir, "worker.tar")
	if _, err := bundle.Slice(src, worker, bundle.RoleWorker, nil); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged.tar")
	rewrite(t, src, damaged, func(name string, data []byte) []byte {
		if name == "images/components.tar" {
			data = append([]byte{}, data...)
			data[len(data)/2] ^= 1
		}
		return data
	})
	for _, tc := range []struct {
		name, src, role, want string
	}{
		{"control-plane role", src, "control-plane", `role "control-plane": a bundle is sliced for worker nodes only`},
		{"a slice again", worker, bundle.RoleWorker, "is a worker bundle already (sliced from sha256:"},
		{"damaged", damaged, bundle.RoleWorker, "images/components.tar: sha256 "},
		{"missing", filepath.Join(dir, "nope.tar"), bundle.RoleWorker, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tc.name, " ", "-")+".tar")
			_, err := bundle.Slice(tc.src, out, tc.role, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("%s was written by a failed slice", out)
			}
		})
	}
	// Nothing but the inputs and the one good slice is left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestManifestRole(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	src := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, fields, want string }{
		{"whole", ``, ""},
		{"worker", `"role": "worker", "source": "` + src + `",`, ""},
		{"source without role", `"source": "` + src + `",`, `source "` + src + `" without a role`},
		{"unknown role", `"role": "control-plane", "source": "` + src + `",`, `role "control-plane": the only sliced role is worker`},
		{"bad source", `"role": "worker", "source": "abc",`, `source "abc" is not the sha256:<hex>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Replace(base, []byte(`"files":`), []byte(tc.fields+`"files":`), 1)
			_, err := bundle.ParseManifest(data)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestImageName(t *testing.T) {
	for ref, want := range map[string]bool{
		"registry.k8s.io/kube-apiserver:v1.34.3":                          true,
		"registry.aliyuncs.com/google_containers/etcd:3.6.5-0":            true,
		"localhost:5000/kube-scheduler@sha256:" + strings.Repeat("0", 64): true,
		"registry.k8s.io/kube-proxy:v1.34.3":                              false,
		"registry.k8s.io/etcd-backup:v1":                                  false,
		"docker.io/library/pause:3.10.1":                                  false,
	} {
		if got := bundle.ControlPlaneOnly(ref); got != want {
			t.Errorf("ControlPlaneOnly(%s) = %v, want %v", ref, got, want)
		}
	}
}

// BenchmarkSlice: the worker part of a bundle of about 48 MiB (the
// fixture's binaries, and a docker-archive of eight images of 6 MiB each
// over a shared base, four of them the control plane's).
func BenchmarkSlice(b *testing.B) {
	dir := b.TempDir()
	specPath := bundletest.Fixture(b, dir)
	var refs []string
	for _, n := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kube-proxy", "coredns", "flannel", "pause"} {
		refs = append(refs, "registry.k8s.io/"+n+":v1")
	}
	if err := os.WriteFile(filepath.Join(dir, "images/all.tar"), bundletest.DockerArchiveOnSized("base", 6<<20, refs...), 0o644); err != nil {
		b.Fatal(err)
	}
	spec, _ := os.ReadFile(specPath)
	os.WriteFile(specPath, append(spec, "  - path: images/all.tar\n"...), 0o644)
	src := filepath.Join(dir, "b.tar")
	bundletest.Build(b, specPath, src)
	fi, _ := os.Stat(src)
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(dir, "w.tar")
		if _, err := bundle.Slice(src, dst, bundle.RoleWorker, nil); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			out, _ := os.Stat(dst)
			b.ReportMetric(float64(out.Size())/float64(fi.Size())*100, "%size")
		}
	}
}
