package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"github.com/kubeboot/kubeboot/test/golden"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/bundle/bundletest"
)

func TestCreateAndVerify(t *testing.T) {
	for _, name := range []string{"b.tar", "b.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			spec, err := bundle.LoadSpec(bundletest.Fixture(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out", name)
			os.MkdirAll(filepath.Dir(out), 0o755)
			var lines []string
			m, err := bundle.Create(spec, out, func(f string, a ...any) { lines = append(lines, f) })
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != 13 {
				t.Errorf("%d progress lines, want 13 (7 binaries, 4 plugins, 2 image tarballs)", len(lines))
			}
			// Nothing but the bundle is left in the output directory.
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
				t.Errorf("output directory holds %d entries, want the bundle only", len(entries))
			}
			mb, _ := m.Marshal()
			golden.Check(t, "manifest.json", mb) // the same for .tar and .tar.gz
			// The first entry is the manifest, and the archive verifies.
			f, _ := os.Open(out)
			defer f.Close()
			m2, _, err := bundle.ReadManifest(f)
			if err != nil {
				t.Fatal(err)
			}
			if m2.KubernetesVersion != "v1.34.3" || m2.Arch != "amd64" || len(m2.Files) != 13 {
				t.Errorf("manifest: %+v", m2)
			}
			if _, err := bundle.Verify(out); err != nil {
				t.Errorf("Verify: %v", err)
			}
			// Reproducible: the same inputs give the same bytes.
			again := filepath.Join(dir, "again-"+name)
			if _, err := bundle.Create(spec, again, nil); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(out)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Errorf("two runs over the same spec differ")
			}
		})
	}
}

