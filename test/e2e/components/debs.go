package components

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DebianPackages are the packages the bundle's container runtime and CNI
// plugins come from (bookworm: containerd 1.6, runc 1.1, plugins 1.1).
var DebianPackages = []string{"containerd", "runc", "containernetworking-plugins"}

// Deb is one downloaded and unpacked Debian package.
type Deb struct {
	Package, Version string
	// File is the .deb; Dir is where it is unpacked (dpkg-deb -x).
	File, Dir string
}

// Path returns a file of the unpacked package ("usr/bin/containerd").
func (d Deb) Path(rel string) string { return filepath.Join(d.Dir, rel) }

// Debs downloads (apt-get download, verified against the archive's
// SHA256) and unpacks the candidate version of each package into
// Cache/debs, unless it is cached. The host needs the packages' apt lists
// (apt-get update), not the packages.
func (b *Builder) Debs(ctx context.Context, pkgs ...string) (map[string]Deb, error) {
	out := map[string]Deb{}
	dir := filepath.Join(b.Cache, "debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		info, err := aptShow(ctx, p)
		if err != nil {
			return nil, err
		}
		d := Deb{Package: p, Version: info["Version"], File: filepath.Join(dir, filepath.Base(info["Filename"]))}
		d.Dir = strings.TrimSuffix(d.File, ".deb")
		if _, err := os.Stat(filepath.Join(d.Dir, ".unpacked")); err == nil {
			out[p] = d
			continue
		}
		if sum, err := sha256File(d.File); err != nil || sum != info["SHA256"] {
			if err := b.download(ctx, p, d.Version, info["SHA256"], d.File); err != nil {
				return nil, err
			}
		}
		_ = os.RemoveAll(d.Dir)
		tmp := d.Dir + ".tmp"
		_ = os.RemoveAll(tmp)
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", d.File, tmp).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %v: %s", d.File, err, out)
		}
		if err := os.WriteFile(filepath.Join(tmp, ".unpacked"), nil, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, d.Dir); err != nil {
			return nil, err
		}
		b.logf("unpacked %s %s", p, d.Version)
		out[p] = d
	}
	return out, nil
}

// aptShow returns the fields of a package's candidate version.
func aptShow(ctx context.Context, pkg string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		return nil, fmt.Errorf("apt-cache show %s: %v %s (run apt-get update first)", pkg, err, strings.TrimSpace(stderr.String()))
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break // the first stanza is the candidate
		}
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(k, " ") {
			fields[k] = v
		}
	}
	for _, k := range []string{"Version", "Filename", "SHA256"} {
		if fields[k] == "" {
			return nil, fmt.Errorf("apt-cache show %s: no %s field", pkg, k)
		}
	}
	return fields, nil
}

func (b *Builder) download(ctx context.Context, pkg, version, sum, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// apt's sandbox user must be able to write the directory.
	_ = os.Chmod(tmp, 0o777)
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg+"="+version)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s=%s: %v: %s", pkg, version, err, tail(out, 10))
	}
	got, err := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if err != nil || len(got) != 1 {
		return fmt.Errorf("apt-get download %s=%s: want one .deb, found %v", pkg, version, got)
	}
	if s, err := sha256File(got[0]); err != nil || s != sum {
		return fmt.Errorf("%s: sha256 %s, the archive says %s", got[0], s, sum)
	}
	b.logf("downloaded %s", filepath.Base(dst))
	return os.Rename(got[0], dst)
}
