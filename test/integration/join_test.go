//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"
)

// The second control plane: its own network namespace (two API servers,
// two etcds, two controller-managers cannot share one: they bind the same
// ports), reached from the first over a veth pair.
const (
	cp2Name = "kb-it-cp2"
	cp2Addr = "10.250.0.3"
)

// joinSecondControlPlane runs the real `kubeboot join --control-plane`
// against the control plane of TestInitDryRunControlPlane (after its online
// phases) from a second node: a network namespace of its own (10.250.0.3)
// and a private mount namespace whose /etc/kubernetes, /var/lib/kubelet,
// /var/lib/etcd and /etc/systemd/system are fresh directories. Every join
// phase runs but kubeboot's prepare (it would install packages on the
// machine running the test); the test stands in for the second node's
// kubelet, which has two
// jobs here: run the static pods (each component is started exactly as its
// generated manifest says, when the manifest appears) and the TLS bootstrap
// (a CSR with bootstrap-kubelet.conf, as the kubelet makes it, approved
// and signed by the real controller-manager, then kubelet.conf written as
// the kubelet writes it and the Node registered with the new credential).
// The real kubelet joining a real machine is the e2e test's (test/e2e).
func joinSecondControlPlane(ctx context.Context, t *testing.T, e env, root string) {
	start := time.Now()
	ns := newNetns(t)
	ns.link(t, e.addr, cp2Addr)
	endpoint := e.addr + ":6443"
	admin := filepath.Join(root, "etc/kubernetes/admin.conf")
	superAdmin := clientFor(t, root, "super-admin.conf")

	// A fresh certificate key and upload (the online phases' upload
	// expired on purpose), and a join command from `token create`.
	bindMount(t, filepath.Join(root, "etc/kubernetes"), "/etc/kubernetes")
	key := strings.TrimSpace(runKubebootQuiet(t, e, "certs", "certificate-key"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(key) {
		t.Fatalf("certs certificate-key printed %q", key)
	}
	runKubeboot(t, e, root, "init", "phase", "upload-certs", "--upload-certs", "--certificate-key", key,
		"--node-name", nodeName, "--control-plane-endpoint", endpoint)
	joinLine := strings.TrimSpace(runKubebootQuiet(t, e, "token", "create", "--kubeconfig", admin, "--print-join-command"))
	m := regexp.MustCompile(`^kubeboot join (\S+) --token ([a-z0-9]{6}\.[a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})$`).FindStringSubmatch(joinLine)
	if m == nil || m[1] != endpoint {
		t.Fatalf("token create --print-join-command printed %q", joinLine)
	}
	token, pin := m[2], m[3]
	waitSigned(ctx, t, superAdmin, token[:6], true)

	t.Run("refusals: wrong pin, wrong token, deleted, expired and unknown tokens, unreachable endpoint", func(t *testing.T) {
		expiresAt := time.Now().Add(3 * time.Second)
		expired := strings.TrimSpace(runKubebootQuiet(t, e, "token", "create", "--kubeconfig", admin, "--ttl", "3s"))
		deleted := strings.TrimSpace(runKubebootQuiet(t, e, "token", "create", "--kubeconfig", admin))
		waitSigned(ctx, t, superAdmin, deleted[:6], true)
		runKubeboot(t, e, root, "token", "delete", "--kubeconfig", admin, deleted[:6])
		waitSigned(ctx, t, superAdmin, deleted[:6], false)
		// Signed with the deleted one, its signature goes when the
		// tokencleaner deletes it at its expiry.
		time.Sleep(time.Until(expiresAt))
		waitSigned(ctx, t, superAdmin, expired[:6], false)
		unknown := "zzzzzz.0123456789abcdef"
		rejected := func(tok string) string {
			return "the API server rejects bootstrap token " + tok[:6] + ": it is wrong, expired or deleted (a joining node cannot tell which); create one on a control plane with `kubeboot token create --print-join-command`"
		}
		// The endpoint and a short discovery timeout from a file, the
		// secrets from flags (kubeboot join --config FILE --token ...).
		conf := func(ep string) string {
			p := filepath.Join(t.TempDir(), "join.yaml")
			body := "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ntimeouts:\n  discovery: 8s\njoin:\n  apiServerEndpoint: " + ep + "\n"
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		messages := map[string]bool{}
		for _, tc := range []struct {
			name, endpoint, token, pin, want string
			// fast: refused in a few seconds, well before the 8s
			// discovery timeout (else only at it)
			fast bool
		}{
			{"wrong pin", endpoint, token, "sha256:" + strings.Repeat("0", 64), "the cluster CA does not match the --discovery-token-ca-cert-hash pin(s): its hash is " + pin + "; check the pin on a control-plane node with: openssl", true},
			{"wrong token", endpoint, token[:7] + "0000000000000000", pin, "the cluster-info signature for token " + token[:6] + " does not verify: the token secret is wrong (or cluster-info was altered on the way); check the whole token with `kubeboot token list`", true},
			{"deleted token", endpoint, deleted, pin, rejected(deleted), true},
			{"expired token", endpoint, expired, pin, rejected(expired), true},
			{"unknown token", endpoint, unknown, pin, rejected(unknown), true},
			{"unreachable endpoint", e.addr + ":1", token, pin, "cannot reach the API server at https://" + e.addr + ":1: dial tcp " + e.addr + ":1: connect: connection refused; check the address and that port 1 is open; gave up after 8s", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dir := newNodeRoot(t)
				began := time.Now()
				// --skip-phases prepare: were discovery to succeed after all,
				// prepare would install packages, write sysctls and turn swap
				// off on the machine running the test.
				stdout, stderr, err := ns.kubeboot(e, dir, "join", "--config", conf(tc.endpoint), "--token", tc.token,
					"--discovery-token-ca-cert-hash", tc.pin, "--node-name", "kb-it-refused", "--skip-phases", "prepare")
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() == 0 {
					t.Fatalf("kubeboot join did not fail (%v):\n%s", err, stdout)
				}
				msg := strings.TrimSuffix(stderr, "\n")
				if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "error: join phase discovery: ") {
					t.Errorf("stderr is not one error line:\n%s", stderr)
				}
				if !strings.Contains(msg, tc.want) {
					t.Errorf("stderr\n %s\nlacks\n %s", msg, tc.want)
				}
				if strings.Contains(msg, token[7:]) {
					t.Errorf("stderr shows the token secret")
				}
				if files := filesUnder(t, dir); len(files) > 0 {
					t.Errorf("a refused join wrote %v", files)
				}
				took := time.Since(began)
				if tc.fast && took > 5*time.Second {
					t.Errorf("refused after %s, want within 5s (the discovery timeout is 8s)", took.Round(100*time.Millisecond))
				}
				messages[msg] = true
				t.Logf("%s after %s (exit %d): %s", tc.name, took.Round(100*time.Millisecond), ee.ExitCode(), msg)
			})
		}
		if len(messages) != 6 {
			t.Errorf("the six refusals do not each have their own message")
		}
	})

	// The join itself, in the background; the test plays the kubelet.
	dir := newNodeRoot(t)
	args := []string{"join", endpoint, "--token", token, "--discovery-token-ca-cert-hash", pin,
		"--control-plane", "--certificate-key", key, "--apiserver-advertise-address", cp2Addr, "--node-name", cp2Name,
		// No container runtime in the test's namespaces, and no packages
		// to install: prepare would install them on the machine running
		// the test (the e2e test runs it on real machines).
		"--ignore-preflight-errors", "CRI", "--skip-phases", "prepare"}
	var out bytes.Buffer
	join := ns.kubebootCmd(e, dir, args...)
	logFile, err := os.Create(filepath.Join(e.logDir, "kubeboot-join.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	join.Stdout = io.MultiWriter(&out, logFile)
	join.Stderr = join.Stdout
	joinStart := time.Now()
	if err := join.Start(); err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1)
	go func() { joined <- join.Wait() }()
	t.Cleanup(func() {
		if join.ProcessState == nil {
			_ = join.Process.Kill()
		}
	})
	var joinErr error
	joinDone := false
	alive := func() error {
		if joinDone {
			return joinErr
		}
		select {
		case joinErr = <-joined:
			joinDone = true
			if joinErr != nil {
				return fmt.Errorf("kubeboot join failed: %v\n%s", joinErr, out.String())
			}
		default:
		}
		return nil
	}
	waitFile := func(rel string) {
		t.Helper()
		poll(ctx, t, 3*time.Minute, rel, func() error {
			if err := alive(); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Join(dir, rel))
			return err
		})
	}

	procs := &processes{t: t}
	t.Cleanup(procs.stopAll)
	// etcd's manifest appears once the member is added: start it at once
	// (the learner must catch up before join can promote it).
	waitFile("etc/kubernetes/manifests/etcd.yaml")
	t.Logf("etcd.yaml after %s", time.Since(joinStart).Round(100*time.Millisecond))
	etcdPod := readManifest(t, dir, "etcd")
	procs.startIn(ctx, ns, e, dir, etcdPod)
	// Whatever happens next, the first control plane must keep its quorum:
	// the second member leaves before its etcd stops.
	t.Cleanup(func() { removeEtcdMember(t, root, e.addr, cp2Name) })
	ns.waitProbes(ctx, t, etcdPod, cp2Addr, alive)
	for _, comp := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		pod := readManifest(t, dir, comp)
		procs.startIn(ctx, ns, e, dir, pod)
		ns.waitProbes(ctx, t, pod, cp2Addr, alive)
		t.Logf("%s of %s: probes pass after %s", comp, cp2Name, time.Since(joinStart).Round(100*time.Millisecond))
	}

	// The kubelet's TLS bootstrap, from bootstrap-kubelet.conf as
	// kubelet-start wrote it.
	waitFile("etc/kubernetes/bootstrap-kubelet.conf")
	boot := filepath.Join(dir, "etc/kubernetes/bootstrap-kubelet.conf")
	if fi, err := os.Stat(boot); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("bootstrap-kubelet.conf: %v", err)
	}
	bootRC, err := clientcmd.BuildConfigFromFlags("", boot)
	if err != nil {
		t.Fatal(err)
	}
	if bootRC.Host != "https://"+cp2Addr+":6443" {
		t.Errorf("bootstrap-kubelet.conf points at %s, want this node's own API server (ControlPlaneKubeletLocalMode)", bootRC.Host)
	}
	standInKubeletBootstrap(ctx, t, dir, bootRC)

	select {
	case joinErr = <-joined:
		joinDone = true
	case <-time.After(3 * time.Minute):
		t.Fatalf("kubeboot join has not finished 3 minutes after the kubelet bootstrapped:\n%s", out.String())
	}
	if joinErr != nil {
		t.Fatalf("kubeboot join: %v\n%s", joinErr, out.String())
	}
	t.Logf("kubeboot join (control plane, every phase) took %s:\n%s", time.Since(joinStart).Round(100*time.Millisecond), out.String())
	for _, want := range []string{
		"[preflight] [WARNING CRI]",
		"[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots",
		"[download-certs] Saving the certificates to the folder",
		"[certs] Using existing ca certificate authority",
		"[certs] Using existing etcd-ca certificate authority",
		"[check-etcd] All 1 etcd member(s) are healthy",
		"[kubelet-start] systemd is not PID 1",
		"[etcd] Announced new etcd member joining to the existing etcd cluster",
		`[etcd] The etcd member "` + cp2Name + `" is a healthy voting member`,
		`The kubelet wrote /etc/kubernetes/kubelet.conf and registered Node "` + cp2Name + `"`,
		"This node has joined the cluster and a new control plane instance was created",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("join output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), key) || strings.Contains(out.String(), token[7:]) {
		t.Errorf("the join output shows the certificate key or the token secret")
	}

	t.Run("the etcd cluster has two healthy voting members", func(t *testing.T) {
		pki := filepath.Join(root, "etc/kubernetes/pki")
		tlsConfig := etcdTLS(t, pki)
		all := []string{"https://" + e.addr + ":2379", "https://" + cp2Addr + ":2379"}
		cli := etcdClient(t, all, tlsConfig)
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := cli.MemberList(cctx)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, mem := range resp.Members {
			names[mem.Name] = true
			if mem.IsLearner || len(mem.ClientURLs) == 0 {
				t.Errorf("member %s: learner %v, client URLs %v", mem.Name, mem.IsLearner, mem.ClientURLs)
			}
		}
		if len(resp.Members) != 2 || !names[nodeName] || !names[cp2Name] {
			t.Errorf("members %v", names)
		}
		// Each member answers on its own, and serves a linearizable read
		// (which needs the quorum of both).
		for _, ep := range all {
			one := etcdClient(t, []string{ep}, tlsConfig)
			if _, err := one.Status(cctx, ep); err != nil {
				t.Errorf("status of %s: %v", ep, err)
			}
			if _, err := one.Get(cctx, "/registry/namespaces/default"); err != nil {
				t.Errorf("linearizable read through %s: %v", ep, err)
			}
			one.Close()
		}
	})

	t.Run("the second API server is ready and serves the cluster", func(t *testing.T) {
		rc := restConfig(t, dir, "admin.conf")
		if rc.Host != "https://"+endpoint {
			t.Errorf("admin.conf points at %s, want the control-plane endpoint", rc.Host)
		}
		rc.Host = "https://" + cp2Addr + ":6443"
		c := kubernetes.NewForConfigOrDie(rc)
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || strings.TrimSpace(string(body)) != "ok" {
			t.Fatalf("/readyz of %s = %q, %v", rc.Host, body, err)
		}
		node, err := c.CoreV1().Nodes().Get(ctx, cp2Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := node.Labels["node-role.kubernetes.io/control-plane"]; !ok {
			t.Errorf("node labels %v", node.Labels)
		}
		// It decrypts the first API server's Secrets: the key came in
		// kubeadm-certs.
		if s, err := c.CoreV1().Secrets("default").Get(ctx, secretName, metav1.GetOptions{}); err != nil || string(s.Data["password"]) != secretValue {
			t.Errorf("the second API server cannot read %s (encrypted by the first): %v", secretName, err)
		}
		tainted := false
		for _, taint := range node.Spec.Taints {
			tainted = tainted || taint.Key == "node-role.kubernetes.io/control-plane" && taint.Effect == corev1.TaintEffectNoSchedule
		}
		if !tainted {
			t.Errorf("node taints %v", node.Spec.Taints)
		}
		// Both API servers publish themselves as the kubernetes Service.
		poll(ctx, t, time.Minute, "both API servers in the kubernetes EndpointSlice", func() error {
			slices, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
			if err != nil {
				return err
			}
			var addrs []string
			for _, s := range slices.Items {
				for _, ep := range s.Endpoints {
					addrs = append(addrs, ep.Addresses...)
				}
			}
			if !contains(addrs, e.addr) || !contains(addrs, cp2Addr) {
				return fmt.Errorf("addresses %v", addrs)
			}
			return nil
		})
	})

	t.Run("the node's files: the cluster's shared PKI, its own leaves, no bootstrap token", func(t *testing.T) {
		for _, f := range []string{"pki/ca.crt", "pki/ca.key", "pki/sa.key", "pki/sa.pub", "pki/front-proxy-ca.crt", "pki/front-proxy-ca.key", "pki/etcd/ca.crt", "pki/etcd/ca.key", "encryption-config.yaml"} {
			mine, _ := os.ReadFile(filepath.Join(dir, "etc/kubernetes", f))
			theirs, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes", f))
			if len(mine) == 0 || !bytes.Equal(mine, theirs) {
				t.Errorf("%s is not the cluster's", f)
			}
		}
		for _, f := range []string{"apiserver.crt", "etcd/peer.crt", "etcd/server.crt"} {
			mine, _ := os.ReadFile(filepath.Join(dir, "etc/kubernetes/pki", f))
			theirs, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki", f))
			if bytes.Equal(mine, theirs) {
				t.Errorf("%s is the first node's", f)
			}
		}
		assertModes(t, dir)
		if _, err := os.Stat(boot); !os.IsNotExist(err) {
			t.Errorf("bootstrap-kubelet.conf is still there (%v)", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "etc/kubernetes/super-admin.conf")); !os.IsNotExist(err) {
			t.Errorf("a joining control plane got super-admin.conf")
		}
	})

	t.Run("a second join changes nothing", func(t *testing.T) {
		before := hashTree(t, filepath.Join(dir, "etc"))
		// Every phase (but prepare, as the first time), preflight included:
		// it recognises this node's own join.
		stdout, stderr, err := ns.kubeboot(e, dir, args...)
		if err != nil {
			t.Fatalf("second join: %v\n%s%s", err, stdout, stderr)
		}
		t.Logf("second join:\n%s", stdout)
		ownJoin := regexp.MustCompile(`(?m)^\[preflight\] This node already joined this cluster \(/etc/kubernetes/kubelet.conf, /etc/kubernetes/pki/ca.crt, ` +
			`/etc/kubernetes/manifests/kube-apiserver.yaml, /etc/kubernetes/manifests/kube-controller-manager.yaml, /etc/kubernetes/manifests/kube-scheduler.yaml and /etc/kubernetes/manifests/etcd.yaml are this join's\): ` +
			`skipping the checks its own earlier join fails: DirAvailable--var-lib-etcd, FileAvailable--etc-kubernetes-kubelet.conf, FileAvailable--etc-kubernetes-manifests-etcd.yaml, ` +
			`FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml, FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml, FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml, ` +
			`Port-10257, Port-10259, Port-2379, Port-2380, Port-6443$`)
		if !ownJoin.MatchString(stdout) {
			t.Errorf("the second join's preflight does not say it recognised the node's own join")
		}
		if strings.Contains(stdout, "[ERROR") {
			t.Errorf("the second join's preflight reports errors")
		}
		for _, line := range strings.Split(stdout, "\n") {
			if regexp.MustCompile(`\b(Writing|Generating|Saving|Announced|Creating|Updating|Starting|Marking)\b`).MatchString(line) {
				t.Errorf("second join changed something: %s", line)
			}
		}
		if after := hashTree(t, filepath.Join(dir, "etc")); !equalMaps(before, after) {
			t.Errorf("second join changed files: %v", diffMaps(before, after))
		}
	})

	// Last, as it takes the second member away: reset's remove-etcd-member
	// on the second control plane leaves the real etcd cluster through its
	// API (the quorum check passes: the first member answers), and the
	// first control plane keeps its etcd.
	t.Run("reset's remove-etcd-member leaves etcd through its API", func(t *testing.T) {
		stdout, stderr, err := ns.kubeboot(e, dir, "reset", "phase", "remove-etcd-member")
		if err != nil {
			t.Fatalf("reset phase remove-etcd-member: %v\n%s%s", err, stdout, stderr)
		}
		t.Logf("reset phase remove-etcd-member:\n%s", stdout)
		if !strings.Contains(stdout, "[reset] Removed etcd member "+cp2Name+" (") || !strings.Contains(stdout, "1 voting member(s) left, 1 answering") {
			t.Errorf("reset does not say it removed %s with one member left answering", cp2Name)
		}
		cli := etcdClient(t, []string{"https://" + e.addr + ":2379"}, etcdTLS(t, filepath.Join(root, "etc/kubernetes/pki")))
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := cli.MemberList(cctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Members) != 1 || resp.Members[0].Name != nodeName {
			t.Errorf("members after the reset: %v", resp.Members)
		}
		if _, err := cli.Get(cctx, "/registry/namespaces/default"); err != nil {
			t.Errorf("linearizable read on the first member after the second left: %v", err)
		}
	})
	t.Logf("join test took %s", time.Since(start).Round(time.Second))
}

// standInKubeletBootstrap does what the kubelet does with
// bootstrap-kubelet.conf: a key, a CSR for system:node:<name>, the signed
// certificate in /var/lib/kubelet/pki/kubelet-client-current.pem, kubelet.conf
// naming it, and the Node registered with that credential.
func standInKubeletBootstrap(ctx context.Context, t *testing.T, dir string, boot *rest.Config) {
	t.Helper()
	bc := kubernetes.NewForConfigOrDie(boot)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrPEM, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "system:node:" + cp2Name, Organization: []string{"system:nodes"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	name, uid, err := csr.RequestCertificate(bc, csrPEM, "", certificatesv1.KubeAPIServerClientKubeletSignerName, nil,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, key)
	if err != nil {
		t.Fatalf("the kubelet's CSR with bootstrap-kubelet.conf: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	certPEM, err := csr.WaitForCertificate(wctx, bc, name, types.UID(uid))
	if err != nil {
		t.Fatalf("the kubelet's CSR was not approved and signed: %v", err)
	}
	keyPEM, _ := keyutil.MarshalPrivateKeyToPEM(key)
	const pemPath = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	writeFile(t, filepath.Join(dir, pemPath), append(append([]byte(nil), certPEM...), keyPEM...), 0o600)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: boot.Host, CertificateAuthorityData: boot.CAData}
	kc.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: pemPath, ClientKey: pemPath}
	kc.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}
	kc.CurrentContext = "default-context"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "etc/kubernetes/kubelet.conf"), b, 0o600)
	nc := rest.AnonymousClientConfig(boot)
	nc.TLSClientConfig.CertData, nc.TLSClientConfig.KeyData = certPEM, keyPEM
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cp2Name}}
	if _, err := kubernetes.NewForConfigOrDie(nc).CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("register Node %s with the kubelet's new credential: %v", cp2Name, err)
	}
}

