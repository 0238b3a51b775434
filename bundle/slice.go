package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// RoleWorker is the role of a worker bundle (Slice): everything but the
// images only a control plane runs. A bundle from Create has no role: it
// is for every node.
const RoleWorker = "worker"

// ControlPlaneImages are the images only a control plane runs, by the last
// element of their name (registry.k8s.io/etcd:3.6.5-0 is etcd), so a
// mirror's names (registry.aliyuncs.com/google_containers/etcd) match too.
var ControlPlaneImages = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"}

// ImageName is the last element of an image reference without its tag or
// digest: kube-apiserver for registry.k8s.io/kube-apiserver:v1.34.3.
func ImageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	last := ref[strings.LastIndex(ref, "/")+1:]
	last, _, _ = strings.Cut(last, ":")
	return last
}

// ControlPlaneOnly says whether ref is one of ControlPlaneImages.
func ControlPlaneOnly(ref string) bool { return slices.Contains(ControlPlaneImages, ImageName(ref)) }

// Slice writes dst, the part of the bundle src that a node of role needs
// (only RoleWorker: a control plane needs the whole bundle): the same
// binaries and CNI plugins, and every image tarball without the
// ControlPlaneImages (their configs and the layers no other image uses;
// shared layers stay). A tarball left with no image is dropped. The
// manifest records the role and the sha256 of src. Every file of src is
// checked against src's manifest while it is read, and the result is
// written as Create writes a bundle (fixed owners and times, so the same
// src gives the same dst; gzip when dst's name says so; a temporary file
// renamed into place). Files are staged in a temporary directory next to
// dst, never held in memory.
func Slice(src, dst, role string, progress func(format string, args ...any)) (*Manifest, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if role != RoleWorker {
		return nil, fmt.Errorf("role %q: a bundle is sliced for %s nodes only (a control plane needs the whole bundle)", role, RoleWorker)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum := sha256.New()
	tee := io.TeeReader(f, sum)
	m, tr, err := ReadManifest(tee)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if m.Role != "" {
		return nil, fmt.Errorf("%s is a %s bundle already (sliced from %s): slice the whole bundle", src, m.Role, m.Source)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".slice-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	want := map[string]File{}
	for _, x := range m.Files {
		want[x.Path] = x
	}
	staged := map[string]string{} // archive path → staged file
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: the archive is damaged after %d files: %w", src, len(staged), err)
		}
		x, ok := want[h.Name]
		if !ok || staged[h.Name] != "" {
			return nil, fmt.Errorf("%s: %s is not in its manifest, or is in the archive twice: the bundle is damaged (kubeboot bundle inspect)", src, h.Name)
		}
		p := filepath.Join(tmp, "in", filepath.FromSlash(h.Name))
		if err := stageEntry(tr, p, x); err != nil {
			return nil, fmt.Errorf("%s: %s: %w: the bundle is damaged (kubeboot bundle inspect)", src, h.Name, err)
		}
		staged[h.Name] = p
	}
	// What follows the archive's last entry, so the sum covers the file.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	out := *m
	out.Role, out.Source, out.Files = role, "sha256:"+hex.EncodeToString(sum.Sum(nil)), nil
	var sources []source
	for _, x := range m.Files {
		p := staged[x.Path]
		if p == "" {
			return nil, fmt.Errorf("%s: %s is in its manifest but not in the archive: the bundle is damaged (kubeboot bundle inspect)", src, x.Path)
		}
		if x.Type == TypeImages {
			sliced := filepath.Join(tmp, "out", filepath.FromSlash(x.Path))
			nx, keep, err := sliceImages(p, sliced, x)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", src, x.Path, err)
			}
			if !keep {
				progress("%-28s dropped (only control-plane images)", x.Path)
				continue
			}
			if nx.SHA256 != x.SHA256 {
				progress("%-28s %10d bytes (was %d), %d of %d images", x.Path, nx.Size, x.Size, len(nx.Images), len(x.Images))
				p, x = sliced, nx
			}
		}
		sources = append(sources, source{src: p, field: x.Path, file: x})
		out.Files = append(out.Files, x)
	}
	if err := writeBundle(dst, &out, sources); err != nil {
		return nil, err
	}
	return &out, nil
}

// stageEntry copies one archive entry to p, checking its size and sum
// against the manifest's.
func stageEntry(r io.Reader, p string, x File) (err error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	w, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}()
	return checkedCopy(w, r, x)
}

// sliceImages writes the image tarball in without the control-plane images
// to out and returns its manifest entry; keep is false when no image is
// left. When nothing is dropped, x is returned as it is and out is not
// written.
func sliceImages(in, out string, x File) (nx File, keep bool, err error) {
	var drop, stay []string
	for _, im := range x.Images {
		if ControlPlaneOnly(im.Ref) {
			drop = append(drop, im.Ref)
		} else {
			stay = append(stay, im.Ref)
		}
	}
	switch {
	case len(drop) == 0:
		return x, true, nil
	case len(stay) == 0:
		return File{}, false, nil
	}
	if err := filterImageArchive(in, out); err != nil {
		return File{}, false, err
	}
	size, sum, format, images, err := hashFile(out, true)
	if err != nil {
		return File{}, false, fmt.Errorf("the sliced tarball does not read back: %w", err)
	}
	var got []string
	for _, im := range images {
		got = append(got, im.Ref)
	}
	if strings.Join(got, " ") != strings.Join(stay, " ") {
		return File{}, false, fmt.Errorf("the sliced tarball holds %v, expected %v", got, stay)
	}
	nx = x
	nx.Size, nx.SHA256, nx.Format, nx.Images = size, sum, format, images
	return nx, true, nil
}

// openImageArchive opens an image tarball, through gzip when it is
// compressed.
func openImageArchive(p string) (*tar.Reader, bool, func() error, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, false, nil, err
	}
	in, gz, err := decompress(f)
	if err != nil {
		f.Close()
		return nil, false, nil, err
	}
	return tar.NewReader(in), gz, f.Close, nil
}

// filterImageArchive copies the image tarball in to out without the
// control-plane images: in docker-archive's manifest.json and repositories,
// in an OCI layout's index.json, and every config, manifest and layer that
// only they use. Both formats may be in one tarball (docker save since
// Docker 25); both are rewritten.
func filterImageArchive(in, out string) (err error) {
	// Pass 1: the entries' names and the small ones' contents.
	tr, gz, closeIn, err := openImageArchive(in)
	if err != nil {
		return err
	}
	small := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			closeIn()
			return fmt.Errorf("not a tar archive: %w", err)
		}
		if (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA) && h.Size <= maxHashedEntry {
			b, err := io.ReadAll(tr)
			if err != nil {
				closeIn()
				return err
			}
			small[cleanEntry(h.Name)] = b
		}
	}
	closeIn()

	plan, err := planImageFilter(small)
	if err != nil {
		return err
	}

	// Pass 2: copy what stays.
	tr, _, closeIn, err = openImageArchive(in)
	if err != nil {
		return err
	}
	defer closeIn()
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed)
		w = zw
	}
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := cleanEntry(h.Name)
		if plan.removed(name) {
			continue
		}
		if b, ok := plan.rewrite[name]; ok {
			hh := *h
			hh.Size = int64(len(b))
			if err := tw.WriteHeader(&hh); err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
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
	return bw.Flush()
}

func cleanEntry(name string) string { return path.Clean(strings.TrimPrefix(name, "./")) }
