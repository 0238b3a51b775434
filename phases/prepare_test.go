package phases

import (
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/prepare"
)

// TestBundleRoleOf: join says what the node becomes; init prepares a
// control plane unless it runs only prepare and preflight (apply runs
// `init phase prepare` on every host before it knows).
func TestBundleRoleOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		join *inventory.Join // with a JoinState: the join workflow
		plan []string
		want string
	}{
		{"init", nil, []string{"prepare/kernel", "preflight", "certs/ca"}, prepare.RoleControlPlane},
		{"init phase prepare", nil, []string{"prepare/kernel", "prepare/images"}, prepare.RoleUnknown},
		{"prepare and preflight", nil, []string{"prepare/kernel", "preflight"}, prepare.RoleUnknown},
		{"join", &inventory.Join{}, []string{"prepare/kernel"}, prepare.RoleWorker},
		{"join --control-plane", &inventory.Join{ControlPlane: true}, []string{"prepare/kernel"}, prepare.RoleControlPlane},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Data{Cfg: testConfig()}
			if tc.join != nil {
				d.Cfg.Join = tc.join
				d.Join = &JoinState{}
			}
			if got := bundleRoleOf(d, tc.plan); got != tc.want {
				t.Errorf("role %q, want %q", got, tc.want)
			}
		})
	}
}
