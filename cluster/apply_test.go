package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/nodestatus"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// fakeCluster is a set of fake hosts whose kubeboot commands act like the
// real ones at the level apply sees: init writes the CA and admin.conf,
// join makes the host a Ready Node. It records the order of the commands.
type fakeCluster struct {
	t     *testing.T
	inv   *Inventory
	hosts map[string]*transporttest.Fake
	caPEM []byte

	mu     sync.Mutex
	events []string        // "start join w1", "end join w1", ...
	nodes  map[string]bool // name → Ready
	active map[string]int  // step → commands running now
	peak   map[string]int  // step → most at once
	fail   map[string]string
	// free is what a host's probe prints for its disk space ("free=" lines).
	free map[string]string
	// overlap, when set, holds each command of these steps until another
	// one of the same step runs (or 2 s), to see parallel steps overlap.
	overlap map[string]bool
}

const testInventory = `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
controlPlaneEndpoint: lb.example.com
ssh:
  user: root
  keyFile: id_test
hosts:
  - {name: cp1, address: 10.0.0.11, roles: [control-plane]}
  - {name: cp2, address: 10.0.0.12, roles: [control-plane]}
  - {name: cp3, address: 10.0.0.13, roles: [control-plane]}
  - {name: w1, address: 10.0.0.21, roles: [worker], labels: {disk: ssd}}
  - {name: w2, address: 10.0.0.22, roles: [worker]}
  - {name: w3, address: 10.0.0.23, roles: [worker], ssh: {user: ops, sudo: {mode: password, passwordEnv: W3_SUDO}}}
`

// withBundle is the inventory text inv with bundle: b.
func withBundle(inv, b string) string {
	return strings.Replace(inv, "kind: Cluster\n", "kind: Cluster\nbundle: "+b+"\n", 1)
}

func loadTestInventory(t *testing.T, text string) *Inventory {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"id_test", "pw"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inv, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	inv.Home = "/home/op"
	return inv
}

func testCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return certs.EncodeCert(cert)
}

func newFakeCluster(t *testing.T, inv *Inventory) *fakeCluster {
	fc := &fakeCluster{t: t, inv: inv, hosts: map[string]*transporttest.Fake{}, caPEM: testCA(t),
		nodes: map[string]bool{}, active: map[string]int{}, peak: map[string]int{}, fail: map[string]string{}, free: map[string]string{}}
	for i := range inv.Hosts {
		name := inv.Hosts[i].Name
		f := transporttest.New(name)
		fc.hosts[name] = f
		f.Handle("sh -c 'echo \"arch=", func(c transport.Cmd) (transport.Result, error) {
			var b strings.Builder
			fmt.Fprintf(&b, "arch=%s\n", unameArch(runtime.GOARCH))
			if d, _, ok := f.File(testBinaryPath + ".ok"); ok {
				fmt.Fprintf(&b, "bin=%s\nlink=%s\n", strings.TrimSpace(string(d)), testBinaryPath)
			}
			if len(c.Args) > 5 && c.Args[5] != "" {
				if d, _, ok := f.File(c.Args[5] + ".ok"); ok {
					fmt.Fprintf(&b, "bundle=%s\n", strings.TrimSpace(string(d)))
				}
			}
			if _, _, ok := f.File(inventory.KubeletKubeconfig); ok {
				b.WriteString("has=kubelet.conf\n")
			}
			if _, _, ok := f.File(inventory.AdminKubeconfig); ok {
				b.WriteString("has=admin.conf\n")
			}
			b.WriteString(fc.free[name])
			return transport.Result{Stdout: []byte(b.String())}, nil
		})
		f.Handle("ln -sfn", transporttest.Reply(""))
		// verifyScript: the checksum of the uploaded file, then the marker.
		f.Handle(`sh -c 'echo "$1  $2"`, func(c transport.Cmd) (transport.Result, error) {
			want, p := c.Args[4], c.Args[5]
			d, _, ok := f.File(p)
			if !ok || sum(d) != want {
				return transport.Result{}, &transport.ExitError{ExitCode: 1, Stderr: p + ": FAILED"}
			}
			f.SetFile(p+".ok", []byte(want+"\n"), 0o644)
			return transport.Result{}, nil
		})
		f.Handle(testBinaryPath, func(c transport.Cmd) (transport.Result, error) { return fc.kubeboot(name, f, c) })
	}
	return fc
}

