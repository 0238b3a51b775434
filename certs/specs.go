// Package certs is kubeboot's PKI: the table of certificates kubeadm creates
// (names, subjects, usages, SANs), key generation, issuing and checking
// certificates, PEM encoding, and the kubeconfig files with embedded client
// certificates. It is pure: it never reads or writes a host's files; the
// phases do that and hand it bytes.
//
// Everything here mirrors kubeadm v1.34.3 (cmd/kubeadm/app/phases/certs,
// app/util/pkiutil and app/phases/kubeconfig); comments say where and why
// kubeboot differs.
package certs

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	certutil "k8s.io/client-go/util/cert"
	netutils "k8s.io/utils/net"

	"github.com/kubeboot/kubeboot/inventory"
)

// Spec describes one certificate kubeadm creates under certificatesDir.
type Spec struct {
	// Name is kubeadm's phase name ("apiserver", "etcd-server").
	Name string
	// BaseName is the file name, without extension, relative to
	// certificatesDir ("apiserver", "etcd/server").
	BaseName string
	// LongName describes the certificate in help texts, as kubeadm does.
	LongName string
	// CAName is the Name of the signing CA; empty for a (self-signed) CA.
	CAName string
	// CommonName is the subject's CN.
	CommonName string
	// Organization is the subject's O (groups, for client certificates).
	Organization []string
	// Usages are the extended key usages of a leaf; nil for a CA.
	Usages []x509.ExtKeyUsage
	// AltNames returns the subject alternative names for cfg; nil when the
	// certificate has none (a CA's own CN is added by NewCA).
	AltNames func(cfg *inventory.Cluster) (*certutil.AltNames, error)
}

// IsCA reports whether s is a self-signed certificate authority.
func (s Spec) IsCA() bool { return s.CAName == "" }

// CertPath is the certificate's file: certificatesDir/BaseName.crt.
func (s Spec) CertPath(cfg *inventory.Cluster) string {
	return path.Join(cfg.CertificatesDir, s.BaseName+".crt")
}

// KeyPath is the private key's file: certificatesDir/BaseName.key.
func (s Spec) KeyPath(cfg *inventory.Cluster) string {
	return path.Join(cfg.CertificatesDir, s.BaseName+".key")
}

// Common names and groups, as kubeadm's constants name them.
const (
	clusterAdminsGroup    = "kubeadm:cluster-admins"
	systemPrivilegedGroup = "system:masters"
	nodesGroup            = "system:nodes"
	nodesUserPrefix       = "system:node:"
	controllerManagerUser = "system:kube-controller-manager"
	schedulerUser         = "system:kube-scheduler"
)

