package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWorkerJoinCommand(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      string
		wantErr   bool
	}{
		{
			name: "kubeadm-style continuation lines",
			out: `Your Kubernetes control-plane has initialized successfully!

Then you can join any number of worker nodes by running the following on each as root:

kubeboot join 10.251.0.11:6443 --token abcdef.0123456789abcdef \
	--discovery-token-ca-cert-hash sha256:1111
`,
			want: "kubeboot join 10.251.0.11:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:1111",
		},
		{
			name: "control-plane command first",
			out: `  kubeboot join 10.0.0.1:6443 --token a.b \
	--discovery-token-ca-cert-hash sha256:22 \
	--control-plane --certificate-key ff

  kubeboot join 10.0.0.1:6443 --token a.b \
	--discovery-token-ca-cert-hash sha256:22
`,
			want: "kubeboot join 10.0.0.1:6443 --token a.b --discovery-token-ca-cert-hash sha256:22",
		},
		{name: "only a control-plane command", out: "kubeboot join x:6443 --token a.b --control-plane\n", wantErr: true},
		{name: "none", out: "[init] done\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := workerJoinCommand(tc.out)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got  %q\nwant %q", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestDiffFiles(t *testing.T) {
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	before, err := parseFileStates(
		"/etc/kubernetes/admin.conf 1764578400.1234567890\n/etc/kubernetes/pki/ca.crt 1764578400.5\n/etc/containerd/config.toml 1764578401.0\n",
		sum('a')+"  /etc/kubernetes/admin.conf\n"+sum('b')+"  /etc/kubernetes/pki/ca.crt\n"+sum('c')+"  /etc/containerd/config.toml\n")
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseFileStates(
		"/etc/kubernetes/admin.conf 1764578400.1234567890\n/etc/kubernetes/pki/ca.crt 1764578499.0\n/etc/containerd/config.toml 1764578499.0\n/etc/kubernetes/new.conf 1.0\n",
		sum('a')+"  /etc/kubernetes/admin.conf\n"+sum('b')+"  /etc/kubernetes/pki/ca.crt\n"+sum('d')+"  /etc/containerd/config.toml\n"+sum('e')+"  /etc/kubernetes/new.conf\n")
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFiles(before, before); len(d) != 0 {
		t.Errorf("same snapshot differs: %v", d)
	}
	want := []string{
		"added /etc/kubernetes/new.conf",
		"rewritten /etc/containerd/config.toml (new content)",
		"touched /etc/kubernetes/pki/ca.crt (same content, mtime 1764578400.5 -> 1764578499.0)",
	}
	if d := diffFiles(before, after); !reflect.DeepEqual(d, want) {
		t.Errorf("diff\n got %q\nwant %q", d, want)
	}
	if d := diffFiles(after, before); len(d) != 3 || d[0] != "removed /etc/kubernetes/new.conf" {
		t.Errorf("reverse diff %q", d)
	}
	if _, err := parseFileStates("no-mtime-here\n", ""); err == nil {
		t.Error("a line without an mtime parsed")
	}
	if _, err := parseFileStates("", "short  /x\n"); err == nil {
		t.Error("a bad sha256sum line parsed")
	}
}

func TestDiffPods(t *testing.T) {
	before := map[string]podState{
		"kube-system/etcd-m1":   {UID: "u1", Containers: map[string]containerState{"etcd": {ID: "containerd://aaaaaaaaaaaaaaaa", Restarts: 0}}},
		"kube-system/coredns-x": {UID: "u2", Containers: map[string]containerState{"coredns": {ID: "containerd://b", Restarts: 1}}},
		"default/web":           {UID: "u3", Containers: map[string]containerState{"web": {ID: "containerd://c"}}},
	}
	if d := diffPods(before, before); len(d) != 0 {
		t.Errorf("same snapshot differs: %v", d)
	}
	after := map[string]podState{
		"kube-system/etcd-m1":   {UID: "u1", Containers: map[string]containerState{"etcd": {ID: "containerd://dddddddddddddddd", Restarts: 1}}},
		"kube-system/coredns-x": {UID: "u9", Containers: map[string]containerState{"coredns": {ID: "containerd://b", Restarts: 1}}},
		"default/other":         {UID: "u4"},
	}
	want := []string{
		"pod default/other added",
		"pod default/web removed",
		"pod kube-system/coredns-x re-created (uid u2 -> u9)",
		"pod kube-system/etcd-m1: container etcd restarted (id aaaaaaaaaaaa -> dddddddddddd, restarts 0 -> 1)",
	}
	if d := diffPods(before, after); !reflect.DeepEqual(d, want) {
		t.Errorf("diff\n got %q\nwant %q", d, want)
	}
}

// TestPrepareActions holds the e2e re-run check to prepare's own output:
// its first run on a bare node (phases/prepare/testdata) reports every change, its
// re-run none.
func TestPrepareActions(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("../../phases/prepare/testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := prepareActions(read("prepare-bundle-output.golden"))
	for _, want := range []string{"Writing kernel parameters", "Set net.bridge", "Unpacking", "Installed kubelet", "Enabled kubelet", "Starting containerd", "Importing images/coredns.tar", "Removed /var/lib/kubeboot"} {
		if !strings.Contains(strings.Join(first, "\n"), want) {
			t.Errorf("the first run's actions lack %q: %q", want, first)
		}
	}
	if again := prepareActions(read("prepare-bundle-rerun.golden")); len(again) > 0 {
		t.Errorf("the re-run's output reports actions: %q", again)
	}
}
