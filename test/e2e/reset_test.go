//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// takeSnapshot records a machine's state (snapshotScript), keeping the raw
// output in the logs.
func takeMachineState(ctx context.Context, n *node, logDir, name string) (machineState, error) {
	out, err := n.run(ctx, "", "", "sh", "-c", snapshotScript)
	if err != nil {
		return nil, err
	}
	_ = os.WriteFile(filepath.Join(logDir, n.m.Name+"-snapshot-"+name+".txt"), []byte(out), 0o644)
	return parseMachine(out), nil
}

// resetNoise is what changes on a machine between two snapshots whatever
// kubeboot does, each with the reason.
var resetNoise = []expected{
	{"files", regexp.MustCompile(`^f \d+ /run/kubeboot\.lock$`), "the node lock init, join and reset take (/run: gone at boot)"},
	{"files", regexp.MustCompile(` /run/systemd/`), "systemd's runtime state (units run, sessions, journal streams)"},
	{"files", regexp.MustCompile(` /run/(user|log/journal|credentials|dbus)(/|$)`), "systemd's and dbus's runtime state (user sessions of the SSH logins, the journal)"},
	{"files", regexp.MustCompile(` /var/lib/systemd/(timers|catalog|random-seed|linger|deb-systemd)`), "systemd's state (timer stamps, the random seed)"},
	{"files", regexp.MustCompile(` /run/(utmp|sshd\.pid|motd\.dynamic)$`), "login records of the SSH sessions"},
	{"etc", regexp.MustCompile(`^/etc/ld\.so\.cache `), "ld.so's cache"},
	{"files", regexp.MustCompile(`^f \d+ /run/xtables\.lock$`), "iptables' lock, made by the first iptables run (/run: gone at boot)"},
	// iptables-nft makes a table on first use and has no command to
	// remove one: after reset the tables kube-proxy and flannel used are
	// there, empty (built-in chains, ACCEPT, no rule), as if absent.
	{"iptables", regexp.MustCompile(`^ip6?tables-save (\*(filter|mangle|nat|raw)|:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT|COMMIT)$`), "empty iptables tables (built-in chains with ACCEPT policies, no rule): iptables-nft cannot delete a table"},
}

// prepareRecord is the part of prepare's record the reset scenario reads.
type prepareRecord struct {
	Created, Replaced, Dirs, Units []string
	FstabSwap                      bool
}

// preparesExpected explains, on a machine reset without --all, what
// prepare installed and reset leaves: its record's files and directories,
// the units it enabled, containerd's state and kubeboot's own directory.
func preparesExpected(ctx context.Context, n *node) ([]expected, error) {
	b, err := n.h.ReadFile(ctx, "/var/lib/kubeboot/prepare-record.json")
	if err != nil {
		return nil, fmt.Errorf("prepare's record on %s: %w", n.m.Name, err)
	}
	var r prepareRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	const why = "prepare's, as its record lists (kept without --all)"
	paths := append(append(append([]string(nil), r.Created...), r.Replaced...), r.Dirs...)
	for _, u := range r.Units {
		paths = append(paths, "/etc/systemd/system/multi-user.target.wants/"+u+".service")
	}
	if r.FstabSwap {
		paths = append(paths, "/etc/fstab")
	}
	out := pathsExpected(why, paths...)
	out = append(out, pathsExpected("containerd's state (prepare installed containerd; kept without --all)", "/var/lib/containerd", "/run/containerd", "/opt/containerd")...)
	out = append(out, pathsExpected("kubeboot's state: prepare's record and backups (kept without --all)", "/var/lib/kubeboot")...)
	out = append(out, pathsExpected("the empty CNI configuration directory: the running containerd watches it (kept without --all)", "/etc/cni")...)
	return out, nil
}

