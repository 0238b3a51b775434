package phases

import (
	"bytes"
	"context"
	"testing"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
)

// BenchmarkInitOffline runs the offline init phases (certs, kubeconfig,
// etcd, control-plane, kubelet-start) in-process on a fake host with real
// key generation, i.e. kubeboot's work without process start-up.
// test/bench/offline-phases.sh measures the whole command against kubeadm.
func BenchmarkInitOffline(b *testing.B) {
	for _, alg := range []inventory.EncryptionAlgorithm{inventory.RSA2048, inventory.ECDSAP256} {
		b.Run(string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				cfg := testConfig()
				cfg.EncryptionAlgorithm = alg
				var out bytes.Buffer
				d := newData(b, cfg, fakeNode(b, false), &out)
				d.Keys = certs.NewKeyPool(alg, nil)
				if err := InitRunner().Run(context.Background(), d, offline); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
