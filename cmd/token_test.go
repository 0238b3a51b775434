package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/copycerts"
)

var tokenNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type tokenEnv struct {
	client     *fake.Clientset
	kubeconfig string
	ca         []byte
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	ca := fixtureCA(t)
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"kubernetes": {Server: "https://10.0.0.1:6443", CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"admin": {Token: "x"}},
		Contexts:       map[string]*clientcmdapi.Context{"admin@kubernetes": {Cluster: "kubernetes", AuthInfo: "admin"}},
		CurrentContext: "admin@kubernetes",
	}
	b, err := clientcmd.Write(kc)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "admin.conf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tokenEnv{client: fake.NewClientset(), kubeconfig: p, ca: ca}
}

// fixtureCA makes a cluster CA the way init does (an ECDSA key: fast).
func fixtureCA(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	out, err := run(t, "init", "phase", "certs", "ca", "--dry-run", "--dry-run-dir", dir, "--node-name", "cp1", "--config", writeConfig(t, ecdsaConfig))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *tokenEnv) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	connect := func(kubeconfig string) ([]byte, kubernetes.Interface, error) {
		if kubeconfig != e.kubeconfig {
			return nil, nil, errors.New("wrong kubeconfig " + kubeconfig)
		}
		b, err := os.ReadFile(kubeconfig)
		return b, e.client, err
	}
	c := tokenCommand(&out, connect, func() time.Time { return tokenNow })
	c.SetOut(&out)
	c.SetErr(&errOut)
	c.SetArgs(append(args, "--kubeconfig", e.kubeconfig))
	err := c.ExecuteContext(context.Background())
	return out.String(), err
}

func TestTokenCreateListDelete(t *testing.T) {
	ctx := context.Background()
	e := newTokenEnv(t)

	out, err := e.run(t, "create", "abcdef.0123456789abcdef", "--ttl", "2h", "--description", "for the workers")
	if err != nil || out != "abcdef.0123456789abcdef\n" {
		t.Fatalf("create: %q %v", out, err)
	}
	s, err := e.client.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-abcdef", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := bootstraptoken.FromSecret(s)
	if info.Description != "for the workers" || !info.Expires.Equal(tokenNow.Add(2*time.Hour)) || strings.Join(info.Usages, ",") != "authentication,signing" || strings.Join(info.Groups, ",") != bootstraptoken.DefaultGroup {
		t.Errorf("secret %+v", info)
	}

	out, err = e.run(t, "create", "--print-join-command", "--ttl", "0", "--usages", "authentication,signing", "--groups", "system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:extra")
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := certs.ParseCert(e.ca)
	re := regexp.MustCompile(`^kubeboot join 10\.0\.0\.1:6443 --token ([a-z0-9]{6})\.[a-z0-9]{16} --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})\n$`)
	m := re.FindStringSubmatch(out)
	if m == nil || m[2] != certs.CAPublicKeyHash(cert) {
		t.Fatalf("--print-join-command printed %q", out)
	}
	generated := m[1]

	out, err = e.run(t, "create", "--print-join-command", "--certificate-key", strings.Repeat("ab", 32))
	if err != nil || !strings.Contains(out, "--control-plane --certificate-key "+strings.Repeat("ab", 32)+"\n") || strings.Contains(out, "\\") {
		t.Errorf("control-plane join command %q %v", out, err)
	}

	// A mistyped certificate key is refused before a token is created.
	before, _ := e.client.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	if _, err := e.run(t, "create", "--print-join-command", "--certificate-key", "abc"); err == nil || !strings.Contains(err.Error(), "--certificate-key") {
		t.Errorf("a bad certificate key: %v", err)
	}
	if after, _ := e.client.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); len(after.Items) != len(before.Items) {
		t.Errorf("a token was created for a bad certificate key")
	}

	if _, err := e.run(t, "create", "abcdef.0123456789abcdef"); err == nil || !strings.Contains(err.Error(), `"abcdef" already exists`) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := e.run(t, "create", "--usages", "signing", "--groups", "system:bootstrappers:x"); err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Errorf("groups without authentication: %v", err)
	}

	// A Secret that is not a valid token is skipped with a warning.
	bad := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-zzzzzz", Namespace: "kube-system"}, Type: "bootstrap.kubernetes.io/token", Data: map[string][]byte{"token-id": []byte("zzzzzz")}}
	if _, err := e.client.CoreV1().Secrets("kube-system").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: "kube-system"}, Type: corev1.SecretTypeOpaque}
	if _, err := e.client.CoreV1().Secrets("kube-system").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	out, err = e.run(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// Rows are in token order; the generated tokens' IDs are random.
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TOKEN") || !strings.Contains(out, "abcdef.0123456789abcdef   2h") || !strings.Contains(out, "<forever>") {
		t.Errorf("list:\n%s", out)
	}

	out, err = e.run(t, "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var objs []map[string]any
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("-o json does not parse: %v\n%s", err, out)
		}
		objs = append(objs, v)
	}
	var known map[string]any
	for _, o := range objs {
		if o["token"] == "abcdef.0123456789abcdef" {
			known = o
		}
	}
	if len(objs) != 3 || known == nil || known["kind"] != "BootstrapToken" || known["apiVersion"] != "output.kubeadm.k8s.io/v1alpha3" ||
		known["expires"] != "2026-11-22T12:00:00Z" || known["description"] != "for the workers" {
		t.Errorf("-o json:\n%s", out)
	}

	out, err = e.run(t, "list", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(out, "---\n")
	if len(docs) != 3 {
		t.Fatalf("-o yaml has %d documents:\n%s", len(docs), out)
	}
	found := false
	for _, doc := range docs {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
			t.Errorf("-o yaml: %v\n%s", err, out)
		}
		found = found || v["token"] == "abcdef.0123456789abcdef"
	}
	if !found {
		t.Errorf("-o yaml lacks abcdef:\n%s", out)
	}
	if _, err := e.run(t, "list", "-o", "wide"); err == nil {
		t.Errorf("-o wide accepted")
	}

	out, err = e.run(t, "delete", "abcdef.0123456789abcdef", generated)
	if err != nil || out != "bootstrap token \"abcdef\" deleted\nbootstrap token \""+generated+"\" deleted\n" {
		t.Errorf("delete: %q %v", out, err)
	}
	if _, err := e.run(t, "delete", "abcdef"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("delete again: %v", err)
	}
	if _, err := e.run(t, "delete", "ABC.secretsecretsecret"); err == nil || strings.Contains(err.Error(), "secretsecret") {
		t.Errorf("bad id: %v", err)
	}
}

func TestTokenGenerateAndCertificateKey(t *testing.T) {
	out, err := run(t, "token", "generate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bootstraptoken.Parse(strings.TrimSpace(out)); err != nil {
		t.Errorf("token generate printed %q: %v", out, err)
	}
	out, err = run(t, "certs", "certificate-key")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := copycerts.ParseCertificateKey(strings.TrimSpace(out)); err != nil || len(strings.TrimSpace(out)) != 64 {
		t.Errorf("certificate-key printed %q: %v", out, err)
	}
}

func TestTokenMissingKubeconfig(t *testing.T) {
	_, err := run(t, "token", "list", "--kubeconfig", filepath.Join(t.TempDir(), "nope.conf"))
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") || !strings.Contains(err.Error(), "nope.conf") {
		t.Errorf("error %v", err)
	}
}
