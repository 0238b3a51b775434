//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/discovery"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// onlinePhases runs init's API phases for real against the control plane
// started from the dry run, and proves what the join side relies on.
// The dry-run directory is bind-mounted over /etc/kubernetes and
// /var/lib/kubelet inside the test's private mount namespace, so kubeboot
// runs exactly as on a node.
func onlinePhases(ctx context.Context, t *testing.T, e env, root string) {
	bindMount(t, filepath.Join(root, "etc/kubernetes"), "/etc/kubernetes")
	bindMount(t, filepath.Join(root, "var/lib/kubelet"), "/var/lib/kubelet")
	superAdmin := clientFor(t, root, "super-admin.conf")

	// The kubelet would register the Node; kubelet.conf may create its own.
	kubelet := clientFor(t, root, "kubelet.conf")
	if _, err := kubelet.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubelet.conf cannot register its Node: %v", err)
	}

	// A control-plane join needs a stable controlPlaneEndpoint (kubeadm
	// prints the control-plane join command only with one): the advertise
	// address here, so every kubeconfig of the dry run stays valid.
	online := []string{"init", "--node-name", nodeName, "--upload-certs", "--control-plane-endpoint", e.addr + ":6443",
		"--skip-phases", "prepare,preflight,certs,kubeconfig,etcd,control-plane,kubelet-start"}
	out := runKubeboot(t, e, root, online...)
	token := regexp.MustCompile(`--token ([a-z0-9]{6}\.[a-z0-9]{16})`).FindStringSubmatch(out)
	hash := regexp.MustCompile(`--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	key := regexp.MustCompile(`--certificate-key ([0-9a-f]{64})`).FindStringSubmatch(out)
	if token == nil || hash == nil || key == nil {
		t.Fatalf("init did not print the join commands with token, CA hash and certificate key")
	}
	tok, _ := bootstraptoken.Parse(token[1])
	ca, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.crt"))
	caCert, _ := certs.ParseCert(ca)
	if want := certs.CAPublicKeyHash(caCert); hash[1] != want {
		t.Errorf("printed CA hash %s, want %s", hash[1], want)
	}

	t.Run("a second run of every online phase changes nothing", func(t *testing.T) {
		again := append(append([]string(nil), online...), "--token", token[1], "--certificate-key", key[1])
		out := runKubeboot(t, e, root, again...)
		for _, line := range strings.Split(out, "\n") {
			if regexp.MustCompile(`\b(Created|Updated|created|updated)\b`).MatchString(line) {
				t.Errorf("second run changed something: %s", line)
			}
		}
	})

	t.Run("the API server accepted every object", func(t *testing.T) {
		check := func(what string, err error) {
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
		}
		_, err := superAdmin.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		check("cluster-info", err)
		_, err = superAdmin.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
		check("kubeadm-config", err)
		_, err = superAdmin.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubelet-config", metav1.GetOptions{})
		check("kubelet-config", err)
		_, err = superAdmin.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		check("coredns Deployment", err)
		svc, err := superAdmin.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		check("kube-dns Service", err)
		if err == nil && svc.Spec.ClusterIP != "10.96.0.10" {
			t.Errorf("kube-dns ClusterIP %s", svc.Spec.ClusterIP)
		}
		_, err = superAdmin.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
		check("kube-proxy DaemonSet", err)
		_, err = superAdmin.AppsV1().DaemonSets("kube-flannel").Get(ctx, "kube-flannel-ds", metav1.GetOptions{})
		check("flannel DaemonSet", err)
		for _, crb := range []string{"kubeadm:cluster-admins", "kubeadm:kubelet-bootstrap", "kubeadm:node-autoapprove-bootstrap", "kubeadm:node-autoapprove-certificate-rotation", "kubeadm:get-nodes", "kubeadm:node-proxier"} {
			_, err = superAdmin.RbacV1().ClusterRoleBindings().Get(ctx, crb, metav1.GetOptions{})
			check("ClusterRoleBinding "+crb, err)
		}
		node, err := superAdmin.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		check("Node", err)
		if err == nil {
			if _, ok := node.Labels["node-role.kubernetes.io/control-plane"]; !ok {
				t.Errorf("node labels %v", node.Labels)
			}
			// The node lifecycle controller may add its own taints (the
			// Node has no kubelet posting its status): count ours.
			n := 0
			for _, taint := range node.Spec.Taints {
				if taint.Key == "node-role.kubernetes.io/control-plane" && taint.Effect == corev1.TaintEffectNoSchedule {
					n++
				}
			}
			if n != 1 {
				t.Errorf("node taints %v: want node-role.kubernetes.io/control-plane:NoSchedule once", node.Spec.Taints)
			}
		}
	})

	t.Run("the Calico manifest is accepted too, and applies once", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "calico.yaml")
		if err := os.WriteFile(cfg, []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ncontrolPlaneEndpoint: "+e.addr+":6443\ncni:\n  plugin: calico\nnode:\n  name: "+nodeName+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := runKubeboot(t, e, root, "init", "phase", "cni", "--config", cfg)
		if !strings.Contains(out, "Applied the pod network add-on: calico") {
			t.Errorf("first calico run did not apply it")
		}
		out = runKubeboot(t, e, root, "init", "phase", "cni", "--config", cfg)
		if regexp.MustCompile(`\b(Created|Updated)\b`).MatchString(out) || !strings.Contains(out, "calico is in place") {
			t.Errorf("second calico run changed something")
		}
		if _, err := superAdmin.AppsV1().DaemonSets("kube-system").Get(ctx, "calico-node", metav1.GetOptions{}); err != nil {
			t.Errorf("calico-node DaemonSet: %v", err)
		}
		poll(ctx, t, 30*time.Second, "Calico's CRDs served", func() error {
			crds, err := superAdmin.Discovery().ServerResourcesForGroupVersion("crd.projectcalico.org/v1")
			if err != nil {
				return err
			}
			if len(crds.APIResources) == 0 {
				return fmt.Errorf("no resources")
			}
			return nil
		})
	})

	t.Run("admin.conf is cluster-admin through kubeadm:cluster-admins", func(t *testing.T) {
		admin := clientFor(t, root, "admin.conf")
		if _, err := admin.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("admin.conf cannot list secrets: %v", err)
		}
		if _, err := admin.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("admin.conf cannot list cluster roles: %v", err)
		}
	})

	t.Run("the bootstrap token authenticates as system:bootstrap:<id>", func(t *testing.T) {
		u := whoami(ctx, t, tokenClient(t, root, tok.String()))
		if u.Username != "system:bootstrap:"+tok.ID || !contains(u.Groups, "system:bootstrappers:kubeadm:default-node-token") {
			t.Errorf("token user %s %v", u.Username, u.Groups)
		}
	})

	endpoint := e.addr + ":6443"
	waitSigned(ctx, t, superAdmin, tok.ID, true)

	t.Run("discovery accepts the right token and pin and refuses the rest", func(t *testing.T) {
		opts := func(token bootstraptoken.Token, pin string) discovery.Options {
			return discovery.Options{Endpoint: endpoint, Token: token, CAPins: []string{pin}, Timeout: 30 * time.Second}
		}
		kc, err := discovery.Discover(ctx, opts(tok, hash[1]))
		if err != nil {
			t.Fatalf("discovery with the right token and pin: %v", err)
		}
		for _, c := range kc.Clusters {
			if c.Server != "https://"+endpoint {
				t.Errorf("cluster-info server %s", c.Server)
			}
		}
		wrongSecret := bootstraptoken.Token{ID: tok.ID, Secret: "0123456789abcdef"}
		unknown := bootstraptoken.Token{ID: "zzzzzz", Secret: "0123456789abcdef"}
		// A token that authenticates but that the bootstrapsigner never
		// signs (no signing usage): discovery keeps waiting for it.
		authOnly, err := bootstraptoken.Parse(lastLine(runKubeboot(t, e, root, "token", "create", "--kubeconfig", filepath.Join(root, "etc/kubernetes/admin.conf"), "--usages", "authentication")))
		if err != nil {
			t.Fatal(err)
		}
		msgs := map[string]bool{}
		for _, tc := range []struct {
			name string
			o    discovery.Options
			want error
			// within: the refusal comes this soon (the timeout is 30s);
			// 0: only at the timeout.
			within time.Duration
			msg    string
		}{
			{"wrong pin", opts(tok, "sha256:"+strings.Repeat("0", 64)), discovery.ErrPinMismatch, 5 * time.Second, ""},
			{"wrong token secret", opts(wrongSecret, hash[1]), discovery.ErrBadSignature, 5 * time.Second, ""},
			{"unknown token", opts(unknown, hash[1]), discovery.ErrTokenRejected, 5 * time.Second,
				"the API server rejects bootstrap token zzzzzz: it is wrong, expired or deleted (a joining node cannot tell which); create one on a control plane with `kubeboot token create --print-join-command`"},
			{"authenticated, never signed", discovery.Options{Endpoint: endpoint, Token: authOnly, CAPins: []string{hash[1]}, Timeout: 3 * time.Second}, discovery.ErrNoSignature, 0,
				"the API server accepts bootstrap token " + authOnly.ID + " but the cluster-info ConfigMap has no JWS signature for it yet"},
			{"unreachable endpoint", discovery.Options{Endpoint: e.addr + ":1", Token: tok, CAPins: []string{hash[1]}, Timeout: 2 * time.Second}, discovery.ErrUnreachable, 0, ""},
		} {
			began := time.Now()
			_, err := discovery.Discover(ctx, tc.o)
			took := time.Since(began)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
				continue
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: the error is not one line: %q", tc.name, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: %q lacks %q", tc.name, err, tc.msg)
			}
			if tc.within > 0 && took > tc.within {
				t.Errorf("%s: refused after %s, want within %s", tc.name, took.Round(10*time.Millisecond), tc.within)
			}
			if tc.within == 0 && took < tc.o.Timeout {
				t.Errorf("%s: refused after %s, before the %s timeout", tc.name, took.Round(10*time.Millisecond), tc.o.Timeout)
			}
			msgs[err.Error()] = true
			t.Logf("%s after %s: %v", tc.name, took.Round(10*time.Millisecond), err)
		}
		if len(msgs) != 5 {
			t.Errorf("the refusals do not each have their own message")
		}
	})

	t.Run("token create, list, delete; deleted and expired tokens are refused", func(t *testing.T) {
		admin := filepath.Join(root, "etc/kubernetes/admin.conf")
		out := runKubeboot(t, e, root, "token", "create", "--kubeconfig", admin, "--ttl", "20s", "--description", "kubeboot integration")
		short, err := bootstraptoken.Parse(strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
		if err != nil {
			t.Fatalf("token create printed %q: %v", out, err)
		}
		listed := runKubebootQuiet(t, e, "token", "list", "--kubeconfig", admin, "-o", "json")
		if !strings.Contains(listed, short.ID) {
			t.Errorf("token list -o json lacks %s", short.ID)
		}
		dec := json.NewDecoder(strings.NewReader(listed))
		for dec.More() {
			var v map[string]any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("token list -o json does not parse: %v\n%s", err, listed)
			}
		}
		deleted := runKubeboot(t, e, root, "token", "create", "--kubeconfig", admin)
		del, err := bootstraptoken.Parse(strings.TrimSpace(deleted[strings.LastIndex(strings.TrimSpace(deleted), "\n")+1:]))
		if err != nil {
			t.Fatal(err)
		}
		waitSigned(ctx, t, superAdmin, del.ID, true)
		runKubeboot(t, e, root, "token", "delete", "--kubeconfig", admin, del.ID)
		waitSigned(ctx, t, superAdmin, del.ID, false)
		// Refused at once (not at the 30s timeout): the API server rejects
		// the token.
		refusedFast := func(what string, tok bootstraptoken.Token) {
			t.Helper()
			began := time.Now()
			_, err := discovery.Discover(ctx, discovery.Options{Endpoint: endpoint, Token: tok, CAPins: []string{hash[1]}, Timeout: 30 * time.Second})
			took := time.Since(began)
			if !errors.Is(err, discovery.ErrTokenRejected) || !strings.Contains(err.Error(), "the API server rejects bootstrap token "+tok.ID+": it is wrong, expired or deleted") {
				t.Errorf("%s token: %v", what, err)
			}
			if took > 5*time.Second {
				t.Errorf("%s token: refused after %s", what, took.Round(10*time.Millisecond))
			}
			t.Logf("%s token refused after %s: %v", what, took.Round(10*time.Millisecond), err)
		}
		refusedFast("deleted", del)
		// The short-lived token expires; the tokencleaner deletes it and
		// the bootstrapsigner drops its signature.
		waitSigned(ctx, t, superAdmin, short.ID, false)
		refusedFast("expired", short)
		// Nor does the API server accept it any more.
		if _, err := tokenClient(t, root, short.String()).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("the expired token still authenticates: %v", err)
		}
	})

	t.Run("a TLS bootstrap like the kubelet's is approved and signed", func(t *testing.T) {
		kc, err := discovery.Discover(ctx, discovery.Options{Endpoint: endpoint, Token: tok, CAPins: []string{hash[1]}, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		boot, err := discovery.BootstrapKubeconfig(kc, tok, "kubernetes")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := clientcmd.RESTConfigFromKubeConfig(boot)
		if err != nil {
			t.Fatal(err)
		}
		bc := kubernetes.NewForConfigOrDie(rc)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		const worker = "kb-it-worker"
		csrPEM, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "system:node:" + worker, Organization: []string{"system:nodes"}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		name, uid, err := csr.RequestCertificate(bc, csrPEM, "", certificatesv1.KubeAPIServerClientKubeletSignerName, nil,
			[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, key)
		if err != nil {
			t.Fatalf("CSR with the bootstrap token: %v", err)
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		certPEM, err := csr.WaitForCertificate(wctx, bc, name, types.UID(uid))
		if err != nil {
			t.Fatalf("the CSR was not approved and signed: %v", err)
		}
		keyPEM, _ := keyutil.MarshalPrivateKeyToPEM(key)
		nc := rest.AnonymousClientConfig(rc)
		nc.TLSClientConfig.CertData, nc.TLSClientConfig.KeyData = certPEM, keyPEM
		u := whoami(ctx, t, kubernetes.NewForConfigOrDie(nc))
		if u.Username != "system:node:"+worker || !contains(u.Groups, "system:nodes") {
			t.Errorf("the new certificate authenticates as %s %v", u.Username, u.Groups)
		}
	})

	t.Run("upload-certs round-trips and expires with its token", func(t *testing.T) {
		secret, err := superAdmin.CoreV1().Secrets("kube-system").Get(ctx, "kubeadm-certs", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := inventory.Default()
		k, _ := copycerts.ParseCertificateKey(key[1])
		h := transporttest.New("cp2")
		if err := copycerts.WriteFiles(ctx, h, cfg, k, secret); err != nil {
			t.Fatalf("download with the right key: %v", err)
		}
		got, _, _ := h.File("/etc/kubernetes/pki/ca.key")
		want, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.key"))
		if string(got) != string(want) {
			t.Errorf("downloaded ca.key differs")
		}
		wrong, _ := copycerts.ParseCertificateKey(strings.Repeat("ab", 32))
		h2 := transporttest.New("cp3")
		if err := copycerts.WriteFiles(ctx, h2, cfg, wrong, secret); err == nil || len(h2.Paths()) != 0 {
			t.Errorf("a wrong key: err %v, files %v", err, h2.Paths())
		}
		// Shorten the owner token's life: the tokencleaner deletes it and
		// the garbage collector the Secret it owns.
		if len(secret.OwnerReferences) != 1 {
			t.Fatalf("kubeadm-certs owners %v", secret.OwnerReferences)
		}
		owner := secret.OwnerReferences[0].Name
		soon := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
		patch := fmt.Sprintf(`{"data":{"expiration":%q}}`, base64.StdEncoding.EncodeToString([]byte(soon)))
		if _, err := superAdmin.CoreV1().Secrets("kube-system").Patch(ctx, owner, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(ctx, t, 90*time.Second, "kubeadm-certs deleted after its TTL", func() error {
			_, err := superAdmin.CoreV1().Secrets("kube-system").Get(ctx, "kubeadm-certs", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
	})
}

// lastLine is the last line of out (what `token create` prints last: the
// token).
func lastLine(out string) string {
	out = strings.TrimSpace(out)
	return out[strings.LastIndex(out, "\n")+1:]
}

// waitSigned waits until the bootstrapsigner has (or has not) signed
// cluster-info for the token id.
func waitSigned(ctx context.Context, t *testing.T, c kubernetes.Interface, id string, signed bool) {
	t.Helper()
	poll(ctx, t, 90*time.Second, fmt.Sprintf("cluster-info signed for %s = %v", id, signed), func() error {
		cm, err := c.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := cm.Data["jws-kubeconfig-"+id]; ok != signed {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

func tokenClient(t *testing.T, root, token string) kubernetes.Interface {
	t.Helper()
	cfg := rest.AnonymousClientConfig(restConfig(t, root, "super-admin.conf"))
	cfg.BearerToken = token
	return kubernetes.NewForConfigOrDie(cfg)
}

// runKubebootQuiet runs kubeboot and returns only its stdout.
func runKubebootQuiet(t *testing.T, e env, args ...string) string {
	t.Helper()
	out, err := execOutput(e.kubeboot, args...)
	if err != nil {
		t.Fatalf("kubeboot %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// bindMount mounts src over dst for the rest of the test (the test runs in
// a private mount namespace: see run.sh), creating dst if needed and
// removing what it created afterwards.
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	if os.Getenv("KUBEBOOT_IT_NETNS") != "1" {
		t.Fatalf("refusing to mount over %s outside run.sh's private mount namespace", dst)
	}
	created := false
	if _, err := os.Stat(dst); os.IsNotExist(err) {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		created = true
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(dst, syscall.MNT_DETACH)
		if created {
			_ = os.Remove(dst)
		}
	})
}

func execOutput(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
