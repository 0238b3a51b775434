package preflight

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/hostutil"
	"github.com/kubeboot/kubeboot/transport"
)

// PortCheck fails when something listens on port (kubeadm's Port-N).
func PortCheck(port int) Check {
	return Check{Name: fmt.Sprintf("Port-%d", port), Run: func(ctx context.Context, h transport.Host, _ *inventory.Cluster, _ hostutil.HostFacts) (_, errs []error) {
		listening, err := listeningPorts(ctx, h)
		if err != nil {
			return nil, []error{fmt.Errorf("cannot tell whether port %d is in use: %w", port, err)}
		}
		if listening[port] {
			return nil, []error{fmt.Errorf("Port %d is in use", port)}
		}
		return nil, nil
	}}
}

// listeningPorts reads the TCP ports with a listening socket from
// /proc/net/tcp and /proc/net/tcp6 (state 0A), through the transport: unlike
// kubeadm's net.Listen, this works for a remote host too. A port with any
// listener is taken: binding the wildcard address to it would fail. The
// checks of one RunChecks share one reading (every port check asks).
func listeningPorts(ctx context.Context, h transport.Host) (map[int]bool, error) {
	run := checkRunOf(ctx, h)
	if run == nil {
		return readListeningPorts(ctx, h)
	}
	run.portsMu.Lock()
	defer run.portsMu.Unlock()
	if !run.portsRead {
		ports, err := readListeningPorts(ctx, h)
		if err != nil && ctx.Err() != nil {
			return nil, err // this check's time ran out; another may try
		}
		run.ports, run.portsErr, run.portsRead = ports, err, true
	}
	return run.ports, run.portsErr
}

func readListeningPorts(ctx context.Context, h transport.Host) (map[int]bool, error) {
	ports := map[int]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := h.ReadFile(ctx, file)
		if err != nil {
			if file == "/proc/net/tcp6" && errors.Is(err, fs.ErrNotExist) {
				continue // IPv6 disabled
			}
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			// sl local_address rem_address st ...
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(f[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseUint(f[1][i+1:], 16, 16); err == nil {
				ports[int(p)] = true
			}
		}
	}
	return ports, nil
}

type (
	checkRunKey struct{}
)

// checkRun is what the checks of one RunChecks share.
type checkRun struct {
	host transport.Host

	portsMu   sync.Mutex
	portsRead bool
	ports     map[int]bool
	portsErr  error
}

func withCheckRun(ctx context.Context, h transport.Host) context.Context {
	return context.WithValue(ctx, checkRunKey{}, &checkRun{host: h})
}

// checkRunOf returns the checkRun of ctx when it is about h, or nil.
func checkRunOf(ctx context.Context, h transport.Host) *checkRun {
	if r, ok := ctx.Value(checkRunKey{}).(*checkRun); ok && hostutil.SameHost(r.host, h) {
		return r
	}
	return nil
}
