//go:build integration

// Package integration proves kubeboot's offline init phases on the real
// control-plane binaries: `kubeboot init --dry-run` writes every file below a
// directory, and each component is then started exactly as its generated
// static pod manifest says (command, args, probes), with the dry-run
// directory standing in for the host paths the manifest mounts.
//
// Run it through test/integration/run.sh (make integration): it needs root
// and runs inside a private network namespace whose default route holds the
// advertise address, so nothing listens outside the test.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

const nodeName = "kb-it-node"

// env holds what run.sh passes in.
type env struct {
	kubeboot string // the kubeboot binary
	binDir   string // kube-apiserver, kube-controller-manager, kube-scheduler, etcd
	addr     string // the advertise address (on the namespace's default route)
	logDir   string // component logs, kept on failure
}

func getEnv(t *testing.T) env {
	t.Helper()
	if os.Getenv("KUBEBOOT_IT_NETNS") != "1" {
		t.Skip("run through test/integration/run.sh (make integration): needs root and a private network namespace")
	}
	e := env{
		kubeboot: os.Getenv("KUBEBOOT_BIN"),
		binDir:   os.Getenv("K8S_BIN_DIR"),
		addr:     os.Getenv("KUBEBOOT_IT_ADDR"),
		logDir:   os.Getenv("KUBEBOOT_IT_LOGS"),
	}
	for k, v := range map[string]string{"KUBEBOOT_BIN": e.kubeboot, "K8S_BIN_DIR": e.binDir, "KUBEBOOT_IT_ADDR": e.addr} {
		if v == "" {
			t.Fatalf("%s is not set; run through test/integration/run.sh", k)
		}
	}
	if e.logDir == "" {
		e.logDir = t.TempDir()
	}
	return e
}

