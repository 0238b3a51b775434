// Package cluster is the layer above the phases: it drives a whole cluster
// from an inventory (kubeboot plan, kubeboot apply). It never runs a phase
// itself. On every host it runs the kubeboot binary (`kubeboot preflight`,
// `kubeboot init phase prepare`, `kubeboot init`, `kubeboot join`) with the
// host's own configuration on stdin, over one transport.Host per host (SSH in
// practice), and talks to the API server through a control plane's
// connection. Each step runs over its set of hosts with transport.Each;
// a step that fails on any host stops the run before the next one.
package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
)

// The steps of kubeboot apply, in order.
const (
	StepConnect      = "connect"
	StepFacts        = "facts"
	StepUpload       = "upload"
	StepPreflight    = "preflight"
	StepPrepare      = "prepare"
	StepInit         = "init"
	StepJoinCP       = "join-control-plane"
	StepJoin         = "join"
	StepWait         = "wait"
	StepLabel        = "label"
	StepPrune        = "prune"
	StepKubeconfig   = "kubeconfig"
	defaultParallel  = 20
	remoteBinDir     = "/usr/local/lib/kubeboot"
	remoteBundleDir  = "/var/lib/kubeboot/bundles"
	remoteBinaryLink = "/usr/local/bin/kubeboot"
)

// Step is one step of the plan: what runs, on which hosts, and how.
type Step struct {
	Name string `json:"name"`
	// Hosts are the inventory names of the hosts the step runs on.
	Hosts []string `json:"hosts"`
	// Order is "parallel" (up to --parallel hosts at once), "serial" (one
	// host after the other), "api" (asked of the API server through the
	// first control plane) or "local" (on the operator's machine).
	Order string `json:"order"`
	// Command is what runs on each host (the configuration goes on stdin).
	Command string `json:"command,omitempty"`
	// Does says what the step does and when it does nothing.
	Does string `json:"does"`
}

// Plan is what kubeboot apply will do, without connecting to any host.
type Plan struct {
	Cluster       string     `json:"cluster"`
	Endpoint      string     `json:"endpoint"`
	ControlPlanes []string   `json:"controlPlanes"`
	Workers       []string   `json:"workers"`
	Hosts         []PlanHost `json:"hosts"`
	Steps         []Step     `json:"steps"`
}

// PlanHost is one host of the plan and the steps that concern it.
type PlanHost struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	Roles   []string `json:"roles"`
	Via     string   `json:"via"` // user@address:port [via bastion]
	Steps   []string `json:"steps"`
}

// Inventory is a loaded cluster file: the cluster and where it came from.
type Inventory struct {
	*inventory.Cluster
	// Path is the file; Dir its folder, against which relative paths
	// (keys, the bundle) are read; Home is the operator's home ("~/").
	Path, Dir, Home string
}

// BindPort is the API server's port on the control planes.
func (inv *Inventory) BindPort() int {
	if p := inv.Node.BindPort; p != 0 {
		return p
	}
	return inventory.DefaultBindPort
}

// BundlePath is the bundle on the operator's machine, or "".
func (inv *Inventory) BundlePath() string {
	if inv.Bundle == "" {
		return ""
	}
	return expand(inv.Bundle, inv.Dir, inv.Home)
}

func expand(p, dir, home string) string {
	switch {
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(home, p[2:])
	case filepath.IsAbs(p):
		return p
	}
	return filepath.Join(dir, p)
}

// Endpoint is host:port of the API server every node joins: the
// controlPlaneEndpoint (port: the bind port), else the first control
// plane's node IP or address.
//
// With loadBalancer.kind local the cluster's endpoint is the loopback, each
// node's own; from outside the cluster it is the first control plane.
func (inv *Inventory) Endpoint() string {
	port := inv.BindPort()
	if ep := inv.ControlPlaneEndpoint; ep != "" && !inv.LoadBalancer.OnWorkers() {
		if _, _, err := net.SplitHostPort(ep); err == nil {
			return ep
		}
		return net.JoinHostPort(strings.Trim(ep, "[]"), strconv.Itoa(port))
	}
	cps := inv.ControlPlanes()
	if len(cps) == 0 {
		return ""
	}
	a := cps[0].NodeIP()
	if a == "" {
		a = cps[0].Address
	}
	return net.JoinHostPort(a, strconv.Itoa(port))
}

