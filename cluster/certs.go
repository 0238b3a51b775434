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
		checked += len(info.Certificates) + len(info.CertificateAuthorities)
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
