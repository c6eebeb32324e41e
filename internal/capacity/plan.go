package capacity

import (
	"fmt"
	"math"
	"slices"
)

// The request classes of the mix.
const (
	Read     = "read"
	Register = "register"
	Login    = "login"
)

var classes = []string{Read, Register, Login}

// WorkloadPlan is the model's answer for one workload.
type WorkloadPlan struct {
	// Name is one of Workloads.
	Name string
	// CPUCores is the CPU the target load costs this workload, in cores.
	CPUCores float64
	// Needed is the fewest pods that carry CPUCores with each pod at or
	// below the HPA target.
	Needed int
	// ZoneSized is Needed grown so that losing ZonesLost zones still
	// leaves Needed pods, rounded up to a multiple of the zones so the
	// spread is even (and a lost zone takes exactly its share).
	ZoneSized int
	// Min and Max are the HPA bounds: Min is ZoneSized for synchronous
	// workloads and the floor for the worker; Max adds the headroom.
	Min, Max int
	// Utilisation is CPU used over CPU requested at the target load, with
	// every zone up and with ZonesLost zones lost, when the workload runs
	// ZoneSized pods.
	Utilisation, UtilisationZoneLost float64
}

// PathPlan is the p99 estimate of one request class.
type PathPlan struct {
	// Class is read, register or login.
	Class string
	// PerSecond is the class's share of the target load.
	PerSecond float64
	// CPUMillis and QueueMillis are the p99 estimate's parts: CPU work and
	// waiting on the path's workloads (one zone lost); NetworkMillis is the
	// stated off-CPU allowance; P99Millis their sum.
	CPUMillis, QueueMillis, NetworkMillis, P99Millis float64
	// Budgeted says whether the p99 goal applies to the class.
	Budgeted bool
}

// DatabasePlan is the connection arithmetic.
type DatabasePlan struct {
	// ReadStatements and WriteStatements per second reach the read-only
	// (replicas) and read-write (primary) paths.
	ReadStatements, WriteStatements float64
	// BusyRead and BusyWrite are the server connections in use at the
	// 99.9th percentile (Poisson, M/G/∞, from Little's law's mean).
	BusyRead, BusyWrite int
	// PoolSize is PgBouncer's default_pool_size per pod.
	PoolSize int
	// ServerConnections is what one pooler kind opens at its most pods;
	// InClusterMaxConnections is the max_connections the in-cluster
	// postgres component derives from it.
	ServerConnections       int
	InClusterMaxConnections int
	// MaxConnections is the database's (Inputs.Database.MaxConnections)
	// and Spare what is left of it after the poolers and the reserve.
	MaxConnections, Spare int
	// ReadClients and WriteClients are the services' pool connections at
	// their maxReplicas; ClientCapacity is what one pooler kind accepts at
	// its fewest pods.
	ReadClients, WriteClients, ClientCapacity int
}

// Plan is the model's answer for a set of inputs.
type Plan struct {
	// Workloads in the order of the package's Workloads.
	Workloads []WorkloadPlan
	// Partitions of the registrations topic.
	Partitions int
	Database   DatabasePlan
	// Paths in the order read, register, login.
	Paths []PathPlan
	// Problems are goals the plan misses (a budgeted p99 over budget, a
	// connection budget overrun). Plan still returns the figures, so the
	// report shows what is missed and by how much.
	Problems []string
}

// Workload returns the plan of the named workload.
func (p Plan) Workload(name string) (WorkloadPlan, bool) {
	i := slices.IndexFunc(p.Workloads, func(w WorkloadPlan) bool { return w.Name == name })
	if i < 0 {
		return WorkloadPlan{}, false
	}
	return p.Workloads[i], true
}

// demand is the work one class puts on the workloads, per request.
type demand struct {
	// micros is the CPU per request of the class on each workload (the
	// average over cache hits and misses).
	micros map[string]float64
	// worst is the CPU of the class's slowest branch on each workload (a
	// read that misses the cache), for the latency estimate.
	worst map[string]float64
	// visit is the share of the class's requests that reach each workload.
	visit map[string]float64
	// statements is database statements per request, by path.
	readStatements, writeStatements float64
}

