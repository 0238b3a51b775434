//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// scenario is what every e2e scenario starts with: root, the repository, the
// kubeboot binary under test, a log directory of its own, a context that ends
// in time for the cleanup and the collection of logs, the stages table
// (logged and written to timings.txt at the end) and a logf that goroutines
// may call.
type scenario struct {
	repo     string
	kubeboot string
	logDir   string
	ctx      context.Context
	st       *stages
	logf     func(format string, args ...any)
}

// newScenario checks and sets up what scenario holds. name is the log
// directory's name below KUBEBOOT_E2E_LOGS ("" for that directory itself);
// budget bounds the run, which also ends 3 minutes before the test binary's
// own deadline. make is the make target that runs the scenario, for the
// error a non-root user gets.
func newScenario(t *testing.T, name, make string, budget time.Duration) *scenario {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the e2e scenario needs root (machines, bridge, cgroups): run `make %s` as root", make)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	kubeboot := os.Getenv("KUBEBOOT_BIN")
	if kubeboot == "" {
		kubeboot = filepath.Join(repo, "bin", "kubeboot")
	}
	if _, err := os.Stat(kubeboot); err != nil {
		t.Fatalf("kubeboot binary: %v (make build, or set KUBEBOOT_BIN)", err)
	}
	logDir := os.Getenv("KUBEBOOT_E2E_LOGS")
	switch {
	case logDir != "":
		logDir = filepath.Join(logDir, name)
	case name == "":
		logDir, err = os.MkdirTemp("", "kubeboot-e2e-logs-")
	default:
		logDir, err = os.MkdirTemp("", "kubeboot-e2e-"+name+"-logs-")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs: %s", logDir)

	deadline := time.Now().Add(budget)
	if d, ok := t.Deadline(); ok && d.Add(-3*time.Minute).Before(deadline) {
		deadline = d.Add(-3 * time.Minute) // time for the cleanup and the logs
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)

	s := &scenario{repo: repo, kubeboot: kubeboot, logDir: logDir, ctx: ctx, st: newStages()}
	var logMu sync.Mutex
	s.logf = func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		t.Logf(format, args...)
	}
	t.Cleanup(func() {
		t.Log("\n" + s.st.report())
		_ = s.st.write(filepath.Join(logDir, "timings.txt"))
	})
	return s
}
