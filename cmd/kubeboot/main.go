// Command kubeboot bootstraps Kubernetes clusters the way kubeadm does.
package main

import (
	"fmt"
	"os"

	"github.com/kubeboot/kubeboot/cmd"
)

func main() {
	if err := cmd.NewRootCommand(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
