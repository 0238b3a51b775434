//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// servedCerts are the serial numbers the control plane's components serve
// or present, read over TLS from inside the machine (the controller-manager
// and the scheduler listen on its loopback): what a client sees, not the
// files.
func servedCerts(ctx context.Context, cp *node) (map[string]string, error) {
	ip := cp.m.IP.String()
	targets := map[string]string{
		"kube-apiserver":          net.JoinHostPort(ip, "6443"),
		"kube-controller-manager": "127.0.0.1:10257",
		"kube-scheduler":          "127.0.0.1:10259",
		"etcd (client)":           net.JoinHostPort(ip, "2379"),
		"etcd (peer)":             net.JoinHostPort(ip, "2380"),
	}
	out := map[string]string{}
	for what, addr := range targets {
		conn, err := cp.h.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s at %s: %w", what, addr, err)
		}
		var serial string
		// etcd asks for a client certificate and hangs up without one:
		// the server's certificate is seen before that.
		c := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				if cert, err := x509.ParseCertificate(raw[0]); err == nil {
					serial = cert.SerialNumber.Text(16)
				}
			}
			return nil
		}})
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_ = c.HandshakeContext(ctx)
		c.Close()
		if serial == "" {
			return nil, fmt.Errorf("%s at %s presented no certificate", what, addr)
		}
		out[what] = serial
	}
	return out, nil
}

// servedAgain reads servedCerts again and lists what still serves the
// serial it served before.
func servedAgain(ctx context.Context, cp *node, before map[string]string) (after map[string]string, same []string, err error) {
	if after, err = servedCerts(ctx, cp); err != nil {
		return nil, nil, err
	}
	for what, s := range before {
		if after[what] == s {
			same = append(same, what)
		}
	}
	sort.Strings(same)
	return after, same, nil
}

type expirationInfo struct {
	Certificates []struct {
		Name           string    `json:"name"`
		ExpirationDate time.Time `json:"expirationDate"`
		Missing        bool      `json:"missing"`
	} `json:"certificates"`
}

func checkExpiration(ctx context.Context, cp *node, logDir, log string) (map[string]time.Time, error) {
	out, err := cp.run(ctx, logDir, log, kubebootPath, "certs", "check-expiration", "-o", "json")
	if err != nil {
		return nil, err
	}
	var info expirationInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return nil, fmt.Errorf("check-expiration -o json: %w\n%s", err, out)
	}
	m := map[string]time.Time{}
	for _, c := range info.Certificates {
		if !c.Missing {
			m[c.Name] = c.ExpirationDate
		}
	}
	return m, nil
}

