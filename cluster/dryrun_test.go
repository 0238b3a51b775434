package cluster

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
)

const dryRunInventory = `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
ssh:
  user: root
  keyFile: id_test
hosts:
  - {name: cp1, address: 10.0.0.11, roles: [control-plane]}
  - {name: w1, address: 10.0.0.21, roles: [worker]}
`

// TestApplyDryRun: the dry run runs prepare and init over a read-only view
// of each host and prints every file with its diff and every command; it
// writes nothing on any host and runs only read-only commands there.
func TestApplyDryRun(t *testing.T) {
	inv := loadTestInventory(t, dryRunInventory)
	fc := newFakeCluster(t, inv)
	// cp1 has an old scheduler manifest: its diff shows both sides.
	fc.hosts["cp1"].SetFile("/etc/kubernetes/manifests/kube-scheduler.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: old-scheduler\n"), 0o600)
	for name, f := range fc.hosts {
		f.SetFile("/proc/sys/kernel/hostname", []byte(name+"\n"), 0o644)
	}
	before := map[string][]string{}
	for name, f := range fc.hosts {
		before[name] = f.Paths()
	}
	var out bytes.Buffer
	o := fc.options(t, &out)
	o.DryRun = true
	o.Log = nil
	if _, err := Apply(context.Background(), inv, o); err != nil {
		t.Fatalf("Apply --dry-run: %v\n%s", err, out.String())
	}
	text := out.String()
	for name, f := range fc.hosts {
		if got := f.Paths(); strings.Join(got, "\n") != strings.Join(before[name], "\n") {
			t.Errorf("%s: the dry run changed its files:\nbefore %v\nafter  %v", name, before[name], got)
		}
		for _, r := range f.Runs() {
			if !r.ReadOnly {
				t.Errorf("%s: the dry run ran %q, not read-only", name, r)
			}
		}
	}
	for _, want := range []string{
		"[dry-run] cp1: would write /etc/kubernetes/manifests/kube-apiserver.yaml (0600, new file, ",
		"[dry-run] cp1:   +++ b/etc/kubernetes/manifests/kube-apiserver.yaml",
		"[dry-run] cp1:   +    - kube-apiserver",
		"[dry-run] cp1: would write /etc/kubernetes/manifests/kube-scheduler.yaml (0600, changed, ",
		"[dry-run] cp1:   -  name: old-scheduler",
		"[dry-run] cp1: would write /etc/kubernetes/pki/ca.key (0600, new file, ",
		"[dry-run] w1: its join files",
		"nothing was changed on any host",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	for _, bad := range []string{"BEGIN RSA PRIVATE KEY", "BEGIN EC PRIVATE KEY", "BEGIN PRIVATE KEY", "client-key-data:"} {
		if strings.Contains(text, bad) {
			t.Errorf("the output shows a secret (%q)", bad)
		}
	}
	if strings.Contains(text, "[dry-run] w1: would write /etc/kubernetes/manifests/") {
		t.Errorf("a worker would get control-plane manifests:\n%s", text)
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}

func TestFileChange(t *testing.T) {
	const p = "/etc/containerd/config.toml"
	for _, tc := range []struct {
		name          string
		path          string
		data, old     string
		mode, oldMode fs.FileMode
		exists        bool
		want          []string
	}{
		{name: "new", path: p, data: "a\nb\n", mode: 0o644,
			want: []string{"would write " + p + " (0644, new file, 2 lines):", "  --- /dev/null", "  +++ b" + p, "  @@ -0,0 +1,2 @@", "  +a", "  +b"}},
		{name: "changed", path: p, data: "a\nc\n", old: "a\nb\n", mode: 0o644, oldMode: 0o644, exists: true,
			want: []string{"would write " + p + " (0644, changed, 2 lines):", "  --- a" + p, "  +++ b" + p, "  @@ -1,2 +1,2 @@", "   a", "  -b", "  +c"}},
		{name: "same", path: p, data: "a\n", old: "a\n", mode: 0o644, oldMode: 0o644, exists: true,
			want: []string{"would rewrite " + p + " (0644) with the same content"}},
		{name: "mode only", path: p, data: "a\n", old: "a\n", mode: 0o600, oldMode: 0o644, exists: true,
			want: []string{"would change the mode of " + p + " from 0644 to 0600"}},
		{name: "a key", path: "/etc/kubernetes/pki/sa.key", data: "-----BEGIN PRIVATE KEY-----\n", mode: 0o600,
			want: []string{"would write /etc/kubernetes/pki/sa.key (0600, new file, 28 bytes; a secret: content not shown)"}},
		{name: "a kubeconfig", path: inventory.AdminKubeconfig, data: "apiVersion: v1\n", old: "x\n", mode: 0o600, oldMode: 0o600, exists: true,
			want: []string{"would write " + inventory.AdminKubeconfig + " (0600, changed, 15 bytes; a secret: content not shown)"}},
		{name: "the encryption key", path: inventory.EncryptionConfigPath, data: "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n", mode: 0o600,
			want: []string{"would write " + inventory.EncryptionConfigPath + " (0600, new file, 69 bytes; a secret: content not shown)"}},
		{name: "sysctl is no secret", path: "/etc/sysctl.d/k8s.conf", data: "net.ipv4.ip_forward = 1\n", mode: 0o644,
			want: []string{"would write /etc/sysctl.d/k8s.conf (0644, new file, 1 lines):", "  --- /dev/null", "  +++ b/etc/sysctl.d/k8s.conf", "  @@ -0,0 +1 @@", "  +net.ipv4.ip_forward = 1"}},
		{name: "binary", path: "/usr/bin/x", data: "\x7fELF\x00", mode: 0o755,
			want: []string{"would write /usr/bin/x (0755, new file, 5 bytes, binary)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fileChange(tc.path, tc.mode, []byte(tc.data), []byte(tc.old), tc.oldMode, tc.exists)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
