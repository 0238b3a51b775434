package phases

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"golang.org/x/net/http/httpproxy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// Versions kubeboot checks against. kubeboot follows kubeadm v1.34: it
// deploys control planes from one minor back (v1.33) up to its own minor,
// and supports kubelets down to three minors back.
var (
	kubebootVersion        = version.MustParseSemantic(inventory.DefaultKubernetesVersion)
	minControlPlaneVersion = version.MustParseSemantic("1.33.0")
	minKubeletVersion      = version.MustParseSemantic("1.31.0")
)

// kubeadm's constants for the checks.
const (
	controlPlaneNumCPU        = 2
	controlPlaneMemMB         = 1700
	kubeletPort               = 10250
	kubeSchedulerPort         = 10259
	kubeControllerManagerPort = 10257
	etcdListenClientPort      = 2379
	etcdListenPeerPort        = 2380
	ipv4Forward               = "/proc/sys/net/ipv4/ip_forward"
	ipv6DefaultForwarding     = "/proc/sys/net/ipv6/conf/default/forwarding"

	// checkParallelism bounds how many checks run at once: over SSH each
	// one is a few round trips, so running them together saves time.
	checkParallelism = 8
	// checkTimeout bounds one check (a hostname lookup against an
	// unreachable DNS server, say).
	checkTimeout = 30 * time.Second
)

// slowCheck is how long a check may take before preflight names it (a
// variable so that a test need not wait a second).
var slowCheck = time.Second

// Check is one pre-flight check, named as kubeadm names it so that
// --ignore-preflight-errors takes the same names. Run reads the host only
// through h (files, stat, read-only commands), so a check works the same
// locally, over SSH and in a dry run. Errors are fatal unless ignored;
// warnings are only printed.
type Check struct {
	Name string
	Run  func(ctx context.Context, h transport.Host, cfg *inventory.Cluster, facts hostutil.HostFacts) (warnings, errs []error)
}

// CheckResult is what one check found, after --ignore-preflight-errors
// turned ignored errors into warnings.
type CheckResult struct {
	Name     string
	Warnings []error
	Errors   []error
	// Took is how long the check ran.
	Took time.Duration
}

// Failure is one fatal error of one check.
type Failure struct {
	Check string
	Err   error
}

// PreflightError holds every fatal error of a pre-flight run. Its message is
// kubeadm's; errors.Is and errors.As see each check's error.
type PreflightError struct {
	Failures []Failure
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	b.WriteString("[preflight] Some fatal errors occurred:\n")
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\t[ERROR %s]: %v\n", f.Check, f.Err)
	}
	b.WriteString("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")
	return b.String()
}

// Unwrap returns the checks' errors.
func (e *PreflightError) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f.Err
	}
	return out
}

// NewPreflightError collects the fatal errors of results, or returns nil
// when there are none.
func NewPreflightError(results []CheckResult) *PreflightError {
	var failures []Failure
	for _, r := range results {
		for _, err := range r.Errors {
			failures = append(failures, Failure{Check: r.Name, Err: err})
		}
	}
	if len(failures) == 0 {
		return nil
	}
	return &PreflightError{Failures: failures}
}

// PreflightPhase is kubeadm's `preflight`: check the host before anything
// changes on it, report every problem at once, and stop on errors unless
// they are ignored (--ignore-preflight-errors) or this is a dry run.
func PreflightPhase() *Phase {
	return &Phase{
		Name:  "preflight",
		Short: "Run pre-flight checks",
		Run:   runPreflight,
	}
}

func runPreflight(ctx context.Context, d *Data) error {
	d.Out.Printf("preflight", "Running pre-flight checks")
	facts, err := d.Facts(ctx)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", d.Host.Name(), err)
	}
	checks := InitChecks(d.Cfg)
	own, err := ownControlPlane(ctx, d)
	if err != nil {
		return err
	}
	if own {
		d.Out.Printf("preflight", "This node already runs the control plane of this configuration (every static Pod manifest is up to date): skipping the checks of its ports, manifests and etcd data directory")
		checks = withoutOwnControlPlaneChecks(d.Cfg, checks)
	}
	return runAndReportChecks(ctx, d, facts, checks)
}

// runAndReportChecks runs checks, prints their results and fails on the
// errors not ignored (a dry run only says that they would stop a real run).
func runAndReportChecks(ctx context.Context, d *Data, facts hostutil.HostFacts, checks []Check) error {
	results := RunChecks(ctx, d.Host, d.Cfg, facts, checks, d.IgnorePreflightErrors)
	if err := ctx.Err(); err != nil {
		return err
	}
	return reportChecks(d, results)
}

// reportChecks prints results and fails on the errors not ignored (a dry
// run only says that they would stop a real run).
func reportChecks(d *Data, results []CheckResult) error {
	PrintResults(d.Out, results)
	var slow []string
	for _, r := range results {
		if r.Took >= slowCheck {
			slow = append(slow, fmt.Sprintf("%s %s", r.Name, workflow.RoundDuration(r.Took)))
		}
	}
	if len(slow) > 0 {
		d.Out.Printf("preflight", "Slow checks (look at the host's name resolution and load): %s", strings.Join(slow, ", "))
	}
	perr := NewPreflightError(results)
	if perr == nil {
		return nil
	}
	if d.DryRun {
		d.Out.Printf("preflight", "%d fatal error(s) would stop a real run; dry run: not failing", len(perr.Failures))
		return nil
	}
	return perr
}

