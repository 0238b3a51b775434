package nodestatus

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/kubeboot/kubeboot/inventory"
)

// ParseStats reads haproxy's CSV statistics (the stats page's ";csv", or
// `show stat` on its socket) and returns the servers of backend proxy, in
// their order. The columns are found by name in the header line
// ("# pxname,svname,...,status,..."), so any haproxy version's layout
// works; pxname, svname and status are required, addr is used when there.
func ParseStats(r io.Reader, proxy string) ([]Backend, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // every line ends with a comma; modules add columns
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("haproxy's statistics are empty")
		}
		return nil, fmt.Errorf("haproxy's statistics: %w", err)
	}
	if len(header) == 0 || !strings.HasPrefix(header[0], "#") {
		return nil, fmt.Errorf("haproxy's statistics do not start with the header line (# pxname,svname,...): %.60q", strings.Join(header, ","))
	}
	header[0] = strings.TrimSpace(strings.TrimPrefix(header[0], "#"))
	col := map[string]int{}
	for i, h := range header {
		if _, dup := col[h]; !dup && h != "" {
			col[h] = i
		}
	}
	for _, need := range []string{"pxname", "svname", "status"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("haproxy's statistics have no %q column", need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var out []Backend
	found := false
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("haproxy's statistics: %w", err)
		}
		if len(rec) == 1 && rec[0] == "" || strings.HasPrefix(rec[0], "#") {
			continue
		}
		if get(rec, "pxname") != proxy {
			continue
		}
		sv := get(rec, "svname")
		// type: 0 frontend, 1 backend, 2 server, 3 listener.
		if t := get(rec, "type"); t != "" && t != "2" || sv == "FRONTEND" || sv == "BACKEND" {
			if sv == "BACKEND" || t == "1" {
				found = true
			}
			continue
		}
		found = true
		st := get(rec, "status")
		out = append(out, Backend{Name: sv, Address: get(rec, "addr"), Status: st, Up: serverUp(st)})
	}
	if !found {
		return nil, fmt.Errorf("haproxy has no backend %q", proxy)
	}
	return out, nil
}

// serverUp says whether haproxy sends new connections to a server in
// this state: UP, "UP 1/3" (failing checks, still up), "no check" (no
// health check: always used). DOWN, "DOWN 1/2" (recovering), NOLB, DRAIN
// and MAINT get none.
func serverUp(status string) bool {
	return status == "UP" || strings.HasPrefix(status, "UP ") || status == "no check"
}

func (c *Collector) loadBalancer(ctx context.Context, cfg *inventory.Cluster, cp bool) *LoadBalancer {
	lb := cfg.LoadBalancer
	out := &LoadBalancer{Kind: lb.Kind}
	if lb.Kind == inventory.LBVIP && cp {
		out.VIP = lb.VIP
		holds, err := c.holdsVIP(lb.VIP)
		out.HoldsVIP = holds
		if err != nil {
			out.VIPError = err.Error()
		}
	}
	bs, err := c.stats(ctx)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	// haproxy's CSV has no address without a stats option: the
	// configuration has them.
	for i := range bs {
		for _, b := range lb.Backends {
			if bs[i].Address == "" && b.Name == bs[i].Name {
				bs[i].Address = net.JoinHostPort(b.Address, strconv.Itoa(cfg.Node.BindPort))
			}
		}
	}
	out.Backends = bs
	return out
}

func (c *Collector) stats(ctx context.Context) ([]Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.StatsURL, nil)
	if err != nil {
		return nil, err
	}
	cl := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("haproxy's statistics at %s: %v (is haproxy running? crictl ps --name haproxy)", c.StatsURL, describe(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("haproxy's statistics at %s: HTTP %d", c.StatsURL, resp.StatusCode)
	}
	return ParseStats(io.LimitReader(resp.Body, 1<<20), HAProxyBackend)
}

// holdsVIP says whether vip is one of this host's addresses.
func (c *Collector) holdsVIP(vip string) (bool, error) {
	want := net.ParseIP(vip)
	if want == nil {
		return false, fmt.Errorf("loadBalancer.vip %q is not an IP address", vip)
	}
	addrs, err := c.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list the interfaces' addresses: %w", err)
	}
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip != nil && ip.Equal(want) {
			return true, nil
		}
	}
	return false, nil
}
