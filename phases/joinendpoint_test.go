package phases

import (
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestJoinServer(t *testing.T) {
	for _, tc := range []struct {
		server, discovery, want string
	}{
		{"https://127.0.0.1:6443", "192.168.1.11:6443", "https://192.168.1.11:6443"},
		{"https://[::1]:6443", "[fd00::11]:6443", "https://[fd00::11]:6443"},
		{"https://localhost:6443", "cp1.example:6443", "https://cp1.example:6443"},
		{"https://10.0.0.100:8443", "10.0.0.100:8443", "https://10.0.0.100:8443"},
		{"https://lb.example:6443", "192.168.1.11:6443", "https://lb.example:6443"},
		{"https://127.0.0.1:6443", "", "https://127.0.0.1:6443"},
	} {
		if got := JoinServer(tc.server, tc.discovery); got != tc.want {
			t.Errorf("JoinServer(%q, %q) = %q, want %q", tc.server, tc.discovery, got, tc.want)
		}
	}
}

func TestJoinClusterInfoLeavesClusterInfoAlone(t *testing.T) {
	info := clientcmdapi.NewConfig()
	info.Clusters[""] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: []byte("ca")}
	got := joinClusterInfo(info, "192.168.1.11:6443")
	if s := got.Clusters[""].Server; s != "https://192.168.1.11:6443" {
		t.Errorf("the join's server = %q, want the discovery endpoint", s)
	}
	if s := info.Clusters[""].Server; s != "https://127.0.0.1:6443" {
		t.Errorf("cluster-info (bootstrap-kubelet.conf's source) changed to %q", s)
	}
}
