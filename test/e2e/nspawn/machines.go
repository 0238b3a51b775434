// Package nspawn boots throw-away Debian machines for end-to-end tests:
// systemd-nspawn containers with systemd as PID 1, sshd, their own network
// namespace on a private bridge, and their own cgroup in every hierarchy, so
// that containerd and kubelet run in them as on a real host. A Cluster is N
// such machines; Down (registered with t.Cleanup, and run on SIGINT/SIGTERM)
// removes everything Boot created: processes, cgroups, rootfs copies, the
// bridge.
//
// What a machine needs on a cgroup v1 host without systemd as PID 1 (see
// ../shared/docs/testbed.md section 4): nspawn without machined
// (--register=no --keep-unit), launched inside its own cgroup in every
// hierarchy; PID 1 is kb-init (cgroup remount, sysctl shadowing), then
// systemd; all capabilities, /dev/kmsg, the keyring syscalls.
package nspawn

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeboot/kubeboot/transport"
)

// Config describes the machines to boot. Zero fields take the defaults.
type Config struct {
	// N is the number of machines (1 if 0).
	N int
	// Rootfs is the root file system to copy (EnsureRootfs). Required.
	Rootfs string
	// NamePrefix names the machines <prefix>1..<prefix>N ("m"). The name is
	// also the hostname, hence the Kubernetes node name.
	NamePrefix string
	// Bridge is the host bridge the machines are attached to ("kb-e2e").
	Bridge string
	// Network is the bridge's subnet (10.251.0.0/24): the host is .1,
	// machine i is .(10+i).
	Network netip.Prefix
	// Nameserver is what the machines' /etc/resolv.conf names (the host's
	// bridge address). It must not be a loopback address: CoreDNS forwards
	// to it and its loop plugin stops on a loop.
	Nameserver string
	// WorkDir holds the runs' rootfs copies and state (/var/tmp/kubeboot-e2e).
	WorkDir string
	// LogDir, when set, receives each machine's console log at Down.
	LogDir string
	// BootTimeout bounds the wait for SSH logins to every machine (2 minutes).
	BootTimeout time.Duration
	// Logf prints progress (discarded when nil).
	Logf func(format string, args ...any)
}

