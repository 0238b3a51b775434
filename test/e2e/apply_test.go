//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/test/e2e/components"
	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
	"github.com/kubeboot/kubeboot/transport"
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
//     each checked; toxiproxy (a process on 127.0.0.1) in front of m2's sshd,
//     which apply reaches only through it (address 127.0.0.1, the proxy's
//     port, internalAddress m2's IP; known_hosts pins m2's key there).
//  2. apply with m1 and m2: m2's SSH connection is cut (the proxy disabled)
//     in the middle of its prepare; apply fails naming m2, nothing after
//     prepare ran. Proxy back; apply again, SIGKILLed in m2's join; apply
//     again resumes and succeeds.
//  3. m3 added (through the bastion): m3 reboots in the middle of its join
//     (kubelet started, TLS bootstrap under way); apply fails naming m3.
//     Once m3 is back (containerd and kubelet enabled at boot, sshd still
//     bastion-only), apply again: m3 Ready, m1 and m2 unchanged (files, pods).
//  4. TestTwoNodeCluster's checks on the 3 nodes, with the kubeconfig apply
//     wrote.
//  5. apply again: nothing changes on any host, and apply says so per host.
//
// It measures the m1+m2 bring-up (faults included: every run's steps, the
// bytes each machine's link carried) and m3's addition.
func TestApplyCluster(t *testing.T) {
	sc := newScenario(t, "apply", "e2e", 50*time.Minute)
	repo, kubeboot, logDir, ctx, st, logf := sc.repo, sc.kubeboot, sc.logDir, sc.ctx, sc.st, sc.logf

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

	// toxiproxy in front of m2's sshd: apply reaches m2 only through it.
	const m2Proxy = "m2-ssh"
	var tp *toxiproxy
	var m2Port int
	if err := st.run("toxiproxy in front of m2's sshd", func() error {
		var err error
		if tp, err = startToxiproxy(ctx, repo, t.TempDir(), filepath.Join(logDir, "toxiproxy.log")); err != nil {
			return err
		}
		t.Cleanup(tp.stop)
		port, err := tp.addProxy(ctx, m2Proxy, m2.m.Addr())
		if err != nil {
			return err
		}
		if m2Port, err = strconv.Atoi(port); err != nil {
			return err
		}
		f, err := os.OpenFile(knownHosts, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "%s %s\n", knownHostsName("127.0.0.1", m2Port), m2.m.HostKey)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		// The harness logs in through it as apply will: strict known_hosts.
		cfg := c.SSHConfig(m2.m)
		cfg.Address, cfg.Port, cfg.KnownHostsFile = "127.0.0.1", m2Port, knownHosts
		h, err := transport.DialSSH(ctx, cfg)
		if err != nil {
			return fmt.Errorf("ssh to m2 through the proxy: %w", err)
		}
		defer h.Close()
		out, err := transport.Output(ctx, h, "hostname")
		if err != nil || out != m2.m.Name {
			return fmt.Errorf("hostname through the proxy: %q, %v", out, err)
		}
		t.Logf("PASS m2 through toxiproxy: 127.0.0.1:%d -> %s, its key pinned in %s as %s", m2Port, m2.m.Addr(), filepath.Base(knownHosts), knownHostsName("127.0.0.1", m2Port))
		return nil
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
			{Name: m2.m.Name, Address: "127.0.0.1", Port: m2Port, InternalAddress: m2.m.IP.String(), Roles: []string{"worker"}, User: sudoUser, SudoPasswordEnv: sudoPasswordEnv},
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
	// runApply runs apply once; wantFail: it is to fail (tr's fault).
	runApply := func(stage, name string, tr *trigger, wantFail bool) *applyRun {
		var r *applyRun
		_ = st.run(stage, func() error {
			r = apply.run(ctx, name, tr)
			switch {
			case r.killed:
				return nil // as planned
			case wantFail && r.err != nil:
				return nil
			case wantFail:
				return errors.New("exit 0")
			}
			return r.err
		})
		runs = append(runs, r)
		noteRun(st, r)
		return r
	}
	net := newNetMeter(c)

	// 2. m1 and m2. First m2's SSH connection is cut in the middle of its
	// prepare: the proxy is disabled at m2's third prepare line (apply's
	// command line, prepare's first, its second: m2's prepare is running),
	// which closes both sides of the connection at once.
	var cutErr error
	cut := &trigger{prefix: "[prepare] " + m2.m.Name + ":", nth: 3, do: func() {
		cutErr = tp.setEnabled(ctx, m2Proxy, false)
		logf("apply-1: m2's SSH connection cut (toxiproxy %s disabled): %v", m2Proxy, cutErr)
	}}
	// apply --dry-run on the new machines: every file each would get, and
	// nothing on them changes.
	dryRun := func(stage, name string) *applyRun {
		var r *applyRun
		_ = st.run(stage, func() error {
			r = apply.run(ctx, name, nil, "--dry-run")
			return r.err
		})
		runs = append(runs, r)
		return r
	}
	rd1 := dryRun("apply --dry-run (m1, m2 new)", "apply-dry-run-1")
	checkDryRunNew(ctx, t, rd1, m1, m2)
	r1 := runApply("apply #1 (m1, m2; m2's SSH cut in its prepare)", "apply-1", cut, true)
	if !r1.fired || cutErr != nil {
		t.Fatalf("FAIL apply #1: m2's connection was not cut in its prepare (fired %v, %v); the last lines:\n%s", r1.fired, cutErr, r1.tail(30))
	}
	checkCutRun(ctx, t, r1, m2.m.Name, m1, m2)
	if err := tp.setEnabled(ctx, m2Proxy, true); err != nil {
		t.Fatal(err)
	}

	// Then killed in the middle of m2's join, and resumed. The kill falls
	// on the second "[join] m2" line: the first is apply naming the
	// command it starts, the second already the join's own output, so m2's
	// join has begun (its kubeboot dies at its next write to the closed
	// connection, or finishes alone).
	joinM2 := "[join] " + m2.m.Name
	r2 := runApply("apply #2 (again; SIGKILL in m2's join)", "apply-2", &trigger{prefix: joinM2, nth: 2, kill: true}, false)
	if !r2.killed {
		if r2.err == nil {
			r2.err = fmt.Errorf("exit 0; the last lines:\n%s", r2.tail(30))
		}
		t.Fatalf("FAIL apply #2 never printed two lines starting %q: %v", joinM2, r2.err)
	}
	if at, ok := r2.firstLine(func(l string) bool { return strings.HasPrefix(l, joinM2) }); ok {
		st.note("apply-2: start -> first %q line: %s", joinM2, at.Round(100*time.Millisecond))
	}
	t.Logf("PASS apply #2 reached m2's join and was SIGKILLed in it after %.1fs", r2.took.Seconds())
	r3 := runApply("apply #3 (resume: the same file)", "apply-3", nil, false)
	if r3.err != nil {
		t.Fatalf("FAIL apply #3 (resume after the cut and the SIGKILL): %v", r3.err)
	}
	t.Logf("PASS apply #3 resumed and succeeded")
	// m2, a worker, got the bundle's worker part in apply #1 and prepared
	// from it (apply #3 prepared it again after the cut); m1 the whole.
	if p := workerPartProblems(r1.out()+r3.out(), []string{m1.m.Name}, []string{m2.m.Name}); len(p) > 0 {
		t.Errorf("FAIL the bundle's worker part: %s", strings.Join(p, "; "))
	} else {
		t.Logf("PASS m2 (a worker) got the bundle's worker part and prepared from it, m1 the whole bundle: %q", hostLines(r1.out(), "upload", m2.m.Name))
	}
	for _, h := range []string{m1.m.Name, m2.m.Name} {
		t.Logf("apply #3 on %s: upload %q, join %q", h, hostLines(r3.out(), "upload", h), hostLines(r3.out(), "join", h))
	}
	if err := st.run("apply #1 start -> m1, m2 Ready (kubectl, apply's kubeconfig)", func() error {
		return waitNodesReady(ctx, k, 2*time.Minute, m1.m.Name, m2.m.Name)
	}); err != nil {
		t.Fatalf("FAIL after apply #3: %v", err)
	}
	bringUp := time.Since(r1.start)
	st.note("apply #1 start -> m1, m2 Ready (cut, kill and 2 re-runs included): %s; apply's own time in the 3 runs: %s",
		bringUp.Round(100*time.Millisecond), (r1.took + r2.took + r3.took).Round(100*time.Millisecond))
	net.report(st, logf, "m1+m2 bring-up (apply #1 start -> Nodes Ready)")
	checkKubeconfig(t, kubeconfig, m1.m.IP.String()+":6443")
	if err := st.run("-> all kube-system, kube-flannel pods Ready", func() error {
		return waitSystemPodsReady(ctx, k, 5*time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	st.note("apply #1 start -> all system pods Ready: %s", time.Since(r1.start).Round(100*time.Millisecond))

	// 3. m3 joins through the bastion, rebooting in the middle of its
	// join; m1 and m2 are left alone. Their flannel must be settled first:
	// a flannel that started before kube-proxy's rules were there times
	// out on the kubernetes Service after 30 s and restarts, which would
	// look like a restart caused by m3's join. It writes subnet.env once
	// it has its lease from the API server.
	if err := st.run("-> flannel has its lease on m1, m2", func() error {
		return eventually(ctx, 2*time.Minute, time.Second, func() error {
			for _, n := range nodes[:2] {
				if _, err := n.run(ctx, "", "", "test", "-s", "/run/flannel/subnet.env"); err != nil {
					return fmt.Errorf("%s: no /run/flannel/subnet.env yet", n.m.Name)
				}
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	before, err := takeSnapshot(ctx, k, nodes[:2])
	if err != nil {
		t.Fatal(err)
	}
	// /run is a new tmpfs at each boot: this marker tells that m3 rebooted.
	const bootMarker = "/run/kubeboot-e2e-before-reboot"
	if _, err := m3.run(ctx, "", "", "touch", bootMarker); err != nil {
		t.Fatal(err)
	}
	inv.Hosts = append(inv.Hosts, applyHost{Name: m3.m.Name, Address: m3.m.IP.String(), Roles: []string{"worker"}, Bastion: bastion.m.IP.String()})
	writeInventory()
	net = newNetMeter(c)
	// At "Waiting for the kubelet to perform the TLS Bootstrap": kubelet
	// runs with the bootstrap kubeconfig, the join waits for its Node. The
	// reboot is systemd's immediate one: a clean shutdown takes longer
	// than the join's 2 s wait, which could then finish first.
	var (
		rb     nspawn.RebootResult
		rbErr  error
		rbDone = make(chan struct{})
	)
	reboot := &trigger{prefix: "[join] " + m3.m.Name + ":", contains: "Waiting for the kubelet", do: func() {
		net.bank(m3.m) // its veth goes with the reboot
		go func() {
			defer close(rbDone)
			rb, rbErr = c.Reboot(ctx, m3.m, true, 30*time.Second)
		}()
		logf("apply-4: rebooting m3")
	}}
	r4 := runApply("apply #4 (+ m3 through m4; m3 reboots in its join)", "apply-4", reboot, true)
	if !r4.fired {
		t.Fatalf("FAIL apply #4 never printed m3's TLS bootstrap wait: %v; the last lines:\n%s", r4.err, r4.tail(30))
	}
	if err := st.run("m3 reboot (down, up to sshd)", func() error {
		select {
		case <-rbDone:
		case <-ctx.Done():
			return ctx.Err()
		}
		return rbErr
	}); err != nil {
		t.Fatalf("FAIL m3's reboot: %v", err)
	}
	st.note("m3: %s", rb)
	t.Logf("m3: %s", rb)
	checkRebootRun(t, r4, m3.m.Name)
	if p := workerPartProblems(r4.out(), nil, []string{m3.m.Name}); len(p) > 0 || !strings.Contains(r4.out(), ", cut before") {
		t.Errorf("FAIL the bundle's worker part for m3 (cut before, in apply #1): %s", strings.Join(p, "; "))
	}
	if err := st.run("m3 after its reboot: through m4 only, containerd and kubelet started at boot", func() error {
		return checkRebooted(ctx, t, c, m3, bastion, knownHosts, bootMarker)
	}); err != nil {
		t.Fatalf("FAIL m3 after its reboot: %v", err)
	}
	r5 := runApply("apply #5 (again after m3's reboot)", "apply-5", nil, false)
	if r5.err != nil {
		t.Fatalf("FAIL apply #5 (after m3's reboot): %v", r5.err)
	}
	if j := hostLines(r5.out(), "join", m3.m.Name); len(j) == 0 {
		t.Errorf("FAIL apply #5 printed no [join] line for m3")
	} else {
		t.Logf("apply #5 on m3: join %q", j[0])
	}
	if err := waitNodesReady(ctx, k, 2*time.Minute, m1.m.Name, m2.m.Name, m3.m.Name); err != nil {
		t.Fatalf("FAIL after apply #5: %v", err)
	}
	st.note("apply #4 start -> m3 Ready (reboot and re-run included): %s; apply's own time in the 2 runs: %s",
		time.Since(r4.start).Round(100*time.Millisecond), (r4.took + r5.took).Round(100*time.Millisecond))
	net.report(st, logf, "m3 added (apply #4 start -> Nodes Ready)")
	t.Logf("PASS apply #5: m3 joined through m4 after its reboot and is Ready")
	checkUnchanged(ctx, t, k, "apply #4 and #5 (m3 added, rebooted)", before, nodes[:2])

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
	r6 := runApply("apply #6 (converged: nothing to do)", "apply-6", nil, false)
	if r6.err != nil {
		t.Fatalf("FAIL apply #6 (converged cluster): %v", r6.err)
	}
	checkNothingDone(t, r6, nodeNames(nodes))
	checkClusterExpiration(ctx, t, apply, r6, []string{m1.m.Name}, []string{m2.m.Name, m3.m.Name})
	rd2 := dryRun("apply --dry-run (converged)", "apply-dry-run-2")
	checkDryRunConverged(t, rd2, nodeNames(nodes))
	checkUnchanged(ctx, t, k, "apply #6 and --dry-run (converged)", before, nodes)

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
		t.Logf("PASS apply's output (%d runs) and log hold none of %d secrets (sudo password, bootstrap tokens)", len(runs), len(secrets))
	}

	// 6. Certificate renewal of the whole cluster from this machine.
	_ = st.run("certs renew all -f", func() error {
		checkClusterRenewal(ctx, t, apply, k, m1, st)
		return nil
	})

	// 6b. The encryption key of the whole cluster rotated from this machine.
	_ = st.run("secrets rotate-key -f", func() error {
		checkClusterRotateKey(ctx, t, apply, k, m1, st)
		return nil
	})

	// 7. Removing a node: reset -f --host m3, apply joins it back, then
	// out of the file apply lists it and apply --prune removes it.
	_ = st.run("reset -f --host m3, apply, apply --prune", func() error {
		rejoin := func() *applyRun { return runApply("apply #7 (m3 back after reset --host)", "apply-7", nil, false) }
		drop := func() {
			inv.Hosts = slices.DeleteFunc(inv.Hosts, func(h applyHost) bool { return h.Name == m3.m.Name })
			writeInventory()
		}
		checkNodeRemoval(ctx, t, apply, k, m3, st, rejoin, drop)
		return nil
	})
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
	if ts := hostTimes(r.out()); len(ts) > 0 {
		var parts []string
		for _, h := range ts {
			parts = append(parts, fmt.Sprintf("%s %s %s", h.Host, h.Step, h.Took.Round(100*time.Millisecond)))
		}
		st.note("%s: the hosts' own kubeboot runs: %s", r.name, strings.Join(parts, ", "))
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

// checkDryRunNew checks apply --dry-run on machines kubeboot never touched:
// it succeeds, shows the first control plane's manifests and every host's
// prepare files with diffs, shows no secret, and leaves no kubeboot file on
// any of them.
func checkDryRunNew(ctx context.Context, t *testing.T, r *applyRun, cp *node, others ...*node) {
	t.Helper()
	if r.err != nil {
		t.Errorf("FAIL %s: %v; the last lines:\n%s", r.name, r.err, r.tail(30))
		return
	}
	out := r.out()
	want := []string{
		"[dry-run] " + cp.m.Name + ": would write /etc/kubernetes/manifests/kube-apiserver.yaml (0600, new file, ",
		"[dry-run] " + cp.m.Name + ":   +++ b/etc/kubernetes/manifests/kube-apiserver.yaml",
		"[dry-run] " + cp.m.Name + ": would write /etc/kubernetes/pki/ca.key (0600, new file, ",
		"nothing was changed on any host",
	}
	for _, n := range append([]*node{cp}, others...) {
		want = append(want, "[dry-run] "+n.m.Name+": would write /etc/containerd/config.toml (0644, ")
	}
	var bad []string
	for _, w := range want {
		if !strings.Contains(out, w) {
			bad = append(bad, "no line "+strconv.Quote(w))
		}
	}
	for _, s := range []string{"PRIVATE KEY-----", "client-key-data:", "token: "} {
		if strings.Contains(out, s) {
			bad = append(bad, "a secret is shown ("+s+")")
		}
	}
	for _, n := range append([]*node{cp}, others...) {
		o, err := n.run(ctx, "", "", "sh", "-c", "ls -d /etc/kubernetes /usr/local/lib/kubeboot /var/lib/kubeboot /etc/sysctl.d/99-kubeboot.conf /etc/modules-load.d/kubeboot.conf 2>/dev/null; true")
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", n.m.Name, err))
		} else if s := strings.TrimSpace(o); s != "" {
			bad = append(bad, fmt.Sprintf("%s has after the dry run: %s", n.m.Name, strings.ReplaceAll(s, "\n", " ")))
		}
	}
	if len(bad) > 0 {
		t.Errorf("FAIL %s:\n  %s", r.name, strings.Join(bad, "\n  "))
		return
	}
	t.Logf("PASS %s: %d lines, %d files shown with diffs, nothing written on %d hosts, no secret shown, %s",
		r.name, len(r.lines), strings.Count(out, ": would write "), len(others)+1, r.took.Round(100*time.Millisecond))
}

// checkDryRunConverged checks apply --dry-run on the converged cluster:
// no host would get a new or changed file.
func checkDryRunConverged(t *testing.T, r *applyRun, hosts []string) {
	t.Helper()
	if r.err != nil {
		t.Errorf("FAIL %s: %v; the last lines:\n%s", r.name, r.err, r.tail(30))
		return
	}
	var bad []string
	for _, l := range strings.Split(r.out(), "\n") {
		if strings.Contains(l, ": would write ") || strings.Contains(l, ": would upload ") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("FAIL %s on the converged cluster would change files:\n  %s", r.name, strings.Join(bad, "\n  "))
		return
	}
	t.Logf("PASS %s on the converged cluster: no file would change on %s (%s)", r.name, strings.Join(hosts, ", "), r.took.Round(100*time.Millisecond))
}
