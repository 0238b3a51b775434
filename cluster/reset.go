package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
	"github.com/kubeboot/kubeboot/phases/reset"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// ManagedLabel marks the Nodes kubeboot made (apply sets it on every
// host's Node): only those are candidates for apply --prune.
const ManagedLabel = "kubeboot.io/managed"

// HostAnnotation records on each Node the inventory's entry for its host
// (without an inline password), so that apply --prune reaches a host
// removed from the file as the file did (bastion, user, sudo, port).
const HostAnnotation = "kubeboot.io/host"

// hostRecord is h as HostAnnotation holds it.
func hostRecord(h *inventory.Host) string {
	c := *h
	c.Labels, c.Taints = nil, nil
	if c.SSH != nil {
		ssh := *c.SSH
		ssh.Password = "" // a secret: never in the cluster
		c.SSH = &ssh
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// NodeRemover is what removing one node asks the cluster.
type NodeRemover interface {
	// Drain cordons Node name and evicts its pods but the DaemonSets' and
	// the static ones, waiting up to timeout until they are gone; found
	// is false when there is no such Node.
	Drain(ctx context.Context, name string, timeout time.Duration, out func(format string, args ...any)) (found bool, err error)
	// DeleteNode deletes Node name; a missing one is not an error.
	DeleteNode(ctx context.Context, name string) error
}

var _ NodeRemover = (*kubeAPI)(nil)

// ResetOptions are `kubeboot reset -f`'s.
type ResetOptions struct {
	// Host resets only this host of the inventory, drained and its Node
	// deleted; empty resets every host, workers first.
	Host string
	// All, Force and DryRun are reset's --all, --force and --dry-run.
	All, Force, DryRun bool
	Out                io.Writer
	// Parallel is how many workers reset at once.
	Parallel int
	// DrainTimeout bounds --host's drain (2 minutes when 0).
	DrainTimeout time.Duration
	// EtcdConnect opens a host's etcd client; nil: through its SSH
	// connection.
	EtcdConnect func(h transport.Host) func([]string, *tls.Config) (etcd.Client, error)
	// Remover reaches the cluster through control plane h; nil: NewAPI.
	Remover func(ctx context.Context, h transport.Host, bindPort int) (NodeRemover, error)
}

// ResetOrder is the order reset -f goes through the hosts: the workers
// (at once), then the control planes one at a time, the first of the
// inventory last, so etcd loses one member at a time and keeps its quorum.
func ResetOrder(inv *Inventory) (workers, controlPlanes []int) {
	for i := range inv.Hosts {
		if inv.Hosts[i].IsControlPlane() {
			controlPlanes = append(controlPlanes, i)
		} else {
			workers = append(workers, i)
		}
	}
	slices.Reverse(controlPlanes)
	return workers, controlPlanes
}

// Reset resets the hosts of inv: every host (ResetOrder), or with
// o.Host that one only, after draining it and before deleting its Node
// through another control plane. It stops at the first control plane
// that fails, naming it.
func Reset(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), o ResetOptions) error {
	// The hosts' printers write their whole lines to one writer.
	o.Out = &lockedWriter{w: o.Out}
	if o.Host != "" {
		return resetOne(ctx, inv, connect, o)
	}
	workers, cps := ResetOrder(inv)
	par := o.Parallel
	if par <= 0 {
		par = 20
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	errs := make([]error, len(inv.Hosts))
	for _, i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = resetHost(ctx, inv, connect, i, o)
		}()
	}
	wg.Wait()
	var failed []error
	for _, i := range workers {
		if errs[i] != nil {
			failed = append(failed, fmt.Errorf("%s: %w", inv.Hosts[i].Name, errs[i]))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w; the control planes were not reset: fix the workers and run reset -f again", errors.Join(failed...))
	}
	for _, i := range cps {
		if err := resetHost(ctx, inv, connect, i, o); err != nil {
			return fmt.Errorf("%s: %w (the hosts before it are reset; fix it and run reset -f again)", inv.Hosts[i].Name, err)
		}
	}
	return nil
}

// lockedWriter lets several hosts' printers share one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return len(b), nil
	}
	return l.w.Write(b)
}