// ownControlPlane reports whether the node already runs the control plane
// that this configuration describes: every static Pod manifest init writes
// is there, byte for byte what this run would write (a re-run of the same
// init). kubeadm refuses such a node; kubeboot's phases reuse what they
// find, so a re-run must get past preflight. Any other manifest (another
// configuration, another cluster, a joined control plane) keeps kubeadm's
// refusal.
func ownControlPlane(ctx context.Context, d *Data) (bool, error) {
	builds := map[string]func(*inventory.Cluster) (*corev1.Pod, error){
		"kube-apiserver":          templates.APIServerPod,
		"kube-controller-manager": templates.ControllerManagerPod,
		"kube-scheduler":          templates.SchedulerPod,
	}
	if d.Cfg.Etcd.External == nil {
		builds["etcd"] = templates.EtcdPod
	}
	for component, build := range builds {
		pod, err := build(d.Cfg)
		if err != nil {
			return false, nil // the phase that renders it reports the problem
		}
		want, err := templates.MarshalPod(pod)
		if err != nil {
			return false, nil
		}
		have, err := d.Host.ReadFile(ctx, inventory.ManifestPath(component))
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", inventory.ManifestPath(component), err)
		}
		if !bytes.Equal(have, want) {
			return false, nil
		}
	}
	return true, nil
}

