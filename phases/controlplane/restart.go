package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/encryption"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/transport"
)

// RestartDir is where Restart keeps a manifest while its Pod is stopped
// (kubeadm's upgrade keeps its backups under /etc/kubernetes/tmp too).
var RestartDir = path.Join(inventory.KubernetesDir, "tmp", "kubeboot-restart")

// Restart restarts the static Pod of component on h so that it reads its
// files again (renewed certificates): its manifest moves out of the
// kubelet's manifest directory, and once every health endpoint of the
// component stops answering (the kubelet stopped its containers) it moves
// back and Restart waits until they answer again. The manifest goes back
// whatever happens. A component without a manifest is not restarted.
func (w Wait) Restart(ctx context.Context, h transport.Host, cfg *inventory.Cluster, component string) (restarted bool, err error) {
	const tag = "restart"
	manifest := inventory.ManifestPath(component)
	pod, err := h.ReadFile(ctx, manifest)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", manifest, err)
	}
	var urls []string
	for _, c := range HealthChecks(cfg) {
		if c.Component == component {
			urls = append(urls, c.URL)
		}
	}
	if len(urls) == 0 {
		return false, fmt.Errorf("no health check for %s: cannot tell when it stopped", component)
	}
	running := false
	for _, u := range urls {
		if _, _, err := w.Health.Get(ctx, u); err == nil {
			running = true
		}
	}
	if !running {
		w.Out.Printf(tag, "%s does not answer at %s: not running, so not restarted (it reads the new files when the kubelet starts it)", component, urls[0])
		return false, nil
	}
	backup := path.Join(RestartDir, component+".yaml")
	if err := h.WriteFile(ctx, backup, pod, 0o600); err != nil {
		return false, fmt.Errorf("keep %s: %w", manifest, err)
	}
	start := w.now()
	w.Out.Printf(tag, "Restarting %s: moving %s out until it stops", component, manifest)
	if err := h.Remove(ctx, manifest); err != nil {
		return false, fmt.Errorf("remove %s: %w", manifest, err)
	}
	restore := func() error {
		if err := h.WriteFile(ctx, manifest, pod, 0o600); err != nil {
			return fmt.Errorf("put %s back (a copy is in %s): %w", manifest, backup, err)
		}
		return h.Remove(ctx, backup)
	}
	timeout := HealthTimeout(cfg)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	derr := w.waitDown(dctx, urls)
	cancel()
	if err := restore(); err != nil {
		return true, err
	}
	if derr != nil {
		return true, fmt.Errorf("%s did not stop within %s after its manifest was moved out (%v): it is back in place; look at `journalctl -xeu kubelet` on %s", component, timeout, derr, w.Host)
	}
	w.Out.Printf(tag, "%s stopped after %s; its manifest is back", component, w.now().Sub(start).Round(time.Millisecond))
	uctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, u := range urls {
		if err := pollHealthy(uctx, w.Health, u); err != nil {
			return true, fmt.Errorf("%s is not healthy within %s after its restart (%s: %v); look at `journalctl -xeu kubelet` and its container's log on %s", component, timeout, u, err, w.Host)
		}
	}
	w.Out.Printf(tag, "%s is healthy again after %s", component, w.now().Sub(start).Round(time.Millisecond))
	return true, nil
}

// Reload makes kube-apiserver on h read its files again by giving its
// manifest the current APIServerConfigHash: the kubelet replaces the Pod
// with a new one (no restart back-off, unlike Restart's same Pod), and
// Reload waits until the old one stopped answering and the new one is
// healthy. When the manifest already carries the files' hash, nothing
// restarts and the error is encryption.ErrUpToDate. reloaded is false
// when there is no manifest.
func (w Wait) Reload(ctx context.Context, h transport.Host, cfg *inventory.Cluster) (reloaded bool, err error) {
	const tag, component = "restart", templates.KubeAPIServer
	manifest := inventory.ManifestPath(component)
	b, err := h.ReadFile(ctx, manifest)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", manifest, err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		return false, fmt.Errorf("%s: %w", manifest, err)
	}
	hash, err := APIServerConfigHash(ctx, h)
	if err != nil {
		return false, err
	}
	if hash == "" || pod.Annotations[templates.ConfigHashAnnotation] == hash {
		return false, fmt.Errorf("%s already carries the hash of the API server's files (%q): %w", manifest, hash, encryption.ErrUpToDate)
	}
	WithConfigHash(&pod, hash)
	data, err := templates.MarshalPod(&pod)
	if err != nil {
		return false, err
	}
	var urls []string
	for _, c := range HealthChecks(cfg) {
		if c.Component == component {
			urls = append(urls, c.URL)
		}
	}
	start := w.now()
	w.Out.Printf(tag, "Restarting %s: its files changed (%s %s)", component, templates.ConfigHashAnnotation, hash[:12])
	if err := h.WriteFile(ctx, manifest, data, 0o600); err != nil {
		return false, fmt.Errorf("write %s: %w", manifest, err)
	}
	timeout := HealthTimeout(cfg)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	derr := w.waitDown(dctx, urls)
	cancel()
	if derr != nil {
		return true, fmt.Errorf("%s did not stop within %s after its manifest changed (%v); look at `journalctl -xeu kubelet` on %s", component, timeout, derr, w.Host)
	}
	w.Out.Printf(tag, "%s stopped after %s", component, w.now().Sub(start).Round(time.Millisecond))
	uctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, u := range urls {
		if err := pollHealthy(uctx, w.Health, u); err != nil {
			return true, fmt.Errorf("%s is not healthy within %s after its restart (%s: %v); look at `journalctl -xeu kubelet` and its container's log on %s", component, timeout, u, err, w.Host)
		}
	}
	w.Out.Printf(tag, "%s is healthy again after %s", component, w.now().Sub(start).Round(time.Millisecond))
	return true, nil
}

// waitDown waits until no URL answers at all (its process is gone).
func (w Wait) waitDown(ctx context.Context, urls []string) error {
	for {
		up := ""
		for _, u := range urls {
			if _, _, err := w.Health.Get(ctx, u); err == nil {
				up = u
				break
			}
		}
		if up == "" {
			return ctx.Err() // nil unless the errors were the deadline's
		}
		t := time.NewTimer(healthCheckInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s still answers", up)
		case <-t.C:
		}
	}
}

// AdvertisedEndpoint is the address and port the API server on h
// advertises: its manifest's kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint
// annotation. ok is false when h has no API server manifest.
func AdvertisedEndpoint(ctx context.Context, h transport.Host) (address string, port int, ok bool, err error) {
	manifest := inventory.ManifestPath("kube-apiserver")
	b, err := h.ReadFile(ctx, manifest)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("read %s: %w", manifest, err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(b, &pod); err != nil {
		return "", 0, false, fmt.Errorf("%s: %w", manifest, err)
	}
	ep := pod.Annotations[templates.AdvertiseAddressAnnotation]
	host, p, err := net.SplitHostPort(ep)
	if err != nil {
		return "", 0, false, fmt.Errorf("%s: annotation %s: %q is not host:port", manifest, templates.AdvertiseAddressAnnotation, ep)
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		return "", 0, false, fmt.Errorf("%s: annotation %s: %q is not host:port", manifest, templates.AdvertiseAddressAnnotation, ep)
	}
	return host, port, true, nil
}