// demands spells out, per class, which workloads a request touches and
// what it costs there. This is the model's picture of the request paths
// (docs/services.md): every request crosses the edge and the gateway; a
// read that misses the cache calls users, which queries a replica through
// PgBouncer; a registration is queued and the worker hashes and inserts it
// later; a login calls users, which reads the row and verifies the hash.
func demands(in Inputs) map[string]demand {
	c := in.Costs
	m := in.Target.CacheMissRatio
	gwRead := (1-m)*c.GatewayCachedGet.Micros + m*c.GatewayAcceptedPost.Micros
	gwReadWorst := c.GatewayCachedGet.Micros
	if m > 0 {
		gwReadWorst = max(gwReadWorst, c.GatewayAcceptedPost.Micros)
	}
	return map[string]demand{
		Read: {
			micros: map[string]float64{Edge: c.EdgePerRequest.Micros, Gateway: gwRead,
				Users: m * c.UsersPerCall.Micros, Pooler: m * c.PoolerPerStatement.Micros},
			worst: map[string]float64{Edge: c.EdgePerRequest.Micros, Gateway: gwReadWorst,
				Users: c.UsersPerCall.Micros, Pooler: c.PoolerPerStatement.Micros},
			visit:          map[string]float64{Edge: 1, Gateway: 1, Users: m, Pooler: m},
			readStatements: m,
		},
		Register: {
			// The worker's insert is one statement per record at most (it
			// batches): counted as one, the conservative side.
			micros: map[string]float64{Edge: c.EdgePerRequest.Micros, Gateway: c.GatewayAcceptedPost.Micros,
				Worker: c.PasswordHash.Micros + c.WorkerPerRecord.Micros, Pooler: c.PoolerPerStatement.Micros},
			worst: map[string]float64{Edge: c.EdgePerRequest.Micros, Gateway: c.GatewayAcceptedPost.Micros},
			// The client waits for the 202 only: the worker's part is after it.
			visit:           map[string]float64{Edge: 1, Gateway: 1},
			writeStatements: 1,
		},
		Login: {
			micros: map[string]float64{Edge: c.EdgePerRequest.Micros, Gateway: c.GatewayAcceptedPost.Micros,
				Users: c.PasswordHash.Micros + c.UsersPerCall.Micros, Pooler: c.PoolerPerStatement.Micros},
			worst: map[string]float64{Edge: c.EdgePerRequest.Micros, Gateway: c.GatewayAcceptedPost.Micros,
				Users: c.PasswordHash.Micros + c.UsersPerCall.Micros, Pooler: c.PoolerPerStatement.Micros},
			visit:          map[string]float64{Edge: 1, Gateway: 1, Users: 1, Pooler: 1},
			readStatements: 1,
		},
	}
}

// rates is requests per second of each class.
func rates(in Inputs) map[string]float64 {
	r := in.Target.RequestsPerSecond
	return map[string]float64{Read: r * in.Target.Mix.Read, Register: r * in.Target.Mix.Register, Login: r * in.Target.Mix.Login}
}