// withoutOwnControlPlaneChecks drops the checks that the node's own
// running control plane fails: its ports (API server, scheduler,
// controller-manager, kubelet, etcd), its manifests and etcd's data.
func withoutOwnControlPlaneChecks(cfg *inventory.Cluster, checks []Check) []Check {
	bindPort := cfg.Node.BindPort
	if bindPort == 0 {
		bindPort = inventory.DefaultBindPort
	}
	skip := map[string]bool{}
	for _, p := range []int{bindPort, kubeSchedulerPort, kubeControllerManagerPort, kubeletPort, etcdListenClientPort, etcdListenPeerPort} {
		skip[portCheck(p).Name] = true
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		skip[fileAvailableCheck(inventory.ManifestPath(c)).Name] = true
	}
	if local := cfg.Etcd.Local; local != nil {
		dataDir := local.DataDir
		if dataDir == "" {
			dataDir = inventory.DefaultEtcdDataDir
		}
		skip[dirAvailableCheck(dataDir).Name] = true
	}
	var out []Check
	for _, c := range checks {
		if !skip[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// PrintResults prints every warning and error, check by check, as
//
//	[preflight] [WARNING Swap]: ...
//	[preflight] [ERROR NumCPU]: ...
func PrintResults(p *workflow.Printer, results []CheckResult) {
	for _, r := range results {
		for _, w := range r.Warnings {
			p.Printf("preflight", "[WARNING %s]: %v", r.Name, w)
		}
		for _, e := range r.Errors {
			p.Printf("preflight", "[ERROR %s]: %v", r.Name, e)
		}
	}
}

// RunChecks runs checks against h, several at a time, and returns their
// results in the checks' order. A check named in ignore (lower-cased), or
// any check when ignore holds "all", has its errors turned into warnings.
func RunChecks(ctx context.Context, h transport.Host, cfg *inventory.Cluster, facts hostutil.HostFacts, checks []Check, ignore map[string]bool) []CheckResult {
	// The checks share what they read more than once: the listening
	// ports, the executables they look for.
	ctx = withCheckRun(ctx, h)
	ctx = hostutil.WithPathCache(ctx, h)
	results := make([]CheckResult, len(checks))
	sem := make(chan struct{}, checkParallelism)
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runCheck(ctx, h, cfg, facts, c)
		}()
	}
	wg.Wait()
	for i := range results {
		r := &results[i]
		if len(r.Errors) > 0 && (ignore["all"] || ignore[strings.ToLower(r.Name)]) {
			r.Warnings = append(r.Warnings, r.Errors...)
			r.Errors = nil
		}
	}
	return results
}

func runCheck(ctx context.Context, h transport.Host, cfg *inventory.Cluster, facts hostutil.HostFacts, c Check) (res CheckResult) {
	res.Name = c.Name
	defer func() {
		if p := recover(); p != nil {
			res.Errors = append(res.Errors, fmt.Errorf("check failed unexpectedly: %v", p))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	start := time.Now()
	res.Warnings, res.Errors = c.Run(ctx, h, cfg, facts)
	res.Took = time.Since(start)
	return res
}

// ValidateIgnorePreflightErrors normalizes --ignore-preflight-errors: names
// are case-insensitive, and "all" may not be mixed with single checks.
// Unknown names are accepted, as kubeadm accepts them.
func ValidateIgnorePreflightErrors(list []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, item := range list {
		if item = strings.ToLower(strings.TrimSpace(item)); item != "" {
			set[item] = true
		}
	}
	if set["all"] && len(set) > 1 {
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("ignore-preflight-errors: Invalid value: %q: don't specify individual checks if 'all' is used", strings.Join(names, ","))
	}
	return set, nil
}

// InitChecks returns the checks of `init`, in kubeadm v1.34's order and with
// its names, followed by kubeboot's own (CgroupVersion, OOMScoreAdj,
// SystemdPID1). Two kubeadm checks are left out: ImagePull (pulling images
// changes the host) and ExternalEtcdVersion (an HTTPS request from the host
// to the etcd endpoints).
func InitChecks(cfg *inventory.Cluster) []Check {
	bindPort := cfg.Node.BindPort
	if bindPort == 0 {
		bindPort = inventory.DefaultBindPort
	}
	checks := []Check{
		{Name: "IsPrivilegedUser", Run: checkPrivilegedUser},
		numCPUCheck(controlPlaneNumCPU),
		memCheck(controlPlaneMemMB),
		{Name: "KubernetesVersion", Run: checkKubernetesVersion},
		firewalldCheck([]int{bindPort, kubeletPort}),
		portCheck(bindPort),
		portCheck(kubeSchedulerPort),
		portCheck(kubeControllerManagerPort),
		fileAvailableCheck(inventory.ManifestPath("kube-apiserver")),
		fileAvailableCheck(inventory.ManifestPath("kube-controller-manager")),
		fileAvailableCheck(inventory.ManifestPath("kube-scheduler")),
		fileAvailableCheck(inventory.ManifestPath("etcd")),
		httpProxyCheck("https", cfg.Node.AdvertiseAddress),
	}
	var ipv4, ipv6 bool
	family := func(cidr string) {
		if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil {
			ipv4 = ipv4 || p.Addr().Is4()
			ipv6 = ipv6 || p.Addr().Is6()
		}
	}
	for _, cidr := range strings.Split(cfg.Networking.ServiceSubnet, ",") {
		checks = append(checks, httpProxyCIDRCheck("https", cidr))
		family(cidr)
	}
	for _, cidr := range strings.Split(cfg.Networking.PodSubnet, ",") {
		checks = append(checks, httpProxyCIDRCheck("https", cidr))
		family(cidr)
	}
	checks = append(checks, commonChecks(cfg)...)
	if ip, err := netip.ParseAddr(cfg.Node.AdvertiseAddress); err == nil {
		ipv4 = ipv4 || ip.Is4()
		ipv6 = ipv6 || ip.Is6()
	}
	if ipv4 {
		checks = append(checks, fileContentCheck(ipv4Forward, "1"))
	}
	if ipv6 {
		checks = append(checks, fileContentCheck(ipv6DefaultForwarding, "1"))
	}
	if local := cfg.Etcd.Local; local != nil {
		dataDir := local.DataDir
		if dataDir == "" {
			dataDir = inventory.DefaultEtcdDataDir
		}
		checks = append(checks,
			portCheck(etcdListenClientPort),
			portCheck(etcdListenPeerPort),
			dirAvailableCheck(dataDir),
		)
	}
	if ext := cfg.Etcd.External; ext != nil {
		for _, f := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
			if f != "" {
				checks = append(checks, fileExistingCheck(f, "ExternalEtcdClientCertificates"))
			}
		}
	}
	return append(checks, kubebootChecks()...)
}

// kubebootChecks are the checks kubeboot adds to kubeadm's, on every node:
// what the host can do decides how it is configured.
func kubebootChecks() []Check {
	return []Check{
		{Name: "CgroupVersion", Run: checkCgroupVersion},
		{Name: "OOMScoreAdj", Run: checkOOMScoreAdj},
		{Name: "SystemdPID1", Run: checkSystemdPID1},
		{Name: "KernelModules", Run: checkKernelModules},
		{Name: "KernelTunables", Run: checkKernelTunables},
	}
}

// commonChecks are kubeadm's checks for every node (init and join).
func commonChecks(cfg *inventory.Cluster) []Check {
	checks := []Check{
		{Name: "CRI", Run: checkCRI},
		{Name: "Swap", Run: checkSwap},
	}
	checks = append(checks, execChecks(cfg.KubernetesVersion)...)
	return append(checks,
		Check{Name: "SystemVerification", Run: checkSystemVerification},
		Check{Name: "Hostname", Run: checkHostname},
		Check{Name: "KubeletVersion", Run: checkKubeletVersion},
		Check{Name: "Service-Kubelet", Run: checkKubeletService},
		portCheck(kubeletPort),
	)
}

// execChecks are the FileExisting-<program> checks. kubeadm v1.34 requires
// losetup, mount and cp (and conntrack before v1.32). kubeboot adds, as
// warnings, the tools kubeadm checked for until v1.31 that node
// troubleshooting and some CNI and proxy setups still use.
func execChecks(k8sVersion string) []Check {
	var checks []Check
	if v, err := parseSemver(k8sVersion); err == nil && v.LessThan(version.MustParseSemantic("1.32.0")) {
		checks = append(checks, inPathCheck("conntrack", true))
	}
	for _, exe := range []string{"losetup", "mount", "cp"} {
		checks = append(checks, inPathCheck(exe, true))
	}
	for _, exe := range []string{"ip", "iptables", "nsenter", "ebtables", "ethtool", "socat", "tc", "touch"} {
		checks = append(checks, inPathCheck(exe, false))
	}
	return checks
}

// ---- kubeadm's checks ----

func checkPrivilegedUser(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
	uid, err := transport.Output(ctx, h, "id", "-u")
	if err != nil {
		// No id(1): the real uid is the first field of Uid: in /proc/self/status.
		status, rerr := h.ReadFile(ctx, "/proc/self/status")
		if rerr != nil {
			return nil, []error{fmt.Errorf("cannot tell whether the user is root: %v; %v", err, rerr)}
		}
		uid = ""
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
				uid = f[1]
			}
		}
	}
	if strings.TrimSpace(uid) != "0" {
		return nil, []error{errors.New("user is not running as root")}
	}
	return nil, nil
}