// netns is a network namespace of the test's, held by a sleeping process.
type netns struct {
	holder *exec.Cmd
	path   string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "--", "sleep", "infinity")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &netns{holder: cmd, path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	self, _ := os.Readlink("/proc/self/ns/net")
	poll(context.Background(), t, 5*time.Second, "the network namespace", func() error {
		if l, err := os.Readlink(n.path); err != nil || l == self {
			return fmt.Errorf("not yet (%v)", err)
		}
		return nil
	})
	return n
}

// link connects the namespace to the test's over a veth pair: addr on its
// end (holding its default route), a host route to it here.
func (n *netns) link(t *testing.T, here, addr string) {
	t.Helper()
	pid := strconv.Itoa(n.holder.Process.Pid)
	for _, args := range [][]string{
		{"ip", "link", "add", "kb2", "type", "veth", "peer", "name", "kb3"},
		{"ip", "link", "set", "kb3", "netns", pid},
		{"ip", "link", "set", "kb2", "up"},
		{"ip", "route", "add", addr + "/32", "dev", "kb2", "src", here},
		{"nsenter", "--net=" + n.path, "--", "sh", "-ec", "ip link set lo up; ip addr add " + addr + "/24 dev kb3; ip link set kb3 up; ip route add default dev kb3; echo 1 > /proc/sys/net/ipv4/ip_forward"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "kb2").Run() })
}

