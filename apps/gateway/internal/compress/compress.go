// Package compress negotiates Brotli or gzip from Accept-Encoding and
// compresses responses that are worth it (compressible type, at least
// MinSize bytes), cutting bytes on the wire for JSON responses.
package compress

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

// MinSize is the smallest body compressed; below it the framing overhead
// outweighs the saving.
const MinSize = 256

var (
	gzipPool = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression); return w }}
	brPool   = sync.Pool{New: func() any { return brotli.NewWriterLevel(io.Discard, 4) }}
)

// varyAcceptEncoding is the Vary value of every response, allocated once.
var varyAcceptEncoding = []string{"Accept-Encoding"}

// Negotiate picks "br", "gzip" or "" from an Accept-Encoding value,
// honouring q=0 exclusions and preferring Brotli at equal weight.
func Negotiate(accept string) string {
	// Walked with Cut rather than Split: no slice per request, and none at
	// all for the clients (load balancers' probes, benchmarks, other
	// services) that send no Accept-Encoding.
	best, bestQ := "", 0.0
	for rest, more := accept, accept != ""; more; {
		var part string
		part, rest, more = strings.Cut(rest, ",")
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.TrimSpace(name)
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if !strings.EqualFold(name, "br") && !strings.EqualFold(name, "gzip") || q <= 0 {
			continue
		}
		name = strings.ToLower(name)
		if q > bestQ || q == bestQ && name == "br" {
			best, bestQ = name, q
		}
	}
	return best
}

func compressible(contentType string) bool {
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(strings.ToLower(ct))
	return strings.HasPrefix(ct, "text/") && ct != "text/event-stream" ||
		ct == "application/json" || ct == "application/problem+json" || ct == "image/svg+xml"
}

// Handler compresses next's responses when the client accepts it.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := w.Header(); h["Vary"] == nil {
			// Shared and never modified in place: Header.Add on it appends
			// to a full slice, which copies.
			h["Vary"] = varyAcceptEncoding
		} else {
			h.Add("Vary", "Accept-Encoding")
		}
		enc := Negotiate(r.Header.Get("Accept-Encoding"))
		if enc == "" || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		cw := &writer{ResponseWriter: w, enc: enc}
		defer cw.finish()
		next.ServeHTTP(cw, r)
	})
}

// writer buffers up to MinSize bytes to decide, then either streams through
// a compressor or writes plainly.
type writer struct {
	http.ResponseWriter
	enc     string
	code    int
	buf     []byte
	decided bool
	zw      io.WriteCloser
}

func (w *writer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		_ = w.decide(false)
	}
}

func (w *writer) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if !w.decided {
		w.buf = append(w.buf, b...)
		if len(w.buf) < MinSize {
			return len(b), nil
		}
		if err := w.decide(true); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	if w.zw != nil {
		return w.zw.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// decide commits the headers; big says MinSize was reached.
func (w *writer) decide(big bool) error {
	if w.decided {
		return nil
	}
	w.decided = true
	h := w.Header()
	if big && h.Get("Content-Encoding") == "" && compressible(h.Get("Content-Type")) {
		h.Set("Content-Encoding", w.enc)
		h.Del("Content-Length")
		if w.enc == "br" {
			bw := brPool.Get().(*brotli.Writer)
			bw.Reset(w.ResponseWriter)
			w.zw = bw
		} else {
			gw := gzipPool.Get().(*gzip.Writer)
			gw.Reset(w.ResponseWriter)
			w.zw = gw
		}
	}
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.ResponseWriter.WriteHeader(w.code)
	if len(w.buf) == 0 {
		return nil
	}
	var err error
	if w.zw != nil {
		_, err = w.zw.Write(w.buf)
	} else {
		_, err = w.ResponseWriter.Write(w.buf)
	}
	w.buf = nil
	return err
}

func (w *writer) finish() {
	if !w.decided {
		if w.code == 0 && len(w.buf) == 0 {
			return // nothing written: let net/http send its default 200
		}
		_ = w.decide(false)
	}
	if w.zw == nil {
		return
	}
	_ = w.zw.Close()
	switch z := w.zw.(type) {
	case *gzip.Writer:
		gzipPool.Put(z)
	case *brotli.Writer:
		brPool.Put(z)
	}
}

// Flush sends what is buffered, compressed if so decided.
func (w *writer) Flush() {
	_ = w.decide(len(w.buf) >= MinSize)
	if f, ok := w.zw.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
