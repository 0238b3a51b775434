//go:build e2e

package e2e

// TestApplyCluster's machine setup (a sudo user with a password, a host
// reachable only through a bastion) and its runs of `kubeboot apply` as a
// subprocess.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
	"github.com/kubeboot/kubeboot/transport"
)

// setupSudoUser makes user on n a sudoer who must give password (Debian's
// sudoers defaults, no NOPASSWD), logging in with the harness's key. The
// machines' rootfs has no sudo: it is installed from sudoDeb (the Debian
// package, downloaded on the host like the bundle's).
func setupSudoUser(ctx context.Context, n *node, sudoDeb, pubKey, user, password string) error {
	if _, err := n.run(ctx, "", "", "sh", "-c", "command -v sudo"); err != nil {
		const remote = "/root/kubeboot-e2e-sudo.deb"
		if err := n.h.Upload(ctx, sudoDeb, remote, 0o644); err != nil {
			return fmt.Errorf("upload sudo: %w", err)
		}
		if _, err := n.run(ctx, "", "", "dpkg", "-i", remote); err != nil {
			return fmt.Errorf("install sudo: %w", err)
		}
	}
	if _, err := n.run(ctx, "", "", "sh", "-c", `id -u "$1" >/dev/null 2>&1 || useradd -m -s /bin/bash "$1"`, "sh", user); err != nil {
		return err
	}
	if _, err := n.h.Run(ctx, transport.Cmd{Args: []string{"chpasswd"}, Stdin: strings.NewReader(user + ":" + password + "\n")}); err != nil {
		return fmt.Errorf("chpasswd: %w", err)
	}
	home := "/home/" + user
	if _, err := n.run(ctx, "", "", "install", "-d", "-m", "0700", "-o", user, "-g", user, home+"/.ssh"); err != nil {
		return err
	}
	if err := n.h.WriteFile(ctx, home+"/.ssh/authorized_keys", []byte(pubKey), 0o600); err != nil {
		return err
	}
	if _, err := n.run(ctx, "", "", "chown", user+":"+user, home+"/.ssh/authorized_keys"); err != nil {
		return err
	}
	sudoers := "/etc/sudoers.d/90-kubeboot-e2e-" + user
	if err := n.h.WriteFile(ctx, sudoers, []byte(user+" ALL=(ALL:ALL) ALL\n"), 0o440); err != nil {
		return err
	}
	if _, err := n.run(ctx, "", "", "visudo", "-c", "-f", sudoers); err != nil {
		return err
	}
	return nil
}

// verifySudoUser logs in to m as user with the harness's key and checks
// that sudo works with the password on stdin and only with it.
func verifySudoUser(ctx context.Context, c *nspawn.Cluster, m *nspawn.Machine, user, password string) error {
	cfg := c.SSHConfig(m)
	cfg.User = user
	h, err := transport.DialSSH(ctx, cfg)
	if err != nil {
		return fmt.Errorf("login as %s: %w", user, err)
	}
	defer h.Close()
	run := func(stdin string, args ...string) (string, error) {
		c := transport.Cmd{Args: args}
		if stdin != "" {
			c.Stdin = strings.NewReader(stdin)
		}
		r, err := h.Run(ctx, c)
		return strings.TrimSpace(string(r.Stdout)), err
	}
	if out, err := run("", "id", "-un"); err != nil || out != user {
		return fmt.Errorf("id -un as %s: %q, %v", user, out, err)
	}
	if out, err := run(password+"\n", "sudo", "-S", "-k", "-p", "", "id", "-u"); err != nil || out != "0" {
		return fmt.Errorf("sudo -S -k with the password: %q, %v", out, err)
	}
	if _, err := run("", "sudo", "-S", "-k", "-p", "", "true"); err == nil {
		return errors.New("sudo -S -k without a password on stdin succeeded: the sudoers entry does not ask for one")
	}
	if _, err := run("", "sudo", "-n", "-k", "true"); err == nil {
		return errors.New("sudo -n succeeded: NOPASSWD is in effect")
	}
	if _, err := run("wrong-"+password+"\n", "sudo", "-S", "-k", "-p", "", "true"); err == nil {
		return errors.New("sudo -S -k with a wrong password succeeded")
	}
	return nil
}

