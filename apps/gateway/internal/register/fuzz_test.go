package register

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func bodyOf(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// FuzzDecode: no input panics, and every rejection is a 4xx *Error.
func FuzzDecode(f *testing.F) {
	f.Add(`{"email":"a@b.co","name":"A","password":"12345678"}`)
	f.Add(`{"email":"a@b.co"}`)
	f.Add(`[]`)
	f.Add(`{"name":"\u0000","password":"\ud800"}`)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := Decode(http.MaxBytesReader(httptest.NewRecorder(), bodyOf(body), 4096))
		if err == nil {
			if len(Validate(&r)) != 0 {
				t.Fatalf("accepted %q but it does not validate", body)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
			t.Fatalf("Decode(%q) = %v, want a 4xx *Error", body, err)
		}
	})
}
