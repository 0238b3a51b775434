// Package preflight is kubeadm's pre-flight checks and kubeboot's own: the
// check framework (RunChecks, Report), the lists init, join and `kubeboot
// preflight` run (lists.go), and the checks (checks.go, ports.go,
// system.go). Checks see the host only through transport.Host, the
// configuration and the host's facts, so they run the same over SSH.
package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// Versions kubeboot checks against. kubeboot follows kubeadm v1.34: it
// deploys control planes from one minor back (v1.33) up to its own minor,
// and supports kubelets down to three minors back.
var (
	KubebootVersion        = version.MustParseSemantic(inventory.DefaultKubernetesVersion)
	minControlPlaneVersion = version.MustParseSemantic("1.33.0")
	minKubeletVersion      = version.MustParseSemantic("1.31.0")
)

// kubeadm's constants for the checks.
const (
	controlPlaneNumCPU        = 2
	controlPlaneMemMB         = 1700
	KubeletPort               = 10250
	KubeSchedulerPort         = 10259
	KubeControllerManagerPort = 10257
	EtcdListenClientPort      = 2379
	EtcdListenPeerPort        = 2380
	IPv4Forward               = "/proc/sys/net/ipv4/ip_forward"
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

// Error holds every fatal error of a pre-flight run. Its message is
// kubeadm's; errors.Is and errors.As see each check's error.
type Error struct {
	Failures []Failure
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("[preflight] Some fatal errors occurred:\n")
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\t[ERROR %s]: %v\n", f.Check, f.Err)
	}
	b.WriteString("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`")
	return b.String()
}

// Unwrap returns the checks' errors.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f.Err
	}
	return out
}

// NewError collects the fatal errors of results, or returns nil
// when there are none.
func NewError(results []CheckResult) *Error {
	var failures []Failure
	for _, r := range results {
		for _, err := range r.Errors {
			failures = append(failures, Failure{Check: r.Name, Err: err})
		}
	}
	if len(failures) == 0 {
		return nil
	}
	return &Error{Failures: failures}
}

// Report prints results and fails on the errors not ignored (a dry
// run only says that they would stop a real run).
func Report(out *workflow.Printer, results []CheckResult, dryRun bool) error {
	PrintResults(out, results)
	var slow []string
	for _, r := range results {
		if r.Took >= slowCheck {
			slow = append(slow, fmt.Sprintf("%s %s", r.Name, workflow.RoundDuration(r.Took)))
		}
	}
	if len(slow) > 0 {
		out.Printf("preflight", "Slow checks (look at the host's name resolution and load): %s", strings.Join(slow, ", "))
	}
	perr := NewError(results)
	if perr == nil {
		return nil
	}
	if dryRun {
		out.Printf("preflight", "%d fatal error(s) would stop a real run; dry run: not failing", len(perr.Failures))
		return nil
	}
	return perr
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
