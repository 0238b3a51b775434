package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
)

func TestApplyInventoryYAML(t *testing.T) {
	inv := applyInventory{
		KubernetesVersion: "v1.34.3",
		Bundle:            "/tmp/b/kubeboot-v1.34.3-amd64.tar",
		KeyFile:           "/tmp/run/id_ed25519",
		KnownHostsFile:    "/tmp/work/known_hosts",
		Hosts: []applyHost{
			{Name: "m1", Address: "10.251.0.11", Roles: []string{"control-plane"}},
			{Name: "m2", Address: "10.251.0.12", Roles: []string{"worker"}, User: "ops", SudoPasswordEnv: "M2_SUDO_PASSWORD"},
			{Name: "m3", Address: "10.251.0.13", Roles: []string{"worker"}, Bastion: "10.251.0.14"},
			{Name: "m5", Address: "127.0.0.1", Port: 40123, InternalAddress: "10.251.0.15", Roles: []string{"worker"}},
		},
	}
	c, err := inventory.Parse("cluster.yaml", []byte(inv.YAML()))
	if err != nil {
		t.Fatalf("%v\n%s", err, inv.YAML())
	}
	if c.KubernetesVersion != "v1.34.3" || c.Bundle != inv.Bundle || len(c.Hosts) != 4 {
		t.Fatalf("parsed %+v", c)
	}
	s1 := c.HostSSH(0, "/tmp/work", "/root")
	if s1.User != "root" || s1.KeyFile != inv.KeyFile || s1.KnownHostsFile != inv.KnownHostsFile || s1.Sudo.Mode != inventory.SudoNone || s1.Bastion != nil {
		t.Errorf("m1 ssh: %+v", s1)
	}
	s2 := c.HostSSH(1, "/tmp/work", "/root")
	if s2.User != "ops" || s2.Sudo.Mode != inventory.SudoPassword || s2.Sudo.PasswordEnv != "M2_SUDO_PASSWORD" || s2.KeyFile != inv.KeyFile {
		t.Errorf("m2 ssh: %+v sudo %+v", s2, s2.Sudo)
	}
	s3 := c.HostSSH(2, "/tmp/work", "/root")
	if s3.User != "root" || s3.Bastion == nil || s3.Bastion.Address != "10.251.0.14" || s3.Bastion.User != "root" ||
		s3.Bastion.KeyFile != inv.KeyFile || s3.Bastion.KnownHostsFile != inv.KnownHostsFile {
		t.Errorf("m3 ssh: %+v bastion %+v", s3, s3.Bastion)
	}
	if s5 := c.HostSSH(3, "/tmp/work", "/root"); s5.Port != 40123 || c.Hosts[3].Address != "127.0.0.1" || c.Hosts[3].NodeIP() != "10.251.0.15" {
		t.Errorf("m5 (behind a proxy): port %d, address %s, node IP %s", s5.Port, c.Hosts[3].Address, c.Hosts[3].NodeIP())
	}
	if c.Hosts[0].Roles[0] != inventory.RoleControlPlane || c.Hosts[2].Roles[0] != inventory.RoleWorker {
		t.Errorf("roles: %v %v", c.Hosts[0].Roles, c.Hosts[2].Roles)
	}
	// The whole file validates (the key and known_hosts files exist).
	dir := t.TempDir()
	inv.KeyFile, inv.KnownHostsFile = filepath.Join(dir, "id"), filepath.Join(dir, "known_hosts")
	inv.Bundle = filepath.Join(dir, "bundle.tar")
	for _, f := range []string{inv.KeyFile, inv.KnownHostsFile, inv.Bundle} {
		if err := os.WriteFile(f, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(p, []byte(inv.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := inventory.Load(p); err != nil {
		t.Errorf("inventory.Load: %v", err)
	}
}

const sampleApplyOut = `[connect] 3 hosts connected
[facts] m1: x86_64, set up before
[upload] m1: kubeboot and bundle already there
[upload] m3: kubeboot (62.5 MiB) to /usr/local/lib/kubeboot/kubeboot-0123456789abcdef
[upload] m3: bundle (301.2 MiB) to /var/lib/kubeboot/bundles/0123456789abcdef.tar
[prepare] m1: [prepare] Using existing containerd 1.6.20~ds1-1+deb12u3: not reinstalling it
[prepare] m3: [prepare] Installed kubelet v1.34.3 to /usr/bin/kubelet
[prepare] m3: [prepare] Importing images from the bundle
[join] m2: already a Ready Node: nothing to do
[join] m3: [preflight] Running pre-flight checks
[wait] 2/3 Nodes Ready
[wait] 3/3 Nodes Ready
[kubeconfig] wrote admin.conf (0600, server 10.251.0.11:6443): kubectl --kubeconfig admin.conf get nodes

HOST  ROLES                   RESULT       TIME   CALLS  WHAT CHANGED
m1    control-plane           ok           4.1s      21  nothing: up to date
m2    worker                  ok           1.0s      12  nothing: up to date
m3    worker                  not reached  0s         0
m4    worker                  ok          31.5s      40  kubeboot uploaded, bundle uploaded, prepared, joined

Took 1m2.3s: connect 200ms, facts 100ms, upload 9.5s, preflight 2s, prepare 20.1s, init 3s, join-control-plane 0s, join 12s, wait 4s, label 0s, kubeconfig 10ms
Every command, its time and exit code: kubeboot-apply.log
`

func TestApplyOutputParsers(t *testing.T) {
	rows := parseSummary(sampleApplyOut)
	want := map[string]summaryRow{
		"m1": {Host: "m1", Roles: "control-plane", Result: "ok", Time: "4.1s", Calls: "21", Changed: "nothing: up to date"},
		"m2": {Host: "m2", Roles: "worker", Result: "ok", Time: "1.0s", Calls: "12", Changed: "nothing: up to date"},
		"m3": {Host: "m3", Roles: "worker", Result: "not reached", Time: "0s", Calls: "0"},
		"m4": {Host: "m4", Roles: "worker", Result: "ok", Time: "31.5s", Calls: "40", Changed: "kubeboot uploaded, bundle uploaded, prepared, joined"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("parseSummary:\n got %+v\nwant %+v", rows, want)
	}
	if !rows["m1"].saysUnchanged() || rows["m3"].saysUnchanged() || rows["m4"].saysUnchanged() {
		t.Errorf("saysUnchanged: m1 %v m3 %v m4 %v", rows["m1"].saysUnchanged(), rows["m3"].saysUnchanged(), rows["m4"].saysUnchanged())
	}

	total, steps, ok := parseTook(sampleApplyOut)
	if !ok || total != 62300*time.Millisecond || len(steps) != 11 || steps[0] != (stepTime{"connect", 200 * time.Millisecond}) || steps[10] != (stepTime{"kubeconfig", 10 * time.Millisecond}) {
		t.Errorf("parseTook: %v %v %v", total, steps, ok)
	}
	if _, _, ok := parseTook("[init] m1: done\n"); ok {
		t.Error("parseTook without a Took line: ok")
	}

	acts := hostPrepareActions(sampleApplyOut)
	if len(acts) != 1 || len(acts["m3"]) != 2 || !strings.HasPrefix(acts["m3"][0], "[prepare] Installed") {
		t.Errorf("hostPrepareActions: %q", acts)
	}
	up := uploads(sampleApplyOut)
	if len(up) != 1 || up["m3"]["kubeboot"] != 65536000 || up["m3"]["bundle"] != 315831091 {
		t.Errorf("uploads: %v", up)
	}
	if got := hostLines(sampleApplyOut, "join", "m2"); len(got) != 1 || got[0] != "already a Ready Node: nothing to do" {
		t.Errorf("hostLines join m2: %q", got)
	}
	if got := hostLines(sampleApplyOut, "", "m3"); len(got) != 5 {
		t.Errorf("hostLines m3: %q", got)
	}
	if p, h, msg, ok := applyLine("[wait] 2/3 Nodes Ready"); !ok || p != "wait" || h != "" || msg != "2/3 Nodes Ready" {
		t.Errorf("applyLine without host: %q %q %q %v", p, h, msg, ok)
	}
	if allReadyLine("[wait] 2/3 Nodes Ready") || !allReadyLine("[wait] 3/3 Nodes Ready") {
		t.Error("allReadyLine")
	}
}

func TestKnownHostsHas(t *testing.T) {
	kh := "10.251.0.11 ssh-ed25519 AAAA1\n10.251.0.13 ssh-ed25519 AAAA3\n[10.251.0.14]:22,m4 ssh-ed25519 AAAA4\n@revoked 10.251.0.12 ssh-ed25519 AAAA2\n"
	for _, tc := range []struct {
		host, key string
		want      bool
	}{
		{"10.251.0.13", "ssh-ed25519 AAAA3", true},
		{"10.251.0.13", "ssh-ed25519 AAAA1", false},
		{"10.251.0.14", "ssh-ed25519 AAAA4", true},
		{"10.251.0.12", "ssh-ed25519 AAAA2", false},
		{"10.251.0.15", "ssh-ed25519 AAAA3", false},
	} {
		if got := knownHostsHas(kh, tc.host, tc.key); got != tc.want {
			t.Errorf("knownHostsHas(%s, %s) = %v", tc.host, tc.key, got)
		}
	}
	// A proxy in front of m2's sshd: its key pinned for the proxy's port only.
	kh += knownHostsName("127.0.0.1", 40123) + " ssh-ed25519 AAAA2\n"
	if !knownHostsHasPort(kh, "127.0.0.1", 40123, "ssh-ed25519 AAAA2") || knownHostsHas(kh, "127.0.0.1", "ssh-ed25519 AAAA2") ||
		knownHostsHasPort(kh, "127.0.0.1", 40124, "ssh-ed25519 AAAA2") || knownHostsName("10.0.0.1", 22) != "10.0.0.1" {
		t.Errorf("knownHostsHasPort / knownHostsName with a port: %q", kh)
	}
}

// What apply printed when m2's connection was cut during prepare (the
// shape of cluster.applier.stop's lines).
const sampleFailedOut = `[connect] 2 hosts connected
[facts] m1: x86_64, new
[upload] m2: bundle (301.2 MiB) to /var/lib/kubeboot/bundles/0123456789abcdef.tar
[preflight] m1: kubeboot preflight --config - --before-prepare --control-plane
[prepare] m2: kubeboot init phase prepare --config - --bundle /var/lib/kubeboot/bundles/0123456789abcdef.tar
[prepare] m2: [init] Running phase prepare on local (node "m2", 10.251.0.12)
[prepare] failed on 1 of 2 hosts (m2); nothing after prepare ran:
[prepare] m2: wait: remote command exited without exit status or exit signal
[prepare] Fix those hosts and run kubeboot apply again: it resumes, and hosts already done are left as they are

HOST  ROLES                   RESULT       TIME   CALLS  WHAT CHANGED
m1    control-plane           stopped      18.0s     17  kubeboot uploaded, bundle uploaded, prepare: 25 changes
m2    worker                  failed       17.1s     15  kubeboot uploaded, bundle uploaded

Took 31.4s: connect 300ms, facts 100ms, upload 9.1s, preflight 200ms, prepare 21.7s
`

func TestApplyFailureParsers(t *testing.T) {
	step, hosts, ok := parseFailure(sampleFailedOut)
	if !ok || step != "prepare" || !reflect.DeepEqual(hosts, []string{"m2"}) {
		t.Errorf("parseFailure: %q %q %v", step, hosts, ok)
	}
	if _, _, ok := parseFailure(sampleApplyOut); ok {
		t.Error("parseFailure on a successful run: ok")
	}
	two := "[join] failed on 2 of 3 hosts (m2, m3); nothing after join ran:\n"
	if step, hosts, ok := parseFailure(two); !ok || step != "join" || !reflect.DeepEqual(hosts, []string{"m2", "m3"}) {
		t.Errorf("parseFailure, two hosts: %q %q %v", step, hosts, ok)
	}
	if got, want := phasesPrinted(sampleFailedOut), []string{"connect", "facts", "upload", "preflight", "prepare"}; !reflect.DeepEqual(got, want) {
		t.Errorf("phasesPrinted: %q, want %q", got, want)
	}
	_, steps, ok := parseTook(sampleFailedOut)
	if !ok || len(steps) != 5 || steps[4].Name != "prepare" {
		t.Errorf("parseTook on a failed run: %v %v", steps, ok)
	}
	rows := parseSummary(sampleFailedOut)
	if rows["m2"].Result != "failed" || rows["m1"].Result != "stopped" {
		t.Errorf("parseSummary on a failed run: %+v", rows)
	}
	if !lineMatch("[prepare] m2: [init] Running phase prepare", "[prepare] m2", "") ||
		lineMatch("[prepare] m21: x", "[prepare] m2:", "") ||
		!lineMatch("[join] m3: [kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap", "[join] m3:", "Waiting for the kubelet") ||
		lineMatch("[join] m3: [kubelet-start] Starting the kubelet", "[join] m3:", "Waiting for the kubelet") {
		t.Error("lineMatch")
	}
	if formatBytes(512<<10) != "512.0 KiB" || formatBytes(3<<20+1<<19) != "3.5 MiB" {
		t.Errorf("formatBytes: %s %s", formatBytes(512<<10), formatBytes(3<<20+1<<19))
	}
}

func TestHostTimes(t *testing.T) {
	out := `[prepare] m1: [init] Done in 15.7s: prepare 15.7s
[prepare] m2: [prepare] Done in a moment
[init] m1: [init] Done in 13.9s: preflight 380ms, certs 149ms
[join] m2: [join] Done in 3.1s: discovery 39ms, preflight 151ms, kubelet-start 874ms, kubelet-wait-bootstrap 2s
[join] m3: already a Ready Node: nothing to do
`
	want := []hostTime{{"prepare", "m1", 15700 * time.Millisecond}, {"init", "m1", 13900 * time.Millisecond}, {"join", "m2", 3100 * time.Millisecond}}
	if got := hostTimes(out); !reflect.DeepEqual(got, want) {
		t.Errorf("hostTimes: %v, want %v", got, want)
	}
}

func TestWorkerPartProblems(t *testing.T) {
	good := `[bundle] the workers get the worker part of the bundle (401.2 MiB of 544.0 MiB, no control-plane images): cut in 3.1s to /root/.cache/kubeboot/bundles/0123456789abcdef-worker.tar
[upload] m1: bundle (544.0 MiB) to /var/lib/kubeboot/bundles/0123456789abcdef.tar
[upload] m2: bundle's worker part (401.2 MiB) to /var/lib/kubeboot/bundles/fedcba9876543210.tar
[prepare] m1: [prepare] Using bundle /var/lib/kubeboot/bundles/0123456789abcdef.tar: Kubernetes v1.34.3 for amd64, 6 binaries, 6 CNI plugins, 9 images
[prepare] m2: [prepare] Using bundle /var/lib/kubeboot/bundles/fedcba9876543210.tar: Kubernetes v1.34.3 for amd64, the worker part, 6 binaries, 6 CNI plugins, 5 images
`
	if p := workerPartProblems(good, []string{"m1"}, []string{"m2"}); len(p) > 0 {
		t.Errorf("good output: %v", p)
	}
	bad := strings.NewReplacer("bundle's worker part (401.2", "bundle (544.0", ", the worker part,", ",").Replace(good)
	if p := workerPartProblems(bad, []string{"m1"}, []string{"m2"}); len(p) != 2 {
		t.Errorf("the whole bundle on a worker: %v, want 2 problems", p)
	}
	if p := workerPartProblems(good, []string{"m2"}, []string{"m1"}); len(p) != 3 {
		t.Errorf("roles swapped: %v, want 3 problems", p)
	}
}