// TestInitDryRunControlPlane is the foundation issue's proof: the files a
// dry-run init writes make a working control plane.
func TestInitDryRunControlPlane(t *testing.T) {
	e := getEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()

	root := t.TempDir() // removed by the testing package, pass or fail
	// The node's advertise address comes from the default route, as on a
	// real host: the flags name only the node.
	out := runKubeboot(t, e, root, "init", "--dry-run", "--dry-run-dir", root, "--node-name", nodeName)
	for _, want := range []string{
		"[certs] Generating \"ca\" certificate and key",
		"[kubeconfig] Writing \"super-admin.conf\" kubeconfig file",
		"[etcd] Creating static Pod manifest for \"etcd\"",
		"[control-plane] Creating static Pod manifest for \"kube-apiserver\"",
		"[kubelet-start] Writing kubelet configuration to file",
		", " + e.addr + ")", // the advertise address from the default route
	} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q", want)
		}
	}
	for _, p := range []string{"etc/kubernetes/pki/ca.crt", "etc/kubernetes/manifests/etcd.yaml", "var/lib/kubelet/config.yaml", "etc/kubernetes/admin.conf"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("dry run did not write %s: %v", p, err)
		}
	}
	assertModes(t, root)

	// A second dry run into the same directory reuses every file.
	before := hashTree(t, root)
	out = runKubeboot(t, e, root, "init", "--dry-run", "--dry-run-dir", root, "--node-name", nodeName)
	if !strings.Contains(out, "Using existing ca certificate authority") || strings.Contains(out, "Generating") {
		t.Errorf("second run did not reuse the PKI:\n%s", out)
	}
	if after := hashTree(t, root); !equalMaps(before, after) {
		t.Errorf("second run changed files: %v", diffMaps(before, after))
	}

	procs := &processes{t: t}
	t.Cleanup(procs.stopAll)

	// Start in dependency order; each must pass its own manifest's probes.
	for _, comp := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		pod := readManifest(t, root, comp)
		procs.start(ctx, e, root, pod)
		waitProbes(ctx, t, procs, pod, e.addr)
		t.Logf("%s: probes pass", comp)
	}

	pki := filepath.Join(root, "etc/kubernetes/pki")

	t.Run("etcd is healthy to the healthcheck client", func(t *testing.T) {
		c := tlsClient(t, filepath.Join(pki, "etcd/ca.crt"), filepath.Join(pki, "etcd/healthcheck-client.crt"), filepath.Join(pki, "etcd/healthcheck-client.key"))
		for _, host := range []string{"127.0.0.1", e.addr} {
			body := httpGet(ctx, t, c, "https://"+net.JoinHostPort(host, "2379")+"/health")
			var h struct{ Health string }
			if err := json.Unmarshal(body, &h); err != nil || h.Health != "true" {
				t.Errorf("etcd /health on %s = %s", host, body)
			}
		}
		// The etcd CA does not trust the cluster CA's clients.
		bad := tlsClient(t, filepath.Join(pki, "etcd/ca.crt"), filepath.Join(pki, "apiserver-kubelet-client.crt"), filepath.Join(pki, "apiserver-kubelet-client.key"))
		if _, err := bad.Get("https://127.0.0.1:2379/health"); err == nil {
			t.Errorf("etcd accepted a client certificate from the Kubernetes CA")
		}
	})

	superAdmin := clientFor(t, root, "super-admin.conf")

	t.Run("kube-apiserver readyz is ok", func(t *testing.T) {
		body, err := superAdmin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || strings.TrimSpace(string(body)) != "ok" {
			t.Fatalf("/readyz = %q, %v", body, err)
		}
	})

	t.Run("super-admin.conf lists namespaces", func(t *testing.T) {
		ns, err := superAdmin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range ns.Items {
			names = append(names, n.Name)
		}
		for _, want := range []string{"default", "kube-system", "kube-public"} {
			if !contains(names, want) {
				t.Errorf("namespaces %v lack %s", names, want)
			}
		}
	})

	t.Run("kubeconfigs authenticate as kubeadm's users", func(t *testing.T) {
		for _, tc := range []struct {
			file, user, group string
		}{
			{"super-admin.conf", "kubernetes-super-admin", "system:masters"},
			{"admin.conf", "kubernetes-admin", "kubeadm:cluster-admins"},
			{"kubelet.conf", "system:node:" + nodeName, "system:nodes"},
			{"controller-manager.conf", "system:kube-controller-manager", ""},
			{"scheduler.conf", "system:kube-scheduler", ""},
		} {
			u := whoami(ctx, t, clientFor(t, root, tc.file))
			if u.Username != tc.user || (tc.group != "" && !contains(u.Groups, tc.group)) {
				t.Errorf("%s authenticates as %s %v, want %s in %q", tc.file, u.Username, u.Groups, tc.user, tc.group)
			}
		}
	})

	t.Run("controller-manager and scheduler hold their leader leases", func(t *testing.T) {
		for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
			var holder string
			poll(ctx, t, 90*time.Second, "lease "+lease, func() error {
				l, err := superAdmin.CoordinationV1().Leases("kube-system").Get(ctx, lease, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
					return fmt.Errorf("no holder")
				}
				holder = *l.Spec.HolderIdentity
				return nil
			})
			t.Logf("lease %s held by %s", lease, holder)
		}
	})

	t.Run("a service account token is issued and accepted", func(t *testing.T) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kubeboot-it"}}
		if _, err := superAdmin.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := superAdmin.CoreV1().ServiceAccounts("default").CreateToken(ctx, "kubeboot-it", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest (signed with sa.key): %v", err)
		}
		cfg := restConfig(t, root, "super-admin.conf")
		cfg = rest.AnonymousClientConfig(cfg)
		cfg.BearerToken = tr.Status.Token
		u := whoami(ctx, t, kubernetes.NewForConfigOrDie(cfg))
		if u.Username != "system:serviceaccount:default:kubeboot-it" {
			t.Errorf("the token authenticates as %q", u.Username)
		}
		// The token's issuer is the one the manifest names.
		if iss := tokenIssuer(t, tr.Status.Token); iss != "https://kubernetes.default.svc.cluster.local" {
			t.Errorf("token issuer %q", iss)
		}
		// The controller-manager's token controller uses sa.key too:
		// it publishes kube-root-ca.crt into every namespace.
		poll(ctx, t, 60*time.Second, "kube-root-ca.crt", func() error {
			cm, err := superAdmin.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			if err != nil {
				return err
			}
			ca, _ := os.ReadFile(filepath.Join(pki, "ca.crt"))
			if strings.TrimSpace(cm.Data["ca.crt"]) != strings.TrimSpace(string(ca)) {
				return fmt.Errorf("kube-root-ca.crt is not ca.crt")
			}
			return nil
		})
	})

	t.Run("Secrets are encrypted at rest, and the audit log has no Secret data", func(t *testing.T) {
		secretsAtRest(ctx, t, e, root, superAdmin)
		// init again keeps the key: the Secret stays readable.
		cfgFile := filepath.Join(root, "etc/kubernetes/encryption-config.yaml")
		before, _ := os.ReadFile(cfgFile)
		out := runKubeboot(t, e, root, "init", "--dry-run", "--dry-run-dir", root, "--node-name", nodeName)
		if after, _ := os.ReadFile(cfgFile); len(before) == 0 || !bytes.Equal(before, after) {
			t.Errorf("init again changed %s", cfgFile)
		}
		if !strings.Contains(out, "Using the existing encryption configuration") {
			t.Errorf("init again did not say it kept the key:\n%s", out)
		}
		if s, err := superAdmin.CoreV1().Secrets("default").Get(ctx, secretName, metav1.GetOptions{}); err != nil || string(s.Data["password"]) != secretValue {
			t.Errorf("%s after init again: %v", secretName, err)
		}
	})

	// The same control plane serves the online phases and join's side of
	// them (online_test.go).
	controlPlaneOK := !t.Failed()
	if controlPlaneOK {
		t.Run("online phases", func(t *testing.T) { onlinePhases(ctx, t, e, root) })
	}
	// A second control plane joins it (join_test.go). It needs what the
	// online phases set up, not every one of their checks to pass.
	if controlPlaneOK {
		t.Run("join a second control plane", func(t *testing.T) { joinSecondControlPlane(ctx, t, e, root) })
	}
	// Last: it restarts the API server three times.
	if controlPlaneOK {
		t.Run("rotate-key: every Secret re-encrypted under a new key", func(t *testing.T) { rotateKey(ctx, t, e, root, procs, superAdmin) })
	}
}

