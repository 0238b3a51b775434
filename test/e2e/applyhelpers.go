package e2e

// Pure helpers of TestApplyCluster (apply_test.go): the inventory file it
// writes, and what it reads in `kubeboot apply`'s output. Unit-tested by
// `go test ./test/e2e/`.

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// applyHost is one host of the scenario's inventory.
type applyHost struct {
	Name, Address string
	Roles         []string
	// User, when set, logs in as this user instead of the cluster's root;
	// SudoPasswordEnv then names the variable with its sudo password.
	User, SudoPasswordEnv string
	// Bastion, when set, is the jump host's address (root logs in there).
	Bastion string
	// Port, when set, is the SSH port; InternalAddress the node IP when
	// Address is not (a proxy in front of the host's sshd).
	Port            int
	InternalAddress string
}

// applyInventory is the scenario's cluster file.
type applyInventory struct {
	KubernetesVersion string
	Bundle            string
	KeyFile           string
	KnownHostsFile    string
	Hosts             []applyHost
}

// yamlString quotes s for YAML (a JSON string is a YAML string).
func yamlString(s string) string { return strconv.Quote(s) }

// YAML renders the inventory as kubeboot apply reads it (kind: Cluster
// with ssh and hosts).
func (inv applyInventory) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\n")
	fmt.Fprintf(&b, "kubernetesVersion: %s\n", inv.KubernetesVersion)
	fmt.Fprintf(&b, "bundle: %s\n", yamlString(inv.Bundle))
	fmt.Fprintf(&b, "ssh:\n  user: root\n  keyFile: %s\n  knownHostsFile: %s\n", yamlString(inv.KeyFile), yamlString(inv.KnownHostsFile))
	b.WriteString("hosts:\n")
	for _, h := range inv.Hosts {
		fmt.Fprintf(&b, "  - name: %s\n    address: %s\n", h.Name, h.Address)
		if h.Port != 0 {
			fmt.Fprintf(&b, "    port: %d\n", h.Port)
		}
		if h.InternalAddress != "" {
			fmt.Fprintf(&b, "    internalAddress: %s\n", h.InternalAddress)
		}
		fmt.Fprintf(&b, "    roles: [%s]\n", strings.Join(h.Roles, ", "))
		if h.User == "" && h.Bastion == "" {
			continue
		}
		b.WriteString("    ssh:\n")
		if h.User != "" {
			fmt.Fprintf(&b, "      user: %s\n", h.User)
		}
		if h.SudoPasswordEnv != "" {
			fmt.Fprintf(&b, "      sudo: {mode: password, passwordEnv: %s}\n", h.SudoPasswordEnv)
		}
		if h.Bastion != "" {
			fmt.Fprintf(&b, "      bastion: {address: %s, user: root}\n", h.Bastion)
		}
	}
	return b.String()
}

// applyLineRE is one of apply's progress lines: "[phase] host: message"
// or "[phase] message".
var applyLineRE = regexp.MustCompile(`^\[([a-z-]+)\] (?:([a-z0-9][a-z0-9-]*): )?(.*)$`)

// applyLine splits one of apply's lines; ok is false for other lines (the
// summary).
func applyLine(line string) (phase, host, msg string, ok bool) {
	m := applyLineRE.FindStringSubmatch(line)
	if m == nil {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}

// hostLines lists the messages apply printed for host in phase ("" for
// every phase), in order.
func hostLines(out, phase, host string) []string {
	var msgs []string
	for _, l := range strings.Split(out, "\n") {
		p, h, msg, ok := applyLine(l)
		if ok && h == host && (phase == "" || p == phase) {
			msgs = append(msgs, msg)
		}
	}
	return msgs
}

// hostPrepareActions lists, per host, the lines where kubeboot's prepare
// changed something on it (prepareActions on what apply relayed from the
// host: "[prepare] m1: [prepare] Installed ...").
func hostPrepareActions(out string) map[string][]string {
	acts := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		p, h, msg, ok := applyLine(l)
		if !ok || p != "prepare" || h == "" {
			continue
		}
		if a := prepareActions(msg); len(a) > 0 {
			acts[h] = append(acts[h], a...)
		}
	}
	return acts
}

