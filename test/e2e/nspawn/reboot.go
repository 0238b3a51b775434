package nspawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RebootResult says how a machine's reboot went.
type RebootResult struct {
	// Down is from the request to nspawn's exit; Up from nspawn's new
	// start to sshd's banner.
	Down, Up time.Duration
	// ExitCode is nspawn's (133: the container asked for a reboot).
	ExitCode int
	// Immediate: systemd's reboot now (no unit stopped); Forced: the
	// machine did not go down within the timeout and was killed instead.
	Immediate, Forced bool
}

func (r RebootResult) String() string {
	how := "clean"
	switch {
	case r.Forced:
		how = "forced (killed after the timeout)"
	case r.Immediate:
		how = "immediate"
	}
	return fmt.Sprintf("%s reboot: down in %s (nspawn exit %d), sshd up %s after the new start",
		how, r.Down.Round(10*time.Millisecond), r.ExitCode, r.Up.Round(10*time.Millisecond))
}

// sigRTMin is glibc's SIGRTMIN (the kernel's 32 plus the two glibc keeps),
// the base of systemd's real-time signals.
const sigRTMin = 34

// Reboot reboots m and starts it again on the same root file system
// (files, enabled units and sshd's configuration persist; /run and the
// network namespace, with the veth, are new), and returns when sshd
// answers with a banner. It does not log in: a machine whose sshd admits
// only its bastion refuses this host.
//
// A clean reboot is what `machinectl reboot` does: SIGINT to the machine's
// systemd (ctrl-alt-del.target), which stops every unit first. An
// immediate one is SIGRTMIN+15, systemd's "reboot now" (`reboot -ff`): no
// unit is stopped, the reboot(2) call ends every process of the machine at
// once, as a reset would; the file system is the host's, so nothing
// written is lost. A machine not down within downTimeout is killed
// (Forced).
func (c *Cluster) Reboot(ctx context.Context, m *Machine, immediate bool, downTimeout time.Duration) (RebootResult, error) {
	res := RebootResult{Immediate: immediate}
	hs, err := ownHierarchies()
	if err != nil {
		return res, err
	}
	c.mu.Lock()
	cmd, exited, closed := m.cmd, m.exited, c.closed
	c.mu.Unlock()
	if closed {
		return res, errors.New("the cluster is being removed")
	}
	if cmd == nil {
		return res, fmt.Errorf("%s was never started", m.Name)
	}
	select {
	case <-exited:
		return res, fmt.Errorf("%s is not running", m.Name)
	default:
	}
	init, err := m.initPID()
	if err != nil {
		return res, err
	}
	sig := syscall.SIGINT
	if immediate {
		sig = syscall.Signal(sigRTMin + 15)
	}
	start := time.Now()
	if err := syscall.Kill(init, sig); err != nil {
		return res, fmt.Errorf("%s: signal its systemd (pid %d): %w", m.Name, init, err)
	}
	select {
	case <-exited:
	case <-time.After(downTimeout):
		res.Forced = true
		c.cfg.Logf("%s: not down %s after the reboot request: SIGKILL", m.Name, downTimeout)
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			return res, fmt.Errorf("%s: nspawn (pid %d) does not exit", m.Name, cmd.Process.Pid)
		}
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Down = time.Since(start)
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	// Whatever outlived the machine (nothing after a clean reboot), and
	// the cgroups its systemd made: the new boot starts from the machine's
	// own empty cgroups, as the first did.
	for _, h := range m.cgroups {
		if err := removeCgroup(h.Dir); err != nil {
			return res, fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	if err := c.start(m, hs); err != nil {
		return res, fmt.Errorf("%s: start again: %w", m.Name, err)
	}
	c.mu.Lock()
	err = c.saveState()
	c.mu.Unlock()
	if err != nil {
		return res, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.BootTimeout)
	defer cancel()
	if err := waitSSH(wctx, m); err != nil {
		return res, err
	}
	res.Up = m.BootTime
	return res, nil
}

// initPID is the host PID of the machine's PID 1 (its systemd): the
// process in its cgroup whose PID in its own namespace is 1.
func (m *Machine) initPID() (int, error) {
	for _, h := range m.cgroups {
		for _, pid := range cgroupPIDs(h.Dir) {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
			if err == nil && isNamespaceInit(b) {
				return pid, nil
			}
		}
		if len(cgroupPIDs(h.Dir)) > 0 {
			break // one hierarchy with processes is enough to look at
		}
	}
	return 0, fmt.Errorf("%s: no process with PID 1 in its namespace in its cgroups", m.Name)
}

// isNamespaceInit reports whether a /proc/PID/status is a PID namespace's
// init seen from an ancestor namespace: "NSpid:" has more than one PID,
// the last (innermost) being 1.
func isNamespaceInit(status []byte) bool {
	for _, l := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(l, "NSpid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		return len(f) > 1 && f[len(f)-1] == "1"
	}
	return false
}

// HostInterface is the host side of the machine's veth on the bridge:
// systemd-nspawn's --network-bridge names it vb-<machine> (for names up to
// 12 characters; longer ones it shortens its own way, and Counters fails).
func (m *Machine) HostInterface() string { return "vb-" + m.Name }

// NetCounters are an interface's byte counters.
type NetCounters struct{ TX, RX int64 }

// Counters reads the byte counters of the host side of m's veth: TX is
// what reached the machine over its link (from this host and from the
// other machines on the bridge), RX what it sent. They restart at zero
// when the machine reboots (a new veth).
func (m *Machine) Counters() (NetCounters, error) { return InterfaceCounters(m.HostInterface()) }

// InterfaceCounters reads /sys/class/net/<ifname>/statistics/{tx,rx}_bytes.
func InterfaceCounters(ifname string) (NetCounters, error) {
	var c NetCounters
	for _, f := range []struct {
		name string
		v    *int64
	}{{"tx_bytes", &c.TX}, {"rx_bytes", &c.RX}} {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", ifname, "statistics", f.name))
		if err != nil {
			return c, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return c, fmt.Errorf("%s %s: %w", ifname, f.name, err)
		}
		*f.v = n
	}
	return c, nil
}

// Bridge is the name of the bridge the machines are on.
func (c *Cluster) Bridge() string { return c.cfg.Bridge }
