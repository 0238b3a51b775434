package loadbalancer

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
	"github.com/kubeboot/kubeboot/transport/transporttest"
)

func cfgWith(kind string) *inventory.Cluster {
	c := inventory.Default()
	c.Node.Name, c.Node.AdvertiseAddress = "cp2", "10.0.0.12"
	c.LoadBalancer = &inventory.LoadBalancer{Kind: kind, Backends: []inventory.Backend{
		{Name: "cp1", Address: "10.0.0.11"}, {Name: "cp2", Address: "10.0.0.12"}, {Name: "cp3", Address: "10.0.0.13"}}}
	if kind == inventory.LBVIP {
		c.LoadBalancer.VIP = "10.0.0.100"
		c.ControlPlaneEndpoint = ""
	} else {
		c.ControlPlaneEndpoint = ""
	}
	inventory.SetDefaults(c)
	return c
}

func fakeHost(addrShow, route string) *transporttest.Fake {
	h := transporttest.New("cp2")
	h.HandleCoreutils()
	h.Handle("mkdir", func(transport.Cmd) (transport.Result, error) { return transport.Result{}, nil })
	h.Handle("ip -o -4 addr show to", func(transport.Cmd) (transport.Result, error) {
		return transport.Result{Stdout: []byte(addrShow)}, nil
	})
	h.Handle("ip -o -4 route get", func(transport.Cmd) (transport.Result, error) {
		return transport.Result{Stdout: []byte(route)}, nil
	})
	return h
}

func TestWrite(t *testing.T) {
	const route = "10.0.0.100 dev eth1 src 10.0.0.12 uid 0 \\    cache \n"
	tests := []struct {
		name         string
		kind         string
		controlPlane bool
		addrShow     string
		want         []string // files written
		wantIface    string
	}{
		{"vip control plane, route", inventory.LBVIP, true, "", []string{templates.HAProxyConfigPath, templates.KeepalivedConfigPath, inventory.ManifestPath("haproxy"), inventory.ManifestPath("keepalived")}, "eth1"},
		{"vip control plane holding the VIP", inventory.LBVIP, true, "3: ens5    inet 10.0.0.100/32 scope global ens5\\       valid_lft forever preferred_lft forever\n", []string{templates.HAProxyConfigPath, templates.KeepalivedConfigPath}, "ens5"},
		{"vip worker", inventory.LBVIP, false, "", nil, ""},
		{"local worker", inventory.LBLocal, false, "", []string{templates.HAProxyConfigPath, inventory.ManifestPath("haproxy")}, ""},
		{"local control plane", inventory.LBLocal, true, "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(tc.addrShow, route)
			var out bytes.Buffer
			cfg := cfgWith(tc.kind)
			if err := Write(context.Background(), h, cfg, workflow.NewPrinter(&out), tc.controlPlane); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.want {
				if _, _, ok := h.File(f); !ok {
					t.Errorf("%s not written; output:\n%s", f, out.String())
				}
			}
			if tc.want == nil {
				if paths := strings.Join(h.Paths(), " "); strings.Contains(paths, "haproxy") {
					t.Errorf("wrote %s", paths)
				}
			}
			if tc.wantIface != "" {
				conf, _, _ := h.File(templates.KeepalivedConfigPath)
				if !strings.Contains(string(conf), tc.wantIface) {
					t.Errorf("keepalived.conf does not name %s:\n%s", tc.wantIface, conf)
				}
			}
			// A second run changes nothing.
			before := h.Snapshot()
			out.Reset()
			if err := Write(context.Background(), h, cfg, workflow.NewPrinter(&out), tc.controlPlane); err != nil {
				t.Fatal(err)
			}
			if h.Snapshot() != before {
				t.Errorf("the second run changed files:\n%s", out.String())
			}
			// A changed backend list changes the manifest (the kubelet restarts the pod).
			if len(tc.want) > 0 {
				m0, _, _ := h.File(inventory.ManifestPath("haproxy"))
				cfg.LoadBalancer.Backends = cfg.LoadBalancer.Backends[:2]
				if err := Write(context.Background(), h, cfg, workflow.NewPrinter(&out), tc.controlPlane); err != nil {
					t.Fatal(err)
				}
				m1, _, _ := h.File(inventory.ManifestPath("haproxy"))
				if bytes.Equal(m0, m1) || !strings.Contains(string(m1), ConfigHashAnnotation) {
					t.Errorf("the haproxy manifest did not change with its configuration")
				}
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	cfg := cfgWith(inventory.LBVIP)
	cfg.Node.AdvertiseAddress = "10.0.0.99"
	err := Write(context.Background(), fakeHost("", "10.0.0.100 dev eth1 src 10.0.0.99\n"), cfg, workflow.NewPrinter(&bytes.Buffer{}), true)
	if err == nil || !strings.Contains(err.Error(), "10.0.0.99 is not among loadBalancer.backends") {
		t.Errorf("err = %v", err)
	}
	cfg = cfgWith(inventory.LBVIP)
	err = Write(context.Background(), fakeHost("", "local 10.0.0.100 dev lo table local src 10.0.0.100\n"), cfg, workflow.NewPrinter(&bytes.Buffer{}), true)
	if err == nil || !strings.Contains(err.Error(), "no interface routes to the VIP 10.0.0.100") {
		t.Errorf("err = %v", err)
	}
}