func runKubeboot(t *testing.T, e env, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.kubeboot, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	t.Logf("kubeboot %s:\n%s", strings.Join(args, " "), buf.String())
	if err != nil {
		t.Fatalf("kubeboot %s: %v", strings.Join(args, " "), err)
	}
	return buf.String()
}

func readManifest(t *testing.T, root, comp string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/manifests", comp+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatalf("%s.yaml is not a valid Pod: %v", comp, err)
	}
	if len(pod.Spec.Containers) != 1 || !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" {
		t.Fatalf("%s.yaml: want one container, hostNetwork and system-node-critical", comp)
	}
	return &pod
}

// hostArgs rewrites the container's command line for the test: every path
// inside a hostPath volume's mountPath is moved below root, where the dry
// run wrote the host's files. Nothing else changes.
func hostArgs(pod *corev1.Pod, root string) []string {
	c := pod.Spec.Containers[0]
	mounts := map[string]string{} // mountPath -> hostPath
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			vols[v.Name] = v.HostPath.Path
		}
	}
	for _, m := range c.VolumeMounts {
		if hp, ok := vols[m.Name]; ok {
			mounts[m.MountPath] = hp
		}
	}
	var keys []string
	for k := range mounts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) }) // longest first
	rewrite := func(p string) string {
		for _, mp := range keys {
			if p == mp || strings.HasPrefix(p, mp+"/") {
				return filepath.Join(root, mounts[mp], strings.TrimPrefix(p, mp))
			}
		}
		return p
	}
	args := append(append([]string(nil), c.Command...), c.Args...)
	for i, a := range args[1:] {
		name, val, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(val, "/") {
			continue
		}
		args[i+1] = name + "=" + rewrite(val)
	}
	return args
}

type processes struct {
	t     *testing.T
	procs []*exec.Cmd
	logs  map[string]string
}

func (p *processes) start(ctx context.Context, e env, root string, pod *corev1.Pod) {
	t := p.t
	t.Helper()
	args := hostArgs(pod, root)
	bin := filepath.Join(e.binDir, filepath.Base(args[0]))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: the manifest runs %q, not in %s", pod.Name, args[0], e.binDir)
	}
	logPath := filepath.Join(e.logDir, pod.Name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", pod.Name, err)
	}
	t.Logf("started %s (pid %d): %s", pod.Name, cmd.Process.Pid, strings.Join(args, " "))
	p.procs = append(p.procs, cmd)
	if p.logs == nil {
		p.logs = map[string]string{}
	}
	p.logs[pod.Name] = logPath
}

