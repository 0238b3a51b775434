package inventory

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults, in one place. kubeadm v1.34.3's values unless a comment says why not.
const (
	DefaultKubernetesVersion = "v1.34.3"
	DefaultClusterName       = "kubernetes"
	DefaultImageRepository   = "registry.k8s.io"
	DefaultCertificatesDir   = "/etc/kubernetes/pki"
	DefaultEncryption        = RSA2048
	DefaultCertValidity      = 365 * 24 * time.Hour
	DefaultCACertValidity    = 10 * 365 * 24 * time.Hour
	// DefaultPodSubnet is flannel's network: kubeadm has no default pod
	// subnet, but kubeboot installs flannel by default and flannel needs one.
	DefaultPodSubnet     = "10.244.0.0/16"
	DefaultServiceSubnet = "10.96.0.0/12"
	DefaultDNSDomain     = "cluster.local"
	DefaultEtcdDataDir   = "/var/lib/etcd"
	DefaultBindPort      = 6443
	DefaultCRISocket     = "unix:///var/run/containerd/containerd.sock"
	DefaultCNI           = CNIFlannel
	// kubeadm v1beta4's timeouts.
	DefaultControlPlaneHealthTimeout = 4 * time.Minute
	DefaultDiscoveryTimeout          = 5 * time.Minute
	DefaultTLSBootstrapTimeout       = 5 * time.Minute
)

// Default returns a configuration with every default filled in. Node.Name and
// Node.AdvertiseAddress stay empty: they come from the host (see the phases).
func Default() *Cluster {
	c := &Cluster{}
	SetDefaults(c)
	return c
}

// SetDefaults fills every unset field of c with its default. It is the only
// place defaults are applied.
func SetDefaults(c *Cluster) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.APIVersion, APIVersion)
	def(&c.Kind, Kind)
	def(&c.ClusterName, DefaultClusterName)
	def(&c.KubernetesVersion, DefaultKubernetesVersion)
	def(&c.ImageRepository, DefaultImageRepository)
	def(&c.CertificatesDir, DefaultCertificatesDir)
	if c.EncryptionAlgorithm == "" {
		c.EncryptionAlgorithm = DefaultEncryption
	}
	if c.CertificateValidityPeriod.Duration == 0 {
		c.CertificateValidityPeriod.Duration = DefaultCertValidity
	}
	if c.CACertificateValidityPeriod.Duration == 0 {
		c.CACertificateValidityPeriod.Duration = DefaultCACertValidity
	}
	def(&c.Networking.PodSubnet, DefaultPodSubnet)
	def(&c.Networking.ServiceSubnet, DefaultServiceSubnet)
	def(&c.Networking.DNSDomain, DefaultDNSDomain)
	if c.Etcd.External == nil {
		if c.Etcd.Local == nil {
			c.Etcd.Local = &LocalEtcd{}
		}
		def(&c.Etcd.Local.DataDir, DefaultEtcdDataDir)
	}
	if c.Node.BindPort == 0 {
		c.Node.BindPort = DefaultBindPort
	}
	def(&c.Node.CRISocket, DefaultCRISocket)
	setLoadBalancerDefaults(c)
	def(&c.CNI.Plugin, DefaultCNI)
	setSecurityDefaults(c)
	for _, t := range []struct {
		d *Duration
		v time.Duration
	}{
		{&c.Timeouts.ControlPlaneComponentHealthCheck, DefaultControlPlaneHealthTimeout},
		{&c.Timeouts.Discovery, DefaultDiscoveryTimeout},
		{&c.Timeouts.TLSBootstrap, DefaultTLSBootstrapTimeout},
	} {
		if t.d.Duration == 0 {
			t.d.Duration = t.v
		}
	}
	if j := c.Join; j != nil {
		// kubeadm's SetDefaults_Discovery: one token for both uses.
		def(&j.TLSBootstrapToken, j.Token)
	}
}

// Duration is a time.Duration written as Go writes it ("8760h0m0s"), the
// form kubeadm's configuration uses.
type Duration struct{ time.Duration }

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.Duration.String(), nil }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", d.Duration)), nil }

// UnmarshalYAML reads "8760h", "90m" etc.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write it like 8760h)", n.Line, s)
	}
	d.Duration = v
	return nil
}
