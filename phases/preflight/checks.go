package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"golang.org/x/net/http/httpproxy"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

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
	if v.Major() > KubebootVersion.Major() || v.Major() == KubebootVersion.Major() && v.Minor() > KubebootVersion.Minor() {
		return []error{fmt.Errorf("Kubernetes version is greater than kubeboot version. Please consider to upgrade kubeboot. Kubernetes version: %s. Kubeboot version: %d.%d.x", v, KubebootVersion.Major(), KubebootVersion.Minor())}, nil
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

// checkName turns a path into kubeadm's check-name suffix: / becomes -.
func checkName(prefix, p string) string { return prefix + "-" + strings.ReplaceAll(p, "/", "-") }

// FileAvailableCheck fails when the file p exists (kubeadm's FileAvailable).
func FileAvailableCheck(p string) Check {
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

// DirAvailableCheck fails when the directory p exists and is not empty
// (kubeadm's DirAvailable).
func DirAvailableCheck(p string) Check {
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

func checkSystemdPID1(_ context.Context, _ transport.Host, _ *inventory.Cluster, facts hostutil.HostFacts) (warns, _ []error) {
	if !facts.SystemdPID1 {
		return []error{errors.New("systemd is not PID 1: kubeboot cannot start the kubelet service; the kubelet-start phase prints how to start it by hand")}, nil
	}
	return nil, nil
}

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
