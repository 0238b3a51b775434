package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/pki"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// StepCerts is apply's last step: every host's certificates read, a
// warning for each that expires within ExpiryWarning.
const StepCerts = "certs"

// ExpiryWarning is how close to its expiry a certificate makes apply warn.
const ExpiryWarning = 30 * 24 * time.Hour

// HostExpiration is one host's `certs check-expiration`.
type HostExpiration struct {
	Host  string   `json:"host"`
	Roles []string `json:"roles"`
	pki.ExpirationInfo
	// Error is why the host could not be read; the others still are.
	Error string `json:"error,omitempty"`
}

// certs runs `kubeboot certs check-expiration --config - -o json` on every host (one
// round trip each, the binary is there) and warns about what expires
// within ExpiryWarning. The cluster is up by now: a host whose
// certificates cannot be read gets a warning too, not a failed apply.
func (a *applier) certs(ctx context.Context) error {
	var mu sync.Mutex
	soon, unread, checked := 0, 0, 0
	_ = a.each(ctx, StepCerts, a.hosts, false, func(ctx context.Context, hr *hostRun) error {
		info, err := a.expiration(ctx, hr)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			unread++
			a.p.line(StepCerts, hr.h.Name, "warning: cannot check the certificates: %v", err)
			return nil
		}
		for _, e := range append(append([]pki.Expiry(nil), info.Certificates...), info.CertificateAuthorities...) {
			if !e.Missing {
				checked++
			}
		}
		if info.KubeletClientCertificate != nil {
			checked++
		}
		for _, e := range pki.ExpiringWithin(info, ExpiryWarning) {
			soon++
			a.p.line(StepCerts, hr.h.Name, "warning: %s expires %s (%s left): %s", e.Name, e.ExpirationDate.Format(time.RFC3339), duration.ShortHumanDuration(e.ResidualTime), renewHint(e, hr.h.Name))
		}
		return nil
	})
	if soon == 0 && unread == 0 {
		a.p.line(StepCerts, "", "%d certificates on %d hosts: none expires within %s", checked, len(a.hosts), duration.ShortHumanDuration(ExpiryWarning))
	}
	return nil
}

func (a *applier) expiration(ctx context.Context, hr *hostRun) (pki.ExpirationInfo, error) {
	var info pki.ExpirationInfo
	cfg, err := nodeConfigYAML(a.inv, hr.h, "", Secrets{})
	if err != nil {
		return info, err
	}
	r, err := hr.rec.Run(ctx, transport.Cmd{Args: []string{a.binaryPath, "certs", "check-expiration", "--config", "-", "-o", "json"}, Stdin: bytes.NewReader(cfg)})
	if err != nil {
		var xe *transport.ExitError
		if errors.As(err, &xe) {
			return info, fmt.Errorf("kubeboot certs check-expiration: %s", strings.TrimSpace(a.p.redact(xe.Stderr)))
		}
		return info, fmt.Errorf("kubeboot certs check-expiration: %w", err)
	}
	if err := json.Unmarshal(r.Stdout, &info); err != nil {
		return info, fmt.Errorf("kubeboot certs check-expiration -o json: %w", err)
	}
	return info, nil
}

// renewHint says how e is renewed on host.
func renewHint(e pki.Expiry, host string) string {
	switch {
	case strings.HasPrefix(e.Name, "/"):
		return "the kubelet rotates it: look at why it did not (journalctl -u kubelet on " + host + ")"
	case e.CAName == "":
		return "a CA: renewing it re-issues everything it signed"
	}
	return "renew it with `kubeboot certs renew " + e.Name + "` on " + host
}