func numCPUCheck(required int) Check {
	return Check{Name: "NumCPU", Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		n, err := countCPUs(ctx, h)
		if err != nil {
			return nil, []error{err}
		}
		if n < required {
			return nil, []error{fmt.Errorf("the number of available CPUs %d is less than the required %d", n, required)}
		}
		return nil, nil
	}}
}

// countCPUs counts the CPUs this host lets kubeboot use: nproc honours the
// CPU affinity mask, as kubeadm's runtime.NumCPU does; /proc/cpuinfo is the
// fallback.
func countCPUs(ctx context.Context, h transport.Host) (int, error) {
	out, err := transport.Output(ctx, h, "nproc")
	if err == nil {
		if n, perr := strconv.Atoi(out); perr == nil && n > 0 {
			return n, nil
		}
	}
	b, rerr := h.ReadFile(ctx, "/proc/cpuinfo")
	if rerr != nil {
		return 0, fmt.Errorf("cannot count the CPUs: nproc: %v; %v", err, rerr)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	if n == 0 {
		return 0, errors.New("cannot count the CPUs: no processor in /proc/cpuinfo")
	}
	return n, nil
}

func memCheck(requiredMB uint64) Check {
	return Check{Name: "Mem", Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		b, err := h.ReadFile(ctx, "/proc/meminfo")
		if err != nil {
			return nil, []error{fmt.Errorf("failed to get system info: %w", err)}
		}
		var kB uint64
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kB, err = strconv.ParseUint(f[1], 10, 64)
				found = err == nil
			}
		}
		if !found {
			return nil, []error{errors.New("failed to get system info: no MemTotal in /proc/meminfo")}
		}
		if actual := kB / 1024; actual < requiredMB {
			return nil, []error{fmt.Errorf("the system RAM (%d MB) is less than the minimum %d MB", actual, requiredMB)}
		}
		return nil, nil
	}}
}

// checkKubernetesVersion allows the versions kubeboot can deploy (v1.33 and
// v1.34) and warns about newer ones it does not know yet.
func checkKubernetesVersion(_ context.Context, _ transport.Host, cfg *inventory.Cluster, _ hostutil.HostFacts) (warns, errs []error) {
	v, err := parseSemver(cfg.KubernetesVersion)
	if err != nil {
		return nil, []error{fmt.Errorf("couldn't parse Kubernetes version %q: %v", cfg.KubernetesVersion, err)}
	}
	if v.LessThan(minControlPlaneVersion) {
		return nil, []error{fmt.Errorf("this version of kubeboot only supports deploying clusters with the control plane version >= %s. Current version: %s", minControlPlaneVersion, cfg.KubernetesVersion)}
	}
	if v.Major() > kubebootVersion.Major() || v.Major() == kubebootVersion.Major() && v.Minor() > kubebootVersion.Minor() {
		return []error{fmt.Errorf("Kubernetes version is greater than kubeboot version. Please consider to upgrade kubeboot. Kubernetes version: %s. Kubeboot version: %d.%d.x", v, kubebootVersion.Major(), kubebootVersion.Minor())}, nil
	}
	return nil, nil
}

func firewalldCheck(ports []int) Check {
	return Check{Name: "Firewalld", Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, _ []error) {
		// No systemctl, or no systemd running: nothing to say, as kubeadm
		// says nothing when firewalld does not exist.
		if out, err := transport.Output(ctx, h, "systemctl", "is-active", "firewalld"); err == nil && out == "active" {
			return []error{fmt.Errorf("firewalld is active, please ensure ports %v are open or your cluster may not function correctly", ports)}, nil
		}
		return nil, nil
	}}
}

func portCheck(port int) Check {
	return Check{Name: fmt.Sprintf("Port-%d", port), Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		listening, err := listeningPorts(ctx, h)
		if err != nil {
			return nil, []error{fmt.Errorf("cannot tell whether port %d is in use: %w", port, err)}
		}
		if listening[port] {
			return nil, []error{fmt.Errorf("Port %d is in use", port)}
		}
		return nil, nil
	}}
}

// listeningPorts reads the TCP ports with a listening socket from
// /proc/net/tcp and /proc/net/tcp6 (state 0A), through the transport: unlike
// kubeadm's net.Listen, this works for a remote host too. A port with any
// listener is taken: binding the wildcard address to it would fail. The
// checks of one RunChecks share one reading (every port check asks).
func listeningPorts(ctx context.Context, h transport.Host) (map[int]bool, error) {
	run := checkRunOf(ctx, h)
	if run == nil {
		return readListeningPorts(ctx, h)
	}
	run.portsMu.Lock()
	defer run.portsMu.Unlock()
	if !run.portsRead {
		ports, err := readListeningPorts(ctx, h)
		if err != nil && ctx.Err() != nil {
			return nil, err // this check's time ran out; another may try
		}
		run.ports, run.portsErr, run.portsRead = ports, err, true
	}
	return run.ports, run.portsErr
}