var testBinary = []byte("#!/bin/true kubeboot test binary\n")

var testBinaryPath = "/usr/local/lib/kubeboot/kubeboot-" + sum(testBinary)[:16]

func sum(b []byte) string {
	f, err := os.CreateTemp("", "sum")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	f.Write(b)
	f.Close()
	s, _, _ := fileSum(f.Name())
	return s
}

// nodeStatus is what kubeboot node-status says on a control plane of the
// fake cluster: every control plane that is a Node is a healthy voting
// etcd member, and UP in this host's haproxy.
func (fc *fakeCluster) nodeStatus(host string) transport.Result {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	st := nodestatus.Status{Name: host, Role: inventory.RoleControlPlane, Etcd: &nodestatus.Etcd{}, LoadBalancer: &nodestatus.LoadBalancer{Kind: inventory.LBVIP}}
	var names []string
	for _, h := range fc.inv.ControlPlanes() {
		if _, ok := fc.nodes[h.Name]; ok {
			names = append(names, h.Name)
		}
	}
	sort.Strings(names)
	for i, n := range names {
		st.Etcd.Members = append(st.Etcd.Members, nodestatus.Member{Name: n, Healthy: true, Leader: i == 0})
		st.LoadBalancer.Backends = append(st.LoadBalancer.Backends, nodestatus.Backend{Name: n, Status: "UP", Up: true})
	}
	if len(names) > 0 {
		st.Etcd.Leader = names[0]
	}
	b, _ := json.Marshal(st)
	return transport.Result{Stdout: b}
}

func (fc *fakeCluster) kubeboot(host string, f *transporttest.Fake, c transport.Cmd) (transport.Result, error) {
	step := c.Args[1]
	if step == "node-status" {
		return fc.nodeStatus(host), nil
	}
	if step == "init" && c.Args[2] == "phase" {
		step = "prepare"
	}
	fc.mu.Lock()
	fc.events = append(fc.events, "start "+step+" "+host)
	fc.active[step]++
	fc.peak[step] = max(fc.peak[step], fc.active[step])
	failMsg, fails := fc.fail[step+" "+host]
	fc.mu.Unlock()
	if fc.overlap[step] && !slices.Contains(c.Args, "--control-plane") && !strings.HasPrefix(host, "cp") || fc.overlap[step] && step == "prepare" {
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			fc.mu.Lock()
			n := fc.peak[step]
			fc.mu.Unlock()
			if n >= 2 {
				break
			}
		}
	}
	defer func() {
		fc.mu.Lock()
		fc.active[step]--
		fc.events = append(fc.events, "end "+step+" "+host)
		fc.mu.Unlock()
	}()
	if c.Stdout != nil {
		fmt.Fprintf(c.Stdout, "[%s] running on %s\n", step, host)
	}
	if lost, ok := strings.CutPrefix(failMsg, "lost: "); fails && ok {
		// What transport.SSH returns when the session ends without an
		// exit status.
		return transport.Result{}, &transport.ExitError{ExitCode: -1, Stderr: lost}
	}
	if fails {
		return transport.Result{}, &transport.ExitError{ExitCode: 1, Stderr: failMsg}
	}
	switch step {
	case "init":
		f.SetFile("/etc/kubernetes/pki/ca.crt", fc.caPEM, 0o644)
		f.SetFile(inventory.AdminKubeconfig, []byte("apiVersion: v1\nkind: Config\n# admin\n"), 0o600)
		f.SetFile(inventory.KubeletKubeconfig, []byte("kubelet"), 0o600)
		fc.mu.Lock()
		fc.nodes[host] = true
		fc.mu.Unlock()
	case "join":
		f.SetFile(inventory.KubeletKubeconfig, []byte("kubelet"), 0o600)
		fc.mu.Lock()
		fc.nodes[host] = true
		fc.mu.Unlock()
	case "certs":
		// The real reading, on what the fake host has.
		info, err := pki.Expiration(context.Background(), &pki.Data{Host: f, Cfg: inventory.Default(), Out: workflow.NewPrinter(io.Discard)})
		if err != nil {
			return transport.Result{}, err
		}
		b, err := json.Marshal(info)
		return transport.Result{Stdout: b}, err
	}
	return transport.Result{}, nil
}

