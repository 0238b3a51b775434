//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/test/e2e/components"
	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
)

// The sudo user of m2 and the variable apply reads its password from.
const (
	sudoUser        = "ops"
	sudoPasswordEnv = "M2_SUDO_PASSWORD"
)

// TestApplyCluster is `kubeboot apply`'s scenario, run as a user runs it
// (bin/kubeboot as a subprocess, one cluster file, the sudo password in
// the environment) on four machines: m1 the control plane (root), m2 a
// worker reached as a sudo user who needs a password, m3 a worker that
// accepts SSH only from the bastion m4 (not a node).
//
//  1. Machine setup over SSH (the ops sudoer on m2; sshd on m3 bastion-only),
//     each checked.
//  2. apply with m1 and m2, SIGKILLed at its first "[join] m2" line; apply
//     again resumes and succeeds.
//  3. m3 added (through the bastion): it joins, m1 and m2 unchanged (files,
//     pods).
//  4. TestTwoNodeCluster's checks on the 3 nodes, with the kubeconfig apply
//     wrote.
//  5. apply again: nothing changes on any host, and apply says so per host.
func TestApplyCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the e2e scenario needs root (machines, bridge, cgroups): run `make e2e` as root")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	kubeboot := os.Getenv("KUBEBOOT_BIN")
	if kubeboot == "" {
		kubeboot = filepath.Join(repo, "bin", "kubeboot")
	}
	if _, err := os.Stat(kubeboot); err != nil {
		t.Fatalf("kubeboot binary: %v (make build, or set KUBEBOOT_BIN)", err)
	}
	// Beside TestTwoNodeCluster's logs, in a directory of its own.
	logDir := os.Getenv("KUBEBOOT_E2E_LOGS")
	if logDir != "" {
		logDir = filepath.Join(logDir, "apply")
	} else if logDir, err = os.MkdirTemp("", "kubeboot-e2e-apply-logs-"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs: %s", logDir)
	deadline := time.Now().Add(50 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-3*time.Minute).Before(deadline) {
		deadline = d.Add(-3 * time.Minute) // time for the cleanup and the logs
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	st := newStages()
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Logf(format, args...)
	}
	t.Cleanup(func() {
		t.Log("\n" + st.report())
		_ = st.write(filepath.Join(logDir, "timings.txt"))
	})

	// What the user has on their machine: the bundle, the kubeboot binary,
	// a cluster file, the key and known_hosts it names.
	b, err := buildAll(ctx, st, logf, repo, kubeboot, t.TempDir(), logDir)
	if err != nil {
		t.Fatal(err)
	}
	debs, err := (&components.Builder{Repo: repo, Cache: nspawn.CacheDir(), Logf: logf}).Debs(ctx, "sudo")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	clusterFile := filepath.Join(work, "cluster.yaml")
	kubeconfig := filepath.Join(work, "admin.conf")
	applyLog := filepath.Join(work, "kubeboot-apply.log")
	knownHosts := filepath.Join(work, "known_hosts")
	t.Cleanup(func() {
		for _, f := range []string{clusterFile, applyLog, kubeconfig} {
			saveCopy(filepath.Join(logDir, filepath.Base(f)), f)
		}
	})

	// 1. Four machines; m4 is the bastion only.
	var c *nspawn.Cluster
	if err := st.run("machine boot (4, parallel, to SSH login)", func() (err error) {
		c, err = nspawn.Boot(ctx, nspawn.Config{N: 4, Rootfs: b.rootfs, LogDir: logDir, Logf: logf})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Down(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// The harness's own root connections (m3's is opened before its sshd
	// admits only the bastion, and stays open).
	all := make([]*node, len(c.Machines))
	for i, m := range c.Machines {
		h, err := c.Dial(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		all[i] = &node{m: m, h: h}
	}
	nodes, bastion := all[:3], all[3]
	m1, m2, m3 := nodes[0], nodes[1], nodes[2]
	t.Cleanup(func() {
		if t.Failed() {
			collectLogs(logDir, nodes, b.kubectl, kubeconfig)
			sshJournals(logDir, all[1:])
		}
	})

	sudoPassword := "kb-e2e-" + c.ID[len(c.ID)-8:]
	if err := st.run("machine setup (ops sudoer on m2, m3 via m4 only)", func() error {
		pub, err := os.ReadFile(c.KeyFile + ".pub")
		if err != nil {
			return err
		}
		if err := copyFile(c.KnownHostsFile, knownHosts, 0o644); err != nil {
			return err
		}
		err = parallel(all, func(n *node) error {
			switch n {
			case m2:
				return setupSudoUser(ctx, n, debs["sudo"].File, string(pub), sudoUser, sudoPassword)
			case m3:
				return restrictSSHToBastion(ctx, n, bastion.m.IP.String())
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := verifySudoUser(ctx, c, m2.m, sudoUser, sudoPassword); err != nil {
			return fmt.Errorf("m2: %w", err)
		}
		t.Logf("PASS m2: %s logs in with the key; sudo -S -k works with the password on stdin, fails without it, with a wrong one and with -n", sudoUser)
		if err := verifyBastionOnly(ctx, c, m3.m, bastion.m, knownHosts); err != nil {
			return fmt.Errorf("m3: %w", err)
		}
		t.Logf("PASS m3: a direct login from the host is refused, one through m4 (%s) works; %s pins m3's and m4's keys", bastion.m.IP, filepath.Base(knownHosts))
		// The test application's image, loaded on each node as a user
		// loads their own (checkCluster imports it).
		return parallel(nodes, func(n *node) error { return n.h.Upload(ctx, b.testImages, appImagePath, 0o644) })
	}); err != nil {
		t.Fatal(err)
	}

	inv := applyInventory{
		KubernetesVersion: components.KubernetesVersion,
		Bundle:            b.bundle,
		KeyFile:           c.KeyFile,
		KnownHostsFile:    knownHosts,
		Hosts: []applyHost{
			{Name: m1.m.Name, Address: m1.m.IP.String(), Roles: []string{"control-plane"}},
			{Name: m2.m.Name, Address: m2.m.IP.String(), Roles: []string{"worker"}, User: sudoUser, SudoPasswordEnv: sudoPasswordEnv},
		},
	}
	writeInventory := func() {
		if err := os.WriteFile(clusterFile, []byte(inv.YAML()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeInventory()
	apply := &applyCmd{
		kubeboot: kubeboot, file: clusterFile, kubeconfig: kubeconfig, logFile: applyLog,
		env: []string{sudoPasswordEnv + "=" + sudoPassword}, logDir: logDir, logf: logf,
	}
	k := &kubectl{bin: b.kubectl, kubeconfig: kubeconfig}
	var runs []*applyRun
	runApply := func(stage, name, killAt string, killNth int) *applyRun {
		var r *applyRun
		_ = st.run(stage, func() error {
			r = apply.run(ctx, name, killAt, killNth)
			if r.killed {
				return nil // as planned
			}
			return r.err
		})
		runs = append(runs, r)
		noteRun(st, r)
		return r
	}

	// 2. m1 and m2; killed in the middle of m2's join, then resumed. The
	// kill falls on the second "[join] m2" line: the first is apply naming
	// the command it starts, the second already the join's own output, so
	// m2's join has begun (its kubeboot dies at its next write to the
	// closed connection, or finishes alone).
	joinM2 := "[join] " + m2.m.Name
	r1 := runApply("apply #1 (m1, m2; SIGKILL in m2's join)", "apply-1", joinM2, 2)
	if !r1.killed {
		if r1.err == nil {
			r1.err = fmt.Errorf("exit 0; the last lines:\n%s", r1.tail(30))
		}
		t.Fatalf("FAIL apply #1 never printed two lines starting %q: %v", joinM2, r1.err)
	}
	if at, ok := r1.firstLine(func(l string) bool { return strings.HasPrefix(l, joinM2) }); ok {
		st.note("apply-1: start -> first %q line: %s", joinM2, at.Round(100*time.Millisecond))
	}
	t.Logf("PASS apply #1 reached m2's join and was SIGKILLed in it after %.1fs", r1.took.Seconds())
	r2 := runApply("apply #2 (resume: the same file)", "apply-2", "", 0)
	if r2.err != nil {
		t.Fatalf("FAIL apply #2 (resume after SIGKILL): %v", r2.err)
	}
	t.Logf("PASS apply #2 resumed and succeeded")
	for _, h := range []string{m1.m.Name, m2.m.Name} {
		t.Logf("apply #2 on %s: upload %q, join %q", h, hostLines(r2.out(), "upload", h), hostLines(r2.out(), "join", h))
	}
	if err := st.run("apply #1 start -> m1, m2 Ready (kubectl, apply's kubeconfig)", func() error {
		return waitNodesReady(ctx, k, 2*time.Minute, m1.m.Name, m2.m.Name)
	}); err != nil {
		t.Fatalf("FAIL after apply #2: %v", err)
	}
	st.note("apply #1 start -> m1, m2 Ready (kill and resume included): %s", time.Since(r1.start).Round(100*time.Millisecond))
	checkKubeconfig(t, kubeconfig, m1.m.IP.String()+":6443")
	if err := st.run("-> all kube-system, kube-flannel pods Ready", func() error {
		return waitSystemPodsReady(ctx, k, 5*time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	st.note("apply #1 start -> all system pods Ready: %s", time.Since(r1.start).Round(100*time.Millisecond))

	// 3. m3 joins through the bastion; m1 and m2 are left alone.
	before, err := takeSnapshot(ctx, k, nodes[:2])
	if err != nil {
		t.Fatal(err)
	}
	inv.Hosts = append(inv.Hosts, applyHost{Name: m3.m.Name, Address: m3.m.IP.String(), Roles: []string{"worker"}, Bastion: bastion.m.IP.String()})
	writeInventory()
	r3 := runApply("apply #3 (+ m3 through the bastion m4)", "apply-3", "", 0)
	if r3.err != nil {
		t.Fatalf("FAIL apply #3 (m3 added): %v", r3.err)
	}
	if j := hostLines(r3.out(), "join", m3.m.Name); len(j) == 0 {
		t.Errorf("FAIL apply #3 printed no [join] line for m3")
	}
	if err := waitNodesReady(ctx, k, 2*time.Minute, m1.m.Name, m2.m.Name, m3.m.Name); err != nil {
		t.Fatalf("FAIL after apply #3: %v", err)
	}
	t.Logf("PASS apply #3: m3 joined through m4 and is Ready")
	checkUnchanged(ctx, t, k, "apply #3 (m3 added)", before, nodes[:2])

	// 4. The cluster checks on three nodes.
	if err := st.run("-> all system pods Ready (3 nodes)", func() error {
		return waitSystemPodsReady(ctx, k, 5*time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	_ = st.run("checks (3 nodes)", func() error {
		checkCluster(ctx, t, k, nodes, logDir)
		return nil
	})
	if t.Failed() {
		return
	}
	for _, m := range c.Machines {
		if mem, err := m.Memory(); err == nil {
			st.note("memory %s: %s", m.Name, mem)
		}
	}

	// 5. Once more: nothing to do anywhere, and apply says so.
	if before, err = takeSnapshot(ctx, k, nodes); err != nil {
		t.Fatal(err)
	}
	r4 := runApply("apply #4 (converged: nothing to do)", "apply-4", "", 0)
	if r4.err != nil {
		t.Fatalf("FAIL apply #4 (converged cluster): %v", r4.err)
	}
	checkNothingDone(t, r4, nodeNames(nodes))
	checkUnchanged(ctx, t, k, "apply #4 (converged)", before, nodes)

	// The secrets apply handled appear in none of its outputs.
	secrets := map[string]string{"m2's sudo password": sudoPassword}
	if toks, err := bootstrapTokens(ctx, k); err == nil {
		for _, tok := range toks {
			id, sec, _ := strings.Cut(tok, ".")
			secrets["bootstrap token "+id+" (its secret part)"] = sec
		}
	} else {
		t.Logf("bootstrap tokens: %v", err)
	}
	files := []string{applyLog}
	for _, r := range runs {
		files = append(files, filepath.Join(logDir, r.name+".out"))
	}
	if l := leaks(secrets, files...); len(l) > 0 {
		t.Errorf("FAIL secrets in apply's output or log:\n  %s", strings.Join(l, "\n  "))
	} else {
		t.Logf("PASS apply's output (4 runs) and log hold none of %d secrets (sudo password, bootstrap tokens)", len(secrets))
	}
}

// noteRun adds a run's timings to the report: each step as apply's summary
// gives it, when every Node was Ready, and what it uploaded.
func noteRun(st *stages, r *applyRun) {
	if r == nil {
		return
	}
	var parts []string
	if total, steps, ok := parseTook(r.out()); ok {
		for _, s := range steps {
			if s.Took >= 50*time.Millisecond {
				parts = append(parts, fmt.Sprintf("%s %s", s.Name, s.Took.Round(100*time.Millisecond)))
			}
		}
		st.note("%s: apply's steps (total %s): %s", r.name, total.Round(100*time.Millisecond), strings.Join(parts, ", "))
	} else if r.killed {
		st.note("%s: killed after %s", r.name, r.took.Round(100*time.Millisecond))
	}
	if at, ok := r.firstLine(allReadyLine); ok {
		st.note("%s: start -> \"[wait] N/N Nodes Ready\": %s", r.name, at.Round(100*time.Millisecond))
	}
	up := uploads(r.out())
	var hosts []string
	for h := range up {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var total int64
	var per []string
	for _, h := range hosts {
		var items []string
		var sum int64
		for what, n := range up[h] {
			items = append(items, what)
			sum += n
		}
		sort.Strings(items)
		total += sum
		per = append(per, fmt.Sprintf("%s %.1f MiB (%s)", h, float64(sum)/(1<<20), strings.Join(items, "+")))
	}
	if total > 0 {
		st.note("%s: uploaded %.1f MiB: %s", r.name, float64(total)/(1<<20), strings.Join(per, ", "))
	} else if !r.killed || len(hosts) == 0 {
		st.note("%s: uploaded nothing", r.name)
	}
}

var serverRE = regexp.MustCompile(`(?m)^\s*server:\s*(\S+)\s*$`)

// checkKubeconfig checks the kubeconfig apply wrote: private, and naming
// the API server at endpoint (the control plane's address, reachable from
// this host).
func checkKubeconfig(t *testing.T, path, endpoint string) {
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("FAIL --kubeconfig-out: %v", err)
		return
	}
	b, _ := os.ReadFile(path)
	m := serverRE.FindStringSubmatch(string(b))
	switch {
	case fi.Mode().Perm() != 0o600:
		t.Errorf("FAIL %s has mode %04o, want 0600", path, fi.Mode().Perm())
	case m == nil || m[1] != "https://"+endpoint:
		t.Errorf("FAIL %s: server %v, want https://%s", path, m, endpoint)
	default:
		t.Logf("PASS apply wrote the kubeconfig (0600, server %s); kubectl uses it", m[1])
	}
}

// checkUnchanged waits for kubelet to act on anything that changed, then
// compares nodes' files and pods with before.
func checkUnchanged(ctx context.Context, t *testing.T, k *kubectl, what string, before *clusterSnapshot, nodes []*node) {
	time.Sleep(15 * time.Second)
	after, err := takeSnapshot(ctx, k, nodes)
	if err != nil {
		t.Errorf("FAIL %s: snapshot: %v", what, err)
		return
	}
	names := nodeNames(nodes)
	files, pods, nFiles, nPods := diffSnapshots(before, after, names...)
	if len(files) > 0 {
		t.Errorf("FAIL %s changed files:\n  %s", what, strings.Join(files, "\n  "))
	} else {
		t.Logf("PASS %s: %d files on %s (kubeboot's, the binaries, units, and apply's copies) unchanged (content and mtime)", what, nFiles, strings.Join(names, ", "))
	}
	if len(pods) > 0 {
		t.Errorf("FAIL %s changed pods:\n  %s", what, strings.Join(pods, "\n  "))
	} else {
		t.Logf("PASS %s: %d pods on %s unchanged (UIDs, container IDs, restart counts)", what, nPods, strings.Join(names, ", "))
	}
}

// checkNothingDone checks what apply said on a converged cluster: success,
// every host's summary row saying nothing changed, no upload, no prepare
// action, no join.
func checkNothingDone(t *testing.T, r *applyRun, hosts []string) {
	out := r.out()
	rows := parseSummary(out)
	var bad []string
	for _, h := range hosts {
		row, ok := rows[h]
		switch {
		case !ok:
			bad = append(bad, h+": no row in the summary")
		case !row.saysUnchanged():
			bad = append(bad, fmt.Sprintf("%s: summary says %q, %q", h, row.Result, row.Changed))
		}
		if up := uploads(out)[h]; len(up) > 0 {
			bad = append(bad, fmt.Sprintf("%s: uploaded %v", h, up))
		}
		for _, l := range hostLines(out, "join", h) {
			if !strings.Contains(l, "nothing to do") && !strings.Contains(l, "already") {
				bad = append(bad, fmt.Sprintf("%s: [join] %s", h, l))
				break
			}
		}
	}
	for h, acts := range hostPrepareActions(out) {
		bad = append(bad, fmt.Sprintf("%s: prepare acted: %s", h, strings.Join(acts, "; ")))
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("FAIL %s on the converged cluster did something:\n  %s\nthe summary:\n%s", r.name, strings.Join(bad, "\n  "), summaryText(out))
		return
	}
	t.Logf("PASS %s: every host's summary says nothing changed; no upload, prepare action or join", r.name)
}

// summaryText is the end of apply's output from the summary table on.
func summaryText(out string) string {
	if i := strings.LastIndex(out, "\nHOST "); i >= 0 {
		return out[i+1:]
	}
	return tailString(out, 15)
}
