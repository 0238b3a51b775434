package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/apiclient"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/online"
	"github.com/kubeboot/kubeboot/transport"
)

// API is what apply asks the cluster.
type API interface {
	// Nodes maps each Node's name to whether it is Ready.
	Nodes(ctx context.Context) (map[string]bool, error)
	// ReusableToken is a bootstrap token init would reuse, or "".
	ReusableToken(ctx context.Context) (string, error)
	// EnsureLabels sets labels on Node name; it says whether it changed any.
	EnsureLabels(ctx context.Context, name string, labels map[string]string) (bool, error)
	// EnsureAnnotation sets annotation key to value on Node name; it says
	// whether it changed it.
	EnsureAnnotation(ctx context.Context, name, key, value string) (bool, error)
	// StrayNodes are the Nodes labelled ManagedLabel whose names are not
	// in keep.
	StrayNodes(ctx context.Context, keep []string) ([]StrayNode, error)
}

// StrayNode is a Node kubeboot made whose host left the inventory.
type StrayNode struct {
	Name, Address string
	ControlPlane  bool
	// Host is the inventory's entry for it, as apply recorded it on the
	// Node (HostAnnotation), or nil.
	Host *inventory.Host
}

// Dialer is a Host that can open TCP connections from its side (an SSH
// connection: direct-tcpip), so the operator's machine needs no route to
// the API server.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// unwrapper is a Host wrapping another (the recorder).
type unwrapper interface{ Unwrap() transport.Host }

// Unwrap is the Host the recorder wraps.
func (r *recorder) Unwrap() transport.Host { return r.Host }

// NewAPI is the API of the cluster whose control plane h is: the node's own
// admin.conf, read over h, with every connection opened from h's side to
// the API server on 127.0.0.1:bindPort (TLS still checks the name the
// kubeconfig gives, which the serving certificate carries). A host that
// cannot dial (the local machine) connects directly.
func NewAPI(ctx context.Context, h transport.Host, bindPort int) (API, error) {
	c, err := KubeClient(ctx, h, bindPort)
	if err != nil {
		return nil, err
	}
	return &kubeAPI{c: c}, nil
}

// KubeClient is NewAPI's client-go client.
func KubeClient(ctx context.Context, h transport.Host, bindPort int) (kubernetes.Interface, error) {
	data, err := h.ReadFile(ctx, inventory.AdminKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", inventory.AdminKubeconfig, err)
	}
	cfg, err := apiclient.RESTConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", inventory.AdminKubeconfig, h.Name(), err)
	}
	for {
		u, ok := h.(unwrapper)
		if !ok {
			break
		}
		h = u.Unwrap()
	}
	if d, ok := h.(Dialer); ok {
		if bindPort == 0 {
			bindPort = inventory.DefaultBindPort
		}
		target := net.JoinHostPort("127.0.0.1", strconv.Itoa(bindPort))
		cfg.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", target)
		}
	}
	return kubernetes.NewForConfig(cfg)
}

type kubeAPI struct{ c kubernetes.Interface }

func (a *kubeAPI) Nodes(ctx context.Context) (map[string]bool, error) {
	list, err := a.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Nodes: %w", err)
	}
	out := map[string]bool{}
	for _, n := range list.Items {
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		out[n.Name] = ready
	}
	return out, nil
}

func (a *kubeAPI) StrayNodes(ctx context.Context, keep []string) ([]StrayNode, error) {
	list, err := a.c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ManagedLabel + "=true"})
	if err != nil {
		return nil, fmt.Errorf("list Nodes: %w", err)
	}
	var out []StrayNode
	for _, n := range list.Items {
		if slices.Contains(keep, n.Name) {
			continue
		}
		s := StrayNode{Name: n.Name}
		_, s.ControlPlane = n.Labels["node-role.kubernetes.io/control-plane"]
		for _, addr := range n.Status.Addresses {
			if addr.Type == corev1.NodeInternalIP && s.Address == "" {
				s.Address = addr.Address
			}
		}
		if rec := n.Annotations[HostAnnotation]; rec != "" {
			var h inventory.Host
			if err := json.Unmarshal([]byte(rec), &h); err == nil && h.Address != "" {
				h.Name = n.Name
				s.Host = &h
			}
		}
		out = append(out, s)
	}
	return out, nil
}

func (a *kubeAPI) EnsureAnnotation(ctx context.Context, name, key, value string) (bool, error) {
	n, err := a.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	if n.Annotations[key] == value {
		return false, nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return false, err
	}
	_, err = a.c.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
	return err == nil, err
}

func (a *kubeAPI) ReusableToken(ctx context.Context) (string, error) {
	info, err := online.ReusableToken(ctx, a.c.CoreV1().Secrets(metav1.NamespaceSystem), time.Now())
	if err != nil || info == nil {
		return "", err
	}
	return info.Token.String(), nil
}

func (a *kubeAPI) EnsureLabels(ctx context.Context, name string, labels map[string]string) (bool, error) {
	n, err := a.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	patch := map[string]string{}
	for k, v := range labels {
		if cur, ok := n.Labels[k]; !ok || cur != v {
			patch[k] = v
		}
	}
	if len(patch) == 0 {
		return false, nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": patch}})
	if err != nil {
		return false, err
	}
	if _, err := a.c.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, body, metav1.PatchOptions{}); err != nil {
		return false, err
	}
	return true, nil
}
