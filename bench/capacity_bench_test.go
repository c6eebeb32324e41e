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
// docs/capacity.md. It records nothing for the report, so running it alone
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

	in.Costs.PasswordHash.Micros = micros
	in.Costs.PasswordHash.Kind = capacity.Measured
	in.Costs.PasswordHash.Date = time.Now().UTC().Format("2006-01-02")
	in.Costs.PasswordHash.Machine = machine()
	in.Costs.PasswordHash.Command = "go test -tags bench -count=1 -run TestCapacityInputs ./bench/ (part of make bench)"
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
		f.Micros, f.Kind, f.Date, f.Machine = v, capacity.Measured, date, machine
	}
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