// summaryRow is one host's line of apply's closing summary.
type summaryRow struct {
	Host, Roles, Result, Time, Calls, Changed string
}

var columnsRE = regexp.MustCompile(`\s{2,}`)

// parseSummary reads the per-host table apply prints at the end
// (HOST  ROLES  RESULT  TIME  CALLS  WHAT CHANGED), columns separated by at
// least two spaces. The last table in out wins.
func parseSummary(out string) map[string]summaryRow {
	var rows map[string]summaryRow
	in := false
	for _, l := range strings.Split(out, "\n") {
		f := columnsRE.Split(strings.TrimSpace(l), -1)
		switch {
		case len(f) >= 3 && f[0] == "HOST" && f[1] == "ROLES" && f[2] == "RESULT":
			rows, in = map[string]summaryRow{}, true
			continue
		case !in:
			continue
		case strings.TrimSpace(l) == "" || len(f) < 3:
			in = false
			continue
		}
		r := summaryRow{Host: f[0], Roles: f[1], Result: f[2]}
		if len(f) > 3 {
			r.Time = f[3]
		}
		if len(f) > 4 {
			r.Calls = f[4]
		}
		if len(f) > 5 {
			r.Changed = strings.Join(f[5:], "  ")
		}
		rows[r.Host] = r
	}
	return rows
}

// unchangedRE is how the summary says a host needed nothing.
var unchangedRE = regexp.MustCompile(`(?i)nothing|up to date|unchanged|no change`)

// saysUnchanged reports whether a summary row says the host was left as it was.
func (r summaryRow) saysUnchanged() bool {
	return r.Result == "ok" && unchangedRE.MatchString(r.Changed)
}

// stepTime is one step's duration from apply's "Took" line.
type stepTime struct {
	Name string
	Took time.Duration
}

var tookRE = regexp.MustCompile(`^Took (\S+): (.*)$`)

// parseTook reads apply's last line, "Took 1m2s: connect 1.2s, facts
// 0.1s, ...": the total and each step's time.
func parseTook(out string) (time.Duration, []stepTime, bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		m := tookRE.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		total, err := time.ParseDuration(m[1])
		if err != nil {
			continue
		}
		var steps []stepTime
		for _, s := range strings.Split(m[2], ", ") {
			name, d, ok := strings.Cut(strings.TrimSpace(s), " ")
			if !ok {
				continue
			}
			if dd, err := time.ParseDuration(d); err == nil {
				steps = append(steps, stepTime{name, dd})
			}
		}
		return total, steps, true
	}
	return 0, nil, false
}

var uploadRE = regexp.MustCompile(`^(.+?) \(([0-9.]+) (KiB|MiB|GiB|B)\) to (\S+)`)

// uploads lists, per host, what apply said it uploaded
// ("[upload] m1: bundle (312.4 MiB) to /var/lib/..."), with the sizes in
// bytes (as precise as apply printed them).
func uploads(out string) map[string]map[string]int64 {
	up := map[string]map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		p, h, msg, ok := applyLine(l)
		if !ok || p != "upload" || h == "" {
			continue
		}
		m := uploadRE.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		unit := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[3]]
		if up[h] == nil {
			up[h] = map[string]int64{}
		}
		up[h][m[1]] += int64(v * unit)
	}
	return up
}

// knownHostsHas reports whether an OpenSSH known_hosts file (plain,
// unhashed entries) pins key ("ssh-ed25519 AAAA...") for host (an address
// on port 22).
func knownHostsHas(data, host, key string) bool { return knownHostsHasPort(data, host, 22, key) }

// knownHostsName is how known_hosts names host on port: the address, or
// [address]:port for a port other than 22.
func knownHostsName(host string, port int) string {
	if port == 22 || port == 0 {
		return host
	}
	return fmt.Sprintf("[%s]:%d", host, port)
}

// knownHostsHasPort is knownHostsHas for an SSH server on port.
func knownHostsHasPort(data, host string, port int, key string) bool {
	name := knownHostsName(host, port)
	for _, l := range strings.Split(data, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "@") {
			continue
		}
		if f[1]+" "+f[2] != key {
			continue
		}
		for _, h := range strings.Split(f[0], ",") {
			if h == name || (port == 22 || port == 0) && h == "["+host+"]:22" {
				return true
			}
		}
	}
	return false
}