// stopAll stops every process the test started, newest first, and prints
// the tail of each log when the test failed.
func (p *processes) stopAll() {
	for i := len(p.procs) - 1; i >= 0; i-- {
		c := p.procs[i]
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if p.t.Failed() {
		for name, path := range p.logs {
			p.t.Logf("--- last lines of %s ---\n%s", name, tail(path, 30))
		}
	}
}

func (p *processes) exited(name string) error {
	for _, c := range p.procs {
		if strings.Contains(c.Path, name) && c.ProcessState == nil {
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(c.Process.Pid, &ws, syscall.WNOHANG, nil); pid == c.Process.Pid {
				return fmt.Errorf("%s exited (%v); its log:\n%s", name, ws, tail(p.logs[name], 30))
			}
		}
	}
	return nil
}

// waitProbes polls the container's startup and readiness probes as the
// kubelet would, until both pass.
func waitProbes(ctx context.Context, t *testing.T, p *processes, pod *corev1.Pod, addr string) {
	t.Helper()
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	pollProbes(ctx, t, pod.Name, pod, addr, insecure, func() error { return p.exited(pod.Name) })
}

// pollProbes polls the pod's HTTP probes with client until each passes;
// addr stands in for the probes' empty host (the pod IP of a hostNetwork
// pod), alive fails the test when the component died. what names the pod in
// messages.
func pollProbes(ctx context.Context, t *testing.T, what string, pod *corev1.Pod, addr string, client *http.Client, alive func() error) {
	t.Helper()
	c := pod.Spec.Containers[0]
	var probes []*corev1.Probe
	for _, pr := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if pr != nil {
			probes = append(probes, pr)
		}
	}
	if len(probes) == 0 {
		t.Fatalf("%s has no probes", what)
	}
	for _, pr := range probes {
		g := pr.HTTPGet
		if g == nil {
			t.Fatalf("%s: probe is not an HTTP GET", what)
		}
		host := g.Host
		if host == "" {
			host = addr // the pod IP of a hostNetwork pod
		}
		port := g.Port.String()
		if g.Port.Type == intstr.String { // a named container port
			port = ""
			for _, cp := range c.Ports {
				if cp.Name == g.Port.StrVal {
					port = strconv.Itoa(int(cp.ContainerPort))
				}
			}
			if port == "" {
				t.Fatalf("%s: probe names port %q, which the container does not declare", what, g.Port.StrVal)
			}
		}
		url := fmt.Sprintf("%s://%s%s", strings.ToLower(string(g.Scheme)), net.JoinHostPort(host, port), g.Path)
		poll(ctx, t, 2*time.Minute, what+" probe "+url, func() error {
			if err := alive(); err != nil {
				t.Fatal(err)
			}
			resp, err := client.Get(url)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode < 200 || resp.StatusCode >= 400 {
				return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
			}
			return nil
		})
	}
}

func poll(ctx context.Context, t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: not ready after %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func restConfig(t *testing.T, root, file string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(root, "etc/kubernetes", file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	cfg.Timeout = 20 * time.Second
	return cfg
}

func clientFor(t *testing.T, root, file string) *kubernetes.Clientset {
	t.Helper()
	return kubernetes.NewForConfigOrDie(restConfig(t, root, file))
}

func whoami(ctx context.Context, t *testing.T, c kubernetes.Interface) authenticationv1.UserInfo {
	t.Helper()
	r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	return r.Status.UserInfo
}

func tokenIssuer(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Iss string }
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Iss
}

func tlsClient(t *testing.T, caFile, certFile, keyFile string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("read CA %s: %v", caFile, err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
}

func httpGet(ctx context.Context, t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// assertModes checks kubeadm's file modes: private keys and kubeconfigs
// 0600; and kubeboot's API server files (encryption, audit, admission)
// 0600 too.
func assertModes(t *testing.T, root string) {
	t.Helper()
	_ = filepath.WalkDir(filepath.Join(root, "etc/kubernetes"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, _ := d.Info()
		want := fs.FileMode(0o644)
		if strings.HasSuffix(p, ".key") || strings.HasSuffix(p, ".conf") || strings.Contains(p, "/manifests/") || strings.HasSuffix(p, "/etc/kubernetes/"+filepath.Base(p)) && strings.HasSuffix(p, ".yaml") {
			want = 0o600
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", strings.TrimPrefix(p, root), info.Mode().Perm(), want)
		}
		return nil
	})
}

func hashTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		out[strings.TrimPrefix(p, root)] = fmt.Sprintf("%x %d", sha256.Sum256(b), info.ModTime().UnixNano())
		return nil
	})
	return out
}

func equalMaps(a, b map[string]string) bool { return len(diffMaps(a, b)) == 0 }

func diffMaps(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k+" (new)")
		}
	}
	sort.Strings(d)
	return d
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