func TestManifestImages(t *testing.T) {
	dir := t.TempDir()
	spec, err := bundle.LoadSpec(bundletest.Fixture(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Create(spec, filepath.Join(dir, "b.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, cfgs := bundletest.DockerArchive("registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.5-0")
	_, digests := bundletest.OCIArchive("registry.k8s.io/coredns/coredns:v1.12.1")
	var got []string
	for _, f := range m.ByType(bundle.TypeImages) {
		for _, im := range f.Images {
			got = append(got, f.Format+" "+im.Ref+" "+im.Digest+im.ConfigDigest)
		}
	}
	want := []string{
		"docker-archive registry.k8s.io/etcd:3.6.5-0 " + cfgs[1],
		"docker-archive registry.k8s.io/pause:3.10.1 " + cfgs[0],
		"oci-archive registry.k8s.io/coredns/coredns:v1.12.1 " + digests[0],
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("images:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range m.Files {
		if f.Type == bundle.TypeBinary && bundle.InstallPath(f) != map[bool]string{true: "/usr/sbin/runc", false: "/usr/bin/" + f.Name}[f.Name == "runc"] {
			t.Errorf("%s installs to %s", f.Name, bundle.InstallPath(f))
		}
		if f.Type == bundle.TypeCNIPlugin && bundle.InstallPath(f) != "/opt/cni/bin/"+f.Name {
			t.Errorf("%s installs to %s", f.Name, bundle.InstallPath(f))
		}
	}
}

// rewrite copies a bundle, passing each entry's content through edit.
func rewrite(t *testing.T, in, out string, edit func(name string, data []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		data = edit(h.Name, data)
		if data == nil {
			continue
		}
		h.Size = int64(len(data))
		tw.WriteHeader(h)
		tw.Write(data)
	}
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsDamage(t *testing.T) {
	dir := t.TempDir()
	spec, err := bundle.LoadSpec(bundletest.Fixture(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "b.tar")
	if _, err := bundle.Create(spec, good, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(name string, data []byte) []byte
		want []string
	}{
		{"flipped byte", func(n string, d []byte) []byte {
			if n == "bin/kubelet" {
				d = append([]byte(nil), d...)
				d[70] ^= 1
			}
			return d
		}, []string{"bin/kubelet: sha256 "}},
		{"missing file", func(n string, d []byte) []byte {
			if n == "cni/portmap" {
				return nil
			}
			return d
		}, []string{"cni/portmap: in the manifest but not in the archive"}},
		{"truncated", func(n string, d []byte) []byte {
			if n == "images/coredns.tar" {
				return d[:len(d)-10]
			}
			return d
		}, []string{"images/coredns.tar: ", "bytes, the manifest says"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.tar")
			rewrite(t, good, bad, tc.edit)
			_, err := bundle.Verify(bad)
			var ve *bundle.VerifyError
			if !errors.As(err, &ve) || len(ve.Problems) != 1 {
				t.Fatalf("Verify: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
	// A tar without a manifest first is not a bundle.
	other := filepath.Join(dir, "other.tar")
	rewrite(t, good, other, func(n string, d []byte) []byte {
		if n == bundle.ManifestName {
			return nil
		}
		return d
	})
	if _, err := bundle.Verify(other); !errors.Is(err, bundle.ErrNotBundle) {
		t.Errorf("Verify of a tar without manifest: %v", err)
	}
}

func TestSpecErrors(t *testing.T) {
	dir := t.TempDir()
	bundletest.Fixture(t, dir)
	head := "apiVersion: kubeboot.io/v1alpha1\nkind: BundleSpec\nkubernetesVersion: v1.34.3\n"
	bins := "binaries:\n"
	for _, b := range bundletest.Binaries {
		bins += "  - {name: " + b.Name + ", version: \"" + b.Version + "\", path: bin/" + b.Name + "}\n"
	}
	cni := "cniPlugins: {version: 1.1.1, dir: cni}\n"
	tests := []struct {
		name, spec string
		want       []string // each a whole line of the error
	}{
		{"unknown field", head + bins + cni + "imagez: []\n", []string{"spec.yaml:13: invalid bundle spec: field imagez not found in Spec"}},
		{"wrong kind", "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nkubernetesVersion: v1.34.3\n" + bins + cni,
			[]string{`spec.yaml:2: kind: "Cluster" is not supported; expected kind: BundleSpec`}},
		{"missing file, unknown name, duplicate", head + bins +
			"  - {name: kube-proxy, version: v1.34.3, path: bin/kubelet}\n" +
			"  - {name: kubelet, version: v1.34.3, path: bin/kubelet}\n" +
			"  - {name: crictl, version: v1.34.0, path: bin/crictl}\n" + cni,
			[]string{
				`spec.yaml:12: binaries[7].name: "kube-proxy" is not a binary kubeboot installs; use one of kubelet, kubectl, kubeadm, containerd, containerd-shim-runc-v2, ctr, runc, crictl`,
				`spec.yaml:13: binaries[8].name: "kubelet" is already binaries[0] (line 5); give each binary once`,
				`spec.yaml:14: binaries[9].path: ` + dir + `/bin/crictl does not exist`,
			}},
		{"version skew, required binary, not executable", head + "binaries:\n" +
			"  - {name: kubelet, version: v1.33.1, path: bin/kubelet}\n" +
			"  - {name: kubectl, version: v1.34.3, path: cni/README}\n" + cni,
			[]string{
				`spec.yaml:5: binaries[0].version: kubelet v1.33.1 does not match kubernetesVersion v1.34.3; a bundle carries one Kubernetes version`,
				`spec.yaml:6: binaries[1].path: ` + dir + `/cni/README is not executable`,
				`spec.yaml:4: binaries: containerd, containerd-shim-runc-v2, ctr, runc are required; add {name: ..., version: ..., path: ...} for each`,
			}},
		{"cni plugins and images", head + bins + "cniPlugins:\n  version: 1.1.1\n  dir: cni\n  plugins: [bridge, loopback, flannel]\nimages:\n  - path: images/nope.tar\n  - path: images/coredns.tar\n  - path: other/coredns.tar\n",
			[]string{
				`spec.yaml:15: cniPlugins.plugins[2]: ` + dir + `/cni/flannel does not exist`,
				`spec.yaml:15: cniPlugins.plugins: lacks host-local, portmap; kubeboot needs bridge, host-local, loopback, portmap`,
				`spec.yaml:17: images[0].path: ` + dir + `/images/nope.tar does not exist`,
				`spec.yaml:19: images[2].path: ` + dir + `/other/coredns.tar does not exist`,
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "spec.yaml")
			os.WriteFile(p, []byte(tc.spec), 0o644)
			_, err := bundle.LoadSpec(p)
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.ReplaceAll(err.Error(), dir+"/spec.yaml", "spec.yaml")
			for _, w := range tc.want {
				if !strings.Contains("\n"+got+"\n", "\n"+w+"\n") {
					t.Errorf("error lacks the line\n  %s\ngot:\n%s", w, got)
				}
			}
			if n := strings.Count(got, "\n") + 1; n != len(tc.want) {
				t.Errorf("%d error lines, want %d:\n%s", n, len(tc.want), got)
			}
		})
	}
}

func TestCreateRejectsBadImages(t *testing.T) {
	dir := t.TempDir()
	p := bundletest.Fixture(t, dir)
	// An image tarball that is not one, and one without full names.
	os.WriteFile(filepath.Join(dir, "images/control-plane.tar"), []byte("not a tar"), 0o644)
	coredns := filepath.Join(dir, "images/coredns.tar")
	rewrite(t, coredns, coredns, func(n string, d []byte) []byte {
		return bytes.ReplaceAll(d, []byte(`"io.containerd.image.name":"registry.k8s.io/coredns/coredns:v1.12.1",`), nil)
	})
	spec, err := bundle.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b.tar")
	_, err = bundle.Create(spec, out, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		regexp.QuoteMeta(p) + `:\d+: images\[0\]\.path: .*control-plane.tar: not an image tarball`,
		regexp.QuoteMeta(p) + `:\d+: images\[1\]\.path: .*coredns.tar: .*is named "v1.12.1", not a full reference`,
	} {
		if !regexp.MustCompile(w).MatchString(err.Error()) {
			t.Errorf("error %q does not match %s", err, w)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed create left %s", out)
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"nginx:1.27":                    "docker.io/library/nginx:1.27",
		"flannel/flannel:v0.26.7":       "docker.io/flannel/flannel:v0.26.7",
		"ghcr.io/flannel-io/flannel:v1": "ghcr.io/flannel-io/flannel:v1",
		"localhost/pause:3.10.1":        "localhost/pause:3.10.1",
		"registry:5000/k8s/pause:3.10":  "registry:5000/k8s/pause:3.10",
		"nginx":                         "",
		"Registry.k8s.io/Pause:1":       "",
	} {
		got, err := bundle.NormalizeRef(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestReadManifestGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("not a tar at all, but long enough........................................"))
	zw.Close()
	if _, _, err := bundle.ReadManifest(&buf); !errors.Is(err, bundle.ErrNotBundle) {
		t.Errorf("ReadManifest: %v", err)
	}
}
