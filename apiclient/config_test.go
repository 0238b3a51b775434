package apiclient

import (
	"testing"
)

func TestRESTConfig(t *testing.T) {
	kubeconfig := []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://10.0.0.1:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`)
	cfg, err := RESTConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://10.0.0.1:6443" || cfg.Timeout != RequestTimeout || cfg.QPS != QPS || cfg.Burst != Burst {
		t.Errorf("host %q timeout %v qps %v burst %d; want the kubeconfig's server, %v, %v, %d",
			cfg.Host, cfg.Timeout, cfg.QPS, cfg.Burst, RequestTimeout, float32(QPS), Burst)
	}
	if _, err := RESTConfig([]byte("clusters: [")); err == nil {
		t.Error("a broken kubeconfig gave no error")
	}
}