func (fc *fakeCluster) options(t *testing.T, out *bytes.Buffer) Options {
	bin := filepath.Join(t.TempDir(), "kubeboot")
	if err := os.WriteFile(bin, testBinary, 0o755); err != nil {
		t.Fatal(err)
	}
	return Options{
		Binary:        bin,
		CacheDir:      t.TempDir(), // not the operator's ~/.cache
		KubeconfigOut: filepath.Join(t.TempDir(), "admin.conf"),
		Out:           out,
		Log:           out,
		PollInterval:  time.Millisecond,
		ReadyTimeout:  time.Second,
		Connect: func(ctx context.Context, inv *Inventory, i int) (transport.Host, error) {
			return fc.hosts[inv.Hosts[i].Name], nil
		},
		NewAPI: func(ctx context.Context, h transport.Host, _ int) (API, error) {
			if _, err := h.ReadFile(ctx, inventory.AdminKubeconfig); err != nil {
				return nil, err
			}
			return &fakeAPI{fc: fc}, nil
		},
	}
}

type fakeAPI struct {
	fc     *fakeCluster
	labels map[string]map[string]string
}

func (a *fakeAPI) Nodes(context.Context) (map[string]bool, error) {
	a.fc.mu.Lock()
	defer a.fc.mu.Unlock()
	out := map[string]bool{}
	for k, v := range a.fc.nodes {
		out[k] = v
	}
	return out, nil
}

func (a *fakeAPI) ReusableToken(context.Context) (string, error) { return "", nil }

func (a *fakeAPI) EnsureAnnotation(context.Context, string, string, string) (bool, error) {
	return false, nil
}

func (a *fakeAPI) StrayNodes(context.Context, []string) ([]StrayNode, error) { return nil, nil }

func (a *fakeAPI) EnsureLabels(_ context.Context, name string, l map[string]string) (bool, error) {
	return true, nil
}

func (fc *fakeCluster) index(event string) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return slices.Index(fc.events, event)
}