func readListeningPorts(ctx context.Context, h transport.Host) (map[int]bool, error) {
	ports := map[int]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := h.ReadFile(ctx, file)
		if err != nil {
			if file == "/proc/net/tcp6" && errors.Is(err, fs.ErrNotExist) {
				continue // IPv6 disabled
			}
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			// sl local_address rem_address st ...
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(f[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseUint(f[1][i+1:], 16, 16); err == nil {
				ports[int(p)] = true
			}
		}
	}
	return ports, nil
}

// checkName turns a path into kubeadm's check-name suffix: / becomes -.
func checkName(prefix, p string) string { return prefix + "-" + strings.ReplaceAll(p, "/", "-") }

func fileAvailableCheck(p string) Check {
	return Check{Name: checkName("FileAvailable", p), Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		if _, err := h.Stat(ctx, p); err == nil {
			return nil, []error{fmt.Errorf("%s already exists", p)}
		}
		return nil, nil
	}}
}

func fileExistingCheck(p, label string) Check {
	name := label
	if name == "" {
		name = checkName("FileExisting", p)
	}
	return Check{Name: name, Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		if _, err := h.Stat(ctx, p); err != nil {
			return nil, []error{fmt.Errorf("%s doesn't exist", p)}
		}
		return nil, nil
	}}
}

func dirAvailableCheck(p string) Check {
	return Check{Name: checkName("DirAvailable", p), Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		if _, err := h.Stat(ctx, p); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		entries, err := h.ReadDir(ctx, p)
		if err != nil {
			return nil, []error{fmt.Errorf("unable to check if %s is empty: %w", p, err)}
		}
		if len(entries) > 0 {
			return nil, []error{fmt.Errorf("%s is not empty", p)}
		}
		return nil, nil
	}}
}

func fileContentCheck(p, content string) Check {
	return Check{Name: checkName("FileContent", p), Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		b, err := h.ReadFile(ctx, p)
		if err != nil {
			return nil, []error{fmt.Errorf("%s does not exist", p)}
		}
		if len(b) > len(content) {
			b = b[:len(content)]
		}
		if string(b) != content {
			return nil, []error{fmt.Errorf("%s contents are not set to %s", p, content)}
		}
		return nil, nil
	}}
}

// inPathCheck looks for an executable in the system directories. A missing
// mandatory one is an error, an optional one a warning.
func inPathCheck(exe string, mandatory bool) Check {
	return Check{Name: checkName("FileExisting", exe), Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, errs []error) {
		if _, err := hostutil.LookPath(ctx, h, exe); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("%s not found in system path", exe)
			}
			if mandatory {
				return nil, []error{err}
			}
			return []error{err}, nil
		}
		return nil, nil
	}}
}

func httpProxyCheck(proto, host string) Check {
	return Check{Name: "HTTPProxy", Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, errs []error) {
		if host == "" {
			return nil, nil
		}
		proxyFor, ok := hostProxy(ctx, h)
		if !ok {
			return nil, nil
		}
		u := &url.URL{Scheme: proto, Host: host}
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
			u.Host = net.JoinHostPort(host, "1234")
		}
		proxy, err := proxyFor(u)
		if err != nil {
			return nil, []error{err}
		}
		if proxy != nil {
			return []error{fmt.Errorf("Connection to %q uses proxy %q. If that is not intended, adjust your proxy settings", u, proxy)}, nil
		}
		return nil, nil
	}}
}

func httpProxyCIDRCheck(proto, cidr string) Check {
	cidr = strings.TrimSpace(cidr)
	return Check{Name: "HTTPProxyCIDR", Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, errs []error) {
		if cidr == "" {
			return nil, nil
		}
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, []error{fmt.Errorf("error parsing CIDR %q: %v", cidr, err)}
		}
		// kubeadm tests the first address of the range (the API server's
		// service IP, for the service CIDR).
		first := prefix.Masked().Addr().Next()
		if !first.IsValid() || !prefix.Contains(first) {
			return nil, []error{fmt.Errorf("unable to get first IP address from the given CIDR (%s)", prefix.Masked())}
		}
		proxyFor, ok := hostProxy(ctx, h)
		if !ok {
			return nil, nil
		}
		u, err := url.Parse(fmt.Sprintf("%s://%s/", proto, net.JoinHostPort(first.String(), "1234")))
		if err != nil {
			return nil, []error{err}
		}
		proxy, err := proxyFor(u)
		if err != nil {
			return nil, []error{err}
		}
		if proxy != nil {
			return []error{fmt.Errorf("connection to %q uses proxy %q. This may lead to malfunctional cluster setup. Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy configuration", cidr, proxy)}, nil
		}
		return nil, nil
	}}
}

