package phases

import (
	"context"
	"net"
	"net/url"

	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/transport"
)

// With loadBalancer kind local the cluster's endpoint (cluster-info's
// server, the server of every kubeconfig the join writes) is each node's
// own loopback. On a joining node nothing answers there yet: a worker's
// haproxy starts with its kubelet, a control plane's API server once its
// etcd member is added. So the join's own API calls go to the API server
// it discovered the cluster through (kubespray's kubeadm_discovery_address
// does the same), and the files it writes keep the loopback.

// loopbackServer says whether server (https://host:port) is a loopback
// address.
func loopbackServer(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()
}

// JoinServer is the server the join's own API calls use for a kubeconfig
// whose server is server: the discovery endpoint (host:port) when server
// is a loopback address, else server.
func JoinServer(server, discoveryEndpoint string) string {
	if discoveryEndpoint != "" && loopbackServer(server) {
		return "https://" + discoveryEndpoint
	}
	return server
}

// joinClusterInfo is cluster-info with its server replaced by JoinServer.
func joinClusterInfo(info *clientcmdapi.Config, discoveryEndpoint string) *clientcmdapi.Config {
	out := info.DeepCopy()
	for _, c := range out.Clusters {
		c.Server = JoinServer(c.Server, discoveryEndpoint)
	}
	return out
}

// JoinAdminClient is the join's API client from admin.conf on h (a
// control plane's join writes it), its server replaced by JoinServer.
func JoinAdminClient(ctx context.Context, h transport.Host, path, discoveryEndpoint string) (kubernetes.Interface, error) {
	cfg, err := RESTConfigFromKubeconfig(ctx, h, path)
	if err != nil {
		return nil, err
	}
	cfg.Host = JoinServer(cfg.Host, discoveryEndpoint)
	return kubernetes.NewForConfig(cfg)
}
