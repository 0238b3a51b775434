package nspawn

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseHierarchies(t *testing.T) {
	mountinfo := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 /sub /mnt/odd\040dir rw - cgroup cgroup rw,pids
`
	procCgroup := `9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct,cpu:/user.slice
7:pids:/sub/x
8:devices:/
0::/
`
	got, err := parseHierarchies([]byte(procCgroup), []byte(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []hierarchy{
		{Name: "name=systemd", Dir: "/sys/fs/cgroup/systemd"},
		{Name: "memory", Dir: "/sys/fs/cgroup/memory/process_api/abc"},
		{Name: "cpuset", Dir: "/sys/fs/cgroup/cpuset"},
		{Name: "cpuacct,cpu", Dir: "/sys/fs/cgroup/cpu,cpuacct/user.slice"},
		{Name: "pids", Dir: "/mnt/odd dir/x"},
		// devices is not mounted: left out.
		{Name: "", Dir: "/sys/fs/cgroup/unified"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := parseHierarchies([]byte("0::/\n"), []byte("")); err == nil {
		t.Error("no mounted hierarchy: want an error")
	}
}

func TestRootfsKey(t *testing.T) {
	a := DefaultRootfs
	b := DefaultRootfs
	b.Packages = append([]string(nil), a.Packages...)
	b.Packages[0], b.Packages[1] = b.Packages[1], b.Packages[0]
	b.Mirror = "http://mirror.example/debian"
	if a.Key() != b.Key() {
		t.Errorf("package order or mirror changed the key: %s vs %s", a.Key(), b.Key())
	}
	c := DefaultRootfs
	c.Packages = append(append([]string(nil), a.Packages...), "strace")
	if a.Key() == c.Key() {
		t.Error("another package list has the same key")
	}
	if !strings.HasPrefix(a.Key(), "bookworm-") {
		t.Errorf("key %s does not name the suite", a.Key())
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Rootfs: "/r", N: 3}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Gateway() != netip.MustParseAddr("10.251.0.1") || c.MachineIP(1) != netip.MustParseAddr("10.251.0.11") || c.MachineIP(3) != netip.MustParseAddr("10.251.0.13") {
		t.Errorf("addresses: gateway %s, m1 %s, m3 %s", c.Gateway(), c.MachineIP(1), c.MachineIP(3))
	}
	if c.Nameserver != "10.251.0.1" || c.Bridge != "kb-e2e" || c.NamePrefix != "m" {
		t.Errorf("defaults: %+v", c)
	}
	for name, bad := range map[string]Config{
		"no rootfs":          {},
		"loopback resolver":  {Rootfs: "/r", Nameserver: "127.0.0.53"},
		"too many machines":  {Rootfs: "/r", N: 201},
		"IPv6 network":       {Rootfs: "/r", Network: netip.MustParsePrefix("fd00::/64")},
		"network too narrow": {Rootfs: "/r", Network: netip.MustParsePrefix("10.1.0.0/28")},
	} {
		if err := bad.setDefaults(); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestMountsBelow: what an interrupted debootstrap leaves mounted in its
// target is found (escaped names included); a sibling with the same prefix
// is not below it.
func TestMountsBelow(t *testing.T) {
	mountinfo := []byte(`22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
90 22 0:5 / /root/.cache/kubeboot/rootfs/.build-x-1/proc rw - proc proc rw
91 22 0:21 / /root/.cache/kubeboot/rootfs/.build-x-1/sys rw - sysfs sysfs rw
92 22 0:44 / /root/.cache/kubeboot/rootfs/.build-x-1/dev/pts rw - devpts devpts rw
93 22 0:45 / /root/.cache/kubeboot/rootfs/.build-x-10/proc rw - proc proc rw
94 22 0:46 / /var/tmp/odd\040dir/proc rw - proc proc rw
`)
	got := mountsBelow(mountinfo, "/root/.cache/kubeboot/rootfs/.build-x-1/")
	want := []string{"/root/.cache/kubeboot/rootfs/.build-x-1/proc", "/root/.cache/kubeboot/rootfs/.build-x-1/sys", "/root/.cache/kubeboot/rootfs/.build-x-1/dev/pts"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mountsBelow = %q, want %q", got, want)
	}
	if got := mountsBelow(mountinfo, "/var/tmp/odd dir"); !reflect.DeepEqual(got, []string{"/var/tmp/odd dir/proc"}) {
		t.Errorf("escaped mount point: %q", got)
	}
	if got := mountsBelow(mountinfo, "/var/tmp/kubeboot-e2e"); len(got) != 0 {
		t.Errorf("nothing is below /var/tmp/kubeboot-e2e: %q", got)
	}
}

// TestStateCheck: a state file is swept only when it names what a run in
// its own directory creates; anything else (a planted or damaged file) is
// left alone rather than removed or killed.
func TestStateCheck(t *testing.T) {
	dir := "/var/tmp/kubeboot-e2e/kubeboot-e2e-101010-abcd"
	good := func() state {
		return state{Bridge: "kb-e2e", Machines: []machineState{{
			Name: "m1", Dir: dir + "/m1",
			Cgroups: []string{"/sys/fs/cgroup/memory/user.slice/kubeboot-e2e-101010-abcd/m1", "/sys/fs/cgroup/unified/kubeboot-e2e-101010-abcd/m1"},
		}}}
	}
	if err := good().check(dir); err != nil {
		t.Fatalf("a run's own state: %v", err)
	}
	tests := []struct {
		name string
		edit func(*state)
	}{
		{"machine directory elsewhere", func(s *state) { s.Machines[0].Dir = "/etc" }},
		{"machine directory above the run", func(s *state) { s.Machines[0].Dir = dir + "/../m1" }},
		{"machine name with a path", func(s *state) { s.Machines[0].Name, s.Machines[0].Dir = "../x", dir+"/../x" }},
		{"another run's cgroup", func(s *state) { s.Machines[0].Cgroups[0] = "/sys/fs/cgroup/memory/kubeboot-e2e-000000-ffff/m1" }},
		{"a cgroup that is not the machine's", func(s *state) { s.Machines[0].Cgroups[0] = "/sys/fs/cgroup/memory/kubeboot-e2e-101010-abcd" }},
		{"a relative cgroup", func(s *state) { s.Machines[0].Cgroups[0] = "kubeboot-e2e-101010-abcd/m1" }},
		{"a directory that is not a cgroup", func(s *state) { s.Machines[0].Cgroups[0] = t.TempDir() + "/kubeboot-e2e-101010-abcd/m1" }},
		{"a bridge name with options", func(s *state) { s.Bridge = "kb-e2e type veth" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.edit(&s)
			if tc.name == "a directory that is not a cgroup" {
				if err := os.MkdirAll(s.Machines[0].Cgroups[0], 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.check(dir); err == nil {
				t.Errorf("accepted %+v", s)
			}
		})
	}
}

func TestPrivateDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(dir); err != nil {
		t.Errorf("a 0700 directory of ours: %v", err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{open, link} {
		if err := privateDir(p); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}

func TestIsNamespaceInit(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   bool
	}{
		{"Name:\tsystemd\nPid:\t4242\nNSpid:\t4242\t1\n", true},
		{"Name:\tsystemd\nNSpid:\t1\n", false}, // the host's own init
		{"Name:\tsshd\nNSpid:\t4250\t31\n", false},
		{"Name:\tx\nNSpid:\t900\t12\t1\n", true}, // nested namespaces
		{"Name:\told kernel\n", false},
	} {
		if got := isNamespaceInit([]byte(tc.status)); got != tc.want {
			t.Errorf("isNamespaceInit(%q) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestHostInterface(t *testing.T) {
	if got := (&Machine{Name: "m2"}).HostInterface(); got != "vb-m2" {
		t.Errorf("m2: %q", got)
	}
}
