package workflow

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Printer writes whole progress lines, one at a time, so parallel work
// never interleaves. Lines look like kubeadm's: "[certs] Generating ...".
type Printer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPrinter prints to w.
func NewPrinter(w io.Writer) *Printer { return &Printer{w: w} }

// Printf prints one line tagged with the phase.
func (p *Printer) Printf(phase, format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if phase != "" {
		fmt.Fprintf(p.w, "[%s] %s\n", phase, strings.TrimRight(line, "\n"))
	} else {
		fmt.Fprintln(p.w, strings.TrimRight(line, "\n"))
	}
}
