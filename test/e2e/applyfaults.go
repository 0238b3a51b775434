//go:build e2e

package e2e

// TestApplyCluster's fault checks (an SSH connection cut in prepare, a host
// rebooted in its join) and its network measurement.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
	"github.com/kubeboot/kubeboot/transport"
)

// exitCode is the code apply exited with (0: it succeeded, -1: it did not
// exit, or its error is not an exit).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		return xe.ExitCode()
	}
	return -1
}

// checkFailedRun checks a run that was to fail in step on host alone:
// apply exited non-zero, its last lines name the step and only that host,
// with the host's error holding why, the summary has host failed and no
// other host failed or ok, and no step after it ran (its progress lines
// and its "Took" line stop at step).
func checkFailedRun(t *testing.T, r *applyRun, step, host, why string) bool {
	t.Helper()
	out := r.out()
	ok := true
	fail := func(format string, args ...any) {
		ok = false
		t.Errorf("FAIL %s: "+format+"\nthe last lines:\n%s", append([]any{r.name}, append(args, r.tail(25))...)...)
	}
	if code := exitCode(r.err); code <= 0 {
		fail("exit code %d (%v), want a failure", code, r.err)
	}
	if s, hosts, found := parseFailure(out); !found || s != step || !reflect.DeepEqual(hosts, []string{host}) {
		fail("failure line: step %q, hosts %q (found %v), want %s on %s", s, hosts, found, step, host)
	}
	if msgs := hostLines(out, step, host); len(msgs) == 0 {
		fail("no [%s] %s lines", step, host)
	} else if last := msgs[len(msgs)-1]; !strings.Contains(last, why) {
		fail("%s's error %q does not say %q", host, last, why)
	}
	for h, row := range parseSummary(out) {
		switch {
		case h == host && row.Result != "failed":
			fail("summary says %s %q, want failed", h, row.Result)
		case h != host && (row.Result == "failed" || row.Result == "ok"):
			fail("summary says %s %q: only %s was to fail, and the run stops", h, row.Result, host)
		}
	}
	order := []string{"connect", "facts", "upload", "preflight", "prepare", "init", "join-control-plane", "join", "wait", "label", "kubeconfig"}
	pos := map[string]int{}
	for i, s := range order {
		pos[s] = i
	}
	for _, p := range phasesPrinted(out) {
		if i, known := pos[p]; known && i > pos[step] {
			fail("step %s printed lines after %s failed", p, step)
		}
	}
	if _, steps, found := parseTook(out); !found || len(steps) == 0 || steps[len(steps)-1].Name != step {
		fail("the Took line's steps %v do not end at %s", steps, step)
	}
	return ok
}

// checkCutRun checks apply #1, whose connection to host was cut in its
// prepare: it failed there naming host alone, and no host was initialized
// or joined (nothing after prepare touched a host).
func checkCutRun(ctx context.Context, t *testing.T, r *applyRun, host string, nodes ...*node) {
	t.Helper()
	// The session ended without an exit status: apply says so.
	if !checkFailedRun(t, r, "prepare", host, "kubeboot init did not finish: connection lost") {
		return
	}
	const script = `for f in /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf; do [ -e "$f" ] && echo "$f"; done; true`
	for _, n := range nodes {
		out, err := n.run(ctx, "", "", "sh", "-c", script)
		if err != nil {
			t.Errorf("FAIL after %s: %s: %v", r.name, n.m.Name, err)
		} else if out = strings.TrimSpace(out); out != "" {
			t.Errorf("FAIL after %s (failed in prepare): %s already has %s", r.name, n.m.Name, strings.ReplaceAll(out, "\n", ", "))
		}
	}
	msgs := hostLines(r.out(), "prepare", host)
	t.Logf("PASS %s: m2's SSH cut %.1fs in; apply exited %d naming %s alone (%q), the others stopped; nothing after prepare ran; no host has an API server, a kubeconfig or a kubelet.conf",
		r.name, r.firedAt.Seconds(), exitCode(r.err), host, msgs[len(msgs)-1])
}

// checkRebootRun checks the run in which host rebooted in its join.
func checkRebootRun(t *testing.T, r *applyRun, host string) {
	t.Helper()
	if checkFailedRun(t, r, "join", host, "kubeboot join did not finish") {
		msgs := hostLines(r.out(), "join", host)
		t.Logf("PASS %s: %s rebooted %.1fs in; apply exited %d naming %s alone (%q); nothing after join ran",
			r.name, host, r.firedAt.Seconds(), exitCode(r.err), host, msgs[len(msgs)-1])
	}
}

