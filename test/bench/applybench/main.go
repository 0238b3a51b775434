// Command applybench measures kubeboot apply's SSH fan-out against the
// testbed's network-namespace hosts (see ../apply-fanout.sh, which drives it):
//
//	applybench floor   -f cluster.yaml -json out.json   bare x/crypto/ssh client: connect + `true` on every host
//	applybench apply   -f cluster.yaml -binary B -json out.json   cluster.Apply, StopAfter: upload
//	applybench latency -f cluster.yaml -binary B -json out.json   both of the above through toxiproxy
//	applybench report  DIR   the markdown tables of the JSON files in DIR
//	applybench mkbundle -o B.tar -mib 10   a valid bundle of about 10 MiB to upload
//
// Every measuring subcommand writes one JSON object (a record) and reports
// its own peak RSS (getrusage(RUSAGE_SELF).Maxrss), so run each as its own
// process.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kubeboot/kubeboot/cluster"
)

// record is what one measurement writes.
type record struct {
	Kind     string  `json:"kind"`  // floor, apply
	Label    string  `json:"label"` // first, rerun, floor, or latency-…
	N        int     `json:"n"`
	Parallel int     `json:"parallel"`
	WallMS   float64 `json:"wallMs"`
	// OK and Failed count the hosts.
	OK     int      `json:"ok"`
	Failed int      `json:"failed"`
	Errors []string `json:"errors,omitempty"`
	// Apply only.
	ApplyErr  string             `json:"applyErr,omitempty"`
	CallsMin  int64              `json:"callsMin,omitempty"`
	CallsMax  int64              `json:"callsMax,omitempty"`
	CallsAvg  float64            `json:"callsAvg,omitempty"`
	SentTotal int64              `json:"sentTotal"`
	SentMax   int64              `json:"sentMax"`
	Uploaded  int                `json:"uploaded"` // hosts that got the binary
	StepsMS   map[string]float64 `json:"stepsMs,omitempty"`
	StepOrder []string           `json:"stepOrder,omitempty"`
	HostMaxMS float64            `json:"hostMaxMs,omitempty"`
	// MaxRSSKiB is getrusage(RUSAGE_SELF).Maxrss at the end.
	MaxRSSKiB int64 `json:"maxRssKiB"`
	// Load is /proc/loadavg before the run (the 1-minute figure lags: it
	// mostly shows the previous measurement); CPUBusyPct the machine's busy
	// share of all CPUs during the measured interval (the testbed's sshds run
	// on the same cores); ProcCPUMS this process's user+system CPU time.
	Load       string  `json:"load"`
	CPUBusyPct float64 `json:"cpuBusyPct"`
	ProcCPUMS  float64 `json:"procCpuMs"`
	// Latency runs: the toxic on each way.
	LatencyMS int `json:"latencyMs,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "floor":
		err = cmdFloor(ctx, os.Args[2:])
	case "apply":
		err = cmdApply(ctx, os.Args[2:])
	case "latency":
		err = cmdLatency(ctx, os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	case "mkbundle":
		err = cmdMkbundle(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "applybench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: applybench floor|apply|latency|report [flags]")
	os.Exit(2)
}

func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Maxrss // KiB on Linux
}

// cpuTimes is /proc/stat's aggregate busy and total jiffies.
func cpuTimes() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice are inside user and nice
			break
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// meter samples the machine's CPU at the start of a measurement.
type meter struct{ busy, total uint64 }

func startMeter() meter { b, t := cpuTimes(); return meter{b, t} }

// stop fills r's CPU figures.
func (m meter) stop(r *record) {
	b, t := cpuTimes()
	if t > m.total {
		r.CPUBusyPct = 100 * float64(b-m.busy) / float64(t-m.total)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.ProcCPUMS = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func writeJSON(path string, r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	if path == "" {
		return nil
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ---- floor: a bare golang.org/x/crypto/ssh client ----

type target struct {
	name, addr string // addr: host:port
}

// targets are the inventory's hosts, with its key and known_hosts file (the
// first host's: the benchmark's inventories use one for all).
func targets(inv *cluster.Inventory) ([]target, string, string, error) {
	d := &cluster.SSHDialer{}
	var ts []target
	var key, kh string
	for i := range inv.Hosts {
		c, err := d.Config(inv, i)
		if err != nil {
			return nil, "", "", err
		}
		port := c.Port
		if port == 0 {
			port = 22
		}
		ts = append(ts, target{name: c.Name, addr: fmt.Sprintf("%s:%d", c.Address, port)})
		if i == 0 {
			key, kh = c.KeyFile, c.KnownHostsFile
		}
	}
	return ts, key, kh, nil
}

// floor connects to every target, at most parallel at a time, runs `true`
// and closes: the least any SSH fan-out must do. It verifies host keys
// against knownHostsFile as kubeboot does.
func floor(ctx context.Context, ts []target, keyFile, knownHostsFile string, parallel int) (time.Duration, []error, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return 0, nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	hk, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return 0, nil, err
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk,
		Timeout:         10 * time.Second,
	}
	one := func(t target) error {
		c, err := ssh.Dial("tcp", t.addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Run("true")
	}
	errs := make([]error, len(ts))
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := one(ts[i]); err != nil {
					errs[i] = fmt.Errorf("%s (%s): %w", ts[i].name, ts[i].addr, err)
				}
			}
		}()
	}
feed:
	for i := range ts {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	var failed []error
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	return took, failed, ctx.Err()
}

func floorRecord(label string, n, parallel int, took time.Duration, failed []error) *record {
	r := &record{Kind: "floor", Label: label, N: n, Parallel: parallel, WallMS: ms(took), OK: n - len(failed), Failed: len(failed)}
	r.Errors = firstErrors(failed, 10)
	return r
}

func cmdFloor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	file := fs.String("f", "", "the cluster file (hosts, ssh.keyFile, ssh.knownHostsFile)")
	parallel := fs.Int("parallel", 20, "connections at once")
	out := fs.String("json", "", "write the record here too")
	label := fs.String("label", "floor", "the record's label")
	fs.Parse(args)
	inv, _, err := cluster.Load(*file)
	if err != nil {
		return err
	}
	ts, key, kh, err := targets(inv)
	if err != nil {
		return err
	}
	load, m := loadavg(), startMeter()
	took, failed, err := floor(ctx, ts, key, kh, *parallel)
	if err != nil {
		return err
	}
	r := floorRecord(*label, len(ts), *parallel, took, failed)
	m.stop(r)
	r.Load = load
	r.MaxRSSKiB = maxRSS()
	for _, e := range r.Errors {
		fmt.Fprintln(os.Stderr, "floor:", e)
	}
	return writeJSON(*out, r)
}

// ---- apply: cluster.Apply up to the upload step ----

func runApply(ctx context.Context, inv *cluster.Inventory, binary string, parallel int, out, log io.Writer, label, stopAfter, cacheDir string) *record {
	d := &cluster.SSHDialer{}
	start := time.Now()
	res, err := cluster.Apply(ctx, inv, cluster.Options{
		Parallel:  parallel,
		Binary:    binary,
		StopAfter: stopAfter,
		Out:       out,
		Log:       log,
		Connect:   d.Connect,
		CacheDir:  cacheDir,
	})
	took := time.Since(start)
	r := &record{Kind: "apply", Label: label, N: len(inv.Hosts), Parallel: parallel, WallMS: ms(took), StepsMS: map[string]float64{}}
	if err != nil {
		r.ApplyErr = err.Error()
	}
	if res == nil {
		return r
	}
	var failed []error
	r.CallsMin = -1
	for _, h := range res.Hosts {
		if h.Status == "ok" {
			r.OK++
		} else {
			r.Failed++
			if h.Err != nil {
				failed = append(failed, fmt.Errorf("%s: %s: %w", h.Name, h.Status, h.Err))
			} else {
				failed = append(failed, fmt.Errorf("%s: %s", h.Name, h.Status))
			}
		}
		if r.CallsMin < 0 || h.Calls < r.CallsMin {
			r.CallsMin = h.Calls
		}
		r.CallsMax = max(r.CallsMax, h.Calls)
		r.CallsAvg += float64(h.Calls)
		r.SentTotal += h.Sent
		r.SentMax = max(r.SentMax, h.Sent)
		r.HostMaxMS = max(r.HostMaxMS, ms(h.Took))
		for _, did := range h.Did {
			if did == "kubeboot uploaded" || did == "bundle uploaded" {
				r.Uploaded++
			}
		}
	}
	if len(res.Hosts) > 0 {
		r.CallsAvg /= float64(len(res.Hosts))
	}
	for _, s := range res.Steps {
		r.StepsMS[s.Name] = ms(s.Took)
		r.StepOrder = append(r.StepOrder, s.Name)
	}
	r.Errors = firstErrors(failed, 10)
	return r
}

func cmdApply(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apply", flag.ExitOnError)
	file := fs.String("f", "", "the cluster file")
	binary := fs.String("binary", "", "the file apply copies to each host as the kubeboot binary")
	parallel := fs.Int("parallel", 20, "Options.Parallel")
	out := fs.String("json", "", "write the record here too")
	label := fs.String("label", "apply", "the record's label (first, rerun)")
	outLog := fs.String("out", "", "apply's [step] lines (default: stderr)")
	debugLog := fs.String("log", "", "apply's debug log (every call and its time)")
	stopAfter := fs.String("stop-after", cluster.StepUpload, "the last step: upload, or preflight (kubeboot preflight on every host)")
	cacheDir := fs.String("cache", "", "Options.CacheDir (the bundle's worker part)")
	fs.Parse(args)
	if *binary == "" {
		return errors.New("-binary: required")
	}
	inv, _, err := cluster.Load(*file)
	if err != nil {
		return err
	}
	var o, l io.Writer = os.Stderr, nil
	if *outLog != "" {
		f, err := os.Create(*outLog)
		if err != nil {
			return err
		}
		defer f.Close()
		o = f
	}
	if *debugLog != "" {
		f, err := os.Create(*debugLog)
		if err != nil {
			return err
		}
		defer f.Close()
		l = f
	}
	load, m := loadavg(), startMeter()
	r := runApply(ctx, inv, *binary, *parallel, o, l, *label, *stopAfter, *cacheDir)
	m.stop(r)
	r.Load = load
	r.MaxRSSKiB = maxRSS()
	if r.ApplyErr != "" {
		fmt.Fprintln(os.Stderr, "apply error:", r.ApplyErr)
	}
	return writeJSON(*out, r)
}

// ---- helpers ----

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// firstErrors is up to n of errs' messages, then how many more.
func firstErrors(errs []error, n int) []string {
	var out []string
	for i, e := range errs {
		if i == n {
			out = append(out, fmt.Sprintf("… and %d more", len(errs)-n))
			break
		}
		out = append(out, e.Error())
	}
	return out
}
