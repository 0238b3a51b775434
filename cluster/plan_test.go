package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/test/golden"
)

func TestPlanGolden(t *testing.T) {
	inv := loadTestInventory(t, testInventory)
	p := NewPlan(inv, 2)
	var text, js bytes.Buffer
	if err := p.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "plan.txt", text.Bytes())
	golden.Check(t, "plan.json", js.Bytes())
}

// With a bundle: the hosts that are only workers get its worker part.
func TestPlanWithBundle(t *testing.T) {
	dir := t.TempDir()
	b := filepath.Join(dir, "kubeboot-v1.34.3-amd64.tar")
	if err := os.WriteFile(b, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	inv := loadTestInventory(t, withBundle(testInventory, b))
	inv.Bundle = "kubeboot-v1.34.3-amd64.tar" // the golden file names no temporary directory
	var text bytes.Buffer
	if err := NewPlan(inv, 2).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "plan-bundle.txt", text.Bytes())
}

func TestSSHDialerConfig(t *testing.T) {
	inv := loadTestInventory(t, testInventory+`  - name: w4
    address: w4.lan
    roles: [worker]
    ssh:
      passwordFile: pw
      bastion: {address: jump.lan, user: jump}
`)
	d := &SSHDialer{Getenv: func(k string) string { return map[string]string{"W3_SUDO": "sudo-pw"}[k] }}
	c, err := d.Config(inv, 5)
	if err != nil || c.User != "ops" || !c.Sudo || c.SudoPassword != "sudo-pw" || c.KeyFile != filepath.Join(inv.Dir, "id_test") || c.KnownHostsFile != "/home/op/.ssh/known_hosts" {
		t.Errorf("w3: %+v, %v", c, err)
	}
	c, err = d.Config(inv, 6)
	if err != nil || c.Password != "s3cret" || c.Bastion == nil || c.Bastion.Address != "jump.lan" || c.Bastion.User != "jump" || c.Bastion.Port != 22 || c.Bastion.KeyFile != c.KeyFile || c.Sudo {
		t.Errorf("w4: %+v (bastion %+v), %v", c, c.Bastion, err)
	}
	d.Getenv = func(string) string { return "" }
	if _, err := d.Config(inv, 5); err == nil || !strings.Contains(err.Error(), "hosts[5] (w3) ssh.sudo: the environment variable W3_SUDO is not set") {
		t.Errorf("unset sudo password variable: %v", err)
	}
}
