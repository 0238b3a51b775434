package phases

// Temporary, until the online branch's upload-config lands: the same
// contract (kube-system/kubeadm-config, key KubebootConfiguration, the
// Cluster YAML without node and hosts). Deleted when `online` is merged.

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/inventory"
)

// ClusterConfigFromConfigMap parses the cluster configuration upload-config stored.
func ClusterConfigFromConfigMap(cm *corev1.ConfigMap) (*inventory.Cluster, error) {
	data, ok := cm.Data["KubebootConfiguration"]
	if !ok {
		return nil, fmt.Errorf("no KubebootConfiguration key")
	}
	c, err := inventory.Parse("kube-system/kubeadm-config", []byte(data))
	if err != nil {
		return nil, err
	}
	inventory.SetDefaults(c)
	return c, nil
}
