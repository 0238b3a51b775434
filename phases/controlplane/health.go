package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
)

// HealthChecker performs the HTTP GETs of wait-control-plane. The phases run
// on the node itself for now, so NewHTTPHealthChecker's plain HTTP client in
// the kubeboot process is enough; a transport that cannot reach the node's
// loopback (SSH) plugs in its own.
type HealthChecker interface {
	// Get fetches url without verifying TLS (as kubeadm's checks do) and
	// returns the status code and up to a few KiB of the body.
	Get(ctx context.Context, url string) (status int, body []byte, err error)
}

// NewHTTPHealthChecker returns a HealthChecker that uses an HTTP client of
// the kubeboot process, with no proxy and TLS verification off (the
// components serve self-signed or cluster-CA certificates; only their
// health is asked).
func NewHTTPHealthChecker() HealthChecker { return NewHTTPHealthCheckerVia(nil) }

// NewHTTPHealthCheckerVia is NewHTTPHealthChecker whose connections dial
// opens (an SSH connection's direct-tcpip, so that a node's loopback
// endpoints are reached from its side); nil dials directly.
func NewHTTPHealthCheckerVia(dial func(ctx context.Context, network, addr string) (net.Conn, error)) HealthChecker {
	return httpChecker{c: &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil,
			DialContext:     dial,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // health probes, as kubeadm's
			// Each probe its own channel: a kept one outlives a restart.
			DisableKeepAlives: dial != nil,
		},
	}}
}

type httpChecker struct{ c *http.Client }

func (h httpChecker) Get(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, b, nil
}

// healthCheckInterval is how often a health endpoint is asked again
// (kubeadm's KubernetesAPICallRetryInterval).
const healthCheckInterval = 500 * time.Millisecond

// kubeletHealthz is the kubelet's health endpoint as kubeboot configures it
// (healthzBindAddress 127.0.0.1, healthzPort 10248).
const KubeletHealthz = "http://127.0.0.1:10248/healthz"

// HealthCheck is one endpoint wait-control-plane polls.
type HealthCheck struct {
	Component string
	URL       string
}

// HealthChecks lists what wait-control-plane polls on a node with
// configuration cfg, in kubeadm v1.34's way (each component is checked
// directly): kube-apiserver /livez and /readyz on the advertise address and
// bind port, kube-controller-manager /healthz and kube-scheduler /livez on
// their --bind-address and --secure-port (127.0.0.1:10257, 127.0.0.1:10259),
// and a local etcd's /readyz on its metrics URL (http://127.0.0.1:2381).
// The controller-manager and scheduler bind 127.0.0.1 whatever the advertise
// address's family (their static pods' --bind-address, as kubeadm's); etcd's
// metrics listen on the loopback of the advertise address's family.
func HealthChecks(cfg *inventory.Cluster) []HealthCheck {
	adv := cfg.Node.AdvertiseAddress
	loop := "127.0.0.1"
	if a, err := netip.ParseAddr(adv); err == nil && !a.Unmap().Is4() {
		loop = "::1"
	}
	api := "https://" + net.JoinHostPort(adv, strconv.Itoa(cfg.Node.BindPort))
	component := func(args map[string]string, port int) string {
		host, p := "127.0.0.1", strconv.Itoa(port)
		switch v := args["bind-address"]; v {
		case "", "0.0.0.0":
		case "::":
			host = "::1"
		default:
			host = v
		}
		if v := args["secure-port"]; v != "" {
			p = v
		}
		return "https://" + net.JoinHostPort(host, p)
	}
	checks := []HealthCheck{
		{"kube-apiserver", api + "/livez"},
		{"kube-apiserver", api + "/readyz"},
	}
	if cfg.LoadBalancer.OnControlPlanes() {
		// kubeboot's own load balancer (haproxy and keepalived, started
		// with the API server) must carry the endpoint before anything
		// uses it: keepalived takes the VIP a few seconds after haproxy
		// answers.
		checks = append(checks, HealthCheck{"load balancer (controlPlaneEndpoint)", inventory.ControlPlaneEndpoint(cfg) + "/readyz"})
	}
	checks = append(checks, []HealthCheck{
		{"kube-controller-manager", component(cfg.ControllerManager.ExtraArgs, 10257) + "/healthz"},
		{"kube-scheduler", component(cfg.Scheduler.ExtraArgs, 10259) + "/livez"},
	}...)
	if cfg.Etcd.External == nil {
		metrics := "http://" + net.JoinHostPort(loop, "2381")
		if cfg.Etcd.Local != nil {
			if v := cfg.Etcd.Local.ExtraArgs["listen-metrics-urls"]; v != "" {
				first := strings.TrimSpace(strings.Split(v, ",")[0])
				if u, err := url.Parse(first); err == nil && u.Host != "" {
					h, p, err := net.SplitHostPort(u.Host)
					if err == nil && (h == "0.0.0.0" || h == "::" || h == "") {
						h = loop
					}
					if err == nil {
						metrics = u.Scheme + "://" + net.JoinHostPort(h, p)
					}
				}
			}
		}
		checks = append(checks, HealthCheck{"etcd", metrics + "/readyz"})
	}
	return checks
}

