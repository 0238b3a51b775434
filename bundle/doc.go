// Package bundle builds and reads kubeboot's offline bundles: one tar archive
// (optionally gzip-compressed) holding the binaries and container images a
// node needs for one Kubernetes version, with a manifest of names, versions,
// sizes and sha256 sums, so that a node without internet access (an air gap,
// or a firewall that blocks registry.k8s.io) can be set up by
// `kubeboot init --bundle FILE` / `kubeboot join --bundle FILE`.
//
// # The spec (kubeboot bundle create --spec SPEC.yaml -o OUT.tar.gz)
//
//	apiVersion: kubeboot.io/v1alpha1
//	kind: BundleSpec
//	kubernetesVersion: v1.34.3
//	binaries:                       # name: one of the names below; path: the file to pack
//	  - {name: kubelet,    version: v1.34.3, path: bin/kubelet}
//	  - {name: kubectl,    version: v1.34.3, path: bin/kubectl}
//	  - {name: kubeadm,    version: v1.34.3, path: bin/kubeadm}     # optional
//	  - {name: containerd, version: 1.6.20,  path: /usr/bin/containerd}
//	  - {name: containerd-shim-runc-v2, version: 1.6.20, path: /usr/bin/containerd-shim-runc-v2}
//	  - {name: ctr,        version: 1.6.20,  path: /usr/bin/ctr}
//	  - {name: runc,       version: 1.1.5,   path: /usr/sbin/runc}
//	  - {name: crictl,     version: v1.34.0, path: bin/crictl}      # optional
//	cniPlugins:
//	  version: 1.1.1
//	  dir: /usr/lib/cni             # every executable file in dir ...
//	  plugins: [bridge, host-local, loopback, portmap]   # ... or only these (optional)
//	images:                         # docker-archive or OCI-layout tarballs, as `ctr images import` takes them
//	  - path: images/control-plane.tar
//	  - path: images/flannel.tar
//
// Relative paths are taken from the spec file's directory. kubelet, kubectl,
// containerd, containerd-shim-runc-v2, ctr and runc are required; kubeadm and
// crictl are optional; any other name is an error, and so is a name given
// twice. kubelet, kubectl and kubeadm must have kubernetesVersion as their
// version. The CNI plugins must include loopback (containerd needs it) and
// bridge, host-local and portmap (the flannel and bridge networks use them).
// images may be empty (the node then pulls, e.g. through
// containerd.registryMirrors); each tarball must name its images with full
// references (docker-archive RepoTags, or the io.containerd.image.name /
// org.opencontainers.image.ref.name annotations of an OCI index), and the
// bundle records those references, read from the tarballs themselves. Every
// problem is reported at once, as SPEC.yaml:LINE: field: message.
//
// # The archive
//
// The first entry is manifest.json (Manifest): apiVersion kubeboot.io/v1alpha1,
// kind BundleManifest, the Kubernetes version, the CPU architecture (read from
// the binaries' ELF headers) and one entry per file with its path in the
// archive, type (binary, cni-plugin, images), name, version, mode, size and
// sha256, and for image tarballs their format and the images in them. The
// files follow under bin/, cni/ and images/. Entries have fixed owners and
// times, so the same inputs give the same archive. A name ending in .gz or
// .tgz is gzip-compressed.
//
// # Where prepare installs the files (InstallPath)
//
//	bin/kubelet, bin/kubectl, bin/kubeadm, bin/crictl  → /usr/bin/<name>   (kubelet.service runs /usr/bin/kubelet)
//	bin/containerd, bin/containerd-shim-runc-v2, bin/ctr → /usr/bin/<name> (as Debian's containerd package)
//	bin/runc                                            → /usr/sbin/runc    (as Debian's runc package)
//	cni/<plugin>                                        → /opt/cni/bin/<plugin>
//	images/*.tar                                        → ctr -n k8s.io images import
//
// `kubeboot bundle inspect FILE` prints the manifest and verifies every sum,
// for operators carrying a bundle through an air gap.
package bundle
