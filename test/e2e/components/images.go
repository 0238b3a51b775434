package components

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// baseExcludes are dropped from the rootfs when it becomes the images' base
// layer: what only a booted machine needs (systemd, sshd, apt and dpkg
// state), documentation, locales, perl. What stays: glibc, coreutils, bash,
// iptables (nf_tables and legacy), conntrack, iproute2, kmod, ca-certificates.
var baseExcludes = []string{
	"dev/*", "proc/*", "sys/*", "run/*", "tmp/*", "root/.ssh", "var/cache/*", "var/log/*",
	"var/lib/apt", "var/lib/dpkg", "var/lib/systemd", "usr/share/doc", "usr/share/man", "usr/share/info",
	"usr/share/locale", "usr/share/lintian", "usr/share/zsh", "usr/share/bash-completion",
	"usr/share/common-licenses", "usr/share/polkit-1", "usr/share/dbus-1", "usr/share/gcc", "usr/share/perl5",
	"usr/share/keyrings", "usr/lib/locale", "usr/lib/systemd", "usr/lib/apt", "usr/lib/openssh",
	"etc/systemd", "etc/ssh", "usr/local/sbin/kb-init", "usr/lib/x86_64-linux-gnu/perl*", "usr/bin/perl*",
	"usr/lib/x86_64-linux-gnu/systemd", "usr/bin/systemd*", "usr/bin/journalctl", "usr/lib/x86_64-linux-gnu/gconv",
	"etc/machine-id", "var/lib/dbus/machine-id", "etc/hostname",
}

const baseRevision = "1"

func excluded(rel string) bool {
	for _, pat := range baseExcludes {
		if ok, _ := filepath.Match(pat, rel); ok {
			return true
		}
	}
	return false
}

// BaseLayer writes (or finds) the base layer cut from rootfs, an
// uncompressed tar with every timestamp and owner zeroed, so the same rootfs
// gives the same layer digest. rootfsKey names the rootfs in the cache key.
func (b *Builder) BaseLayer(ctx context.Context, rootfs, rootfsKey string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", rootfsKey, baseRevision, strings.Join(baseExcludes, "\n"))
	path := filepath.Join(b.Cache, "images", "base-"+hex.EncodeToString(h.Sum(nil))[:16]+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if err := writeBase(ctx, f, rootfs); err != nil {
		f.Close()
		return "", fmt.Errorf("base layer from %s: %w", rootfs, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	st, _ := os.Stat(path)
	b.logf("base layer %s: %d MiB in %s", path, st.Size()>>20, time.Since(start).Round(100*time.Millisecond))
	return path, nil
}

func writeBase(ctx context.Context, w io.Writer, root string) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	epoch := time.Unix(0, 0)
	for _, rel := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(root, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var link string
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if fi.Mode().IsRegular() && st.Nlink > 1 {
				k := inode{uint64(st.Dev), st.Ino}
				if first, ok := links[k]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					links[k] = rel
				}
			}
		}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
	}
	return tw.Close()
}

// Image is one image to build.
type Image struct {
	// Tag is the image's full name, e.g. registry.k8s.io/kube-proxy:v1.34.3.
	Tag string
	// Base puts the base layer (glibc, iptables, conntrack, ...) under the files.
	Base bool
	// Files maps host files to their path in the image (mode 0755).
	Files      [][2]string
	Entrypoint []string
	Cmd        []string
}

// PruneImages removes the image archives of earlier runs from the cache,
// all but keep.
func (b *Builder) PruneImages(keep ...string) {
	k := map[string]bool{}
	for _, f := range keep {
		k[f] = true
	}
	old, _ := filepath.Glob(filepath.Join(b.Cache, "images", "images-*.tar"))
	for _, f := range old {
		if !k[f] {
			_ = os.Remove(f)
			_ = os.Remove(f + ".json")
		}
	}
}

// Images builds images into one docker-save archive (the base layer stored
// once) with mkimages, or finds it in Cache/images, keyed by the images'
// definitions, the inputs' sizes and modification times, and mkimages itself.
func (b *Builder) Images(ctx context.Context, mkimages, base string, images []Image) (string, error) {
	type imageSpec struct {
		Tags       []string    `json:"tags"`
		Layers     []string    `json:"layers,omitempty"`
		Files      [][2]string `json:"files,omitempty"`
		Entrypoint []string    `json:"entrypoint,omitempty"`
		Cmd        []string    `json:"cmd,omitempty"`
	}
	spec := struct {
		Output string            `json:"output"`
		Layers map[string]string `json:"layers"`
		Images []imageSpec       `json:"images"`
	}{Layers: map[string]string{"base": base}}
	h := sha256.New()
	stamp := func(p string) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %d\n", p, st.Size(), st.ModTime().UnixNano())
		return nil
	}
	for _, p := range []string{mkimages, base} {
		if err := stamp(p); err != nil {
			return "", err
		}
	}
	for _, img := range images {
		is := imageSpec{Tags: []string{img.Tag}, Files: img.Files, Entrypoint: img.Entrypoint, Cmd: img.Cmd}
		if img.Base {
			is.Layers = []string{"base"}
		}
		for _, f := range img.Files {
			if err := stamp(f[0]); err != nil {
				return "", err
			}
		}
		spec.Images = append(spec.Images, is)
	}
	def, _ := json.Marshal(spec)
	h.Write(def)
	dir := filepath.Join(b.Cache, "images")
	out := filepath.Join(dir, "images-"+hex.EncodeToString(h.Sum(nil))[:16]+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	spec.Output = out
	data, _ := json.MarshalIndent(spec, "", "  ")
	specFile := out + ".json"
	if err := os.WriteFile(specFile, data, 0o644); err != nil {
		return "", err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, mkimages, "-spec", specFile)
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkimages: %v\n%s", err, tail(o, 20))
	}
	st, err := os.Stat(out)
	if err != nil {
		return "", err
	}
	b.logf("images: %d in %s, %d MiB, in %s", len(images), out, st.Size()>>20, time.Since(start).Round(100*time.Millisecond))
	return out, nil
}