// hostProxy returns the proxy choice of the host's environment (as `env`
// prints it there): what kubeadm reads from its own environment. ok is
// false when the environment cannot be read.
func hostProxy(ctx context.Context, h transport.Host) (func(*url.URL) (*url.URL, error), bool) {
	out, err := transport.Output(ctx, h, "env")
	if err != nil {
		return nil, false
	}
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	get := func(names ...string) string {
		for _, n := range names {
			if v := env[n]; v != "" {
				return v
			}
		}
		return ""
	}
	cfg := &httpproxy.Config{
		HTTPProxy:  get("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: get("HTTPS_PROXY", "https_proxy"),
		NoProxy:    get("NO_PROXY", "no_proxy"),
	}
	return cfg.ProxyFunc(), true
}

// checkCRI checks that the container runtime's socket is there. (kubeadm
// asks the runtime over CRI; a socket is what can be seen through any
// transport.)
func checkCRI(ctx context.Context, h transport.Host, cfg *inventory.Cluster, _ hostutil.HostFacts) (warns, errs []error) {
	endpoint := cfg.Node.CRISocket
	if endpoint == "" {
		endpoint = inventory.DefaultCRISocket
	}
	p := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if scheme != "unix" {
			return []error{fmt.Errorf("cannot check the container runtime at %s: only unix:// sockets are checked", endpoint)}, nil
		}
		p = rest
	}
	fi, err := h.Stat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, []error{fmt.Errorf("container runtime is not running: %s does not exist (criSocket %s); install and start containerd, or set node.criSocket", p, endpoint)}
	}
	if err != nil {
		return nil, []error{fmt.Errorf("container runtime is not running: %w", err)}
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return nil, []error{fmt.Errorf("container runtime is not running: %s is not a socket", p)}
	}
	return nil, nil
}

func checkSwap(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (warns, _ []error) {
	b, err := h.ReadFile(ctx, "/proc/swaps")
	if err != nil {
		return nil, nil // no /proc/swaps: nothing to warn about
	}
	lines := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) != "" {
			lines++
		}
	}
	if lines > 1 { // more than the header
		return []error{errors.New("swap is supported for cgroup v2 only. " +
			"The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, " +
			"or disable swap on the node")}, nil
	}
	return nil, nil
}

// The parts of kubeadm's system validators (k8s.io/system-validators,
// DefaultSysSpec) that kubeboot checks: OS, kernel release, kernel
// configuration and cgroup controllers.
var (
	minKernel = [2]int{4, 19}
	// requiredKernelConfig lists CONFIG_ options that must be built in or
	// modules; a second name is an accepted alias.
	requiredKernelConfig = [][]string{
		{"NAMESPACES"}, {"NET_NS"}, {"PID_NS"}, {"IPC_NS"}, {"UTS_NS"},
		{"CGROUPS"}, {"CGROUP_CPUACCT"}, {"CGROUP_DEVICE"}, {"CGROUP_FREEZER"}, {"CGROUP_SCHED"},
		{"CPUSETS"}, {"MEMCG"}, {"INET"}, {"EXT4_FS"}, {"PROC_FS"},
		{"NETFILTER_XT_TARGET_REDIRECT", "IP_NF_TARGET_REDIRECT"}, {"NETFILTER_XT_MATCH_COMMENT"},
		{"FAIR_GROUP_SCHED"},
	}
	cgroupsV1         = []string{"cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"}
	cgroupsV1Optional = []string{"hugetlb", "blkio"}
	cgroupsV2         = []string{"cpu", "cpuset", "devices", "freezer", "memory", "pids"}
	cgroupsV2Optional = []string{"hugetlb", "io"}
)

func checkSystemVerification(ctx context.Context, h transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, errs []error) {
	if ostype, err := hostutil.ReadTrimmed(ctx, h, "/proc/sys/kernel/ostype"); err == nil && ostype != "Linux" {
		errs = append(errs, fmt.Errorf("unsupported operating system: %s", ostype))
	}
	release, err := hostutil.ReadTrimmed(ctx, h, "/proc/sys/kernel/osrelease")
	if err != nil {
		return nil, append(errs, fmt.Errorf("failed to get kernel release: %w", err))
	}
	kernel, kerr := parseKernelRelease(release)
	if kerr != nil || kernel[0] < minKernel[0] || kernel[0] == minKernel[0] && kernel[1] < minKernel[1] {
		errs = append(errs, fmt.Errorf("unsupported kernel release: %s: Kubernetes v1.34 needs 4.19 or newer (any 5.x or 6.x is supported)", release))
	}

	if config, err := kernelConfig(ctx, h, release); err != nil {
		warns = append(warns, fmt.Errorf("failed to parse kernel config: %w", err))
	} else {
		var bad []string
		for _, names := range requiredKernelConfig {
			found := false
			for _, n := range names {
				if v := config["CONFIG_"+n]; v == "y" || v == "m" {
					found = true
					break
				}
			}
			if !found {
				bad = append(bad, "CONFIG_"+names[0])
			}
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Errorf("unexpected kernel config: %s", strings.Join(bad, " ")))
		}
	}

	var required, optional, have []string
	if facts.CgroupV1 {
		warns = append(warns, errors.New("cgroups v1 support is in maintenance mode, please migrate to cgroups v2"))
		required, optional = cgroupsV1, cgroupsV1Optional
		b, err := h.ReadFile(ctx, "/proc/cgroups")
		if err != nil {
			return warns, append(errs, fmt.Errorf("failed to get cgroups v1 subsystems: %w", err))
		}
		for _, line := range strings.Split(string(b), "\n") {
			// #subsys_name hierarchy num_cgroups enabled
			f := strings.Fields(line)
			if len(f) == 0 || strings.HasPrefix(f[0], "#") || len(f) >= 4 && f[3] == "0" {
				continue
			}
			have = append(have, f[0])
		}
	} else {
		required, optional = cgroupsV2, cgroupsV2Optional
		b, err := h.ReadFile(ctx, "/sys/fs/cgroup/cgroup.controllers")
		if err != nil {
			return warns, append(errs, fmt.Errorf("failed to get cgroups v2 subsystems: %w", err))
		}
		// devices is implicit in cgroup v2 (an eBPF program), and so is
		// freezer (cgroup.freeze) from kernel 5.2.
		have = append(strings.Fields(string(b)), "devices")
		if kerr == nil && (kernel[0] > 5 || kernel[0] == 5 && kernel[1] >= 2) {
			have = append(have, "freezer")
		}
	}
	if missing := missingFrom(required, have); len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing required cgroups: %s", strings.Join(missing, " ")))
	}
	if missing := missingFrom(optional, have); len(missing) > 0 {
		warns = append(warns, fmt.Errorf("missing optional cgroups: %s", strings.Join(missing, " ")))
	}
	return warns, errs
}

