package phases

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"text/template"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases/online"
)

// withheld replaces a token or key the user asked not to print (kubeadm's
// wording).
const withheld = "<value withheld>"

// JoinCommand is `kubeboot join`'s command line as kubeadm prints it.
type JoinCommand struct {
	// Endpoint is the API server's host:port.
	Endpoint string
	Token    string
	// CACertHashes are the CA pins, "sha256:<hex>".
	CACertHashes []string
	// ControlPlane adds --control-plane (and CertificateKey, when set,
	// --certificate-key).
	ControlPlane   bool
	CertificateKey string
	// SkipTokenPrint and SkipCertificateKeyPrint print kubeadm's "<value
	// withheld>" instead.
	SkipTokenPrint          bool
	SkipCertificateKeyPrint bool
}

// String is the command in kubeadm's layout: continuation lines indented
// with a tab.
func (j JoinCommand) String() string {
	token, key := j.Token, j.CertificateKey
	if j.SkipTokenPrint {
		token = withheld
	}
	if j.SkipCertificateKeyPrint && key != "" {
		key = withheld
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kubeboot join %s --token %s \\\n\t", j.Endpoint, token)
	for _, h := range j.CACertHashes {
		fmt.Fprintf(&b, "--discovery-token-ca-cert-hash %s ", h)
	}
	if j.ControlPlane {
		b.WriteString("\\\n\t--control-plane ")
		if key != "" {
			fmt.Fprintf(&b, "--certificate-key %s", key)
		}
	}
	return b.String()
}

// OneLine is the command on one line, as `token create --print-join-command`
// prints it.
func (j JoinCommand) OneLine() string {
	s := strings.ReplaceAll(j.String(), "\\\n\t", "")
	return strings.TrimSpace(s)
}

// JoinTargetFromKubeconfig reads the API server endpoint (host:port) and the
// CA pins of the current cluster of a kubeconfig, as kubeadm builds the join
// command from admin.conf.
func JoinTargetFromKubeconfig(kubeconfig []byte) (endpoint string, pins []string, err error) {
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return "", nil, err
	}
	name := ""
	if ctx, ok := kc.Contexts[kc.CurrentContext]; ok {
		name = ctx.Cluster
	}
	cluster, ok := kc.Clusters[name]
	if !ok {
		if len(kc.Clusters) != 1 {
			return "", nil, fmt.Errorf("the kubeconfig has no current cluster")
		}
		for _, c := range kc.Clusters {
			cluster = c
		}
	}
	ca := cluster.CertificateAuthorityData
	if len(ca) == 0 && cluster.CertificateAuthority != "" {
		return "", nil, fmt.Errorf("the kubeconfig's cluster names its CA file %s instead of embedding it: use one with certificate-authority-data (admin.conf)", cluster.CertificateAuthority)
	}
	cas, err := certutil.ParseCertsPEM(ca)
	if err != nil {
		return "", nil, fmt.Errorf("the kubeconfig's certificate-authority-data: %w", err)
	}
	endpoint, err = endpointOf(cluster.Server)
	if err != nil {
		return "", nil, err
	}
	return endpoint, caPins(cas), nil
}

func caPins(cas []*x509.Certificate) []string {
	var pins []string
	for _, c := range cas {
		pins = append(pins, certs.CAPublicKeyHash(c))
	}
	return pins
}

// endpointOf turns https://host:port into host:port.
func endpointOf(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("API server URL %q is not https://host:port", server)
	}
	return u.Host, nil
}

// ShowJoinCommandPhase is kubeadm's `show-join-command`: the "initialized
// successfully" text with the worker join command and, with a
// controlPlaneEndpoint, the control-plane one (with --certificate-key when
// the certificates were uploaded).
func ShowJoinCommandPhase() *Phase {
	return &Phase{
		Name:  "show-join-command",
		Short: "Show the join command for control-plane and worker node",
		Run:   runShowJoinCommand,
	}
}

var initDoneTemplate = template.Must(template.New("init").Parse(`
Your Kubernetes control-plane has initialized successfully!

To start using your cluster, you need to run the following as a regular user:

  mkdir -p $HOME/.kube
  sudo cp -i {{.KubeConfigPath}} $HOME/.kube/config
  sudo chown $(id -u):$(id -g) $HOME/.kube/config

Alternatively, if you are the root user, you can run:

  export KUBECONFIG={{.KubeConfigPath}}

{{if .CNI -}}
The pod network add-on {{.CNI}} is installed (pod subnet {{.PodSubnet}}).
{{- else -}}
You should now deploy a pod network to the cluster (cni.plugin is none).
Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:
  https://kubernetes.io/docs/concepts/cluster-administration/addons/
{{- end}}

{{if .ControlPlaneEndpoint -}}
{{if .UploadCerts -}}
You can now join any number of control-plane nodes running the following command on each as root:

  {{.JoinControlPlane}}

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!
As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use
"kubeboot init phase upload-certs --upload-certs" to reload certs afterward.

{{else -}}
You can now join any number of control-plane nodes by copying certificate authorities
and service account keys on each node and then running the following as root:

  {{.JoinControlPlane}}

{{end}}{{else if .UploadCerts -}}
The certificates were uploaded, but controlPlaneEndpoint is not set: control-plane
nodes can only join a cluster with a stable endpoint (set controlPlaneEndpoint, or
--control-plane-endpoint, from the start).

{{end}}Then you can join any number of worker nodes by running the following on each as root:

{{.JoinWorker}}
`))

func runShowJoinCommand(ctx context.Context, d *Data) error {
	if d.Init.Token == "" {
		// Run alone: an existing token that init would reuse.
		c, err := d.Client(ctx)
		if err != nil {
			return err
		}
		info, err := online.ReusableToken(ctx, c.CoreV1().Secrets(metav1.NamespaceSystem), d.Clock())
		if err != nil {
			return err
		}
		if info == nil {
			return fmt.Errorf("no bootstrap token to print: run the bootstrap-token phase first (or pass --token), or make one with `kubeboot token create --print-join-command`")
		}
		d.Init.Token = info.Token.String()
	}
	b, caPath, err := d.clusterCA(ctx)
	if err != nil {
		return err
	}
	cas, err := certutil.ParseCertsPEM(b)
	if err != nil {
		return fmt.Errorf("%s: %w", caPath, err)
	}
	endpoint, err := endpointOf(inventory.ControlPlaneEndpoint(d.Cfg))
	if err != nil {
		return err
	}
	j := JoinCommand{
		Endpoint:                endpoint,
		Token:                   d.Init.Token,
		CACertHashes:            caPins(cas),
		SkipTokenPrint:          d.Init.SkipTokenPrint,
		SkipCertificateKeyPrint: d.Init.SkipCertificateKeyPrint,
	}
	cp := j
	cp.ControlPlane = true
	if d.Init.UploadCerts {
		cp.CertificateKey = d.Init.CertificateKey
	}
	cni := d.Cfg.CNI.Plugin
	if cni == inventory.CNINone {
		cni = ""
	}
	var out strings.Builder
	if err := initDoneTemplate.Execute(&out, map[string]any{
		"KubeConfigPath":       inventory.AdminKubeconfig,
		"CNI":                  cni,
		"PodSubnet":            d.Cfg.Networking.PodSubnet,
		"ControlPlaneEndpoint": d.Cfg.ControlPlaneEndpoint,
		"UploadCerts":          d.Init.UploadCerts && d.Init.CertificateKey != "",
		"JoinControlPlane":     cp.String(),
		"JoinWorker":           j.String(),
	}); err != nil {
		return err
	}
	d.Out.Printf("", "%s", out.String())
	return nil
}
