package cluster

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeboot/kubeboot/inventory"
)

// Load reads an inventory for plan and apply: the cluster file with at
// least one host, whose key and password files exist and are private, and
// whose bundle exists. Warnings (an inline password) are returned apart.
func Load(path string) (*Inventory, []string, error) {
	c, err := inventory.Load(path)
	if err != nil {
		return nil, nil, err
	}
	if len(c.Hosts) == 0 {
		return nil, nil, fmt.Errorf("%s: no hosts: kubeboot apply needs a hosts list (name, address, roles); for this machine alone use kubeboot init", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, err
	}
	home, _ := os.UserHomeDir()
	inv := &Inventory{Cluster: c, Path: path, Dir: filepath.Dir(abs), Home: home}
	if err := inventory.CheckSSHFiles(c, inv.Dir, home); err != nil {
		return nil, nil, err
	}
	if b := inv.BundlePath(); b != "" {
		if fi, err := os.Stat(b); err != nil || fi.IsDir() {
			return nil, nil, fmt.Errorf("%s: bundle: %s is not a file (%v); build one with kubeboot bundle create, or drop bundle: to install from the distribution's packages", path, b, err)
		}
	}
	return inv, inventory.Warnings(c), nil
}

// Secrets are what apply generates and hands to the nodes on stdin.
type Secrets struct {
	Token          string
	CertificateKey string // "" unless control planes join with it
	CAPin          string // sha256:<hex> of the cluster CA's public key
}

// NodeConfig is host h's own configuration: a deep copy of the cluster's
// settings (no host shares a value with another or with inv), without the
// hosts, SSH settings and bundle, with the node's name, address and taints,
// and an init or join section. It is what `kubeboot init|join --config -`
// reads on the host.
func NodeConfig(inv *Inventory, h *inventory.Host, role string, s Secrets) (*inventory.Cluster, error) {
	// A deep copy through the file format: every map, slice and pointer is
	// new, so hosts prepared in parallel share nothing.
	b, err := inventory.Marshal(inv.Cluster)
	if err != nil {
		return nil, err
	}
	c, err := inventory.Parse(inv.Path, b)
	if err != nil {
		return nil, fmt.Errorf("copy the configuration for %s: %w", h.Name, err)
	}
	c.Hosts, c.SSH, c.Bundle, c.Init, c.Join = nil, nil, "", nil, nil
	if c.LoadBalancer != nil {
		// Every node's load balancer knows every control plane.
		c.LoadBalancer.Backends = nil
		for _, cp := range inv.ControlPlanes() {
			c.LoadBalancer.Backends = append(c.LoadBalancer.Backends, inventory.Backend{Name: cp.Name, Address: cp.NodeIP()})
		}
	}
	c.Node.Name = h.Name
	c.Node.AdvertiseAddress = h.NodeIP()
	switch {
	case h.Taints != nil:
		ts := append([]inventory.Taint{}, *h.Taints...)
		c.Node.Taints = &ts
	case h.IsControlPlane() && h.HasRole(inventory.RoleWorker):
		// Both roles: a control plane that runs workloads, untainted.
		c.Node.Taints = &[]inventory.Taint{}
	}
	switch role {
	case StepInit:
		c.Init = &inventory.Init{Token: s.Token, CertificateKey: s.CertificateKey, UploadCerts: s.CertificateKey != ""}
	case StepJoin, StepJoinCP:
		c.Join = &inventory.Join{
			APIServerEndpoint: inv.Endpoint(),
			Token:             s.Token,
			CACertHashes:      []string{s.CAPin},
			ControlPlane:      role == StepJoinCP,
			CertificateKey:    s.CertificateKey,
		}
		if role == StepJoin {
			c.Join.CertificateKey = ""
		}
	}
	return c, nil
}

// nodeConfigYAML is NodeConfig as the YAML that goes on stdin.
func nodeConfigYAML(inv *Inventory, h *inventory.Host, role string, s Secrets) ([]byte, error) {
	c, err := NodeConfig(inv, h, role, s)
	if err != nil {
		return nil, err
	}
	return inventory.Marshal(c)
}
