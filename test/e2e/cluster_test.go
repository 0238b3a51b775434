//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
	"github.com/kubeboot/kubeboot/transport"
)

const (
	bundlePath   = "/root/kubeboot-bundle.tar"
	kubebootPath = "/usr/local/bin/kubeboot"
	appImagePath = "/root/kubeboot-e2e-app-images.tar"
)

// node is a machine with an open SSH connection.
type node struct {
	m *nspawn.Machine
	h *transport.SSH
}

// run runs args on the node; the output (stdout then stderr) goes to
// logs/<node>-<log>.log when log is set.
func (n *node) run(ctx context.Context, logDir, log string, args ...string) (string, error) {
	r, err := n.h.Run(ctx, transport.Cmd{Args: args})
	out := string(r.Stdout)
	if log != "" {
		_ = os.WriteFile(filepath.Join(logDir, n.m.Name+"-"+log+".log"), append(append([]byte(transport.Quote(args)+"\n"), r.Stdout...), r.Stderr...), 0o644)
	}
	if err != nil {
		var ee *transport.ExitError
		if !errors.As(err, &ee) { // a transport error: keep what was printed
			err = fmt.Errorf("%s: %w\n%s", n.m.Name, err, tailString(string(r.Stderr), 20))
		} else {
			err = fmt.Errorf("%s: %w\nstdout:\n%s", n.m.Name, err, tailString(out, 30))
		}
	}
	return out, err
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestTwoNodeCluster is issue 4's scenario: on machine 1, copy kubeboot
// and the bundle in over SSH and run `kubeboot init --bundle`; on machine 2,
// the `kubeboot join` command init printed; check the cluster from the host
// with kubectl; benchmark it with kube-bench (CIS); run init again and check
// that nothing changed; renew, reset; then benchmark a cluster the real
// kubeadm makes on the same machines, for reference.
func TestTwoNodeCluster(t *testing.T) {
	sc := newScenario(t, "", "e2e", 60*time.Minute)
	repo, kubeboot, logDir, ctx, st, logf := sc.repo, sc.kubeboot, sc.logDir, sc.ctx, sc.st, sc.logf

	// 1. Everything the bundle carries, from real components (cached).
	b, err := buildAll(ctx, st, logf, repo, kubeboot, t.TempDir(), logDir)
	if err != nil {
		t.Fatal(err)
	}

	// 2. Two machines.
	var c *nspawn.Cluster
	if err := st.run("machine boot (2, parallel, to SSH login)", func() (err error) {
		c, err = nspawn.Boot(ctx, nspawn.Config{N: 2, Rootfs: b.rootfs, LogDir: logDir, Logf: logf})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Down(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	nodes := make([]*node, len(c.Machines))
	for i, m := range c.Machines {
		h, err := c.Dial(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		nodes[i] = &node{m: m, h: h}
	}
	cp, worker := nodes[0], nodes[1]
	t.Cleanup(func() {
		if t.Failed() {
			collectLogs(logDir, nodes, b.kubectl, filepath.Join(logDir, "admin.conf"))
		}
	})

	// 3. Copy kubeboot, the bundle and the test application's image in, as a user would.
	if err := st.run("copy-in (kubeboot + bundle, SFTP, both nodes)", func() error {
		return parallel(nodes, func(n *node) error {
			for _, f := range []struct {
				local, remote string
				mode          os.FileMode
			}{{kubeboot, kubebootPath, 0o755}, {b.bundle, bundlePath, 0o644}, {b.testImages, appImagePath, 0o644}} {
				if err := n.h.Upload(ctx, f.local, f.remote, f.mode); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}

	// The machines before init, for reset's comparison (step 10).
	before := map[*node]machineState{}
	if err := st.run("snapshot (both nodes, before init)", func() error {
		for _, n := range nodes {
			s, err := takeMachineState(ctx, n, logDir, "before-init")
			if err != nil {
				return err
			}
			before[n] = s
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// 4. init on machine 1.
	initCmd := []string{kubebootPath, "init", "--bundle", bundlePath}
	var initOut string
	initStart := time.Now()
	if err := st.run("kubeboot init (m1)", func() (err error) {
		initOut, err = cp.run(ctx, logDir, "init", initCmd...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	join, err := workerJoinCommand(initOut)
	if err != nil {
		t.Fatalf("%v; init printed:\n%s", err, tailString(initOut, 40))
	}
	join[0] = kubebootPath
	join = append(join, "--bundle", bundlePath)

	// admin.conf out, for kubectl on the host (the server is on the bridge).
	adminConf := filepath.Join(logDir, "admin.conf")
	data, err := cp.h.ReadFile(ctx, "/etc/kubernetes/admin.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminConf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k := &kubectl{bin: b.kubectl, kubeconfig: adminConf}

	// 5. join on machine 2 with the command init printed.
	if err := st.run("kubeboot join (m2)", func() error {
		_, err := worker.run(ctx, logDir, "join", join...)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// 6. Ready.
	if err := st.run("init start -> both Nodes Ready", func() error {
		err := eventually(ctx, 5*time.Minute, time.Second, func() error {
			var l corev1.NodeList
			if err := k.get(ctx, &l, "nodes"); err != nil {
				return err
			}
			var ready []string
			for _, n := range l.Items {
				if nodeReady(&n) {
					ready = append(ready, n.Name)
				}
			}
			if len(ready) != 2 {
				return fmt.Errorf("Ready nodes: %v of %d", ready, len(l.Items))
			}
			return nil
		})
		st.note("init start -> both Nodes Ready: %s", time.Since(initStart).Round(100*time.Millisecond))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.run("-> all kube-system, kube-flannel pods Ready", func() error {
		err := waitSystemPodsReady(ctx, k, 5*time.Minute)
		st.note("init start -> all system pods Ready: %s", time.Since(initStart).Round(100*time.Millisecond))
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// 7. The checks.
	_ = st.run("checks", func() error {
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

	// 7b. The CIS Kubernetes Benchmark (kube-bench): every FAIL must be in
	// kubeBenchAccepted.
	var bench []*benchReport
	_ = st.run("kube-bench "+kubeBenchmark+" (m1 control plane, m2 node)", func() error {
		bench = checkKubeBench(ctx, t, st, nodes, b.kubeBench, logDir)
		return nil
	})

	// 8. init again on machine 1: nothing changes.
	_ = st.run("kubeboot init again (m1): nothing changes", func() error {
		checkReinit(ctx, t, k, cp, initCmd, logDir)
		return nil
	})

	// 9. Certificate renewal that the running components use.
	_ = st.run("kubeboot certs renew all (m1)", func() error {
		checkRenewal(ctx, t, k, cp, logDir, st)
		return nil
	})

	// 9b. Secrets at rest, the audit log, and a key rotation (issue 14).
	_ = st.run("secrets at rest, audit log, secrets rotate-key (m1)", func() error {
		checkSecurity(ctx, t, k, cp, logDir, st)
		return nil
	})

	// 10. Reset the worker, then the control plane with --all: nothing is
	// left that the snapshots before init do not explain; init again works.
	_ = st.run("kubeboot reset (m2, then m1 --all) and init again", func() error {
		checkReset(ctx, t, cp, worker, before, initCmd, b.kubectl, logDir, st)
		return nil
	})

	// 11. The reference: the same benchmark of a cluster the real kubeadm
	// makes on the same machines, after kubeboot reset.
	_ = st.run("kubeadm reference (init, join, kube-bench, reset)", func() error {
		kubeadmReference(ctx, t, st, cp, worker, b, logDir, bench)
		return nil
	})
}

// parallel runs f on every node at once and joins the errors.
func parallel(nodes []*node, f func(*node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(n); err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.m.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// testWorkload: an HTTP server and a client on each node, and a ClusterIP
// Service whose only endpoint is the server on the first node.
func testWorkload(image string, nodes []string) string {
	var b strings.Builder
	for _, n := range nodes {
		for _, p := range []struct{ name, args string }{{"web", `[serve, ":8080"]`}, {"client", `[sleep]`}} {
			fmt.Fprintf(&b, `apiVersion: v1
kind: Pod
metadata: {name: %[1]s-%[2]s, namespace: default, labels: {app: %[1]s, node: %[2]s}}
spec:
  nodeSelector: {kubernetes.io/hostname: %[2]s}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: %[3]s, imagePullPolicy: Never, args: %[4]s, ports: [{containerPort: 8080}]}]
---
`, p.name, n, image, p.args)
		}
	}
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: web-%[1]s, namespace: default}
spec:
  selector: {app: web, node: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
`, nodes[0])
	return b.String()
}

// checkCluster asserts issue 4's list with kubectl from the host, for the
// cluster of nodes: the first is the control plane (its static pods, the
// Service's endpoint), the others workers. Every check runs and reports; a
// failure marks the test failed.
func checkCluster(ctx context.Context, t *testing.T, k *kubectl, nodes []*node, logDir string) {
	pass := 0
	check := func(name string, err error) {
		if err != nil {
			t.Errorf("FAIL %s: %v", name, err)
			return
		}
		pass++
		t.Logf("PASS %s", name)
	}
	defer func() { t.Logf("%d checks passed", pass) }()
	var names []string
	for _, n := range nodes {
		names = append(names, n.m.Name)
	}
	inOrder := append([]string(nil), names...) // the control plane first
	cpName := inOrder[0]
	sort.Strings(names)
	want := len(names)

	var nl corev1.NodeList
	err := k.get(ctx, &nl, "nodes")
	if err == nil {
		var ready []string
		for _, n := range nl.Items {
			if nodeReady(&n) {
				ready = append(ready, n.Name)
			}
		}
		sort.Strings(ready)
		if strings.Join(ready, ",") != strings.Join(names, ",") {
			err = fmt.Errorf("Ready nodes %v, want %v", ready, names)
		}
	}
	check(fmt.Sprintf("all %d Nodes Ready", want), err)

	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		name := c + "-" + cpName
		var p corev1.Pod
		err := k.get(ctx, &p, "pod", "-n", "kube-system", name)
		if err == nil {
			switch {
			case p.Annotations["kubernetes.io/config.source"] != "file" || p.Annotations["kubernetes.io/config.mirror"] == "":
				err = fmt.Errorf("not a static pod's mirror (config.source %q)", p.Annotations["kubernetes.io/config.source"])
			case !podReady(&p):
				err = fmt.Errorf("phase %s, not Ready", p.Status.Phase)
			case len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Running == nil:
				err = fmt.Errorf("container not running: %+v", p.Status.ContainerStatuses)
			}
		}
		check("static pod "+name+" Running under kubelet", err)
	}

	var dep appsv1.Deployment
	err = k.get(ctx, &dep, "deployment", "-n", "kube-system", "coredns")
	if err == nil && (dep.Spec.Replicas == nil || dep.Status.ReadyReplicas != *dep.Spec.Replicas || dep.Status.ReadyReplicas == 0) {
		err = fmt.Errorf("ready replicas %d of %v", dep.Status.ReadyReplicas, dep.Spec.Replicas)
	}
	if err == nil {
		var pods []corev1.Pod
		if pods, err = k.pods(ctx, "-n", "kube-system", "-l", "k8s-app=kube-dns"); err == nil {
			for i := range pods {
				if !podReady(&pods[i]) {
					err = fmt.Errorf("pod %s not Running and Ready", pods[i].Name)
				}
			}
		}
	}
	check("CoreDNS Running", err)

	for _, ds := range []struct{ ns, name, label string }{
		{"kube-system", "kube-proxy", "k8s-app=kube-proxy"},
		{"kube-flannel", "kube-flannel-ds", "app=flannel"},
	} {
		var d appsv1.DaemonSet
		err := k.get(ctx, &d, "daemonset", "-n", ds.ns, ds.name)
		if err == nil {
			s := d.Status
			if w := int32(want); s.DesiredNumberScheduled != w || s.NumberReady != w || s.NumberAvailable != w || s.UpdatedNumberScheduled != w {
				err = fmt.Errorf("desired %d, ready %d, available %d, updated %d; want %d", s.DesiredNumberScheduled, s.NumberReady, s.NumberAvailable, s.UpdatedNumberScheduled, want)
			}
		}
		if err == nil {
			var pods []corev1.Pod
			if pods, err = k.pods(ctx, "-n", ds.ns, "-l", ds.label); err == nil {
				on := map[string]bool{}
				for i := range pods {
					if podReady(&pods[i]) {
						on[pods[i].Spec.NodeName] = true
					}
				}
				for _, n := range names {
					if !on[n] {
						err = fmt.Errorf("ready pods on %v, want %v", on, names)
					}
				}
			}
		}
		check(fmt.Sprintf("DaemonSet %s/%s ready on all %d nodes", ds.ns, ds.name, want), err)
	}

	// The test workload.
	err = parallel(nodes, func(n *node) error {
		_, err := n.run(ctx, logDir, "", "ctr", "-n", "k8s.io", "images", "import", appImagePath)
		return err
	})
	if err == nil {
		wl := filepath.Join(logDir, "workload.yaml")
		if err = os.WriteFile(wl, []byte(testWorkload(testImage, inOrder)), 0o644); err == nil {
			_, err = k.run(ctx, "apply", "-f", wl)
		}
	}
	if err == nil {
		args := []string{"wait", "--for=condition=Ready", "--timeout=120s"}
		for _, n := range inOrder {
			args = append(args, "pod/web-"+n, "pod/client-"+n)
		}
		_, err = k.run(ctx, args...)
	}
	check(fmt.Sprintf("test workload Ready on all %d nodes", want), err)
	if err != nil {
		return
	}
	podIP := func(name string) string {
		var p corev1.Pod
		if err := k.get(ctx, &p, "pod", name); err != nil {
			return ""
		}
		return p.Status.PodIP
	}
	get := func(from, url, want string) error {
		return eventually(ctx, 60*time.Second, 2*time.Second, func() error {
			out, err := k.run(ctx, "exec", from, "--", "nettest", "get", url)
			if err != nil {
				return err
			}
			if !strings.Contains(out, want) {
				return fmt.Errorf("%s answered %q, want %q", url, strings.TrimSpace(out), want)
			}
			return nil
		})
	}
	// Each worker's pods and the control plane's, both ways.
	cpIP := podIP("web-" + cpName)
	for _, w := range inOrder[1:] {
		wIP := podIP("web-" + w)
		check(fmt.Sprintf("pod on %s -> pod on %s by pod IP (%s)", w, cpName, cpIP), get("client-"+w, "http://"+cpIP+":8080/", "host=web-"+cpName))
		check(fmt.Sprintf("pod on %s -> pod on %s by pod IP (%s)", cpName, w, wIP), get("client-"+cpName, "http://"+wIP+":8080/", "host=web-"+w))
	}
	last := inOrder[len(inOrder)-1]
	var svc corev1.Service
	err = k.get(ctx, &svc, "service", "web-"+cpName)
	if err == nil {
		err = get("client-"+last, "http://"+svc.Spec.ClusterIP+"/", "host=web-"+cpName)
	}
	check(fmt.Sprintf("pod on %s -> ClusterIP Service %s -> pod on %s", last, svc.Spec.ClusterIP, cpName), err)

	lookup := func(from, name, want string) error {
		return eventually(ctx, 60*time.Second, 2*time.Second, func() error {
			out, err := k.run(ctx, "exec", from, "--", "nettest", "lookup", name)
			if err != nil {
				return err
			}
			if want != "" && !strings.Contains(out, want) {
				return fmt.Errorf("%s resolved to %q, want %s", name, strings.TrimSpace(out), want)
			}
			return nil
		})
	}
	var kube corev1.Service
	err = k.get(ctx, &kube, "service", "kubernetes")
	if err == nil {
		err = lookup("client-"+last, "kubernetes.default.svc.cluster.local", kube.Spec.ClusterIP)
	}
	check(fmt.Sprintf("kubernetes.default.svc.cluster.local resolves in a pod (%s) to %s", last, kube.Spec.ClusterIP), err)
	check(fmt.Sprintf("web-%[1]s.default.svc.cluster.local resolves in a pod (%[1]s)", cpName), lookup("client-"+cpName, "web-"+cpName+".default.svc.cluster.local", svc.Spec.ClusterIP))
}

// snapshotFiles records the content hash and mtime of every file kubeboot
// writes on a node: the control plane's (a worker's kubelet files), and
// prepare's (the bundle's binaries and CNI plugins, the units, sysctls and
// modules); and the files below those optional paths that exist.
func snapshotFiles(ctx context.Context, n *node, optional ...string) (map[string]fileState, error) {
	paths := []string{"/etc/kubernetes", "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env", "/etc/containerd",
		"/etc/systemd/system/containerd.service", "/etc/systemd/system/kubelet.service", "/etc/systemd/system/kubelet.service.d",
		"/etc/sysctl.d/99-kubeboot.conf", "/etc/modules-load.d/kubeboot.conf",
		"/usr/bin/kubelet", "/usr/bin/kubectl", "/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/ctr", "/usr/sbin/runc",
		"/opt/cni/bin"}
	if len(optional) > 0 {
		out, err := n.run(ctx, "", "", append([]string{"sh", "-c", `for p; do [ -e "$p" ] && echo "$p"; done; true`, "sh"}, optional...)...)
		if err != nil {
			return nil, err
		}
		paths = append(paths, strings.Fields(out)...)
	}
	mt, err := n.run(ctx, "", "", append(append([]string{"find"}, paths...), "-type", "f", "-printf", `%p %T@\n`)...)
	if err != nil {
		return nil, err
	}
	sums, err := n.run(ctx, "", "", append(append([]string{"find"}, paths...), "-type", "f", "-exec", "sha256sum", "{}", "+")...)
	if err != nil {
		return nil, err
	}
	return parseFileStates(mt, sums)
}

// checkReinit runs init again on the control-plane node and checks that
// no file was rewritten and no pod restarted.
func checkReinit(ctx context.Context, t *testing.T, k *kubectl, cp *node, initCmd []string, logDir string) {
	files, err := snapshotFiles(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := snapshotPods(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cp.run(ctx, logDir, "init-again", initCmd...)
	if err != nil {
		t.Errorf("FAIL kubeboot init again: %v", err)
		return
	}
	// What the snapshots cannot see: the images imported again (same
	// content), containerd restarted, sysctls set again.
	if acts := prepareActions(out); len(acts) > 0 {
		t.Errorf("FAIL init again: prepare acted:\n  %s", strings.Join(acts, "\n  "))
	} else {
		t.Logf("PASS init again: prepare installed, imported, restarted and set nothing")
	}
	// Give kubelet time to act on anything that changed (it watches the
	// manifests with inotify) before looking at the pods.
	time.Sleep(15 * time.Second)
	files2, err := snapshotFiles(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	pods2, err := snapshotPods(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFiles(files, files2); len(d) > 0 {
		t.Errorf("FAIL init again changed files:\n  %s", strings.Join(d, "\n  "))
	} else {
		t.Logf("PASS init again: %d files (/etc/kubernetes, /etc/containerd, /var/lib/kubelet, prepare's binaries, units, sysctls) unchanged (content and mtime)", len(files))
	}
	if d := diffPods(pods, pods2); len(d) > 0 {
		t.Errorf("FAIL init again changed pods:\n  %s", strings.Join(d, "\n  "))
	} else {
		t.Logf("PASS init again: %d pods unchanged (UIDs, container IDs, restart counts)", len(pods))
	}
}

// collectLogs saves what explains a failure: the services' journals and
// the containers on each node, and the cluster's pods and events.
func collectLogs(logDir string, nodes []*node, kubectlBin, adminConf string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, n := range nodes {
		for name, args := range map[string][]string{
			"journal":    {"journalctl", "--no-pager", "-o", "short-precise", "-u", "kubelet", "-u", "containerd", "-n", "2000"},
			"failed":     {"systemctl", "--failed", "--no-pager"},
			"containers": {"ctr", "-n", "k8s.io", "containers", "ls"},
			"images":     {"ctr", "-n", "k8s.io", "images", "ls", "-q"},
		} {
			_, _ = n.run(ctx, logDir, name, args...)
		}
	}
	if _, err := os.Stat(adminConf); err != nil {
		return
	}
	k := &kubectl{bin: kubectlBin, kubeconfig: adminConf}
	for name, args := range map[string][]string{
		"pods":   {"get", "pods", "-A", "-o", "wide"},
		"events": {"get", "events", "-A", "--sort-by=.lastTimestamp"},
		"nodes":  {"describe", "nodes"},
	} {
		out, err := k.run(ctx, args...)
		if err != nil {
			out += "\n" + err.Error()
		}
		_ = os.WriteFile(filepath.Join(logDir, "cluster-"+name+".txt"), []byte(out), 0o644)
	}
}
