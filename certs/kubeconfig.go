package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"path"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubeboot/kubeboot/inventory"
)

// KubeconfigSpec describes one kubeconfig file kubeadm writes to
// /etc/kubernetes, authenticating with a client certificate signed by "ca".
type KubeconfigSpec struct {
	// Name is kubeadm's phase name ("admin", "controller-manager").
	Name string
	// File is the file name in /etc/kubernetes ("admin.conf").
	File string
	// ClientName is the kubeconfig's user name (and context
	// "<ClientName>@<clusterName>").
	ClientName string
	// CommonName is the client certificate's CN: the user the API server
	// sees. kubeadm uses ClientName.
	CommonName string
	// Organization is the client certificate's O: the user's groups.
	Organization []string
}

// KubeconfigSpecs returns kubeadm's kubeconfig files in kubeadm's order:
// admin, super-admin, kubelet, controller-manager, scheduler. Which server
// each points at is the caller's business (kubeadm: the control-plane
// endpoint for the first three, the local API server for the others).
func KubeconfigSpecs(cfg *inventory.Cluster) []KubeconfigSpec {
	node := nodesUserPrefix + cfg.Node.Name
	return []KubeconfigSpec{
		{Name: "admin", File: "admin.conf", ClientName: "kubernetes-admin", CommonName: "kubernetes-admin", Organization: []string{clusterAdminsGroup}},
		{Name: "super-admin", File: "super-admin.conf", ClientName: "kubernetes-super-admin", CommonName: "kubernetes-super-admin", Organization: []string{systemPrivilegedGroup}},
		{Name: "kubelet", File: "kubelet.conf", ClientName: node, CommonName: node, Organization: []string{nodesGroup}},
		{Name: "controller-manager", File: "controller-manager.conf", ClientName: controllerManagerUser, CommonName: controllerManagerUser},
		{Name: "scheduler", File: "scheduler.conf", ClientName: schedulerUser, CommonName: schedulerUser},
	}
}

// CertSpec is the spec of k's client certificate: signed by "ca", client
// auth, no SANs. It has no BaseName: the certificate lives inside the
// kubeconfig, not in certificatesDir.
func (k KubeconfigSpec) CertSpec() Spec {
	return Spec{
		Name:         k.Name,
		LongName:     "client certificate embedded in " + k.File,
		CAName:       "ca",
		CommonName:   k.CommonName,
		Organization: k.Organization,
		Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// filePath is where k is written.
func (k KubeconfigSpec) filePath() string { return path.Join(inventory.KubernetesDir, k.File) }

// BuildKubeconfig returns the kubeconfig file for spec, laid out as kubeadm
// writes it (kubeconfigutil.CreateWithCerts): one cluster named
// cfg.ClusterName with server and the CA embedded, one user named
// spec.ClientName with the client certificate and key embedded, and the
// current context "<user>@<cluster>".
func BuildKubeconfig(cfg *inventory.Cluster, server string, spec KubeconfigSpec, ca *x509.Certificate, cert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	context := spec.ClientName + "@" + cfg.ClusterName
	kc := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			cfg.ClusterName: {Server: server, CertificateAuthorityData: EncodeCert(ca)},
		},
		Contexts: map[string]*clientcmdapi.Context{
			context: {Cluster: cfg.ClusterName, AuthInfo: spec.ClientName},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			spec.ClientName: {ClientCertificateData: EncodeCert(cert), ClientKeyData: keyPEM},
		},
		CurrentContext: context,
	}
	return clientcmd.Write(kc)
}

// CheckKubeconfig tells whether data, an existing kubeconfig file for spec,
// can be reused: its current context's cluster must embed ca and point at
// server, and its user's client certificate must verify against ca, be
// valid at now, carry spec's CN and O, and match its key.
//
// kubeadm checks only the CA, and merely warns about another server;
// kubeboot refuses both, since a kubeconfig pointing elsewhere is a stale one.
// A user whose certificate and key are files (kubelet.conf once the kubelet
// rotates its certificate: /var/lib/kubelet/pki/kubelet-client-current.pem)
// is accepted without checking them, as kubeadm does.
func CheckKubeconfig(data []byte, cfg *inventory.Cluster, server string, spec KubeconfigSpec, ca *x509.Certificate, now time.Time) error {
	problems, err := kubeconfigProblems(data, cfg, server, spec, ca, now)
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s; delete %s to have it regenerated", strings.Join(problems, "; "), spec.filePath())
}

func kubeconfigProblems(data []byte, cfg *inventory.Cluster, server string, spec KubeconfigSpec, ca *x509.Certificate, now time.Time) ([]string, error) {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return []string{fmt.Sprintf("is not a kubeconfig file: %v", err)}, nil
	}
	ctx, ok := kc.Contexts[kc.CurrentContext]
	if !ok {
		return []string{fmt.Sprintf("has no current context (current-context %q)", kc.CurrentContext)}, nil
	}
	cluster, ok := kc.Clusters[ctx.Cluster]
	if !ok {
		return []string{fmt.Sprintf("context %q names cluster %q, which it does not define", kc.CurrentContext, ctx.Cluster)}, nil
	}

	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	caData := bytes.TrimSpace(cluster.CertificateAuthorityData)
	switch {
	case len(caData) == 0:
		add("cluster %q embeds no certificate-authority-data", ctx.Cluster)
	default:
		// kubeadm compares the first certificate of the bundle.
		if cas, err := certutil.ParseCertsPEM(caData); err != nil {
			add("cluster %q has invalid certificate-authority-data: %v", ctx.Cluster, err)
		} else if !cas[0].Equal(ca) {
			add("was made for another CA: its embedded CA is not the one in %s", caPathFor(cfg))
		}
	}
	if cluster.Server != server {
		add("points at %s, want %s", cluster.Server, server)
	}

	user, ok := kc.AuthInfos[ctx.AuthInfo]
	switch {
	case !ok:
		add("context %q names user %q, which it does not define", kc.CurrentContext, ctx.AuthInfo)
		return problems, nil
	case len(user.ClientCertificateData) == 0 && user.ClientCertificate != "":
		// Certificate files, e.g. the kubelet's rotated certificate.
		return problems, nil
	case len(user.ClientCertificateData) == 0 || len(user.ClientKeyData) == 0:
		add("user %q has no embedded client certificate and key", ctx.AuthInfo)
		return problems, nil
	}
	cert, err := ParseCert(user.ClientCertificateData)
	if err != nil {
		add("user %q: client-certificate-data: %v", ctx.AuthInfo, err)
		return problems, nil
	}
	cp, err := certProblems(spec.CertSpec(), cfg, cert, ca, now)
	if err != nil {
		return nil, err
	}
	for _, p := range cp {
		add("client certificate %s", p)
	}
	key, err := ParseKey(user.ClientKeyData)
	switch {
	case err != nil:
		add("user %q: client-key-data: %v", ctx.AuthInfo, err)
	case !KeyMatchesCert(key, cert):
		add("user %q: client-key-data does not match client-certificate-data", ctx.AuthInfo)
	}
	return problems, nil
}

// caPathFor is the file of the "ca" CA.
func caPathFor(cfg *inventory.Cluster) string {
	ca, _ := SpecByName(cfg, "ca")
	return ca.CertPath(cfg)
}