// bastionOnlyConf is sshd's drop-in on a host that accepts SSH only from
// its bastion (as root).
func bastionOnlyConf(bastion string) string {
	return "# kubeboot e2e: this host is reachable only through its bastion.\nAllowUsers root@" + bastion + "\n"
}

// restrictSSHToBastion makes sshd on n accept logins only from the
// bastion's address, and reloads it (connections already open, such as
// n's own, stay).
func restrictSSHToBastion(ctx context.Context, n *node, bastion string) error {
	const conf = "/etc/ssh/sshd_config.d/50-kubeboot-e2e-bastion-only.conf"
	if err := n.h.WriteFile(ctx, conf, []byte(bastionOnlyConf(bastion)), 0o644); err != nil {
		return err
	}
	if _, err := n.run(ctx, "", "", "sshd", "-t"); err != nil {
		return err
	}
	_, err := n.run(ctx, "", "", "systemctl", "reload", "ssh")
	return err
}

// verifyBastionOnly checks that target refuses a direct login from this
// host, that it accepts one through bastion (golang.org/x/crypto/ssh, the
// jump as OpenSSH's ProxyJump does it), and that knownHosts pins target's
// key for its address, as apply verifies it end to end through the jump.
func verifyBastionOnly(ctx context.Context, c *nspawn.Cluster, target, bastion *nspawn.Machine, knownHosts string) error {
	kh, err := os.ReadFile(knownHosts)
	if err != nil {
		return err
	}
	if !knownHostsHas(string(kh), target.IP.String(), target.HostKey) {
		return fmt.Errorf("%s does not pin %s's key (%s) for %s", knownHosts, target.Name, target.HostKey, target.IP)
	}
	if !knownHostsHas(string(kh), bastion.IP.String(), bastion.HostKey) {
		return fmt.Errorf("%s does not pin the bastion %s's key for %s", knownHosts, bastion.Name, bastion.IP)
	}
	cfg := c.SSHConfig(target)
	cfg.KnownHostsFile = knownHosts
	if h, err := transport.DialSSH(ctx, cfg); err == nil {
		h.Close()
		return fmt.Errorf("%s accepted a direct login from this host", target.Name)
	} else if !errors.Is(err, transport.ErrAuth) {
		return fmt.Errorf("direct login to %s: want an authentication refusal, got: %w", target.Name, err)
	}

	key, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return err
	}
	hk, err := knownhosts.New(knownHosts)
	if err != nil {
		return err
	}
	conf := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second}
	jump, err := ssh.Dial("tcp", bastion.Addr(), conf)
	if err != nil {
		return fmt.Errorf("bastion %s: %w", bastion.Name, err)
	}
	defer jump.Close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := jump.DialContext(dctx, "tcp", target.Addr())
	if err != nil {
		return fmt.Errorf("through %s to %s: %w", bastion.Name, target.Addr(), err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, target.Addr(), conf)
	if err != nil {
		conn.Close()
		return fmt.Errorf("through %s, login to %s: %w", bastion.Name, target.Name, err)
	}
	cl := ssh.NewClient(cc, chans, reqs)
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	out, err := sess.Output("hostname")
	if err != nil || strings.TrimSpace(string(out)) != target.Name {
		return fmt.Errorf("through %s, hostname on %s: %q, %v", bastion.Name, target.Name, out, err)
	}
	return nil
}

// copyFile copies src to dst with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// applyCmd runs `kubeboot apply` as a user would: the binary as a
// subprocess, the sudo password in its environment.
type applyCmd struct {
	kubeboot   string
	file       string // the cluster file
	kubeconfig string // --kubeconfig-out
	logFile    string // --log-file
	env        []string
	logDir     string // each run's output goes to apply-<n>.out there
	logf       func(format string, args ...any)
}

// command is kubeboot with args, run as the user runs apply: in the
// cluster file's folder, with the variables it names (the sudo password).
func (a *applyCmd) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, a.kubeboot, args...)
	cmd.Env = append(os.Environ(), a.env...)
	cmd.Dir = filepath.Dir(a.file)
	return cmd
}

