package realserver

import "testing"

// must starts a server with start(cfg), fails the test on an error and
// closes the server when the test ends (realservertest's wrappers, which
// this package's own tests cannot import).
func must[C any, S interface{ Close() error }](t *testing.T, start func(C) (S, error), cfg C) S {
	t.Helper()
	s, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s
}

// ok fails the test on err, for methods that restart or reconfigure a
// running server.
func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newServer adapts a constructor without arguments (NewNginx) to must.
func newServer[S interface{ Close() error }](t *testing.T, create func() (S, error)) S {
	t.Helper()
	return must(t, func(struct{}) (S, error) { return create() }, struct{}{})
}
