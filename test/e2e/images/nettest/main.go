// Command nettest is the e2e tests' application image:
//
//	nettest serve [:8080]   HTTP server answering "host=<hostname> ip=<addresses> from=<client>"
//	nettest get URL         one HTTP GET (5 s timeout): prints the status and body, exit 1 on failure
//	nettest lookup NAME     resolves NAME through /etc/resolv.conf, exit 1 on failure
//	nettest sleep           waits for SIGTERM
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nettest serve [addr] | get URL | lookup NAME | sleep")
		os.Exit(2)
	}
	arg := func(i int, def string) string {
		if len(os.Args) > i {
			return os.Args[i]
		}
		return def
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "host=%s ip=%s from=%s\n", host, addrs(), r.RemoteAddr)
		})
		go func() { <-stop; os.Exit(0) }()
		addr := arg(2, ":8080")
		fmt.Println("listening on", addr)
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "get":
		c := http.Client{Timeout: 5 * time.Second}
		r, err := c.Get(arg(2, ""))
		if err != nil {
			fmt.Fprintln(os.Stderr, "GET failed:", err)
			os.Exit(1)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		fmt.Printf("%d %s", r.StatusCode, b)
		if r.StatusCode != http.StatusOK {
			os.Exit(1)
		}
	case "lookup":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		name := arg(2, "kubernetes.default.svc.cluster.local")
		ips, err := net.DefaultResolver.LookupHost(ctx, name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lookup failed:", err)
			os.Exit(1)
		}
		fmt.Println(name, strings.Join(ips, " "))
	case "sleep":
		<-stop
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}

func addrs() string {
	var out []string
	as, _ := net.InterfaceAddrs()
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return strings.Join(out, ",")
}