func TestApplyOrder(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	fc := newFakeCluster(t, inv)
	fc.overlap = map[string]bool{"join": true, "prepare": true}
	var out bytes.Buffer
	o := fc.options(t, &out)
	t.Setenv("W3_SUDO", "x")
	res, err := Apply(context.Background(), inv, o)
	if err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.String())
	}
	// Every host prepared before init; init before every join; the
	// control planes one at a time; the workers at once.
	initAt := fc.index("start init cp1")
	for _, h := range []string{"cp1", "cp2", "cp3", "w1", "w2", "w3"} {
		if e := fc.index("end prepare " + h); e < 0 || e > initAt {
			t.Errorf("prepare on %s ended at %d, init started at %d", h, e, initAt)
		}
	}
	for _, h := range []string{"cp2", "cp3", "w1", "w2", "w3"} {
		if s := fc.index("start join " + h); s < fc.index("end init cp1") {
			t.Errorf("join %s started at %d, before init ended", h, s)
		}
	}
	if fc.index("start join cp3") < fc.index("end join cp2") {
		t.Errorf("control planes joined at once: %v", fc.events)
	}
	for _, h := range []string{"w1", "w2", "w3"} {
		if fc.index("start join "+h) < fc.index("end join cp3") {
			t.Errorf("worker %s joined before the control planes were done", h)
		}
	}
	if fc.peak["join"] < 2 {
		t.Errorf("workers never joined in parallel (peak %d)", fc.peak["join"])
	}
	if fc.peak["prepare"] < 2 {
		t.Errorf("prepare never ran in parallel (peak %d)", fc.peak["prepare"])
	}

	// Each host's configuration on stdin: its own name, the secrets only
	// where they belong, nothing secret in argv.
	var token string
	for name, f := range fc.hosts {
		for _, r := range f.Runs() {
			if r.Args[0] != testBinaryPath {
				continue
			}
			c, err := inventory.Parse("stdin", r.Stdin)
			if err != nil {
				t.Fatalf("%s %v: stdin is no configuration: %v", name, r.Args, err)
			}
			if c.Node.Name != name || len(c.Hosts) != 0 || c.SSH != nil {
				t.Errorf("%s: configuration for %q with hosts %v, ssh %v", name, c.Node.Name, c.Hosts, c.SSH)
			}
			switch r.Args[1] {
			case "init":
				if r.Args[2] == "phase" {
					continue
				}
				if c.Init == nil || c.Init.Token == "" || c.Init.CertificateKey == "" || !c.Init.UploadCerts {
					t.Errorf("init's section: %+v", c.Init)
				}
				token = c.Init.Token
			case "join":
				j := c.Join
				cp := strings.HasPrefix(name, "cp")
				if j == nil || j.APIServerEndpoint != "lb.example.com:6443" || len(j.CACertHashes) != 1 || j.ControlPlane != cp || (j.CertificateKey != "") != cp {
					t.Errorf("%s: join section %+v", name, j)
				}
			}
			for _, a := range r.Args {
				if token != "" && strings.Contains(a, strings.Split(token, ".")[1]) {
					t.Errorf("%s: the token is in argv: %v", name, r.Args)
				}
			}
		}
	}
	if token == "" {
		t.Fatal("init never ran")
	}
	if strings.Contains(out.String(), strings.Split(token, ".")[1]) {
		t.Errorf("the token's secret is in the output")
	}
	kc, err := os.Stat(o.KubeconfigOut)
	if err != nil || kc.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig: %v %v", kc, err)
	}
	for _, h := range res.Hosts {
		if h.Status != "ok" {
			t.Errorf("%s: %s", h.Name, h.Status)
		}
	}
	var sum bytes.Buffer
	WriteSummary(&sum, res)
	if !strings.Contains(sum.String(), "w1    worker") || !strings.Contains(sum.String(), "joined") {
		t.Errorf("summary:\n%s", sum.String())
	}

	// A second run: nothing uploaded, nobody joins again, few round trips.
	out.Reset()
	before := map[string]int{}
	for n, f := range fc.hosts {
		before[n] = len(f.Runs())
	}
	res, err = Apply(context.Background(), inv, o)
	if err != nil {
		t.Fatalf("second Apply: %v\n%s", err, out.String())
	}
	for _, h := range res.Hosts {
		var kubebootRuns []string
		for _, r := range fc.hosts[h.Name].Runs()[before[h.Name]:] {
			if r.Args[0] == testBinaryPath {
				kubebootRuns = append(kubebootRuns, strings.Join(r.Args[1:3], " "))
			}
		}
		want := []string{"init phase"}
		maxCalls := int64(5) // connect, probe, prepare, certs (and labels go through the API)
		if h.Name == "cp1" {
			want = append(want, "init --config")
			maxCalls = 8 // + init, ca.crt, admin.conf for the API and the kubeconfig
		}
		want = append(want, "certs check-expiration")
		if !slices.Equal(kubebootRuns, want) {
			t.Errorf("%s ran %v on the second apply, want %v", h.Name, kubebootRuns, want)
		}
		if h.Calls > maxCalls {
			t.Errorf("%s: %d round trips on a no-op apply, want at most %d", h.Name, h.Calls, maxCalls)
		}
		if slices.Contains(h.Did, "kubeboot uploaded") || slices.Contains(h.Did, "joined") {
			t.Errorf("%s did %v on the second apply", h.Name, h.Did)
		}
	}
	if !strings.Contains(out.String(), "[join] w2: already a Ready Node: nothing to do") {
		t.Errorf("second run does not say the workers are done:\n%s", out.String())
	}
}

