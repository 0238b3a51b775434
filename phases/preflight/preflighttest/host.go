// Package preflighttest has a fake host on which every preflight check
// passes, for the tests of preflight and of the phases that run it.
package preflighttest

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

// Kernel is the healthy host's kernel release.
const Kernel = "6.1.0-18-amd64"

// TCPLine is one row of /proc/net/tcp for a socket on port in state st
// (0A: LISTEN, 01: ESTABLISHED).
func TCPLine(i, port int, st string) string {
	return fmt.Sprintf("%4d: 00000000:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", i, port, st, 1000+i)
}

// TCPHeader is the first line of /proc/net/tcp.
const TCPHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// KernelConfig is a kernel configuration with every option preflight
// requires.
func KernelConfig() string {
	var b strings.Builder
	b.WriteString("#\n# Automatically generated file; DO NOT EDIT.\n#\n# CONFIG_AUFS_FS is not set\n")
	for i, names := range hostutil.RequiredKernelConfig {
		v := "y"
		if i%3 == 0 {
			v = "m"
		}
		fmt.Fprintf(&b, "CONFIG_%s=%s\n", names[len(names)-1], v) // the alias where there is one
	}
	return b.String()
}

// HealthyHost is a root host on which every check passes: 4 CPUs, 16 GB,
// cgroup v2, systemd as PID 1, containerd's socket, a v1.34.3 kubelet.
func HealthyHost() *transporttest.Fake {
	f := transporttest.New("m1")
	MakeHealthy(f)
	return f
}

// MakeHealthy gives f what HealthyHost has (a joining node of the join
// tests, say).
func MakeHealthy(f *transporttest.Fake) {
	f.Handle("id -u", transporttest.Reply("0\n"))
	f.Handle("nproc", transporttest.Reply("4\n"))
	f.SetFile("/proc/meminfo", []byte("MemTotal:       16318412 kB\nMemFree:         1000000 kB\n"), 0o444)
	f.Handle("systemctl is-active firewalld", transporttest.Exit(3, ""))
	f.Handle("systemctl is-enabled kubelet", transporttest.Reply("enabled\n"))
	// sshd listens on 22; a client connection to 6443 is not a listener.
	f.SetFile("/proc/net/tcp", []byte(TCPHeader+TCPLine(0, 22, "0A")+TCPLine(1, 6443, "01")), 0o444)
	f.SetFile("/proc/net/tcp6", []byte(TCPHeader+TCPLine(0, 22, "0A")), 0o444)
	f.Handle("env", transporttest.Reply("PATH=/usr/sbin:/usr/bin\nHOME=/root\n"))
	f.SetFile("/var/run/containerd/containerd.sock", nil, fs.ModeSocket|0o660)
	f.SetFile("/proc/swaps", []byte("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"), 0o444)
	for _, exe := range []string{"losetup", "mount", "ip", "iptables", "nsenter", "ebtables", "ethtool"} {
		f.SetFile("/usr/sbin/"+exe, []byte("ELF"), 0o755)
	}
	for _, exe := range []string{"cp", "socat", "tc", "touch", "kubelet"} {
		f.SetFile("/usr/bin/"+exe, []byte("ELF"), 0o755)
	}
	f.Handle("/usr/bin/kubelet --version", transporttest.Reply("Kubernetes v1.34.3\n"))
	f.SetFile("/proc/sys/kernel/ostype", []byte("Linux\n"), 0o444)
	f.SetFile("/proc/sys/kernel/osrelease", []byte(Kernel+"\n"), 0o444)
	f.SetFile("/boot/config-"+Kernel, []byte(KernelConfig()), 0o644)
	f.SetFile("/sys/fs/cgroup/cgroup.controllers", []byte("cpuset cpu io memory hugetlb pids rdma misc\n"), 0o444)
	f.Handle("getent hosts", transporttest.Reply("10.0.0.11       m1\n"))
	f.SetFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	f.SetFile("/proc/filesystems", []byte("nodev\tproc\n\text4\nnodev\toverlay\n"), 0o444)
	f.SetFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1\n"), 0o644)
	// Host facts: systemd as PID 1, negative oom_score_adj allowed.
	f.SetFile("/proc/1/comm", []byte("systemd\n"), 0o444)
	f.Handle("sh -c", transporttest.Reply(""))
}

// Config is the default configuration for the healthy host, node m1 at
// 10.0.0.11.
func Config() *inventory.Cluster {
	cfg := inventory.Default()
	cfg.Node.Name = "m1"
	cfg.Node.AdvertiseAddress = "10.0.0.11"
	return cfg
}