// Specs returns the certificates kubeadm creates for cfg, in kubeadm's order
// (every CA before the certificates it signs). With external etcd the etcd
// CA and the certificates it signs are left out, as kubeadm does. The slice is
// new on every call; callers may modify it.
func Specs(cfg *inventory.Cluster) []Spec {
	specs := []Spec{
		{
			Name:       "ca",
			LongName:   "self-signed Kubernetes CA to provision identities for other Kubernetes components",
			BaseName:   "ca",
			CommonName: "kubernetes",
		},
		{
			Name:       "apiserver",
			LongName:   "certificate for serving the Kubernetes API",
			BaseName:   "apiserver",
			CAName:     "ca",
			CommonName: "kube-apiserver",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			AltNames:   APIServerAltNames,
		},
		{
			Name:         "apiserver-kubelet-client",
			LongName:     "certificate for the API server to connect to kubelet",
			BaseName:     "apiserver-kubelet-client",
			CAName:       "ca",
			CommonName:   "kube-apiserver-kubelet-client",
			Organization: []string{clusterAdminsGroup},
			Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		{
			Name:       "front-proxy-ca",
			LongName:   "self-signed CA to provision identities for front proxy",
			BaseName:   "front-proxy-ca",
			CommonName: "front-proxy-ca",
		},
		{
			Name:       "front-proxy-client",
			LongName:   "certificate for the front proxy client",
			BaseName:   "front-proxy-client",
			CAName:     "front-proxy-ca",
			CommonName: "front-proxy-client",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
	}
	if cfg.Etcd.External != nil {
		return specs
	}
	return append(specs,
		Spec{
			Name:       "etcd-ca",
			LongName:   "self-signed CA to provision identities for etcd",
			BaseName:   "etcd/ca",
			CommonName: "etcd-ca",
		},
		Spec{
			Name:     "etcd-server",
			LongName: "certificate for serving etcd",
			BaseName: "etcd/server",
			CAName:   "etcd-ca",
			// kubeadm names etcd's certificates after the node.
			CommonName: cfg.Node.Name,
			// etcd 3.2+ also uses the server certificate as a client
			// (etcd-io/etcd#9785), so kubeadm adds ClientAuth.
			Usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			AltNames: EtcdServerAltNames,
		},
		Spec{
			Name:       "etcd-peer",
			LongName:   "certificate for etcd nodes to communicate with each other",
			BaseName:   "etcd/peer",
			CAName:     "etcd-ca",
			CommonName: cfg.Node.Name,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			AltNames:   EtcdPeerAltNames,
		},
		Spec{
			Name:       "etcd-healthcheck-client",
			LongName:   "certificate for liveness probes to healthcheck etcd",
			BaseName:   "etcd/healthcheck-client",
			CAName:     "etcd-ca",
			CommonName: "kube-etcd-healthcheck-client",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
		Spec{
			Name:       "apiserver-etcd-client",
			LongName:   "certificate the apiserver uses to access etcd",
			BaseName:   "apiserver-etcd-client",
			CAName:     "etcd-ca",
			CommonName: "kube-apiserver-etcd-client",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		},
	)
}

// SpecByName returns the Spec named name among Specs(cfg).
func SpecByName(cfg *inventory.Cluster, name string) (Spec, bool) {
	for _, s := range Specs(cfg) {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// APIServerAltNames are the API server certificate's SANs, in kubeadm's
// order (GetAPIServerAltNames): DNS <node name>, kubernetes,
// kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.<dnsDomain>;
// IP <first service IP>, <advertise address>; then the controlPlaneEndpoint
// host and apiServer.certSANs. NewSigned sorts and de-duplicates them as
// kubeadm does.
func APIServerAltNames(cfg *inventory.Cluster) (*certutil.AltNames, error) {
	advertise, err := advertiseAddress(cfg)
	if err != nil {
		return nil, err
	}
	serviceIP, err := apiServerVirtualIP(cfg.Networking.ServiceSubnet)
	if err != nil {
		return nil, err
	}
	var dns []string
	if cfg.Node.Name != "" {
		dns = append(dns, cfg.Node.Name)
	}
	dns = append(dns, "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if cfg.Networking.DNSDomain != "" {
		dns = append(dns, "kubernetes.default.svc."+cfg.Networking.DNSDomain)
	}
	alt := &certutil.AltNames{DNSNames: dns, IPs: []net.IP{serviceIP, advertise}}
	if cfg.ControlPlaneEndpoint != "" {
		host, err := endpointHost(cfg.ControlPlaneEndpoint)
		if err != nil {
			return nil, err
		}
		if ip := netutils.ParseIPSloppy(host); ip != nil {
			alt.IPs = append(alt.IPs, ip)
		} else {
			alt.DNSNames = append(alt.DNSNames, host)
		}
	}
	if lb := cfg.LoadBalancer; lb != nil && lb.VIP != "" {
		// The endpoint may be a DNS name for the VIP: clients that use
		// the address itself are served too.
		if ip := netutils.ParseIPSloppy(lb.VIP); ip != nil && !containsIP(alt.IPs, ip) {
			alt.IPs = append(alt.IPs, ip)
		}
	}
	if err := appendSANs(alt, cfg.APIServer.CertSANs, "apiServer.certSANs"); err != nil {
		return nil, err
	}
	return alt, nil
}

// EtcdServerAltNames are etcd's serving certificate's SANs (kubeadm's
// GetEtcdAltNames): DNS <node name>, localhost; IP <advertise address>,
// 127.0.0.1, ::1; then etcd.local.serverCertSANs.
func EtcdServerAltNames(cfg *inventory.Cluster) (*certutil.AltNames, error) {
	var extra []string
	if cfg.Etcd.Local != nil {
		extra = cfg.Etcd.Local.ServerCertSANs
	}
	return etcdAltNames(cfg, extra, "etcd.local.serverCertSANs")
}

// EtcdPeerAltNames are etcd's peer certificate's SANs (kubeadm's
// GetEtcdPeerAltNames): as EtcdServerAltNames, with etcd.local.peerCertSANs.
func EtcdPeerAltNames(cfg *inventory.Cluster) (*certutil.AltNames, error) {
	var extra []string
	if cfg.Etcd.Local != nil {
		extra = cfg.Etcd.Local.PeerCertSANs
	}
	return etcdAltNames(cfg, extra, "etcd.local.peerCertSANs")
}

func etcdAltNames(cfg *inventory.Cluster, extra []string, field string) (*certutil.AltNames, error) {
	advertise, err := advertiseAddress(cfg)
	if err != nil {
		return nil, err
	}
	dns := []string{"localhost"}
	if cfg.Node.Name != "" {
		dns = []string{cfg.Node.Name, "localhost"}
	}
	alt := &certutil.AltNames{
		DNSNames: dns,
		IPs:      []net.IP{advertise, net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if err := appendSANs(alt, extra, field); err != nil {
		return nil, err
	}
	return alt, nil
}

func advertiseAddress(cfg *inventory.Cluster) (net.IP, error) {
	ip := netutils.ParseIPSloppy(cfg.Node.AdvertiseAddress)
	if ip == nil {
		return nil, fmt.Errorf("node.advertiseAddress %q is not an IP address", cfg.Node.AdvertiseAddress)
	}
	return ip, nil
}

// apiServerVirtualIP is the first address of the first (primary) service
// subnet: the ClusterIP of the "kubernetes" Service (10.96.0.1).
func apiServerVirtualIP(subnets string) (net.IP, error) {
	first, _, _ := strings.Cut(subnets, ",")
	p, err := netip.ParsePrefix(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("networking.serviceSubnet %q: %w", subnets, err)
	}
	p = p.Masked()
	ip := p.Addr().Next()
	if !ip.IsValid() || !p.Contains(ip) {
		return nil, fmt.Errorf("networking.serviceSubnet %q has no room for the API server's service IP", subnets)
	}
	return net.IP(ip.AsSlice()), nil
}

// endpointHost is the host of controlPlaneEndpoint, which may carry a port
// (kubeadm's ParseHostPort).
func endpointHost(endpoint string) (string, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		host, port = endpoint, ""
	}
	if port != "" {
		if n, err := netutils.ParsePort(port, true); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("controlPlaneEndpoint %q: port %s must be a number between 1 and 65535", endpoint, port)
		}
	}
	if netutils.ParseIPSloppy(host) != nil || len(validation.IsDNS1123Subdomain(host)) == 0 {
		return host, nil
	}
	return "", fmt.Errorf("controlPlaneEndpoint %q: host %q must be an IP address or a DNS name", endpoint, host)
}

// appendSANs adds each of sans to alt as an IP or a DNS name. kubeadm's
// configuration validation rejects a SAN that is neither; so does kubeboot.
func appendSANs(alt *certutil.AltNames, sans []string, field string) error {
	for _, s := range sans {
		switch {
		case netutils.ParseIPSloppy(s) != nil:
			alt.IPs = append(alt.IPs, netutils.ParseIPSloppy(s))
		case len(validation.IsDNS1123Subdomain(s)) == 0, len(validation.IsWildcardDNS1123Subdomain(s)) == 0:
			alt.DNSNames = append(alt.DNSNames, s)
		default:
			return fmt.Errorf("%s: %q is neither an IP address nor a DNS name (wildcards like *.example.com are allowed)", field, s)
		}
	}
	return nil
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, i := range ips {
		if i.Equal(ip) {
			return true
		}
	}
	return false
}
