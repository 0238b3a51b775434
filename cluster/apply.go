package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/bootstraptoken"
	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/certs/copycerts"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/transport"
)

// Options are apply's knobs and the seams tests replace.
type Options struct {
	// Parallel bounds the hosts a parallel step works on at once (20).
	Parallel int
	// Binary is the kubeboot binary to run on the hosts (this one when
	// empty); it must match their architecture.
	Binary string
	// KubeconfigOut is where the admin kubeconfig is written (0600).
	KubeconfigOut string
	// DryRun connects and probes, then says what each host would get.
	DryRun bool
	// Out gets the "[step] host: ..." lines, Log everything with times.
	Out, Log io.Writer
	// Connect opens host i of the inventory.
	Connect func(ctx context.Context, inv *Inventory, i int) (transport.Host, error)
	// NewAPI reaches the cluster through a control plane (NewAPI).
	NewAPI func(ctx context.Context, h transport.Host, bindPort int) (API, error)
	// ReadyTimeout bounds the wait for the Nodes (5m); PollInterval is
	// how often it asks (2s).
	ReadyTimeout, PollInterval time.Duration
	// Secrets, when set, are used instead of generated ones (tests).
	Secrets *Secrets
	// StopAfter, when set, ends the run after that step (benchmarks of
	// the SSH-level steps: connect, facts, upload).
	StopAfter string
	// CacheDir holds the workers' part of the bundle
	// (~/.cache/kubeboot/bundles when empty); WholeBundle sends every
	// host the whole bundle instead.
	CacheDir    string
	WholeBundle bool
	// Prune drains, resets and deletes the Nodes kubeboot made
	// (ManagedLabel) whose hosts are no longer in the file.
	Prune bool
}

// HostResult is what apply did on one host.
type HostResult struct {
	Name  string
	Roles []string
	// Status is "ok", "failed" or "not reached" (the run stopped first).
	Status string
	// Did lists what changed or was checked, in order.
	Did []string
	Err error
	// Took is the time spent on this host; Calls its round trips; Sent
	// the bytes uploaded to it.
	Took  time.Duration
	Calls int64
	Sent  int64
}

// Result is the whole run.
type Result struct {
	Hosts []*HostResult
	Took  time.Duration
	// Steps is each step's duration, in order.
	Steps []StepTime
}

// StepTime is how long one step took.
type StepTime struct {
	Name string
	Took time.Duration
}

// facts are what one probe tells about a host.
type facts struct {
	arch       string
	binarySum  string
	bundleSum  string // from the marker written after a verified upload
	link       string
	has        map[string]bool
	kubeletRun bool
	free       map[string]diskFree // by directory (probeSpaceScript)
}

// setUp says whether the host was set up by an earlier run (or by hand).
func (f *facts) setUp() bool {
	return f.has["kubelet.conf"] || f.has["bootstrap-kubelet.conf"] || f.has["manifests/kube-apiserver.yaml"]
}

type hostRun struct {
	idx   int
	h     *inventory.Host
	rec   *recorder
	facts facts
	res   *HostResult
	mu    sync.Mutex
}

func (hr *hostRun) did(format string, args ...any) {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	hr.res.Did = append(hr.res.Did, fmt.Sprintf(format, args...))
}

func (hr *hostRun) took(d time.Duration) {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	hr.res.Took += d
}

type applier struct {
	inv   *Inventory
	o     Options
	p     *printer
	hosts []*hostRun
	byT   map[transport.Host]*hostRun

	binary, binarySum string
	binaryPath        string // on the hosts
	binarySize        int64
	// full is the inventory's bundle, worker its part for the hosts that
	// are only workers (nil: they get full); bundleFor picks.
	full, worker *hostBundle
	bundleArch   string // the manifest's (amd64, arm64)
	// sums caches the local files' checksums (sums.go); cacheErr is why
	// there is no cache directory.
	sums     *sumCache
	cacheErr error

	sec    Secrets
	api    API
	nodes  map[string]bool
	result *Result
}

