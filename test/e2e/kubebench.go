//go:build e2e

package e2e

// The CIS Kubernetes Benchmark of the scenario's cluster, measured with Aqua
// Security's kube-bench (components.Builder.KubeBench: copied into the
// machines by the test, not part of the bundle), and of a cluster the real
// kubeadm makes on the same machines, for reference.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/test/e2e/components"
)

// kubeBenchmark is the benchmark kube-bench v0.14.0 runs for Kubernetes
// v1.34: its cfg/config.yaml maps Kubernetes 1.29 to 1.32 to cis-1.11 and
// nothing newer, and kube-bench takes the closest version mapped below the
// cluster's (1.34 → 1.33 → 1.32 → cis-1.11). It is passed with --benchmark
// so that nothing depends on detecting the cluster's version.
const kubeBenchmark = "cis-1.11"

// cis-1.11's targets (cfg/config.yaml's target_mapping; each is
// cfg/cis-1.11/<target>.yaml). A control plane runs them all: master (the
// API server's, controller manager's, scheduler's and etcd's files and
// flags), controlplane (authentication, audit logging), etcd, policies
// (RBAC, service accounts, pod security, through kubectl) and node (the
// kubelet's and kube-proxy's files and flags); a worker runs node.
var (
	kubeBenchControlPlaneTargets = []string{"master", "controlplane", "etcd", "policies", "node"}
	kubeBenchWorkerTargets       = []string{"node"}
)

// kubeBenchDir is where kube-bench, its cfg/config.yaml and the benchmark's
// definitions go on a machine: below /root, which the reset scenario's
// snapshots do not cover, and removed after each run.
const kubeBenchDir = "/root/kube-bench"

// kubeBenchAccepted are the checks that may FAIL on kubeboot's cluster,
// check id → why. Any other FAIL, on the control plane or the worker, fails
// the scenario; a listed check that no longer fails is reported, to prune.
var kubeBenchAccepted = map[string]string{
	// Ensure that the --kubelet-certificate-authority argument is set as
	// appropriate (kubeadm: FAIL too).
	"1.2.5": "the kubelets' serving certificates are self-signed (kubeadm's too): with the flag, kubectl logs/exec/port-forward fail until each kubelet has a serving certificate from the cluster CA, which needs serverTLSBootstrap and an approver of kubelet-serving CSRs (docs/security.md)",
}

// benchCheck is one check's result.
type benchCheck struct {
	ID, Text, Status string
	Target           string // the controls file: master, controlplane, etcd, policies, node
	Scored           bool
	Reason           string // why kube-bench decided so, when it says
}

// benchCounts are the checks per status.
type benchCounts struct{ Pass, Fail, Warn, Info int }

func (c *benchCounts) add(status string) {
	switch status {
	case "PASS":
		c.Pass++
	case "FAIL":
		c.Fail++
	case "WARN":
		c.Warn++
	case "INFO":
		c.Info++
	}
}

func (c benchCounts) total() int { return c.Pass + c.Fail + c.Warn + c.Info }

// benchReport is one kube-bench run on one machine.
type benchReport struct {
	Name    string // "m1 (kubeboot)"
	Targets []string
	Totals  benchCounts
	ByTgt   map[string]benchCounts
	Checks  []benchCheck
}

// status returns the checks in that status.
func (r *benchReport) status(s string) []benchCheck {
	var out []benchCheck
	for _, c := range r.Checks {
		if c.Status == s {
			out = append(out, c)
		}
	}
	return out
}

// table is the report's counts per target and in total, and its FAIL checks.
func (r *benchReport) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kube-bench %s on %s:\n", kubeBenchmark, r.Name)
	fmt.Fprintf(&b, "  %-13s %5s %5s %5s %5s\n", "target", "PASS", "FAIL", "WARN", "INFO")
	for _, t := range r.Targets {
		c := r.ByTgt[t]
		fmt.Fprintf(&b, "  %-13s %5d %5d %5d %5d\n", t, c.Pass, c.Fail, c.Warn, c.Info)
	}
	c := r.Totals
	fmt.Fprintf(&b, "  %-13s %5d %5d %5d %5d\n", "total", c.Pass, c.Fail, c.Warn, c.Info)
	for _, f := range r.status("FAIL") {
		fmt.Fprintf(&b, "  FAIL %-8s %s\n", f.ID, f.Text)
	}
	return b.String()
}

