//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/templates"
	"github.com/kubeboot/kubeboot/templates/addons"
	"github.com/kubeboot/kubeboot/test/e2e/components"
	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
)

// testImage is the scenario's application image (nettest), imported on
// every node besides the bundle, as a user loads their own images.
const testImage = "example.local/kubeboot-e2e/nettest:v1"

// built is everything the scenario needs from the build stages.
type built struct {
	rootfs     string // the machines' root file system
	kubectl    string // the kubectl the checks run on the host
	bundle     string // kubeboot's offline bundle
	testImages string // the test application's image archive
	// Not in the bundle: what the scenario copies into machines itself.
	kubeadm   string // the real kubeadm, for the kubeadm reference
	kubeBench string // kube-bench; its cfg/ (the benchmarks) is beside it
}

// buildAll builds (or finds in the cache) every input: the rootfs, the
// Kubernetes, add-on and Debian components, the images, and packs the
// bundle with `kubeboot bundle create` into workDir; and, outside the
// bundle, the real kubeadm and kube-bench. On 2 cores the
// downloads (debootstrap, apt) run beside the compiles, nothing else does.
func buildAll(ctx context.Context, st *stages, logf func(string, ...any), repo, kubeboot, workDir, logDir string) (*built, error) {
	b := &components.Builder{Repo: repo, Cache: nspawn.CacheDir(), Logf: logf}
	out := &built{}
	var (
		wg                sync.WaitGroup
		rootfsErr, debErr error
		base              string
		debs, lbDebs      map[string]components.Deb
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		rootfsErr = st.run("rootfs (debootstrap, cached)", func() error {
			var err error
			out.rootfs, _, err = nspawn.EnsureRootfs(ctx, b.Cache, nspawn.DefaultRootfs, logf)
			return err
		})
		if rootfsErr == nil {
			rootfsErr = st.run("image base layer (from the rootfs)", func() error {
				var err error
				base, err = b.BaseLayer(ctx, out.rootfs, nspawn.DefaultRootfs.Key())
				return err
			})
		}
	}()
	go func() {
		defer wg.Done()
		debErr = st.run("Debian packages (containerd, runc, CNI; haproxy, keepalived and their libraries)", func() error {
			var err error
			if debs, err = b.Debs(ctx, components.DebianPackages...); err != nil {
				return err
			}
			lbDebs, err = b.Debs(ctx, components.LBPackages...)
			return err
		})
	}()
	var k8s string
	var add components.Addons
	var tools components.Tools
	var crictl string
	err := st.run("Kubernetes v1.34.3 + etcd v3.6.5 binaries", func() (err error) {
		k8s, err = b.Kubernetes(ctx)
		return err
	})
	if err == nil {
		err = st.run("crictl "+components.CrictlVersion+" (cri-tools)", func() (err error) {
			crictl, err = b.Crictl(ctx)
			return err
		})
	}
	if err == nil {
		err = st.run("kubeadm "+components.KubernetesVersion+" (the reference, not in the bundle)", func() (err error) {
			out.kubeadm, err = b.Kubeadm(ctx)
			return err
		})
	}
	if err == nil {
		err = st.run("kube-bench "+components.KubeBenchVersion+" (CIS benchmark, not in the bundle)", func() (err error) {
			out.kubeBench, err = b.KubeBench(ctx)
			return err
		})
	}
	if err == nil {
		err = st.run("CoreDNS, flanneld, flannel CNI binaries", func() (err error) {
			add, err = b.Addons(ctx)
			return err
		})
	}
	if err == nil {
		err = st.run("pause, nettest, mkimages", func() (err error) {
			tools, err = b.Tools(ctx)
			return err
		})
	}
	wg.Wait()
	for _, e := range []error{err, rootfsErr, debErr} {
		if e != nil {
			return nil, e
		}
	}
	out.kubectl = filepath.Join(k8s, "kubectl")

	cfg := inventory.Default()
	bin := func(name string) string { return filepath.Join(k8s, name) }
	withBase := func(tag, file, dst string) components.Image {
		return components.Image{Tag: tag, Base: true, Files: [][2]string{{file, dst}}, Entrypoint: []string{dst}}
	}
	images := []components.Image{
		{Tag: templates.Image(cfg, templates.Pause), Files: [][2]string{{tools.Pause, "/pause"}}, Entrypoint: []string{"/pause"}},
		withBase(templates.Image(cfg, templates.Etcd), bin("etcd"), "/usr/local/bin/etcd"),
		withBase(templates.Image(cfg, templates.KubeAPIServer), bin("kube-apiserver"), "/usr/local/bin/kube-apiserver"),
		withBase(templates.Image(cfg, templates.KubeControllerManager), bin("kube-controller-manager"), "/usr/local/bin/kube-controller-manager"),
		withBase(templates.Image(cfg, templates.KubeScheduler), bin("kube-scheduler"), "/usr/local/bin/kube-scheduler"),
		// kube-proxy execs iptables, ip6tables, iptables-restore and conntrack: the base layer has them.
		withBase(templates.Image(cfg, templates.KubeProxy), bin("kube-proxy"), "/usr/local/bin/kube-proxy"),
		withBase(templates.Image(cfg, templates.CoreDNS), add.CoreDNS, "/coredns"),
		// flanneld execs iptables; the install-cni init container runs cp.
		withBase(addons.FlannelImage, add.Flanneld, "/opt/bin/flanneld"),
		// The install-cni-plugin init container runs cp -f /flannel /opt/cni/bin/flannel.
		withBase(addons.FlannelCNIPluginImage, add.FlannelCNI, "/flannel"),
	}
	// haproxy (control planes; workers too with loadBalancer.kind local)
	// and keepalived (control planes, kind vip) from Debian's packages, on
	// the base layer (keepalived's track script runs bash), under the names
	// their static pods reference. Neither is in bundle.ControlPlaneImages:
	// a worker's part of the bundle (bundle.Slice) keeps both.
	if err := st.run("haproxy "+components.HAProxyVersion+", keepalived "+components.KeepalivedVersion+" image files (Debian)", func() error {
		lb, err := components.LBImages(out.rootfs, lbDebs, templates.HAProxyImage(cfg), templates.KeepalivedImage(cfg))
		for _, img := range lb {
			images = append(images, img.Image)
		}
		return err
	}); err != nil {
		return nil, err
	}
	var imagesTar string
	if err := st.run(fmt.Sprintf("images (%d, go-containerregistry)", len(images)+1), func() (err error) {
		if imagesTar, err = b.Images(ctx, tools.MkImages, base, images); err != nil {
			return err
		}
		app := withBase(testImage, tools.NetTest, "/usr/local/bin/nettest")
		app.Cmd = []string{"sleep"}
		out.testImages, err = b.Images(ctx, tools.MkImages, base, []components.Image{app})
		return err
	}); err != nil {
		return nil, err
	}
	b.PruneImages(imagesTar, out.testImages)
	for _, f := range []string{imagesTar, out.testImages} {
		if fi, err := os.Stat(f); err == nil {
			st.note("image archive %s: %d MiB", filepath.Base(f), fi.Size()>>20)
		}
	}

	containerd, runc, cni := debs["containerd"], debs["runc"], debs["containernetworking-plugins"]
	spec := fmt.Sprintf(`apiVersion: kubeboot.io/v1alpha1
kind: BundleSpec
kubernetesVersion: %[1]s
binaries:
  - {name: kubelet, version: %[1]s, path: %[2]s}
  - {name: kubectl, version: %[1]s, path: %[3]s}
  - {name: containerd, version: %[4]q, path: %[5]s}
  - {name: containerd-shim-runc-v2, version: %[4]q, path: %[6]s}
  - {name: ctr, version: %[4]q, path: %[7]s}
  - {name: runc, version: %[8]q, path: %[9]s}
  - {name: crictl, version: %[13]s, path: %[14]s}
cniPlugins:
  version: %[10]q
  dir: %[11]s
images:
  - path: %[12]s
`, components.KubernetesVersion, bin("kubelet"), bin("kubectl"),
		containerd.Version, containerd.Path("usr/bin/containerd"), containerd.Path("usr/bin/containerd-shim-runc-v2"), containerd.Path("usr/bin/ctr"),
		runc.Version, runc.Path("usr/sbin/runc"),
		cni.Version, cni.Path("usr/lib/cni"), imagesTar,
		components.CrictlVersion, crictl)
	specFile := filepath.Join(logDir, "bundle.yaml")
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		return nil, err
	}
	out.bundle = filepath.Join(workDir, "kubeboot-"+components.KubernetesVersion+"-amd64.tar")
	if err := st.run("bundle (kubeboot bundle create)", func() error {
		cmd := exec.CommandContext(ctx, kubeboot, "bundle", "create", "--spec", specFile, "-o", out.bundle)
		o, err := cmd.CombinedOutput()
		logf("%s", strings.TrimSpace(string(o)))
		if err != nil {
			return fmt.Errorf("kubeboot bundle create: %v", err)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(out.bundle); err == nil {
		st.note("bundle %s: %d MiB (containerd %s, runc %s, CNI plugins %s, crictl %s)", filepath.Base(out.bundle), fi.Size()>>20, containerd.Version, runc.Version, cni.Version, components.CrictlVersion)
	}
	return out, nil
}