// Apply brings the cluster of inv to its inventory: every host connected,
// checked, prepared, initialized or joined, Ready and labelled, and the
// admin kubeconfig written. A step that fails on any host stops the run
// before the next step, with every failing host named; running Apply again
// resumes. The Result is returned in every case.
func Apply(ctx context.Context, inv *Inventory, o Options) (*Result, error) {
	start := time.Now()
	if o.Parallel <= 0 {
		o.Parallel = defaultParallel
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 5 * time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.NewAPI == nil {
		o.NewAPI = NewAPI
	}
	if o.KubeconfigOut == "" {
		o.KubeconfigOut = "admin.conf"
	}
	a := &applier{inv: inv, o: o, p: &printer{out: o.Out, log: o.Log, now: time.Now}, byT: map[transport.Host]*hostRun{}, result: &Result{}}
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		a.hosts = append(a.hosts, &hostRun{idx: i, h: h, res: &HostResult{Name: h.Name, Roles: h.Roles, Status: "not reached"}})
		a.result.Hosts = append(a.result.Hosts, a.hosts[i].res)
	}
	defer func() {
		var wg sync.WaitGroup
		for _, hr := range a.hosts {
			if hr.rec != nil {
				hr.res.Calls, hr.res.Sent = hr.rec.calls.Load(), hr.rec.sent.Load()
				if c, ok := hr.rec.Host.(io.Closer); ok {
					wg.Add(1)
					go func() { defer wg.Done(); c.Close() }() // each waits a round trip
				}
			}
		}
		wg.Wait()
		a.result.Took = time.Since(start)
	}()
	err := a.run(ctx)
	for _, hr := range a.hosts {
		switch {
		case hr.res.Err != nil:
			hr.res.Status = "failed"
		case err == nil:
			hr.res.Status = "ok"
		case hr.rec != nil && hr.res.Status == "not reached":
			hr.res.Status = "stopped"
		}
	}
	return a.result, err
}

func (a *applier) run(ctx context.Context) error {
	if err := a.local(); err != nil {
		return err
	}
	connected, probed, failed, err := a.connectAndProbe(ctx, a.o.StopAfter != StepConnect)
	a.result.Steps = append(a.result.Steps, StepTime{StepConnect, connected})
	if a.o.StopAfter != StepConnect {
		a.result.Steps = append(a.result.Steps, StepTime{StepFacts, probed})
	}
	if err != nil {
		return a.stop(failed, err)
	}
	if a.o.StopAfter == StepConnect || a.o.StopAfter == StepFacts {
		return nil
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{StepUpload, a.upload},
		{StepPreflight, a.preflight},
		{StepPrepare, a.prepare},
		{StepInit, a.init},
		{StepJoinCP, a.joinControlPlanes},
		{StepJoin, a.joinWorkers},
		{StepWait, a.wait},
		{StepLabel, a.label},
		{StepPrune, a.prune},
		{StepKubeconfig, a.kubeconfig},
		{StepCerts, a.certs},
	}
	for _, s := range steps {
		if a.o.DryRun && s.name == StepUpload {
			t := time.Now()
			err := a.dryRun(ctx)
			a.result.Steps = append(a.result.Steps, StepTime{StepDryRun, time.Since(t)})
			return err
		}
		t := time.Now()
		err := s.fn(ctx)
		a.result.Steps = append(a.result.Steps, StepTime{s.name, time.Since(t)})
		if err != nil {
			return a.stop(s.name, err)
		}
		if s.name == a.o.StopAfter {
			return nil
		}
	}
	return nil
}

// stop reports a failed step: every host's error, what to do, and that a
// second apply resumes.
func (a *applier) stop(step string, err error) error {
	var failed []string
	for _, hr := range a.hosts {
		if hr.res.Err != nil {
			failed = append(failed, hr.h.Name)
		}
	}
	if len(failed) == 0 {
		a.p.line(step, "", "failed: %v", err)
		a.p.line(step, "", "Fix it and run kubeboot apply again: it resumes where this run stopped")
		return fmt.Errorf("%s: %w", step, err)
	}
	a.p.line(step, "", "failed on %d of %d hosts (%s); nothing after %s ran:", len(failed), len(a.hosts), strings.Join(failed, ", "), step)
	for _, hr := range a.hosts {
		if hr.res.Err != nil {
			a.p.line(step, hr.h.Name, "%v", hr.res.Err)
		}
	}
	a.p.line(step, "", "Fix those hosts and run kubeboot apply again: it resumes, and hosts already done are left as they are")
	return fmt.Errorf("%s failed on %s: %w", step, strings.Join(failed, ", "), err)
}

