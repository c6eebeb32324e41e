// Package progress shows long work while it happens: what is being done,
// how far along it is (step n of m, and a count inside the step where one is
// known) and how long it has taken.
//
// On a terminal a task is one line, redrawn in place at most a few times a
// second and at least once a second (so the elapsed time moves while a step
// is silent). Anywhere else (make's output piped to a file, CI) every step
// is a plain line, and a step that goes on prints a "still" line every
// PlainInterval, so a log shows a long build is alive without flooding it.
//
// The package depends on the standard library only: the preflight command
// uses it and must compile in seconds.
package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// PlainInterval is how often a step that goes on is reported again when the
// output is not a terminal: often enough that a silent minute never looks
// like a hang, rarely enough that a 10-minute build is a dozen lines.
const PlainInterval = 30 * time.Second

// redrawInterval bounds how often a terminal line is redrawn.
const redrawInterval = 200 * time.Millisecond

type writerKey struct{}

// WithWriter returns a context whose tasks report to w instead of standard
// error (tests, and commands whose standard error is their result).
func WithWriter(ctx context.Context, w io.Writer) context.Context {
	return context.WithValue(ctx, writerKey{}, w)
}

// writer is where ctx's tasks report: the context's writer, else stderr.
func writer(ctx context.Context) io.Writer {
	if w, ok := ctx.Value(writerKey{}).(io.Writer); ok && w != nil {
		return w
	}
	return os.Stderr
}

// isTerminal reports whether w is a character device (a terminal), where a
// line can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// active holds, per writer, the tasks started and not yet done, innermost
// last. Only the innermost task of a writer draws: a tool build that runs a
// go build shows the go build's line, prefixed with the tool build's name,
// instead of two tasks fighting over one terminal line.
var active = struct {
	sync.Mutex
	by map[io.Writer][]*Task
}{by: map[io.Writer][]*Task{}}

// push registers t as its writer's innermost task and returns the names of
// the tasks it runs inside.
func push(t *Task) []string {
	active.Lock()
	defer active.Unlock()
	var outer []string
	for _, o := range active.by[t.w] {
		outer = append(outer, o.what)
	}
	active.by[t.w] = append(active.by[t.w], t)
	return outer
}

func pop(t *Task) {
	active.Lock()
	defer active.Unlock()
	tasks := active.by[t.w]
	for i, o := range tasks {
		if o == t {
			active.by[t.w] = append(tasks[:i:i], tasks[i+1:]...)
			break
		}
	}
	if len(active.by[t.w]) == 0 {
		delete(active.by, t.w)
	}
}

// innermost reports whether t is the task of its writer that draws.
func innermost(t *Task) bool {
	active.Lock()
	defer active.Unlock()
	tasks := active.by[t.w]
	return len(tasks) > 0 && tasks[len(tasks)-1] == t
}

// Task is one long piece of work being reported. Its methods are safe for
// concurrent use (a command's output is read on another goroutine).
type Task struct {
	w    io.Writer
	tty  bool
	what string
	// outer are the names of the tasks this one runs inside, shown first.
	outer []string
	steps int
	start time.Time
	now   func() time.Time

	mu       sync.Mutex
	step     int
	name     string
	detail   string
	lastDraw time.Time
	lastLine string
	done     bool
	stop     chan struct{}
}

// Start begins reporting what (for example "building kubernetes v1.34.2")
// as a task of steps steps (0 when the number is not known).
func Start(ctx context.Context, what string, steps int) *Task {
	w := writer(ctx)
	t := &Task{w: w, tty: isTerminal(w), what: what, steps: steps, start: time.Now(), now: time.Now, stop: make(chan struct{})}
	t.outer = push(t)
	t.mu.Lock()
	t.emit(true)
	t.mu.Unlock()
	go t.tick()
	return t
}

// tick redraws the terminal line every second, and on plain output repeats
// a step that has gone on for PlainInterval.
func (t *Task) tick() {
	every := PlainInterval
	if t.tty {
		every = time.Second
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-ticker.C:
			t.mu.Lock()
			if !t.done {
				t.emit(true)
			}
			t.mu.Unlock()
		}
	}
}

// Step says the task entered step n, called name (for example "compiling").
func (t *Task) Step(n int, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.step, t.name, t.detail = n, name, ""
	t.emit(true)
}

// Detail sets how far along the current step is (for example
// "412 of 1630 packages"). On plain output it is shown with the next
// periodic line, not on every call.
func (t *Task) Detail(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.detail = fmt.Sprintf(format, args...)
	if t.tty {
		t.emit(false)
	}
}

// Done ends the task, saying how long it took or, with err, that it failed.
// It returns err unchanged so that `return t.Done(err)` reads naturally.
func (t *Task) Done(err error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return err
	}
	t.done = true
	close(t.stop)
	pop(t)
	verdict := "done in " + Duration(t.now().Sub(t.start))
	if err != nil {
		verdict = "failed after " + Duration(t.now().Sub(t.start))
	}
	line := t.label() + ": " + verdict
	if t.tty {
		fmt.Fprintf(t.w, "\r\033[K%s\n", line)
	} else {
		fmt.Fprintln(t.w, line)
	}
	return err
}

// emit writes the task's state; force redraws even inside redrawInterval.
// Callers hold t.mu.
func (t *Task) emit(force bool) {
	now := t.now()
	if !innermost(t) || (!force && now.Sub(t.lastDraw) < redrawInterval) {
		return
	}
	line := t.line(now)
	if t.tty {
		fmt.Fprintf(t.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(t.w, line)
	}
	t.lastDraw, t.lastLine = now, line
}

// line renders the task: "what: step n of m, name: detail · elapsed".
func (t *Task) line(now time.Time) string {
	var b strings.Builder
	b.WriteString(t.label())
	if t.step > 0 {
		b.WriteString(": step ")
		fmt.Fprintf(&b, "%d", t.step)
		if t.steps > 0 {
			fmt.Fprintf(&b, " of %d", t.steps)
		}
		if t.name != "" {
			b.WriteString(", " + t.name)
		}
		if t.detail != "" {
			b.WriteString(": " + t.detail)
		}
	}
	b.WriteString(" · " + Duration(now.Sub(t.start)))
	return b.String()
}

// label is the task's what, after the tasks it runs inside.
func (t *Task) label() string {
	return strings.Join(append(append([]string(nil), t.outer...), t.what), " › ")
}

// Duration formats d the way the lines show elapsed time: "42s", "3m07s",
// "1h02m".
func Duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}
