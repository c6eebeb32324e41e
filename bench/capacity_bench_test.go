//go:build bench

package bench

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/internal/capacity"
)

// The capacity model's inputs and document, and the report whose figures
// it takes, from this directory.
const (
	capacityInputs = "../" + capacity.InputsFile
	capacityDoc    = "../" + capacity.DocFile
	benchReport    = "../docs/performance.md"
)

// Bounds of the hash measurement: enough hashes for the 10 ms resolution
// of /proc's CPU time to be under 1 % of the total, few enough to take a
// couple of seconds.
const (
	capacityWarmup    = 3
	capacityMaxHashes = 100
	capacityMaxCPU    = 3 * time.Second
)

// TestCapacityInputs refreshes the capacity model's measured inputs: it
// measures the CPU one argon2id hash costs with the production parameters
// (the worker's CPU-heavy step per registration, the users service's per
// login), takes the edge and gateway figures from the rows of
// docs/performance.md they name, and rewrites the inputs and the tables of
// docs/capacity.md. A measurement within capacityNoise of the recorded one
// leaves it standing. It records nothing for the report, so running it alone
// leaves docs/performance.md as it is. Within make bench it runs before the
// report is rewritten, so it reads the previous run's rows: run it alone
// after make bench to take the new ones.
func TestCapacityInputs(t *testing.T) {
	in, err := capacity.ReadInputs(capacityInputs)
	require.NoError(t, err, "read the capacity inputs")
	refreshFromReport(t, &in)
	p := account.DefaultHashParams
	require.Equal(t, capacity.HashParams{Time: p.Time, MemoryKiB: p.Memory, Threads: p.Threads}, in.Costs.HashParams,
		"inputs.json's hashParams must be the production ones before their cost is measured")

	for range capacityWarmup {
		_, err := account.HashPassword("correct horse battery staple", p)
		require.NoError(t, err, "warm-up hash")
	}
	// Start from a collected heap so the run pays for its own garbage only;
	// the collector's CPU during the run is counted, as the worker pays it.
	runtime.GC()
	before, err := SelfCPU()
	require.NoError(t, err, "process CPU before")
	n := 0
	for n < capacityMaxHashes {
		_, err := account.HashPassword(fmt.Sprintf("password number %d", n), p)
		require.NoError(t, err, "hash %d", n)
		n++
		if now, err := SelfCPU(); err == nil && now-before >= capacityMaxCPU {
			break
		}
	}
	after, err := SelfCPU()
	require.NoError(t, err, "process CPU after")
	cpu := after - before
	require.Positive(t, cpu, "the hashes took measurable CPU time")
	micros := math.Round(float64(cpu.Microseconds())/float64(n)*10) / 10
	t.Logf("argon2id %+v: %d hashes, %v CPU, %.1f µs per hash", p, n, cpu, micros)

	if takes(t, "argon2id hash", in.Costs.PasswordHash, micros) {
		in.Costs.PasswordHash.Micros = micros
		in.Costs.PasswordHash.Kind = capacity.Measured
		in.Costs.PasswordHash.Date = time.Now().UTC().Format("2006-01-02")
		in.Costs.PasswordHash.Machine = machine()
		in.Costs.PasswordHash.Command = "go test -tags bench -count=1 -run TestCapacityInputs ./bench/ (part of make bench)"
	}
	plan, err := capacity.PlanFor(in)
	require.NoError(t, err, "the refreshed inputs still make a plan")
	require.NoError(t, capacity.WriteInputs(capacityInputs, in), "write the capacity inputs")
	doc, err := os.ReadFile(capacityDoc)
	require.NoError(t, err, "read the capacity document")
	updated, err := capacity.ReplaceGenerated(string(doc), in, plan)
	require.NoError(t, err, "the capacity document keeps its generated part")
	require.NoError(t, os.WriteFile(capacityDoc, []byte(updated), 0o644), "write the capacity document")
	for _, w := range plan.Workloads {
		t.Logf("%s: minReplicas %d, maxReplicas %d", w.Name, w.Min, w.Max)
	}
	t.Log("go test ./internal/capacity tells whether stacks/Pulumi.prod.yaml still matches")
}

