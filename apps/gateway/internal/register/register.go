// Package register decodes and validates a registration request body. It
// streams from a size-limited reader and never buffers more than the limit,
// so a huge or endless body costs the gateway a bounded amount of memory and
// CPU (the articles' warning about synchronous parsing of large JSON).
package register

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/scaleplane/scaleplane/apps/account"
)

// Request is the body of POST /v1/register.
type Request struct {
	Email    string `json:"email"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

// Error is a client error with its HTTP status and, for validation, the
// message per field.
type Error struct {
	Status  int               `json:"-"`
	Message string            `json:"error"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Decode reads exactly one JSON object from body (already wrapped in
// http.MaxBytesReader by the caller) and validates it. Every failure is an
// *Error with a 4xx status.
func Decode(body io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, decodeError(err)
		}
		return req, &Error{Status: http.StatusBadRequest, Message: "body must hold a single JSON object"}
	}
	if fields := Validate(&req); len(fields) > 0 {
		return req, &Error{Status: http.StatusBadRequest, Message: "validation failed", Fields: fields}
	}
	return req, nil
}

func decodeError(err error) *Error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("body exceeds %d bytes", tooBig.Limit)}
	case errors.As(err, &syntax):
		return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)}
	case errors.As(err, &typ):
		return &Error{Status: http.StatusBadRequest, Message: "validation failed",
			Fields: map[string]string{typ.Field: "must be a " + typ.Type.String()}}
	case errors.Is(err, io.EOF):
		return &Error{Status: http.StatusBadRequest, Message: "body is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Message: "body ends in the middle of the JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &Error{Status: http.StatusBadRequest, Message: "validation failed",
			Fields: map[string]string{name: "unknown field"}}
	default:
		return &Error{Status: http.StatusBadRequest, Message: "body is not valid JSON"}
	}
}

// Validate returns a message per invalid field and normalises the email.
func Validate(r *Request) map[string]string {
	f := map[string]string{}
	r.Email = account.NormalizeEmail(r.Email)
	if a, err := mail.ParseAddress(r.Email); err != nil || a.Address != r.Email || a.Name != "" ||
		len(r.Email) > 254 || !strings.Contains(r.Email[strings.LastIndexByte(r.Email, '@')+1:], ".") {
		f["email"] = "must be a plain address like ada@example.com, at most 254 characters"
	}
	r.Name = strings.TrimSpace(r.Name)
	if n := utf8.RuneCountInString(r.Name); n == 0 || n > 100 || !utf8.ValidString(r.Name) ||
		strings.IndexFunc(r.Name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		f["name"] = "must be 1 to 100 printable characters"
	}
	if n := utf8.RuneCountInString(r.Password); n < 8 || len(r.Password) > 256 || !utf8.ValidString(r.Password) {
		f["password"] = "must be 8 to 256 bytes of UTF-8, at least 8 characters"
	}
	return f
}
