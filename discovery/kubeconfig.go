package discovery

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/bootstraptoken"
)

const (
	// TokenUser is the user of bootstrap-kubelet.conf (kubeadm's
	// discovery.TokenUser).
	TokenUser = "tls-bootstrap-token-user"
	// DefaultClusterName is the cluster name kubeadm gives the kubeconfig.
	DefaultClusterName = "kubernetes"
)

// BootstrapKubeconfig returns bootstrap-kubelet.conf as kubeadm join writes
// it: the one cluster of cluster (as Discover returns it) named clusterName
// ("" means "kubernetes"), user tls-bootstrap-token-user authenticating with
// token, and the context tls-bootstrap-token-user@<clusterName>.
func BootstrapKubeconfig(cluster *clientcmdapi.Config, token bootstraptoken.Token, clusterName string) ([]byte, error) {
	if cluster == nil {
		return nil, fmt.Errorf("no cluster to write bootstrap-kubelet.conf for")
	}
	if err := token.Validate(); err != nil {
		return nil, err
	}
	_, c, err := soleCluster(cluster)
	if err != nil {
		return nil, err
	}
	if clusterName == "" {
		clusterName = DefaultClusterName
	}
	// kubeadm's kubeconfigutil.CreateWithToken.
	contextName := fmt.Sprintf("%s@%s", TokenUser, clusterName)
	config := &clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			clusterName: {
				Server:                   c.Server,
				CertificateAuthorityData: c.CertificateAuthorityData,
			},
		},
		Contexts: map[string]*clientcmdapi.Context{
			contextName: {Cluster: clusterName, AuthInfo: TokenUser},
		},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{TokenUser: {Token: token.String()}},
		CurrentContext: contextName,
	}
	b, err := clientcmd.Write(*config)
	if err != nil {
		return nil, fmt.Errorf("encode bootstrap-kubelet.conf: %w", err)
	}
	return b, nil
}
