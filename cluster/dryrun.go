package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pmezard/go-difflib/difflib"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeboot/kubeboot/bundle"
	"github.com/kubeboot/kubeboot/certs"
	"github.com/kubeboot/kubeboot/inventory"
	"github.com/kubeboot/kubeboot/phases"
	"github.com/kubeboot/kubeboot/phases/controlplane"
	"github.com/kubeboot/kubeboot/phases/workflow"
	"github.com/kubeboot/kubeboot/transport"
)

// StepDryRun names the lines of apply --dry-run.
const StepDryRun = "dry-run"

// dryRun says, after the probes, what each host would get: apply's own
// uploads and commands, then the host's phases run in this process over a
// read-only view of the host (transport.DryRun over its SSH connection:
// reads and read-only commands reach the host, writes land in a local
// temporary directory, other commands are only recorded), every file they
// would write as a unified diff against the host's copy, and every command
// they would run. Nothing changes on any host.
func (a *applier) dryRun(ctx context.Context) error {
	first := a.first()
	err := a.each(ctx, StepDryRun, a.hosts, false, func(ctx context.Context, hr *hostRun) error {
		for _, w := range a.applyWould(hr, hr == first) {
			a.p.line(StepDryRun, hr.h.Name, "would %s", w)
		}
		if err := a.dryRunPhases(ctx, hr, hr == first); err != nil {
			return err
		}
		hr.did("dry run")
		return nil
	})
	if err != nil {
		a.p.line(StepDryRun, "", "failed: %v", err)
		return err
	}
	a.p.line(StepDryRun, "", "nothing was changed on any host; run without --dry-run to apply")
	return nil
}

// applyWould lists what apply itself would send to and start on hr.
func (a *applier) applyWould(hr *hostRun, first bool) []string {
	var would []string
	if hr.facts.binarySum != a.binarySum {
		would = append(would, fmt.Sprintf("upload kubeboot (%s) to %s", mib(a.binarySize), a.binaryPath))
	}
	b := a.bundleFor(hr.h)
	if b.missingOn(hr.facts) {
		would = append(would, fmt.Sprintf("upload the %s (%s) to %s", b.what(), mib(b.size), b.remote))
	}
	if !hr.facts.setUp() {
		would = append(would, "run "+a.binaryPath+" preflight --config - --before-prepare")
	}
	prep := a.binaryPath + " init phase prepare --config -"
	if b != nil {
		prep += " --bundle " + b.remote
	}
	would = append(would, "run "+prep)
	switch {
	case first:
		would = append(would, "run "+a.binaryPath+" init --config - --skip-phases prepare (token on stdin)")
	case hr.facts.has["kubelet.conf"]:
		would = append(would, "join again unless its Node is Ready")
	default:
		would = append(would, "run "+a.binaryPath+" join --config - --skip-phases prepare (token and CA pin on stdin)")
	}
	return would
}