func (c *Config) setDefaults() error {
	if c.N <= 0 {
		c.N = 1
	}
	if c.Rootfs == "" {
		return errors.New("nspawn: Config.Rootfs is required (see EnsureRootfs)")
	}
	if c.NamePrefix == "" {
		c.NamePrefix = "m"
	}
	if c.Bridge == "" {
		c.Bridge = "kb-e2e"
	}
	if !c.Network.IsValid() {
		c.Network = netip.MustParsePrefix("10.251.0.0/24")
	}
	c.Network = c.Network.Masked()
	if !c.Network.Addr().Is4() || c.Network.Bits() > 24 {
		return fmt.Errorf("nspawn: network %s: want an IPv4 /24 or larger", c.Network)
	}
	if c.N > 200 {
		return fmt.Errorf("nspawn: %d machines: at most 200", c.N)
	}
	if c.Nameserver == "" {
		c.Nameserver = c.Gateway().String()
	}
	if ip, err := netip.ParseAddr(c.Nameserver); err != nil || ip.IsLoopback() {
		return fmt.Errorf("nspawn: nameserver %q: want a non-loopback IP address", c.Nameserver)
	}
	if c.WorkDir == "" {
		c.WorkDir = "/var/tmp/kubeboot-e2e"
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = 2 * time.Minute
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Gateway is the host's address on the bridge.
func (c *Config) Gateway() netip.Addr { return c.Network.Addr().Next() }

// MachineIP is machine i's address (i from 1).
func (c *Config) MachineIP(i int) netip.Addr {
	a := c.Network.Addr().As4()
	a[3] += byte(10 + i)
	return netip.AddrFrom4(a)
}

// Cluster is a set of running machines.
type Cluster struct {
	cfg Config
	// ID names this run (its cgroups, work directory).
	ID string
	// Dir is the run's work directory.
	Dir string
	// KeyFile is the private key (OpenSSH format, 0600) that logs in as root
	// on every machine; KnownHostsFile pins every machine's host key.
	KeyFile, KnownHostsFile string
	Machines                []*Machine
	// BootTime is how long Boot took, from the first copy to the last sshd.
	BootTime time.Duration

	mu            sync.Mutex // guards the machines' processes against a Down during Boot (a signal)
	closed        bool
	bridgeCreated bool
	downOnce      sync.Once
	downErr       error
}

// Machine is one booted machine.
type Machine struct {
	Name string
	IP   netip.Addr
	// Dir is the machine's work directory; Root its root file system.
	Dir, Root string
	// HostKey is the machine's SSH host public key (authorized_keys format).
	HostKey string
	// BootTime is from nspawn's start to the first SSH login.
	BootTime time.Duration

	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{}
	cgroups []hierarchy // the machine's own cgroup in each hierarchy
	console string
}

// SSHConfig is how to log in to m as root: the run's key, the pinned host
// key (strict checking: an unknown or different key is refused).
func (c *Cluster) SSHConfig(m *Machine) transport.SSHConfig {
	return transport.SSHConfig{
		Name:           m.Name,
		Address:        m.IP.String(),
		User:           "root",
		KeyFile:        c.KeyFile,
		KnownHostsFile: c.KnownHostsFile,
		ConnectTimeout: 10 * time.Second,
	}
}

// Dial opens an SSH connection to m (transport.SSH); close it when done.
func (c *Cluster) Dial(ctx context.Context, m *Machine) (*transport.SSH, error) {
	return transport.DialSSH(ctx, c.SSHConfig(m))
}

// Addr is the machine's SSH address (ip:22).
func (m *Machine) Addr() string { return net.JoinHostPort(m.IP.String(), "22") }

// ConsoleLog is the path of the machine's console output (systemd's boot).
func (m *Machine) ConsoleLog() string { return m.console }

// Running reports whether the machine's nspawn is still running.
func (m *Machine) Running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return m.cmd != nil
	}
}

// Memory reports what the machine's memory cgroup was charged.
func (m *Machine) Memory() (MemoryStats, error) {
	for _, h := range m.cgroups {
		if h.Name == "memory" {
			return readMemory(h.Dir, false)
		}
	}
	for _, h := range m.cgroups {
		if h.Name == "" {
			return readMemory(h.Dir, true)
		}
	}
	return MemoryStats{}, errors.New("no memory cgroup")
}

// state is what a run leaves on disk so that a later run can clean up
// after one that was killed before its cleanup ran.
type state struct {
	OwnerPID   int            `json:"ownerPID"`
	OwnerStart string         `json:"ownerStart"`
	Bridge     string         `json:"bridge,omitempty"`
	Machines   []machineState `json:"machines"`
}

type machineState struct {
	Name     string   `json:"name"`
	Dir      string   `json:"dir"`
	PID      int      `json:"pid,omitempty"`
	PIDStart string   `json:"pidStart,omitempty"`
	Cgroups  []string `json:"cgroups"`
}

var (
	liveMu   sync.Mutex
	live     = map[*Cluster]bool{}
	sigOnce  sync.Once
	bootLock sync.Mutex // one Boot at a time in a process: the bridge and addresses are shared
)

// handleSignals tears down every live cluster on SIGINT, SIGTERM or SIGHUP,
// then exits: a test interrupted by the user or by CI's timeout leaves
// nothing behind.
func handleSignals() {
	sigOnce.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			s := <-ch
			fmt.Fprintf(os.Stderr, "nspawn: %v: removing the e2e machines\n", s)
			liveMu.Lock()
			var cs []*Cluster
			for c := range live {
				cs = append(cs, c)
			}
			liveMu.Unlock()
			for _, c := range cs {
				if err := c.Down(); err != nil {
					fmt.Fprintf(os.Stderr, "nspawn: cleanup: %v\n", err)
				}
			}
			os.Exit(130)
		}()
	})
}

