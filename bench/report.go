package bench

import (
	"fmt"
	"image/color"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Row is one measured variant.
type Row struct {
	Group   string
	Variant string
	Result  Result
	// CPU is the server's user+system time over the measured run.
	CPU time.Duration
}

// CPUPerRequestMicros is the server's CPU µs per request.
func (r Row) CPUPerRequestMicros() float64 {
	if r.Result.Requests == 0 {
		return 0
	}
	return float64(r.CPU.Microseconds()) / float64(r.Result.Requests)
}

// Ratio compares two rows' CPU per request against an optional goal.
type Ratio struct {
	Name  string
	Value float64
	// Goal is the largest acceptable value (the smallest with AtLeast);
	// zero means informational.
	Goal    float64
	AtLeast bool
}

// NewRatio is num's CPU per request over den's.
func NewRatio(name string, num, den Row, goal float64) Ratio {
	return Ratio{Name: name, Value: num.CPUPerRequestMicros() / den.CPUPerRequestMicros(), Goal: goal}
}

// Met reports whether the ratio is within its goal (always for informational ones).
func (r Ratio) Met() bool {
	switch {
	case r.Goal == 0:
		return true
	case r.AtLeast:
		return r.Value >= r.Goal
	default:
		return r.Value <= r.Goal
	}
}

// goalText is "≤ 1.50" or "≥ 6.00".
func (r Ratio) goalText() string {
	if r.AtLeast {
		return fmt.Sprintf("≥ %.2f", r.Goal)
	}
	return fmt.Sprintf("≤ %.2f", r.Goal)
}

// InfraRow is one stack's infrastructure-code timings.
type InfraRow struct {
	Stack       string
	Resources   int
	Eval        time.Duration
	Render      time.Duration
	Total       time.Duration
	Diagnostics int
}

// ResourcesPerSecond is the throughput of render plus check.
func (r InfraRow) ResourcesPerSecond() float64 { return float64(r.Resources) / r.Total.Seconds() }

var (
	infraSection string
	notes        []string
)

// Note adds a paragraph of findings to the report.
func Note(t *testing.T, text string) {
	t.Helper()
	t.Log(text)
	mu.Lock()
	notes = append(notes, text)
	mu.Unlock()
}

// RecordInfra keeps the infrastructure-code table for the report.
func RecordInfra(t *testing.T, rows []InfraRow, note string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("### The infrastructure code itself\n\n| stack | resources | program under mocks | + render to files | + policy pack offline | resources/s | diagnostics |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %v | %.0f | %d |\n", r.Stack, r.Resources, r.Eval.Round(time.Millisecond),
			r.Render.Round(time.Millisecond), r.Total.Round(time.Millisecond), r.ResourcesPerSecond(), r.Diagnostics)
	}
	fmt.Fprintf(&b, "\nGoal: prod rendered and checked in under 2 s. %s.\n", note)
	t.Log("\n" + b.String())
	mu.Lock()
	infraSection = b.String()
	mu.Unlock()
}

// section is one Record call, kept for the report TestMain writes.
type section struct {
	title  string
	rows   []Row
	ratios []Ratio
}

var (
	mu       sync.Mutex
	sections []section
)

// Record prints a group's table and ratios and keeps them for the report.
func Record(t *testing.T, title string, rows []Row, ratios []Ratio) {
	t.Helper()
	s := section{title: title, rows: rows, ratios: ratios}
	t.Log("\n" + s.markdown())
	mu.Lock()
	sections = append(sections, s)
	mu.Unlock()
	for _, r := range ratios {
		if !r.Met() {
			t.Errorf("goal missed: %s = %.2f, goal %s", r.Name, r.Value, r.goalText())
		}
	}
}

func (s section) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n| variant | req/s | CPU µs/req | p50 | p99 | p99.9 |\n|---|---:|---:|---:|---:|---:|\n", s.title)
	for _, r := range s.rows {
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %v | %v | %v |\n", r.Variant, r.Result.RPS(), r.CPUPerRequestMicros(),
			r.Result.P50.Round(time.Microsecond), r.Result.P99.Round(time.Microsecond), r.Result.P999.Round(time.Microsecond))
	}
	if len(s.ratios) > 0 {
		b.WriteString("\n| ratio | value | goal | met |\n|---|---:|---:|---|\n")
		for _, r := range s.ratios {
			goal, met := "—", "—"
			if r.Goal > 0 {
				goal, met = r.goalText(), map[bool]string{true: "yes", false: "**no**"}[r.Met()]
			}
			fmt.Fprintf(&b, "| %s | %.2f | %s | %s |\n", r.Name, r.Value, goal, met)
		}
	}
	return b.String()
}

// WriteReport writes docs/performance.md and its chart from every section
// recorded in this run.
func WriteReport(mdPath, pngPath, command string) error {
	mu.Lock()
	defer mu.Unlock()
	if len(sections) == 0 && infraSection == "" {
		return nil
	}
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Performance\n\nMeasured by `%s` on %s: %d cores, %s/%s, %s, %s.\n", command,
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), host)
	b.WriteString("Throughput is requests per second from wrk; CPU µs/req is the server's user+system time from `/proc/<pid>/stat` before and after the run, divided by the requests: the steadier figure on shared cores. The server under test is pinned to one core, wrk and any backend to the other.\n\n")
	fmt.Fprintf(&b, "![throughput and CPU per request](%s)\n\n", "img/performance.png")
	for _, s := range sections {
		b.WriteString(s.markdown())
		b.WriteString("\n")
	}
	for _, n := range notes {
		b.WriteString(n + "\n\n")
	}
	b.WriteString(infraSection)
	// The hand-written reading of the numbers lives beside the code, so a
	// new run never erases it.
	if analysis, err := os.ReadFile("analysis.md"); err == nil {
		b.WriteString("\n")
		b.Write(analysis)
	}
	if err := os.WriteFile(mdPath, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if len(sections) == 0 {
		return nil
	}
	return chart(pngPath)
}

// chart draws, for every variant, its requests per second and its CPU per
// request as horizontal bars, side by side and sharing the variants' names,
// so that one row of the picture is one row of the tables.
func chart(path string) error {
	var rps, cpu plotter.Values
	var names []string
	for _, s := range sections {
		for _, r := range s.rows {
			rps = append(rps, r.Result.RPS())
			cpu = append(cpu, r.CPUPerRequestMicros())
			names = append(names, r.Variant)
		}
	}
	// NominalY puts the first name at the bottom; the tables read top down.
	slices.Reverse(rps)
	slices.Reverse(cpu)
	slices.Reverse(names)
	left, err := barPlot("Requests per second", rps, color.RGBA{R: 44, G: 111, B: 187, A: 255})
	if err != nil {
		return err
	}
	left.NominalY(names...)
	right, err := barPlot("CPU µs per request (lower is better)", cpu, color.RGBA{R: 214, G: 96, B: 77, A: 255})
	if err != nil {
		return err
	}
	right.NominalY(make([]string, len(names))...)
	width, height := 28*vg.Centimeter, vg.Length(2+len(names))*6*vg.Millimeter
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// barPlot is one panel of the chart: values as horizontal bars.
func barPlot(title string, values plotter.Values, c color.Color) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	bars, err := plotter.NewBarChart(values, 3*vg.Millimeter)
	if err != nil {
		return nil, err
	}
	bars.Horizontal = true
	bars.Color = c
	p.Add(bars)
	return p, nil
}