// dryRunPhases runs prepare (and init on the first control plane) in this
// process against a dry-run view of hr, then prints what they would do.
// A joining host's files come from the cluster at join time (discovery,
// TLS bootstrap), so only its prepare is shown.
func (a *applier) dryRunPhases(ctx context.Context, hr *hostRun, first bool) error {
	dir, err := os.MkdirTemp("", "kubeboot-dry-run-"+hr.h.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dry := transport.NewDryRun(hr.rec, dir)
	cfg, err := NodeConfig(a.inv, hr.h, "", Secrets{})
	if err != nil {
		return err
	}
	if err := phases.ResolveNode(ctx, dry, cfg); err != nil {
		return err
	}
	if err := inventory.Validate(cfg); err != nil {
		return err
	}
	lw := &logWriter{p: a.p, prefix: "[" + StepDryRun + "] " + hr.h.Name + ": "}
	d := &phases.Data{
		Cfg:    cfg,
		Host:   dry,
		Out:    workflow.NewPrinter(lw),
		DryRun: true,
		Keys:   certs.NewKeyPool(cfg.EncryptionAlgorithm, nil),
		NewClient: func(context.Context) (kubernetes.Interface, error) {
			return fake.NewClientset(), nil
		},
		NewExtensionsClient: func(context.Context) (apiextensionsclient.Interface, error) {
			return apiextensionsfake.NewClientset(), nil
		},
		Health: controlplane.NewHTTPHealthChecker(),
		Init:   phases.InitOptions{SkipTokenPrint: true, SkipCertificateKeyPrint: true},
	}
	opts := workflow.Options{Only: "prepare"}
	if first {
		opts = workflow.Options{}
	}
	var notYet []bundle.File
	if b := a.bundleFor(hr.h); b != nil {
		if hr.facts.bundleSum == b.sum {
			d.Prepare.Bundle = b.remote
		} else {
			// The bundle is not on the host yet: what it installs comes
			// from the local copy's manifest.
			notYet = b.m.Files
			opts.Skip = []string{"prepare/binaries", "prepare/images"}
		}
	}
	runErr := phases.InitRunner().Run(ctx, d, opts)
	lw.flush()
	for _, f := range notYet {
		switch f.Type {
		case bundle.TypeImages:
			a.p.line(StepDryRun, hr.h.Name, "would import %d images from the bundle's %s (%s)", len(f.Images), f.Path, mib(f.Size))
		default:
			a.p.line(StepDryRun, hr.h.Name, "would install %s (%s, %s) from the bundle, unless the same file is there", bundle.InstallPath(f), f.Mode, mib(f.Size))
		}
	}
	n := a.printActions(ctx, hr, dry)
	if !first {
		a.p.line(StepDryRun, hr.h.Name, "its join files (kubelet.conf, its certificates) come from the cluster when it joins: not shown")
	}
	if runErr != nil {
		return fmt.Errorf("the dry run of its phases stopped: %w (the phases' output is in the log)", runErr)
	}
	if n == 0 {
		a.p.line(StepDryRun, hr.h.Name, "its phases would write no file and run no command: up to date")
	}
	return nil
}

// printActions prints what the dry run recorded on hr: each file with its
// mode and a unified diff against the host's copy (secrets by size only),
// each command, each directory made or file removed. It returns how many.
func (a *applier) printActions(ctx context.Context, hr *hostRun, dry *transport.DryRun) int {
	n := 0
	for _, act := range dry.Actions() {
		switch act.Kind {
		case "write":
			n++
			data, err := os.ReadFile(dry.Path(act.Path))
			if err != nil {
				a.p.line(StepDryRun, hr.h.Name, "would write %s (%04o)", act.Path, act.Mode.Perm())
				continue
			}
			old, oldErr := hr.rec.ReadFile(ctx, act.Path)
			var oldMode fs.FileMode
			if oldErr == nil {
				if fi, err := hr.rec.Stat(ctx, act.Path); err == nil {
					oldMode = fi.Mode().Perm()
				}
			}
			for _, l := range fileChange(act.Path, act.Mode.Perm(), data, old, oldMode, oldErr == nil) {
				a.p.line(StepDryRun, hr.h.Name, "%s", l)
			}
		case "run":
			n++
			a.p.line(StepDryRun, hr.h.Name, "would run: %s", transport.Quote(act.Args))
		case "mkdir":
			if _, err := hr.rec.Stat(ctx, act.Path); err != nil {
				n++
				a.p.line(StepDryRun, hr.h.Name, "would create the directory %s (%04o)", act.Path, act.Mode.Perm())
			}
		case "remove":
			if _, err := hr.rec.Stat(ctx, act.Path); err == nil {
				n++
				a.p.line(StepDryRun, hr.h.Name, "would remove %s", act.Path)
			}
		}
	}
	return n
}

// fileChange describes writing data (mode) at p over old (oldMode; exists
// says whether there is a file): a header line, then a unified diff. Keys,
// kubeconfigs and anything holding a private key or a token are shown by
// size only; binary files too.
func fileChange(p string, mode fs.FileMode, data, old []byte, oldMode fs.FileMode, exists bool) []string {
	what := "new file"
	if exists {
		switch {
		case bytes.Equal(old, data) && oldMode == mode:
			return []string{fmt.Sprintf("would rewrite %s (%04o) with the same content", p, mode)}
		case bytes.Equal(old, data):
			return []string{fmt.Sprintf("would change the mode of %s from %04o to %04o", p, oldMode, mode)}
		case oldMode != mode:
			what = fmt.Sprintf("changed, mode %04o → %04o", oldMode, mode)
		default:
			what = "changed"
		}
	}
	head := fmt.Sprintf("would write %s (%04o, %s", p, mode, what)
	switch {
	case secretFile(p, data) || (exists && secretFile(p, old)):
		return []string{head + fmt.Sprintf(", %d bytes; a secret: content not shown)", len(data))}
	case bytes.HasPrefix(data, []byte("-----BEGIN CERTIFICATE-----")):
		return []string{head + ", " + certSummary(data) + wasCert(old, exists) + ")"}
	case !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 || (exists && (!utf8.Valid(old) || bytes.IndexByte(old, 0) >= 0)):
		return []string{head + fmt.Sprintf(", %d bytes, binary)", len(data))}
	}
	from := "a" + p
	if !exists {
		from = "/dev/null"
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: splitLines(old), B: splitLines(data),
		FromFile: from, ToFile: "b" + p, Context: 3,
	})
	if err != nil {
		return []string{head + ")"}
	}
	out := []string{head + fmt.Sprintf(", %d lines):", strings.Count(string(data), "\n"))}
	for _, l := range strings.Split(strings.TrimRight(diff, "\n"), "\n") {
		out = append(out, "  "+strings.TrimRight(l, "\r"))
	}
	return out
}

