package discovery

import (
	"bytes"
	"github.com/kubeboot/kubeboot/test/golden"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/bootstraptoken"
)

// fakeCAPEM stands in for a CA in golden files (BootstrapKubeconfig copies
// it without parsing).
var fakeCAPEM = []byte("-----BEGIN CERTIFICATE-----\nZmFrZSBDQQ==\n-----END CERTIFICATE-----\n")

func TestBootstrapKubeconfig(t *testing.T) {
	t.Parallel()
	discovered := &clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: "https://10.0.0.10:6443", CertificateAuthorityData: fakeCAPEM},
	}}
	got, err := BootstrapKubeconfig(discovered, testToken, "")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "bootstrap-kubelet.conf", got)

	config, err := clientcmd.Load(got)
	if err != nil {
		t.Fatal(err)
	}
	ctx := config.Contexts[config.CurrentContext]
	if config.CurrentContext != "tls-bootstrap-token-user@kubernetes" || ctx == nil ||
		ctx.Cluster != "kubernetes" || ctx.AuthInfo != "tls-bootstrap-token-user" {
		t.Errorf("current context %q = %+v", config.CurrentContext, ctx)
	}
	if u := config.AuthInfos["tls-bootstrap-token-user"]; u == nil || u.Token != "abcdef.0123456789abcdef" {
		t.Errorf("user = %+v, want token auth with the bootstrap token", u)
	}
	if c := config.Clusters["kubernetes"]; c == nil || c.Server != "https://10.0.0.10:6443" || !bytes.Equal(c.CertificateAuthorityData, fakeCAPEM) {
		t.Errorf("cluster = %+v", c)
	}
}

func TestBootstrapKubeconfigClusterName(t *testing.T) {
	t.Parallel()
	discovered := &clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: "https://lb.example:6443", CertificateAuthorityData: fakeCAPEM},
	}}
	got, err := BootstrapKubeconfig(discovered, testToken, "prod")
	if err != nil {
		t.Fatal(err)
	}
	config, err := clientcmd.Load(got)
	if err != nil {
		t.Fatal(err)
	}
	if config.CurrentContext != "tls-bootstrap-token-user@prod" || config.Clusters["prod"] == nil {
		t.Errorf("context %q, clusters %v", config.CurrentContext, config.Clusters)
	}
}

func TestBootstrapKubeconfigErrors(t *testing.T) {
	t.Parallel()
	one := &clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: "https://10.0.0.10:6443", CertificateAuthorityData: fakeCAPEM},
	}}
	tests := []struct {
		name    string
		cluster *clientcmdapi.Config
		token   bootstraptoken.Token
		want    string
	}{
		{name: "nil", cluster: nil, token: testToken, want: "no cluster"},
		{name: "no clusters", cluster: clientcmdapi.NewConfig(), token: testToken, want: "has 0 clusters"},
		{name: "no CA", cluster: &clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{"": {Server: "https://x:6443"}}}, token: testToken, want: "no certificate-authority-data"},
		{name: "bad token", cluster: one, token: bootstraptoken.Token{ID: "abcdef"}, want: "invalid bootstrap token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := BootstrapKubeconfig(tt.cluster, tt.token, ""); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// golden compares got with testdata/name, rewriting it with -update.
