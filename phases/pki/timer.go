package pki

import (
	"context"
	"fmt"
	"time"

	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

// The systemd units of `certs renew --install-timer`.
const (
	RenewService = "/etc/systemd/system/kubeboot-certs-renew.service"
	RenewTimer   = "/etc/systemd/system/kubeboot-certs-renew.timer"
)

// RenewUnits are the service and timer that run `kubeboot certs renew all
// --if-expiring-within within` (binary, with args such as --cert-dir) once
// a day, an hour's random delay apart across nodes, catching up after a
// shutdown.
func RenewUnits(binary string, within time.Duration, args ...string) (service, timer []byte) {
	cmd := binary + " certs renew all --if-expiring-within " + within.String()
	for _, a := range args {
		cmd += " " + a
	}
	service = []byte(`[Unit]
Description=kubeboot: renew the control plane's certificates when they expire within ` + within.String() + `
Documentation=https://github.com/kubeboot/kubeboot/blob/main/docs/certificates.md
After=kubelet.service

[Service]
Type=oneshot
ExecStart=` + cmd + `
`)
	timer = []byte(`[Unit]
Description=kubeboot: check the control plane's certificates daily

[Timer]
OnCalendar=daily
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
`)
	return service, timer
}

// InstallRenewTimer writes RenewUnits on d.Host and enables the timer.
func InstallRenewTimer(ctx context.Context, d *Data, binary string, within time.Duration, args ...string) error {
	service, timer := RenewUnits(binary, within, args...)
	changed := false
	for _, f := range []struct {
		path string
		data []byte
	}{{RenewService, service}, {RenewTimer, timer}} {
		c, _, err := hostutil.WriteIfChanged(ctx, d.Host, f.path, f.data, 0o644)
		if err != nil {
			return err
		}
		changed = changed || c
	}
	cmds := [][]string{{"systemctl", "enable", "--now", "kubeboot-certs-renew.timer"}}
	if changed {
		cmds = append([][]string{{"systemctl", "daemon-reload"}}, cmds...)
	}
	for _, args := range cmds {
		if _, err := d.Host.Run(ctx, transport.Cmd{Args: args}); err != nil {
			return fmt.Errorf("%v: %w", args, err)
		}
	}
	what := "Using existing"
	if changed {
		what = "Wrote"
	}
	d.Out.Printf("renew", "%s %s and %s: every day kubeboot renews what expires within %s and restarts what uses it (systemctl list-timers kubeboot-certs-renew.timer)", what, RenewService, RenewTimer, within)
	return nil
}
