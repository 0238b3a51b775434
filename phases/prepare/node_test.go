package prepare

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/bundle/bundletest"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// node is a transporttest.Fake that behaves like a Debian host for the
// commands prepare runs: tar, sha256sum, install, mv and rm act on the
// fake's files, systemctl keeps unit states (a containerd restart creates
// its socket), ctr keeps an image store fed by real image tarballs,
// modprobe, sysctl, swapoff and apt-get change what they would.
type node struct {
	*transporttest.Fake
	t testing.TB

	mu       sync.Mutex
	active   map[string]bool
	enabled  map[string]bool
	restarts map[string]int
	images   map[string]string // ref → target digest
	content  map[string][]byte // digest → blob
}

type nodeOpts struct {
	noSystemd  bool
	cgroupV1   bool
	negOOM     bool // a negative oom_score_adj is permitted
	noFeatures bool // overlay and br_netfilter are not there
	modprobe   bool // modprobe can load modules
	arch       string
}

func newNode(t testing.TB, o nodeOpts) *node {
	t.Helper()
	n := &node{Fake: transporttest.New("node1"), t: t, active: map[string]bool{}, enabled: map[string]bool{},
		restarts: map[string]int{}, images: map[string]string{}, content: map[string][]byte{}}
	f := n.Fake
	f.SetFile("/proc/sys/kernel/hostname", []byte("node1\n"), 0o644)
	f.SetFile("/proc/sys/kernel/osrelease", []byte("6.1.0-28-amd64\n"), 0o444)
	comm := "systemd\n"
	if o.noSystemd {
		comm = "sh\n"
	}
	f.SetFile("/proc/1/comm", []byte(comm), 0o444)
	if !o.cgroupV1 {
		f.SetFile("/sys/fs/cgroup/cgroup.controllers", []byte("cpu memory pids\n"), 0o444)
	}
	f.SetFile("/etc/os-release", []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"), 0o644)
	f.SetFile("/proc/swaps", []byte("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"), 0o444)
	f.SetFile("/etc/fstab", []byte("UUID=1234 / ext4 errors=remount-ro 0 1\n"), 0o644)
	fsys := "nodev\tsysfs\n\text4\n"
	if !o.noFeatures {
		fsys += "nodev\toverlay\n"
		f.SetFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("0\n"), 0o644)
		f.SetFile("/proc/sys/net/bridge/bridge-nf-call-ip6tables", []byte("0\n"), 0o644)
	}
	f.SetFile("/proc/filesystems", []byte(fsys), 0o444)
	f.SetFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644)
	f.SetFile("/usr/bin/sha256sum", []byte("ELF"), 0o755)
	f.SetFile("/usr/sbin/modprobe", []byte("ELF"), 0o755)

	f.Handle("sh -c", func(transport.Cmd) (transport.Result, error) {
		if o.negOOM {
			return transport.Result{}, nil
		}
		return transport.Result{}, &transport.ExitError{ExitCode: 1, Stderr: "sh: 1: cannot create /proc/self/oom_score_adj: Permission denied"}
	})
	arch := o.arch
	if arch == "" {
		arch = "x86_64"
	}
	f.Handle("uname -m", transporttest.Reply(arch+"\n"))
	f.Handle("tar", n.tar)
	f.Handle("sha256sum", n.sha256sum)
	f.HandleCoreutils()
	f.Handle("systemctl", n.systemctl)
	f.Handle("ctr", n.ctr)
	f.Handle("modprobe", func(c transport.Cmd) (transport.Result, error) {
		if !o.modprobe {
			return transport.Result{}, &transport.ExitError{ExitCode: 1, Stderr: "modprobe: FATAL: Module " + c.Args[1] + " not found in directory /lib/modules/6.1.0-28-amd64"}
		}
		switch c.Args[1] {
		case "overlay":
			b, _, _ := f.File("/proc/filesystems")
			f.SetFile("/proc/filesystems", append(b, "nodev\toverlay\n"...), 0o444)
		case "br_netfilter":
			f.SetFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("0\n"), 0o644)
			f.SetFile("/proc/sys/net/bridge/bridge-nf-call-ip6tables", []byte("0\n"), 0o644)
		}
		return transport.Result{}, nil
	})
	f.Handle("sysctl -w", func(c transport.Cmd) (transport.Result, error) {
		k, v, _ := strings.Cut(c.Args[2], "=")
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if _, _, ok := f.File(p); !ok {
			return transport.Result{}, &transport.ExitError{ExitCode: 255, Stderr: "sysctl: cannot stat " + p + ": No such file or directory"}
		}
		f.SetFile(p, []byte(v+"\n"), 0o644)
		return transport.Result{}, nil
	})
	f.Handle("swapoff -a", func(transport.Cmd) (transport.Result, error) {
		f.SetFile("/proc/swaps", []byte("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"), 0o444)
		return transport.Result{}, nil
	})
	f.Handle("/usr/bin/containerd --version", transporttest.Reply("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n"))
	f.Handle("/usr/bin/kubelet --version", transporttest.Reply("Kubernetes v1.34.3\n"))
	f.Handle("/usr/bin/kubectl version --client", transporttest.Reply("Client Version: v1.34.3\nKustomize Version: v5.7.1\n"))
	return n
}

