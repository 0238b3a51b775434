package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/kubeboot/kubeboot/cluster"
)

// cmdLatency puts a toxiproxy proxy (in this process, on 127.0.0.1) in
// front of every host of the cluster file, with a latency toxic on each
// way, and measures through them: the bare-client floor, apply's first run
// (connect, probe, upload) and its no-op re-run. It writes a known_hosts
// with [127.0.0.1]:<port> entries (each host's key from the cluster file's
// known_hosts) and the cluster file pointing at the proxies.
func cmdLatency(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	file := fs.String("f", "", "the cluster file with the hosts' real addresses")
	binary := fs.String("binary", "", "the file apply copies to each host as the kubeboot binary")
	parallel := fs.Int("parallel", 20, "Options.Parallel and the floor's connections at once")
	latency := fs.Int("latency-ms", 100, "latency toxic on each way (ms)")
	dir := fs.String("dir", ".", "where the proxied cluster file, known_hosts, logs and records go")
	fs.Parse(args)
	if *binary == "" {
		return fmt.Errorf("-binary: required")
	}
	inv, _, err := cluster.Load(*file)
	if err != nil {
		return err
	}
	ts, key, kh, err := targets(inv)
	if err != nil {
		return err
	}
	keys, err := hostKeys(kh)
	if err != nil {
		return err
	}

	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	defer srv.Collection.Clear()
	var khLines []string
	var inventory strings.Builder
	fmt.Fprintf(&inventory, "apiVersion: kubeboot.io/v1alpha1\nkind: Cluster\nkubernetesVersion: %s\nssh:\n  user: root\n  keyFile: %s\n  knownHostsFile: %s\nhosts:\n",
		inv.KubernetesVersion, key, filepath.Join(*dir, "known_hosts.proxied"))
	for i, t := range ts {
		host, _, _ := net.SplitHostPort(t.addr)
		k, ok := keys[host]
		if !ok {
			return fmt.Errorf("%s: no key for %s in %s", t.name, host, kh)
		}
		p := toxiproxy.NewProxy(srv, inv.Hosts[i].Name, "127.0.0.1:0", t.addr)
		if err := srv.Collection.Add(p, true); err != nil {
			return fmt.Errorf("proxy for %s: %w", t.name, err)
		}
		for _, stream := range []string{"upstream", "downstream"} {
			j := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":"%s","toxicity":1.0,"attributes":{"latency":%d,"jitter":0}}`, stream, stream, *latency)
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(j)); err != nil {
				return fmt.Errorf("latency toxic for %s: %w", t.name, err)
			}
		}
		_, port, _ := net.SplitHostPort(p.Listen)
		khLines = append(khLines, fmt.Sprintf("[127.0.0.1]:%s %s", port, k))
		role := "worker"
		if inv.Hosts[i].IsControlPlane() {
			role = "control-plane"
		}
		fmt.Fprintf(&inventory, "  - {name: %s, address: 127.0.0.1, port: %s, roles: [%s]}\n", inv.Hosts[i].Name, port, role)
		fmt.Fprintf(os.Stderr, "proxy %s: %s -> %s, %d ms each way\n", inv.Hosts[i].Name, p.Listen, t.addr, *latency)
	}
	if err := os.WriteFile(filepath.Join(*dir, "known_hosts.proxied"), []byte(strings.Join(khLines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	pf := filepath.Join(*dir, "cluster-proxied.yaml")
	if err := os.WriteFile(pf, []byte(inventory.String()), 0o600); err != nil {
		return err
	}
	pinv, _, err := cluster.Load(pf)
	if err != nil {
		return err
	}
	pts, pkey, pkh, err := targets(pinv)
	if err != nil {
		return err
	}

	n := len(pts)
	load, m := loadavg(), startMeter()
	took, failed, err := floor(ctx, pts, pkey, pkh, *parallel)
	if err != nil {
		return err
	}
	fr := floorRecord("latency-floor", n, *parallel, took, failed)
	m.stop(fr) // this process's CPU: cumulative, toxiproxy included
	fr.Load, fr.LatencyMS = load, *latency
	if err := writeJSON(filepath.Join(*dir, "latency-floor.json"), fr); err != nil {
		return err
	}
	for _, label := range []string{"latency-first", "latency-rerun"} {
		outF, err := os.Create(filepath.Join(*dir, label+".out"))
		if err != nil {
			return err
		}
		logF, err := os.Create(filepath.Join(*dir, label+".log"))
		if err != nil {
			outF.Close()
			return err
		}
		load, m := loadavg(), startMeter()
		r := runApply(ctx, pinv, *binary, *parallel, outF, logF, label, cluster.StepUpload, "")
		m.stop(r)
		outF.Close()
		logF.Close()
		r.Load, r.LatencyMS = load, *latency
		r.MaxRSSKiB = maxRSS()
		if r.ApplyErr != "" {
			fmt.Fprintln(os.Stderr, label+": apply error:", r.ApplyErr)
		}
		if err := writeJSON(filepath.Join(*dir, label+".json"), r); err != nil {
			return err
		}
	}
	return nil
}

// hostKeys maps each address of a known_hosts file (plain entries,
// "name,addr type key") to its "type key".
func hostKeys(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], "|") || strings.HasPrefix(fields[0], "@") {
			continue
		}
		for _, h := range strings.Split(fields[0], ",") {
			out[h] = fields[1] + " " + fields[2]
		}
	}
	return out, sc.Err()
}
