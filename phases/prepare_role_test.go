package phases

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// TestPrepareBundleRole: a worker bundle prepares a worker and, with
// prepare alone, any node (saying so); init and a control-plane join
// refuse it before anything is installed. Images the node's role runs
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
	noop := func(context.Context, *Data) error { return nil }
	initRunner := newRunner("init", []*Phase{PreparePhase(), {Name: "certs", Run: noop}}...)
	joinRunner := newRunner("join", []*Phase{PreparePhase(), {Name: "kubelet-start", Run: noop}}...)
	for _, tc := range []struct {
		name   string
		bundle []byte
		runner *Runner
		only   string
		join   *inventory.Join // with a JoinState: the join workflow
		err    string
		out    []string
		notOut []string
	}{
		{name: "init refuses a worker bundle", bundle: read(worker), runner: initRunner,
			err: "is a worker bundle (kubeboot bundle slice, from sha256:"},
		{name: "a control-plane join refuses it", bundle: read(worker), runner: joinRunner, join: &inventory.Join{ControlPlane: true},
			err: "it has no kube-apiserver, kube-controller-manager, kube-scheduler, etcd image, which a control plane runs"},
		{name: "a worker join takes it", bundle: read(worker), runner: joinRunner, join: &inventory.Join{},
			out:    []string{"Kubernetes v1.34.3 for amd64, the worker part, 7 binaries, 4 CNI plugins, 2 images", "The bundle has no registry.k8s.io/kube-proxy:v1.34.3, which this worker runs"},
			notOut: []string{"init and join --control-plane refuse it"}},
		{name: "prepare alone takes it and says so", bundle: read(worker), runner: initRunner, only: "prepare",
			out: []string{"the worker part", "This is a worker bundle: the node can join as a worker; init and join --control-plane refuse it"}},
		{name: "a control plane warns of its missing images", bundle: read(whole), runner: initRunner,
			out:    []string{"The bundle has no registry.k8s.io/kube-proxy:v1.34.3, registry.k8s.io/kube-apiserver:v1.34.3, registry.k8s.io/kube-controller-manager:v1.34.3, registry.k8s.io/kube-scheduler:v1.34.3, which this control plane runs"},
			notOut: []string{"etcd:3.6.5-0,", "the worker part"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNode(t, nodeOpts{cgroupV1: true})
			h.SetFile(testBundle, tc.bundle, 0o644)
			cfg := testConfig()
			var out bytes.Buffer
			d := prepareRunData(cfg, h, &out, testBundle)
			if tc.join != nil {
				cfg.Join = tc.join
				d.Join = &JoinState{}
			}
			from := len(h.Runs())
			err := tc.runner.Run(bgCtx, d, workflow.Options{Only: tc.only})
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
