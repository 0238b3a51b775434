package phases

import (
	"context"
	"fmt"
	"time"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/etcd"
)

// CheckEtcdPhase is kubeadm's (hidden) `check-etcd`: before this node
// changes anything in the cluster, every etcd member must answer.
func CheckEtcdPhase() *Phase {
	return &Phase{
		Name:  "check-etcd",
		Short: "Check that the local etcd cluster is healthy",
		Run:   controlPlaneOnly(runCheckEtcd),
	}
}

// EtcdJoinPhase is kubeadm's `etcd-join` (ControlPlaneKubeletLocalMode):
// this node's etcd is added to the cluster as a learner through the etcd
// API, its static pod manifest lists every member with
// --initial-cluster-state=existing, and once the kubelet started it the
// learner is promoted to a voting member and the cluster must be healthy.
func EtcdJoinPhase() *Phase {
	return &Phase{
		Name:  "etcd-join",
		Short: "Join etcd for control plane nodes",
		Run:   controlPlaneOnly(runEtcdJoin),
	}
}

func runCheckEtcd(ctx context.Context, d *Data) error {
	if d.Cfg.Etcd.External != nil {
		d.Out.Printf("check-etcd", "Skipping etcd check in external mode")
		return nil
	}
	if d.DryRun {
		d.Out.Printf("check-etcd", "Would check that the etcd cluster is healthy")
		return nil
	}
	d.Out.Printf("check-etcd", "Checking that the etcd cluster is healthy")
	c, err := etcdConn(ctx, d)
	if err != nil {
		return err
	}
	timeout := d.Join.EtcdCheckTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	return etcd.WaitHealthy(ctx, c, timeout)
}

func runEtcdJoin(ctx context.Context, d *Data) error {
	if d.Cfg.Etcd.External != nil {
		d.Out.Printf("control-plane-join", "Using external etcd - no local stacked instance added")
		return nil
	}
	c := etcd.Conn{Host: d.Host, CertDir: d.Cfg.CertificatesDir, Out: d.Out}
	if !d.DryRun {
		var err error
		if c, err = etcdConn(ctx, d); err != nil {
			return err
		}
	}
	return etcd.Join(ctx, c, d.Cfg, d.DryRun)
}

// etcdConn reaches the cluster's etcd from this node with its
// healthcheck-client certificate, finding the members through the API.
func etcdConn(ctx context.Context, d *Data) (etcd.Conn, error) {
	client, err := d.Client(ctx)
	if err != nil {
		return etcd.Conn{}, fmt.Errorf("connect with %s: %w", inventory.AdminKubeconfig, err)
	}
	return etcd.Conn{
		Host: d.Host, CertDir: d.Cfg.CertificatesDir, Kube: client, Out: d.Out,
		Connect: d.Join.NewEtcdClient, Interval: d.Join.interval(),
	}, nil
}