func missingFrom(want, have []string) []string {
	set := map[string]bool{}
	for _, s := range have {
		set[s] = true
	}
	var missing []string
	for _, s := range want {
		if !set[s] {
			missing = append(missing, s)
		}
	}
	return missing
}

var kernelReleaseRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

func parseKernelRelease(release string) ([2]int, error) {
	m := kernelReleaseRE.FindStringSubmatch(release)
	if m == nil {
		return [2]int{}, fmt.Errorf("cannot parse kernel release %q", release)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return [2]int{major, minor}, nil
}

// kernelConfig reads the kernel's build configuration from where the
// system validators look for it. Unlike kubeadm it does not modprobe the
// configs module: preflight changes nothing on the host.
func kernelConfig(ctx context.Context, h transport.Host, release string) (map[string]string, error) {
	paths := []string{
		"/proc/config.gz",
		"/boot/config-" + release,
		"/usr/src/linux-" + release + "/.config",
		"/usr/src/linux/.config",
		"/usr/lib/modules/" + release + "/config",
		"/usr/lib/ostree-boot/config-" + release,
		"/usr/lib/kernel/config-" + release,
		"/usr/src/linux-headers-" + release + "/.config",
		"/lib/modules/" + release + "/build/.config",
	}
	for _, p := range paths {
		b, err := h.ReadFile(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		var r io.Reader = bytes.NewReader(b)
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			r = zr
		}
		config := map[string]string{}
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 64*1024), 1024*1024)
		for s.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(s.Text()), "=")
			if ok && strings.HasPrefix(k, "CONFIG_") {
				config[k] = v
			}
		}
		if err := s.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return config, nil
	}
	return nil, fmt.Errorf("no config path in %v is available", paths)
}

func checkHostname(ctx context.Context, h transport.Host, cfg *inventory.Cluster, _ hostutil.HostFacts) (warns, _ []error) {
	name := cfg.Node.Name
	for _, msg := range validation.IsQualifiedName(name) {
		warns = append(warns, fmt.Errorf("invalid node name format %q: %s", name, msg))
	}
	if len(warns) == 0 {
		// A Node's name must also be a lower-case DNS subdomain.
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			warns = append(warns, fmt.Errorf("invalid node name %q: %s", name, msg))
		}
	}
	if name == "" {
		return warns, nil
	}
	// /etc/hosts first, as Go's resolver (kubeadm's lookup) does: `getent
	// hosts` asks for an IPv6 address first, and on a host whose DNS server
	// does not answer (air-gapped, or its traffic dropped) that alone takes
	// the resolver's 5 s timeout even when /etc/hosts has the name.
	if b, err := h.ReadFile(ctx, "/etc/hosts"); err == nil && hostsFileHas(string(b), name) {
		return warns, nil
	}
	_, err := transport.Output(ctx, h, "getent", "hosts", name)
	if err == nil {
		return warns, nil
	}
	// kubeadm prints two warnings here; one that says what to do is enough.
	return append(warns, fmt.Errorf("hostname %q could not be reached (`getent hosts %s` found nothing: %v); add it to /etc/hosts or DNS", name, name, err)), nil
}

func hostsFileHas(hosts, name string) bool {
	for _, line := range strings.Split(hosts, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		for _, n := range f[min(1, len(f)):] {
			if strings.EqualFold(n, name) {
				return true
			}
		}
	}
	return false
}

var kubeletVersionRE = regexp.MustCompile(`^\s*Kubernetes v((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)([-\w.+]*)?)\s*$`)