// kubeBenchJSON is what `kube-bench run --json` writes: one Controls per
// target (controls file), its groups and their checks, and the totals.
type kubeBenchJSON struct {
	Controls []struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		Text    string `json:"text"`
		Type    string `json:"node_type"`
		Tests   []struct {
			Section string `json:"section"`
			Results []struct {
				ID     string `json:"test_number"`
				Text   string `json:"test_desc"`
				Status string `json:"status"`
				Scored bool   `json:"scored"`
				Reason string `json:"reason"`
			} `json:"results"`
		} `json:"tests"`
	}
	Totals struct {
		Pass int `json:"total_pass"`
		Fail int `json:"total_fail"`
		Warn int `json:"total_warn"`
		Info int `json:"total_info"`
	}
}

// parseKubeBench reads kube-bench's JSON: an error when it is not, when a
// target is missing or has no checks, or when the totals disagree with the
// checks.
func parseKubeBench(name string, targets []string, data []byte) (*benchReport, error) {
	var out kubeBenchJSON
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("kube-bench's JSON: %w", err)
	}
	r := &benchReport{Name: name, Targets: targets, ByTgt: map[string]benchCounts{}}
	for _, c := range out.Controls {
		if c.Version != kubeBenchmark {
			return nil, fmt.Errorf("kube-bench ran benchmark %q, want %s", c.Version, kubeBenchmark)
		}
		tc := r.ByTgt[c.Type]
		for _, g := range c.Tests {
			for _, x := range g.Results {
				r.Checks = append(r.Checks, benchCheck{ID: x.ID, Text: x.Text, Status: x.Status, Target: c.Type, Scored: x.Scored, Reason: x.Reason})
				tc.add(x.Status)
				r.Totals.add(x.Status)
			}
		}
		r.ByTgt[c.Type] = tc
	}
	for _, t := range targets {
		if r.ByTgt[t].total() == 0 {
			return nil, fmt.Errorf("kube-bench ran no checks of target %s", t)
		}
	}
	if got, want := r.Totals, (benchCounts{out.Totals.Pass, out.Totals.Fail, out.Totals.Warn, out.Totals.Info}); got != want {
		return nil, fmt.Errorf("kube-bench's totals %+v, its checks %+v", want, got)
	}
	return r, nil
}

// runKubeBench copies kube-bench (bin) and the benchmark's definitions (the
// cfg/ beside bin: config.yaml and cfg/cis-1.11) into n, runs targets with
// kubeconfig (for policies' kubectl; "" for none), keeps the raw JSON as
// logs/<node>-kube-bench-<label>.json and kube-bench's output as
// logs/<node>-kube-bench-<label>.log, and removes what it copied.
func runKubeBench(ctx context.Context, n *node, bin, label, kubeconfig, logDir string, targets []string) (*benchReport, error) {
	cfg := filepath.Join(filepath.Dir(bin), "cfg")
	files := [][2]string{{bin, kubeBenchDir + "/kube-bench"}, {filepath.Join(cfg, "config.yaml"), kubeBenchDir + "/cfg/config.yaml"}}
	defs, err := filepath.Glob(filepath.Join(cfg, kubeBenchmark, "*.yaml"))
	if err != nil || len(defs) == 0 {
		return nil, fmt.Errorf("kube-bench's %s definitions in %s: %v", kubeBenchmark, cfg, err)
	}
	for _, d := range defs {
		files = append(files, [2]string{d, kubeBenchDir + "/cfg/" + kubeBenchmark + "/" + filepath.Base(d)})
	}
	defer func() { _, _ = n.run(context.WithoutCancel(ctx), "", "", "rm", "-rf", kubeBenchDir) }()
	for _, f := range files {
		mode := os.FileMode(0o644)
		if f[0] == bin {
			mode = 0o755
		}
		if err := n.h.Upload(ctx, f[0], f[1], mode); err != nil {
			return nil, err
		}
	}
	result := kubeBenchDir + "/result.json"
	args := []string{"env"}
	if kubeconfig != "" {
		args = append(args, "KUBECONFIG="+kubeconfig)
	}
	args = append(args, kubeBenchDir+"/kube-bench", "run", "--config-dir", kubeBenchDir+"/cfg",
		"--benchmark", kubeBenchmark, "--targets", strings.Join(targets, ","), "--json", "--outputfile", result)
	if _, err := n.run(ctx, logDir, "kube-bench-"+label, args...); err != nil {
		return nil, fmt.Errorf("kube-bench: %w", err)
	}
	data, err := n.h.ReadFile(ctx, result)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(logDir, n.m.Name+"-kube-bench-"+label+".json"), data, 0o644); err != nil {
		return nil, err
	}
	return parseKubeBench(n.m.Name+" ("+label+")", targets, data)
}