func TestApplyStopsBeforeTheNextStep(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	fc := newFakeCluster(t, inv)
	fc.fail["prepare w1"] = "disk full"
	fc.fail["prepare cp2"] = "no space left on device"
	var out bytes.Buffer
	t.Setenv("W3_SUDO", "x")
	res, err := Apply(context.Background(), inv, fc.options(t, &out))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"cp2", "w1", "prepare"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if fc.index("start init cp1") >= 0 {
		t.Error("init ran after prepare failed")
	}
	for _, want := range []string{"[prepare] failed on 2 of 6 hosts (cp2, w1)", "run kubeboot apply again", "[prepare] w1: ", "disk full"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	status := map[string]string{}
	for _, h := range res.Hosts {
		status[h.Name] = h.Status
	}
	if status["w1"] != "failed" || status["cp2"] != "failed" || status["w2"] != "stopped" {
		t.Errorf("statuses: %v", status)
	}
}

func TestApplySaysAConnectionWasLost(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	fc := newFakeCluster(t, inv)
	fc.fail["prepare w1"] = "lost: connection lost"
	var out bytes.Buffer
	t.Setenv("W3_SUDO", "x")
	if _, err := Apply(context.Background(), inv, fc.options(t, &out)); err == nil {
		t.Fatal("no error")
	}
	want := "[prepare] w1: kubeboot init did not finish: connection lost; its last line: [prepare] running on w1"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "exited with -1") {
		t.Errorf("output lacks %q (or says exited with -1):\n%s", want, out.String())
	}
}

