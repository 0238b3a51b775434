package certs_test

import (
	"crypto/x509"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
)

func names(specs []certs.Spec) []string {
	var n []string
	for _, s := range specs {
		n = append(n, s.Name)
	}
	return n
}

func TestSpecsOrder(t *testing.T) {
	cfg := testConfig()
	specs := certs.Specs(cfg)
	want := []string{"ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client",
		"etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"}
	if got := names(specs); !slices.Equal(got, want) {
		t.Fatalf("Specs order = %v, want %v", got, want)
	}
	seen := map[string]bool{}
	for _, s := range specs {
		if s.CAName != "" {
			ca, ok := certs.SpecByName(cfg, s.CAName)
			if !ok || !ca.IsCA() {
				t.Errorf("%s: CA %q is not a CA spec", s.Name, s.CAName)
			}
			if !seen[s.CAName] {
				t.Errorf("%s comes before its CA %s", s.Name, s.CAName)
			}
			if len(s.Usages) == 0 {
				t.Errorf("%s has no usages", s.Name)
			}
		}
		if seen[s.Name] {
			t.Errorf("%s listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.LongName == "" || s.BaseName == "" || s.CommonName == "" {
			t.Errorf("%s: incomplete spec %+v", s.Name, s)
		}
	}

	// A fresh slice every call.
	specs[0].Name = "changed"
	if certs.Specs(cfg)[0].Name != "ca" {
		t.Error("Specs returned shared state")
	}
}

func TestSpecsFields(t *testing.T) {
	cfg := testConfig()
	server := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tests := []struct {
		name, base, ca, cn string
		o                  []string
		usages             []x509.ExtKeyUsage
	}{
		{"ca", "ca", "", "kubernetes", nil, nil},
		{"apiserver", "apiserver", "ca", "kube-apiserver", nil, server},
		{"apiserver-kubelet-client", "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", []string{"kubeadm:cluster-admins"}, client},
		{"front-proxy-ca", "front-proxy-ca", "", "front-proxy-ca", nil, nil},
		{"front-proxy-client", "front-proxy-client", "front-proxy-ca", "front-proxy-client", nil, client},
		{"etcd-ca", "etcd/ca", "", "etcd-ca", nil, nil},
		{"etcd-server", "etcd/server", "etcd-ca", "cp-1", nil, both},
		{"etcd-peer", "etcd/peer", "etcd-ca", "cp-1", nil, both},
		{"etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca", "kube-etcd-healthcheck-client", nil, client},
		{"apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client", nil, client},
	}
	for _, tt := range tests {
		s := mustSpec(t, cfg, tt.name)
		if s.BaseName != tt.base || s.CAName != tt.ca || s.CommonName != tt.cn ||
			!slices.Equal(s.Organization, tt.o) || !slices.Equal(s.Usages, tt.usages) {
			t.Errorf("%s = %+v", tt.name, s)
		}
		if want := "/etc/kubernetes/pki/" + tt.base + ".crt"; s.CertPath(cfg) != want {
			t.Errorf("%s CertPath = %s, want %s", tt.name, s.CertPath(cfg), want)
		}
		if want := "/etc/kubernetes/pki/" + tt.base + ".key"; s.KeyPath(cfg) != want {
			t.Errorf("%s KeyPath = %s, want %s", tt.name, s.KeyPath(cfg), want)
		}
	}
	if got := mustSpec(t, cfg, "ca").LongName; got != "self-signed Kubernetes CA to provision identities for other Kubernetes components" {
		t.Errorf("ca LongName = %q", got)
	}
}

func TestSpecsExternalEtcd(t *testing.T) {
	cfg := testConfig()
	cfg.Etcd = inventory.Etcd{External: &inventory.ExternalEtcd{Endpoints: []string{"https://etcd:2379"}}}
	want := []string{"ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client"}
	if got := names(certs.Specs(cfg)); !slices.Equal(got, want) {
		t.Errorf("Specs with external etcd = %v, want %v", got, want)
	}
	if _, ok := certs.SpecByName(cfg, "etcd-server"); ok {
		t.Error("SpecByName found etcd-server with external etcd")
	}
}

func ipList(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}

func TestAltNames(t *testing.T) {
	cfg := testConfig()
	cfg.Etcd.Local.ServerCertSANs = []string{"etcd.example.com", "10.1.1.1"}
	cfg.Etcd.Local.PeerCertSANs = []string{"*.peers.example.com"}
	tests := []struct {
		name     string
		dns, ips []string
	}{
		// kubeadm's order, before NewSigned sorts the DNS names.
		{"apiserver",
			[]string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.corp.internal", "lb.example.com", "api.example.com"},
			[]string{"10.96.0.1", "192.168.1.10", "10.0.0.5"}},
		{"etcd-server", []string{"cp-1", "localhost", "etcd.example.com"}, []string{"192.168.1.10", "127.0.0.1", "::1", "10.1.1.1"}},
		{"etcd-peer", []string{"cp-1", "localhost", "*.peers.example.com"}, []string{"192.168.1.10", "127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		alt, err := mustSpec(t, cfg, tt.name).AltNames(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !slices.Equal(alt.DNSNames, tt.dns) || !slices.Equal(ipList(alt.IPs), tt.ips) {
			t.Errorf("%s SANs = %v %v, want %v %v", tt.name, alt.DNSNames, ipList(alt.IPs), tt.dns, tt.ips)
		}
	}
	for _, s := range certs.Specs(cfg) {
		if s.AltNames != nil && s.Name != "apiserver" && !strings.HasPrefix(s.Name, "etcd-") {
			t.Errorf("%s has SANs", s.Name)
		}
	}
}

func TestAPIServerAltNamesVariants(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*inventory.Cluster)
		dns, ips []string
		err      string
	}{
		{"IP endpoint without port", func(c *inventory.Cluster) { c.ControlPlaneEndpoint = "10.0.0.100" },
			[]string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.corp.internal", "api.example.com"},
			[]string{"10.96.0.1", "192.168.1.10", "10.0.0.100", "10.0.0.5"}, ""},
		{"IPv6 endpoint and dual-stack services", func(c *inventory.Cluster) {
			c.ControlPlaneEndpoint = "[fd00::10]:6443"
			c.Networking.ServiceSubnet = "fd00:96::/108,10.96.0.0/12"
			c.APIServer.CertSANs = nil
		},
			[]string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.corp.internal"},
			[]string{"fd00:96::1", "192.168.1.10", "fd00::10"}, ""},
		{"other service subnet", func(c *inventory.Cluster) {
			c.Networking.ServiceSubnet = "172.20.0.0/16"
			c.ControlPlaneEndpoint = ""
			c.APIServer.CertSANs = nil
		},
			[]string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.corp.internal"},
			[]string{"172.20.0.1", "192.168.1.10"}, ""},
		{"bad SAN", func(c *inventory.Cluster) { c.APIServer.CertSANs = []string{"not_a_name"} }, nil, nil, `apiServer.certSANs: "not_a_name"`},
		{"bad advertise address", func(c *inventory.Cluster) { c.Node.AdvertiseAddress = "" }, nil, nil, "node.advertiseAddress"},
		{"bad endpoint port", func(c *inventory.Cluster) { c.ControlPlaneEndpoint = "lb:99999" }, nil, nil, "port 99999"},
		{"bad service subnet", func(c *inventory.Cluster) { c.Networking.ServiceSubnet = "10.96.0.1/32" }, nil, nil, "no room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.mod(cfg)
			alt, err := certs.APIServerAltNames(cfg)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(alt.DNSNames, tt.dns) || !slices.Equal(ipList(alt.IPs), tt.ips) {
				t.Errorf("SANs = %v %v, want %v %v", alt.DNSNames, ipList(alt.IPs), tt.dns, tt.ips)
			}
		})
	}
}
