package nodestatus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeboot/kubeboot/inventory"
)

func (c *Collector) apiServer(ctx context.Context, cfg *inventory.Cluster, cp bool) APIServer {
	var a APIServer
	port := cfg.Node.BindPort
	if port == 0 {
		port = inventory.DefaultBindPort
	}
	endpoint := endpointURL(cfg, port) + "/readyz"
	var local string
	serverName := ""
	if cp {
		host := cfg.Node.AdvertiseAddress
		if host == "" {
			// The serving certificate carries the advertise address and
			// "kubernetes", not 127.0.0.1.
			host, serverName = "127.0.0.1", "kubernetes"
		}
		local = "https://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/readyz"
	}
	pool, err := c.clusterCA(ctx, cfg, cp)
	if err != nil {
		fail := func(u string) *Probe { return &Probe{URL: u, Error: err.Error()} }
		a.Endpoint = fail(endpoint)
		if cp {
			a.Local = fail(local)
		}
		return a
	}
	done := make(chan struct{})
	if cp {
		go func() { defer close(done); a.Local = c.readyz(ctx, pool, serverName, local) }()
	} else {
		close(done)
	}
	a.Endpoint = c.readyz(ctx, pool, "", endpoint)
	<-done
	return a
}

// endpointURL is https://<controlPlaneEndpoint> (its port: bindPort when
// it names none), else this node's advertise address.
func endpointURL(cfg *inventory.Cluster, port int) string {
	ep := cfg.ControlPlaneEndpoint
	if ep == "" {
		return "https://" + net.JoinHostPort(cfg.Node.AdvertiseAddress, strconv.Itoa(port))
	}
	if _, _, err := net.SplitHostPort(ep); err == nil {
		return "https://" + ep
	}
	return "https://" + net.JoinHostPort(strings.Trim(ep, "[]"), strconv.Itoa(port))
}

// clusterCA is the cluster CA: <certificatesDir>/ca.crt (a control plane's,
// or the one join wrote on a worker), else the CA of kubelet.conf.
func (c *Collector) clusterCA(ctx context.Context, cfg *inventory.Cluster, cp bool) (*x509.CertPool, error) {
	dir := cfg.CertificatesDir
	if dir == "" {
		dir = "/etc/kubernetes/pki"
	}
	file := path.Join(dir, "ca.crt")
	data, err := c.Host.ReadFile(ctx, file)
	if err == nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s holds no certificate", file)
		}
		return pool, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	if cp {
		return nil, fmt.Errorf("%s is missing: this control plane is not set up (kubeboot apply)", file)
	}
	kc, kerr := c.Host.ReadFile(ctx, inventory.KubeletKubeconfig)
	if kerr != nil {
		if errors.Is(kerr, fs.ErrNotExist) {
			return nil, fmt.Errorf("neither %s nor %s is there: this node has not joined (kubeboot apply)", file, inventory.KubeletKubeconfig)
		}
		return nil, fmt.Errorf("read %s: %w", inventory.KubeletKubeconfig, kerr)
	}
	return kubeconfigCA(ctx, c, kc)
}

// kubeconfigCA is the CA of a kubeconfig's current cluster (inline, or
// the file it names).
func kubeconfigCA(ctx context.Context, c *Collector, data []byte) (*x509.CertPool, error) {
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", inventory.KubeletKubeconfig, err)
	}
	clusterName := ""
	if cur, ok := kc.Contexts[kc.CurrentContext]; ok {
		clusterName = cur.Cluster
	}
	cl, ok := kc.Clusters[clusterName]
	if !ok {
		for _, x := range kc.Clusters {
			cl = x
			break
		}
	}
	if cl == nil {
		return nil, fmt.Errorf("%s names no cluster", inventory.KubeletKubeconfig)
	}
	ca := cl.CertificateAuthorityData
	if len(ca) == 0 && cl.CertificateAuthority != "" {
		if ca, err = c.Host.ReadFile(ctx, cl.CertificateAuthority); err != nil {
			return nil, fmt.Errorf("the CA %s names: %w", inventory.KubeletKubeconfig, err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no CA certificate", inventory.KubeletKubeconfig)
	}
	return pool, nil
}

// readyz GETs u anonymously (the API server lets anyone read /readyz),
// verifying the server against pool (as serverName when set), within
// c.Timeout; no proxy.
func (c *Collector) readyz(ctx context.Context, pool *x509.CertPool, serverName, u string) *Probe {
	p := &Probe{URL: u}
	tr := &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	defer func() { p.TookMS = time.Since(start).Milliseconds() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		p.Error = err.Error()
		return p
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		p.Error = describe(err).Error()
		return p
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	p.Status = resp.StatusCode
	p.OK = resp.StatusCode == http.StatusOK
	if !p.OK {
		msg := strings.TrimSpace(string(body))
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			// /readyz's verbose answer ends with "readyz check failed";
			// the failing checks are the lines starting with "[-]".
			var failed []string
			for _, l := range strings.Split(msg, "\n") {
				if f := strings.Fields(strings.TrimPrefix(l, "[-]")); strings.HasPrefix(l, "[-]") && len(f) > 0 {
					failed = append(failed, f[0])
				}
			}
			if len(failed) > 0 {
				msg = "failed: " + strings.Join(failed, ", ")
			}
		}
		p.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg)
	}
	return p
}

// describe shortens a client error: the URL is in the Probe already.
func describe(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("no answer within the timeout")
	}
	return err
}