// resetOne is --host: drain the Node, reset the host (a control plane
// leaves etcd), delete the Node, through another control plane.
func resetOne(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), o ResetOptions) error {
	target := -1
	var names []string
	for i := range inv.Hosts {
		names = append(names, inv.Hosts[i].Name)
		if inv.Hosts[i].Name == o.Host {
			target = i
		}
	}
	if target < 0 {
		return fmt.Errorf("--host %s: no such host in %s (hosts: %s)", o.Host, inv.Path, strings.Join(names, ", "))
	}
	api := -1
	for i := range inv.Hosts {
		if i != target && inv.Hosts[i].IsControlPlane() {
			api = i
			break
		}
	}
	if api < 0 {
		return fmt.Errorf("--host %s: it is the only control plane of %s, so there is no cluster to remove it from; reset -f without --host resets the whole cluster", o.Host, inv.Path)
	}
	h, err := connect(ctx, inv, api)
	if err != nil {
		return err
	}
	if c, ok := h.(io.Closer); ok {
		defer c.Close()
	}
	newRemover := o.Remover
	if newRemover == nil {
		newRemover = func(ctx context.Context, h transport.Host, port int) (NodeRemover, error) {
			a, err := NewAPI(ctx, h, port)
			if err != nil {
				return nil, err
			}
			return a.(NodeRemover), nil
		}
	}
	rm, err := newRemover(ctx, h, inv.BindPort())
	if err != nil {
		return fmt.Errorf("reach the API server through %s: %w", inv.Hosts[api].Name, err)
	}
	pw := &prefixWriter{w: o.Out, prefix: o.Host + ": "}
	p := workflow.NewPrinter(pw)
	timeout := o.DrainTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	found := false
	if o.DryRun {
		p.Printf("drain", "Dry run: would drain Node %s and delete it after the reset", o.Host)
	} else {
		found, err = rm.Drain(ctx, o.Host, timeout, func(format string, args ...any) { p.Printf("drain", format, args...) })
		pw.flush()
		if err != nil {
			return fmt.Errorf("drain Node %s: %w; nothing was reset", o.Host, err)
		}
		if !found {
			p.Printf("drain", "No Node %s in the cluster: nothing to drain", o.Host)
		}
	}
	if err := resetHost(ctx, inv, connect, target, o); err != nil {
		return fmt.Errorf("%s: %w (drained, not reset; its Node is cordoned)", o.Host, err)
	}
	if found {
		if err := rm.DeleteNode(ctx, o.Host); err != nil {
			return fmt.Errorf("delete Node %s: %w (the host is reset)", o.Host, err)
		}
		p.Printf("drain", "Deleted Node %s", o.Host)
		pw.flush()
	}
	return nil
}

// resetHost runs reset's phases on host i over its connection.
func resetHost(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), i int, o ResetOptions) error {
	hh := &inv.Hosts[i]
	h, cfg, closeHost, err := openHost(ctx, inv, connect, i)
	if err != nil {
		return err
	}
	defer closeHost()
	var dry *transport.DryRun
	if o.DryRun {
		// What a dry run would write goes below a directory of this
		// machine's, removed after.
		dir, err := os.MkdirTemp("", "kubeboot-reset-dry-run-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dry = transport.NewDryRun(h, dir)
		h = dry
	}
	pw := &prefixWriter{w: o.Out, prefix: hh.Name + ": "}
	defer pw.flush()
	p := workflow.NewPrinter(pw)
	d := &reset.Data{Host: h, Out: p, DryRun: o.DryRun, Force: o.Force, All: o.All,
		CertDir: cfg.CertificatesDir, CRISocket: cfg.Node.CRISocket,
		// The operator confirmed once for every host.
		Confirm: func(string) (bool, error) { return true, nil },
	}
	switch {
	case o.EtcdConnect != nil:
		d.EtcdConnect = o.EtcdConnect(h)
	default:
		if dd, ok := unwrapDialer(h); ok {
			d.EtcdConnect = etcd.NewVia(dd.DialContext)
		}
	}
	start := time.Now()
	err = reset.Runner().Run(ctx, d, workflow.Options{})
	r := d.Report()
	p.Printf("reset", "%d removed, %d left (%s)", len(r.Removed), len(r.Left), workflow.RoundDuration(time.Since(start)))
	for _, l := range r.Left {
		p.Printf("reset", "left: %s", l)
	}
	if dry != nil {
		for _, a := range dry.Actions() {
			if a.Kind == "run" {
				p.Printf("dryrun", "%s", a)
			}
		}
	}
	return err
}

// unwrapDialer finds the SSH connection below recorders and dry runs.
func unwrapDialer(h transport.Host) (Dialer, bool) {
	for {
		if d, ok := h.(Dialer); ok {
			return d, true
		}
		switch u := h.(type) {
		case unwrapper:
			h = u.Unwrap()
		case *transport.DryRun:
			h = u.Inner
		default:
			return nil, false
		}
	}
}

// Drain implements NodeRemover as `kubectl drain --ignore-daemonsets
// --delete-emptydir-data --force` does (the host is reset next, so its
// local data goes anyway): cordon, evict, wait.
func (a *kubeAPI) Drain(ctx context.Context, name string, timeout time.Duration, out func(format string, args ...any)) (bool, error) {
	nodes := a.c.CoreV1().Nodes()
	n, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !n.Spec.Unschedulable {
		if _, err := nodes.Patch(ctx, name, types.StrategicMergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			return true, fmt.Errorf("cordon: %w", err)
		}
		out("Cordoned Node %s", name)
	}
	list, err := a.c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
	if err != nil {
		return true, err
	}
	var evict []corev1.Pod
	for _, pod := range list.Items {
		if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
			continue
		}
		if ref := metav1.GetControllerOf(&pod); ref != nil && ref.Kind == "DaemonSet" {
			continue
		}
		evict = append(evict, pod)
	}
	deadline := time.Now().Add(timeout)
	for _, pod := range evict {
		for {
			err := a.c.CoreV1().Pods(pod.Namespace).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}})
			if err == nil || apierrors.IsNotFound(err) {
				break
			}
			// 429: a PodDisruptionBudget does not allow it yet.
			if !apierrors.IsTooManyRequests(err) || time.Now().After(deadline) {
				return true, fmt.Errorf("evict %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			if err := workflow.Sleep(ctx, 2*time.Second); err != nil {
				return true, err
			}
		}
	}
	for _, pod := range evict {
		for {
			cur, err := a.c.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || err == nil && cur.UID != pod.UID {
				break
			}
			if time.Now().After(deadline) {
				return true, fmt.Errorf("pod %s/%s is still there after %s", pod.Namespace, pod.Name, timeout)
			}
			if err := workflow.Sleep(ctx, time.Second); err != nil {
				return true, err
			}
		}
	}
	out("Evicted %d pod(s) from Node %s (DaemonSet and static pods stay until the reset)", len(evict), name)
	return true, nil
}

