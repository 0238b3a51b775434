package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// ManifestName is the archive's first entry.
const ManifestName = "manifest.json"

// maxManifestSize bounds what is read as a manifest.
const maxManifestSize = 4 << 20

// File types in a manifest.
const (
	TypeBinary    = "binary"
	TypeCNIPlugin = "cni-plugin"
	TypeImages    = "images"
)

// Image archive formats.
const (
	FormatDockerArchive = "docker-archive"
	FormatOCI           = "oci-archive"
)

// Manifest is manifest.json, the bundle's table of contents.
type Manifest struct {
	APIVersion        string `json:"apiVersion"`
	Kind              string `json:"kind"`
	KubernetesVersion string `json:"kubernetesVersion"`
	// Arch is the binaries' CPU architecture, as Go and Kubernetes name it
	// (amd64, arm64, ...).
	Arch string `json:"arch"`
	// CNIPluginsVersion is the version of the CNI plugins.
	CNIPluginsVersion string `json:"cniPluginsVersion"`
	// Role is the role of the nodes a sliced bundle is for (RoleWorker),
	// "" for a whole bundle, which is for every node.
	Role string `json:"role,omitempty"`
	// Source is the sha256:<hex> of the whole bundle a slice was cut from.
	Source string `json:"source,omitempty"`
	Files  []File `json:"files"`
}

// File is one file of the bundle.
type File struct {
	// Path is the entry's name in the archive: bin/kubelet, cni/bridge,
	// images/control-plane.tar.
	Path    string `json:"path"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Mode is the file mode, octal ("0755").
	Mode   string `json:"mode"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Format and Images describe an image tarball.
	Format string  `json:"format,omitempty"`
	Images []Image `json:"images,omitempty"`
}

// Image is one image of an image tarball, as the tarball names it.
type Image struct {
	// Ref is the full reference `ctr images import` gives the image
	// (registry.k8s.io/pause:3.10.1).
	Ref string `json:"ref"`
	// Digest is the target (manifest or index) digest containerd records,
	// known for OCI tarballs.
	Digest string `json:"digest,omitempty"`
	// ConfigDigest is the image's config digest (its image ID), known for
	// docker-archive tarballs, whose manifest containerd writes on import.
	ConfigDigest string `json:"configDigest,omitempty"`
}