// readyLineRE is apply's "[wait] 3/3 Nodes Ready".
var readyLineRE = regexp.MustCompile(`^\[wait\] (\d+)/(\d+) Nodes Ready`)

// allReadyLine reports whether line is apply saying every Node is Ready.
func allReadyLine(line string) bool {
	m := readyLineRE.FindStringSubmatch(line)
	return m != nil && m[1] == m[2]
}

// failedOnRE is apply's line when a step fails: "[prepare] failed on 1 of
// 2 hosts (m2); nothing after prepare ran:".
var failedOnRE = regexp.MustCompile(`^\[([a-z-]+)\] failed on (\d+) of (\d+) hosts \(([^)]*)\); nothing after ([a-z-]+) ran`)

// parseFailure reads which step failed and on which hosts from apply's
// output (the last such line).
func parseFailure(out string) (step string, hosts []string, ok bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		m := failedOnRE.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil || m[1] != m[5] {
			continue
		}
		for _, h := range strings.Split(m[4], ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		return m[1], hosts, true
	}
	return "", nil, false
}

// phasesPrinted lists the phases of apply's progress lines in the order
// each first appears.
func phasesPrinted(out string) []string {
	var phases []string
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if p, _, _, ok := applyLine(l); ok && !seen[p] {
			seen[p] = true
			phases = append(phases, p)
		}
	}
	return phases
}

// lineMatch says whether line is the one a trigger waits for: it starts
// with prefix and holds contains ("" for any).
func lineMatch(line, prefix, contains string) bool {
	return strings.HasPrefix(line, prefix) && strings.Contains(line, contains)
}

// netDelta is what one machine's link carried during a measurement.
type netDelta struct {
	Name   string
	TX, RX int64 // to the machine, from it
}

// formatBytes writes n bytes in MiB with one decimal (KiB below 1 MiB).
func formatBytes(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// hostTime is how long a host's own kubeboot took for one of apply's
// steps, from its "[init] Done in 15.7s: ..." line.
type hostTime struct {
	Step, Host string
	Took       time.Duration
}

var doneRE = regexp.MustCompile(`^\[[a-z-]+\] Done in (\S+?):`)

// hostTimes lists the hosts' own "Done in" times apply relayed, in order.
func hostTimes(out string) []hostTime {
	var ts []hostTime
	for _, l := range strings.Split(out, "\n") {
		p, h, msg, ok := applyLine(l)
		if !ok || h == "" {
			continue
		}
		m := doneRE.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		if d, err := time.ParseDuration(m[1]); err == nil {
			ts = append(ts, hostTime{p, h, d})
		}
	}
	return ts
}

// workerPartProblems checks a run's output for the bundle's worker part:
// apply says it cut or found it, each worker got (or already had) it and
// prepared from it, and each control plane got the whole bundle. A host
// the run did not upload to (the bundle there already) is not checked.
func workerPartProblems(out string, controlPlanes, workers []string) []string {
	var bad []string
	if !strings.Contains(out, "[bundle] the workers get the worker part of the bundle") {
		bad = append(bad, "apply did not say the workers get the worker part")
	}
	for _, h := range workers {
		for _, l := range hostLines(out, "upload", h) {
			if strings.HasPrefix(l, "bundle") && !strings.HasPrefix(l, "bundle's worker part (") {
				bad = append(bad, h+" (a worker) got: "+l)
			}
		}
		used := false
		for _, l := range hostLines(out, "prepare", h) {
			used = used || strings.Contains(l, "Using bundle") && strings.Contains(l, ", the worker part,")
		}
		if !used {
			bad = append(bad, h+" (a worker) did not prepare from the worker part")
		}
	}
	for _, h := range controlPlanes {
		for _, l := range hostLines(out, "upload", h) {
			if strings.HasPrefix(l, "bundle's") {
				bad = append(bad, h+" (a control plane) got: "+l)
			}
		}
	}
	return bad
}
