// Command kbmachines builds the e2e root file system and boots or stops
// e2e machines by hand (root):
//
//	go run ./test/e2e/cmd/kbmachines rootfs     # build (or find) the cached rootfs
//	go run ./test/e2e/cmd/kbmachines up 3       # boot m1..m3, print how to log in; Ctrl-C removes them
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"

	"github.com/kubeboot/kubeboot/test/e2e/nspawn"
)

func main() {
	log.SetFlags(log.Ltime)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kbmachines rootfs | up N")
		os.Exit(2)
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "rootfs":
		dir, built, err := nspawn.EnsureRootfs(ctx, nspawn.CacheDir(), nspawn.DefaultRootfs, log.Printf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(dir, "built:", built)
	case "up":
		n := 1
		if len(os.Args) > 2 {
			var err error
			if n, err = strconv.Atoi(os.Args[2]); err != nil {
				log.Fatalf("up %q: want a number of machines", os.Args[2])
			}
		}
		dir, _, err := nspawn.EnsureRootfs(ctx, nspawn.CacheDir(), nspawn.DefaultRootfs, log.Printf)
		if err != nil {
			log.Fatal(err)
		}
		c, err := nspawn.Boot(ctx, nspawn.Config{N: n, Rootfs: dir, Logf: log.Printf})
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range c.Machines {
			fmt.Printf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes root@%s   # %s\n", c.KeyFile, c.KnownHostsFile, m.IP, m.Name)
		}
		fmt.Println("Ctrl-C (or kill -TERM", os.Getpid(), ") stops and removes them")
		select {} // the package's signal handler removes the machines and exits
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}
