package transport_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kubeboot/kubeboot/transport"
)

// Copy kubeboot and a bundle to two machines over SSH and run it there,
// both at once; every failed host is reported, in host order.
func ExampleEach() {
	ctx := context.Background()
	var hosts []transport.Host
	for i, ip := range []string{"10.251.0.11", "10.251.0.12"} {
		h, err := transport.DialSSH(ctx, transport.SSHConfig{
			Name:           fmt.Sprintf("m%d", i+1),
			Address:        ip,
			KeyFile:        "/root/.ssh/id_ed25519",
			KnownHostsFile: "/root/.ssh/known_hosts",
			ConnectTimeout: 5 * time.Second,
			Attempts:       10, // the machine may still be booting
		})
		if err != nil {
			fmt.Println(err) // m1 (10.251.0.11): host key mismatch: ...
			return
		}
		defer h.Close()
		hosts = append(hosts, h)
	}
	err := transport.Each(ctx, hosts, 10, func(ctx context.Context, h transport.Host) error {
		if err := transport.Upload(ctx, h, "bin/kubeboot", "/usr/local/bin/kubeboot", 0o755); err != nil {
			return err
		}
		if err := transport.Upload(ctx, h, "bundle.tar", "/root/bundle.tar", 0o600); err != nil {
			return err
		}
		_, err := h.Run(ctx, transport.Cmd{Args: []string{"kubeboot", "version"}})
		return err // a non-zero exit is a *transport.ExitError with stderr
	})
	if err != nil {
		fmt.Println(err) // 1 of 2 hosts failed:\n  m2 (10.251.0.12): ...
	}
}
