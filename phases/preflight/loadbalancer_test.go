package preflight

import (
	"context"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func TestKeepalivedUses(t *testing.T) {
	conf := []byte("vrrp_instance kubeboot {\n    virtual_router_id 51\n}\n")
	for _, tc := range []struct {
		name     string
		conf     []byte
		manifest bool
		vrid     int
		want     bool
	}{
		{"a re-run: the same ID, keepalived's manifest there", conf, true, 51, true},
		{"the ID changed in the cluster file", conf, true, 52, false},
		{"a prefix of another ID", conf, true, 5, false},
		{"no manifest (keepalived not set up)", conf, false, 51, false},
		{"no configuration", nil, true, 51, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := transporttest.New("cp1")
			if tc.conf != nil {
				h.SetFile(templates.KeepalivedConfigPath, tc.conf, 0o644)
			}
			if tc.manifest {
				h.SetFile(inventory.ManifestPath("keepalived"), []byte("kind: Pod\n"), 0o600)
			}
			if got := keepalivedUses(context.Background(), h, tc.vrid); got != tc.want {
				t.Errorf("keepalivedUses(%d) = %v, want %v", tc.vrid, got, tc.want)
			}
		})
	}
}
