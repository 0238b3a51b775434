package cluster

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kubeboot/kubeboot/bundle"
)

// The directories whose free space the probe reports: where apply uploads
// the bundle and prepare unpacks it, where containerd keeps the images,
// where apply puts the kubeboot binary. The probe walks up to the nearest
// existing directory (on a new host /var/lib/kubeboot is not there yet).
const (
	spaceBundleDir     = "/var/lib/kubeboot"
	spaceContainerdDir = "/var/lib/containerd"
	spaceBinaryDir     = "/usr/local/lib/kubeboot"
)

// probeSpaceScript is the probe's part that prints "free=DIR KIB MOUNT"
// for each directory (df -P: POSIX output, 1 KiB blocks).
const probeSpaceScript = `for d in ` + spaceBundleDir + ` ` + spaceContainerdDir + ` ` + spaceBinaryDir + `; do
  p=$d; while [ ! -d "$p" ]; do p=${p%/*}; [ -n "$p" ] || p=/; done
  df -Pk "$p" 2>/dev/null | { read -r _; read -r _ _ _ a _ m && echo "free=$d $a $m"; }
done`

// diskFree is the free space of the file system a directory is on.
type diskFree struct {
	bytes int64
	mount string
}

// parseFree reads one "free=" value: "DIR KIB MOUNT".
func parseFree(v string) (dir string, f diskFree, ok bool) {
	fs := strings.SplitN(v, " ", 3)
	if len(fs) != 3 {
		return "", f, false
	}
	kib, err := strconv.ParseInt(fs[1], 10, 64)
	if err != nil || kib < 0 {
		return "", f, false
	}
	return fs[0], diskFree{bytes: kib << 10, mount: fs[2]}, true
}

// spaceNeed is what one run puts in one directory.
type spaceNeed struct {
	dir, what string
	bytes     int64
}

// spaceNeeds is a lower bound of what apply and prepare write on a host:
// a new bundle (uploaded, then its files unpacked beside it, then the
// images copied into containerd's content store, before containerd
// unpacks their layers, which needs more still), a new kubeboot binary.
func spaceNeeds(m *bundle.Manifest, bundleSize int64, newBundle bool, binarySize int64, newBinary bool) []spaceNeed {
	var needs []spaceNeed
	if newBundle && m != nil {
		var files, images int64
		for _, f := range m.Files {
			files += f.Size
			if f.Type == bundle.TypeImages {
				images += f.Size
			}
		}
		needs = append(needs,
			spaceNeed{spaceBundleDir, "the bundle", bundleSize},
			spaceNeed{spaceBundleDir, "its files unpacked", files},
			spaceNeed{spaceContainerdDir, "the images in containerd", images})
	}
	if newBinary {
		needs = append(needs, spaceNeed{spaceBinaryDir, "kubeboot", binarySize})
	}
	return needs
}

// checkSpace compares the needs with the free space the probe reported,
// adding up the needs of directories on one file system. A directory the
// probe could not measure (no df) is not checked.
func checkSpace(free map[string]diskFree, needs []spaceNeed) error {
	type mountNeed struct {
		free  int64
		total int64
		parts []string
	}
	byMount := map[string]*mountNeed{}
	for _, n := range needs {
		f, ok := free[n.dir]
		if !ok || n.bytes <= 0 {
			continue
		}
		mn := byMount[f.mount]
		if mn == nil {
			mn = &mountNeed{free: f.bytes}
			byMount[f.mount] = mn
		}
		mn.total += n.bytes
		mn.parts = append(mn.parts, fmt.Sprintf("%s %s in %s", n.what, mib(n.bytes), n.dir))
	}
	var mounts []string
	for m := range byMount {
		mounts = append(mounts, m)
	}
	sort.Strings(mounts)
	var bad []string
	for _, m := range mounts {
		mn := byMount[m]
		if mn.total > mn.free {
			bad = append(bad, fmt.Sprintf("the file system on %s has %s free, this run needs at least %s there (%s)",
				m, mib(mn.free), mib(mn.total), strings.Join(mn.parts, ", ")))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("not enough disk space: %s: free some space or give the host a larger disk, then run apply again", strings.Join(bad, "; "))
	}
	return nil
}