// Binary returns the binary named name, or false.
func (m *Manifest) Binary(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Type == TypeBinary && f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// ByType returns the files of one type, in manifest order.
func (m *Manifest) ByType(t string) []File {
	var out []File
	for _, f := range m.Files {
		if f.Type == t {
			out = append(out, f)
		}
	}
	return out
}

// Standard install locations (see the package documentation).
const (
	BinDir    = "/usr/bin"
	SbinDir   = "/usr/sbin"
	CNIBinDir = "/opt/cni/bin"
)

// InstallPath is where prepare installs f on a node, or "" for image
// tarballs, which are imported into containerd instead.
func InstallPath(f File) string {
	switch f.Type {
	case TypeBinary:
		if f.Name == "runc" {
			return path.Join(SbinDir, f.Name)
		}
		return path.Join(BinDir, f.Name)
	case TypeCNIPlugin:
		return path.Join(CNIBinDir, f.Name)
	}
	return ""
}

var (
	sha256RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	entryPathRE = regexp.MustCompile(`^(bin|cni|images)/[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	modeRE      = regexp.MustCompile(`^0[0-7]{3}$`)
)

// ParseManifest decodes and checks manifest.json: every path is a plain
// name under bin/, cni/ or images/ (nothing can be unpacked elsewhere),
// every sum is a sha256, no path or installed name is given twice.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	bad := func(format string, args ...any) (*Manifest, error) {
		return nil, fmt.Errorf("%s: %s", ManifestName, fmt.Sprintf(format, args...))
	}
	if m.APIVersion != APIVersion || m.Kind != ManifestKind {
		return bad("apiVersion %q, kind %q: expected %s, %s", m.APIVersion, m.Kind, APIVersion, ManifestKind)
	}
	if !kubeVersionRE.MatchString(m.KubernetesVersion) {
		return bad("kubernetesVersion %q is not a Kubernetes version", m.KubernetesVersion)
	}
	switch {
	case m.Role == "" && m.Source != "":
		return bad("source %q without a role", m.Source)
	case m.Role != "" && m.Role != RoleWorker:
		return bad("role %q: the only sliced role is %s", m.Role, RoleWorker)
	case m.Role != "" && !sha256PrefixedRE.MatchString(m.Source):
		return bad("source %q is not the sha256:<hex> of the bundle it was sliced from", m.Source)
	}
	paths := map[string]bool{}
	installed := map[string]bool{}
	for _, f := range m.Files {
		if !entryPathRE.MatchString(f.Path) {
			return bad("file %q: not a plain name under bin/, cni/ or images/", f.Path)
		}
		if paths[f.Path] {
			return bad("file %q is listed twice", f.Path)
		}
		paths[f.Path] = true
		if !sha256RE.MatchString(f.SHA256) {
			return bad("file %q: sha256 %q is not a hex SHA-256", f.Path, f.SHA256)
		}
		if !modeRE.MatchString(f.Mode) || f.Size < 0 {
			return bad("file %q: bad mode %q or size %d", f.Path, f.Mode, f.Size)
		}
		dir := strings.SplitN(f.Path, "/", 2)[0]
		switch {
		case f.Type == TypeBinary && dir == "bin" && path.Base(f.Path) == f.Name && knownBinary(f.Name):
		case f.Type == TypeCNIPlugin && dir == "cni" && path.Base(f.Path) == f.Name:
		case f.Type == TypeImages && dir == "images":
			if len(f.Images) == 0 {
				return bad("image tarball %q names no images", f.Path)
			}
		default:
			return bad("file %q: type %q, name %q do not match its path", f.Path, f.Type, f.Name)
		}
		if p := InstallPath(f); p != "" {
			if installed[p] {
				return bad("two files install to %s", p)
			}
			installed[p] = true
		}
	}
	return &m, nil
}

func knownBinary(name string) bool {
	for _, k := range KnownBinaries {
		if k.Name == name {
			return true
		}
	}
	return false
}

// Marshal writes the manifest as indented JSON.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// IsGzip reports whether a bundle file name means gzip compression.
func IsGzip(name string) bool {
	return strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".tgz")
}

// ErrNotBundle is returned when an archive does not start with a manifest.
var ErrNotBundle = errors.New("not a kubeboot bundle: the first entry is not " + ManifestName)

// decompress buffers r and, when it starts with gzip's magic bytes, reads
// it through gzip; gz says which.
func decompress(r io.Reader) (_ io.Reader, gz bool, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, false, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, true, err
	}
	return zr, true, nil
}

// checkedCopy copies r to w and checks what it copied against x's size and
// sha256 from the manifest.
func checkedCopy(w io.Writer, r io.Reader, x File) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	switch got := hex.EncodeToString(h.Sum(nil)); {
	case err != nil:
		return err
	case n != x.Size:
		return fmt.Errorf("%d bytes, the manifest says %d", n, x.Size)
	case got != x.SHA256:
		return fmt.Errorf("sha256 %s, the manifest says %s", got, x.SHA256)
	}
	return nil
}

// ImageCount is the number of images in the bundle's image tarballs.
func (m *Manifest) ImageCount() int {
	n := 0
	for _, f := range m.ByType(TypeImages) {
		n += len(f.Images)
	}
	return n
}

// ReadManifest reads the manifest from the start of a bundle stream,
// decompressing it when it starts with gzip's magic bytes. It returns the
// tar reader positioned after the manifest, so the caller can go on
// reading the files.
func ReadManifest(r io.Reader) (*Manifest, *tar.Reader, error) {
	in, _, err := decompress(r)
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(in)
	h, err := tr.Next()
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%v)", ErrNotBundle, err)
	}
	if h.Name != ManifestName {
		return nil, nil, fmt.Errorf("%w (it is %q)", ErrNotBundle, h.Name)
	}
	if h.Size > maxManifestSize {
		return nil, nil, fmt.Errorf("%s is %d bytes, more than a manifest can be", ManifestName, h.Size)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, nil, err
	}
	return m, tr, nil
}