// CheckExpiration reads the certificates of every host of inv in parallel
// (at most parallel at once) over connect, as `kubeboot certs
// check-expiration` does on one node. A host that cannot be read gets its
// Error and the others are still read; the error then names them all.
func CheckExpiration(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), parallel int) ([]HostExpiration, error) {
	out := make([]HostExpiration, len(inv.Hosts))
	errs := make([]error, len(inv.Hosts))
	sem := make(chan struct{}, max(1, parallel))
	var wg sync.WaitGroup
	for i := range inv.Hosts {
		out[i] = HostExpiration{Host: inv.Hosts[i].Name, Roles: inv.Hosts[i].Roles}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := readHostExpiration(ctx, inv, connect, i, &out[i]); err != nil {
				out[i].Error = err.Error()
				errs[i] = fmt.Errorf("%s: %w", inv.Hosts[i].Name, err)
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func readHostExpiration(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), i int, out *HostExpiration) error {
	h, err := connect(ctx, inv, i)
	if err != nil {
		return err
	}
	if c, ok := h.(io.Closer); ok {
		defer c.Close()
	}
	cfg := *inv.Cluster
	cfg.Node = inventory.Node{Name: inv.Hosts[i].Name}
	out.ExpirationInfo, err = pki.Expiration(ctx, &pki.Data{Host: h, Cfg: &cfg, Out: workflow.NewPrinter(io.Discard)})
	return err
}

// WriteExpirations prints each host's table under its name.
func WriteExpirations(w io.Writer, hosts []HostExpiration) error {
	for i, h := range hosts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "== %s (%s)\n", h.Host, strings.Join(h.Roles, ","))
		switch {
		case h.Error != "":
			fmt.Fprintf(w, "error: %s\n", h.Error)
		case len(h.Certificates) == 0 && h.KubeletClientCertificate == nil:
			fmt.Fprintln(w, "no certificates")
		default:
			if err := pki.WriteExpirationTable(w, h.ExpirationInfo); err != nil {
				return err
			}
		}
	}
	return nil
}

// RenewOptions are `kubeboot certs renew -f`'s.
type RenewOptions struct {
	// Names are the certificates to renew ("all", or kubeadm's names).
	Names []string
	// Restart restarts the static Pods that read them (Wait.Restart).
	Restart bool
	Out     io.Writer
	// Health checks a host's endpoints; nil: through its SSH connection.
	Health func(h transport.Host) controlplane.HealthChecker
}

// RenewCertificates renews the certificates of every control plane of inv
// and restarts what uses them, one host after the other, so that the other
// control planes keep the API available. It stops at the first host that
// fails, naming it; the hosts before it are done.
func RenewCertificates(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), o RenewOptions) error {
	n := 0
	for i := range inv.Hosts {
		hh := &inv.Hosts[i]
		if !hh.IsControlPlane() {
			continue
		}
		n++
		if err := renewOn(ctx, inv, connect, i, o); err != nil {
			return fmt.Errorf("%s: %w (the control planes before it are renewed; fix it and run renew -f again)", hh.Name, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("%s has no control plane", inv.Path)
	}
	return nil
}

func renewOn(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), i int, o RenewOptions) error {
	hh := &inv.Hosts[i]
	h, cfg, closeHost, err := openHost(ctx, inv, connect, i)
	if err != nil {
		return err
	}
	defer closeHost()
	pw := &prefixWriter{w: o.Out, prefix: hh.Name + ": "}
	defer pw.flush()
	p := workflow.NewPrinter(pw)
	done, err := pki.Renew(ctx, &pki.Data{Host: h, Cfg: cfg, Out: p}, o.Names)
	if err != nil {
		return err
	}
	if !o.Restart {
		return nil
	}
	hc := controlplane.NewHTTPHealthChecker()
	if o.Health != nil {
		hc = o.Health(h)
	} else if d, ok := h.(Dialer); ok {
		hc = controlplane.NewHTTPHealthCheckerVia(d.DialContext)
	}
	w := controlplane.Wait{Health: hc, Out: p, Host: hh.Name}
	for _, c := range pki.RestartOrder(done) {
		if _, err := w.Restart(ctx, h, cfg, c); err != nil {
			return err
		}
	}
	return nil
}

// openHost connects to host i of inv and makes its node configuration;
// closeHost closes the connection.
func openHost(ctx context.Context, inv *Inventory, connect func(context.Context, *Inventory, int) (transport.Host, error), i int) (h transport.Host, cfg *inventory.Cluster, closeHost func(), err error) {
	cfg, err = NodeConfig(inv, &inv.Hosts[i], "", Secrets{})
	if err != nil {
		return nil, nil, nil, err
	}
	if h, err = connect(ctx, inv, i); err != nil {
		return nil, nil, nil, err
	}
	closeHost = func() {
		if c, ok := h.(io.Closer); ok {
			c.Close()
		}
	}
	return h, cfg, closeHost, nil
}

// prefixWriter starts every line with prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}
