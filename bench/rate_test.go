//go:build bench

package bench

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRawConnReadsEachResponseWhole: the half-load generator reads every
// framing the gateway may answer with, up to the response's end and no
// further, and keeps the connection only when HTTP says it may.
func TestRawConnReadsEachResponseWhole(t *testing.T) {
	const next = "HTTP/1.1 204 No Content\r\n\r\n"
	for _, tc := range []struct {
		name, response string
		code           int
		keep, fails    bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, true, false},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", 200, true, false},
		{"connection close", "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 429, false, false},
		{"HTTP/1.0 closes by default", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, false, false},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, true, false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nbody", 200, false, true},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer func() { _ = client.Close() }()
			go func() {
				// net.Pipe is unbuffered: the request must be read before the
				// answer is written.
				_, _ = bufio.NewReader(server).ReadString('\n')
				_, _ = server.Write([]byte(tc.response + next))
			}()
			c := &rawConn{conn: client, r: bufio.NewReader(client)}
			code, keep, err := c.exchange([]byte("GET / HTTP/1.1\r\n"))
			if tc.fails {
				assert.Error(t, err, "%q is refused", tc.response)
				return
			}
			assert.NoError(t, err, "%q is read", tc.response)
			assert.Equal(t, tc.code, code, "status code")
			assert.Equal(t, tc.keep, keep, "whether the connection is kept")
			rest, _ := c.r.Peek(len(next))
			assert.True(t, strings.HasPrefix(string(rest), "HTTP/1.1 204"), "the next response starts where this one ended, got %q", rest)
		})
	}
}