// benchNodes runs kube-bench on the control plane (every target, policies
// with kubeconfig) and the workers (node) at once, logs each table, notes the
// totals and appends the tables to logs/kube-bench.txt. The reports are in
// the order of nodes; a failed run is an error, and a nil report.
func benchNodes(ctx context.Context, t *testing.T, st *stages, nodes []*node, bin, label, kubeconfig, logDir string) ([]*benchReport, error) {
	reports := make([]*benchReport, len(nodes))
	start := time.Now()
	err := parallel(nodes, func(n *node) error {
		targets, kc := kubeBenchWorkerTargets, ""
		if n == nodes[0] {
			targets, kc = kubeBenchControlPlaneTargets, kubeconfig
		}
		r, err := runKubeBench(ctx, n, bin, label, kc, logDir, targets)
		for i := range nodes {
			if nodes[i] == n {
				reports[i] = r
			}
		}
		return err
	})
	var tables []string
	for _, r := range reports {
		if r == nil {
			continue
		}
		t.Log(r.table())
		tables = append(tables, r.table())
		c := r.Totals
		st.note("kube-bench %s %s: PASS %d, FAIL %d, WARN %d, INFO %d", kubeBenchmark, r.Name, c.Pass, c.Fail, c.Warn, c.Info)
	}
	st.note("kube-bench %s (%s, %d nodes at once): %s", kubeBenchmark, label, len(nodes), time.Since(start).Round(100*time.Millisecond))
	if f, ferr := os.OpenFile(filepath.Join(logDir, "kube-bench.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); ferr == nil {
		_, _ = f.WriteString(strings.Join(tables, "\n") + "\n")
		_ = f.Close()
	}
	return reports, err
}

// checkKubeBench is the scenario's CIS benchmark step: kube-bench on every
// node of kubeboot's cluster. It fails when kube-bench cannot run or runs no
// checks, and on every FAIL that kubeBenchAccepted does not list; it reports
// the listed checks that pass now. It returns the reports (nil entries for
// failed runs).
func checkKubeBench(ctx context.Context, t *testing.T, st *stages, nodes []*node, bin, logDir string) []*benchReport {
	reports, err := benchNodes(ctx, t, st, nodes, bin, "kubeboot", "/etc/kubernetes/admin.conf", logDir)
	if err != nil {
		t.Errorf("FAIL kube-bench on kubeboot's cluster: %v", err)
	}
	failed := map[string]bool{}
	for _, r := range reports {
		if r == nil {
			continue
		}
		var unexpected []string
		for _, c := range r.status("FAIL") {
			failed[c.ID] = true
			if _, ok := kubeBenchAccepted[c.ID]; !ok {
				unexpected = append(unexpected, c.ID+" "+c.Text)
			}
		}
		if len(unexpected) > 0 {
			t.Errorf("FAIL kube-bench %s on %s: %d FAIL checks not in kubeBenchAccepted:\n  %s", kubeBenchmark, r.Name, len(unexpected), strings.Join(unexpected, "\n  "))
		} else {
			t.Logf("PASS kube-bench %s on %s: %d checks ran, every FAIL (%d) accepted", kubeBenchmark, r.Name, r.Totals.total(), r.Totals.Fail)
		}
	}
	if err == nil {
		var stale []string
		for id, why := range kubeBenchAccepted {
			if !failed[id] {
				stale = append(stale, id+" ("+why+")")
			}
		}
		sort.Strings(stale)
		if len(stale) > 0 {
			t.Logf("kube-bench: %d checks in kubeBenchAccepted no longer FAIL (prune them): %s", len(stale), strings.Join(stale, ", "))
		}
	}
	return reports
}

// kubeadmRefDir holds the real kubeadm and its configuration on a machine.
const kubeadmRefDir = "/root/kubeadm-ref"

// kubeadmConfig is the reference's kubeadm configuration: kubeadm's
// defaults but for what kubeboot's cluster has too: the node's address, the
// pod subnet, no image pulls (kubeboot's bundle imported kubeadm v1.34.3's
// very images: registry.k8s.io/kube-apiserver:v1.34.3, etcd:3.6.5-0, ...),
// preflight errors ignored (an nspawn machine), and the two settings kubeboot
// decides by the host: failCgroupV1: false on a cgroup v1 host, and
// conntrack.maxPerCore: 0 where nf_conntrack_max is read-only.
func kubeadmConfig(advertise, podSubnet, serviceSubnet string, cgroupV1, conntrackRO bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %s
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  ignorePreflightErrors: [all]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
imageRepository: %s
networking:
  podSubnet: %s
  serviceSubnet: %s
`, advertise, components.KubernetesVersion, inventory.DefaultImageRepository, podSubnet, serviceSubnet)
	if cgroupV1 {
		b.WriteString("---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\n")
	}
	if conntrackRO {
		b.WriteString("---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nconntrack:\n  maxPerCore: 0\n")
	}
	return b.String()
}

// kubeadmReference benchmarks a cluster made by the real kubeadm v1.34.3 on
// the scenario's machines, after the scenario: kubeboot reset (without
// --all) leaves the control plane prepared (containerd, the kubelet and its
// unit and drop-in, the images) without a cluster, and `kubeboot init phase
// prepare` prepares the worker again (the scenario ends it reset --all);
// then kubeadm init, kubeadm join, kube-bench as on kubeboot's cluster,
// kubeadm reset -f. It logs, per node, which checks FAIL on one cluster and
// not on the other. Failures are the test's errors.
func kubeadmReference(ctx context.Context, t *testing.T, st *stages, cp, worker *node, b *built, logDir string, kubeboot []*benchReport) {
	nodes := []*node{cp, worker}
	step := func(name string, f func() error) bool {
		if err := st.run(name, f); err != nil {
			t.Errorf("FAIL kubeadm reference: %s: %v", name, err)
			return false
		}
		return true
	}
	kubeadm := kubeadmRefDir + "/kubeadm"
	if !step("kubeadm reference: kubeboot reset (m1), prepare (m2), copy kubeadm in", func() error {
		return parallel(nodes, func(n *node) error {
			var err error
			if n == cp {
				_, err = n.run(ctx, logDir, "kubeadm-ref-reset", kubebootPath, "reset", "--force")
			} else {
				_, err = n.run(ctx, logDir, "kubeadm-ref-prepare", kubebootPath, "init", "phase", "prepare", "--bundle", bundlePath)
			}
			if err != nil {
				return err
			}
			// What the kubeadm package would have installed: kubeboot
			// writes this drop-in in kubelet-start and reset removes it.
			if err := n.h.WriteFile(ctx, inventory.KubeletDropInFile, templates.KubeletDropIn("/usr/bin/kubelet"), 0o644); err != nil {
				return err
			}
			if _, err := n.run(ctx, "", "", "systemctl", "daemon-reload"); err != nil {
				return err
			}
			return n.h.Upload(ctx, b.kubeadm, kubeadm, 0o755)
		})
	}) {
		return
	}
	defer func() {
		step("kubeadm reference: kubeadm reset -f (both nodes)", func() error {
			return parallel(nodes, func(n *node) error {
				_, err := n.run(ctx, logDir, "kubeadm-ref-kubeadm-reset", kubeadm, "reset", "-f")
				bg := context.WithoutCancel(ctx)
				_, _ = n.run(bg, "", "", "rm", "-rf", kubeadmRefDir, inventory.KubeletDropInFile)
				_, _ = n.run(bg, "", "", "systemctl", "daemon-reload")
				return err
			})
		})
	}()

	facts, err := cp.run(ctx, "", "", "sh", "-c", `stat -fc %T /sys/fs/cgroup; if test -w /proc/sys/net/netfilter/nf_conntrack_max; then echo rw; else echo ro; fi`)
	if err != nil {
		t.Errorf("FAIL kubeadm reference: %v", err)
		return
	}
	f := strings.Fields(facts)
	cgroupV1 := len(f) < 1 || f[0] != "cgroup2fs"
	conntrackRO := len(f) < 2 || f[1] != "rw"
	conf := kubeadmConfig(cp.m.IP.String(), inventory.DefaultPodSubnet, inventory.DefaultServiceSubnet, cgroupV1, conntrackRO)
	_ = os.WriteFile(filepath.Join(logDir, "kubeadm-ref.yaml"), []byte(conf), 0o644)
	if err := cp.h.WriteFile(ctx, kubeadmRefDir+"/kubeadm.yaml", []byte(conf), 0o644); err != nil {
		t.Errorf("FAIL kubeadm reference: %v", err)
		return
	}
	if !step("kubeadm reference: kubeadm init (m1)", func() error {
		_, err := cp.run(ctx, logDir, "kubeadm-ref-init", kubeadm, "init", "--config", kubeadmRefDir+"/kubeadm.yaml")
		return err
	}) {
		return
	}
	admin := []string{"kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"}
	if !step("kubeadm reference: kubeadm join (m2)", func() error {
		out, err := cp.run(ctx, "", "", kubeadm, "token", "create", "--print-join-command")
		if err != nil {
			return err
		}
		join := strings.Fields(out)
		if len(join) < 3 || join[0] != "kubeadm" || join[1] != "join" {
			return fmt.Errorf("kubeadm token create --print-join-command printed %q", out)
		}
		join[0] = kubeadm
		_, err = worker.run(ctx, logDir, "kubeadm-ref-join", append(join, "--ignore-preflight-errors=all")...)
		return err
	}) {
		return
	}
	// kube-bench looks at running processes: wait for both Nodes and
	// kube-proxy on each (a DaemonSet tolerating everything, host network:
	// no CNI is needed, and none is installed).
	if !step("kubeadm reference: both Nodes registered, kube-proxy running", func() error {
		return eventually(ctx, 3*time.Minute, 2*time.Second, func() error {
			out, err := cp.run(ctx, "", "", append(admin, "get", "nodes", "-o", "name")...)
			if err != nil {
				return err
			}
			if got := len(strings.Fields(out)); got != 2 {
				return fmt.Errorf("%d Nodes, want 2", got)
			}
			return parallel(nodes, func(n *node) error {
				_, err := n.run(ctx, "", "", "pgrep", "-x", "kube-proxy")
				return err
			})
		})
	}) {
		return
	}
	reports, err := benchNodes(ctx, t, st, nodes, b.kubeBench, "kubeadm", "/etc/kubernetes/admin.conf", logDir)
	if err != nil {
		t.Errorf("FAIL kube-bench on kubeadm's cluster: %v", err)
	}
	var cmp []string
	for i, r := range reports {
		if r == nil || i >= len(kubeboot) || kubeboot[i] == nil {
			continue
		}
		kb := map[string]string{}
		for _, c := range kubeboot[i].Checks {
			kb[c.ID] = c.Status
		}
		ka := map[string]string{}
		for _, c := range r.Checks {
			ka[c.ID] = c.Status
		}
		var worse, better []string
		for _, c := range kubeboot[i].Checks {
			if c.Status == "FAIL" && ka[c.ID] != "FAIL" {
				worse = append(worse, c.ID+" (kubeadm: "+ka[c.ID]+")")
			}
		}
		for _, c := range r.Checks {
			if c.Status == "FAIL" && kb[c.ID] != "FAIL" {
				better = append(better, c.ID+" (kubeboot: "+kb[c.ID]+")")
			}
		}
		cmp = append(cmp, fmt.Sprintf("%s: kubeboot %d FAIL, kubeadm %d FAIL; FAIL on kubeboot only: %s; FAIL on kubeadm only: %s",
			nodes[i].m.Name, kubeboot[i].Totals.Fail, r.Totals.Fail, listOrNone(worse), listOrNone(better)))
	}
	for _, l := range cmp {
		t.Logf("kube-bench kubeboot vs kubeadm: %s", l)
		st.note("kube-bench kubeboot vs kubeadm %s", l)
	}
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