// DeleteNode implements NodeRemover.
func (a *kubeAPI) DeleteNode(ctx context.Context, name string) error {
	err := a.c.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// prune is apply's prune step: the Nodes kubeboot made whose hosts left
// the file are listed; with Prune each is drained, its host reset over
// SSH (to the Node's InternalIP, with the file's ssh defaults and
// known_hosts) and the Node deleted.
func (a *applier) prune(ctx context.Context) error {
	var keep []string
	for i := range a.inv.Hosts {
		keep = append(keep, a.inv.Hosts[i].Name)
	}
	stray, err := a.api.StrayNodes(ctx, keep)
	if err != nil {
		return err
	}
	if len(stray) == 0 {
		return nil
	}
	if !a.o.Prune {
		for _, n := range stray {
			a.p.line(StepPrune, n.Name, "Node %s (%s) is not in %s: left alone; apply --prune drains, resets and deletes it", n.Name, n.Address, a.inv.Path)
		}
		return nil
	}
	rm, ok := a.api.(NodeRemover)
	if !ok {
		return fmt.Errorf("this API cannot remove Nodes")
	}
	var errs []error
	for _, n := range stray {
		if err := a.pruneNode(ctx, rm, n); err != nil {
			a.p.line(StepPrune, n.Name, "failed: %v", err)
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		a.p.line(StepPrune, n.Name, "drained, reset and deleted")
	}
	return errors.Join(errs...)
}

func (a *applier) pruneNode(ctx context.Context, rm NodeRemover, n StrayNode) error {
	if n.Address == "" && n.Host == nil {
		return fmt.Errorf("Node %s has no InternalIP to reach its host at: reset it there (kubeboot reset), then kubectl delete node %s", n.Name, n.Name)
	}
	// The removed host, as the file would have listed it: the ssh
	// defaults, the Node's address.
	c := *a.inv.Cluster
	role := inventory.RoleWorker
	if n.ControlPlane {
		role = inventory.RoleControlPlane
	}
	host := inventory.Host{Name: n.Name, Address: n.Address, Roles: []string{role}}
	if n.Host != nil {
		host = *n.Host // as the file had it: bastion, user, sudo, port
	}
	c.Hosts = append(append([]inventory.Host(nil), a.inv.Hosts...), host)
	inv := &Inventory{Cluster: &c, Path: a.inv.Path, Dir: a.inv.Dir, Home: a.inv.Home}
	timeout := 2 * time.Minute
	if _, err := rm.Drain(ctx, n.Name, timeout, func(f string, args ...any) { a.p.line(StepPrune, n.Name, f, args...) }); err != nil {
		return fmt.Errorf("drain: %w; nothing was reset", err)
	}
	// reset's lines ("m3: [reset] ...") go through apply's printer: on the
	// screen as "[prune] m3: [reset] ...", and in the log file, redacted.
	out := &lineWriter{p: a.p, step: StepPrune}
	defer out.Close()
	if err := resetHost(ctx, inv, a.o.Connect, len(c.Hosts)-1, ResetOptions{Out: out}); err != nil {
		return fmt.Errorf("reset: %w (drained, its Node is cordoned)", err)
	}
	return rm.DeleteNode(ctx, n.Name)
}
