package vagrant

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/test/golden"
)

// Fixed host keys (public halves only) so that the goldens are stable.
const (
	edKey    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFl3khmRwz8Mg/Q1IgscdqFlfKfZgdZ7zUaBG9phshY root@cp1"
	ecdsaKey = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBP142qAicIyYb5muVX7OtXWpJjnCghOlLsAA138sT4LoK8yl15PLROxXKPoc7iWV4wDRyzmeWl1SOjSsJ01s/nE= root@w1"
)

func machines(provider string, workers int, dir string) *Machines {
	m := &Machines{Provider: provider, ClusterName: "kubeboot-vagrant", CNI: "flannel", Bundle: "bundle.tar"}
	m.Machines = append(m.Machines, Machine{Name: "cp1", Address: "10.252.0.11", User: "vagrant",
		KeyFile: filepath.Join(dir, "machines/cp1/"+provider+"/private_key"), Roles: []string{"control-plane"}, HostKeys: []string{edKey, ecdsaKey}})
	for i := 1; i <= workers; i++ {
		n := string(rune('0' + i))
		m.Machines = append(m.Machines, Machine{Name: "w" + n, Address: "10.252.0.2" + n, User: "vagrant",
			KeyFile: filepath.Join(dir, "machines/w"+n+"/"+provider+"/private_key"), Roles: []string{"worker"}, HostKeys: []string{edKey}})
	}
	return m
}

// TestInventoryGolden renders the inventories of 1+2 on LXC (kube-proxy
// leaves conntrack alone) and on VirtualBox and libvirt, and checks that
// each loads and validates as apply loads it.
func TestInventoryGolden(t *testing.T) {
	const dir = "/home/dev/kubeboot/vagrant/.vagrant"
	for _, tc := range []struct {
		provider string
		workers  int
	}{{"lxc", 2}, {"virtualbox", 2}, {"libvirt", 0}} {
		t.Run(tc.provider, func(t *testing.T) {
			m := machines(tc.provider, tc.workers, dir)
			cy, kh, err := Inventory(m, "/home/dev/bundle.tar", dir+"/kubeboot", KnownHostsFile)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tc.provider+"-cluster.yaml", cy)
			golden.Check(t, tc.provider+"-known_hosts", kh)
			c, err := inventory.Parse("cluster.yaml", cy)
			if err != nil {
				t.Fatal(err)
			}
			inventory.SetDefaults(c)
			if err := inventory.Validate(c); err != nil {
				t.Fatal(err)
			}
			if got := len(c.Hosts); got != 1+tc.workers {
				t.Errorf("%d hosts, want %d", got, 1+tc.workers)
			}
			if cp := c.ControlPlanes(); len(cp) != 1 || cp[0].Name != "cp1" {
				t.Errorf("control planes %v", cp)
			}
			if nested := c.KubeProxy.ConntrackMaxPerCore != nil && *c.KubeProxy.ConntrackMaxPerCore == 0; nested != (tc.provider == "lxc") {
				t.Errorf("conntrackMaxPerCore 0: %v, want it only on lxc", nested)
			}
		})
	}
}

