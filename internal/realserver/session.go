package realserver

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Session lets the harness run outside `go test`, for `scaleplane
// services up`: it provides the few testing.TB methods the helpers call.
// Fatalf panics with a *SessionError that Do turns back into an error,
// and Close runs the cleanups, newest first, like a test's end.
type Session struct {
	// TB is never called; embedding it only satisfies testing.TB's
	// unexported method.
	testing.TB

	dir  string
	logf func(format string, args ...any)

	mu       sync.Mutex
	cleanups []func()
	n        int
}

// SessionError is a helper's fatal failure inside Do.
type SessionError struct{ Msg string }

func (e *SessionError) Error() string { return e.Msg }

// NewSession makes a session whose temp dirs live under a new directory;
// logf receives the helpers' progress lines.
func NewSession(logf func(format string, args ...any)) (*Session, error) {
	dir, err := os.MkdirTemp("", "scaleplane-services-")
	if err != nil {
		return nil, err
	}
	s := &Session{dir: dir, logf: logf}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return s, nil
}

// Do runs f, returning a helper's Fatalf as an error instead of a panic.
func (s *Session) Do(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(*SessionError)
			if !ok {
				panic(r)
			}
			err = se
		}
	}()
	f()
	return nil
}

// Close stops everything the session started.
func (s *Session) Close() {
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Helper implements testing.TB.
func (s *Session) Helper() {}

// Name implements testing.TB.
func (s *Session) Name() string { return "scaleplane-services" }

// Cleanup implements testing.TB.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir implements testing.TB: a new directory under the session's.
func (s *Session) TempDir() string {
	s.mu.Lock()
	s.n++
	dir := filepath.Join(s.dir, fmt.Sprintf("%03d", s.n))
	s.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	return dir
}

// Logf implements testing.TB.
func (s *Session) Logf(format string, args ...any) { s.logf(format, args...) }

// Log implements testing.TB.
func (s *Session) Log(args ...any) { s.logf("%s", fmt.Sprint(args...)) }

// Fatalf implements testing.TB by panicking with a *SessionError for Do.
func (s *Session) Fatalf(format string, args ...any) {
	panic(&SessionError{Msg: fmt.Sprintf(format, args...)})
}

// Fatal implements testing.TB.
func (s *Session) Fatal(args ...any) { panic(&SessionError{Msg: fmt.Sprint(args...)}) }

// Errorf implements testing.TB; outside a test an error is fatal.
func (s *Session) Errorf(format string, args ...any) { s.Fatalf(format, args...) }

// Skip implements testing.TB; a helper that would skip cannot run here.
func (s *Session) Skip(args ...any) { s.Fatal(args...) }

// Skipf implements testing.TB.
func (s *Session) Skipf(format string, args ...any) { s.Fatalf(format, args...) }
