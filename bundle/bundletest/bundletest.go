// Package bundletest makes small, valid inputs for bundle tests: ELF
// headers that pass for executables of an architecture, docker-archive and
// OCI image tarballs, and a complete bundle spec with its files.
package bundletest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
)

// ELF returns a minimal 64-bit little-endian ELF executable header for
// machine (62 x86-64, 183 AArch64) followed by payload, so that different
// payloads give different files.
func ELF(machine uint16, payload string) []byte {
	h := make([]byte, 64)
	copy(h, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	binary.LittleEndian.PutUint16(h[16:], 2) // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], machine)
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint16(h[52:], 64) // e_ehsize
	binary.LittleEndian.PutUint16(h[54:], 56) // e_phentsize
	binary.LittleEndian.PutUint16(h[58:], 64) // e_shentsize
	return append(h, []byte(payload)...)
}

// Machine numbers for ELF.
const (
	AMD64 uint16 = 62
	ARM64 uint16 = 183
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type entry struct {
	name string
	data []byte
}

func tarball(entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			panic(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// image is one single-layer image: its config and layer.
func image(seed string) (config, layer []byte) {
	layer = tarball([]entry{{name: seed, data: []byte("content of " + seed + "\n")}})
	config, _ = json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/" + seed}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + sum(layer)}},
	})
	return config, layer
}

// DockerArchiveOnSized is DockerArchiveOn with each image's own layer of
// size bytes (pseudo-random, so it does not compress) and a base of size.
func DockerArchiveOnSized(base string, size int, refs ...string) []byte {
	noise := func(seed string) []byte {
		out := make([]byte, 0, size)
		h := sha256.Sum256([]byte(seed))
		for len(out) < size {
			h = sha256.Sum256(h[:])
			out = append(out, h[:]...)
		}
		return out[:size]
	}
	baseLayer := tarball([]entry{{name: "base", data: noise(base)}})
	var entries []entry
	var manifest []map[string]any
	entries = append(entries, entry{sum(baseLayer) + ".tar", baseLayer})
	for _, ref := range refs {
		own := tarball([]entry{{name: ref, data: noise(ref)}})
		config, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + sum(baseLayer), "sha256:" + sum(own)}}})
		cfgName := "sha256:" + sum(config)
		entries = append(entries, entry{cfgName, config}, entry{sum(own) + ".tar", own})
		manifest = append(manifest, map[string]any{"Config": cfgName, "RepoTags": []string{ref}, "Layers": []string{sum(baseLayer) + ".tar", sum(own) + ".tar"}})
	}
	m, _ := json.Marshal(manifest)
	return tarball(append(entries, entry{"manifest.json", m}))
}

// imageOn is an image of two layers: base, shared by every image made on
// the same base, and its own.
func imageOn(base, seed string) (config []byte, layers [][]byte) {
	baseLayer := tarball([]entry{{name: "base", data: []byte("base layer " + base + "\n")}})
	own := tarball([]entry{{name: seed, data: []byte("content of " + seed + "\n")}})
	config, _ = json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/" + seed}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + sum(baseLayer), "sha256:" + sum(own)}},
	})
	return config, [][]byte{baseLayer, own}
}

// LayerDigest is the sha256:<hex> of the layers imageOn makes: the base's
// (seed "") or an image's own.
func LayerDigest(base, seed string) string {
	_, layers := imageOn(base, seed)
	if seed == "" {
		return "sha256:" + sum(layers[0])
	}
	return "sha256:" + sum(layers[1])
}

// DockerArchiveOn is DockerArchive with images of two layers, the first
// shared by all of them (the base, as images built FROM one base share it).
// Layers are stored once, as docker save and go-containerregistry do.
func DockerArchiveOn(base string, refs ...string) []byte {
	var entries []entry
	var manifest []map[string]any
	seen := map[string]bool{}
	for _, ref := range refs {
		config, layers := imageOn(base, ref)
		cfgName := "sha256:" + sum(config)
		entries = append(entries, entry{cfgName, config})
		var names []string
		for _, l := range layers {
			n := sum(l) + ".tar"
			if !seen[n] {
				seen[n] = true
				entries = append(entries, entry{n, l})
			}
			names = append(names, n)
		}
		manifest = append(manifest, map[string]any{"Config": cfgName, "RepoTags": []string{ref}, "Layers": names})
	}
	m, _ := json.Marshal(manifest)
	return tarball(append(entries, entry{"manifest.json", m}))
}

