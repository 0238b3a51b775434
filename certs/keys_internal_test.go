package certs

import (
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
)

func TestRSABits(t *testing.T) {
	for alg, want := range map[inventory.EncryptionAlgorithm]int{
		"": 2048, inventory.RSA2048: 2048, inventory.RSA3072: 3072, inventory.RSA4096: 4096,
		inventory.ECDSAP256: 0, "RSA-1024": 0,
	} {
		if got := rsaBits(alg); got != want {
			t.Errorf("rsaBits(%q) = %d, want %d", alg, got, want)
		}
	}
}
