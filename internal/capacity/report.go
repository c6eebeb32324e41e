package capacity

import (
	"fmt"
	"math"
	"strings"
)

// DocFile is the capacity document, relative to the module root; the part
// between DocBegin and DocEnd is Markdown's output.
const DocFile = "docs/capacity.md"

// Markers of the generated part of DocFile.
const (
	DocBegin = "<!-- generated: go test ./internal/capacity -update -->\n"
	DocEnd   = "<!-- end of generated part -->\n"
)

// ReplaceGenerated returns doc with the part between its markers replaced
// by the tables of in and p: the hand-written text around them stays.
func ReplaceGenerated(doc string, in Inputs, p Plan) (string, error) {
	i := strings.Index(doc, DocBegin)
	j := strings.Index(doc, DocEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %q ... %q markers in order", strings.TrimSpace(DocBegin), strings.TrimSpace(DocEnd))
	}
	return doc[:i+len(DocBegin)] + "\n" + Markdown(in, p) + "\n" + doc[j:], nil
}

// Markdown renders the inputs and the plan as the tables of
// docs/capacity.md, so the document shows what the model computes rather
// than a copy that could go stale (a test compares them).
func Markdown(in Inputs, p Plan) string {
	var b strings.Builder
	w := func(format string, v ...any) { fmt.Fprintf(&b, format, v...) }

	w("#### Costs (CPU per request)\n\n| figure | µs | kind | source |\n|---|---:|---|---|\n")
	c := in.Costs
	for _, f := range []struct {
		name string
		fig  Figure
	}{
		{"edge, per request", c.EdgePerRequest},
		{"gateway, cached GET", c.GatewayCachedGet},
		{"gateway, 202 POST", c.GatewayAcceptedPost},
		{fmt.Sprintf("argon2id hash (t=%d, m=%d KiB, p=%d)", c.HashParams.Time, c.HashParams.MemoryKiB, c.HashParams.Threads), c.PasswordHash},
		{"worker, per record besides the hash", c.WorkerPerRecord},
		{"users, per call besides the hash", c.UsersPerCall},
		{"PgBouncer, per statement", c.PoolerPerStatement},
	} {
		source := f.fig.Note
		if f.fig.Kind == Measured {
			source = fmt.Sprintf("%s on %s (%s). %s", f.fig.Command, f.fig.Date, f.fig.Machine, f.fig.Note)
		}
		w("| %s | %s | %s | %s |\n", f.name, num(f.fig.Micros), f.fig.Kind, source)
	}

	t := in.Target
	w("\n#### Target and rules\n\n| input | value |\n|---|---|\n")
	w("| load at the edge | %s requests/s |\n", num(t.RequestsPerSecond))
	w("| mix | %s %% reads, %s %% registrations, %s %% logins |\n", num(100*t.Mix.Read), num(100*t.Mix.Register), num(100*t.Mix.Login))
	w("| reads that miss the cache | %s %% |\n", num(100*t.CacheMissRatio))
	w("| p99 budget | %s ms, for %s |\n", num(t.P99BudgetMillis), strings.Join(t.Budgeted, " and "))
	w("| off-CPU allowance (assumed) | read %s ms, register %s ms, login %s ms |\n", num(t.NetworkMillis.Read), num(t.NetworkMillis.Register), num(t.NetworkMillis.Login))
	w("| zones | %d, of which %d may be lost |\n", in.Zones, in.ZonesLost)
	w("| HPA CPU target | %d %% of the request |\n", in.HPACPUTargetPercent)
	w("| replica floor | %d |\n", in.MinReplicasFloor)
	w("| headroom above the zone-loss size | %d %% (at least one pod per zone) |\n", in.HeadroomPercent)
	w("| fewest registrations partitions | %d |\n", in.MinPartitions)
	d := in.Database
	w("| database | %s ms per statement (assumed); pool floor %d; max_client_conn %d; max_connections %d (%s); %d reserved; pools per pod: worker %d, users %d per URL |\n",
		num(d.StatementMillis), d.PoolSizeFloor, d.MaxClientConn, d.MaxConnections, d.InstanceClass, d.ReservedConnections, d.WorkerConnsPerPod, d.UsersConnsPerURL)

	w("\n#### Plan\n\n| workload | CPU request | CPU at the target | pods needed at %d %% | zone-loss size | minReplicas | maxReplicas | utilisation, all zones | one zone lost |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
		in.HPACPUTargetPercent)
	for _, wp := range p.Workloads {
		w("| %s | %dm | %.2f cores | %d | %d | %d | %d | %.0f %% | %.0f %% |\n", wp.Name, in.Workloads[wp.Name].CPURequestMillis,
			wp.CPUCores, wp.Needed, wp.ZoneSized, wp.Min, wp.Max, 100*wp.Utilisation, 100*wp.UtilisationZoneLost)
	}
	w("\nRegistrations topic: **%d partitions**.\n", p.Partitions)
	db := p.Database
	w("\n| connections | value |\n|---|---|\n")
	w("| statements/s: replicas (ro), primary (rw) | %s, %s |\n", num(db.ReadStatements), num(db.WriteStatements))
	w("| busy server connections at the 99.9th percentile: ro, rw | %d, %d |\n", db.BusyRead, db.BusyWrite)
	w("| PgBouncer default_pool_size | %d |\n", db.PoolSize)
	w("| server connections of one pooler kind at maxReplicas | %d |\n", db.ServerConnections)
	w("| max_connections the in-cluster component would set | %d |\n", db.InClusterMaxConnections)
	w("| database max_connections, spare after poolers and reserve | %d, %d |\n", db.MaxConnections, db.Spare)
	w("| client connections at maxReplicas: ro, rw | %d, %d |\n", db.ReadClients, db.WriteClients)
	w("| clients one pooler kind accepts at minReplicas | %d |\n", db.ClientCapacity)

	w("\n| class | requests/s | CPU, slowest branch | queueing (one zone lost) | off-CPU allowance | p99 estimate | budget |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, path := range p.Paths {
		budget := "not budgeted"
		if path.Budgeted {
			budget = fmt.Sprintf("< %s ms", num(in.Target.P99BudgetMillis))
		}
		w("| %s | %s | %s ms | %s ms | %s ms | %s ms | %s |\n", path.Class, num(path.PerSecond), ms(path.CPUMillis),
			ms(path.QueueMillis), ms(path.NetworkMillis), ms(path.P99Millis), budget)
	}
	if len(p.Problems) > 0 {
		w("\nProblems:\n\n")
		for _, pr := range p.Problems {
			w("- %s\n", pr)
		}
	}
	return b.String()
}

// num prints a figure without trailing zeros (9600, 0.5, 20800).
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// ms prints milliseconds to a tenth.
func ms(v float64) string {
	if math.IsInf(v, 1) {
		return "∞"
	}
	return fmt.Sprintf("%.1f", v)
}