func exitErr(code int, format string, args ...any) error {
	return &transport.ExitError{ExitCode: code, Stderr: fmt.Sprintf(format, args...)}
}

// tar: -xO[z]f FILE --occurrence=1 MEMBER, or -x[z]f FILE -C DIR --no-same-owner -- MEMBERS.
func (n *node) tar(c transport.Cmd) (transport.Result, error) {
	a := c.Args
	data, _, ok := n.File(a[2])
	if !ok {
		return transport.Result{}, exitErr(2, "tar: %s: Cannot open: No such file or directory", a[2])
	}
	var r io.Reader = bytes.NewReader(data)
	if strings.Contains(a[1], "z") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return transport.Result{}, exitErr(2, "gzip: stdin: not in gzip format")
		}
		r = zr
	}
	toStdout := strings.Contains(a[1], "O")
	dir := ""
	var members []string
	for i := 3; i < len(a); i++ {
		switch {
		case a[i] == "-C":
			dir = a[i+1]
			i++
		case a[i] == "--":
			members = append(members, a[i+1:]...)
			i = len(a)
		case !strings.HasPrefix(a[i], "-"):
			members = append(members, a[i])
		}
	}
	want := map[string]bool{}
	for _, m := range members {
		want[m] = true
	}
	var out bytes.Buffer
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return transport.Result{}, exitErr(2, "tar: %v", err)
		}
		if !want[h.Name] {
			continue
		}
		delete(want, h.Name)
		b, _ := io.ReadAll(tr)
		if toStdout {
			out.Write(b)
			break
		}
		n.SetFile(path.Join(dir, h.Name), b, fs.FileMode(h.Mode).Perm())
	}
	if len(want) > 0 {
		return transport.Result{Stdout: out.Bytes()}, exitErr(2, "tar: %v: Not found in archive", want)
	}
	return transport.Result{Stdout: out.Bytes()}, nil
}

func (n *node) sha256sum(c transport.Cmd) (transport.Result, error) {
	var out, errs strings.Builder
	for _, p := range c.Args[2:] {
		b, _, ok := n.File(p)
		if !ok {
			fmt.Fprintf(&errs, "sha256sum: %s: No such file or directory\n", p)
			continue
		}
		s := sha256.Sum256(b)
		fmt.Fprintf(&out, "%s  %s\n", hex.EncodeToString(s[:]), p)
	}
	if errs.Len() > 0 {
		return transport.Result{Stdout: []byte(out.String())}, exitErr(1, "%s", errs.String())
	}
	return transport.Result{Stdout: []byte(out.String())}, nil
}

