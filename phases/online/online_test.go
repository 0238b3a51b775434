package online

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/inventory/inventorytest"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates/addons"
	"github.com/kubeboot/kubeboot/test/golden"
)

// These test the online steps on their own, with a fake API and no
// workflow; phases' online_test.go runs them as init's phases.

var fixedNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

const testToken = "abcdef.0123456789abcdef"

func testConfig() *inventory.Cluster { return inventorytest.CP1() }

func TestClusterConfigFromConfigMap(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPlaneEndpoint = "lb.example.com:6443"
	cfg.ImageRepository = "registry.aliyuncs.com/google_containers"
	cfg.APIServer.ExtraArgs = map[string]string{"audit-log-maxage": "30", "anonymous-auth": "false"}
	cfg.APIServer.CertSANs = []string{"api.example.com"}
	cfg.Etcd.Local.ExtraArgs = map[string]string{"quota-backend-bytes": "8589934592"}
	cfg.CNI.Plugin = inventory.CNICalico
	cm, err := KubeadmConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "kubeadm-config.golden", []byte(cm.Data[ClusterConfigurationKey]+"---\n"+cm.Data[KubebootConfigurationKey]))
	if strings.Contains(cm.Data[KubebootConfigurationKey], "cp1") || strings.Contains(cm.Data[KubebootConfigurationKey], "192.168.10.11") {
		t.Errorf("the uploaded kubeboot configuration carries the node's name or address")
	}

	want := *cfg
	want.Node = inventory.Node{}
	inventory.SetDefaults(&want)
	got, err := ClusterConfigFromConfigMap(cm)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := marshal(t, got), marshal(t, &want); a != b {
		t.Errorf("kubeboot configuration does not round-trip:\n%s\nwant\n%s", a, b)
	}

	// A cluster kubeadm set up has only the ClusterConfiguration.
	kubeadmOnly := cm.DeepCopy()
	delete(kubeadmOnly.Data, KubebootConfigurationKey)
	got, err = ClusterConfigFromConfigMap(kubeadmOnly)
	if err != nil {
		t.Fatal(err)
	}
	want.CNI = inventory.CNI{}
	inventory.SetDefaults(&want)
	if a, b := marshal(t, got), marshal(t, &want); a != b {
		t.Errorf("ClusterConfiguration does not round-trip:\n%s\nwant\n%s", a, b)
	}

	for name, tc := range map[string]struct {
		data map[string]string
		want string
	}{
		"empty":         {map[string]string{}, "has neither KubebootConfiguration nor ClusterConfiguration"},
		"bad kubeboot":  {map[string]string{KubebootConfigurationKey: "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nnetworking:\n  podSubnet: 10.244.0.0/33\n"}, "KubebootConfiguration"},
		"other kubeadm": {map[string]string{ClusterConfigurationKey: "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"}, "v1beta3"},
	} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: KubeadmConfigConfigMap, Namespace: "kube-system"}, Data: tc.data}
		if _, err := ClusterConfigFromConfigMap(cm); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func marshal(t *testing.T, c *inventory.Cluster) string {
	t.Helper()
	b, err := inventory.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKubeletConfigMapIsClusterWide(t *testing.T) {
	cfg := testConfig()
	cm, err := KubeletConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc := cm.Data[KubeletConfigKey]
	// containerRuntimeEndpoint is a required field: empty, as kubeadm v1.34
	// uploads it (the node's instance-config.yaml has the socket).
	for _, bad := range []string{"containerd.sock", "failCgroupV1", "resolvConf"} {
		if strings.Contains(kc, bad) {
			t.Errorf("kubelet-config carries the node-local %s:\n%s", bad, kc)
		}
	}
	if !strings.Contains(kc, "clusterDNS:\n- 10.96.0.10") || cm.Annotations[addons.ComponentConfigHashAnnotation] != addons.ConfigMapChecksum(cm) {
		t.Errorf("kubelet-config:\n%s\n%v", kc, cm.Annotations)
	}
}

func TestBootstrapTokenChoices(t *testing.T) {
	ctx := context.Background()
	existing := func(tok string, expires time.Time) *corev1.Secret {
		tk, _ := bootstraptoken.Parse(tok)
		s, _ := bootstraptoken.Secret(tk, bootstraptoken.DefaultOptions(), fixedNow)
		s.Data[bootstrapapi.BootstrapTokenExpirationKey] = []byte(expires.UTC().Format(time.RFC3339))
		return s
	}
	tests := []struct {
		name      string
		flag      string
		live      []*corev1.Secret
		wantToken string
		wantOut   string
		wantErr   string
	}{
		{name: "flag, new", flag: testToken, wantToken: testToken, wantOut: "Created bootstrap token abcdef"},
		{name: "flag, existing", flag: testToken, live: []*corev1.Secret{existing(testToken, fixedNow.Add(time.Hour))}, wantToken: testToken, wantOut: "Using existing bootstrap token abcdef"},
		{name: "flag, expired", flag: testToken, live: []*corev1.Secret{existing(testToken, fixedNow.Add(-time.Hour))}, wantToken: testToken, wantOut: "Updated bootstrap token abcdef (it had expired"},
		{name: "flag, another secret", flag: "abcdef.zzzzzzzzzzzzzzzz", live: []*corev1.Secret{existing(testToken, fixedNow.Add(time.Hour))}, wantErr: "already exists with another secret"},
		{name: "no flag, reuse the longest-lived", live: []*corev1.Secret{existing("aaaaaa.0123456789abcdef", fixedNow.Add(2*time.Hour)), existing("bbbbbb.0123456789abcdef", fixedNow.Add(20*time.Hour)), existing("cccccc.0123456789abcdef", fixedNow.Add(30*time.Minute))},
			wantToken: "bbbbbb.0123456789abcdef", wantOut: "Using existing bootstrap token bbbbbb"},
		{name: "no flag, nothing to reuse", live: []*corev1.Secret{existing("cccccc.0123456789abcdef", fixedNow.Add(30*time.Minute))}, wantOut: "Created bootstrap token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			for _, s := range tc.live {
				if _, err := c.CoreV1().Secrets("kube-system").Create(ctx, s, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			a := API{Kube: c, Out: workflow.NewPrinter(&out)}
			tok, err := EnsureToken(ctx, a, tc.flag, time.Hour, fixedNow)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "zzzz") {
					t.Fatalf("error %v, want %q without the secret", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantToken != "" && tok.String() != tc.wantToken {
				t.Errorf("token %s, want %s", tok, tc.wantToken)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), tc.wantOut)
			}
			if strings.Contains(out.String(), tok.Secret) {
				t.Errorf("the token's secret is printed: %s", out.String())
			}
		})
	}
}

// kubeadm-config is readable by every node and bootstrap token: init's
// token and certificate key (which unseals kubeadm-certs), a join's, and
// the operator's SSH settings must not be in it.
func TestKubeadmConfigMapHoldsNoSecrets(t *testing.T) {
	cfg := inventory.Default()
	cfg.Node.Name, cfg.Node.AdvertiseAddress = "cp1", "10.0.0.11"
	const token, key = "abcdef.0123456789abcdef", "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	cfg.Init = &inventory.Init{Token: token, CertificateKey: key, UploadCerts: true}
	cfg.Join = &inventory.Join{Token: token, CertificateKey: key}
	cfg.SSH = &inventory.SSH{User: "ops", PasswordEnv: "SECRET_ENV"}
	cm, err := KubeadmConfigMap(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range cm.Data {
		for _, s := range []string{"0123456789abcdef", key, "SECRET_ENV", "certificateKey"} {
			if strings.Contains(v, s) {
				t.Errorf("kubeadm-config's %s holds %q:\n%s", k, s, v)
			}
		}
	}
}
