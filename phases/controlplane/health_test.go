package controlplane

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
)

func TestHealthChecksFollowTheConfig(t *testing.T) {
	cfg := inventory.Default()
	cfg.Node.Name = "cp1"
	cfg.Node.AdvertiseAddress = "fd00::11"
	cfg.ControllerManager.ExtraArgs = map[string]string{"bind-address": "0.0.0.0", "secure-port": "20257"}
	cfg.Scheduler.ExtraArgs = map[string]string{"bind-address": "fd00::11"}
	cfg.Etcd.Local.ExtraArgs = map[string]string{"listen-metrics-urls": "http://[::]:2391"}
	var got []string
	for _, c := range HealthChecks(cfg) {
		got = append(got, c.Component+" "+c.URL)
	}
	want := "kube-apiserver https://[fd00::11]:6443/livez,kube-apiserver https://[fd00::11]:6443/readyz,kube-controller-manager https://127.0.0.1:20257/healthz,kube-scheduler https://[fd00::11]:10259/livez,etcd http://[::1]:2391/readyz"
	if strings.Join(got, ",") != want {
		t.Errorf("checks\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	// An IPv6 node with the default static pods: the controller-manager and
	// scheduler still bind (and are probed on) 127.0.0.1, etcd's metrics
	// listen on ::1.
	cfg.ControllerManager.ExtraArgs = nil
	cfg.Scheduler.ExtraArgs = map[string]string{"bind-address": "::"}
	cfg.Etcd.Local.ExtraArgs = nil
	got = nil
	for _, c := range HealthChecks(cfg) {
		got = append(got, c.Component+" "+c.URL)
	}
	want = "kube-apiserver https://[fd00::11]:6443/livez,kube-apiserver https://[fd00::11]:6443/readyz,kube-controller-manager https://127.0.0.1:10257/healthz,kube-scheduler https://[::1]:10259/livez,etcd http://[::1]:2381/readyz"
	if strings.Join(got, ",") != want {
		t.Errorf("IPv6 defaults\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	// The check asks where the static pod's own probe asks.
	kcm, err := templates.ControllerManagerPod(cfg)
	if err != nil {
		t.Fatal(err)
	}
	probe := kcm.Spec.Containers[0].LivenessProbe.HTTPGet
	if u := "https://" + net.JoinHostPort(probe.Host, "10257") + probe.Path; HealthChecks(cfg)[2].URL != u {
		t.Errorf("kube-controller-manager is checked at %s, its probe asks %s", HealthChecks(cfg)[2].URL, u)
	}
	cfg.Etcd = inventory.Etcd{External: &inventory.ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}}}
	for _, c := range HealthChecks(cfg) {
		if c.Component == "etcd" {
			t.Errorf("external etcd is checked: %v", c)
		}
	}
}

func TestHealthChecksWaitForTheVIP(t *testing.T) {
	cfg := inventory.Default()
	cfg.Node.AdvertiseAddress = "10.0.0.11"
	cfg.LoadBalancer = &inventory.LoadBalancer{Kind: inventory.LBVIP, VIP: "10.0.0.100"}
	inventory.SetDefaults(cfg)
	var got []string
	for _, c := range HealthChecks(cfg) {
		got = append(got, c.URL)
	}
	if !slices.Contains(got, "https://10.0.0.100:8443/readyz") {
		t.Errorf("checks %v do not wait for the VIP", got)
	}
	cfg.LoadBalancer.Kind = inventory.LBExternal
	for _, c := range HealthChecks(cfg) {
		if strings.Contains(c.URL, "10.0.0.100") {
			t.Errorf("kind external: kubeboot does not run that load balancer, yet %s is waited for", c.URL)
		}
	}
}