// local checks what apply sends: the binary (its architecture) and the
// bundle, and computes their checksums.
func (a *applier) local() error {
	a.binary = a.o.Binary
	if a.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the kubeboot binary to copy to the hosts: %w; pass --kubeboot-binary", err)
		}
		a.binary = exe
	}
	a.sums = loadSumCache(a.cacheDir())
	defer a.sums.save()
	var err error
	if a.binarySum, a.binarySize, err = a.sums.sum(a.binary); err != nil {
		return fmt.Errorf("--kubeboot-binary: %w", err)
	}
	a.binaryPath = path.Join(remoteBinDir, "kubeboot-"+a.binarySum[:16])
	return a.localBundles()
}

func readBundleManifest(p string) (*bundle.Manifest, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := bundle.ReadManifest(f)
	return m, err
}

func fileSum(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// binaryArch is the `uname -m` the binary runs on.
func binaryArch(p string) string {
	f, err := elf.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_PPC64:
		return "ppc64le"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_RISCV:
		return "riscv64"
	}
	return ""
}

func unameArch(goarch string) string {
	return map[string]string{"amd64": "x86_64", "arm64": "aarch64", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}[goarch]
}

// each runs fn on hosts, in parallel up to Parallel (serial: one by one,
// stopping at the first failure), recording each host's error and time.
func (a *applier) each(ctx context.Context, step string, hosts []*hostRun, serial bool, fn func(context.Context, *hostRun) error) error {
	if len(hosts) == 0 {
		return nil
	}
	run := func(ctx context.Context, hr *hostRun) error {
		t := time.Now()
		err := fn(ctx, hr)
		hr.took(time.Since(t))
		if err != nil {
			hr.mu.Lock()
			hr.res.Err = err
			hr.mu.Unlock()
		}
		return err
	}
	if serial {
		for _, hr := range hosts {
			if err := run(ctx, hr); err != nil {
				return fmt.Errorf("%s: %w", hr.h.Name, err)
			}
		}
		return nil
	}
	ts := make([]transport.Host, len(hosts))
	for i, hr := range hosts {
		ts[i] = hr.rec
	}
	var n, mu = 0, sync.Mutex{}
	progress := len(hosts) >= 4
	return transport.Each(ctx, ts, a.o.Parallel, func(ctx context.Context, t transport.Host) error {
		err := run(ctx, a.byT[t])
		if progress && err == nil {
			mu.Lock()
			n++
			a.p.line(step, "", "%d/%d hosts done", n, len(hosts))
			mu.Unlock()
		}
		return err
	})
}

// connectAndProbe is the connect and facts steps in one pass: each host
// is probed (read-only) as soon as its connection is up, in the same slot
// of --parallel, so that the steps do not wait for each other's slowest
// host. A host that cannot be reached fails the connect step, one whose
// facts do not fit (architecture, disk space) the facts step; either way
// the run stops before anything is uploaded. It returns how long the
// connections took (to the last one) and the facts after them.
func (a *applier) connectAndProbe(ctx context.Context, probe bool) (connected, probed time.Duration, step string, err error) {
	start := time.Now()
	want := a.binaryWant()
	var connErrs, factErrs []error
	var mu sync.Mutex
	var lastConnected time.Time
	n, progress := 0, probe && len(a.hosts) >= 4
	sem := make(chan struct{}, a.o.Parallel)
	var wg sync.WaitGroup
	for _, hr := range a.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t := time.Now()
			h, err := a.o.Connect(ctx, a.inv, hr.idx)
			hr.took(time.Since(t))
			if err != nil {
				hr.res.Err = err
				mu.Lock()
				connErrs = append(connErrs, fmt.Errorf("%s: %w", hr.h.Name, err))
				mu.Unlock()
				return
			}
			hr.rec = &recorder{Host: h, p: a.p, name: hr.h.Name}
			hr.rec.calls.Add(1) // the connection itself
			a.p.logf("%s: connected (%s)", hr.h.Name, time.Since(t).Round(time.Millisecond))
			mu.Lock()
			if now := time.Now(); now.After(lastConnected) {
				lastConnected = now
			}
			mu.Unlock()
			if !probe {
				return
			}
			t = time.Now()
			err = a.probeHost(ctx, hr, want)
			hr.took(time.Since(t))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				hr.res.Err = err
				factErrs = append(factErrs, fmt.Errorf("%s: %w", hr.h.Name, err))
				return
			}
			if progress {
				n++
				a.p.line(StepFacts, "", "%d/%d hosts done", n, len(a.hosts))
			}
		}()
	}
	wg.Wait()
	for _, hr := range a.hosts {
		if hr.rec != nil {
			a.byT[hr.rec] = hr
		}
	}
	if lastConnected.IsZero() {
		lastConnected = time.Now()
	}
	connected, probed = lastConnected.Sub(start), time.Since(lastConnected)
	if len(connErrs) > 0 {
		return connected, probed, StepConnect, errors.Join(append(connErrs, factErrs...)...)
	}
	a.p.line(StepConnect, "", "%d hosts connected", len(a.hosts))
	if len(factErrs) > 0 {
		return connected, probed, StepFacts, errors.Join(factErrs...)
	}
	return connected, probed, "", nil
}

