package compress

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]string{
		"": "", "gzip": "gzip", "br, gzip": "br", "gzip;q=1, br;q=0.5": "gzip", "br;q=0, gzip": "gzip",
		"identity": "", "GZIP;q=0.8, deflate": "gzip", "*": "",
		"gzip,": "gzip", ",br": "br", " br ; q=0.5 , gzip ;q=0.9": "gzip", "deflate, Br": "br", ",": "",
	} {
		if got := Negotiate(accept); got != want {
			t.Errorf("Negotiate(%q) = %q, want %q", accept, got, want)
		}
	}
}

func TestHandlerCompressesLargeJSONOnly(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", 2000) + `"}`
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/small" {
			_, _ = w.Write([]byte(`{}`))
			return
		}
		_, _ = w.Write([]byte(big))
	}))
	for _, enc := range []string{"gzip", "br"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/big", nil)
		req.Header.Set("Accept-Encoding", enc)
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Content-Encoding") != enc {
			t.Fatalf("%s: Content-Encoding %q", enc, rec.Header().Get("Content-Encoding"))
		}
		var r io.Reader
		if enc == "gzip" {
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatalf("gzip: %v", err)
			}
			r = zr
		} else {
			r = brotli.NewReader(rec.Body)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != big {
			t.Errorf("%s: round trip lost the body (err %v, %d bytes)", enc, err, len(got))
		}
		if rec.Body.Len() >= len(big) && enc == "gzip" {
			t.Errorf("%s: compressed body %d bytes is not smaller than %d", enc, rec.Body.Len(), len(big))
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/small", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != "{}" {
		t.Errorf("a tiny body was compressed: %q %q", rec.Header().Get("Content-Encoding"), rec.Body.String())
	}
	if !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
		t.Errorf("Vary lacks Accept-Encoding: caches would mix encodings")
	}
}

// TestVaryAddsToEarlierValues: the shared Vary value must not replace or be
// changed by what an outer handler or a later one sets.
func TestVaryAddsToEarlierValues(t *testing.T) {
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Add("Vary", "Cookie")
		_, _ = w.Write([]byte("{}"))
	}))
	rec := httptest.NewRecorder()
	rec.Header().Set("Vary", "Origin")
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Header().Values("Vary"); strings.Join(got, ",") != "Origin,Accept-Encoding,Cookie" {
		t.Errorf("Vary %q, want Origin, Accept-Encoding, Cookie", got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Header().Values("Vary"); strings.Join(got, ",") != "Accept-Encoding,Cookie" {
		t.Errorf("Vary %q, want Accept-Encoding, Cookie", got)
	}
	if strings.Join(varyAcceptEncoding, ",") != "Accept-Encoding" {
		t.Errorf("the shared Vary value was modified: %q", varyAcceptEncoding)
	}
}