// reportHeader is the report's "Measured by `make bench` on DATE: MACHINE." line.
var reportHeader = regexp.MustCompile(`(?m)^Measured by .+ on ([0-9]{4}-[0-9]{2}-[0-9]{2}): (.+)\.$`)

// refreshFromReport copies the CPU µs per request of every figure that
// names a report row (Figure.Variant) from docs/performance.md. A row the
// report no longer has is logged and its figure kept: the benchmarks that
// write the report may be run in part.
func refreshFromReport(t *testing.T, in *capacity.Inputs) {
	t.Helper()
	raw, err := os.ReadFile(benchReport)
	if err != nil {
		t.Logf("no report to take edge and gateway figures from: %v", err)
		return
	}
	report := string(raw)
	date, machine := "", ""
	if m := reportHeader.FindStringSubmatch(report); m != nil {
		date, machine = m[1], m[2]
	}
	cpu := map[string]float64{}
	for line := range strings.Lines(report) {
		cells := strings.Split(strings.TrimSpace(line), "|")
		// "| variant | req/s | CPU µs/req | ..." splits into "", variant, req/s, CPU, ...
		if len(cells) < 5 || cells[0] != "" {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(cells[3]), 64); err == nil {
			cpu[strings.TrimSpace(cells[1])] = v
		}
	}
	for _, f := range []*capacity.Figure{&in.Costs.EdgePerRequest, &in.Costs.GatewayCachedGet, &in.Costs.GatewayAcceptedPost,
		&in.Costs.PasswordHash, &in.Costs.WorkerPerRecord, &in.Costs.UsersPerCall, &in.Costs.PoolerPerStatement} {
		if f.Variant == "" {
			continue
		}
		v, ok := cpu[f.Variant]
		if !ok || !(v > 0) {
			t.Logf("docs/performance.md has no row %q: its figure stays %.1f µs of %s", f.Variant, f.Micros, f.Date)
			continue
		}
		if takes(t, f.Variant, *f, v) {
			f.Micros, f.Kind, f.Date, f.Machine = v, capacity.Measured, date, machine
		}
	}
}

// capacityNoise is how far a new measurement may lie from the recorded one
// and still be taken for the same cost. The machine's speed drifts by a
// third over minutes (the hash read 21.1 to 30.6 ms on 2026-12-03), and a
// plan that followed the drift would move prod's replica bounds and the
// registrations topic's partitions back and forth with it: 36 partitions
// one run, 30 the next, and Kafka cannot take partitions back.
const capacityNoise = 0.25

// takes reports whether measured should replace figure f: it should unless
// f is already a measurement within capacityNoise of it, which then stands,
// dated when it was taken.
func takes(t *testing.T, name string, f capacity.Figure, measured float64) bool {
	t.Helper()
	if f.Kind == capacity.Measured && f.Micros > 0 && math.Abs(measured-f.Micros) <= capacityNoise*f.Micros {
		t.Logf("%s: %.1f µs measured, within %.0f %% of the %.1f µs recorded on %s, which stands", name, measured, capacityNoise*100, f.Micros, f.Date)
		return false
	}
	t.Logf("%s: %.1f µs measured replaces %.1f µs (%s)", name, measured, f.Micros, f.Kind)
	return true
}

// machine describes this host the way docs/performance.md does, with the
// CPU model, since the hash's cost depends on it.
func machine() string {
	host, _ := os.Hostname()
	cpu := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores, %s/%s, %s, %s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), host, cpu)
}

// TestCapacityFigureStandsWithinNoise: a recorded measurement stands
// against a new one within capacityNoise either way, and gives way to one
// beyond it, or when it was only assumed.
func TestCapacityFigureStandsWithinNoise(t *testing.T) {
	recorded := capacity.Figure{Micros: 26600, Kind: capacity.Measured, Date: "2026-12-03"}
	for _, tc := range []struct {
		name     string
		f        capacity.Figure
		measured float64
		takes    bool
	}{
		{"slower within the noise", recorded, 30600, false},
		{"faster within the noise", recorded, 22500, false},
		{"much slower", recorded, 34000, true},
		{"much faster", recorded, 19000, true},
		{"assumed before", capacity.Figure{Micros: 26600, Kind: capacity.Assumed}, 26000, true},
	} {
		assert.Equal(t, tc.takes, takes(t, tc.name, tc.f, tc.measured), tc.name)
	}
}
