package prepare

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// TestPrepareBundleRole: a worker bundle prepares a worker and, with
// prepare alone, any node (saying so); a control plane (init, a
// control-plane join) refuses it before anything is installed. Images the node's role runs
// that the bundle lacks are warnings.
func TestPrepareBundleRole(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.tar.gz")
	if err := os.WriteFile(whole, fixtureBundle(t, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	worker := filepath.Join(dir, "worker.tar.gz")
	if _, err := bundle.Slice(whole, worker, bundle.RoleWorker, nil); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		role   string
		err    string
		out    []string
		notOut []string
	}{
		{name: "init refuses a worker bundle", bundle: read(worker), role: RoleControlPlane,
			err: "is a worker bundle (kubeboot bundle slice, from sha256:"},
		{name: "a control-plane join refuses it", bundle: read(worker), role: RoleControlPlane,
			err: "it has no kube-apiserver, kube-controller-manager, kube-scheduler, etcd image, which a control plane runs"},
		{name: "a worker join takes it", bundle: read(worker), role: RoleWorker,
			out:    []string{"Kubernetes v1.34.3 for amd64, the worker part, 7 binaries, 4 CNI plugins, 2 images", "The bundle has no registry.k8s.io/kube-proxy:v1.34.3, which this worker runs"},
			notOut: []string{"init and join --control-plane refuse it"}},
		{name: "prepare alone takes it and says so", bundle: read(worker), role: RoleUnknown,
			out: []string{"the worker part", "This is a worker bundle: the node can join as a worker; init and join --control-plane refuse it"}},
		{name: "a control plane warns of its missing images", bundle: read(whole), role: RoleControlPlane,
			out:    []string{"The bundle has no registry.k8s.io/kube-proxy:v1.34.3, registry.k8s.io/kube-apiserver:v1.34.3, registry.k8s.io/kube-controller-manager:v1.34.3, registry.k8s.io/kube-scheduler:v1.34.3, which this control plane runs"},
			notOut: []string{"etcd:3.6.5-0,", "the worker part"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNode(t, nodeOpts{cgroupV1: true})
			h.SetFile(testBundle, tc.bundle, 0o644)
			var out bytes.Buffer
			d := prepareRunData(prepTestConfig(), h, &out, testBundle)
			d.Role = tc.role
			from := len(h.Runs())
			err := prepareRunner().Run(bgCtx, d, workflow.Options{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if m := h.mutating(from); len(m) > 0 {
					t.Errorf("a refused bundle changed the node: %v", m)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, w := range tc.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
