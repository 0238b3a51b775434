package online

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/kubeboot/kubeboot/inventory"
)

// Labels and the taint kubeadm v1.34 puts on a control-plane node.
const (
	LabelControlPlane       = "node-role.kubernetes.io/control-plane"
	LabelExcludeFromLB      = "node.kubernetes.io/exclude-from-external-load-balancers"
	TaintControlPlaneKey    = LabelControlPlane
	TaintControlPlaneEffect = corev1.TaintEffectNoSchedule
)

// nodePollInterval is how often MarkControlPlane looks for the Node again.
const nodePollInterval = 500 * time.Millisecond

// ControlPlaneTaints returns the taints a control-plane node gets: node.taints,
// or kubeadm's default when unset.
func ControlPlaneTaints(n inventory.Node) []corev1.Taint {
	if n.Taints == nil {
		return []corev1.Taint{{Key: TaintControlPlaneKey, Effect: TaintControlPlaneEffect}}
	}
	out := make([]corev1.Taint, 0, len(*n.Taints))
	for _, t := range *n.Taints {
		out = append(out, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return out
}

// MarkControlPlane labels and taints the Node n once its kubelet
// registered it (waiting up to wait), as kubeadm's mark-control-plane.
func MarkControlPlane(ctx context.Context, a API, n inventory.Node, wait time.Duration) error {
	const tag = "mark-control-plane"
	name := n.Name
	if name == "" {
		return fmt.Errorf("the node name is empty; set node.name or --node-name")
	}
	labels := []string{LabelControlPlane, LabelExcludeFromLB}
	taints := ControlPlaneTaints(n)
	var taintNames []string
	for _, t := range taints {
		taintNames = append(taintNames, TaintString(t))
	}
	if a.DryRun {
		a.Out.Printf("dryrun", "Would mark the node %s as control-plane by adding the labels: [%s]", name, strings.Join(labels, " "))
		a.Out.Printf("dryrun", "Would mark the node %s as control-plane by adding the taints [%s]", name, strings.Join(taintNames, " "))
		return nil
	}
	nodes := a.Kube.CoreV1().Nodes()
	var err error

	// The kubelet registers the Node shortly after it starts.
	deadline := time.Now().Add(wait)
	for {
		_, err = nodes.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("get Node %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Node %s is not registered after %s: the kubelet registers it; look at `systemctl status kubelet` and `journalctl -xeu kubelet` on that node (and check that node.name is the kubelet's node name)", name, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(nodePollInterval):
		}
	}

	var addedLabels, addedTaints []string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		addedLabels, addedTaints = nil, nil
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		for _, l := range labels {
			if v, ok := n.Labels[l]; !ok || v != "" {
				n.Labels[l] = ""
				addedLabels = append(addedLabels, l)
			}
		}
		for _, t := range taints {
			if !hasTaint(n.Spec.Taints, t) {
				n.Spec.Taints = append(n.Spec.Taints, t)
				addedTaints = append(addedTaints, TaintString(t))
			}
		}
		if len(addedLabels) == 0 && len(addedTaints) == 0 {
			return nil
		}
		_, err = nodes.Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("mark the Node %s as control-plane: %w", name, err)
	}
	if len(addedLabels) == 0 && len(addedTaints) == 0 {
		a.Out.Printf(tag, "The node %s already has the control-plane labels [%s] and taints [%s]; nothing to change", name, strings.Join(labels, " "), strings.Join(taintNames, " "))
		return nil
	}
	if len(addedLabels) > 0 {
		a.Out.Printf(tag, "Marking the node %s as control-plane by adding the labels: [%s]", name, strings.Join(addedLabels, " "))
	}
	if len(addedTaints) > 0 {
		a.Out.Printf(tag, "Marking the node %s as control-plane by adding the taints [%s]", name, strings.Join(addedTaints, " "))
	}
	return nil
}

func hasTaint(list []corev1.Taint, t corev1.Taint) bool {
	for _, x := range list {
		if x.Key == t.Key && x.Value == t.Value && x.Effect == t.Effect {
			return true
		}
	}
	return false
}

// taintString is kubectl's key[=value]:effect.
func TaintString(t corev1.Taint) string {
	s := t.Key
	if t.Value != "" {
		s += "=" + t.Value
	}
	return s + ":" + string(t.Effect)
}
