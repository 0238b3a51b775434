package apiclient

import (
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RequestTimeout bounds one request of kubeboot's API clients: a hung API
// server must not hang a phase.
const RequestTimeout = 30 * time.Second

// Client-side rate limits. client-go's defaults (5 requests a second, bursts
// of 10) throttle init's online phases, which send a few dozen small
// requests in a row (bootstrap-token, addons, cni: each object a Get and a
// Create), by about 200 ms a request; kubectl's own defaults are 50 and 300.
const (
	QPS   = 50
	Burst = 100
)

// Tune sets kubeboot's timeout and rate limits on cfg and returns it.
func Tune(cfg *rest.Config) *rest.Config {
	cfg.Timeout = RequestTimeout
	cfg.QPS = QPS
	cfg.Burst = Burst
	return cfg
}

// RESTConfig is the client configuration of a kubeconfig file's bytes, with
// kubeboot's timeout and rate limits.
func RESTConfig(kubeconfig []byte) (*rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return Tune(cfg), nil
}
