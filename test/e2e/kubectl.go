//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubectl runs the kubectl built for the bundle on the host, against the
// cluster's API server on the bridge, with the admin.conf copied out of
// the first control-plane node.
type kubectl struct {
	bin, kubeconfig string
}

// run runs kubectl with a bounded time and returns stdout; an error
// carries stderr.
func (k *kubectl) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig, "--request-timeout", "30s"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// get decodes `kubectl get ... -o json` into v.
func (k *kubectl) get(ctx context.Context, v any, args ...string) error {
	out, err := k.run(ctx, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

func (k *kubectl) pods(ctx context.Context, args ...string) ([]corev1.Pod, error) {
	var l corev1.PodList
	err := k.get(ctx, &l, append([]string{"pods"}, args...)...)
	return l.Items, err
}

// eventually retries f every interval until it succeeds or timeout passes,
// and returns f's last error.
func eventually(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// snapshotPods records every pod's UID and its containers' IDs and restart counts.
func snapshotPods(ctx context.Context, k *kubectl) (map[string]podState, error) {
	pods, err := k.pods(ctx, "--all-namespaces")
	if err != nil {
		return nil, err
	}
	out := map[string]podState{}
	for _, p := range pods {
		ps := podState{UID: string(p.UID), Containers: map[string]containerState{}, Node: p.Spec.NodeName}
		for _, c := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			ps.Containers[c.Name] = containerState{ID: c.ContainerID, Restarts: c.RestartCount}
		}
		out[p.Namespace+"/"+p.Name] = ps
	}
	return out, nil
}
