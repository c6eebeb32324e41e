package register

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func decode(body string, limit int64) (Request, error) {
	return Decode(http.MaxBytesReader(httptest.NewRecorder(), bodyOf(body), limit))
}

func TestDecodeAcceptsAndNormalises(t *testing.T) {
	r, err := decode(`{"email":"  Ada@Example.COM ","name":" Ada ","password":"hunter22!"}`+"\n", 1<<20)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if r.Email != "ada@example.com" || r.Name != "Ada" {
		t.Errorf("got %+v, want normalised email and trimmed name", r)
	}
}

func TestDecodeRejectsWithFieldErrorsAndStatus(t *testing.T) {
	cases := []struct {
		name, body string
		limit      int64
		status     int
		field      string
	}{
		{"bad email", `{"email":"nope","name":"A","password":"12345678"}`, 1 << 20, 400, "email"},
		{"display name in email", `{"email":"A <a@b.co>","name":"A","password":"12345678"}`, 1 << 20, 400, "email"},
		{"empty name", `{"email":"a@b.co","name":" ","password":"12345678"}`, 1 << 20, 400, "name"},
		{"short password", `{"email":"a@b.co","name":"A","password":"1234"}`, 1 << 20, 400, "password"},
		{"wrong type", `{"email":1,"name":"A","password":"12345678"}`, 1 << 20, 400, "email"},
		{"unknown field", `{"email":"a@b.co","name":"A","password":"12345678","admin":true}`, 1 << 20, 400, "admin"},
		{"two objects", `{"email":"a@b.co","name":"A","password":"12345678"}{}`, 1 << 20, 400, ""},
		{"syntax", `{"email":`, 1 << 20, 400, ""},
		{"empty", ``, 1 << 20, 400, ""},
		{"too big", `{"email":"a@b.co","name":"` + strings.Repeat("x", 2000) + `","password":"12345678"}`, 1024, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decode(c.body, c.limit)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Status != c.status {
				t.Errorf("status = %d, want %d (%s)", e.Status, c.status, e.Message)
			}
			if c.field != "" && e.Fields[c.field] == "" {
				t.Errorf("fields = %v, want a message for %q", e.Fields, c.field)
			}
		})
	}
}
