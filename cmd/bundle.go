package cmd

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/bundle"
)

func newBundleCommand(out io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "bundle",
		Short: "Create and check offline bundles (binaries and images for nodes without internet access)",
		Long: `An offline bundle is one archive with the binaries (kubelet, kubectl, containerd,
runc, the CNI plugins, optionally kubeadm and crictl) and container images a node
needs for one Kubernetes version, and a manifest of their versions and sha256 sums.
Copy it to each node and run "kubeboot init --bundle FILE" (or join --bundle FILE).

    kubeboot bundle create --spec bundle.yaml -o kubeboot-v1.34.3-amd64.tar.gz
    kubeboot bundle inspect kubeboot-v1.34.3-amd64.tar.gz
    kubeboot bundle slice --role worker -o worker.tar.gz kubeboot-v1.34.3-amd64.tar.gz

kubeboot apply slices the bundle itself for hosts that are only workers (and
caches the slice in ~/.cache/kubeboot/bundles).`,
	}
	var spec, output string
	create := &cobra.Command{
		Use:   "create --spec SPEC.yaml -o OUT.tar[.gz]",
		Short: "Pack the files a bundle spec (kind: BundleSpec) names into one archive",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if spec == "" || output == "" {
				return fmt.Errorf("bundle create needs --spec SPEC.yaml and -o OUT.tar[.gz]")
			}
			s, err := bundle.LoadSpec(spec)
			if err != nil {
				return err
			}
			m, err := bundle.Create(s, output, func(format string, args ...any) {
				fmt.Fprintf(out, "[bundle] "+format+"\n", args...)
			})
			if err != nil {
				return err
			}
			fi, err := os.Stat(output)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "[bundle] Wrote %s (%d bytes): Kubernetes %s for %s, %d files, %d images\n",
				output, fi.Size(), m.KubernetesVersion, m.Arch, len(m.Files), m.ImageCount())
			return nil
		},
	}
	create.Flags().StringVar(&spec, "spec", "", "The bundle spec (kind: BundleSpec; see `kubeboot bundle --help`)")
	create.Flags().StringVarP(&output, "output", "o", "", "The archive to write; .tar.gz or .tgz compresses it")

	inspect := &cobra.Command{
		Use:     "inspect FILE",
		Aliases: []string{"list"},
		Short:   "Print a bundle's manifest and verify every file against its sha256",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			m, err := bundle.Verify(args[0])
			if m != nil {
				fmt.Fprint(out, m.Summary())
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s: every file matches its sha256\n", args[0])
			return nil
		},
	}
	var role, sliceOut string
	slice := &cobra.Command{
		Use:   "slice --role worker -o OUT.tar[.gz] BUNDLE",
		Short: "Write the part of a bundle a worker needs: all but the kube-apiserver, kube-controller-manager, kube-scheduler and etcd images",
		Long: `Write the part of a bundle a worker needs: the same binaries and CNI plugins, and
the images without kube-apiserver, kube-controller-manager, kube-scheduler and
etcd (their own layers go, layers other images share stay). The slice's manifest
names its role and the sha256 of the bundle it was cut from; a control plane
refuses it. Every file is checked against the bundle's manifest on the way.`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if sliceOut == "" {
				return fmt.Errorf("bundle slice needs -o OUT.tar[.gz]")
			}
			m, err := bundle.Slice(args[0], sliceOut, role, func(format string, args ...any) {
				fmt.Fprintf(out, "[bundle] "+format+"\n", args...)
			})
			if err != nil {
				return err
			}
			fi, err := os.Stat(sliceOut)
			if err != nil {
				return err
			}
			src, _ := os.Stat(args[0])
			fmt.Fprintf(out, "[bundle] Wrote %s (%d bytes, %d%% of the bundle): the %s part of Kubernetes %s for %s, %d files, %d images\n",
				sliceOut, fi.Size(), percent(fi.Size(), src), m.Role, m.KubernetesVersion, m.Arch, len(m.Files), m.ImageCount())
			return nil
		},
	}
	slice.Flags().StringVar(&role, "role", bundle.RoleWorker, "The nodes' role: worker (a control plane needs the whole bundle)")
	slice.Flags().StringVarP(&sliceOut, "output", "o", "", "The archive to write; .tar.gz or .tgz compresses it")
	c.AddCommand(create, inspect, slice)
	return c
}

func percent(n int64, of os.FileInfo) int64 {
	if of == nil || of.Size() == 0 {
		return 100
	}
	return n * 100 / of.Size()
}
