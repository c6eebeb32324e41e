package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

// Load is one load-generator run: wrk pinned to Core, Connections over
// Duration against URL. Every run is bounded in time and targets loopback.
type Load struct {
	URL         string
	Core        int
	Connections int
	Duration    time.Duration
	// Script is optional wrk Lua (a request body, headers); a done()
	// that prints the 99.9th percentile is always appended.
	Script string
}

// Result is what wrk measured.
type Result struct {
	Requests int64
	Seconds  float64
	Non2xx   int64
	Errors   int64
	P50, P99 time.Duration
	P999     time.Duration
}

// RPS is requests per second.
func (r Result) RPS() float64 { return float64(r.Requests) / r.Seconds }

// Run runs wrk with latency percentiles and parses its report.
func (l Load) Run(ctx context.Context) (Result, error) {
	if _, _, err := loopbackTarget(l.URL); err != nil {
		return Result{}, fmt.Errorf("load target: %w", err)
	}
	args := []string{"-c", strconv.Itoa(l.Core), "wrk", "-t1", "-c" + strconv.Itoa(l.Connections),
		"-d" + strconv.Itoa(int(l.Duration.Seconds())) + "s", "--latency", "--timeout", "5s"}
	script, err := os.CreateTemp("", "wrk-*.lua")
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = os.Remove(script.Name()) }()
	if _, err := script.WriteString(l.Script + "\n" + p999Script); err != nil {
		return Result{}, err
	}
	_ = script.Close()
	args = append(args, "-s", script.Name(), l.URL)
	ctx, cancel := context.WithTimeout(ctx, l.Duration+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", args...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk %s: %v: %s", l.URL, err, out)
	}
	return parseWrk(string(out))
}

// p999Script makes wrk print the 99.9th percentile, which --latency omits.
const p999Script = `done = function(summary, latency, requests)
  io.write(string.format("p99.9_us %d\n", latency:percentile(99.9)))
end`

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkErrors  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	wrkP999    = regexp.MustCompile(`p99\.9_us (\d+)`)
)

func parseWrk(out string) (Result, error) {
	var r Result
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no request count in wrk output:\n%s", out)
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.Seconds = seconds(m[2], m[3])
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkErrors.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	if m := wrkP999.FindStringSubmatch(out); m != nil {
		us, _ := strconv.ParseInt(m[1], 10, 64)
		r.P999 = time.Duration(us) * time.Microsecond
	}
	for _, m := range wrkPercent.FindAllStringSubmatch(out, -1) {
		d := time.Duration(seconds(m[2], m[3]) * float64(time.Second))
		switch m[1] {
		case "50":
			r.P50 = d
		case "99":
			r.P99 = d
		}
	}
	return r, nil
}

func seconds(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return f / 1e6
	case "ms":
		return f / 1e3
	case "m":
		return f * 60
	}
	return f
}
