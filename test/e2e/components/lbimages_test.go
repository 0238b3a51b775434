package components

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
)

// imagePath is mkimages' PATH, the images' environment.
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin"

// TestLBImagesRun builds the haproxy and keepalived images' contents from
// the cache, lays each image's layers (the base layer, then its files, mode
// 0755 as mkimages writes them) into a directory and runs the programs
// chrooted there, by name through the images' PATH: haproxy -vv, a
// configuration check of a small valid configuration, keepalived --version
// and a keepalived configuration check. Root only; skipped when the cache
// is cold (no rootfs, or haproxy's and keepalived's packages not unpacked
// in it: the e2e bundle build fills it; KUBEBOOT_E2E_DOWNLOAD=1 downloads
// the packages here).
func TestLBImagesRun(t *testing.T) {
	// Not in make test (root there, with a warm cache it would chroot for
	// 30 s): the HA e2e runs these images for real.
	if os.Getenv("KUBEBOOT_E2E_IMAGES") != "1" {
		t.Skip("KUBEBOOT_E2E_IMAGES=1 runs the images' programs chrooted")
	}
	if os.Geteuid() != 0 {
		t.Skip("root only (chroot)")
	}
	cache := nspawn.CacheDir()
	rootfs := filepath.Join(cache, "rootfs", nspawn.DefaultRootfs.Key())
	if _, err := os.Stat(filepath.Join(rootfs, nspawn.InitPath)); err != nil {
		t.Skipf("the cache is cold: no rootfs %s (the e2e bundle build makes it)", rootfs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if os.Getenv("KUBEBOOT_E2E_DOWNLOAD") != "1" {
		for _, p := range LBPackages {
			info, err := aptShow(ctx, p)
			if err != nil {
				t.Skipf("the cache is cold: %v", err)
			}
			dir := strings.TrimSuffix(filepath.Join(cache, "debs", filepath.Base(info["Filename"])), ".deb")
			if _, err := os.Stat(filepath.Join(dir, ".unpacked")); err != nil {
				t.Skipf("the cache is cold: %s %s is not unpacked in %s (KUBEBOOT_E2E_DOWNLOAD=1 downloads it)", p, info["Version"], filepath.Join(cache, "debs"))
			}
		}
	}
	b := &Builder{Cache: cache, Logf: t.Logf}
	base, err := b.BaseLayer(ctx, rootfs, nspawn.DefaultRootfs.Key())
	if err != nil {
		t.Fatal(err)
	}
	debs, err := b.Debs(ctx, LBPackages...)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := LBImages(rootfs, debs, "example.local/haproxy:test", "example.local/keepalived:test")
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("%d images, want haproxy and keepalived", len(imgs))
	}
	// run runs a program of the image at dir by name, chrooted, with the
	// image's PATH only; in a private network namespace (lo and a veth
	// pair kb0/kb1, kb0 10.0.0.11/24), mount namespace (/proc and /sys of
	// the chroot mounted) and PID namespace when netns is set.
	run := func(t *testing.T, dir string, netns bool, args ...string) (string, error) {
		t.Helper()
		argv := append([]string{"chroot", dir, "/usr/bin/env", "-i", imagePath}, args...)
		if netns {
			setup := "set -e; ip link set lo up; ip link add kb0 type veth peer name kb1; ip link set kb1 up; ip link set kb0 up; " +
				"ip addr add 10.0.0.11/24 dev kb0; mount -t proc proc \"$1/proc\"; mount -t sysfs sysfs \"$1/sys\"; shift; exec \"$@\""
			argv = append([]string{"unshare", "--net", "--mount", "--pid", "--fork", "sh", "-c", setup, "sh", dir}, argv...)
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = []string{imagePath}
		out, err := cmd.CombinedOutput()
		t.Logf("%s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		if err != nil {
			err = fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
		return string(out), err
	}
	mustRun := func(t *testing.T, dir string, netns bool, args ...string) string {
		t.Helper()
		out, err := run(t, dir, netns, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// runFor runs a daemon for d and stops it with SIGTERM: it must have
	// run until then (timeout's status 124), and its output must hold want.
	runFor := func(t *testing.T, dir string, d time.Duration, want string, args ...string) {
		t.Helper()
		out, err := run(t, dir, true, append([]string{"timeout", "-s", "TERM", fmt.Sprint(d.Seconds())}, args...)...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 124 {
			t.Fatalf("%v: want it running until timeout stops it (status 124)", err)
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: the output does not say %q", strings.Join(args, " "), want)
		}
	}
	if out, err := exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "sh", "-c", "ip link add kb0 type veth peer name kb1").CombinedOutput(); err != nil {
		t.Fatalf("a veth pair in a private network namespace: %v\n%s", err, out)
	}
	for i, img := range imgs {
		name := []string{"haproxy", "keepalived"}[i]
		t.Run(name, func(t *testing.T) {
			dir := layOut(t, base, img.Image)
			libs := make([]string, 0, len(img.Libs))
			for p, pkg := range img.Libs {
				libs = append(libs, p+" ("+pkg+")")
			}
			sort.Strings(libs)
			t.Logf("%s: %d files, libraries:\n%s", img.Tag, len(img.Files), strings.Join(libs, "\n"))
			switch name {
			case "haproxy":
				if out := mustRun(t, dir, false, "haproxy", "-vv"); !strings.Contains(out, "HAProxy version "+HAProxyVersion) {
					t.Errorf("haproxy -vv does not say version %s", HAProxyVersion)
				}
				// templates' haproxy.cfg for loadBalancer.kind vip, the API
				// servers in the namespace's subnet (none answers).
				cfg := `global
    log stdout format raw local0
    fd-hard-limit 50000
defaults
    log global
    mode tcp
    option dontlognull
    option redispatch
    retries 3
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout check 2s
frontend stats
    mode http
    bind 127.0.0.1:8404
    no log
    timeout client 10s
    stats enable
    stats uri /stats
frontend kube-apiserver
    bind 0.0.0.0:8443
    option tcplog
    default_backend kube-apiserver
backend kube-apiserver
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check check-ssl verify none inter 1s fastinter 500ms downinter 1s fall 2 rise 2
    server cp1 10.0.0.21:6443
    server cp2 10.0.0.22:6443
`
				const conf = "/usr/local/etc/haproxy/haproxy.cfg" // the pod's
				writeFile(t, filepath.Join(dir, conf), cfg)
				mustRun(t, dir, false, "haproxy", "-c", "-f", conf)
				// As the static pod runs it, in the foreground: it checks the
				// servers (none answers in the namespace) until it is stopped.
				runFor(t, dir, 4*time.Second, "Server kube-apiserver/cp1 is DOWN", "haproxy", "-f", conf, "-db")
			case "keepalived":
				if out := mustRun(t, dir, false, "keepalived", "--version"); !strings.Contains(out, "Keepalived v"+KeepalivedVersion) {
					t.Errorf("keepalived --version does not say v%s", KeepalivedVersion)
				}
				cfg := `global_defs {
    router_id kb-cp1
    script_user root
    enable_script_security
}
vrrp_script apiserver {
    script "/bin/bash -c 'exit 0'"
    timeout 1
    interval 1
    fall 3
}
vrrp_instance VI_1 {
    state BACKUP
    nopreempt
    interface kb0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        10.0.0.100/32
    }
    track_script {
        apiserver
    }
}
`
				writeFile(t, filepath.Join(dir, "etc/keepalived/keepalived.conf"), cfg)
				mustRun(t, dir, true, "keepalived", "--config-test", "-f", "/etc/keepalived/keepalived.conf")
				// As the static pod runs it: alone on kb0, it takes the VIP
				// after 3 adverts; the track script runs in bash.
				runFor(t, dir, 6*time.Second, "(VI_1) Entering MASTER STATE", "keepalived", "--dont-fork", "--log-console", "--log-detail", "--use-file=/etc/keepalived/keepalived.conf")
			}
		})
	}
}

// layOut extracts the base layer and copies img's files over it, as a
// container runtime would unpack the image mkimages builds.
func layOut(t *testing.T, base string, img Image) string {
	t.Helper()
	dir := t.TempDir()
	if img.Base {
		if out, err := exec.Command("tar", "-xf", base, "-C", dir, "--numeric-owner").CombinedOutput(); err != nil {
			t.Fatalf("tar -xf %s: %v\n%s", base, err, out)
		}
	}
	for _, f := range img.Files {
		dst := filepath.Join(dir, f[1])
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		src, err := os.Open(f[0])
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
		if err == nil {
			_, err = io.Copy(w, src)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