// checkReset is issue 12's reset scenario on the two-node cluster: reset
// the worker, then the control plane with --all, and compare each
// machine with its snapshot from before init; then reset the worker with
// --all too, and init the reset control plane again.
func checkReset(ctx context.Context, t *testing.T, cp, worker *node, before map[*node]machineState, initCmd []string, kubectlBin, logDir string, st *stages) {
	compare := func(n *node, name string, known []expected) {
		after, err := takeMachineState(ctx, n, logDir, name)
		if err != nil {
			t.Errorf("FAIL snapshot %s: %v", n.m.Name, err)
			return
		}
		diffs := diffMachine(before[n], after)
		var lines []string
		for _, d := range diffs {
			lines = append(lines, d.String())
		}
		_ = os.WriteFile(filepath.Join(logDir, n.m.Name+"-snapshot-diff-"+name+".txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		by, rest := explain(diffs, known)
		var reasons []string
		for r, c := range by {
			reasons = append(reasons, fmt.Sprintf("%d: %s", c, r))
		}
		sort.Strings(reasons)
		st.note("reset %s (%s): %d lines differ from before init; explained: %s; unexplained: %d", n.m.Name, name, len(diffs), strings.Join(reasons, "; "), len(rest))
		if len(rest) > 0 {
			var s []string
			for _, d := range rest {
				s = append(s, d.String())
			}
			t.Errorf("FAIL reset %s (%s) left %d unexplained differences from before init:\n  %s", n.m.Name, name, len(rest), strings.Join(s, "\n  "))
		} else {
			t.Logf("PASS reset %s (%s): %d differences from before init, all explained (%s)", n.m.Name, name, len(diffs), strings.Join(reasons, "; "))
		}
	}
	reset := func(n *node, log string, args ...string) bool {
		var out string
		err := st.run(fmt.Sprintf("kubeboot reset %s (%s)", strings.Join(args, " "), n.m.Name), func() (err error) {
			out, err = n.run(ctx, logDir, log, append([]string{kubebootPath, "reset", "--force"}, args...)...)
			return err
		})
		if err != nil {
			t.Errorf("FAIL kubeboot reset %s on %s: %v", strings.Join(args, " "), n.m.Name, err)
			return false
		}
		if !strings.Contains(out, "[reset] Removed:") || !strings.Contains(out, "[reset] Left:") {
			t.Errorf("FAIL reset on %s does not say what it removed and left:\n%s", n.m.Name, tailString(out, 30))
		}
		return true
	}

	// 1. The worker, without --all: what prepare installed stays.
	prep, err := preparesExpected(ctx, worker)
	if err != nil {
		t.Errorf("FAIL %v", err)
		return
	}
	if !reset(worker, "reset") {
		return
	}
	compare(worker, "reset", append(append([]expected(nil), resetNoise...), prep...))

	// 2. The control plane (the last etcd member), with --all.
	if !reset(cp, "reset-all", "--all") {
		return
	}
	// The account files themselves are back as they were (userdel); their
	// backups (passwd- etc.) are the versions with the user etcd.
	accounts := expected{"etc", regexp.MustCompile(`^/etc/(passwd|group|shadow|gshadow)- `), "the backups useradd and userdel keep of the account files: init made the user etcd for etcd's data directory (CIS 1.1.12), reset --all removed it"}
	compare(cp, "reset --all", append(append([]expected(nil), resetNoise...), accounts))

	// 3. The worker again, --all after a reset.
	if reset(worker, "reset-all", "--all") {
		compare(worker, "reset, then reset --all", resetNoise)
	}

	// 4. init again on the reset control plane works.
	initStart := time.Now()
	if err := st.run("kubeboot init again after reset --all (m1)", func() error {
		_, err := cp.run(ctx, logDir, "init-after-reset", initCmd...)
		return err
	}); err != nil {
		t.Errorf("FAIL init after reset --all: %v", err)
		return
	}
	data, err := cp.h.ReadFile(ctx, "/etc/kubernetes/admin.conf")
	if err != nil {
		t.Errorf("FAIL %v", err)
		return
	}
	conf := filepath.Join(logDir, "admin-after-reset.conf")
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k := &kubectl{bin: kubectlBin, kubeconfig: conf}
	err = eventually(ctx, 4*time.Minute, time.Second, func() error {
		var l corev1.NodeList
		if err := k.get(ctx, &l, "nodes"); err != nil {
			return err
		}
		if len(l.Items) != 1 || !nodeReady(&l.Items[0]) {
			return fmt.Errorf("nodes: %d, want %s alone and Ready", len(l.Items), cp.m.Name)
		}
		return nil
	})
	st.note("init after reset --all -> Node Ready: %s", time.Since(initStart).Round(100*time.Millisecond))
	if err != nil {
		t.Errorf("FAIL init after reset --all: %v", err)
		return
	}
	t.Logf("PASS init after reset --all: a new cluster, %s Ready in %s", cp.m.Name, time.Since(initStart).Round(time.Second))
}

// checkNodeRemoval is issue 12's node removal on the apply cluster:
// `reset -f --host` drains, resets and deletes one worker; apply joins it
// back; once it is out of the file, apply lists it, and apply --prune
// removes it.
func checkNodeRemoval(ctx context.Context, t *testing.T, a *applyCmd, k *kubectl, n *node, st *stages, rejoin func() *applyRun, dropFromFile func()) {
	name := n.m.Name
	gone := func(what string) bool {
		err := eventually(ctx, 30*time.Second, time.Second, func() error {
			var l corev1.NodeList
			if err := k.get(ctx, &l, "nodes"); err != nil {
				return err
			}
			for _, x := range l.Items {
				if x.Name == name {
					return fmt.Errorf("Node %s is still there", name)
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("FAIL %s: %v", what, err)
			return false
		}
		clean := `test ! -e /etc/kubernetes/kubelet.conf && test ! -e /var/lib/kubelet && ! ip link show flannel.1 >/dev/null 2>&1 && ! ip link show cni0 >/dev/null 2>&1 && ! iptables-save | grep -q -e KUBE- -e FLANNEL- && test -z "$(crictl pods -q 2>/dev/null)"`
		if _, err := n.run(ctx, "", "", "sh", "-c", clean); err != nil {
			t.Errorf("FAIL %s: %s is not clean (kubelet.conf, /var/lib/kubelet, flannel.1, cni0, KUBE-/FLANNEL- chains or pods are left): %v", what, name, err)
			return false
		}
		t.Logf("PASS %s: Node %s gone, the host clean (no kubelet files, CNI interfaces, kube-proxy or flannel chains, pods)", what, name)
		return true
	}

	// 1. reset -f --host.
	start := time.Now()
	out, err := a.command(ctx, "reset", "-f", a.file, "--host", name, "--force").CombinedOutput()
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(a.logDir, "reset-host.out"), out, 0o644)
	st.note("reset -f --host %s (drain, reset over SSH, delete): %s", name, took.Round(100*time.Millisecond))
	if err != nil || !strings.Contains(string(out), name+": [drain] Deleted Node "+name) {
		t.Errorf("FAIL reset -f --host %s: %v\n%s", name, err, tailString(string(out), 30))
		return
	}
	if !gone("reset -f --host " + name) {
		return
	}

	// 2. apply joins it back.
	start = time.Now()
	if r := rejoin(); r.err != nil {
		t.Errorf("FAIL apply after reset --host: %v\n%s", r.err, r.tail(30))
		return
	}
	if err := eventually(ctx, 3*time.Minute, time.Second, func() error {
		var l corev1.NodeList
		if err := k.get(ctx, &l, "nodes"); err != nil {
			return err
		}
		for _, x := range l.Items {
			if x.Name == name && nodeReady(&x) {
				if x.Labels["kubeboot.io/managed"] != "true" {
					return fmt.Errorf("Node %s lacks kubeboot.io/managed=true: %v", name, x.Labels)
				}
				return nil
			}
		}
		return fmt.Errorf("Node %s is not Ready", name)
	}); err != nil {
		t.Errorf("FAIL apply after reset --host: %v", err)
		return
	}
	st.note("apply after reset --host -> %s Ready again: %s", name, time.Since(start).Round(100*time.Millisecond))
	t.Logf("PASS apply joined %s back after reset --host (Ready, labelled kubeboot.io/managed)", name)

	// 3. Out of the file: apply lists it and leaves it; --prune removes it.
	dropFromFile()
	r := a.run(ctx, "apply-prune-list", nil)
	if r.err != nil || !strings.Contains(r.out(), "[prune] "+name+": Node "+name) || !strings.Contains(r.out(), "left alone; apply --prune drains, resets and deletes it") {
		t.Errorf("FAIL apply without --prune does not list %s: %v\n%s", name, r.err, r.tail(20))
	} else {
		t.Logf("PASS apply without --prune lists %s and leaves it alone", name)
	}
	r = a.run(ctx, "apply-prune", nil, "--prune")
	st.note("apply --prune (%s drained, reset, deleted): %s", name, r.took.Round(100*time.Millisecond))
	if r.err != nil || !strings.Contains(r.out(), "[prune] "+name+": drained, reset and deleted") {
		t.Errorf("FAIL apply --prune: %v\n%s", r.err, r.tail(30))
		return
	}
	gone("apply --prune")
}