// trigger is what the test does to a run of apply when it prints a
// given line: the nth (from 1) line starting with prefix and holding
// contains. With kill, apply is SIGKILLed there; do, when set, runs there
// (apply's output waits for it: it must be quick).
type trigger struct {
	prefix, contains string
	nth              int
	kill             bool
	do               func()
}

// applyRun is one run's output and outcome.
type applyRun struct {
	name  string
	start time.Time
	took  time.Duration
	lines []timedLine
	// fired is set when the trigger's line came (at firedAt); killed when
	// the run was SIGKILLed there.
	fired   bool
	firedAt time.Duration
	killed  bool
	err     error
}

type timedLine struct {
	at   time.Duration // since the start
	text string
}

func (r *applyRun) out() string {
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// firstLine is when the first line matching f was printed (since the start).
func (r *applyRun) firstLine(f func(string) bool) (time.Duration, bool) {
	for _, l := range r.lines {
		if f(l.text) {
			return l.at, true
		}
	}
	return 0, false
}

func (r *applyRun) tail(n int) string { return tailString(r.out(), n) }

// run runs apply once; tr, when set, acts at its line.
func (a *applyCmd) run(ctx context.Context, name string, tr *trigger, extra ...string) *applyRun {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	r := &applyRun{name: name}
	args := append([]string{"apply", "-f", a.file, "--kubeconfig-out", a.kubeconfig, "--log-file", a.logFile}, extra...)
	cmd := a.command(ctx, args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		r.err = err
		return r
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	save, _ := os.Create(filepath.Join(a.logDir, name+".out"))
	if save != nil {
		defer save.Close()
		fmt.Fprintf(save, "$ %s %s\n", a.kubeboot, strings.Join(args, " "))
	}
	a.logf("%s: kubeboot %s", name, strings.Join(args, " "))
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		r.err = err
		return r
	}
	pw.Close()
	// Only apply writes the pipe (it starts no processes): EOF comes when it exits.
	stop := context.AfterFunc(ctx, func() { pr.Close() })
	defer stop()
	seen := 0
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		at := time.Since(r.start)
		r.lines = append(r.lines, timedLine{at, l})
		if save != nil {
			fmt.Fprintf(save, "%7.1fs %s\n", at.Seconds(), l)
		}
		a.logf("%s %6.1fs | %s", name, at.Seconds(), l)
		if tr != nil && !r.fired && lineMatch(l, tr.prefix, tr.contains) {
			if seen++; seen < max(tr.nth, 1) {
				continue
			}
			r.fired, r.firedAt = true, at
			if tr.kill {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				r.killed = true
				a.logf("%s: SIGKILL sent to kubeboot (pid %d) at %q", name, cmd.Process.Pid, l)
			}
			if tr.do != nil {
				tr.do()
			}
		}
	}
	pr.Close()
	r.err = cmd.Wait()
	r.took = time.Since(r.start)
	if r.err != nil && !r.killed {
		r.err = fmt.Errorf("kubeboot apply (%s): %w; the last lines:\n%s", name, r.err, r.tail(25))
	}
	return r
}

// waitNodesReady waits until exactly the Nodes names are Ready.
func waitNodesReady(ctx context.Context, k *kubectl, timeout time.Duration, names ...string) error {
	want := append([]string(nil), names...)
	sort.Strings(want)
	return eventually(ctx, timeout, time.Second, func() error {
		var l corev1.NodeList
		if err := k.get(ctx, &l, "nodes"); err != nil {
			return err
		}
		var ready, all []string
		for _, n := range l.Items {
			all = append(all, n.Name)
			if nodeReady(&n) {
				ready = append(ready, n.Name)
			}
		}
		sort.Strings(ready)
		if strings.Join(ready, ",") != strings.Join(want, ",") {
			return fmt.Errorf("Ready Nodes %v of %v, want %v", ready, all, want)
		}
		return nil
	})
}

