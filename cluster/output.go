package cluster

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// printer writes whole lines, "[step] host: message", to the screen and,
// time-stamped, to the log; lines from hosts running at once never
// interleave. Every secret it is told about is replaced by <redacted> on
// both.
type printer struct {
	mu      sync.Mutex
	out     io.Writer
	log     io.Writer
	secrets []string
	now     func() time.Time
}

func (p *printer) redact(s string) string {
	for _, sec := range p.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

// addSecret makes p redact s from now on.
func (p *printer) addSecret(s ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.secrets = append(p.secrets, s...)
}

func (p *printer) line(step, host, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	msg = p.redact(msg)
	l := "[" + step + "] "
	if host != "" {
		l += host + ": "
	}
	l += msg + "\n"
	if p.out != nil {
		io.WriteString(p.out, l)
	}
	p.logLocked(l)
}

// logf writes to the log only.
func (p *printer) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logLocked(p.redact(fmt.Sprintf(format, args...)) + "\n")
}

func (p *printer) logLocked(l string) {
	if p.log != nil {
		io.WriteString(p.log, p.now().UTC().Format("15:04:05.000 ")+l)
	}
}

// lineWriter turns a command's streamed output into printer lines under
// the host's prefix. Close prints what is left of the last line.
type lineWriter struct {
	p          *printer
	step, host string
	mu         sync.Mutex
	buf        []byte
	// tail keeps the last lines, for an error message.
	tail []string
	// changes counts the lines where kubeboot on the host reported a change.
	changes int
}

// changeRE matches the lines of kubeboot's phases that report a change on
// the node (as opposed to "Using existing ...", "... not restarting it",
// or announcements like "Storing ..."): prepare's actions, and for the
// other phases new or rewritten files, keys and objects.
var changeRE = regexp.MustCompile(`^\[prepare\] (Importing|Installed|Installing|Unpacking|Verified|Starting|Restarting|Writing|Set |Turned|Commented|Copied|Enabled|Removed)|` +
	`^\[[a-z/-]+\] (Generating|Created|Updated|Writing|Wrote|Applied|Replacing|Saving|Restarting|Starting|Removed)`)

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func (w *lineWriter) emit(l string) {
	l = strings.TrimRight(l, "\r")
	if strings.TrimSpace(l) == "" {
		return
	}
	w.p.line(w.step, w.host, "%s", l)
	if changeRE.MatchString(l) {
		w.changes++
	}
	w.tail = append(w.tail, l)
	if len(w.tail) > 5 {
		w.tail = w.tail[1:]
	}
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
	return nil
}

// lastLines is the end of what the command printed.
func (w *lineWriter) lastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.tail, "\n")
}
