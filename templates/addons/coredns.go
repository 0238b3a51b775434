package addons

import (
	"fmt"
	"text/template"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
)

// CoreDNS names and numbers, as kubeadm v1.34.3 has them.
const (
	// CoreDNSReplicas is kubeadm's replica count for a new cluster.
	CoreDNSReplicas = 2
	// controlPlaneTaintKey is the taint CoreDNS tolerates.
	controlPlaneTaintKey = "node-role.kubernetes.io/control-plane"
)

var (
	corednsServiceAccount     = mustTemplate("coredns-serviceaccount.yaml")
	corednsClusterRole        = mustTemplate("coredns-clusterrole.yaml")
	corednsClusterRoleBinding = mustTemplate("coredns-clusterrolebinding.yaml")
	corednsConfigMap          = mustTemplate("coredns-configmap.yaml")
	corednsDeployment         = mustTemplate("coredns-deployment.yaml")
	corednsService            = mustTemplate("coredns-service.yaml")
)

// CoreDNS returns kubeadm v1.34.3's CoreDNS add-on: ServiceAccount coredns,
// ClusterRole and ClusterRoleBinding system:coredns, ConfigMap coredns (the
// Corefile for the cluster's DNS domain), Deployment coredns (2 replicas,
// templates.Image(cfg, "coredns")) and Service kube-dns on the service
// subnet's 10th address, in that (dependency) order. Each document is
// kubeadm's template rendered as kubeadm renders it (kubeadm init phase addon
// coredns --print-manifest prints the same documents, Deployment first).
func CoreDNS(cfg *inventory.Cluster) ([]byte, error) {
	domain := cfg.Networking.DNSDomain
	if domain == "" {
		return nil, fmt.Errorf("networking.dnsDomain is empty")
	}
	dnsIP, err := templates.DNSIP(cfg.Networking.ServiceSubnet)
	if err != nil {
		return nil, fmt.Errorf("cluster DNS address: %w", err)
	}
	var docs [][]byte
	for _, r := range []struct {
		t    *template.Template
		data any
	}{
		{corednsServiceAccount, nil},
		{corednsClusterRole, nil},
		{corednsClusterRoleBinding, nil},
		{corednsConfigMap, struct{ DNSDomain, UpstreamNameserver, StubDomain string }{DNSDomain: domain}},
		{corednsDeployment, struct {
			DeploymentName, Image, ControlPlaneTaintKey string
			Replicas                                    int32
		}{
			DeploymentName:       "coredns",
			Image:                templates.Image(cfg, templates.CoreDNS),
			ControlPlaneTaintKey: controlPlaneTaintKey,
			Replicas:             CoreDNSReplicas,
		}},
		{corednsService, struct{ DNSIP string }{DNSIP: dnsIP.String()}},
	} {
		b, err := render(r.t, r.data)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return joinDocs(docs...), nil
}