func TestApplyConnectFailureNamesEveryHost(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	fc := newFakeCluster(t, inv)
	var out bytes.Buffer
	o := fc.options(t, &out)
	o.Connect = func(ctx context.Context, inv *Inventory, i int) (transport.Host, error) {
		if n := inv.Hosts[i].Name; n == "w2" || n == "cp3" {
			return nil, fmt.Errorf("dial tcp %s:22: connection refused", inv.Hosts[i].Address)
		}
		return fc.hosts[inv.Hosts[i].Name], nil
	}
	_, err := Apply(context.Background(), inv, o)
	if err == nil || !strings.Contains(err.Error(), "cp3: dial tcp 10.0.0.13:22") || !strings.Contains(err.Error(), "w2: dial tcp 10.0.0.22:22") {
		t.Fatalf("error: %v", err)
	}
	// The hosts that were reached ran their read-only probe (it runs as
	// each connection comes up) and nothing else.
	for _, f := range fc.hosts {
		for _, r := range f.Runs() {
			if !r.ReadOnly {
				t.Errorf("%s ran %s after a failed connect", f.Name(), r)
			}
		}
		if _, _, ok := f.File(testBinaryPath); ok {
			t.Errorf("%s: kubeboot was uploaded after a failed connect", f.Name())
		}
	}
	if !strings.Contains(out.String(), "nothing after connect ran") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestNodeConfigIsACopy(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	a, err := NodeConfig(inv, &inv.Hosts[3], StepJoin, Secrets{Token: "abcdef.0123456789abcdef", CAPin: "sha256:" + strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	inventory.SetDefaults(a)
	if err := inventory.Validate(a); err != nil {
		t.Errorf("w1's configuration does not validate: %v", err)
	}
	a.APIServer.CertSANs = append(a.APIServer.CertSANs, "changed")
	a.Networking.PodSubnet = "changed"
	if slices.Contains(inv.APIServer.CertSANs, "changed") || inv.Networking.PodSubnet == "changed" || inv.Node.Name != "" {
		t.Error("NodeConfig shares values with the inventory")
	}
	if a.Node.Name != "w1" || a.Node.AdvertiseAddress != "10.0.0.21" || a.Join.ControlPlane || a.Join.CertificateKey != "" {
		t.Errorf("w1's configuration: %+v %+v", a.Node, a.Join)
	}
}

func TestNodeConfigTaints(t *testing.T) {
	inv := loadTestInventory(t, `apiVersion: kubeboot.io/v1alpha1
kind: Cluster
controlPlaneEndpoint: lb.lan
hosts:
  - {name: a, address: 10.0.0.1, roles: [control-plane, worker]}
  - {name: b, address: 10.0.0.2, roles: [control-plane], taints: [{key: x, effect: NoExecute}]}
  - {name: c, address: 10.0.0.3, roles: [control-plane]}
`)
	for i, want := range []string{"[]", "[{x  NoExecute}]", "nil"} {
		c, err := NodeConfig(inv, &inv.Hosts[i], StepInit, Secrets{})
		if err != nil {
			t.Fatal(err)
		}
		got := "nil"
		if c.Node.Taints != nil {
			got = fmt.Sprint(*c.Node.Taints)
		}
		if got != want {
			t.Errorf("%s: taints %s, want %s", inv.Hosts[i].Name, got, want)
		}
	}
}

// A bundle for another Kubernetes version stops apply before it connects.
func TestApplyRefusesABundleOfAnotherVersion(t *testing.T) {
	dir := t.TempDir()
	m, err := os.ReadFile("../bundle/testdata/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m = bytes.Replace(m, []byte(`"kubernetesVersion": "v1.34.3"`), []byte(`"kubernetesVersion": "v1.33.1"`), 1)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: int64(len(m))})
	tw.Write(m)
	tw.Close()
	if err := os.WriteFile(filepath.Join(dir, "b.tar"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := loadTestInventory(t, withBundle(testInventory, filepath.Join(dir, "b.tar")))
	fc := newFakeCluster(t, inv)
	var out bytes.Buffer
	_, err = Apply(context.Background(), inv, fc.options(t, &out))
	if err == nil || !strings.Contains(err.Error(), "carries Kubernetes v1.33.1, the cluster is v1.34.3") {
		t.Fatalf("error: %v", err)
	}
	for _, f := range fc.hosts {
		if len(f.Runs()) > 0 {
			t.Errorf("%s: ran %v", f.Name(), f.Commands())
		}
	}
}

// A host without the space for what apply would upload fails at facts,
// named with the file system, before anything is uploaded anywhere.
func TestApplyRefusesAFullDisk(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	fc := newFakeCluster(t, inv)
	fc.free["w1"] = "free=/var/lib/kubeboot 1000000 /\nfree=/var/lib/containerd 1000000 /\nfree=/usr/local/lib/kubeboot 0 /usr\n"
	fc.free["w2"] = "free=/usr/local/lib/kubeboot 1000000 /\n"
	var out bytes.Buffer
	t.Setenv("W3_SUDO", "x")
	_, err := Apply(context.Background(), inv, fc.options(t, &out))
	if err == nil {
		t.Fatal("no error")
	}
	want := "[facts] w1: not enough disk space: the file system on /usr has 0.0 MiB free, this run needs at least 0.0 MiB there (kubeboot 0.0 MiB in /usr/local/lib/kubeboot)"
	if !strings.Contains(out.String(), want) || !strings.Contains(err.Error(), "w1") || strings.Contains(out.String(), "[facts] w2: not enough") {
		t.Errorf("error %v; output lacks %q (or names w2):\n%s", err, want, out.String())
	}
	for _, f := range fc.hosts {
		for _, c := range f.Commands() {
			if strings.Contains(c, "sha256sum") || strings.HasPrefix(c, "ln ") {
				t.Errorf("%s: ran %s after the disk check failed", f.Name(), c)
			}
		}
		if _, _, ok := f.File(testBinaryPath); ok {
			t.Errorf("%s: kubeboot was uploaded", f.Name())
		}
	}
}

func TestCheckSpace(t *testing.T) {
	m := &bundle.Manifest{Files: []bundle.File{
		{Path: "bin/kubelet", Type: bundle.TypeBinary, Size: 80 << 20},
		{Path: "images/a.tar", Type: bundle.TypeImages, Size: 200 << 20},
	}}
	const bundleSize, binSize = 281 << 20, 70 << 20
	one := func(mount string, mib int64) map[string]diskFree {
		return map[string]diskFree{spaceBundleDir: {mib << 20, mount}, spaceContainerdDir: {mib << 20, mount}, spaceBinaryDir: {mib << 20, mount}}
	}
	for _, tc := range []struct {
		name                 string
		free                 map[string]diskFree
		newBundle, newBinary bool
		want                 string // "" for no error
	}{
		// 281 + 280 + 200 + 70 = 831 MiB on one file system.
		{"one fs, enough", one("/", 900), true, true, ""},
		{"one fs, short", one("/", 800), true, true, "the file system on / has 800.0 MiB free, this run needs at least 831.0 MiB there (the bundle 281.0 MiB in /var/lib/kubeboot, its files unpacked 280.0 MiB in /var/lib/kubeboot, the images in containerd 200.0 MiB in /var/lib/containerd, kubeboot 70.0 MiB in /usr/local/lib/kubeboot)"},
		{"bundle there already", one("/", 100), false, true, ""},
		{"nothing new", one("/", 0), false, false, ""},
		{"containerd on its own disk, short", map[string]diskFree{
			spaceBundleDir: {1 << 30, "/"}, spaceBinaryDir: {1 << 30, "/"}, spaceContainerdDir: {100 << 20, "/var/lib/containerd"},
		}, true, true, "the file system on /var/lib/containerd has 100.0 MiB free, this run needs at least 200.0 MiB there (the images in containerd 200.0 MiB in /var/lib/containerd)"},
		{"no df on the host", map[string]diskFree{}, true, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSpace(tc.free, spaceNeeds(m, bundleSize, tc.newBundle, binSize, tc.newBinary))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want it to hold %q", err, tc.want)
			}
		})
	}
}

// The probe and the verify scripts, run by a real sh.
func TestProbeAndVerifyScripts(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubeboot-x")
	if err := os.WriteFile(bin, testBinary, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	probe := func() string {
		r, err := transport.NewLocal().Run(ctx, transport.Cmd{Args: []string{"sh", "-c", probeScript, "sh", bin, filepath.Join(dir, "none.tar")}})
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Stdout)
	}
	if out := probe(); !strings.HasPrefix(out, "arch="+unameArch(runtime.GOARCH)+"\n") || strings.Contains(out, "bin=") || strings.Contains(out, "bundle=") {
		t.Errorf("probe before the marker:\n%s", out)
	}
	// Every directory's free space, measured on its nearest existing parent.
	free := map[string]diskFree{}
	for _, l := range strings.Split(probe(), "\n") {
		if v, ok := strings.CutPrefix(l, "free="); ok {
			dir, f, ok := parseFree(v)
			if !ok {
				t.Errorf("probe line %q does not parse", l)
			}
			free[dir] = f
		}
	}
	for _, d := range []string{spaceBundleDir, spaceContainerdDir, spaceBinaryDir} {
		if f, ok := free[d]; !ok || f.bytes <= 0 || !strings.HasPrefix(f.mount, "/") {
			t.Errorf("probe's free space of %s: %+v (%v)", d, f, ok)
		}
	}
	if _, err := transport.NewLocal().Run(ctx, transport.Cmd{Args: []string{"sh", "-c", verifyScript, "sh", strings.Repeat("0", 64), bin}}); err == nil {
		t.Error("verify accepted a wrong checksum")
	}
	if _, err := transport.NewLocal().Run(ctx, transport.Cmd{Args: []string{"sh", "-c", verifyScript, "sh", sum(testBinary), bin}}); err != nil {
		t.Fatal(err)
	}
	if out := probe(); !strings.Contains(out, "\nbin="+sum(testBinary)+"\n") || !strings.Contains(out, "free=") {
		t.Errorf("probe after the marker (the bundle still to upload: the free space):\n%s", out)
	}
	r, err := transport.NewLocal().Run(ctx, transport.Cmd{Args: []string{"sh", "-c", probeScript, "sh", bin, ""}})
	if out := string(r.Stdout); err != nil || !strings.Contains(out, "\nbin="+sum(testBinary)+"\n") || strings.Contains(out, "free=") {
		t.Errorf("probe with no bundle, after the marker (nothing to upload, so no free space): %v\n%s", err, out)
	}
}

// What counts as a change in kubeboot's output: lines from a real no-op
// init and prepare do not; writes, new keys and objects, imports do.
func TestChangeLines(t *testing.T) {
	for line, want := range map[string]bool{
		`[certs] Using existing ca certificate authority`:                                                             false,
		`[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace`: false,
		`[cni] Installing flannel for the pod network 10.244.0.0/16`:                                                  false,
		`[kubelet-start] The kubelet is running with this configuration; not restarting it`:                           false,
		`[prepare] Using existing containerd configuration /etc/containerd/config.toml`:                               false,
		`[certs] Generating "apiserver" certificate and key`:                                                          true,
		`[bootstrap-token] Created bootstrap token abcdef (Secret kube-system/bootstrap-token-abcdef)`:                true,
		`[prepare] Importing 9 images into containerd`:                                                                true,
		`[prepare] Installing containerd, runc from Debian's packages`:                                                true,
		`[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"`:                        true,
	} {
		if got := changeRE.MatchString(line); got != want {
			t.Errorf("%q: change %v, want %v", line, got, want)
		}
	}
}

// expiringCert is a certificate that expires in five days.
func expiringCert(t *testing.T, cn string) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(5 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestApplyWarnsAboutExpiringCertificates: apply's last step reads every
// host's certificates and names each that expires within 30 days, with
// what to do; a host it cannot read gets a warning, not a failed apply.
func TestApplyWarnsAboutExpiringCertificates(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	fc := newFakeCluster(t, inv)
	var out bytes.Buffer
	o := fc.options(t, &out)
	t.Setenv("W3_SUDO", "x")
	fc.hosts["cp2"].SetFile("/etc/kubernetes/pki/apiserver.crt", expiringCert(t, "kube-apiserver"), 0o644)
	fc.hosts["w1"].SetFile("/var/lib/kubelet/pki/kubelet-client-current.pem", expiringCert(t, "system:node:w1"), 0o600)
	if _, err := Apply(context.Background(), inv, o); err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"[certs] cp2: warning: apiserver expires ",
		"(4d left): renew it with `kubeboot certs renew apiserver` on cp2",
		"[certs] w1: warning: /var/lib/kubelet/pki/kubelet-client-current.pem expires ",
		"the kubelet rotates it: look at why it did not (journalctl -u kubelet on w1)",
		// The fake's admin.conf has no user.
		"[certs] cp1: warning: cannot check the certificates: kubeboot certs check-expiration: /etc/kubernetes/admin.conf has 0 users",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "none expires within") {
		t.Errorf("all clear despite the warnings")
	}
}
