package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/bundle/bundletest"
)

func TestBundleCreateAndInspect(t *testing.T) {
	dir := t.TempDir()
	spec := bundletest.Fixture(t, dir)
	out := filepath.Join(dir, "kubeboot-v1.34.3-amd64.tar.gz")
	got, err := run(t, "bundle", "create", "--spec", spec, "-o", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	if !strings.Contains(got, "[bundle] Wrote "+out) || !strings.Contains(got, "Kubernetes v1.34.3 for amd64, 13 files, 3 images") {
		t.Errorf("create output:\n%s", got)
	}
	got, err = run(t, "bundle", "inspect", out)
	if err != nil || !strings.Contains(got, "every file matches its sha256") || !strings.Contains(got, "registry.k8s.io/pause:3.10.1") {
		t.Errorf("inspect: %v\n%s", err, got)
	}
	if !strings.Contains(got, "Role: every node") {
		t.Errorf("inspect does not show the role:\n%s", got)
	}
	// The worker slice: without etcd, named a worker bundle by inspect.
	worker := filepath.Join(dir, "worker.tar.gz")
	got, err = run(t, "bundle", "slice", "--role", "worker", "-o", worker, out)
	if err != nil || !strings.Contains(got, "the worker part of Kubernetes v1.34.3 for amd64, 13 files, 2 images") {
		t.Errorf("slice: %v\n%s", err, got)
	}
	got, err = run(t, "bundle", "inspect", worker)
	if err != nil || !strings.Contains(got, "Role: worker only (no kube-apiserver, kube-controller-manager, kube-scheduler, etcd image), sliced from sha256:") ||
		strings.Contains(got, "registry.k8s.io/etcd") {
		t.Errorf("inspect of the slice: %v\n%s", err, got)
	}
	if _, err := run(t, "bundle", "slice", worker); err == nil || !strings.Contains(err.Error(), "-o") {
		t.Errorf("slice without -o: %v", err)
	}
	// A bad spec names the file and line; nothing is written.
	os.WriteFile(spec, []byte("apiVersion: kubeboot.io/v1alpha1\nkind: BundleSpec\nkubernetesVersion: 1.34\n"), 0o644)
	bad := filepath.Join(dir, "bad.tar")
	_, err = run(t, "bundle", "create", "--spec", spec, "-o", bad)
	if err == nil || !strings.Contains(err.Error(), spec+":3: kubernetesVersion:") {
		t.Errorf("bad spec: %v", err)
	}
	if _, serr := os.Stat(bad); serr == nil {
		t.Errorf("a failed create wrote %s", bad)
	}
	if _, err := run(t, "bundle", "create", "-o", bad); err == nil || !strings.Contains(err.Error(), "--spec") {
		t.Errorf("create without --spec: %v", err)
	}
	if _, err := run(t, "bundle", "inspect", spec); err == nil || !strings.Contains(err.Error(), "not a kubeboot bundle") {
		t.Errorf("inspect of a non-bundle: %v", err)
	}
}