// checkRebooted checks n after its reboot and gives it a new harness
// connection: through the bastion, as its sshd still refuses this host;
// the boot is a new one (marker, a file in /run, is gone); containerd and
// kubelet are enabled and started at boot.
func checkRebooted(ctx context.Context, t *testing.T, c *nspawn.Cluster, n, bastion *node, knownHosts, marker string) error {
	if err := verifyBastionOnly(ctx, c, n.m, bastion.m, knownHosts); err != nil {
		return fmt.Errorf("after the reboot: %w", err)
	}
	cfg := c.SSHConfig(n.m)
	bc := c.SSHConfig(bastion.m)
	cfg.KnownHostsFile, bc.KnownHostsFile = knownHosts, knownHosts
	cfg.Bastion = &bc
	h, err := transport.DialSSH(ctx, cfg)
	if err != nil {
		return fmt.Errorf("ssh through %s: %w", bastion.m.Name, err)
	}
	n.h.Close() // the old connection died with the reboot
	n.h = h
	t.Cleanup(func() { h.Close() })
	if out, err := n.run(ctx, "", "", "sh", "-c", `[ -e "$1" ] && echo there; true`, "sh", marker); err != nil {
		return err
	} else if strings.TrimSpace(out) != "" {
		return fmt.Errorf("%s is still there: %s did not reboot", marker, n.m.Name)
	}
	out, err := n.run(ctx, "", "", "systemctl", "is-enabled", "containerd", "kubelet")
	if err != nil || strings.Fields(out)[0] != "enabled" || strings.Fields(out)[1] != "enabled" {
		return fmt.Errorf("systemctl is-enabled containerd kubelet: %q, %v", out, err)
	}
	var states string
	err = eventually(ctx, 90*time.Second, time.Second, func() error {
		out, _ := n.run(ctx, "", "", "systemctl", "is-active", "containerd", "kubelet")
		if states = strings.Join(strings.Fields(out), " "); states != "active active" {
			return fmt.Errorf("containerd, kubelet: %s", states)
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.Logf("PASS %s after its reboot: a new boot (%s gone); direct SSH refused, through %s accepted; containerd and kubelet enabled and active",
		n.m.Name, marker, bastion.m.Name)
	return nil
}

// netMeter measures what each machine's link carried from its start: the
// host side of its veth (TX: to the machine, from this host and the other
// machines; RX: from it), and the bridge's own TX (what this host sent to
// all machines together).
type netMeter struct {
	c      *nspawn.Cluster
	start  time.Time
	base   map[string]nspawn.NetCounters
	banked map[string]nspawn.NetCounters
	bridge nspawn.NetCounters
}

func newNetMeter(c *nspawn.Cluster) *netMeter {
	nm := &netMeter{c: c, start: time.Now(), base: map[string]nspawn.NetCounters{}, banked: map[string]nspawn.NetCounters{}}
	for _, m := range c.Machines {
		nm.base[m.Name], _ = m.Counters()
	}
	nm.bridge, _ = nspawn.InterfaceCounters(c.Bridge())
	return nm
}

// bank keeps what m's link carried so far: its veth is about to go (a
// reboot) and the next one counts from zero.
func (nm *netMeter) bank(m *nspawn.Machine) {
	cur, err := m.Counters()
	if err != nil {
		return
	}
	b := nm.banked[m.Name]
	b.TX += cur.TX - nm.base[m.Name].TX
	b.RX += cur.RX - nm.base[m.Name].RX
	nm.banked[m.Name] = b
	nm.base[m.Name] = nspawn.NetCounters{}
}

func (nm *netMeter) deltas() ([]netDelta, int64) {
	var ds []netDelta
	for _, m := range nm.c.Machines {
		cur, err := m.Counters()
		if err != nil {
			cur = nm.base[m.Name] // not there (rebooting): nothing since
		}
		b := nm.banked[m.Name]
		ds = append(ds, netDelta{Name: m.Name, TX: b.TX + cur.TX - nm.base[m.Name].TX, RX: b.RX + cur.RX - nm.base[m.Name].RX})
	}
	br, _ := nspawn.InterfaceCounters(nm.c.Bridge())
	return ds, br.TX - nm.bridge.TX
}

// report notes the bytes since the start.
func (nm *netMeter) report(st *stages, logf func(string, ...any), what string) {
	ds, host := nm.deltas()
	var to, from []string
	for _, d := range ds {
		to = append(to, d.Name+" "+formatBytes(d.TX))
		from = append(from, d.Name+" "+formatBytes(d.RX))
	}
	line := fmt.Sprintf("%s, %s: bytes to each machine's link (host-side veth TX): %s; from them (RX): %s; from this host into the bridge (all machines): %s",
		what, time.Since(nm.start).Round(100*time.Millisecond), strings.Join(to, ", "), strings.Join(from, ", "), formatBytes(host))
	st.note("%s", line)
	logf("%s", line)
}
