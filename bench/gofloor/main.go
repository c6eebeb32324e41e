// Command gofloor is the floor of the gateway benchmark (bench/,
// `make bench`): Go's net/http with nothing of the gateway's, answering GET
// with a profile's JSON from memory and POST with a 202. Measured beside the
// gateway and Express, it shows what net/http and the kernel cost per
// request on the same core, so the gateway's own share and the ceiling of a
// Go/Express ratio can be read off.
//
// Configuration: ADDR (host:port to listen on).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

// profile has the shape and length of the gateway's cached answer.
var profile = []byte(`{"email":"ada@example.com","id":"29070891-a2f0-8a98-9832-eebab7a0dcc5","name":"Ada Lovelace"}`)

var accepted = []byte(`{"status":"accepted"}`)

func main() {
	srv := &http.Server{Addr: os.Getenv("ADDR"), Handler: http.HandlerFunc(serve)}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "gofloor:", err)
		os.Exit(1)
	}
}

func serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodPost {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(accepted)
		return
	}
	_, _ = w.Write(profile)
}
