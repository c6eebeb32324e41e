//go:build bench

package bench

import (
	"fmt"
	"os"
	"testing"
)

// TestMain writes docs/performance.md and its chart after the benchmarks ran.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := WriteReport("../docs/performance.md", "../docs/img/performance.png", "make bench"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: report:", err)
		code = 1
	}
	os.Exit(code)
}