// checkKubeletVersion checks the installed kubelet against the control
// plane's version. A kubelet that is not installed yet is a warning: it
// must be there by the kubelet-start phase.
func checkKubeletVersion(ctx context.Context, h transport.Host, cfg *inventory.Cluster, _ hostutil.HostFacts) (warns, errs []error) {
	bin, err := hostutil.LookPath(ctx, h, "kubelet")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []error{fmt.Errorf("the kubelet is not installed (%v); install it before the kubelet-start phase", err)}, nil
		}
		return nil, []error{fmt.Errorf("couldn't get kubelet version: %w", err)}
	}
	out, err := transport.Output(ctx, h, bin, "--version")
	if err != nil {
		return nil, []error{fmt.Errorf("couldn't get kubelet version: cannot execute '%s --version': %w", bin, err)}
	}
	m := kubeletVersionRE.FindStringSubmatch(out)
	if m == nil {
		return nil, []error{fmt.Errorf("couldn't get kubelet version: Unable to parse output from Kubelet: %q", out)}
	}
	kubelet, err := parseSemver(m[1])
	if err != nil {
		return nil, []error{fmt.Errorf("couldn't get kubelet version: %w", err)}
	}
	if kubelet.LessThan(minKubeletVersion) {
		return nil, []error{fmt.Errorf("Kubelet version %q is lower than kubeboot can support. Please upgrade kubelet", kubelet)}
	}
	if cfg.KubernetesVersion != "" {
		cp, err := parseSemver(cfg.KubernetesVersion)
		if err != nil {
			return nil, []error{fmt.Errorf("couldn't parse Kubernetes version %q: %v", cfg.KubernetesVersion, err)}
		}
		if kubelet.Major() > cp.Major() || kubelet.Minor() > cp.Minor() {
			return nil, []error{fmt.Errorf("the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: %q Control plane version: %q", kubelet, cp)}
		}
	}
	return nil, nil
}

// checkKubeletService warns when the kubelet service is missing or not
// enabled. Without systemd as PID 1 there is no service to check (the
// SystemdPID1 check says so).
func checkKubeletService(ctx context.Context, h transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, _ []error) {
	if !facts.SystemdPID1 {
		return nil, nil
	}
	out, err := transport.Output(ctx, h, "systemctl", "is-enabled", "kubelet")
	if err == nil {
		return nil, nil
	}
	if out == "" { // systemctl said nothing on stdout: no unit file
		return []error{errors.New("kubelet service does not exist")}, nil
	}
	return []error{errors.New("kubelet service is not enabled, please run 'systemctl enable kubelet.service'")}, nil
}

// ---- kubeboot's own checks: host conditions it configures for ----

func checkCgroupVersion(_ context.Context, _ transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, _ []error) {
	if facts.CgroupV1 {
		return []error{errors.New("cgroup v1 is deprecated; the kubelet configuration will set failCgroupV1: false")}, nil
	}
	return nil, nil
}

func checkOOMScoreAdj(_ context.Context, _ transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, _ []error) {
	if !facts.NegativeOOMScoreAdj {
		return []error{errors.New("a negative oom_score_adj is not permitted here (no CAP_SYS_RESOURCE, as in a nested container): containerd must set restrict_oom_score_adj = true or pods fail to start")}, nil
	}
	return nil, nil
}

// kubeletSysctls are the kernel parameters the kubelet sets when it starts
// (its container manager's setupKernelTunables); it does not start when it
// cannot set one that differs.
var kubeletSysctls = []sysctl{
	{"vm.overcommit_memory", "1"},
	{"vm.panic_on_oom", "0"},
	{"kernel.panic", "10"},
	{"kernel.panic_on_oops", "1"},
	{"kernel.keys.root_maxkeys", "1000000"},
	{"kernel.keys.root_maxbytes", "25000000"},
}

// checkKernelTunables is kubeboot's KernelTunables check: a kernel parameter
// the kubelet sets that differs and cannot be written here (a read-only
// /proc/sys, as in containers and systemd-nspawn machines, where these
// parameters are the host's) stops the kubelet from starting. They have to
// be set on the host, or in /proc/sys by whatever runs the container.
func checkKernelTunables(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
	var bad []string
	for _, s := range kubeletSysctls {
		file := "/proc/sys/" + strings.ReplaceAll(s.key, ".", "/")
		cur, err := hostutil.ReadTrimmed(ctx, h, file)
		if err != nil || cur == s.value {
			continue // absent (another kernel), or already right
		}
		_, err = h.Run(ctx, transport.Cmd{Args: []string{"test", "-w", file}, ReadOnly: true})
		var ee *transport.ExitError
		if errors.As(err, &ee) && ee.ExitCode == 1 {
			bad = append(bad, fmt.Sprintf("%s = %s (the kubelet sets %s)", s.key, cur, s.value))
		}
	}
	if len(bad) > 0 {
		errs = append(errs, fmt.Errorf("%s: read-only here, so the kubelet will not start; set them where they can be written (on the host of this container: sysctl -w)", strings.Join(bad, ", ")))
	}
	return nil, errs
}

func checkSystemdPID1(_ context.Context, _ transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, _ []error) {
	if !facts.SystemdPID1 {
		return []error{errors.New("systemd is not PID 1: kubeboot cannot start the kubelet service; the kubelet-start phase prints how to start it by hand")}, nil
	}
	return nil, nil
}

// ---- helpers ----

// parseSemver parses a Kubernetes version (v1.34.3, 1.35.0-alpha.1) with
// apimachinery's semantic versions: a pre-release orders before its
// release, and String prints it without the "v", as kubeadm's messages do.
func parseSemver(s string) (*version.Version, error) {
	v, err := version.ParseSemantic(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%q is not a version like v1.34.3", s)
	}
	return v, nil
}