// OCIArchiveOn is OCIArchive with images of two layers, the first shared.
func OCIArchiveOn(base string, refs ...string) []byte {
	var entries []entry
	var index []map[string]any
	seen := map[string]bool{}
	add := func(b []byte) {
		if n := "blobs/sha256/" + sum(b); !seen[n] {
			seen[n] = true
			entries = append(entries, entry{n, b})
		}
	}
	for _, ref := range refs {
		config, layers := imageOn(base, ref)
		var descs []any
		for _, l := range layers {
			descs = append(descs, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sum(l), "size": len(l)})
			add(l)
		}
		manifest, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sum(config), "size": len(config)},
			"layers": descs,
		})
		add(config)
		add(manifest)
		index = append(index, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + sum(manifest), "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": ref}})
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": index})
	entries = append(entries, entry{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, entry{"index.json", idx})
	return tarball(entries)
}

// DockerArchive returns a docker-archive tarball (as `docker save` and
// go-containerregistry's tarball.Write write it) with one image per
// reference, and the config digest of each.
func DockerArchive(refs ...string) (archive []byte, configDigests []string) {
	var entries []entry
	var manifest []map[string]any
	for _, ref := range refs {
		config, layer := image(ref)
		cfgName := "sha256:" + sum(config)
		layerName := sum(layer) + ".tar"
		entries = append(entries, entry{cfgName, config}, entry{layerName, layer})
		manifest = append(manifest, map[string]any{"Config": cfgName, "RepoTags": []string{ref}, "Layers": []string{layerName}})
		configDigests = append(configDigests, cfgName)
	}
	m, _ := json.Marshal(manifest)
	return tarball(append(entries, entry{"manifest.json", m})), configDigests
}

// OCIArchive returns an OCI-layout tarball with one image per reference,
// named by io.containerd.image.name, and each image's manifest digest.
func OCIArchive(refs ...string) (archive []byte, digests []string) {
	var entries []entry
	var index []map[string]any
	for _, ref := range refs {
		config, layer := image(ref)
		manifest, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sum(config), "size": len(config)},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sum(layer), "size": len(layer)}},
		})
		for _, b := range [][]byte{config, layer, manifest} {
			entries = append(entries, entry{"blobs/sha256/" + sum(b), b})
		}
		d := "sha256:" + sum(manifest)
		index = append(index, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(manifest),
			"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref[strings.LastIndex(ref, ":")+1:]}})
		digests = append(digests, d)
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": index})
	entries = append(entries, entry{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, entry{"index.json", idx})
	return tarball(entries), digests
}

// Binaries are the binaries of a fixture spec.
var Binaries = []struct{ Name, Version string }{
	{"kubelet", "v1.34.3"}, {"kubectl", "v1.34.3"}, {"kubeadm", "v1.34.3"},
	{"containerd", "1.6.20~ds1"}, {"containerd-shim-runc-v2", "1.6.20~ds1"}, {"ctr", "1.6.20~ds1"}, {"runc", "1.1.5+ds1"},
}

// CNIPlugins are the plugins of a fixture spec.
var CNIPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// Fixture writes a complete spec with tiny files below dir: the binaries,
// the CNI plugins in dir/cni, a docker-archive (pause, etcd) and an OCI
// tarball (coredns). It returns the spec's path.
func Fixture(t testing.TB, dir string) string {
	t.Helper()
	write := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
	}
	var spec strings.Builder
	spec.WriteString("apiVersion: kubeboot.io/v1alpha1\nkind: BundleSpec\nkubernetesVersion: v1.34.3\nbinaries:\n")
	for _, b := range Binaries {
		write("bin/"+b.Name, ELF(AMD64, b.Name+" "+b.Version), 0o755)
		fmt.Fprintf(&spec, "  - {name: %s, version: %q, path: bin/%s}\n", b.Name, b.Version, b.Name)
	}
	for _, p := range CNIPlugins {
		write("cni/"+p, ELF(AMD64, "cni plugin "+p), 0o755)
	}
	write("cni/README", []byte("not a plugin: not executable\n"), 0o644)
	docker, _ := DockerArchive("registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.5-0")
	write("images/control-plane.tar", docker, 0o644)
	oci, _ := OCIArchive("registry.k8s.io/coredns/coredns:v1.12.1")
	write("images/coredns.tar", oci, 0o644)
	spec.WriteString("cniPlugins:\n  version: 1.1.1\n  dir: cni\nimages:\n  - path: images/control-plane.tar\n  - path: images/coredns.tar\n")
	write("spec.yaml", []byte(spec.String()), 0o644)
	return filepath.Join(dir, "spec.yaml")
}

// Build creates the bundle out (.tar, or .tar.gz) from the spec at
// specPath, failing the test on any error.
func Build(t testing.TB, specPath, out string) {
	t.Helper()
	spec, err := bundle.LoadSpec(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.Create(spec, out, nil); err != nil {
		t.Fatal(err)
	}
}