// HealthTimeout bounds each of Wait.ControlPlane's waits:
// timeouts.controlPlaneComponentHealthCheck (4m by default).
func HealthTimeout(cfg *inventory.Cluster) time.Duration {
	if t := cfg.Timeouts.ControlPlaneComponentHealthCheck.Duration; t > 0 {
		return t
	}
	return inventory.DefaultControlPlaneHealthTimeout
}

// Wait waits for a node's kubelet and control-plane components to answer
// their health endpoints, asking through Health and printing through Out.
type Wait struct {
	Health HealthChecker
	Out    *workflow.Printer
	// Clock measures how long each took (time.Now when nil).
	Clock func() time.Time
	// Host names the node in the messages.
	Host string
}

func (w Wait) now() time.Time {
	if w.Clock != nil {
		return w.Clock()
	}
	return time.Now()
}

// ControlPlane waits up to timeouts.controlPlaneComponentHealthCheck for the
// kubelet (when kubelet is set: systemd runs it) and then for every check of
// HealthChecks(cfg), all at once, and reports each.
func (w Wait) ControlPlane(ctx context.Context, cfg *inventory.Cluster, kubelet bool) error {
	timeout := HealthTimeout(cfg)
	checks := HealthChecks(cfg)
	hc := w.Health
	// The kubelet first, when kubeboot started it (kubeadm's kubelet-check),
	// with a wait of its own as kubeadm's (timeouts.kubeletHealthCheck there,
	// the same 4m): the control-plane components get their whole timeout
	// after it.
	if kubelet {
		w.Out.Printf("kubelet-check", "Waiting for a healthy kubelet at %s. This can take up to %s", KubeletHealthz, timeout)
		start := w.now()
		kctx, cancel := context.WithTimeout(ctx, timeout)
		err := pollHealthy(kctx, hc, KubeletHealthz)
		cancel()
		if err != nil {
			w.Out.Printf("kubelet-check", "The kubelet is not healthy after %s", w.now().Sub(start).Round(time.Millisecond))
			return fmt.Errorf("the kubelet on %s is not healthy after %s (%v); look at `systemctl status kubelet` and `journalctl -xeu kubelet`", w.Host, timeout, err)
		}
		w.Out.Printf("kubelet-check", "The kubelet is healthy after %s", w.now().Sub(start).Round(time.Millisecond))
	} else {
		w.Out.Printf("kubelet-check", "systemd is not PID 1 on %s: not checking the kubelet (kubeboot did not start it)", w.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := w.now()

	w.Out.Printf("control-plane-check", "Waiting for healthy control plane components. This can take up to %s", timeout)
	for _, c := range checks {
		w.Out.Printf("control-plane-check", "Checking %s at %s", c.Component, c.URL)
	}
	type result struct {
		check HealthCheck
		err   error
		after time.Duration
	}
	results := make([]result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pollHealthy(ctx, hc, c.URL)
			results[i] = result{c, err, w.now().Sub(start)}
		}()
	}
	wg.Wait()
	// In the order of the checks, so the output reads the same every time.
	for _, r := range results {
		if r.err != nil {
			w.Out.Printf("control-plane-check", "%s is not healthy after %s (%s)", r.check.Component, r.after.Round(time.Millisecond), r.check.URL)
		} else {
			w.Out.Printf("control-plane-check", "%s is healthy after %s (%s)", r.check.Component, r.after.Round(time.Millisecond), r.check.URL)
		}
	}
	var bad []string
	seen := map[string]bool{}
	var failed []string
	for _, r := range results {
		if r.err == nil {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s (%s: %v)", r.check.Component, r.check.URL, r.err))
		if !seen[r.check.Component] {
			seen[r.check.Component] = true
			failed = append(failed, r.check.Component)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(failed)
	crictl := "crictl --runtime-endpoint " + cfg.Node.CRISocket
	return fmt.Errorf("not healthy after %s on %s: %s; look at `systemctl status kubelet`, `journalctl -xeu kubelet`, `%s ps -a | grep kube | grep -v pause` and the failing container's log (`%s logs CONTAINERID`) for %s",
		timeout, w.Host, strings.Join(bad, ", "), crictl, crictl, strings.Join(failed, ", "))
}

// pollHealthy asks url every healthCheckInterval until it answers 200 or ctx
// ends; the error is the last answer.
func pollHealthy(ctx context.Context, hc HealthChecker, u string) error {
	var last error
	for {
		status, body, err := hc.Get(ctx, u)
		switch {
		case err != nil:
			last = err
		case status != http.StatusOK:
			last = fmt.Errorf("HTTP %d: %s", status, oneLine(body))
		default:
			return nil
		}
		t := time.NewTimer(healthCheckInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if last == nil || errors.Is(last, context.DeadlineExceeded) || errors.Is(last, context.Canceled) {
				last = fmt.Errorf("no answer")
			}
			return last
		case <-t.C:
		}
	}
}

// oneLine shortens a response body for an error message.
func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
