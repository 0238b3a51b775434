package inventory

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The Kubernetes minor versions kubeboot installs: its templates, flags and
// certificates are kubeadm v1.34's, which also deploys the previous minor.
const (
	MinKubernetesMinor = 33
	MaxKubernetesMinor = 34
)

// kubeadm's limits on the networking subnets
// (cmd/kubeadm/app/constants and apis/kubeadm/validation).
const (
	// minServiceSubnetAddresses: the DNS service is the subnet's 10th address.
	minServiceSubnetAddresses = 10
	// maxServiceSubnetBits: a service subnet has at most 2^20 addresses
	// (a /12 for IPv4, a /108 for IPv6).
	maxServiceSubnetBits  = 20
	minPodSubnetAddresses = 14
	// podSubnetNodeMaskMaxDiff: the controller manager's CIDR allocator
	// keeps a bitmap of at most 2^16 node ranges.
	podSubnetNodeMaskMaxDiff = 16
	defaultNodeMaskIPv4      = 24
	defaultNodeMaskIPv6      = 64
)

// Validate checks a configuration (normally after SetDefaults) and returns
// every problem at once as FieldErrors, sorted by line. A parsed
// configuration's errors carry the file and line of the bad value.
func Validate(c *Cluster) error {
	if c == nil {
		return FieldErrors{{Msg: "no configuration"}}
	}
	v := &validator{src: c.src}
	v.typeMeta(c)
	v.clusterName(c.ClusterName)
	v.kubernetesVersion(c.KubernetesVersion)
	v.controlPlaneEndpoint(c.ControlPlaneEndpoint)
	v.imageRepository(c.ImageRepository)
	v.absPath("certificatesDir", c.CertificatesDir)
	v.encryptionAlgorithm(c.EncryptionAlgorithm)
	v.validity(c)
	v.networking(c)
	v.etcd(&c.Etcd)
	v.sans("apiServer.certSANs", c.APIServer.CertSANs)
	v.extraArgs("apiServer.extraArgs", c.APIServer.ExtraArgs)
	v.extraArgs("controllerManager.extraArgs", c.ControllerManager.ExtraArgs)
	v.extraArgs("scheduler.extraArgs", c.Scheduler.ExtraArgs)
	v.node(&c.Node)
	v.hosts(c)
	v.loadBalancer(c)
	v.cniAndTimeouts(c)
	v.join(c)
	v.containerd(&c.Containerd)
	v.security(c)
	if len(v.errs) == 0 {
		return nil
	}
	v.errs.sort()
	return v.errs
}

type validator struct {
	src  *source
	errs FieldErrors
}

// add reports a problem with field, at the line field is written on.
func (v *validator) add(field, format string, args ...any) {
	v.addAt(field, field, format, args...)
}

// addAt reports a problem with field at the line of the field path at (a
// list entry, a map key).
func (v *validator) addAt(field, at, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{File: v.src.fileName(), Line: v.src.line(at), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) typeMeta(c *Cluster) {
	if c.APIVersion != "" && c.APIVersion != APIVersion {
		v.add("apiVersion", "%q is not supported; expected apiVersion: %s", c.APIVersion, APIVersion)
	}
	if c.Kind != "" && c.Kind != Kind {
		v.add("kind", "%q is not supported; expected kind: %s", c.Kind, Kind)
	}
}

func (v *validator) clusterName(s string) {
	if s == "" {
		v.add("clusterName", "required (e.g. %s)", DefaultClusterName)
	} else if p := dnsSubdomainProblem(s); p != "" {
		v.add("clusterName", "%q %s", s, p)
	}
}

var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

func (v *validator) kubernetesVersion(s string) {
	const f = "kubernetesVersion"
	supported := fmt.Sprintf("kubeboot supports v1.%d.x to v1.%d.x", MinKubernetesMinor, MaxKubernetesMinor)
	m := versionRE.FindStringSubmatch(s)
	switch {
	case s == "":
		v.add(f, "required (e.g. %s)", DefaultKubernetesVersion)
	case m == nil && versionRE.MatchString("v"+s):
		v.add(f, "%q needs a leading \"v\": write v%s", s, s)
	case m == nil:
		v.add(f, "%q is not a Kubernetes version; write vMAJOR.MINOR.PATCH, e.g. %s", s, DefaultKubernetesVersion)
	default:
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		if major != 1 || minor < MinKubernetesMinor || minor > MaxKubernetesMinor {
			v.add(f, "%s is not supported; %s", s, supported)
		}
	}
}

func (v *validator) controlPlaneEndpoint(s string) {
	if s == "" {
		return
	}
	const f = "controlPlaneEndpoint"
	if strings.Contains(s, "://") {
		v.add(f, "%q must be host or host:port, without a scheme (e.g. lb.example.com:6443)", s)
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	} else if port == "" {
		v.add(f, "%q has an empty port; write host or host:port (e.g. lb.example.com:6443)", s)
		return
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.add(f, "%q: port %q must be a number between 1 and 65535", s, port)
		}
	}
	if net.ParseIP(host) == nil && dnsSubdomainProblem(host) != "" {
		v.add(f, "%q: host %q must be an IP address or a DNS name", s, host)
	}
}

