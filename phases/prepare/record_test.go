package prepare

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
)

// TestPrepareRecord: prepare records, before it changes them, every file it
// creates or replaces (keeping the host's version), the units it enables,
// the sysctls it sets with their old values, the images it imports and the
// swap entries it turns off; a second run records nothing new.
func TestPrepareRecord(t *testing.T) {
	h := newNode(t, nodeOpts{})
	h.SetFile(testBundle, fixtureBundle(t, nil), 0o644)
	hostConfig := []byte("# the host's own containerd configuration\n")
	h.SetFile(templates.ContainerdConfigFile, hostConfig, 0o600)
	h.SetFile("/etc/fstab", []byte("/dev/sda2 none swap sw 0 0\n"), 0o644)
	cfg := prepTestConfig()
	var out bytes.Buffer
	if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r, found, err := LoadRecord(bgCtx, h)
	if err != nil || !found {
		t.Fatalf("record: %v (found %v)", err, found)
	}
	for _, p := range []string{"/usr/bin/kubelet", "/usr/bin/containerd", "/usr/sbin/runc", "/opt/cni/bin/bridge",
		templates.ContainerdUnitFile, templates.KubeletUnitFile, hostutil.ModulesLoadFile, sysctlFile} {
		if !slices.Contains(r.Created, p) {
			t.Errorf("created lacks %s: %v", p, r.Created)
		}
	}
	if !slices.Equal(r.Replaced, []string{templates.ContainerdConfigFile}) {
		t.Errorf("replaced = %v, want only %s", r.Replaced, templates.ContainerdConfigFile)
	}
	if b, mode, ok := h.File(BackupDir + templates.ContainerdConfigFile); !ok || !bytes.Equal(b, hostConfig) || mode.Perm() != 0o600 {
		t.Errorf("backup of %s: %v %04o %q", templates.ContainerdConfigFile, ok, mode.Perm(), b)
	}
	for _, dir := range []string{"/opt/cni", "/opt/cni/bin", "/etc/modules-load.d"} {
		if !slices.Contains(r.Dirs, dir) {
			t.Errorf("dirs lacks %s: %v", dir, r.Dirs)
		}
	}
	if slices.Contains(r.Dirs, "/etc") || slices.Contains(r.Dirs, "/usr/bin") {
		t.Errorf("dirs lists a directory the host had: %v", r.Dirs)
	}
	if !slices.Equal(r.Units, []string{"containerd", "kubelet"}) {
		t.Errorf("units = %v", r.Units)
	}
	if r.Sysctls["net.ipv4.ip_forward"] != "0" || r.Sysctls["net.bridge.bridge-nf-call-iptables"] != "0" || len(r.Sysctls) != 3 {
		t.Errorf("sysctls = %v, want the three prepare set, with their old values", r.Sysctls)
	}
	if !r.FstabSwap {
		t.Errorf("fstab swap not recorded")
	}
	if !slices.Contains(r.Images, "registry.k8s.io/pause:3.10.1") {
		t.Errorf("images = %v", r.Images)
	}

	// A second run changes nothing, the record included.
	rec, _, _ := h.File(RecordFile)
	out.Reset()
	if err := prepareRunner().Run(bgCtx, prepareRunData(cfg, h, &out, testBundle), workflow.Options{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rec2, _, _ := h.File(RecordFile); !bytes.Equal(rec, rec2) {
		t.Errorf("the second run changed the record:\n%s\n%s", rec, rec2)
	}
	if strings.Contains(string(rec), "\"manager\"") {
		t.Errorf("a bundle install records a package manager:\n%s", rec)
	}
}
