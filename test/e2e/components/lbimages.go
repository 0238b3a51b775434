package components

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// HAProxyVersion and KeepalivedVersion are the upstream versions of
// Debian bookworm's haproxy and keepalived packages, the programs of the
// load balancer images (issue 11: HA control planes).
const (
	HAProxyVersion    = "2.6.12"
	KeepalivedVersion = "2.2.7"
)

// LBPackages are the Debian packages the load balancer images are cut
// from: haproxy and keepalived, and the packages of the libraries they link
// that the base layer (the machines' rootfs) lacks. LBImages says which
// soname is missing when a new package version needs one more.
var LBPackages = []string{
	"haproxy", "keepalived",
	// haproxy's
	"liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1",
	// keepalived's
	"libglib2.0-0", "libnl-3-200", "libnl-genl-3-200", "libsnmp40", "libpci3", "libsensors5", "libperl5.36",
}

// libDirs are where the dynamic loader looks for a soname without a
// RUNPATH (the multiarch directories, both merged into /usr on bookworm).
var libDirs = []string{"usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"}

// LBImage is one load balancer image and how it was put together.
type LBImage struct {
	Image
	// Libs are the libraries the image's layer adds to the base layer:
	// image path → the package it came from.
	Libs map[string]string
}

// LBImages returns the haproxy and keepalived images, tagged haproxyTag and
// keepalivedTag: each a base layer image (glibc, bash, iproute2 and the
// libraries the rootfs has) with its program at /usr/sbin/<program> and the
// libraries it needs that the base layer lacks at
// /usr/lib/x86_64-linux-gnu/<soname>, from debs, LBPackages downloaded
// and unpacked by Debs. The library closure is worked out from the ELF
// files' DT_NEEDED entries, recursively: a soname the rootfs has in its
// multiarch library directories (and the base layer keeps) is the base
// layer's, another must come from LBPackages, or it is an error naming it.
// Nothing else is needed at run time: the pods mount the configuration
// files, haproxy -db and keepalived --dont-fork stay in the foreground, and
// keepalived's pid files go to /run, which the base layer has.
func LBImages(rootfs string, debs map[string]Deb, haproxyTag, keepalivedTag string) ([]LBImage, error) {
	for _, p := range LBPackages {
		if debs[p].Dir == "" {
			return nil, fmt.Errorf("LBImages: %s is not among the unpacked packages (Debs(ctx, LBPackages...))", p)
		}
	}
	if v := debs["haproxy"].Version; !strings.HasPrefix(v, HAProxyVersion+"-") {
		return nil, fmt.Errorf("haproxy's candidate version is %s, not %s: update HAProxyVersion (and check the images)", v, HAProxyVersion)
	}
	if v := debs["keepalived"].Version; !strings.Contains(v, KeepalivedVersion+"-") {
		return nil, fmt.Errorf("keepalived's candidate version is %s, not %s: update KeepalivedVersion (and check the images)", v, KeepalivedVersion)
	}
	var out []LBImage
	for _, p := range []struct{ tag, pkg, bin string }{
		{haproxyTag, "haproxy", "usr/sbin/haproxy"},
		{keepalivedTag, "keepalived", "usr/sbin/keepalived"},
	} {
		img, err := lbImage(rootfs, debs, p.tag, p.pkg, p.bin)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func lbImage(rootfs string, debs map[string]Deb, tag, pkg, bin string) (LBImage, error) {
	src := debs[pkg].Path(bin)
	dst := "/usr/sbin/" + path.Base(bin)
	img := LBImage{
		Image: Image{Tag: tag, Base: true, Files: [][2]string{{src, dst}}, Entrypoint: []string{dst}},
		Libs:  map[string]string{},
	}
	libs, err := closure(rootfs, debs, src, bin)
	if err != nil {
		return LBImage{}, err
	}
	sonames := make([]string, 0, len(libs))
	for s := range libs {
		sonames = append(sonames, s)
	}
	sort.Strings(sonames)
	for _, s := range sonames {
		l := libs[s]
		// The soname's path, its file's content: Files has no symlinks.
		// Always below /usr: a lib/ directory in the layer would hide the
		// base layer's /lib -> usr/lib.
		p := "/usr/lib/x86_64-linux-gnu/" + s
		img.Files = append(img.Files, [2]string{l.file, p})
		img.Libs[p] = l.pkg
	}
	return img, nil
}

// lib is a library found in an unpacked package.
type lib struct {
	file string // the resolved file (not the soname's symlink)
	pkg  string
}

// closure returns the libraries (by soname) that the ELF file at src
// (rel in its package) needs, directly or through each other, and the base
// layer lacks.
func closure(rootfs string, debs map[string]Deb, src, rel string) (map[string]lib, error) {
	pkgs := make([]string, 0, len(debs))
	for p := range debs {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	found := map[string]lib{}
	type item struct{ file, chain string }
	queue := []item{{src, rel}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		needed, runpath, err := elfNeeds(it.file)
		if err != nil {
			return nil, err
		}
		for _, s := range needed {
			if _, ok := found[s]; ok {
				continue
			}
			if inBase(rootfs, s) {
				continue
			}
			var l lib
			for _, p := range pkgs {
				for _, d := range append(runpath, libDirs...) {
					f := debs[p].Path(filepath.Join(d, s))
					if r, err := filepath.EvalSymlinks(f); err == nil && strings.HasPrefix(r, debs[p].Dir+string(filepath.Separator)) {
						l = lib{file: r, pkg: p}
						break
					}
				}
				if l.file != "" {
					break
				}
			}
			if l.file == "" {
				return nil, fmt.Errorf("%s needs %s (%s): neither the base layer (%s) nor the packages %v have it: add its package (apt-file search %s) to LBPackages",
					path.Base(rel), s, it.chain, rootfs, LBPackages, s)
			}
			found[s] = l
			queue = append(queue, item{l.file, it.chain + " -> " + s})
		}
	}
	return found, nil
}

// elfNeeds returns an ELF file's DT_NEEDED sonames and its RUNPATH (or
// RPATH) directories relative to the root; $ORIGIN is not supported.
func elfNeeds(file string) (needed, runpath []string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, nil, fmt.Errorf("%s: machine %s, not x86-64", file, f.Machine)
	}
	if needed, err = f.ImportedLibraries(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		for _, v := range vals {
			for _, d := range strings.Split(v, ":") {
				if strings.Contains(d, "$") {
					return nil, nil, fmt.Errorf("%s: RUNPATH %q: $ORIGIN and the like are not supported", file, v)
				}
				if d = strings.Trim(d, "/"); d != "" {
					runpath = append(runpath, d)
				}
			}
		}
	}
	return needed, runpath, nil
}

// inBase says whether the base layer cut from rootfs has soname in a
// multiarch library directory: the rootfs has it and baseExcludes keeps it.
func inBase(rootfs, soname string) bool {
	for _, d := range libDirs {
		rel := filepath.Join(d, soname)
		if excludedPath(rel) || excludedPath(filepath.Join("usr", rel)) {
			continue
		}
		if existsIn(rootfs, rel) {
			return true
		}
	}
	return false
}

// existsIn says whether rel exists below root, following the symlinks of
// its last element inside root (an absolute target is root's, not the
// host's).
func existsIn(root, rel string) bool {
	for hops := 0; hops < 40; hops++ {
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			return false
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return true
		}
		target, err := os.Readlink(filepath.Join(root, rel))
		if err != nil {
			return false
		}
		if filepath.IsAbs(target) {
			rel = strings.TrimPrefix(filepath.Clean(target), "/")
		} else {
			rel = filepath.Join(filepath.Dir(rel), target)
		}
	}
	return false
}

// excludedPath says whether baseExcludes drops rel or a directory above it.
func excludedPath(rel string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = filepath.Dir(p) {
		if excluded(p) {
			return true
		}
	}
	return false
}