// imageRepositoryRE mirrors the registry and path grammar of
// github.com/distribution/reference, which kubeadm checks
// "<imageRepository>/name:tag" against.
var imageRepositoryRE = func() *regexp.Regexp {
	const (
		domainComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		domain          = `(?:` + domainComponent + `(?:\.` + domainComponent + `)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`
		pathComponent   = `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	)
	return regexp.MustCompile(`^(?:` + domain + `(?:/` + pathComponent + `)*|` + pathComponent + `(?:/` + pathComponent + `)*)$`)
}()

func (v *validator) imageRepository(s string) {
	const f = "imageRepository"
	switch {
	case s == "":
		v.add(f, "required (e.g. %s)", DefaultImageRepository)
	case strings.Contains(s, "://"):
		v.add(f, "%q must not have a scheme: write %s", s, s[strings.Index(s, "://")+3:])
	case strings.ContainsAny(s, " \t\r\n"):
		v.add(f, "%q contains white space", s)
	case strings.HasSuffix(s, "/"):
		v.add(f, "%q must not end with \"/\"", s)
	case !imageRepositoryRE.MatchString(s):
		v.add(f, "%q is not a valid image repository; write registry[:port][/path] with a lower-case path, e.g. %s or registry.example.com:5000/k8s", s, DefaultImageRepository)
	}
}

func (v *validator) absPath(field, p string) {
	switch {
	case p == "":
		v.add(field, "required (an absolute path)")
	case !path.IsAbs(p):
		v.add(field, "%q is not an absolute path", p)
	}
}

var encryptionAlgorithms = []string{string(RSA2048), string(RSA3072), string(RSA4096), string(ECDSAP256)}

func (v *validator) encryptionAlgorithm(a EncryptionAlgorithm) {
	v.oneOf("encryptionAlgorithm", string(a), encryptionAlgorithms)
}

// oneOf checks an enumerated value.
func (v *validator) oneOf(field, s string, allowed []string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	if s == "" {
		v.add(field, "required: one of %s", strings.Join(allowed, ", "))
		return
	}
	msg := fmt.Sprintf("%q is not supported; use one of %s", s, strings.Join(allowed, ", "))
	if m := suggest(s, allowed); m != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", m)
	}
	v.add(field, "%s", msg)
}

func (v *validator) validity(c *Cluster) {
	const leafF, caF = "certificateValidityPeriod", "caCertificateValidityPeriod"
	leaf, ca := c.CertificateValidityPeriod.Duration, c.CACertificateValidityPeriod.Duration
	if leaf <= 0 {
		v.add(leafF, "must be positive, got %s", leaf)
	}
	if ca <= 0 {
		v.add(caF, "must be positive, got %s", ca)
	}
	if leaf > 0 && ca > 0 && leaf > ca {
		// On whichever the file sets: the other is the default.
		f := leafF
		if v.src.line(leafF) == 0 && v.src.line(caF) != 0 {
			f = caF
		}
		if f == leafF {
			v.add(f, "%s is longer than caCertificateValidityPeriod (%s); a certificate can not outlive its CA", leaf, ca)
		} else {
			v.add(f, "%s is shorter than certificateValidityPeriod (%s); a certificate can not outlive its CA", ca, leaf)
		}
	}
}

func (v *validator) networking(c *Cluster) {
	n := &c.Networking
	if n.DNSDomain == "" {
		v.add("networking.dnsDomain", "required (e.g. %s)", DefaultDNSDomain)
	} else if p := dnsSubdomainProblem(n.DNSDomain); p != "" {
		v.add("networking.dnsDomain", "%q %s", n.DNSDomain, p)
	}

	const svcF, podF = "networking.serviceSubnet", "networking.podSubnet"
	svc := v.subnets(svcF, n.ServiceSubnet, minServiceSubnetAddresses)
	for _, s := range svc {
		ones, bits := s.Mask.Size()
		if bits-ones > maxServiceSubnetBits {
			v.add(svcF, "%s is too large: a service subnet has at most 2^%d addresses; for %d-bit addresses the mask must be >= /%d",
				s, maxServiceSubnetBits, bits, bits-maxServiceSubnetBits)
		}
	}

	pod := v.subnets(podF, n.PodSubnet, minPodSubnetAddresses)
	if len(pod) > 0 && c.ControllerManager.ExtraArgs["allocate-node-cidrs"] != "false" {
		for _, s := range pod {
			v.podSubnetNodeMask(c, s)
		}
	}

	// Pods and services must be told apart by address.
	for _, p := range pod {
		for _, s := range svc {
			if p.Contains(s.IP) || s.Contains(p.IP) {
				f, other, fv, ov := svcF, podF, s, p
				if v.src.line(svcF) == 0 && v.src.line(podF) != 0 {
					f, other, fv, ov = podF, svcF, p, s
				}
				v.add(f, "%s overlaps %s %s; the pod and service subnets must not overlap", fv, other, ov)
			}
		}
	}
}

// subnets parses a CIDR or a dual-stack pair of CIDRs ("10.244.0.0/16,fd00::/48"),
// checks each has at least min addresses and returns them (nil if any is
// invalid).
func (v *validator) subnets(field, s string, min int64) []*net.IPNet {
	if s == "" {
		v.add(field, "required: a CIDR, or an IPv4 and an IPv6 CIDR separated by a comma for dual-stack")
		return nil
	}
	var nets []*net.IPNet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			v.add(field, "%q is not a valid CIDR (e.g. 10.244.0.0/16, or 10.244.0.0/16,fd00:10:244::/56 for dual-stack)", part)
			return nil
		}
		nets = append(nets, n)
	}
	switch {
	case len(nets) > 2:
		v.add(field, "%q has %d CIDRs; expected one, or two (one IPv4, one IPv6) for dual-stack", s, len(nets))
		return nil
	case len(nets) == 2 && (nets[0].IP.To4() == nil) == (nets[1].IP.To4() == nil):
		v.add(field, "%q has two %s CIDRs; a dual-stack subnet is one IPv4 and one IPv6 CIDR", s, family(nets[0]))
		return nil
	}
	ok := true
	for _, n := range nets {
		if size := rangeSize(n); size < min {
			v.add(field, "%s has %d address(es), too small; the minimum is %d", n, size, min)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return nets
}

// podSubnetNodeMask mirrors kubeadm's ValidatePodSubnetNodeMask: the
// controller manager hands each node a /24 (IPv4) or /64 (IPv6) of the pod
// subnet unless --node-cidr-mask-size-ipv4/-ipv6 says otherwise.
func (v *validator) podSubnetNodeMask(c *Cluster, s *net.IPNet) {
	const podF = "networking.podSubnet"
	arg, mask := "node-cidr-mask-size-ipv4", defaultNodeMaskIPv4
	if s.IP.To4() == nil {
		arg, mask = "node-cidr-mask-size-ipv6", defaultNodeMaskIPv6
	}
	if val, ok := c.ControllerManager.ExtraArgs[arg]; ok {
		n, err := strconv.Atoi(val)
		if err != nil {
			v.addAt("controllerManager.extraArgs", "controllerManager.extraArgs["+arg+"]", "%s: %q is not an integer", arg, val)
			return
		}
		mask = n
	}
	ones, _ := s.Mask.Size()
	switch {
	case ones > mask:
		v.add(podF, "%s is smaller than the /%d each node gets from it (kube-controller-manager --%s); use a /%d or larger subnet", s, mask, arg, mask)
	case mask-ones > podSubnetNodeMaskMaxDiff:
		v.add(podF, "%s holds 2^%d node ranges of /%d (kube-controller-manager --%s); at most 2^%d are supported: use a /%d or smaller subnet, or raise --%s",
			s, mask-ones, mask, arg, podSubnetNodeMaskMaxDiff, mask-podSubnetNodeMaskMaxDiff, arg)
	}
}

// rangeSize is the number of addresses of n, at most MaxInt64.
func rangeSize(n *net.IPNet) int64 {
	ones, bits := n.Mask.Size()
	if bits-ones >= 63 {
		return 1<<63 - 1
	}
	return int64(1) << uint(bits-ones)
}

func family(n *net.IPNet) string {
	if n.IP.To4() != nil {
		return "IPv4"
	}
	return "IPv6"
}

func (v *validator) etcd(e *Etcd) {
	switch {
	case e.Local != nil && e.External != nil:
		at := "etcd.external"
		if v.src.line(at) == 0 {
			at = "etcd"
		}
		v.addAt("etcd", at, "local and external are mutually exclusive; keep one (local runs etcd as a static pod, external uses an etcd cluster you run)")
		return
	case e.Local == nil && e.External == nil:
		v.add("etcd", "one of local or external is required")
		return
	}
	if l := e.Local; l != nil {
		v.absPath("etcd.local.dataDir", l.DataDir)
		v.extraArgs("etcd.local.extraArgs", l.ExtraArgs)
		v.sans("etcd.local.serverCertSANs", l.ServerCertSANs)
		v.sans("etcd.local.peerCertSANs", l.PeerCertSANs)
		return
	}
	x := e.External
	const p = "etcd.external"
	if len(x.Endpoints) == 0 {
		v.add(p+".endpoints", "at least one endpoint is required (e.g. https://10.0.0.10:2379)")
	}
	files := x.CAFile != "" || x.CertFile != "" || x.KeyFile != ""
	https := false
	for i, ep := range x.Endpoints {
		at := fmt.Sprintf("%s.endpoints[%d]", p, i)
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			v.addAt(p+".endpoints", at, "%q is not an etcd URL; write https://host:port (e.g. https://10.0.0.10:2379)", ep)
		case u.Scheme == "https":
			https = true
		case files:
			v.addAt(p+".endpoints", at, "%q must use https: caFile, certFile and keyFile are set", ep)
		}
	}
	for _, f := range []struct{ name, value, what string }{
		{"caFile", x.CAFile, "the etcd CA certificate"},
		{"certFile", x.CertFile, "the API server's etcd client certificate"},
		{"keyFile", x.KeyFile, "the client certificate's key"},
	} {
		switch {
		case f.value != "":
			v.absPath(p+"."+f.name, f.value)
		case https || files:
			at := p + "." + f.name
			if v.src.line(at) == 0 {
				at = p
			}
			v.addAt(p+"."+f.name, at, "required with https endpoints (%s); set caFile, certFile and keyFile together", f.what)
		}
	}
}

// sans checks certificate subject alternative names: IP addresses or DNS
// names, with a leading "*." wildcard allowed, as kubeadm's ValidateCertSANs.
func (v *validator) sans(field string, names []string) {
	for i, s := range names {
		if net.ParseIP(s) != nil || dnsSubdomainProblem(strings.TrimPrefix(s, "*.")) == "" {
			continue
		}
		v.addAt(field, fmt.Sprintf("%s[%d]", field, i), "%q is not a valid IP address or DNS name (a leading wildcard, *.example.com, is allowed)", s)
	}
}

// extraArgs checks flag names: "name: value" without the leading dashes, as
// kubeadm's extraArgs.
func (v *validator) extraArgs(field string, args map[string]string) {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		at := field + "[" + k + "]"
		name := strings.TrimLeft(k, "-")
		switch {
		case name == "":
			v.addAt(field, at, "%q is not a flag name", k)
		case strings.HasPrefix(k, "-"):
			v.addAt(field, at, "%q: write the flag name without the leading dashes: %s: %q", k, name, args[k])
		case strings.Contains(k, "="):
			n, val, _ := strings.Cut(k, "=")
			v.addAt(field, at, "%q: write the flag's name and value as %s: %q", k, n, val)
		case strings.ContainsAny(k, " \t"):
			v.addAt(field, at, "%q: a flag name has no white space", k)
		}
	}
}

func (v *validator) node(n *Node) {
	if n.Name != "" {
		if p := dnsSubdomainProblem(n.Name); p != "" {
			v.add("node.name", "%q %s", n.Name, p)
		}
	}
	if a := n.AdvertiseAddress; a != "" {
		ip := net.ParseIP(a)
		switch {
		case ip == nil:
			v.add("node.advertiseAddress", "%q is not a valid IP address", a)
		case ip.IsUnspecified():
			v.add("node.advertiseAddress", "%s is the unspecified address; write the address other nodes reach this one on, or leave it empty to use the default route's", a)
		case ip.IsMulticast():
			v.add("node.advertiseAddress", "%s is a multicast address; write a unicast address of this node", a)
		}
	}
	v.port("node.bindPort", n.BindPort)
	v.criSocket(n.CRISocket)
	if n.Taints != nil {
		v.taints("node.taints", *n.Taints)
	}
	v.extraArgs("node.kubeletExtraArgs", n.KubeletExtraArgs)
}

func (v *validator) taints(field string, ts []Taint) {
	for i, t := range ts {
		p := fmt.Sprintf("%s[%d]", field, i)
		if t.Key == "" {
			v.addAt(p+".key", p, "required")
		} else if prob := qualifiedNameProblem(t.Key); prob != "" {
			v.add(p+".key", "%q %s", t.Key, prob)
		}
		if len(t.Value) > 63 || !labelValueRE.MatchString(t.Value) {
			v.add(p+".value", "%q must be at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric", t.Value)
		}
		if t.Effect == "" {
			v.addAt(p+".effect", p, "required: one of NoSchedule, PreferNoSchedule, NoExecute")
		} else {
			v.oneOf(p+".effect", t.Effect, []string{"NoSchedule", "PreferNoSchedule", "NoExecute"})
		}
	}
}

func (v *validator) port(field string, p int) {
	if p < 1 || p > 65535 {
		v.add(field, "%d is not a port number (1-65535)", p)
	}
}

func (v *validator) criSocket(s string) {
	const f = "node.criSocket"
	if s == "" {
		v.add(f, "required (e.g. %s)", DefaultCRISocket)
		return
	}
	if path.IsAbs(s) {
		return
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "unix" && u.Scheme != "npipe"):
		v.add(f, "%q must be a unix:// (or npipe://) URL or an absolute path, e.g. %s", s, DefaultCRISocket)
	case u.Scheme == "unix" && (u.Host != "" || !path.IsAbs(u.Path)):
		v.add(f, "%q: a unix:// URL takes an absolute path after the \"//\", e.g. %s", s, DefaultCRISocket)
	case u.Scheme == "npipe" && u.Path == "":
		v.add(f, "%q names no pipe, e.g. npipe:////./pipe/containerd-containerd", s)
	}
}

func (v *validator) onLine(path string) string {
	if l := v.src.line(path); l > 0 {
		return fmt.Sprintf(" (line %d)", l)
	}
	return ""
}

// The name grammars of k8s.io/apimachinery/pkg/util/validation.
var (
	dnsSubdomainRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	qualifiedNameRE = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValueRE    = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
)

// dnsSubdomainProblem says why s is not an RFC 1123 subdomain, or "".
func dnsSubdomainProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 253:
		return "must be no more than 253 characters"
	case !dnsSubdomainRE.MatchString(s):
		return "must be a DNS name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character"
	}
	return ""
}

// qualifiedNameProblem says why s is not a qualified name ([prefix/]name, as
// label and taint keys), or "".
func qualifiedNameProblem(s string) string {
	prefix, name, hasPrefix := strings.Cut(s, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	switch {
	case hasPrefix && dnsSubdomainProblem(prefix) != "":
		return "has an invalid prefix: it " + dnsSubdomainProblem(prefix)
	case name == "" || len(name) > 63 || !qualifiedNameRE.MatchString(name):
		return "must be [prefix/]name, the name at most 63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (e.g. node-role.kubernetes.io/control-plane)"
	}
	return ""
}

func (v *validator) cniAndTimeouts(c *Cluster) {
	switch c.CNI.Plugin {
	case "", CNIFlannel, CNICalico, CNINone:
	default:
		v.add("cni.plugin", "%q is not supported; use %s, %s or %s", c.CNI.Plugin, CNIFlannel, CNICalico, CNINone)
	}
	if n := c.KubeProxy.ConntrackMaxPerCore; n != nil && *n < 0 {
		v.add("kubeProxy.conntrackMaxPerCore", "%d must be 0 (leave nf_conntrack_max alone) or positive", *n)
	}
	for f, d := range map[string]Duration{
		"timeouts.controlPlaneComponentHealthCheck": c.Timeouts.ControlPlaneComponentHealthCheck,
		"timeouts.discovery":                        c.Timeouts.Discovery,
		"timeouts.tlsBootstrap":                     c.Timeouts.TLSBootstrap,
	} {
		if d.Duration < 0 {
			v.add(f, "must not be negative")
		}
	}
}

// The formats of kubeadm's join settings (bootstrap token, CA pin,
// certificate key), checked here without importing the packages that use
// them. Messages never repeat a token or key: they are secrets.
var (
	tokenRE          = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	caPinRE          = regexp.MustCompile(`^(?i:sha256):[0-9a-fA-F]{64}$`)
	certificateKeyRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

func (v *validator) join(c *Cluster) {
	j := c.Join
	if j == nil {
		return
	}
	const p = "join"
	switch ep := j.APIServerEndpoint; {
	case ep == "":
		v.addAt(p+".apiServerEndpoint", p, "required: the API server to join, as host:port (e.g. 10.0.0.10:6443)")
	case strings.Contains(ep, "://"):
		v.add(p+".apiServerEndpoint", "%q must be host:port, without a scheme (e.g. 10.0.0.10:6443)", ep)
	default:
		host, port, err := net.SplitHostPort(ep)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil || host == "":
			v.add(p+".apiServerEndpoint", "%q must be host:port (e.g. 10.0.0.10:6443)", ep)
		case perr != nil || n < 1 || n > 65535:
			v.add(p+".apiServerEndpoint", "%q: port %q must be a number between 1 and 65535", ep, port)
		case net.ParseIP(host) == nil && dnsSubdomainProblem(strings.ToLower(host)) != "":
			v.add(p+".apiServerEndpoint", "%q: host %q must be an IP address or a DNS name", ep, host)
		}
	}
	token := func(field, s string) {
		if !tokenRE.MatchString(s) {
			v.add(field, "not a bootstrap token (%d characters): expected the form [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef; `kubeboot token create` on a control-plane node makes one", len(s))
		}
	}
	if j.Token == "" {
		v.addAt(p+".token", p, "required: the bootstrap token (`kubeboot token create --print-join-command` on a control-plane node prints the join command)")
	} else {
		token(p+".token", j.Token)
	}
	if j.TLSBootstrapToken != "" && j.TLSBootstrapToken != j.Token {
		token(p+".tlsBootstrapToken", j.TLSBootstrapToken)
	}
	for i, h := range j.CACertHashes {
		if !caPinRE.MatchString(h) {
			v.addAt(p+".caCertHashes", fmt.Sprintf("%s.caCertHashes[%d]", p, i), "%q is not a CA pin: expected sha256:<64 hex digits>, the SHA-256 of the CA certificate's public key", h)
		}
	}
	if len(j.CACertHashes) == 0 && !j.UnsafeSkipCAVerification {
		v.addAt(p+".caCertHashes", p, "required: pin the cluster CA with sha256:<hex> (kubeboot init prints it), or set unsafeSkipCAVerification: true (--discovery-token-unsafe-skip-ca-verification) to trust it on the strength of the token alone")
	}
	if j.CertificateKey != "" {
		switch {
		case !certificateKeyRE.MatchString(j.CertificateKey):
			v.add(p+".certificateKey", "not a certificate key (%d characters): expected 64 hex digits, as `kubeboot init --upload-certs` prints", len(j.CertificateKey))
		case !j.ControlPlane:
			v.add(p+".certificateKey", "is only used when joining a control plane: set controlPlane: true, or drop it for a worker")
		}
	}
}

// registryHostRE is a registry host[:port] as containerd's certs.d
// directories name them.
var registryHostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)

func (v *validator) containerd(c *Containerd) {
	const f = "containerd.registryMirrors"
	regs := make([]string, 0, len(c.RegistryMirrors))
	for r := range c.RegistryMirrors {
		regs = append(regs, r)
	}
	sort.Strings(regs)
	for _, r := range regs {
		at := f + "[" + r + "]"
		if r != "_default" && (strings.Contains(r, "://") || !registryHostRE.MatchString(r)) {
			v.addAt(f, at, "%q is not a registry: write its host[:port] (docker.io, registry.k8s.io, registry.example.com:5000) or _default for every registry", r)
			continue
		}
		mirrors := c.RegistryMirrors[r]
		if len(mirrors) == 0 {
			v.addAt(f, at, "%s: no mirror URL; list at least one (e.g. https://mirror.example.com) or remove the entry", r)
		}
		for i, m := range mirrors {
			u, err := url.Parse(m)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(m, " \t\"") {
				v.addAt(f, fmt.Sprintf("%s[%d]", at, i), "%s: %q is not a mirror URL; write https://host[:port][/path]", r, m)
			}
		}
	}
}
