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
	compare(cp, "reset --all", resetNoise)

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