// Boot starts cfg.N machines in parallel and waits until root can log in
// to each over SSH (pinned host key). On error everything already created is removed again. The caller
// must call Down (t.Cleanup(func() { c.Down() })).
func Boot(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := requireRoot(); err != nil {
		return nil, err
	}
	for _, tool := range []string{"systemd-nspawn", "ip", "ssh-keygen", "cp"} {
		if _, err := lookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (apt-get install -y systemd-container iproute2 openssh-client coreutils)", tool)
		}
	}
	handleSignals()
	bootLock.Lock()
	defer bootLock.Unlock()
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	// The runs' state files there decide what a later run kills and removes.
	if err := privateDir(cfg.WorkDir); err != nil {
		return nil, fmt.Errorf("nspawn: work directory: %w; remove it, or set Config.WorkDir", err)
	}
	sweep(cfg.WorkDir, cfg.Logf)

	id := make([]byte, 4)
	_, _ = rand.Read(id)
	c := &Cluster{cfg: cfg, ID: "kubeboot-e2e-" + time.Now().UTC().Format("150405") + "-" + hex.EncodeToString(id)}
	c.Dir = filepath.Join(cfg.WorkDir, c.ID)
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		return nil, err
	}
	liveMu.Lock()
	live[c] = true
	liveMu.Unlock()
	if err := c.boot(ctx); err != nil {
		if derr := c.Down(); derr != nil {
			err = fmt.Errorf("%w (and cleanup: %v)", err, derr)
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) boot(ctx context.Context) error {
	cfg := &c.cfg
	start := time.Now()
	hs, err := ownHierarchies()
	if err != nil {
		return err
	}
	c.KeyFile = filepath.Join(c.Dir, "id_ed25519")
	if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@"+c.ID, "-f", c.KeyFile); err != nil {
		return err
	}
	pub, err := os.ReadFile(c.KeyFile + ".pub")
	if err != nil {
		return err
	}
	for i := 1; i <= cfg.N; i++ {
		name := cfg.NamePrefix + strconv.Itoa(i)
		m := &Machine{Name: name, IP: cfg.MachineIP(i), Dir: filepath.Join(c.Dir, name), exited: make(chan struct{})}
		m.Root = filepath.Join(m.Dir, "rootfs")
		m.console = filepath.Join(m.Dir, "console.log")
		for _, h := range hs {
			m.cgroups = append(m.cgroups, hierarchy{Name: h.Name, Dir: filepath.Join(h.Dir, c.ID, name)})
		}
		c.Machines = append(c.Machines, m)
	}
	if err := c.saveState(); err != nil {
		return err
	}
	if err := c.setupBridge(ctx); err != nil {
		return err
	}

	// Copy and personalize every rootfs in parallel.
	hosts := "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
	for _, m := range c.Machines {
		hosts += fmt.Sprintf("%s %s\n", m.IP, m.Name)
	}
	errs := make([]error, len(c.Machines))
	var wg sync.WaitGroup
	for i, m := range c.Machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.prepare(ctx, m, hosts, string(pub))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var kh strings.Builder
	for _, m := range c.Machines {
		fmt.Fprintf(&kh, "%s %s\n", m.IP, m.HostKey)
	}
	c.KnownHostsFile = filepath.Join(c.Dir, "known_hosts")
	if err := os.WriteFile(c.KnownHostsFile, []byte(kh.String()), 0o644); err != nil {
		return err
	}
	cfg.Logf("rootfs copies for %d machines ready after %s", len(c.Machines), time.Since(start).Round(10*time.Millisecond))

	for _, m := range c.Machines {
		if err := c.start(m, hs); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	c.mu.Lock()
	err = c.saveState()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.BootTimeout)
	defer cancel()
	for i, m := range c.Machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = waitSSH(ctx, m); errs[i] != nil {
				return
			}
			errs[i] = c.login(ctx, m)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.BootTime = time.Since(start)
	for _, m := range c.Machines {
		cfg.Logf("%s %s: root login over ssh %s after start", m.Name, m.IP, m.BootTime.Round(10*time.Millisecond))
	}
	cfg.Logf("%d machines up in %s", len(c.Machines), c.BootTime.Round(10*time.Millisecond))
	return nil
}