// probeScript prints the host's facts as key=value lines: one round trip,
// shell builtins but for uname, and df when something is to be uploaded
// (the free space it needs). The kubeboot binary and the bundle count as
// there when their ".ok" marker (written after a verified upload) holds
// the checksum their path names.
const probeScript = `echo "arch=$(uname -m)"
new=
{ [ -f "$1" ] && read -r s <"$1.ok" && echo "bin=$s"; } || new=1
[ -z "$2" ] || { [ -f "$2" ] && read -r s <"$2.ok" && echo "bundle=$s"; } || new=1
[ /usr/local/bin/kubeboot -ef "$1" ] && echo "link=$1"
for f in kubelet.conf bootstrap-kubelet.conf admin.conf manifests/kube-apiserver.yaml; do [ -e "/etc/kubernetes/$f" ] && echo "has=$f"; done
[ -z "$new" ] || {
` + probeSpaceScript + `
}
true`

func init() { transport.RegisterReadOnlyScript(probeScript) }

// verifyScript checks an uploaded file against its checksum on the host
// and writes the ".ok" marker the probe reads.
const verifyScript = `echo "$1  $2" | sha256sum -c --quiet && echo "$1" >"$2.ok.tmp" && mv "$2.ok.tmp" "$2.ok"`

// probeHost runs the one probe on a connected host and checks its facts
// against what this run sends.
func (a *applier) probeHost(ctx context.Context, hr *hostRun, want string) error {
	b, remote := a.bundleFor(hr.h), ""
	if b != nil {
		remote = b.remote
	}
	r, err := hr.rec.Run(ctx, transport.Cmd{Args: []string{"sh", "-c", probeScript, "sh", a.binaryPath, remote}, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	f := facts{has: map[string]bool{}, free: map[string]diskFree{}}
	for _, l := range strings.Split(string(r.Stdout), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "arch":
			f.arch = v
		case "bin":
			f.binarySum = v
		case "bundle":
			f.bundleSum = v
		case "link":
			f.link = v
		case "has":
			f.has[v] = true
		case "free":
			if dir, df, ok := parseFree(v); ok {
				f.free[dir] = df
			}
		}
	}
	hr.facts = f
	if want != "" && f.arch != want {
		return fmt.Errorf("the host is %s, the kubeboot binary is built for %s: pass --kubeboot-binary with a %s build", f.arch, want, f.arch)
	}
	if a.bundleArch != "" && bundle.UnameArch(f.arch) != a.bundleArch {
		return fmt.Errorf("the host is %s, the bundle's binaries are %s: build a bundle for %s", f.arch, a.bundleArch, bundle.UnameArch(f.arch))
	}
	var bm *bundle.Manifest
	var bsize int64
	if b != nil {
		bm, bsize = b.m, b.size
	}
	needs := spaceNeeds(bm, bsize, b.missingOn(f), a.binarySize, f.binarySum != a.binarySum)
	if err := checkSpace(f.free, needs); err != nil {
		return err
	}
	state := "new"
	if f.setUp() {
		state = "set up before"
	}
	a.p.line(StepFacts, hr.h.Name, "%s, %s", f.arch, state)
	return nil
}

// binaryWant is the architecture the hosts must have for the kubeboot
// binary apply sends.
func (a *applier) binaryWant() string {
	if want := binaryArch(a.binary); want != "" {
		return want
	}
	return unameArch(runtime.GOARCH)
}

func (a *applier) upload(ctx context.Context) error {
	return a.each(ctx, StepUpload, a.hosts, false, func(ctx context.Context, hr *hostRun) error {
		sent := false
		if hr.facts.binarySum != a.binarySum {
			a.p.line(StepUpload, hr.h.Name, "kubeboot (%s) to %s", mib(a.binarySize), a.binaryPath)
			if err := hr.rec.upload(ctx, a.binary, a.binaryPath, 0o755, a.binarySize); err != nil {
				return fmt.Errorf("upload kubeboot: %w", err)
			}
			if _, err := hr.rec.Run(ctx, transport.Cmd{Args: []string{"sh", "-c", verifyScript, "sh", a.binarySum, a.binaryPath}}); err != nil {
				return fmt.Errorf("kubeboot arrived damaged (checksum): %w", err)
			}
			hr.did("kubeboot uploaded")
			sent = true
		}
		if hr.facts.link != a.binaryPath {
			if _, err := hr.rec.Run(ctx, transport.Cmd{Args: []string{"ln", "-sfn", a.binaryPath, remoteBinaryLink}}); err != nil {
				return err
			}
		}
		if b := a.bundleFor(hr.h); b.missingOn(hr.facts) {
			a.p.line(StepUpload, hr.h.Name, "%s (%s) to %s", b.what(), mib(b.size), b.remote)
			if err := hr.rec.upload(ctx, b.local, b.remote, 0o644, b.size); err != nil {
				return fmt.Errorf("upload the bundle: %w", err)
			}
			// Verified once on the host; the marker spares later runs a
			// checksum of the whole bundle.
			if _, err := hr.rec.Run(ctx, transport.Cmd{Args: []string{"sh", "-c", verifyScript, "sh", b.sum, b.remote}}); err != nil {
				return fmt.Errorf("the bundle arrived damaged (checksum): %w", err)
			}
			hr.did("bundle uploaded")
			sent = true
		}
		if !sent {
			a.p.line(StepUpload, hr.h.Name, "kubeboot and bundle already there")
		}
		return nil
	})
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// runKubeboot runs the kubeboot binary on the host with cfg on stdin,
// streaming its output under the step and host.
func (a *applier) runKubeboot(ctx context.Context, step string, hr *hostRun, cfg []byte, args ...string) error {
	_, err := a.runKubebootCounting(ctx, step, hr, cfg, args...)
	return err
}

// runKubebootCounting is runKubeboot, saying how many of the output's lines
// report a change on the host.
func (a *applier) runKubebootCounting(ctx context.Context, step string, hr *hostRun, cfg []byte, args ...string) (int, error) {
	w := &lineWriter{p: a.p, step: step, host: hr.h.Name}
	a.p.line(step, hr.h.Name, "kubeboot %s", strings.Join(args, " "))
	var in io.Reader
	if cfg != nil {
		in = bytes.NewReader(cfg)
	}
	_, err := hr.rec.Run(ctx, transport.Cmd{Args: append([]string{a.binaryPath}, args...), Stdin: in, Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		var xe *transport.ExitError
		if errors.As(err, &xe) {
			last := strings.TrimSpace(a.p.redact(w.lastLines()))
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:]
			}
			if xe.ExitCode == -1 {
				// No exit status: the connection or the server ended the
				// session (transport.SSH says why in Stderr), not kubeboot.
				why := strings.TrimSpace(a.p.redact(xe.Stderr))
				if i := strings.LastIndexByte(why, '\n'); i >= 0 {
					why = why[i+1:]
				}
				if why == "" {
					why = "the session ended without an exit status"
				}
				return w.changes, fmt.Errorf("kubeboot %s did not finish: %s; its last line: %s (the whole output is above and in the log)", args[0], why, last)
			}
			return w.changes, fmt.Errorf("kubeboot %s exited with %d: %s (the whole output is above and in the log)", args[0], xe.ExitCode, last)
		}
		return w.changes, err
	}
	return w.changes, nil
}

// changed records what a kubeboot step changed on the host, if anything.
func (hr *hostRun) changed(step string, n int) {
	switch {
	case n == 1:
		hr.did("%s: 1 change", step)
	case n > 1:
		hr.did("%s: %d changes", step, n)
	}
}

func roleOf(h *inventory.Host) string {
	if h.IsControlPlane() {
		return "control-plane"
	}
	return "worker"
}

func (a *applier) preflight(ctx context.Context) error {
	var todo []*hostRun
	for _, hr := range a.hosts {
		if hr.facts.setUp() {
			a.p.line(StepPreflight, hr.h.Name, "set up before: its own init or join checks it again")
			continue
		}
		todo = append(todo, hr)
	}
	return a.each(ctx, StepPreflight, todo, false, func(ctx context.Context, hr *hostRun) error {
		cfg, err := nodeConfigYAML(a.inv, hr.h, "", Secrets{})
		if err != nil {
			return err
		}
		args := []string{"preflight", "--config", "-", "--before-prepare"}
		if hr.h.IsControlPlane() {
			args = append(args, "--control-plane")
		}
		return a.runKubeboot(ctx, StepPreflight, hr, cfg, args...)
	})
}

func (a *applier) prepare(ctx context.Context) error {
	return a.each(ctx, StepPrepare, a.hosts, false, func(ctx context.Context, hr *hostRun) error {
		cfg, err := nodeConfigYAML(a.inv, hr.h, "", Secrets{})
		if err != nil {
			return err
		}
		args := []string{"init", "phase", "prepare", "--config", "-"}
		if b := a.bundleFor(hr.h); b != nil {
			args = append(args, "--bundle", b.remote)
		}
		n, err := a.runKubebootCounting(ctx, StepPrepare, hr, cfg, args...)
		hr.changed(StepPrepare, n)
		return err
	})
}

func (a *applier) first() *hostRun {
	for _, hr := range a.hosts {
		if hr.h.IsControlPlane() {
			return hr
		}
	}
	return nil
}

func (a *applier) bindPort() int { return a.inv.BindPort() }

func (a *applier) init(ctx context.Context) error {
	cp := a.first()
	// The token: the one a converged cluster already has, else a new one;
	// the certificate key only when control planes are still to join.
	if a.o.Secrets != nil {
		a.sec = *a.o.Secrets
	}
	if a.sec.Token == "" && cp.facts.has["admin.conf"] {
		if api, err := a.o.NewAPI(ctx, cp.rec, a.bindPort()); err == nil {
			a.api = api
			if tok, err := api.ReusableToken(ctx); err == nil && tok != "" {
				a.sec.Token = tok
			}
		}
	}
	if a.sec.Token == "" {
		t, err := bootstraptoken.Generate()
		if err != nil {
			return err
		}
		a.sec.Token = t.String()
	}
	if a.sec.CertificateKey == "" && len(a.inv.ControlPlanes()) > 1 && a.controlPlanesToJoin(ctx) {
		k, err := copycerts.CreateCertificateKey()
		if err != nil {
			return err
		}
		a.sec.CertificateKey = k
	}
	a.p.addSecret(a.sec.Token, a.sec.CertificateKey)
	if tid, _, ok := strings.Cut(a.sec.Token, "."); ok {
		_ = tid // the token's ID is public; only its secret part is hidden
	}
	err := a.each(ctx, StepInit, []*hostRun{cp}, true, func(ctx context.Context, hr *hostRun) error {
		cfg, err := nodeConfigYAML(a.inv, hr.h, StepInit, a.sec)
		if err != nil {
			return err
		}
		n, err := a.runKubebootCounting(ctx, StepInit, hr, cfg, "init", "--config", "-", "--skip-phases", "prepare", "--skip-token-print", "--skip-certificate-key-print")
		if !hr.facts.setUp() && err == nil {
			hr.did("initialized")
		} else {
			hr.changed(StepInit, n)
		}
		if err != nil {
			return err
		}
		ca, err := hr.rec.ReadFile(ctx, path.Join(a.inv.CertificatesDir, "ca.crt"))
		if err != nil {
			return fmt.Errorf("read the cluster CA: %w", err)
		}
		cert, err := certs.ParseCert(ca)
		if err != nil {
			return fmt.Errorf("the cluster CA: %w", err)
		}
		a.sec.CAPin = certs.CAPublicKeyHash(cert)
		a.p.line(StepInit, hr.h.Name, "cluster CA pinned: %s", a.sec.CAPin)
		return nil
	})
	if err != nil {
		return err
	}
	if a.api == nil {
		api, err := a.o.NewAPI(ctx, cp.rec, a.bindPort())
		if err != nil {
			cp.res.Err = fmt.Errorf("reach the API server through %s: %w", cp.h.Name, err)
			return cp.res.Err
		}
		a.api = api
	}
	nodes, err := a.api.Nodes(ctx)
	if err != nil {
		cp.res.Err = err
		return err
	}
	a.nodes = nodes
	if lb := a.inv.LoadBalancer; lb != nil && lb.Kind == inventory.LBExternal {
		// The user's load balancer must answer before anything joins
		// through it.
		if err := a.checkEndpoint(ctx, cp); err != nil {
			cp.res.Err = err
			return err
		}
	}
	return nil
}

// controlPlanesToJoin says whether a control plane other than the first is
// not a Node yet (a fresh cluster: all of them).
func (a *applier) controlPlanesToJoin(ctx context.Context) bool {
	if a.api == nil {
		return true
	}
	nodes, err := a.api.Nodes(ctx)
	if err != nil {
		return true
	}
	for _, h := range a.inv.ControlPlanes()[1:] {
		if _, ok := nodes[h.Name]; !ok {
			return true
		}
	}
	return false
}

func (a *applier) join(ctx context.Context, step string, hosts []*hostRun, serial bool) error {
	var todo []*hostRun
	for _, hr := range hosts {
		ready, isNode := a.nodes[hr.h.Name]
		// A Ready Node has finished its join; one that is not Ready yet
		// (killed in the middle, rebooted) joins again: join reuses what
		// it finds.
		if isNode && ready {
			a.p.line(step, hr.h.Name, "already a Ready Node: nothing to do")
			continue
		}
		todo = append(todo, hr)
	}
	return a.each(ctx, step, todo, serial, func(ctx context.Context, hr *hostRun) error {
		cfg, err := nodeConfigYAML(a.inv, hr.h, step, a.sec)
		if err != nil {
			return err
		}
		if err := a.runKubeboot(ctx, step, hr, cfg, "join", "--config", "-", "--skip-phases", "prepare"); err != nil {
			return err
		}
		hr.did("joined")
		if step == StepJoinCP {
			// One at a time: the next joins once this one's etcd member
			// votes and its API server is behind the load balancer.
			return a.waitControlPlaneSettled(ctx, hr, a.controlPlanesUpTo(hr))
		}
		return nil
	})
}

// controlPlanesUpTo are the control planes in the file's order up to and
// including hr: the ones joined once hr has.
func (a *applier) controlPlanesUpTo(hr *hostRun) []*hostRun {
	var out []*hostRun
	for _, c := range a.hosts {
		if c.h.IsControlPlane() {
			out = append(out, c)
		}
		if c == hr {
			break
		}
	}
	return out
}

func (a *applier) joinControlPlanes(ctx context.Context) error {
	var cps []*hostRun
	for _, hr := range a.hosts {
		if hr.h.IsControlPlane() && hr != a.first() {
			cps = append(cps, hr)
		}
	}
	return a.join(ctx, StepJoinCP, cps, true)
}

func (a *applier) joinWorkers(ctx context.Context) error {
	var ws []*hostRun
	for _, hr := range a.hosts {
		if !hr.h.IsControlPlane() {
			ws = append(ws, hr)
		}
	}
	return a.join(ctx, StepJoin, ws, false)
}

func (a *applier) wait(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.o.ReadyTimeout)
	defer cancel()
	last := -1
	for {
		nodes, err := a.api.Nodes(ctx)
		if err == nil {
			a.nodes = nodes
			var notReady []string
			for _, hr := range a.hosts {
				if !nodes[hr.h.Name] {
					notReady = append(notReady, hr.h.Name)
				}
			}
			ready := len(a.hosts) - len(notReady)
			if ready != last {
				a.p.line(StepWait, "", "%d/%d Nodes Ready", ready, len(a.hosts))
				last = ready
			}
			if len(notReady) == 0 {
				return nil
			}
			if ctx.Err() != nil {
				for _, hr := range a.hosts {
					if !nodes[hr.h.Name] {
						hr.res.Err = fmt.Errorf("Node %s is not Ready after %s: look at `journalctl -u kubelet` on it", hr.h.Name, a.o.ReadyTimeout)
					}
				}
				return fmt.Errorf("%d Nodes not Ready: %s", len(notReady), strings.Join(notReady, ", "))
			}
		} else if ctx.Err() != nil {
			return fmt.Errorf("waiting for the Nodes: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(a.o.PollInterval):
		}
	}
}

func (a *applier) label(ctx context.Context) error {
	var errs []error
	for _, hr := range a.hosts {
		labels := map[string]string{ManagedLabel: "true"}
		for k, v := range hr.h.Labels {
			labels[k] = v
		}
		changed, err := a.api.EnsureLabels(ctx, hr.h.Name, labels)
		if err == nil {
			var rec bool
			rec, err = a.api.EnsureAnnotation(ctx, hr.h.Name, HostAnnotation, hostRecord(hr.h))
			if rec && !changed {
				a.p.line(StepLabel, hr.h.Name, "recorded its SSH settings in %s", HostAnnotation)
				hr.did("labelled")
			}
		}
		if err != nil {
			hr.res.Err = fmt.Errorf("label Node %s: %w", hr.h.Name, err)
			errs = append(errs, hr.res.Err)
			continue
		}
		keys := make([]string, 0, len(labels))
		for k, v := range labels {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		if changed {
			a.p.line(StepLabel, hr.h.Name, "labelled %s", strings.Join(keys, ","))
			hr.did("labelled")
		}
	}
	return errors.Join(errs...)
}

func (a *applier) kubeconfig(ctx context.Context) error {
	cp := a.first()
	data, err := cp.rec.ReadFile(ctx, inventory.AdminKubeconfig)
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", inventory.AdminKubeconfig, cp.h.Name, err)
	}
	if a.inv.LoadBalancer.OnWorkers() {
		// The cluster's endpoint is each node's loopback; this machine
		// reaches the first control plane.
		if data, err = withServer(data, "https://"+a.inv.Endpoint()); err != nil {
			return fmt.Errorf("%s on %s: %w", inventory.AdminKubeconfig, cp.h.Name, err)
		}
	}
	out := a.o.KubeconfigOut
	if cur, err := os.ReadFile(out); err == nil && bytes.Equal(cur, data) {
		a.p.line(StepKubeconfig, "", "%s is up to date (kubectl --kubeconfig %s get nodes)", out, out)
		return os.Chmod(out, 0o600)
	}
	if err := writePrivate(out, data); err != nil {
		return fmt.Errorf("--kubeconfig-out: %w", err)
	}
	a.p.line(StepKubeconfig, "", "wrote %s (0600, server %s): kubectl --kubeconfig %s get nodes", out, a.inv.Endpoint(), out)
	return nil
}

// withServer is a kubeconfig with every cluster's server replaced.
func withServer(data []byte, server string) ([]byte, error) {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, err
	}
	for _, c := range kc.Clusters {
		c.Server = server
	}
	return clientcmd.Write(*kc)
}

