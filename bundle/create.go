package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
)

// entryTime is the modification time of every entry, so the same inputs
// give the same archive.
var entryTime = time.Unix(0, 0).UTC()

// source is one file to pack: where it is and what the manifest says.
type source struct {
	src   string
	field string // the spec field naming it, for errors
	file  File
}

// Create packs the files the spec names into out (a .tar, or .tar.gz/.tgz
// for gzip) and returns the manifest. It reads every file twice, never
// holding one in memory: once for the manifest's sums and image references,
// once to write the archive (checking the sums again, so a file that changes
// meanwhile is an error, not a bad bundle). The archive is written to a
// temporary file next to out and renamed into place. progress, when set,
// is told about each file.
func Create(s *Spec, out string, progress func(format string, args ...any)) (*Manifest, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	sources, err := s.sources()
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		APIVersion:        APIVersion,
		Kind:              ManifestKind,
		KubernetesVersion: s.KubernetesVersion,
		CNIPluginsVersion: s.CNIPlugins.Version,
	}
	var errs inventory.FieldErrors
	fail := func(src source, format string, args ...any) {
		errs = append(errs, &inventory.FieldError{File: s.file, Line: s.line(src.field), Field: src.field, Msg: fmt.Sprintf(format, args...)})
	}
	refs := map[string]string{} // image ref → field that has it
	archOf := ""
	for i := range sources {
		src := &sources[i]
		if src.file.Type != TypeImages {
			arch, err := elfArch(src.src)
			if err != nil {
				fail(*src, "%v", err)
				continue
			}
			if archOf == "" {
				m.Arch, archOf = arch, src.field
			} else if arch != m.Arch {
				fail(*src, "%s is for %s, but %s (line %d) is for %s; a bundle is for one architecture", src.src, arch, archOf, s.line(archOf), m.Arch)
				continue
			}
		}
		size, sum, format, images, err := hashFile(src.src, src.file.Type == TypeImages)
		if err != nil {
			fail(*src, "%s: %v", src.src, err)
			continue
		}
		src.file.Size, src.file.SHA256, src.file.Format, src.file.Images = size, sum, format, images
		for _, im := range images {
			if other, dup := refs[im.Ref]; dup {
				fail(*src, "%s holds %s, which %s (line %d) holds too; give each image once", src.src, im.Ref, other, s.line(other))
			}
			refs[im.Ref] = src.field
		}
		progress("%-28s %10d bytes  sha256:%s", src.file.Path, size, sum[:12])
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, src := range sources {
		m.Files = append(m.Files, src.file)
	}
	if err := writeBundle(out, m, sources); err != nil {
		return nil, err
	}
	return m, nil
}

// writeBundle writes m, checked by reading it back, and the files of
// sources as the archive out.
func writeBundle(out string, m *Manifest, sources []source) error {
	manifest, err := m.Marshal()
	if err != nil {
		return err
	}
	if _, err := ParseManifest(manifest); err != nil {
		return fmt.Errorf("internal error: the manifest does not read back: %w", err)
	}
	if err := writeArchive(out, manifest, sources); err != nil {
		return fmt.Errorf("write the bundle %s: %w", out, err)
	}
	return nil
}

// sources lists the files to pack, binaries in KnownBinaries order, then the
// CNI plugins by name, then the images in spec order.
func (s *Spec) sources() ([]source, error) {
	var out []source
	for _, k := range KnownBinaries {
		for i, b := range s.Binaries {
			if b.Name == k.Name {
				out = append(out, source{src: s.resolve(b.Path), field: fmt.Sprintf("binaries[%d].path", i),
					file: File{Path: "bin/" + b.Name, Type: TypeBinary, Name: b.Name, Version: b.Version, Mode: "0755"}})
			}
		}
	}
	plugins, err := s.cniPluginFiles()
	if err != nil {
		return nil, inventory.FieldErrors{{File: s.file, Line: s.line("cniPlugins.dir"), Field: "cniPlugins.dir", Msg: err.Error()}}
	}
	for _, p := range plugins {
		name := filepath.Base(p)
		out = append(out, source{src: p, field: "cniPlugins.dir",
			file: File{Path: "cni/" + name, Type: TypeCNIPlugin, Name: name, Version: s.CNIPlugins.Version, Mode: "0755"}})
	}
	for i, im := range s.Images {
		name := filepath.Base(im.Path)
		out = append(out, source{src: s.resolve(im.Path), field: fmt.Sprintf("images[%d].path", i),
			file: File{Path: "images/" + name, Type: TypeImages, Name: name, Mode: "0644"}})
	}
	return out, nil
}

// hashFile streams a file through SHA-256 and, for an image tarball, the
// tarball reader.
func hashFile(p string, image bool) (size int64, sum, format string, images []Image, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", "", nil, err
	}
	defer f.Close()
	h := sha256.New()
	counter := &countingWriter{w: h}
	var r io.Reader = io.TeeReader(f, counter)
	if image {
		format, images, err = ReadImageArchive(r)
		if err != nil {
			return 0, "", "", nil, fmt.Errorf("not an image tarball `ctr images import` takes: %w", err)
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return 0, "", "", nil, err
	}
	return counter.n, hex.EncodeToString(h.Sum(nil)), format, images, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// writeArchive writes the manifest and the files to a temporary file next
// to out, then renames it into place.
func writeArchive(out string, manifest []byte, sources []source) (err error) {
	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var w io.Writer = tmp
	var zw *gzip.Writer
	if IsGzip(out) {
		// Image layers are compressed already; the binaries shrink about 3x
		// at the fastest level, nearly as much as at the default one.
		zw, _ = gzip.NewWriterLevel(tmp, gzip.BestSpeed)
		w = zw
	}
	tw := tar.NewWriter(w)
	hdr := func(name string, size int64, mode int64) *tar.Header {
		return &tar.Header{Name: name, Size: size, Mode: mode, ModTime: entryTime, Typeflag: tar.TypeReg,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
	}
	if err := tw.WriteHeader(hdr(ManifestName, int64(len(manifest)), 0o644)); err != nil {
		return err
	}
	if _, err := io.Copy(tw, bytes.NewReader(manifest)); err != nil {
		return err
	}
	for _, src := range sources {
		if err := copyEntry(tw, hdr, src); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func copyEntry(tw *tar.Writer, hdr func(string, int64, int64) *tar.Header, src source) error {
	f, err := os.Open(src.src)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := int64(0o644)
	if src.file.Mode == "0755" {
		mode = 0o755
	}
	if err := tw.WriteHeader(hdr(path.Clean(src.file.Path), src.file.Size, mode)); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(f, src.file.Size))
	if err != nil {
		return fmt.Errorf("%s: %w", src.src, err)
	}
	if extra, _ := f.Read(make([]byte, 1)); n != src.file.Size || extra > 0 || hex.EncodeToString(h.Sum(nil)) != src.file.SHA256 {
		return fmt.Errorf("%s changed while the bundle was written; run bundle create again", src.src)
	}
	return nil
}