// setupBridge creates the bridge with the gateway address. An address
// already on another interface (a reference cluster left running) is an
// error: two bridges with one subnet would break both.
func (c *Cluster) setupBridge(ctx context.Context) error {
	cfg := &c.cfg
	gw := cfg.Gateway()
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && cfg.Network.Overlaps(p.Masked()) {
				return fmt.Errorf("interface %s already has %s (in %s): remove it (ip link del %s) or choose another Config.Network", ifc.Name, a, cfg.Network, ifc.Name)
			}
		}
	}
	if _, err := net.InterfaceByName(cfg.Bridge); err == nil {
		return fmt.Errorf("interface %s already exists: another e2e run is active, or remove it (ip link del %s)", cfg.Bridge, cfg.Bridge)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("the cluster is being removed")
	}
	err = run(ctx, "ip", "link", "add", cfg.Bridge, "type", "bridge")
	if err == nil {
		c.bridgeCreated = true
		err = c.saveState()
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := run(ctx, "ip", "addr", "add", fmt.Sprintf("%s/%d", gw, cfg.Network.Bits()), "dev", cfg.Bridge); err != nil {
		return err
	}
	return run(ctx, "ip", "link", "set", cfg.Bridge, "up")
}

// prepare copies the rootfs for m and writes its own files: hostname,
// hosts, resolv.conf, machine-id, network, the run's authorized key and a
// fresh host key.
func (c *Cluster) prepare(ctx context.Context, m *Machine, hosts, authorizedKey string) error {
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return err
	}
	if err := run(ctx, "cp", "-a", "--reflink=auto", c.cfg.Rootfs, m.Root); err != nil {
		return err
	}
	p := func(rel string) string { return filepath.Join(m.Root, rel) }
	mid := make([]byte, 16)
	_, _ = rand.Read(mid)
	network := fmt.Sprintf("[Match]\nName=host0\n\n[Network]\nAddress=%s/%d\nGateway=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
		m.IP, c.cfg.Network.Bits(), c.cfg.Gateway())
	files := []struct {
		rel, data string
		mode      os.FileMode
	}{
		{"etc/hostname", m.Name + "\n", 0o644},
		{"etc/hosts", hosts, 0o644},
		{"etc/resolv.conf", "nameserver " + c.cfg.Nameserver + "\n", 0o644},
		{"etc/machine-id", hex.EncodeToString(mid) + "\n", 0o444},
		{"etc/systemd/network/10-host0.network", network, 0o644},
		{"root/.ssh/authorized_keys", authorizedKey, 0o600},
		{"etc/ssh/sshd_config.d/kubeboot-e2e-hostkey.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\n", 0o644},
	}
	for _, f := range files {
		_ = os.Remove(p(f.rel)) // resolv.conf may be a symlink
		if err := os.MkdirAll(filepath.Dir(p(f.rel)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p(f.rel), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	key := p("etc/ssh/ssh_host_ed25519_key")
	if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@"+m.Name, "-f", key); err != nil {
		return err
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return fmt.Errorf("%s.pub: not a public key", key)
	}
	m.HostKey = f[0] + " " + f[1]
	return nil
}

// launcher moves itself into the cgroups named before "--" (one
// cgroup.procs file per hierarchy), then execs the command after it: the
// machine starts inside its own cgroups, as machined would place it.
const launcher = `while [ "$1" != -- ]; do echo $$ > "$1" || exit 1; shift; done; shift; exec "$@"`

func (c *Cluster) start(m *Machine, hs []hierarchy) error {
	// The veth of an earlier machine of that name (a reboot, the previous
	// scenario) may still be going.
	removeLink(m.HostInterface(), 5*time.Second)
	for _, h := range m.cgroups {
		if err := makeCgroup(hierarchy{Name: h.Name, Dir: hierarchyRoot(hs, h.Name)}, h.Dir); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	args := []string{"-c", launcher, "sh"}
	for _, h := range m.cgroups {
		args = append(args, filepath.Join(h.Dir, "cgroup.procs"))
	}
	args = append(args, "--",
		"systemd-nspawn", "--quiet", "-D", m.Root, "-M", m.Name,
		"--register=no", "--keep-unit", "--network-bridge="+c.cfg.Bridge,
		"--capability=all", "--bind=/dev/kmsg", "--system-call-filter=@keyring",
		"--kill-signal=SIGRTMIN+3", "--console=read-only",
		"--resolv-conf=off", "--timezone=off", "--link-journal=no",
		InitPath)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("the cluster is being removed")
	}
	// Appended to: a rebooted machine's log keeps its earlier boots.
	log, err := os.OpenFile(m.console, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("sh", args...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own session: a Ctrl-C reaches the harness, which shuts the
	// machine down, not nspawn directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	exited := make(chan struct{})
	m.cmd, m.exited = cmd, exited
	m.started = time.Now()
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(exited)
	}()
	return nil
}

func hierarchyRoot(hs []hierarchy, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Dir
		}
	}
	return ""
}