// ceilInt rounds up, forgiving the float error of products such as
// 0.7 * 10 (which is not exactly 7).
func ceilInt(x float64) int { return int(math.Ceil(x - 1e-9)) }

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// PlanFor computes the plan for inputs: a pure function of them. It returns an
// error for inputs the model cannot work with (zero zones, a zero cost, a
// mix that does not add up), never a plan built on a division by zero.
func PlanFor(in Inputs) (Plan, error) {
	if err := in.Validate(); err != nil {
		return Plan{}, fmt.Errorf("capacity inputs: %w", err)
	}
	ds, rs := demands(in), rates(in)
	z, lost := in.Zones, in.ZonesLost
	target := float64(in.HPACPUTargetPercent) / 100
	var p Plan

	for _, name := range Workloads {
		wl := in.Workloads[name]
		req := float64(wl.CPURequestMillis) / 1000
		var cores float64
		for _, k := range classes {
			cores += rs[k] * ds[k].micros[name] / 1e6
		}
		needed := max(1, ceilInt(cores/(req*target)))
		// Losing `lost` of z evenly spread zones keeps (z-lost)/z of the pods.
		zoneSized := roundUp(ceilInt(float64(needed*z)/float64(z-lost)), z)
		base := max(zoneSized, roundUp(in.MinReplicasFloor, z))
		headroom := roundUp(max(1, ceilInt(float64(base*in.HeadroomPercent)/100)), z)
		w := WorkloadPlan{Name: name, CPUCores: cores, Needed: needed, ZoneSized: base,
			Min: in.MinReplicasFloor, Max: base + headroom}
		if wl.Synchronous {
			w.Min = base
		}
		if wl.KafkaConsumer {
			// Every consumer should own the same number of partitions, with
			// every zone up and with one lost, or the busiest pods saturate
			// while the HPA sees a comfortable average: the maximum (which
			// sets the partition count) is a multiple of both sizes.
			after := base * (z - lost) / z
			step := base / gcd(base, after) * after
			w.Max = roundUp(max(w.Max, step), step)
		}
		w.Utilisation = cores / (float64(base) * req)
		w.UtilisationZoneLost = cores / (float64(base*(z-lost)/z) * req)
		p.Workloads = append(p.Workloads, w)
	}

	consumer := Worker
	for name, wl := range in.Workloads {
		if wl.KafkaConsumer {
			consumer = name
		}
	}
	cw, _ := p.Workload(consumer)
	p.Partitions = max(in.MinPartitions, cw.Max)

	p.Paths = paths(in, p, ds, rs)
	for _, path := range p.Paths {
		if path.Budgeted && !(path.P99Millis < in.Target.P99BudgetMillis) {
			p.Problems = append(p.Problems, fmt.Sprintf("%s: p99 estimate %.1f ms is not under the %.0f ms budget",
				path.Class, path.P99Millis, in.Target.P99BudgetMillis))
		}
	}
	for _, w := range p.Workloads {
		if w.UtilisationZoneLost > target+1e-9 {
			p.Problems = append(p.Problems, fmt.Sprintf("%s: %.0f %% of its CPU request with a zone lost, above the %d %% target",
				w.Name, 100*w.UtilisationZoneLost, in.HPACPUTargetPercent))
		}
	}
	var problems []string
	p.Database, problems = database(in, p, ds, rs)
	p.Problems = append(p.Problems, problems...)
	return p, nil
}

// paths estimates each class's p99 with ZonesLost zones lost.
//
// Each workload on a path is taken as a processor-sharing server (Go's
// scheduler and the kernel's both time-slice, so a short request is not
// stuck behind a long one) whose speed is the pod's guaranteed CPU: its
// request, at most one core for one request (a request runs on one
// thread). In M/G/1-PS the number of requests an arrival finds is
// geometric, P(N >= n) = rho^n, whatever the mix of request sizes; a
// request of CPU time x then takes about x*(N+1), and never less on
// average than x/(1-rho). The path's p99 is bounded by giving each of its
// k workloads a 1%/k share of the tail (a union bound), divided by the
// share of requests that visit it, plus the stated network allowance.
// This is an approximation of the CPU queueing, not a proof of latency:
// docs/capacity.md says what it leaves out.
func paths(in Inputs, p Plan, ds map[string]demand, rs map[string]float64) []PathPlan {
	net := map[string]float64{Read: in.Target.NetworkMillis.Read, Register: in.Target.NetworkMillis.Register, Login: in.Target.NetworkMillis.Login}
	var out []PathPlan
	for _, k := range classes {
		d := ds[k]
		var stages []string
		for _, w := range Workloads {
			if d.visit[w] > 0 && d.worst[w] > 0 {
				stages = append(stages, w)
			}
		}
		path := PathPlan{Class: k, PerSecond: rs[k], NetworkMillis: net[k], Budgeted: slices.Contains(in.Target.Budgeted, k)}
		for _, w := range stages {
			wp, _ := p.Workload(w)
			speed := min(1, float64(in.Workloads[w].CPURequestMillis)/1000)
			x := d.worst[w] / speed / 1000 // ms at the guaranteed speed
			rho := wp.UtilisationZoneLost
			q := 0.01 / float64(len(stages)) / d.visit[w]
			if q >= 1 {
				// Visited so rarely that the whole visit fits in its tail share.
				continue
			}
			path.CPUMillis += x
			switch {
			case rho >= 1:
				path.QueueMillis = math.Inf(1)
			case rho > 0:
				n := math.Max(0, math.Log(q)/math.Log(rho))
				path.QueueMillis += math.Max(x*n, x/(1-rho)-x)
			}
		}
		path.P99Millis = path.CPUMillis + path.QueueMillis + path.NetworkMillis
		if rs[k] == 0 {
			path.CPUMillis, path.QueueMillis, path.P99Millis = 0, 0, 0
		}
		out = append(out, path)
	}
	return out
}

