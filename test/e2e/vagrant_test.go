//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
	"github.com/kubeboot/kubeboot/transport"
)

// The Vagrant scenario's own network, bridge and container names, apart
// from a developer's cluster (10.252.0, vkb0, kb-*) and the nspawn
// machines (10.251.0, kb-e2e).
const (
	vagrantNet    = "10.253.0"
	vagrantBridge = "vkbt0"
	vagrantPrefix = "kbt"
)

// TestVagrantCluster is issue 13's proof with the LXC provider, run as a
// developer runs it: the repository's box (vagrant/lxc/box.sh), then
//
//  1. `vagrant up` of 1 control plane + 2 workers: the last machine up runs
//     kubeboot apply from this host with the inventory generated from the
//     machines; the admin kubeconfig lands in .vagrant/kubeboot. Measured:
//     vagrant up to all Nodes Ready.
//  2. The harness logs in to each machine strictly against the generated
//     known_hosts, with Vagrant's key and user (so the file pins the real
//     keys), and runs TestTwoNodeCluster's 16 checks.
//  3. `vagrant halt`, `vagrant up`: the cluster comes back (kubelet,
//     containerd and the static pods start at boot), apply changes nothing,
//     and the 16 checks pass again.
//  4. `vagrant destroy -f`: no container, bridge, mount, process or file of
//     the cluster is left on the host.
//
// make vagrant-test runs it (KUBEBOOT_E2E_VAGRANT=1); make e2e skips it.
func TestVagrantCluster(t *testing.T) {
	if os.Getenv("KUBEBOOT_E2E_VAGRANT") != "1" {
		t.Skip("the Vagrant scenario runs with make vagrant-test (KUBEBOOT_E2E_VAGRANT=1)")
	}
	sc := newScenario(t, "vagrant", "vagrant-test", 40*time.Minute)
	repo, kubeboot, logDir, ctx, st := sc.repo, sc.kubeboot, sc.logDir, sc.ctx, sc.st

	b, err := buildAll(ctx, st, t.Logf, repo, kubeboot, t.TempDir(), logDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.run("LXC box kb/debian12 (vagrant/lxc/box.sh, cached)", func() error {
		return runLogged(ctx, filepath.Join(logDir, "box.log"), nil, filepath.Join(repo, "vagrant", "lxc", "box.sh"))
	}); err != nil {
		t.Fatal(err)
	}

	// Vagrant's state in a directory of the test's, so that a developer's
	// own vagrant/.vagrant and settings.yaml are not touched or read.
	dot := filepath.Join(t.TempDir(), "dot")
	state := filepath.Join(dot, "kubeboot")
	v := &vagrantRun{dir: filepath.Join(repo, "vagrant"), logDir: logDir, env: []string{
		"VAGRANT_DOTFILE_PATH=" + dot,
		"VAGRANT_DEFAULT_PROVIDER=lxc",
		"KB_SETTINGS=" + filepath.Join(dot, "no-settings.yaml"),
		"KB_CONTROL_PLANES=1", "KB_WORKERS=2",
		"KB_NET=" + vagrantNet, "KB_BRIDGE=" + vagrantBridge, "KB_PREFIX=" + vagrantPrefix,
		"KB_BUNDLE=" + b.bundle, "KB_KUBEBOOT=" + kubeboot,
	}}
	names := []string{"cp1", "w1", "w2"}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer ccancel()
		if t.Failed() {
			for _, f := range []string{"cluster.yaml", "known_hosts", "kubeboot-apply.log", "machines.json"} {
				saveCopy(filepath.Join(logDir, f), filepath.Join(state, f))
			}
		}
		if _, err := v.run(cctx, "destroy-cleanup", "destroy", "-f"); err != nil {
			t.Errorf("cleanup: vagrant destroy -f: %v", err)
		}
		// What a failed destroy could leave.
		sweepVagrant(t.Logf, names, false)
	})
	// What a run killed before its cleanup left: vagrant-lxc refuses to
	// create a container whose name exists.
	sweepVagrant(t.Logf, names, true)

	// 1. vagrant up: machines, then kubeboot apply from the trigger.
	k := &kubectl{bin: b.kubectl, kubeconfig: filepath.Join(state, "admin.conf")}
	upStart := time.Now()
	var upOut string
	if err := st.run("vagrant up (1+2, LXC) incl. kubeboot apply", func() (err error) {
		upOut, err = v.run(ctx, "up", "up", "--provider=lxc")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var readyAfter time.Duration
	if err := st.run("all 3 Nodes Ready", func() error {
		return eventually(ctx, 5*time.Minute, time.Second, func() error {
			if err := nodesReady(ctx, k, names); err != nil {
				return err
			}
			readyAfter = time.Since(upStart)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	// apply returns once the Nodes are Ready; the add-ons' second replicas
	// may still be starting (CoreDNS 1 of 2 was seen).
	if err := st.run("kube-system pods Ready", func() error {
		return eventually(ctx, 3*time.Minute, time.Second, func() error { return kubeSystemReady(ctx, k) })
	}); err != nil {
		t.Fatal(err)
	}
	st.note("vagrant up -> all 3 Nodes Ready: %s (goal 2m, warm bundle, box built before)", readyAfter.Round(100*time.Millisecond))
	if d, ok := vagrantTook(upOut); ok {
		st.note("kubeboot apply inside vagrant up: %s", d)
	}
	if fi, err := os.Stat(k.kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.conf on the host: %v, mode %v; want 0600", err, fi)
	}

	// 2. Log in as the inventory says (strict host keys), and the checks.
	inv, err := inventory.Load(filepath.Join(state, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*node, len(inv.Hosts))
	for i, h := range inv.Hosts {
		cfg := transport.SSHConfig{
			Name: h.Name, Address: h.Address, User: inv.SSH.User, KeyFile: h.SSH.KeyFile,
			KnownHostsFile: filepath.Join(state, inv.SSH.KnownHostsFile), Sudo: true, Attempts: 3,
		}
		sh, err := transport.DialSSH(ctx, cfg)
		if err != nil {
			t.Fatalf("%s with the generated inventory (user %s, Vagrant's key, known_hosts): %v", h.Name, cfg.User, err)
		}
		t.Cleanup(func() { sh.Close() })
		nodes[i] = &node{m: &nspawn.Machine{Name: h.Name}, h: sh}
	}
	if got := hostNames(inv.Hosts); !slices.Equal(got, names) {
		t.Fatalf("inventory hosts %v, want %v (the control plane first)", got, names)
	}
	t.Cleanup(func() {
		if t.Failed() {
			collectLogs(logDir, nodes, b.kubectl, k.kubeconfig)
		}
	})
	if err := parallel(nodes, func(n *node) error { return n.h.Upload(ctx, b.testImages, appImagePath, 0o644) }); err != nil {
		t.Fatal(err)
	}
	st.run("16 cluster checks", func() error { checkCluster(ctx, t, k, nodes, logDir); return nil })
	for _, n := range names {
		if mem, err := lxcMemory(vagrantPrefix + "-" + n); err == nil {
			st.note("memory %s (its cgroup, cluster running): %s", n, mem)
		}
	}
	if t.Failed() {
		return
	}

	// 3. Halt and up again: the cluster comes back, apply changes nothing.
	for _, n := range nodes {
		n.h.Close()
	}
	if err := st.run("vagrant halt (3)", func() error { _, err := v.run(ctx, "halt", "halt"); return err }); err != nil {
		t.Fatal(err)
	}
	upStart = time.Now()
	if err := st.run("vagrant up again incl. kubeboot apply", func() (err error) {
		upOut, err = v.run(ctx, "up-again", "up", "--provider=lxc")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Right after the boot the API server may not be up yet when apply
	// probes it, and cp1's init then runs its online phases again (a new
	// bootstrap token, kubeadm-config rewritten): recorded, not failed. The
	// next apply (another vagrant up) must change nothing anywhere.
	rows := parseSummary(upOut)
	if len(rows) != len(names) {
		t.Errorf("apply's summary after the restart has %d hosts, want %d:\n%s", len(rows), len(names), tailString(upOut, 30))
	}
	for _, n := range names {
		if r := rows[n]; !r.saysUnchanged() {
			st.note("apply right after the restart, %s: %s", n, r.Changed)
		}
	}
	if err := st.run("after the restart: Nodes Ready, kube-system Ready", func() error {
		return eventually(ctx, 5*time.Minute, 2*time.Second, func() error {
			if err := nodesReady(ctx, k, names); err != nil {
				return err
			}
			return kubeSystemReady(ctx, k)
		})
	}); err != nil {
		t.Fatal(err)
	}
	st.note("vagrant up of the halted machines -> Nodes and kube-system Ready: %s", time.Since(upStart).Round(100*time.Millisecond))
	for i, h := range inv.Hosts {
		cfg := transport.SSHConfig{Name: h.Name, Address: h.Address, User: inv.SSH.User, KeyFile: h.SSH.KeyFile,
			KnownHostsFile: filepath.Join(state, inv.SSH.KnownHostsFile), Sudo: true, Attempts: 3}
		sh, err := transport.DialSSH(ctx, cfg)
		if err != nil {
			t.Fatalf("%s after the restart: %v", h.Name, err)
		}
		t.Cleanup(func() { sh.Close() })
		nodes[i].h = sh
	}
	st.run("16 cluster checks after the restart", func() error { checkCluster(ctx, t, k, nodes, logDir); return nil })
	if t.Failed() {
		return
	}
	if err := st.run("vagrant up of the running machines (apply: no change)", func() (err error) {
		upOut, err = v.run(ctx, "up-converged", "up", "--provider=lxc")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rows = parseSummary(upOut)
	for _, n := range names {
		if r, ok := rows[n]; !ok || !r.saysUnchanged() {
			t.Errorf("apply on the converged cluster, %s: %+v, want nothing changed", n, r)
		}
	}
	if t.Failed() {
		return
	}
	for _, n := range nodes {
		n.h.Close()
	}

	// 4. Destroy: nothing left.
	if err := st.run("vagrant destroy -f", func() error { _, err := v.run(ctx, "destroy", "destroy", "-f"); return err }); err != nil {
		t.Fatal(err)
	}
	for _, p := range vagrantLeftovers(names, state) {
		t.Errorf("left on the host after vagrant destroy -f: %s", p)
	}
}

// vagrantRun runs vagrant in dir with env, its output in logDir.
type vagrantRun struct {
	dir, logDir string
	env         []string
}

// run runs `vagrant args...`, streaming its output to logDir/vagrant-<log>.log,
// and returns the output.
func (v *vagrantRun) run(ctx context.Context, log string, args ...string) (string, error) {
	var out strings.Builder
	cmd := exec.CommandContext(ctx, "vagrant", append(args, "--no-tty")...)
	cmd.Dir = v.dir
	cmd.Env = append(os.Environ(), v.env...)
	err := runCmdLogged(cmd, filepath.Join(v.logDir, "vagrant-"+log+".log"), &out)
	if err != nil {
		return out.String(), fmt.Errorf("vagrant %s: %v\n%s", strings.Join(args, " "), err, tailString(out.String(), 30))
	}
	return out.String(), nil
}

// runLogged runs a command with its output in logFile.
func runLogged(ctx context.Context, logFile string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	if err := runCmdLogged(cmd, logFile, &out); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, tailString(out.String(), 20))
	}
	return nil
}

// runCmdLogged runs cmd, its stdout and stderr going to logFile and into out.
func runCmdLogged(cmd *exec.Cmd, logFile string, out io.Writer) error {
	f, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.WaitDelay = 10 * time.Second
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text() + "\n"
			_, _ = f.WriteString(time.Now().Format("15:04:05.000 ") + line)
			_, _ = io.WriteString(out, line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err = cmd.Run()
	pw.Close()
	wg.Wait()
	return err
}

// nodesReady reports whether exactly names are Nodes and all Ready.
func nodesReady(ctx context.Context, k *kubectl, names []string) error {
	var nl corev1.NodeList
	if err := k.get(ctx, &nl, "nodes"); err != nil {
		return err
	}
	var ready []string
	for i := range nl.Items {
		if nodeReady(&nl.Items[i]) {
			ready = append(ready, nl.Items[i].Name)
		}
	}
	slices.Sort(ready)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(ready, want) {
		return fmt.Errorf("Ready nodes %v, want %v", ready, want)
	}
	return nil
}

// kubeSystemReady reports whether every kube-system and kube-flannel pod
// is Ready and the DaemonSets' and CoreDNS's status says so too (their
// status lags the pods after a restart).
func kubeSystemReady(ctx context.Context, k *kubectl) error {
	for _, ns := range []string{"kube-system", "kube-flannel"} {
		pods, err := k.pods(ctx, "-n", ns)
		if err != nil {
			return err
		}
		for i := range pods {
			if !podReady(&pods[i]) {
				return fmt.Errorf("pod %s not Ready", pods[i].Name)
			}
		}
	}
	for _, ds := range [][2]string{{"kube-system", "kube-proxy"}, {"kube-flannel", "kube-flannel-ds"}} {
		var d appsv1.DaemonSet
		if err := k.get(ctx, &d, "daemonset", "-n", ds[0], ds[1]); err != nil {
			return err
		}
		if s := d.Status; s.NumberReady != s.DesiredNumberScheduled || s.NumberAvailable != s.DesiredNumberScheduled {
			return fmt.Errorf("DaemonSet %s: ready %d of %d", ds[1], s.NumberReady, s.DesiredNumberScheduled)
		}
	}
	var dep appsv1.Deployment
	if err := k.get(ctx, &dep, "deployment", "-n", "kube-system", "coredns"); err != nil {
		return err
	}
	if dep.Spec.Replicas == nil || dep.Status.ReadyReplicas != *dep.Spec.Replicas {
		return fmt.Errorf("CoreDNS: %d ready replicas", dep.Status.ReadyReplicas)
	}
	return nil
}

func hostNames(hs []inventory.Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

// vagrantTook is the time the Vagrantfile's trigger printed for apply.
func vagrantTook(out string) (string, bool) {
	const marker = "kubeboot: cluster ready in "
	i := strings.LastIndex(out, marker)
	if i < 0 {
		return "", false
	}
	rest := out[i+len(marker):]
	if j := strings.IndexByte(rest, ';'); j >= 0 {
		return rest[:j], true
	}
	return "", false
}

// lxcMemory is a container's memory cgroup usage (v1 or v2).
func lxcMemory(name string) (string, error) {
	for _, p := range []string{
		"/sys/fs/cgroup/memory/lxc.payload." + name + "/memory.usage_in_bytes",
		"/sys/fs/cgroup/lxc.payload." + name + "/memory.current",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d MiB", n>>20), nil
	}
	return "", fmt.Errorf("no memory cgroup for %s", name)
}

// vagrantLeftovers lists what is left of the cluster on the host: LXC
// containers and their directories, the bridge, mounts below the
// containers' directories, LXC monitor processes, the inventory directory.
func vagrantLeftovers(names []string, state string) []string {
	var left []string
	for _, n := range names {
		c := vagrantPrefix + "-" + n
		if _, err := os.Stat("/var/lib/lxc/" + c); err == nil {
			left = append(left, "/var/lib/lxc/"+c)
		}
		if out, _ := exec.Command("lxc-info", "-n", c, "-s").CombinedOutput(); strings.Contains(string(out), "State:") {
			left = append(left, "container "+c+": "+strings.TrimSpace(string(out)))
		}
	}
	if _, err := os.Stat("/sys/class/net/" + vagrantBridge); err == nil {
		left = append(left, "bridge "+vagrantBridge)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "/var/lib/lxc/"+vagrantPrefix+"-") || strings.Contains(l, "lxc.payload."+vagrantPrefix+"-") {
				left = append(left, "mount: "+l)
			}
		}
	}
	if out, _ := exec.Command("pgrep", "-af", `\[lxc monitor\].* `+vagrantPrefix+"-").CombinedOutput(); strings.TrimSpace(string(out)) != "" {
		left = append(left, "process: "+strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat(state); err == nil {
		left = append(left, state+" (inventory, known_hosts, admin.conf)")
	}
	return left
}

// sweepVagrant removes the test's LXC containers and bridge if they exist
// (logged when loud: at the start they are an earlier run's).
func sweepVagrant(logf func(string, ...any), names []string, loud bool) {
	for _, n := range names {
		c := vagrantPrefix + "-" + n
		if exec.Command("lxc-info", "-n", c).Run() != nil {
			continue
		}
		if loud {
			logf("removing container %s, left by an earlier run", c)
		}
		if out, err := exec.Command("lxc-destroy", "-f", "-n", c).CombinedOutput(); err != nil {
			logf("lxc-destroy -f -n %s: %v: %s", c, err, out)
		}
	}
	if exec.Command("ip", "link", "show", vagrantBridge).Run() == nil {
		if loud {
			logf("removing bridge %s, left by an earlier run", vagrantBridge)
		}
		_ = exec.Command("ip", "link", "del", vagrantBridge).Run()
	}
}