// NewPlan lays out what apply does for inv. It connects to nothing.
func NewPlan(inv *Inventory, parallel int) *Plan {
	if parallel <= 0 {
		parallel = defaultParallel
	}
	p := &Plan{Cluster: inv.ClusterName, Endpoint: inv.Endpoint()}
	var all []string
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		all = append(all, h.Name)
		s := inv.HostSSH(i, inv.Dir, inv.Home)
		via := fmt.Sprintf("%s@%s", s.User, net.JoinHostPort(h.Address, strconv.Itoa(s.Port)))
		if b := s.Bastion; b != nil {
			via += fmt.Sprintf(" via %s@%s", b.User, net.JoinHostPort(b.Address, strconv.Itoa(b.Port)))
		}
		if s.User != "root" {
			via += " (sudo " + s.Sudo.Mode + ")"
		}
		p.Hosts = append(p.Hosts, PlanHost{Name: h.Name, Address: h.Address, Roles: h.Roles, Via: via})
	}
	cps, workers := inv.ControlPlanes(), inv.Workers()
	for _, h := range cps {
		p.ControlPlanes = append(p.ControlPlanes, h.Name)
	}
	for _, h := range workers {
		p.Workers = append(p.Workers, h.Name)
	}
	bundle := ""
	if b := inv.BundlePath(); b != "" {
		bundle = " --bundle " + remoteBundleDir + "/<sha256>.tar"
	}
	par := func(n int) string { return fmt.Sprintf("parallel (%d at a time)", min(n, parallel)) }
	add := func(s Step) {
		if len(s.Hosts) > 0 {
			p.Steps = append(p.Steps, s)
		}
	}
	add(Step{Name: StepConnect, Hosts: all, Order: "parallel",
		Does: "open one SSH connection per host (through its bastion where set), verifying its key against known_hosts; " + par(len(all))})
	add(Step{Name: StepFacts, Hosts: all, Order: "parallel", Command: "sh -c <probe>",
		Does: "one read-only probe per host: architecture, the cached kubeboot and bundle checksums, whether it is already set up"})
	up := "copy the kubeboot binary to " + remoteBinDir + "/kubeboot-<sha256> where that checksum is not there yet"
	if bundle != "" {
		up += ", and the bundle (" + inv.Bundle + ") to " + remoteBundleDir + "/<sha256>.tar where it is missing"
		if len(workers) > 0 && len(cps) > 0 {
			up += " (to the hosts that are only workers its worker part, without the control-plane images: cut once on this machine and cached in ~/.cache/kubeboot/bundles)"
		}
	}
	add(Step{Name: StepUpload, Hosts: all, Order: "parallel", Does: up + "; nothing when both are there"})
	add(Step{Name: StepPreflight, Hosts: all, Order: "parallel", Command: "kubeboot preflight --config - --before-prepare [--control-plane]",
		Does: "the node checks on every host not set up yet, all reported together before anything changes"})
	add(Step{Name: StepPrepare, Hosts: all, Order: "parallel", Command: "kubeboot init phase prepare --config -" + bundle,
		Does: "kernel settings, swap, containerd, runc, CNI plugins, kubelet, kubectl and images; a host already prepared changes nothing"})
	if len(cps) > 0 {
		add(Step{Name: StepInit, Hosts: []string{cps[0].Name}, Order: "serial", Command: "kubeboot init --config - --skip-phases prepare",
			Does: "the first control plane; the bootstrap token (and the certificate key with more control planes) on stdin; a second run changes nothing"})
	}
	var joinCPs, joinWorkers []string
	for _, h := range cps[min(1, len(cps)):] {
		joinCPs = append(joinCPs, h.Name)
	}
	for _, h := range workers {
		joinWorkers = append(joinWorkers, h.Name)
	}
	add(Step{Name: StepJoinCP, Hosts: joinCPs, Order: "serial", Command: "kubeboot join --config - --skip-phases prepare",
		Does: "the other control planes one at a time (etcd quorum), pinned to the CA read from the first; a host that is already a Ready Node is skipped"})
	add(Step{Name: StepJoin, Hosts: joinWorkers, Order: "parallel", Command: "kubeboot join --config - --skip-phases prepare",
		Does: "the workers, " + par(len(joinWorkers)) + "; a host that is already a Ready Node is skipped"})
	add(Step{Name: StepWait, Hosts: all, Order: "api", Does: "wait until every host's Node is Ready (through the first control plane's SSH connection)"})
	add(Step{Name: StepLabel, Hosts: all, Order: "api", Does: "set the inventory's labels and " + ManagedLabel + "=true on each Node; nothing when they are set"})
	add(Step{Name: StepPrune, Order: "api", Does: "list the Nodes labelled " + ManagedLabel + " that are not in the file; with --prune drain, reset (over SSH to the Node's address) and delete each"})
	add(Step{Name: StepKubeconfig, Hosts: p.ControlPlanes[:min(1, len(cps))], Order: "local",
		Does: "write the admin kubeconfig (--kubeconfig-out, 0600), server " + p.Endpoint})
	add(Step{Name: StepCerts, Hosts: all, Order: "parallel", Command: "kubeboot certs check-expiration --config - -o json",
		Does: "read every host's certificates and warn about each that expires within 30 days"})
	for i := range p.Hosts {
		for _, s := range p.Steps {
			for _, n := range s.Hosts {
				if n == p.Hosts[i].Name {
					p.Hosts[i].Steps = append(p.Hosts[i].Steps, s.Name)
				}
			}
		}
	}
	return p
}

// WriteText prints the plan for a reader: the hosts with their steps, then
// the steps in order.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Cluster %q, API server %s: %d control plane(s) (%s), %d worker(s)", p.Cluster, p.Endpoint, len(p.ControlPlanes), strings.Join(p.ControlPlanes, ", "), len(p.Workers))
	if len(p.Workers) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(p.Workers, ", "))
	}
	b.WriteString("\n\nHosts:\n")
	nw := 0
	for _, h := range p.Hosts {
		nw = max(nw, len(h.Name))
	}
	for _, h := range p.Hosts {
		fmt.Fprintf(&b, "  %-*s  %-26s  %s\n      %s\n", nw, h.Name, strings.Join(h.Roles, ","), h.Via, strings.Join(h.Steps, " → "))
	}
	b.WriteString("\nSteps:\n")
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%2d. %s [%s] on %s\n", i+1, s.Name, s.Order, strings.Join(s.Hosts, ", "))
		if s.Command != "" {
			fmt.Fprintf(&b, "    runs: %s\n", s.Command)
		}
		fmt.Fprintf(&b, "    %s\n", s.Does)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the plan as indented JSON.
func (p *Plan) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(p)
}