// certSummary names a PEM certificate's subject, names and expiry
// instead of showing its base64.
func certSummary(pemData []byte) string {
	c, err := certs.ParseCert(pemData)
	if err != nil {
		return fmt.Sprintf("%d bytes, not a parsable certificate: %v", len(pemData), err)
	}
	s := "certificate " + c.Subject.String()
	if names := append(append([]string{}, c.DNSNames...), ipStrings(c.IPAddresses)...); len(names) > 0 {
		s += " for " + strings.Join(names, ",")
	}
	return s + ", valid until " + c.NotAfter.UTC().Format("2006-01-02")
}

// wasCert says what the certificate being replaced was.
func wasCert(old []byte, exists bool) string {
	if !exists {
		return ""
	}
	return "; replacing " + certSummary(old)
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// splitLines splits b after each newline; a last line without one gets it
// (difflib.SplitLines adds an empty line at the end).
func splitLines(b []byte) []string {
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n"
	}
	return lines
}

// secretFile says whether a file's content must not be shown: private
// keys, kubeconfigs (they embed client keys or tokens), the API server's
// encryption configuration (the key of every Secret) and anything that
// looks like one.
func secretFile(p string, data []byte) bool {
	if ext := path.Ext(p); ext == ".key" || ext == ".kubeconfig" || (ext == ".conf" && path.Dir(p) == "/etc/kubernetes") || p == inventory.EncryptionConfigPath {
		return true
	}
	for _, s := range []string{"PRIVATE KEY", "client-key-data", "token:", "password", "kind: EncryptionConfiguration", "secret:"} {
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

// logWriter sends the in-process phases' output to the log only, a line
// at a time under the host's prefix.
type logWriter struct {
	mu     sync.Mutex
	p      *printer
	prefix string
	buf    []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.p.logf("%s%s", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.p.logf("%s%s", w.prefix, w.buf)
		w.buf = nil
	}
}
