// Package reset is `kubeboot reset`: kubeadm's reset phases (preflight,
// remove-etcd-member, cleanup-node) and what kubeadm leaves behind: the
// pod sandboxes and containers (through the CRI), the kubelet's mounts,
// the CNI's interfaces, configuration and state, and the iptables,
// nftables and IPVS rules of kube-proxy and the CNI, chain by chain, so
// the host's own rules stay. What prepare installed stays unless All,
// which undoes exactly what prepare recorded.
package reset

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// Data is what reset's phases act on and share within one run.
type Data struct {
	Host   transport.Host
	Out    *workflow.Printer
	DryRun bool
	// Force resets without asking, and even when leaving etcd fails or
	// would lose its quorum.
	Force bool
	// All also removes what prepare installed, as its record lists.
	All bool
	// CertDir is the node's PKI (--cert-dir).
	CertDir string
	// CRISocket is the container runtime's endpoint (--cri-socket);
	// containerd's when empty.
	CRISocket string
	// Confirm asks the operator before anything changes, unless Force
	// (kubeadm's "Are you sure you want to proceed?").
	Confirm func(question string) (bool, error)
	// EtcdConnect opens the etcd client (etcd.New when nil).
	EtcdConnect func(endpoints []string, tlsConfig *tls.Config) (etcd.Client, error)
	// Facts probes the host once; when nil, reset does.
	Facts func(ctx context.Context) (hostutil.HostFacts, error)

	st state
}

type state struct {
	facts hostutil.FactsOnce

	// what preflight found
	inspected    bool
	controlPlane bool
	etcdManifest string // the etcd static pod's manifest, when there is one
	etcdDataDir  string

	report Report
}

// Report is what a reset removed, and what it left and why.
type Report struct {
	Removed []string
	Left    []string
}

// Report returns what the run removed and left.
func (d *Data) Report() Report { return d.st.report }

func (d *Data) removed(format string, args ...any) {
	d.st.report.Removed = append(d.st.report.Removed, fmt.Sprintf(format, args...))
}

func (d *Data) left(format string, args ...any) {
	d.st.report.Left = append(d.st.report.Left, fmt.Sprintf(format, args...))
}

const tag = "reset"

func (d *Data) certDir() string {
	if d.CertDir != "" {
		return d.CertDir
	}
	return inventory.DefaultCertificatesDir
}

func (d *Data) criSocket() string {
	s := d.CRISocket
	if s == "" {
		s = inventory.DefaultCRISocket
	}
	if !strings.Contains(s, "://") {
		s = "unix://" + s
	}
	return s
}

// socketPath is the CRI endpoint's socket file.
func (d *Data) socketPath() string { return strings.TrimPrefix(d.criSocket(), "unix://") }

func (d *Data) facts(ctx context.Context) (hostutil.HostFacts, error) {
	if d.Facts != nil {
		return d.Facts(ctx)
	}
	return d.st.facts.Get(ctx, d.Host)
}

// Runner is the reset workflow in kubeadm's order, with kubeadm's phase
// names; cleanup-node has sub-phases (each can be skipped), and
// uninstall, after it, acts only with All.
func Runner() *workflow.Runner[*Data] {
	return &workflow.Runner[*Data]{
		Command: "reset",
		Context: func(ctx context.Context, d *Data) context.Context { return hostutil.WithPathCache(ctx, d.Host) },
		Phases: []*workflow.Phase[*Data]{
			{Name: "preflight", Short: "Run reset pre-flight checks", Run: Preflight},
			{Name: "remove-etcd-member", Short: "Remove a local etcd member", Run: RemoveEtcdMember},
			{Name: "cleanup-node", Short: "Run cleanup node", Phases: []*workflow.Phase[*Data]{
				{Name: "kubelet", Short: "Stop the kubelet and kubeboot's certificate renewal timer", Run: StopKubelet},
				{Name: "containers", Short: "Remove every pod sandbox and container through the CRI", Run: RemoveContainers},
				{Name: "mounts", Short: "Unmount what the kubelet mounted under /var/lib/kubelet", Run: Unmount},
				{Name: "files", Short: "Remove /etc/kubernetes's manifests, kubeconfigs and PKI, /var/lib/kubelet and /var/lib/etcd", Run: RemoveFiles},
				{Name: "network", Short: "Remove the CNI's interfaces, configuration and state, and the iptables, nftables and IPVS rules of kube-proxy and the CNI", Run: CleanNetwork},
			}},
			{Name: "uninstall", Short: "With --all: remove what prepare installed, as its record lists", Run: Uninstall},
		},
	}
}