// TestKnownHostsPinsEveryKey checks the known_hosts file with x/crypto's
// own parser: each machine's keys are accepted for its address and port,
// another key is refused as a changed key, and another machine's address
// is unknown.
func TestKnownHostsPinsEveryKey(t *testing.T) {
	dir := t.TempDir()
	m := machines("lxc", 1, dir)
	m.Machines[1].Port = 2222
	_, kh, err := Inventory(m, "", dir, KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(p, kh, 0o644); err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(p)
	if err != nil {
		t.Fatal(err)
	}
	key := func(s string) ssh.PublicKey {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	addr := func(s string) *fakeAddr { return &fakeAddr{s} }
	for _, k := range []string{edKey, ecdsaKey} {
		if err := cb("10.252.0.11:22", addr("10.252.0.11:22"), key(k)); err != nil {
			t.Errorf("cp1's %s: %v", strings.Fields(k)[0], err)
		}
	}
	if err := cb("10.252.0.21:2222", addr("10.252.0.21:2222"), key(edKey)); err != nil {
		t.Errorf("w1 on port 2222: %v", err)
	}
	var ke *knownhosts.KeyError
	if err := cb("10.252.0.21:2222", addr("10.252.0.21:2222"), key(ecdsaKey)); err == nil {
		t.Error("w1 accepted a key it does not have")
	} else if !asKeyError(err, &ke) {
		t.Errorf("w1 with another key: %v, want a knownhosts.KeyError", err)
	}
	if err := cb("10.252.0.99:22", addr("10.252.0.99:22"), key(edKey)); err == nil {
		t.Error("an address not in the file was accepted")
	}
}

// TestInventoryRefusesBadMachines names the machine and the field.
func TestInventoryRefusesBadMachines(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *Machines)
		want string
	}{
		{"no machines", func(m *Machines) { m.Machines = nil }, "machines: none"},
		{"no host keys", func(m *Machines) { m.Machines[1].HostKeys = nil }, "machine w1: no host keys"},
		{"bad host key", func(m *Machines) { m.Machines[0].HostKeys = []string{"ssh-ed25519 garbage"} }, "machine cp1: host key 0"},
		{"no key file", func(m *Machines) { m.Machines[0].KeyFile = "" }, "machine cp1: no keyFile"},
		{"no address", func(m *Machines) { m.Machines[1].Address = "" }, "machine w1: no address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := machines("lxc", 1, "/v")
			tc.edit(m)
			_, _, err := Inventory(m, "", "/v", KnownHostsFile)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestWrite writes both files from machines.json as the Vagrantfile does,
// with a real (fixture-mode) key file, and leaves nothing when the
// inventory does not validate.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	m := machines("lxc", 1, dir)
	for _, mc := range m.Machines {
		if err := os.MkdirAll(filepath.Dir(mc.KeyFile), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mc.KeyFile, []byte("not read here\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "kubeboot")
	if err := os.WriteFile(filepath.Join(dir, "bundle.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Bundle = filepath.Join(dir, "bundle.tar")
	p, err := Write(m, out)
	if err != nil {
		t.Fatal(err)
	}
	c, err := inventory.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.SSH.User != "vagrant" || c.Hosts[1].SSH.KeyFile != "../machines/w1/lxc/private_key" && !filepath.IsAbs(c.Hosts[1].SSH.KeyFile) {
		t.Errorf("ssh %+v, host w1 ssh %+v", c.SSH, c.Hosts[1].SSH)
	}
	if _, err := os.Stat(filepath.Join(out, KnownHostsFile)); err != nil {
		t.Error(err)
	}

	// A world-readable key: refused by the same check as apply's, and
	// nothing written.
	out2 := filepath.Join(dir, "kubeboot2")
	if err := os.Chmod(m.Machines[1].KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(m, out2); err == nil || !strings.Contains(err.Error(), "w1") && !strings.Contains(err.Error(), "hosts[1]") {
		t.Fatalf("world-readable key: %v, want an error naming the host", err)
	}
	if ents, _ := os.ReadDir(out2); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	// A missing bundle.
	m.Bundle = filepath.Join(dir, "nope.tar")
	if _, err := Write(m, out2); err == nil || !strings.Contains(err.Error(), "KB_BUNDLE") {
		t.Fatalf("missing bundle: %v", err)
	}
}

// TestReadMachines refuses a field it does not know (a Vagrantfile newer
// than the binary).
func TestReadMachines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "machines.json")
	if err := os.WriteFile(p, []byte(`{"provider":"lxc","machines":[],"surprise":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMachines(p); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Fatalf("unknown field: %v", err)
	}
}

type fakeAddr struct{ s string }

func (a *fakeAddr) Network() string { return "tcp" }
func (a *fakeAddr) String() string  { return a.s }

func asKeyError(err error, ke **knownhosts.KeyError) bool {
	k, ok := err.(*knownhosts.KeyError)
	if ok {
		*ke = k
	}
	return ok && len(k.Want) > 0
}
