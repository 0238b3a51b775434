package inventory

import (
	"strings"
	"testing"
)

func TestLoadBalancerDefaults(t *testing.T) {
	tests := []struct {
		file          string
		endpoint, vip string
		port          int
		wantVRID      bool
		warning       string
	}{
		{"testdata/valid-lb-vip.yaml", "10.0.0.100:8443", "10.0.0.100", 8443, true, ""},
		{"testdata/valid-lb-local.yaml", "[::1]:6443", "", 0, false, ""},
		{"testdata/valid-lb-external.yaml", "lb.example.com:6443", "", 0, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			c, err := Load(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			lb := c.LoadBalancer
			if c.ControlPlaneEndpoint != tc.endpoint || lb.VIP != tc.vip || lb.Port != tc.port {
				t.Errorf("endpoint %q vip %q port %d, want %q %q %d", c.ControlPlaneEndpoint, lb.VIP, lb.Port, tc.endpoint, tc.vip, tc.port)
			}
			if got := lb.VirtualRouterID != 0; got != tc.wantVRID {
				t.Errorf("virtualRouterID %d", lb.VirtualRouterID)
			}
		})
	}
	// The endpoint's port is haproxy's; the VIP comes from the endpoint.
	c, err := Parse("c.yaml", []byte("apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ncontrolPlaneEndpoint: 10.0.0.100:9443\nloadBalancer: {kind: vip}\n"))
	if err != nil {
		t.Fatal(err)
	}
	SetDefaults(c)
	if c.LoadBalancer.VIP != "10.0.0.100" || c.LoadBalancer.Port != 9443 {
		t.Errorf("vip %q port %d, want 10.0.0.100 9443", c.LoadBalancer.VIP, c.LoadBalancer.Port)
	}
	// The router ID is stable and in VRRP's range.
	for _, name := range []string{"kubernetes", "a", "prod-cluster-1"} {
		id := DefaultVirtualRouterID(name, "10.0.0.100")
		if id < 1 || id > 255 || id != DefaultVirtualRouterID(name, "10.0.0.100") {
			t.Errorf("DefaultVirtualRouterID(%q) = %d", name, id)
		}
	}
}

func TestEvenControlPlanesWarning(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`apiVersion: kubeboot.io/v1alpha1
kind: Cluster
loadBalancer: {kind: vip, vip: 10.0.0.100}
hosts:
  - {name: cp1, address: 10.0.0.11, roles: [control-plane]}
  - {name: cp2, address: 10.0.0.12, roles: [control-plane]}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(Warnings(c), "\n")
	if !strings.Contains(w, "2 control planes: etcd tolerates no more failures with 2 members than with 1") {
		t.Errorf("warnings: %q", w)
	}
}