// writePrivate writes a 0600 file atomically: a temporary file beside it,
// renamed into place.
func writePrivate(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// WriteSummary prints one line per host: its result, what it did and its
// time, then the total.
func WriteSummary(w io.Writer, r *Result) {
	nw := 4
	for _, h := range r.Hosts {
		nw = max(nw, len(h.Name))
	}
	fmt.Fprintf(w, "\n%-*s  %-22s  %-11s  %8s  %6s  %s\n", nw, "HOST", "ROLES", "RESULT", "TIME", "CALLS", "WHAT CHANGED")
	for _, h := range r.Hosts {
		did := strings.Join(h.Did, ", ")
		if did == "" && h.Status == "ok" {
			did = "nothing: up to date"
		}
		fmt.Fprintf(w, "%-*s  %-22s  %-11s  %8s  %6d  %s\n", nw, h.Name, strings.Join(h.Roles, ","), h.Status, h.Took.Round(100*time.Millisecond), h.Calls, did)
	}
	var steps []string
	for _, s := range r.Steps {
		steps = append(steps, fmt.Sprintf("%s %s", s.Name, s.Took.Round(100*time.Millisecond)))
	}
	fmt.Fprintf(w, "\nTook %s: %s\n", r.Took.Round(100*time.Millisecond), strings.Join(steps, ", "))
}
