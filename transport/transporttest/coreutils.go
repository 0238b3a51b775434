package transporttest

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/transport"
)

// HandleCoreutils makes the fake run the file commands kubeboot's phases
// use on its files, as coreutils would: `rm -rf [--one-file-system] --
// PATH...`, `cp -a -- SRC DST`, `mv -f -T -- SRC DST` and `install -m
// MODE -T -- SRC DST`.
func (f *Fake) HandleCoreutils() {
	f.Handle("rm -rf", f.rmrf)
	f.Handle("cp -a", f.cpa)
	f.Handle("mv -f -T", f.mv)
	f.Handle("install -m", f.install)
}

func exitErr(code int, format string, args ...any) error {
	return &transport.ExitError{ExitCode: code, Stderr: fmt.Sprintf(format, args...)}
}

// operands are the arguments after "--".
func operands(args []string) []string {
	for i, a := range args {
		if a == "--" {
			return args[i+1:]
		}
	}
	return nil
}

func (f *Fake) rmrf(c transport.Cmd) (transport.Result, error) {
	for _, root := range operands(c.Args) {
		root = clean(root)
		f.mu.Lock()
		var gone []string
		for p := range f.entries {
			if p == root || strings.HasPrefix(p, root+"/") {
				gone = append(gone, p)
			}
		}
		for _, p := range gone {
			delete(f.entries, p)
		}
		f.mu.Unlock()
	}
	return transport.Result{}, nil
}

// cp -a -- SRC DST: a file, or a directory with what is below it.
func (f *Fake) cpa(c transport.Cmd) (transport.Result, error) {
	ops := operands(c.Args)
	if len(ops) != 2 {
		return transport.Result{}, exitErr(1, "cp: want SRC DST, got %q", ops)
	}
	src, dst := clean(ops[0]), clean(ops[1])
	f.mu.Lock()
	type copied struct {
		p string
		e entry
	}
	var todo []copied
	for p, e := range f.entries {
		if p == src || strings.HasPrefix(p, src+"/") {
			todo = append(todo, copied{dst + strings.TrimPrefix(p, src), *e})
		}
	}
	f.mu.Unlock()
	if len(todo) == 0 {
		return transport.Result{}, exitErr(1, "cp: cannot stat '%s': No such file or directory", src)
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].p < todo[j].p })
	for _, t := range todo {
		if t.e.mode.IsDir() {
			f.SetDir(t.p)
			continue
		}
		f.SetFile(t.p, t.e.data, t.e.mode)
	}
	return transport.Result{}, nil
}

// mv -f -T -- SRC DST (a file).
func (f *Fake) mv(c transport.Cmd) (transport.Result, error) {
	ops := operands(c.Args)
	if len(ops) != 2 {
		return transport.Result{}, exitErr(1, "mv: want SRC DST, got %q", ops)
	}
	b, mode, ok := f.File(ops[0])
	if !ok {
		return transport.Result{}, exitErr(1, "mv: cannot stat '%s'", ops[0])
	}
	f.SetFile(ops[1], b, mode)
	f.mu.Lock()
	delete(f.entries, clean(ops[0]))
	f.mu.Unlock()
	return transport.Result{}, nil
}

// install -m MODE -T -- SRC DST
func (f *Fake) install(c transport.Cmd) (transport.Result, error) {
	var mode fs.FileMode
	fmt.Sscanf(c.Args[2], "%o", &mode)
	ops := operands(c.Args)
	if len(ops) != 2 {
		return transport.Result{}, exitErr(1, "install: want SRC DST, got %q", ops)
	}
	b, _, ok := f.File(ops[0])
	if !ok {
		return transport.Result{}, exitErr(1, "install: cannot stat '%s': No such file or directory", ops[0])
	}
	f.SetFile(ops[1], b, mode)
	return transport.Result{}, nil
}