// waitSSH waits until sshd in m answers with an SSH banner.
func waitSSH(ctx context.Context, m *Machine) error {
	for {
		if !m.Running() {
			return fmt.Errorf("%s: nspawn exited during boot; console:\n%s", m.Name, readTail(m.console, 25))
		}
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(ctx, "tcp", m.Addr())
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-2.0-") {
				m.BootTime = time.Since(m.started)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: sshd did not answer on %s: %w; console:\n%s", m.Name, m.Addr(), ctx.Err(), readTail(m.console, 25))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// login checks that root can log in to m with the run's key and the pinned
// host key, and run a command.
func (c *Cluster) login(ctx context.Context, m *Machine) error {
	h, err := c.Dial(ctx, m)
	if err != nil {
		return fmt.Errorf("%s: ssh: %w", m.Name, err)
	}
	defer h.Close()
	if _, err := h.Run(ctx, transport.Cmd{Args: []string{"true"}, ReadOnly: true}); err != nil {
		return fmt.Errorf("%s: ssh: %w", m.Name, err)
	}
	m.BootTime = time.Since(m.started)
	return nil
}

func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(tail(b, n))
}

// Down stops every machine (SIGTERM: systemd shuts down; SIGKILL after 5 s,
// as a container scope whose PID 1 ignores SIGTERM holds systemd's
// shutdown for 90 s), kills anything left in the machines' cgroups, removes the cgroups, the
// rootfs copies, the state and the bridge. It is safe to call more than
// once and from several goroutines; later calls return the first result.
func (c *Cluster) Down() error {
	c.downOnce.Do(func() {
		c.downErr = c.down()
		liveMu.Lock()
		delete(live, c)
		liveMu.Unlock()
	})
	return c.downErr
}

func (c *Cluster) down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for _, m := range c.Machines {
		if m.Running() {
			_ = m.cmd.Process.Signal(syscall.SIGTERM) // nspawn: SIGRTMIN+3 to systemd = poweroff
		}
	}
	deadline := time.After(5 * time.Second)
	for _, m := range c.Machines {
		if m.cmd == nil {
			continue
		}
		select {
		case <-m.exited:
		case <-deadline:
		}
		if m.Running() {
			c.cfg.Logf("%s: no clean shutdown in 5s, SIGKILL", m.Name)
			_ = m.cmd.Process.Kill()
			select {
			case <-m.exited:
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("%s: nspawn (pid %d) does not exit", m.Name, m.cmd.Process.Pid))
			}
		}
	}
	for _, m := range c.Machines {
		if c.cfg.LogDir != "" {
			if b, err := os.ReadFile(m.console); err == nil {
				_ = os.MkdirAll(c.cfg.LogDir, 0o755)
				_ = os.WriteFile(filepath.Join(c.cfg.LogDir, m.Name+"-console.log"), b, 0o644)
			}
		}
		var dirs []string
		for _, h := range m.cgroups {
			dirs = append(dirs, h.Dir)
		}
		errs = append(errs, cleanupMachine(m.Name, m.Dir, dirs))
	}
	// The run's cgroup parents.
	seen := map[string]bool{}
	for _, m := range c.Machines {
		for _, h := range m.cgroups {
			p := filepath.Dir(h.Dir)
			if !seen[p] {
				seen[p] = true
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					errs = append(errs, err)
				}
			}
		}
	}
	// A machine's veth goes with its network namespace, which can outlive
	// nspawn by a moment (seen: the next scenario's m1 failed to boot with
	// "Failed to add new veth interfaces (vb-m1:host0): File exists").
	for _, m := range c.Machines {
		removeLink(m.HostInterface(), 5*time.Second)
	}
	if c.bridgeCreated {
		if err := run(context.Background(), "ip", "link", "del", c.cfg.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(c.Dir)
}

// removeLink waits up to wait for the network interface name to go, then
// deletes it.
func removeLink(name string, wait time.Duration) {
	exists := func() bool { _, err := net.InterfaceByName(name); return err == nil }
	for end := time.Now().Add(wait); exists() && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	if exists() {
		_ = run(context.Background(), "ip", "link", "del", name)
	}
}

// cleanupMachine removes a stopped machine's cgroups and directory. A
// directory with something still mounted below it is left alone (removing
// it would delete through the mount).
func cleanupMachine(name, dir string, cgroups []string) error {
	var errs []error
	for _, cg := range cgroups {
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	_ = os.RemoveAll(filepath.Join("/run/systemd/nspawn/propagate", name))
	if mounted, err := mountedBelow(dir); err != nil {
		errs = append(errs, err)
	} else if mounted != "" {
		errs = append(errs, fmt.Errorf("%s: %s is still mounted; not removing %s", name, mounted, dir))
	} else if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mountedBelow returns a mount point at or below dir, or "".
func mountedBelow(dir string) (string, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	if m := mountsBelow(mi, dir); len(m) > 0 {
		return m[0], nil
	}
	return "", nil
}

// mountsBelow lists the mount points of a mountinfo that are dir or below
// it, in mount order.
func mountsBelow(mountinfo []byte, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(string(mountinfo), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			if p := unescapeMount(f[4]); p == dir || strings.HasPrefix(p, dir+"/") {
				out = append(out, p)
			}
		}
	}
	return out
}

// removeBuildDir removes a directory the harness built in (a debootstrap
// target), unless something is still mounted below it: an interrupted
// debootstrap leaves the host's /proc, /sys and a devpts mounted in its
// target, and removing the tree would delete through them. Those mounts
// are unmounted first (they are the build's own); if one stays, the
// directory is left and said so.
func removeBuildDir(dir string, logf func(string, ...any)) {
	for i := 0; i < 20; i++ {
		m, err := mountedBelow(dir)
		if err != nil {
			logf("not removing %s: %v", dir, err)
			return
		}
		if m == "" {
			_ = os.RemoveAll(dir)
			return
		}
		if err := run(context.Background(), "umount", "--recursive", "--lazy", m); err != nil {
			logf("not removing %s: %s is mounted below it and does not unmount: %v", dir, m, err)
			return
		}
	}
	logf("not removing %s: mounts below it keep coming back", dir)
}

func (c *Cluster) saveState() error {
	st := state{OwnerPID: os.Getpid(), OwnerStart: procStart(os.Getpid())}
	if c.bridgeCreated {
		st.Bridge = c.cfg.Bridge
	}
	for _, m := range c.Machines {
		ms := machineState{Name: m.Name, Dir: m.Dir}
		if m.cmd != nil {
			ms.PID = m.cmd.Process.Pid
			ms.PIDStart = procStart(ms.PID)
		}
		for _, h := range m.cgroups {
			ms.Cgroups = append(ms.Cgroups, h.Dir)
		}
		st.Machines = append(st.Machines, ms)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.Dir, "state.json"))
}

// procStart is a process's start time in clock ticks since boot (field 22
// of /proc/pid/stat): with the PID it identifies the process even after
// the PID is reused. A dead process (a zombie not yet reaped) has none.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return ""
	}
	return f[19]
}

