// Package pki makes and checks a node's certificates, keys and kubeconfig
// files, as kubeadm's certs and kubeconfig phases do: the CAs, every leaf
// and the service-account key pair (certs.go), the kubeconfigs
// (kubeconfig.go), and a joining control plane's, which reuse the cluster's
// CAs (join.go). Its steps act on Data, with plain arguments, so that init,
// join and certificate renewal call the same code.
package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// Data is what the certificate and kubeconfig steps act on: the node's
// files (Host, Cfg), how they make new ones (Keys, Now), and the CA pairs
// this run has read.
type Data struct {
	Host transport.Host
	Cfg  *inventory.Cluster
	Out  *workflow.Printer
	// Now is the clock for certificates (time.Now when nil).
	Now func() time.Time
	// Keys hands out private keys (nil: generated when needed).
	Keys KeySource

	// cas are the CA pairs this run has read and checked (loadCA).
	cas caCache
}

// Clock returns d.Now or time.Now.
func (d *Data) Clock() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// caCache holds the CA pairs a run has read and checked, by certificate
// path, so that every leaf and kubeconfig a run signs does not read its CA
// again (over SSH each read is a round trip). Only kubeboot changes the CA
// files during a run, and whatever writes one forgets it here first.
type caCache struct {
	mu sync.Mutex
	m  map[string]*cachedCA
}

// cachedCA is a CA pair as read from the host, checked: its certificate
// and key parse and match.
type cachedCA struct {
	cert     *x509.Certificate
	key      crypto.Signer
	certFile []byte // the certificate file's bytes
}

func (c *caCache) get(certPath string) (*cachedCA, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ca, ok := c.m[certPath]
	return ca, ok
}

func (c *caCache) put(certPath string, ca *cachedCA) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*cachedCA{}
	}
	c.m[certPath] = ca
}

// forget drops the CA of certPath, or every CA when certPath is empty.
func (c *caCache) forget(certPath string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if certPath == "" {
		c.m = nil
		return
	}
	delete(c.m, certPath)
}

// CACertFile returns the bytes of the CA certificate file at certPath when
// this run has read and checked that CA, without reading it again.
func (d *Data) CACertFile(certPath string) ([]byte, bool) {
	ca, ok := d.cas.get(certPath)
	if !ok {
		return nil, false
	}
	return ca.certFile, true
}

func getKey(d *Data, name string) (crypto.Signer, error) {
	if d.Keys == nil {
		k, err := certs.GenerateKey(d.Cfg.EncryptionAlgorithm)
		if err != nil {
			return nil, fmt.Errorf("generate the %s key: %w", name, err)
		}
		return k, nil
	}
	k, err := d.Keys.Get(name)
	if err != nil {
		return nil, fmt.Errorf("generate the %s key: %w", name, err)
	}
	return k, nil
}

// ForgetCAs drops every CA pair this run has read: something else wrote
// the CA files (join's download-certs).
func (d *Data) ForgetCAs() { d.cas.forget("") }

// KeySource is where the PKI steps get private keys from (certs.KeyPool in
// production, fixture keys in tests).
type KeySource interface {
	// Start begins generating keys for names in the background.
	Start(names ...string)
	// Get returns the key for name, waiting for or generating it.
	Get(name string) (crypto.Signer, error)
}