// inspect finds what the node is: a control plane (static pod
// manifests), an etcd member (etcd's manifest), where etcd keeps its data.
func (d *Data) inspect(ctx context.Context) error {
	if d.st.inspected {
		return nil
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		if ok, err := transport.Exists(ctx, d.Host, inventory.ManifestPath(c)); err != nil {
			return err
		} else if ok {
			d.st.controlPlane = true
		}
	}
	b, err := d.Host.ReadFile(ctx, inventory.ManifestPath("etcd"))
	switch {
	case err == nil:
		d.st.etcdManifest = string(b)
		d.st.etcdDataDir = manifestFlag(string(b), "data-dir")
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read %s: %w", inventory.ManifestPath("etcd"), err)
	}
	if d.st.etcdDataDir == "" {
		d.st.etcdDataDir = inventory.DefaultEtcdDataDir
	}
	d.st.inspected = true
	return nil
}

// manifestFlag is the value of --name=value in a static pod manifest's
// command.
func manifestFlag(manifest, name string) string {
	re := regexp.MustCompile(`(?m)^\s*-\s*"?--` + regexp.QuoteMeta(name) + `=([^"\s]+)"?\s*$`)
	if m := re.FindStringSubmatch(manifest); m != nil {
		return m[1]
	}
	return ""
}

// Preflight checks that reset can run (root), says what the node is, and
// asks before anything changes unless Force or a dry run.
func Preflight(ctx context.Context, d *Data) error {
	if uid, err := transport.Output(ctx, d.Host, "id", "-u"); err != nil {
		return fmt.Errorf("check the user on %s: %w", d.Host.Name(), err)
	} else if uid != "0" {
		return fmt.Errorf("reset on %s must run as root (user id %s): run it with sudo", d.Host.Name(), uid)
	}
	if err := d.inspect(ctx); err != nil {
		return err
	}
	who := d.Host.Name()
	if who == "local" {
		who = "This host"
	}
	switch {
	case d.st.etcdManifest != "":
		d.Out.Printf(tag, "%s is a control-plane node with a stacked etcd member (data in %s)", who, d.st.etcdDataDir)
	case d.st.controlPlane:
		d.Out.Printf(tag, "%s is a control-plane node (external etcd: its data is not touched)", who)
	default:
		d.Out.Printf(tag, "%s is not a control-plane node (no static pod manifests in %s)", who, inventory.ManifestsDir)
	}
	if d.Force || d.DryRun {
		return nil
	}
	if d.Confirm == nil {
		return errors.New("reset changes the node: confirm on a terminal, or give --force")
	}
	what := "init or join"
	if d.All {
		what = "prepare, init or join"
	}
	ok, err := d.Confirm(fmt.Sprintf("WARNING: Changes made to this host by kubeboot %s will be reverted.\n[reset] Are you sure you want to proceed? [y/N]: ", what))
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("reset aborted: nothing was changed")
	}
	return nil
}