// poisson999 is the 99.9th percentile of a Poisson count of mean mu: the
// busy connections of an M/G/∞ pool (statements arriving at random, each
// holding a connection for a while) whose mean Little's law gives.
func poisson999(mu float64) int {
	if mu <= 0 {
		return 0
	}
	term := math.Exp(-mu)
	cdf := term
	n := 0
	for cdf < 0.999 && n < 1_000_000 {
		n++
		term *= mu / float64(n)
		cdf += term
		if term == 0 { // mu so large that e^-mu underflowed: use the normal tail
			return ceilInt(mu + 3.1*math.Sqrt(mu))
		}
	}
	return n
}

// database sizes PgBouncer's pool and checks the connection budget on both
// sides of the poolers, returning what does not fit.
func database(in Inputs, p Plan, ds map[string]demand, rs map[string]float64) (DatabasePlan, []string) {
	db := in.Database
	var d DatabasePlan
	var problems []string
	for _, k := range classes {
		d.ReadStatements += rs[k] * ds[k].readStatements
		d.WriteStatements += rs[k] * ds[k].writeStatements
	}
	d.BusyRead = poisson999(d.ReadStatements * db.StatementMillis / 1000)
	d.BusyWrite = poisson999(d.WriteStatements * db.StatementMillis / 1000)

	pooler, _ := p.Workload(Pooler)
	users, _ := p.Workload(Users)
	worker, _ := p.Workload(Worker)
	z, lost := in.Zones, in.ZonesLost
	poolersLeft := max(1, pooler.ZoneSized*(z-lost)/z)
	// Each pooler kind (rw, ro) runs pooler.Min..Max pods; the busier path
	// sets the pool, which must hold its peak on the pods a zone loss leaves.
	d.PoolSize = max(db.PoolSizeFloor, ceilInt(float64(max(d.BusyRead, d.BusyWrite))/float64(poolersLeft)))
	d.ServerConnections = pooler.Max * d.PoolSize
	d.InClusterMaxConnections = d.ServerConnections + db.ReservedConnections
	d.MaxConnections = db.MaxConnections
	d.Spare = db.MaxConnections - d.InClusterMaxConnections
	if d.Spare < 0 {
		problems = append(problems, fmt.Sprintf("database: the poolers may open %d server connections (%d pods × %d) plus %d reserved, above max_connections %d",
			d.ServerConnections, pooler.Max, d.PoolSize, db.ReservedConnections, db.MaxConnections))
	}

	d.ReadClients = users.Max * db.UsersConnsPerURL
	d.WriteClients = users.Max*db.UsersConnsPerURL + worker.Max*db.WorkerConnsPerPod
	d.ClientCapacity = pooler.Min * db.MaxClientConn
	if c := max(d.ReadClients, d.WriteClients); c > d.ClientCapacity {
		problems = append(problems, fmt.Sprintf("database: services may open %d client connections at maxReplicas, the poolers accept %d at their fewest pods",
			c, d.ClientCapacity))
	}
	// The services' own pools must hold their share of the peak.
	usersLeft := max(1, users.ZoneSized*(z-lost)/z)
	if need := poisson999(d.ReadStatements * db.StatementMillis / 1000 / float64(usersLeft)); need > db.UsersConnsPerURL {
		problems = append(problems, fmt.Sprintf("database: a users pod needs %d read connections at the 99.9th percentile, its pool has %d", need, db.UsersConnsPerURL))
	}
	if need := poisson999(d.WriteStatements * db.StatementMillis / 1000 / float64(worker.Needed)); need > db.WorkerConnsPerPod {
		problems = append(problems, fmt.Sprintf("database: a worker pod needs %d connections at the 99.9th percentile, its pool has %d", need, db.WorkerConnsPerPod))
	}
	return d, problems
}