// checkRenewal: `kubeboot certs renew all` on the control plane renews
// every certificate and restarts what uses them, so the components serve
// new ones, while kubectl with admin.conf keeps working but for the API
// server's own restart; then a certificate made to expire within minutes
// is reported and renewed.
func checkRenewal(ctx context.Context, t *testing.T, k *kubectl, cp *node, logDir string, st *stages) {
	before, err := servedCerts(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	expBefore, err := checkExpiration(ctx, cp, logDir, "check-expiration-1")
	if err != nil {
		t.Fatal(err)
	}

	// kubectl get nodes every 250ms during the renewal.
	var mu sync.Mutex
	var longest time.Duration
	fails, oks := 0, 0
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for pctx.Err() == nil {
			var l corev1.NodeList
			rctx, cancel := context.WithTimeout(pctx, 5*time.Second)
			err := k.get(rctx, &l, "nodes")
			cancel()
			now := time.Now()
			mu.Lock()
			if err == nil {
				oks++
				if gap := now.Sub(last); gap > longest {
					longest = gap
				}
				last = now
			} else if pctx.Err() == nil {
				fails++
			}
			mu.Unlock()
			select {
			case <-pctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	out, err := cp.run(ctx, logDir, "certs-renew", kubebootPath, "certs", "renew", "all")
	took := time.Since(start)
	// Once renew is done the API must answer again at once.
	if err == nil {
		err = eventually(ctx, 30*time.Second, 250*time.Millisecond, func() error {
			var l corev1.NodeList
			return k.get(ctx, &l, "nodes")
		})
	}
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("FAIL certs renew all: %v\n%s", err, tailString(out, 30))
	}
	st.note("certs renew all (m1): %s; kubectl get nodes: %d ok, %d failed, longest gap %s", took.Round(100*time.Millisecond), oks, fails, longest.Round(100*time.Millisecond))

	after, same, err := servedAgain(ctx, cp, before)
	if err != nil {
		t.Fatal(err)
	}
	if len(same) > 0 {
		t.Errorf("FAIL after certs renew all, still served: %v (before %v, after %v)", same, before, after)
	} else {
		t.Logf("PASS certs renew all: new serials served by %d endpoints (%v -> %v); kubectl get nodes longest gap %s", len(after), before, after, longest.Round(100*time.Millisecond))
	}
	expAfter, err := checkExpiration(ctx, cp, logDir, "check-expiration-2")
	if err != nil {
		t.Fatal(err)
	}
	var notRenewed []string
	for name, e := range expBefore {
		if !expAfter[name].After(e) {
			notRenewed = append(notRenewed, name)
		}
	}
	if len(notRenewed) > 0 || len(expAfter) != len(expBefore) {
		t.Errorf("FAIL check-expiration after renew: not later for %v (%d before, %d after)", notRenewed, len(expBefore), len(expAfter))
	} else {
		t.Logf("PASS check-expiration after renew: all %d certificates expire later", len(expAfter))
	}

	// A certificate that expires in two minutes (renewed with a short
	// certificateValidityPeriod, no restart) is reported, and renew fixes it.
	short := "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\ncertificateValidityPeriod: 2m\n"
	if err := cp.h.WriteFile(ctx, "/root/short-validity.yaml", []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cp.run(ctx, logDir, "certs-renew-short", kubebootPath, "certs", "renew", "front-proxy-client", "--config", "/root/short-validity.yaml", "--restart=false"); err != nil {
		t.Fatalf("renew with a 2m validity: %v\n%s", err, out)
	}
	table, err := cp.run(ctx, logDir, "check-expiration-3", kubebootPath, "certs", "check-expiration")
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "front-proxy-client ") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) < 7 || !strings.HasSuffix(f[6], "m") && !strings.HasSuffix(f[6], "s") {
		t.Errorf("FAIL check-expiration does not show front-proxy-client expiring within minutes: %q", line)
	}
	if out, err := cp.run(ctx, logDir, "certs-renew-fix", kubebootPath, "certs", "renew", "front-proxy-client"); err != nil {
		t.Fatalf("renew front-proxy-client: %v\n%s", err, out)
	}
	exp, err := checkExpiration(ctx, cp, logDir, "check-expiration-4")
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(exp["front-proxy-client"]); left < 300*24*time.Hour {
		t.Errorf("FAIL front-proxy-client after the fix expires in %s", left)
	} else {
		t.Logf("PASS a front-proxy-client renewed to expire in 2m is shown (%q) and renewed again (%s left)", strings.Join(strings.Fields(line), " "), left.Round(time.Hour))
	}
	checkRenewTimer(ctx, t, cp, logDir, st)
}

// checkRenewTimer: --install-timer's units under the machine's systemd:
// the service renews nothing while nothing is due, and renews (and
// restarts) a certificate that expires within minutes.
func checkRenewTimer(ctx context.Context, t *testing.T, cp *node, logDir string, st *stages) {
	if out, err := cp.run(ctx, logDir, "certs-install-timer", kubebootPath, "certs", "renew", "all", "--install-timer"); err != nil {
		t.Fatalf("--install-timer: %v\n%s", err, out)
	}
	if out, err := cp.run(ctx, logDir, "", "systemctl", "is-enabled", "kubeboot-certs-renew.timer"); err != nil || strings.TrimSpace(out) != "enabled" {
		t.Errorf("FAIL the renew timer is not enabled: %q %v", out, err)
	}
	journal := func() string {
		out, _ := cp.run(ctx, logDir, "", "journalctl", "-u", "kubeboot-certs-renew.service", "--no-pager", "-o", "cat")
		return out
	}
	if out, err := cp.run(ctx, logDir, "", "systemctl", "start", "kubeboot-certs-renew.service"); err != nil {
		t.Fatalf("start the renew service: %v\n%s\n%s", err, out, journal())
	}
	if j := journal(); !strings.Contains(j, "Nothing to renew: no certificate expires within 720h0m0s") {
		t.Errorf("FAIL the renew service with nothing due:\n%s", j)
	}
	if out, err := cp.run(ctx, logDir, "", kubebootPath, "certs", "renew", "front-proxy-client", "--config", "/root/short-validity.yaml", "--restart=false"); err != nil {
		t.Fatalf("renew with a 2m validity: %v\n%s", err, out)
	}
	start := time.Now()
	if out, err := cp.run(ctx, logDir, "", "systemctl", "start", "kubeboot-certs-renew.service"); err != nil {
		t.Fatalf("start the renew service: %v\n%s\n%s", err, out, journal())
	}
	took := time.Since(start)
	exp, err := checkExpiration(ctx, cp, logDir, "check-expiration-5")
	if err != nil {
		t.Fatal(err)
	}
	j := journal()
	_ = os.WriteFile(filepath.Join(logDir, "m1-certs-renew-service.log"), []byte(j), 0o644)
	if left := time.Until(exp["front-proxy-client"]); left < 300*24*time.Hour || !strings.Contains(j, "front-proxy-client expire(s) within 720h0m0s") || !strings.Contains(j, "kube-apiserver is healthy again") || strings.Contains(j, "Restarting etcd") {
		t.Errorf("FAIL the renew service with front-proxy-client due: %s left\n%s", left, tailString(j, 20))
	} else {
		t.Logf("PASS the renew timer's service: nothing renewed while nothing is due; a front-proxy-client 2m from expiry renewed (%s left) and only kube-apiserver restarted, in %s", left.Round(time.Hour), took.Round(100*time.Millisecond))
	}
	st.note("renew timer's service, front-proxy-client due: %s", took.Round(100*time.Millisecond))
}

// checkClusterExpiration: `kubeboot certs check-expiration -f` reads every
// host over SSH (m2 with sudo, m3 through the bastion): the control plane's
// certificates and every kubelet's; apply's own check said none is close.
func checkClusterExpiration(ctx context.Context, t *testing.T, a *applyCmd, converged *applyRun, cps, workers []string) {
	if !strings.Contains(converged.out(), "none expires within 30d") {
		t.Errorf("FAIL %s: no all-clear from its certs step", converged.name)
	}
	cmd := a.command(ctx, "certs", "check-expiration", "-f", a.file, "-o", "json")
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(a.logDir, "check-expiration-f.json"), out, 0o644)
	if err != nil {
		t.Errorf("FAIL certs check-expiration -f: %v\n%s", err, out)
		return
	}
	var hosts []struct {
		Host         string `json:"host"`
		Certificates []struct {
			Missing bool `json:"missing"`
		} `json:"certificates"`
		Kubelet *struct {
			ExpirationDate time.Time `json:"expirationDate"`
		} `json:"kubeletClientCertificate"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &hosts); err != nil {
		t.Errorf("FAIL certs check-expiration -f -o json: %v\n%s", err, out)
		return
	}
	var bad []string
	for _, h := range hosts {
		n := 0
		for _, c := range h.Certificates {
			if !c.Missing {
				n++
			}
		}
		isCP := slices.Contains(cps, h.Host)
		switch {
		case h.Error != "":
			bad = append(bad, h.Host+": "+h.Error)
		case h.Kubelet == nil:
			bad = append(bad, h.Host+": no kubelet client certificate")
		case isCP && n != 11, !isCP && n != 0:
			bad = append(bad, fmt.Sprintf("%s: %d certificates", h.Host, n))
		}
	}
	if len(bad) > 0 || len(hosts) != len(cps)+len(workers) {
		t.Errorf("FAIL certs check-expiration -f: %d hosts; %v", len(hosts), bad)
	} else {
		t.Logf("PASS certs check-expiration -f: %d hosts over SSH in %s: 11 certificates on %v, a kubelet client certificate on each", len(hosts), took.Round(100*time.Millisecond), cps)
	}
}

// checkClusterRenewal: `kubeboot certs renew all -f` from the operator's
// machine renews the control plane over SSH (its health endpoints reached
// through the connection) and the components serve new certificates.
func checkClusterRenewal(ctx context.Context, t *testing.T, a *applyCmd, k *kubectl, cp *node, st *stages) {
	before, err := servedCerts(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	cmd := a.command(ctx, "certs", "renew", "all", "-f", a.file)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(a.logDir, "certs-renew-f.out"), out, 0o644)
	if err != nil {
		t.Errorf("FAIL certs renew all -f: %v\n%s", err, tailString(string(out), 30))
		return
	}
	if err := eventually(ctx, 30*time.Second, 250*time.Millisecond, func() error {
		var l corev1.NodeList
		return k.get(ctx, &l, "nodes")
	}); err != nil {
		t.Errorf("FAIL kubectl after certs renew all -f: %v", err)
		return
	}
	_, same, err := servedAgain(ctx, cp, before)
	if err != nil {
		t.Fatal(err)
	}
	st.note("certs renew all -f (1 control plane over SSH): %s", took.Round(100*time.Millisecond))
	if len(same) > 0 || !strings.Contains(string(out), cp.m.Name+": [restart] kube-scheduler is healthy again") {
		t.Errorf("FAIL certs renew all -f: still served %v\n%s", same, tailString(string(out), 20))
	} else {
		t.Logf("PASS certs renew all -f: %s renewed and restarted over SSH in %s; its 5 endpoints serve new serials", cp.m.Name, took.Round(100*time.Millisecond))
	}
}
