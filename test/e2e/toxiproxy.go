//go:build e2e

package e2e

// toxiproxy-server (github.com/Shopify/toxiproxy/v2, the version of
// test/bench/applybench's module, so that it stays out of kubeboot's
// go.mod) as a process on 127.0.0.1, driven through its HTTP API: TCP
// proxies in front of a machine's sshd that the test cuts and restores.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// toxiproxyModule is the module (below the repository) whose go.mod pins
// toxiproxy's version.
const toxiproxyModule = "test/bench/applybench"

type toxiproxy struct {
	api  string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	done chan struct{}
	hc   *http.Client
}

// startToxiproxy builds toxiproxy-server into dir (the Go build cache
// makes that a second or two after the first time) and starts it with its
// API on a free loopback port; its log goes to logFile. Stop it with stop.
func startToxiproxy(ctx context.Context, repo, dir, logFile string) (*toxiproxy, error) {
	bin := filepath.Join(dir, "toxiproxy-server")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/Shopify/toxiproxy/v2/cmd/server")
	build.Dir = filepath.Join(repo, toxiproxyModule)
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build toxiproxy-server (in %s): %w\n%s", toxiproxyModule, err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", port)
	cmd.Stdout, cmd.Stderr = log, log
	// Not in the test's process group (a Ctrl-C goes to the test, which
	// cleans up); killed with the test process if it dies first (a
	// signal, a timeout panic) and no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	tp := &toxiproxy{api: "http://127.0.0.1:" + port, cmd: cmd, done: make(chan struct{}), hc: &http.Client{Timeout: 10 * time.Second}}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(tp.done)
	}()
	err = eventually(ctx, 10*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-tp.done:
			return fmt.Errorf("toxiproxy-server exited: %s", tailString(readFileString(logFile), 10))
		default:
		}
		var v any
		return tp.call(ctx, "GET", "/version", nil, &v)
	})
	if err != nil {
		tp.stop()
		return nil, err
	}
	return tp, nil
}

func readFileString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// stop ends the server (its proxies and their connections with it).
func (tp *toxiproxy) stop() {
	if tp == nil || tp.cmd.Process == nil {
		return
	}
	select {
	case <-tp.done:
		return
	default:
	}
	_ = tp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-tp.done:
	case <-time.After(5 * time.Second):
		_ = tp.cmd.Process.Kill()
		<-tp.done
	}
}

func (tp *toxiproxy) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, tp.api+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tp.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("toxiproxy %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// proxyState is a proxy as toxiproxy's API shows it.
type proxyState struct {
	Name     string `json:"name"`
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
	Enabled  bool   `json:"enabled"`
}

// addProxy creates an enabled proxy from a free loopback port to upstream
// and returns the port it listens on.
func (tp *toxiproxy) addProxy(ctx context.Context, name, upstream string) (string, error) {
	var p proxyState
	if err := tp.call(ctx, "POST", "/proxies", proxyState{Name: name, Listen: "127.0.0.1:0", Upstream: upstream, Enabled: true}, &p); err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(p.Listen)
	if err != nil {
		return "", fmt.Errorf("toxiproxy: proxy %s listens on %q: %w", name, p.Listen, err)
	}
	return port, nil
}

// setEnabled enables or disables a proxy. Disabling closes its listener
// and every connection through it (both sides, at once); enabling listens
// on the same port again.
func (tp *toxiproxy) setEnabled(ctx context.Context, name string, on bool) error {
	return tp.call(ctx, "POST", "/proxies/"+name, map[string]bool{"enabled": on}, nil)
}