// waitSystemPodsReady waits until every pod in kube-system and
// kube-flannel is Running and Ready.
func waitSystemPodsReady(ctx context.Context, k *kubectl, timeout time.Duration) error {
	return eventually(ctx, timeout, time.Second, func() error {
		var notReady []string
		for _, ns := range []string{"kube-system", "kube-flannel"} {
			pods, err := k.pods(ctx, "-n", ns)
			if err != nil {
				return err
			}
			if len(pods) == 0 {
				return fmt.Errorf("no pods in %s", ns)
			}
			for i := range pods {
				if !podReady(&pods[i]) {
					notReady = append(notReady, ns+"/"+pods[i].Name)
				}
			}
		}
		if len(notReady) > 0 {
			return fmt.Errorf("not Ready: %v", notReady)
		}
		return nil
	})
}

// clusterSnapshot is what a run of apply on a converged cluster must not
// change: every node's files (kubeboot's, and apply's binary and bundle
// copies) and every pod.
type clusterSnapshot struct {
	files map[string]map[string]fileState // by node
	pods  map[string]podState
}

// applyPaths are where apply keeps its copies of kubeboot and the bundle
// on a host (optional in snapshotFiles: the layout is apply's business).
var applyPaths = []string{"/usr/local/lib/kubeboot", "/var/lib/kubeboot"}

func takeSnapshot(ctx context.Context, k *kubectl, nodes []*node) (*clusterSnapshot, error) {
	s := &clusterSnapshot{files: map[string]map[string]fileState{}}
	var mu sync.Mutex
	err := parallel(nodes, func(n *node) error {
		f, err := snapshotFiles(ctx, n, applyPaths...)
		mu.Lock()
		s.files[n.m.Name] = f
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.pods, err = snapshotPods(ctx, k); err != nil {
		return nil, err
	}
	return s, nil
}

// diffSnapshots lists the changes on nodes (files) and to the pods running
// on them; pods on other nodes (a node that joined) are not compared.
func diffSnapshots(before, after *clusterSnapshot, nodes ...string) (files, pods []string, nFiles, nPods int) {
	for _, n := range nodes {
		nFiles += len(before.files[n])
		for _, d := range diffFiles(before.files[n], after.files[n]) {
			files = append(files, n+": "+d)
		}
	}
	b, a := podsOn(before.pods, nodes...), podsOn(after.pods, nodes...)
	return files, diffPods(b, a), nFiles, len(b)
}

// bootstrapTokens are the cluster's bootstrap tokens (id.secret), read
// from their Secrets.
func bootstrapTokens(ctx context.Context, k *kubectl) ([]string, error) {
	var l corev1.SecretList
	if err := k.get(ctx, &l, "secrets", "-n", "kube-system", "--field-selector", "type=bootstrap.kubernetes.io/token"); err != nil {
		return nil, err
	}
	var toks []string
	for _, s := range l.Items {
		id, sec := string(s.Data["token-id"]), string(s.Data["token-secret"])
		if id != "" && sec != "" {
			toks = append(toks, id+"."+sec)
		}
	}
	return toks, nil
}

// leaks lists the secrets found in the files.
func leaks(secrets map[string]string, files ...string) []string {
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for what, s := range secrets {
			if s != "" && strings.Contains(string(b), s) {
				out = append(out, fmt.Sprintf("%s in %s", what, filepath.Base(f)))
			}
		}
	}
	sort.Strings(out)
	return out
}

// sshJournals saves sshd's journal of the machines (the bastion's and the
// restricted host's logins).
func sshJournals(logDir string, ms []*node) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range ms {
		_, _ = n.run(ctx, logDir, "sshd", "journalctl", "--no-pager", "-o", "short-precise", "-u", "ssh", "-n", "500")
	}
}

// saveCopy copies src to dst (into the logs), ignoring a missing src.
func saveCopy(dst, src string) {
	in, err := os.Open(src)
	if err != nil {
		return
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return
	}
	defer out.Close()
	_, _ = io.Copy(out, in)
}

// nodeNames are the machines' names (their Nodes' names), in order.
func nodeNames(nodes []*node) []string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.m.Name
	}
	return names
}
