// Package inventorytest has the configurations the tests of phases and its
// packages share.
package inventorytest

import "github.com/kubeboot/kubeboot/inventory"

// Node is the default configuration for the node name at address, the
// first control plane of the tests being cp1 at 192.168.10.11.
func Node(name, address string) *inventory.Cluster {
	cfg := inventory.Default()
	cfg.Node.Name = name
	cfg.Node.AdvertiseAddress = address
	return cfg
}

// CP1 is Node("cp1", "192.168.10.11").
func CP1() *inventory.Cluster { return Node("cp1", "192.168.10.11") }