// newNodeRoot makes the second node's fresh directories, which kubeboot
// sees as /etc/kubernetes, /var/lib/kubelet, /var/lib/etcd and
// /etc/systemd/system.
func newNodeRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range nodeDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		// The mount points, in the test's own mount namespace.
		if _, err := os.Stat("/" + d); os.IsNotExist(err) {
			if err := os.MkdirAll("/"+d, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove("/" + d) })
		}
	}
	return dir
}

var nodeDirs = []string{"etc/kubernetes", "var/lib/kubelet", "var/lib/etcd", "etc/systemd/system"}

// kubebootCmd is kubeboot run on the second node: in its network
// namespace, in a private mount namespace with dir's directories mounted
// over the node's.
func (n *netns) kubebootCmd(e env, dir string, args ...string) *exec.Cmd {
	script := "set -e\n"
	for _, d := range nodeDirs {
		script += fmt.Sprintf("mount --bind %q %q\n", filepath.Join(dir, d), "/"+d)
	}
	script += `exec "$@"`
	full := append([]string{"--net=" + n.path, "--", "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", e.kubeboot}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (n *netns) kubeboot(e env, dir string, args ...string) (stdout, stderr string, err error) {
	cmd := n.kubebootCmd(e, dir, args...)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err = cmd.Run()
	return o.String(), s.String(), err
}

// startIn starts a component in the namespace as its manifest says.
func (p *processes) startIn(ctx context.Context, n *netns, e env, root string, pod *corev1.Pod) {
	t := p.t
	t.Helper()
	args := hostArgs(pod, root)
	bin := filepath.Join(e.binDir, filepath.Base(args[0]))
	name := cp2Name + "-" + pod.Name
	logPath := filepath.Join(e.logDir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + n.path, "--", bin}, args[1:]...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(args, " "))
	p.procs = append(p.procs, cmd)
	if p.logs == nil {
		p.logs = map[string]string{}
	}
	p.logs[name] = logPath
}

// waitProbes polls the pod's probes from inside the namespace (their
// 127.0.0.1 is the namespace's), as the node's kubelet would.
func (n *netns) waitProbes(ctx context.Context, t *testing.T, pod *corev1.Pod, addr string, alive func() error) {
	t.Helper()
	pollProbes(ctx, t, cp2Name+" "+pod.Name, pod, addr, n.httpClient(), alive)
}

// httpClient dials from inside the namespace: the socket is made on a
// thread that entered it, and keeps it.
func (n *netns) httpClient() *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer self.Close()
		target, err := os.Open(n.path)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		conn, derr := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and ends with this goroutine.
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("leave the namespace: %w", err)
		}
		runtime.UnlockOSThread()
		return conn, derr
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: dial, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes, as the kubelet's
	}}
}

// etcdTLS is an etcd client's TLS with the healthcheck-client
// certificate, or the one client names (below pki, without .crt/.key).
func etcdTLS(t *testing.T, pki string, client ...string) *tls.Config {
	t.Helper()
	name := "etcd/healthcheck-client"
	if len(client) > 0 {
		name = client[0]
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(pki, name+".crt"), filepath.Join(pki, name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(pki, "etcd/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
}

func etcdClient(t *testing.T, endpoints []string, tlsConfig *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsConfig, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// removeEtcdMember takes the second member out again through the first, so
// that stopping its etcd leaves the first control plane its quorum.
func removeEtcdMember(t *testing.T, root, addr, name string) {
	cli := etcdClient(t, []string{"https://" + addr + ":2379"}, etcdTLS(t, filepath.Join(root, "etc/kubernetes/pki")))
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Logf("cleanup: list etcd members: %v", err)
		return
	}
	for _, m := range resp.Members {
		for _, u := range m.PeerURLs {
			if strings.Contains(u, cp2Addr) {
				if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
					t.Logf("cleanup: remove etcd member %s: %v", name, err)
				}
			}
		}
	}
}

func writeFile(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
}

func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}