// RemoveEtcdMember takes a stacked etcd member out of its cluster through
// the etcd API before its data goes, and refuses when the members left
// would lose their quorum, unless Force.
func RemoveEtcdMember(ctx context.Context, d *Data) error {
	if err := d.inspect(ctx); err != nil {
		return err
	}
	if d.st.etcdManifest == "" {
		d.Out.Printf(tag, "No etcd member on this node (no %s): nothing to remove", inventory.ManifestPath("etcd"))
		return nil
	}
	peerURL := manifestFlag(d.st.etcdManifest, "initial-advertise-peer-urls")
	name := manifestFlag(d.st.etcdManifest, "name")
	endpoints := []string{etcd.URL("127.0.0.1", templates.EtcdListenClientPort)}
	if adv := manifestFlag(d.st.etcdManifest, "advertise-client-urls"); adv != "" {
		endpoints = append(endpoints, strings.Split(adv, ",")...)
	}
	fail := func(err error) error {
		if d.Force {
			d.Out.Printf(tag, "WARNING: %v; --force: resetting anyway. Remove the member from a healthy control plane (etcdctl member remove) or the cluster keeps counting it", err)
			d.left("etcd member %s (%s): not removed (%v)", name, peerURL, err)
			return nil
		}
		return fmt.Errorf("%w; nothing was changed: fix etcd, or reset with --force and remove the member by hand (etcdctl member remove)", err)
	}
	tlsConfig, err := etcd.ClientTLS(ctx, d.Host, d.certDir())
	if err != nil {
		return fail(fmt.Errorf("cannot reach etcd to leave it: %w", err))
	}
	l, err := etcd.Leave(ctx, d.EtcdConnect, endpoints, tlsConfig, peerURL, name, d.Force, d.DryRun)
	if err != nil {
		if errors.Is(err, etcd.ErrQuorum) {
			return fmt.Errorf("%w; nothing was changed", err)
		}
		return fail(err)
	}
	switch {
	case l.Self == nil:
		d.Out.Printf(tag, "%s (%s) is not a member of the etcd cluster (%d members): nothing to remove", name, peerURL, len(l.Members))
	case l.Last:
		d.Out.Printf(tag, "%s is the etcd cluster's only member: the cluster's data goes with %s", name, d.st.etcdDataDir)
	case d.DryRun:
		d.Out.Printf(tag, "Dry run: would remove etcd member %s (%x); %d of the %d voting members left answer (a quorum is %d)", name, l.Self.ID, l.Healthy, l.Voters, l.Quorum())
	case l.Healthy < l.Quorum() && !l.Self.IsLearner:
		d.Out.Printf(tag, "WARNING: --force: removed etcd member %s (%x) although only %d of the %d voting members left answer (a quorum is %d)", name, l.Self.ID, l.Healthy, l.Voters, l.Quorum())
		d.removed("etcd member %s (%x)", name, l.Self.ID)
	default:
		d.Out.Printf(tag, "Removed etcd member %s (%x); %d voting member(s) left, %d answering", name, l.Self.ID, l.Voters, l.Healthy)
		d.removed("etcd member %s (%x)", name, l.Self.ID)
	}
	return nil
}

// removePaths removes the paths that exist (rm -rf --one-file-system, so
// nothing on a file system still mounted below them goes) and reports
// them.
func (d *Data) removePaths(ctx context.Context, paths ...string) error {
	var there []string
	for _, p := range paths {
		if ok, err := transport.Exists(ctx, d.Host, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		} else if ok {
			there = append(there, p)
		}
	}
	if len(there) == 0 {
		return nil
	}
	if _, err := d.Host.Run(ctx, transport.Cmd{Args: append([]string{"rm", "-rf", "--one-file-system", "--"}, there...)}); err != nil {
		return fmt.Errorf("remove %s: %w", strings.Join(there, " "), err)
	}
	verb := "Deleted"
	if d.DryRun {
		verb = "Would delete"
	}
	d.Out.Printf(tag, "%s %s", verb, strings.Join(there, ", "))
	d.st.report.Removed = append(d.st.report.Removed, there...)
	return nil
}