func (n *node) systemctl(c transport.Cmd) (transport.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	verb, unit := c.Args[1], ""
	if len(c.Args) > 2 {
		unit = c.Args[2]
	}
	switch verb {
	case "is-active":
		if n.active[unit] {
			return transport.Result{Stdout: []byte("active\n")}, nil
		}
		return transport.Result{Stdout: []byte("inactive\n")}, exitErr(3, "")
	case "is-enabled":
		if n.enabled[unit] {
			return transport.Result{Stdout: []byte("enabled\n")}, nil
		}
		return transport.Result{Stdout: []byte("disabled\n")}, exitErr(1, "")
	case "enable":
		found := false
		for _, dir := range []string{"/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"} {
			if _, _, ok := n.File(dir + "/" + unit + ".service"); ok {
				found = true
			}
		}
		if !found {
			return transport.Result{}, exitErr(1, "Failed to enable unit: Unit file %s.service does not exist.", unit)
		}
		n.enabled[unit] = true
	case "restart":
		n.active[unit] = true
		n.restarts[unit]++
		if unit == "containerd" {
			n.SetFile("/run/containerd/containerd.sock", nil, fs.ModeSocket|0o660)
			n.SetFile("/var/run/containerd/containerd.sock", nil, fs.ModeSocket|0o660)
		}
	case "daemon-reload":
	default:
		return transport.Result{}, exitErr(1, "unknown verb %s", verb)
	}
	return transport.Result{}, nil
}

// ctr --address S --namespace k8s.io images ls | images import FILE | content get DIGEST
func (n *node) ctr(c transport.Cmd) (transport.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := c.Args[5:]
	switch strings.Join(a[:2], " ") {
	case "images ls":
		var b strings.Builder
		b.WriteString("REF TYPE DIGEST SIZE PLATFORMS LABELS\n")
		refs := make([]string, 0, len(n.images))
		for r := range n.images {
			refs = append(refs, r)
		}
		sort.Strings(refs)
		for _, r := range refs {
			fmt.Fprintf(&b, "%s application/vnd.docker.distribution.manifest.v2+json %s 1.2 KiB linux/amd64 -\n", r, n.images[r])
		}
		return transport.Result{Stdout: []byte(b.String())}, nil
	case "images import":
		data, _, ok := n.File(a[2])
		if !ok {
			return transport.Result{}, exitErr(1, "ctr: open %s: no such file or directory", a[2])
		}
		_, images, err := bundle.ReadImageArchive(bytes.NewReader(data))
		if err != nil {
			return transport.Result{}, exitErr(1, "ctr: %v", err)
		}
		for _, im := range images {
			d := im.Digest
			if d == "" {
				m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": map[string]string{"digest": im.ConfigDigest}})
				s := sha256.Sum256(m)
				d = "sha256:" + hex.EncodeToString(s[:])
				n.content[d] = m
			}
			n.images[im.Ref] = d
		}
		return transport.Result{}, nil
	case "content get":
		if b, ok := n.content[a[2]]; ok {
			return transport.Result{Stdout: b}, nil
		}
		return transport.Result{}, exitErr(1, "ctr: content digest %s: not found", a[2])
	}
	return transport.Result{}, exitErr(1, "ctr: unknown command %v", a)
}

// mutating lists the commands that were not read-only.
func (n *node) mutating(from int) []string {
	var out []string
	for _, r := range n.Runs()[from:] {
		if !r.ReadOnly {
			out = append(out, r.String())
		}
	}
	return out
}

// fixtureBundle builds a bundle from bundletest's fixture, in a temp dir,
// and returns its bytes; edit, when set, changes entries on the way.
func fixtureBundle(t testing.TB, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "kubeboot.tar.gz")
	bundletest.Build(t, bundletest.Fixture(t, dir), out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		return b
	}
	zr, _ := gzip.NewReader(bytes.NewReader(b))
	tr := tar.NewReader(zr)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		data, _ := io.ReadAll(tr)
		if data = edit(h.Name, data); data == nil {
			continue
		}
		h.Size = int64(len(data))
		tw.WriteHeader(h)
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}