// sweep removes what earlier runs left behind when they were killed before
// their cleanup ran (their owner process is gone): only what their state
// file records they created, and only what a run creates: a state file in a
// directory not private to this user, or naming paths, cgroups, a process
// or a bridge that are not what a run's own look like, is left alone.
func sweep(workDir string, logf func(string, ...any)) {
	states, _ := filepath.Glob(filepath.Join(workDir, "kubeboot-e2e-*", "state.json"))
	for _, sf := range states {
		dir := filepath.Dir(sf)
		if err := privateDir(dir); err != nil {
			logf("not sweeping %s: %v", dir, err)
			continue
		}
		b, err := os.ReadFile(sf)
		if err != nil {
			continue
		}
		var st state
		if json.Unmarshal(b, &st) != nil {
			continue
		}
		if st.OwnerStart != "" && procStart(st.OwnerPID) == st.OwnerStart {
			continue // its owner is alive: not ours to touch
		}
		if err := st.check(dir); err != nil {
			logf("not sweeping %s: %v", dir, err)
			continue
		}
		logf("removing the machines of an earlier run that did not clean up: %s", dir)
		for _, m := range st.Machines {
			if m.PID > 0 && m.PIDStart != "" && procStart(m.PID) == m.PIDStart && procComm(m.PID) == "systemd-nspawn" {
				_ = syscall.Kill(m.PID, syscall.SIGKILL)
				time.Sleep(200 * time.Millisecond)
			}
			if err := cleanupMachine(m.Name, m.Dir, m.Cgroups); err != nil {
				logf("%v", err)
			}
			for _, cg := range m.Cgroups {
				_ = os.Remove(filepath.Dir(cg))
			}
		}
		if st.Bridge != "" {
			if _, err := os.Stat(filepath.Join("/sys/class/net", st.Bridge, "bridge")); err == nil {
				_ = run(context.Background(), "ip", "link", "del", st.Bridge)
			}
		}
		// cleanupMachine leaves a machine directory with a mount below it;
		// so does this.
		if m, err := mountedBelow(dir); err != nil || m != "" {
			logf("not removing %s: %s is mounted below it (%v)", dir, m, err)
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

var (
	machineNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*$`)
	bridgeNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
)

// check says whether a state file read from the run directory dir names
// only what Boot creates for a run there: machine directories dir/<name>,
// cgroups <hierarchy>/.../<run ID>/<name> on a cgroup file system, a
// bridge name.
func (st state) check(dir string) error {
	id := filepath.Base(dir)
	if st.Bridge != "" && !bridgeNameRE.MatchString(st.Bridge) {
		return fmt.Errorf("bridge %q is not an interface name", st.Bridge)
	}
	for _, m := range st.Machines {
		if !machineNameRE.MatchString(m.Name) || m.Dir != filepath.Join(dir, m.Name) {
			return fmt.Errorf("machine %q: directory %q is not %s", m.Name, m.Dir, filepath.Join(dir, m.Name))
		}
		for _, cg := range m.Cgroups {
			if !filepath.IsAbs(cg) || filepath.Clean(cg) != cg || filepath.Base(cg) != m.Name || filepath.Base(filepath.Dir(cg)) != id {
				return fmt.Errorf("machine %s: cgroup %q is not .../%s/%s", m.Name, cg, id, m.Name)
			}
			if _, err := os.Stat(cg); err == nil && !onCgroupFS(cg) {
				return fmt.Errorf("machine %s: %s is not on a cgroup file system", m.Name, cg)
			}
		}
	}
	return nil
}

// onCgroupFS reports whether p is on a cgroup (v1 or v2) file system.
func onCgroupFS(p string) bool {
	const cgroupSuperMagic, cgroup2SuperMagic = 0x27e0eb, 0x63677270
	var fs syscall.Statfs_t
	if err := syscall.Statfs(p, &fs); err != nil {
		return false
	}
	return fs.Type == cgroupSuperMagic || fs.Type == cgroup2SuperMagic
}

// privateDir checks that dir is a directory (not a symlink) owned by this
// process's user and writable by no one else, so that the state files in it
// were written by a run of this harness.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s is not owned by uid %d", dir, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others (mode %04o)", dir, fi.Mode().Perm())
	}
	return nil
}

// procComm is a process's command name, or "".
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
