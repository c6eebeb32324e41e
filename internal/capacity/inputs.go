// Package capacity is the capacity model of the prod stack: from the CPU
// each request costs (measured by `make bench`) and a target load, it
// computes the replica counts, HPA bounds, Kafka partitions and database
// pool sizes that hold the target with one zone lost. The prod stack's
// figures come from Plan, and a test fails when stacks/Pulumi.prod.yaml
// drifts from it (docs/capacity.md explains the model).
//
// The model is pure arithmetic over Inputs: no clock, no I/O besides
// reading and writing the inputs file, so the same inputs always give the
// same plan.
package capacity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
)

// InputsFile is where the committed inputs live, relative to the module
// root; `make bench` refreshes the measured figures in it.
const InputsFile = "internal/capacity/inputs.json"

// The workloads the model sizes. The first four are the Deployments whose
// replicas are stack knobs (stacks.Workloads); the pooler is PgBouncer,
// sized by the pgbouncer* knobs.
const (
	Edge    = "edge"
	Gateway = "gateway"
	Users   = "users"
	Worker  = "worker"
	Pooler  = "pgbouncer"
)

// Workloads lists the sized workloads in the order reports show them.
var Workloads = []string{Edge, Gateway, Users, Worker, Pooler}

// The kinds of figure: measured by a command, or assumed (and said why).
const (
	Measured = "measured"
	Assumed  = "assumed"
)

// Figure is one CPU cost with where it comes from, so a reader of
// inputs.json knows which numbers a machine produced and which a person
// chose.
type Figure struct {
	// Micros is CPU microseconds (user+system) per unit of work.
	Micros float64 `json:"micros"`
	// Kind is Measured or Assumed.
	Kind string `json:"kind"`
	// Date, Machine and Command say when, where and how a measured figure
	// was taken; an assumed one leaves Machine and Command empty.
	Date    string `json:"date,omitempty"`
	Machine string `json:"machine,omitempty"`
	Command string `json:"command,omitempty"`
	// Variant is the row of docs/performance.md the figure is taken from,
	// when make bench measures it in its report rather than for the model.
	Variant string `json:"variant,omitempty"`
	// Note says what the figure covers, or why an assumption is safe.
	Note string `json:"note"`
}

// HashParams mirror account.HashParams: the argon2id cost the hash figure
// was measured with. A test compares them with the services' defaults, so
// raising the cost without re-measuring fails.
type HashParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memoryKiB"`
	Threads   uint8  `json:"threads"`
}

// Costs are the per-request CPU costs of each workload.
type Costs struct {
	// EdgePerRequest is the edge proxy's CPU per proxied request.
	EdgePerRequest Figure `json:"edgePerRequest"`
	// GatewayCachedGet is the gateway's CPU per GET answered from its cache
	// (rate limit and cache in Redis included).
	GatewayCachedGet Figure `json:"gatewayCachedGet"`
	// GatewayAcceptedPost is the gateway's CPU per 202 registration (body
	// decoding, a Kafka produce). It also stands for the gateway's side of
	// a login and of a cache miss: a request with one downstream call.
	GatewayAcceptedPost Figure `json:"gatewayAcceptedPost"`
	// PasswordHash is one argon2id hash with HashParams: the worker's
	// CPU-heavy step per registration, and the users service's per login
	// (verifying recomputes the same hash).
	PasswordHash Figure     `json:"passwordHash"`
	HashParams   HashParams `json:"hashParams"`
	// WorkerPerRecord is the worker's CPU per registration besides the
	// hash: Kafka fetch, decoding, its share of the batched insert, the
	// Redis announcement.
	WorkerPerRecord Figure `json:"workerPerRecord"`
	// UsersPerCall is the users service's CPU per gRPC call besides the
	// hash: the unary call and one query on a pooled connection.
	UsersPerCall Figure `json:"usersPerCall"`
	// PoolerPerStatement is PgBouncer's CPU per statement it forwards.
	PoolerPerStatement Figure `json:"poolerPerStatement"`
}

// Mix is the share of each request class in the target load; the shares
// add up to 1.
type Mix struct {
	// Read is GET /v1/users/{id} and GET /v1/me, served from the cache
	// except for CacheMissRatio of them.
	Read float64 `json:"read"`
	// Register is POST /v1/register, answered 202 once queued in Kafka.
	Register float64 `json:"register"`
	// Login is POST /v1/sessions: the users service verifies the password.
	Login float64 `json:"login"`
}

// PathMillis holds one number per request class.
type PathMillis struct {
	Read     float64 `json:"read"`
	Register float64 `json:"register"`
	Login    float64 `json:"login"`
}

// Target is the load the prod stack must hold and its latency goal.
type Target struct {
	// RequestsPerSecond arrive at the edge.
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	Mix               Mix     `json:"mix"`
	// CacheMissRatio is the share of reads that reach the users service.
	CacheMissRatio float64 `json:"cacheMissRatio"`
	// P99BudgetMillis is the p99 latency goal of the budgeted classes.
	P99BudgetMillis float64 `json:"p99BudgetMillis"`
	// Budgeted lists the classes the p99 goal applies to ("read",
	// "register", "login"); docs/capacity.md says why login is not one.
	Budgeted []string `json:"budgeted"`
	// NetworkMillis is the part of each class's p99 spent off-CPU (network
	// round trips to Redis, Kafka's acks=all, the users call): the model
	// computes CPU queueing, not these, so they are stated here.
	NetworkMillis PathMillis `json:"networkMillis"`
}

// Workload is what the model needs of one Deployment besides its costs.
type Workload struct {
	// CPURequestMillis is the pod's CPU request in millicores: what the
	// scheduler guarantees and what the HPA's utilisation is relative to.
	CPURequestMillis int `json:"cpuRequestMillis"`
	// Synchronous workloads answer requests a client waits for: they run
	// the zone-loss size as their floor, because the HPA does not react
	// to a lost zone in time (docs/capacity.md). The worker drains a queue
	// and may lag instead.
	Synchronous bool `json:"synchronous"`
	// KafkaConsumer workloads read the registrations topic: their maximum
	// sets its partition count, so it is chosen to split evenly.
	KafkaConsumer bool `json:"kafkaConsumer,omitempty"`
}

// Database are the inputs of the connection budget.
type Database struct {
	// StatementMillis is the time a pooled server connection is held per
	// statement (query and round trip); Little's law turns it into busy
	// connections.
	StatementMillis float64 `json:"statementMillis"`
	// PoolSizeFloor is the smallest PgBouncer pool per pod, whatever the
	// load: slow statements (up to statement_timeout) must not starve it.
	PoolSizeFloor int `json:"poolSizeFloor"`
	// MaxClientConn is PgBouncer's max_client_conn per pod.
	MaxClientConn int `json:"maxClientConn"`
	// InstanceClass is the RDS class MaxConnections was read for; the
	// drift test compares it with the prod stack's.
	InstanceClass string `json:"instanceClass"`
	// MaxConnections is the database's max_connections (RDS derives it
	// from the instance class's memory).
	MaxConnections int `json:"maxConnections"`
	// ReservedConnections are kept out of the poolers' budget (admin,
	// superuser reserve).
	ReservedConnections int `json:"reservedConnections"`
	// WorkerConnsPerPod and UsersConnsPerURL are the services' pgxpool
	// sizes (DATABASE_MAX_CONNS; users opens one pool per URL, rw and ro).
	WorkerConnsPerPod int `json:"workerConnsPerPod"`
	UsersConnsPerURL  int `json:"usersConnsPerUrl"`
	// Note records where these come from.
	Note string `json:"note"`
}

// Inputs are everything Plan reads: measured costs, the target and the
// platform's rules. inputs.json holds the committed values.
type Inputs struct {
	Costs  Costs  `json:"costs"`
	Target Target `json:"target"`
	// Zones the pods spread over, and how many of them may be lost at once.
	Zones     int `json:"zones"`
	ZonesLost int `json:"zonesLost"`
	// HPACPUTargetPercent is the HPA's CPU utilisation target.
	HPACPUTargetPercent int `json:"hpaCpuTargetPercent"`
	// MinReplicasFloor is the fewest pods of anything (3 in prod: one per zone).
	MinReplicasFloor int `json:"minReplicasFloor"`
	// HeadroomPercent is added above the zone-loss size for maxReplicas:
	// load beyond the target and error in the measured costs.
	HeadroomPercent int `json:"headroomPercent"`
	// MinPartitions is the fewest partitions of the registrations topic
	// (stacks.Env.Topics keeps at least this many).
	MinPartitions int                 `json:"minPartitions"`
	Workloads     map[string]Workload `json:"workloads"`
	Database      Database            `json:"database"`
}

// ReadInputs reads an inputs file.
func ReadInputs(path string) (Inputs, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Inputs{}, err
	}
	var in Inputs
	dec := json.NewDecoder(bytes.NewReader(raw))
	// A misspelt key would otherwise silently leave a zero in the model.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Inputs{}, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// Marshal renders inputs the way the committed file is written (two-space
// indent, trailing newline), so a refresh changes only the figures.
func (in Inputs) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteInputs writes inputs to path in the committed format.
func WriteInputs(path string, in Inputs) error {
	b, err := in.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Validate reports every input the model cannot work with; Plan calls it
// first, so a bad input is an error, never a division by zero.
func (in Inputs) Validate() error {
	var errs []error
	bad := func(format string, v ...any) { errs = append(errs, fmt.Errorf(format, v...)) }
	positive := func(name string, f Figure) {
		if !(f.Micros > 0) || math.IsInf(f.Micros, 0) {
			bad("costs.%s.micros = %v: must be a positive number", name, f.Micros)
		}
		if f.Kind != Measured && f.Kind != Assumed {
			bad("costs.%s.kind = %q: must be %q or %q", name, f.Kind, Measured, Assumed)
		}
	}
	c := in.Costs
	positive("edgePerRequest", c.EdgePerRequest)
	positive("gatewayCachedGet", c.GatewayCachedGet)
	positive("gatewayAcceptedPost", c.GatewayAcceptedPost)
	positive("passwordHash", c.PasswordHash)
	positive("workerPerRecord", c.WorkerPerRecord)
	positive("usersPerCall", c.UsersPerCall)
	positive("poolerPerStatement", c.PoolerPerStatement)

	t := in.Target
	if !(t.RequestsPerSecond > 0) || math.IsInf(t.RequestsPerSecond, 0) {
		bad("target.requestsPerSecond = %v: must be positive", t.RequestsPerSecond)
	}
	m := t.Mix
	for name, s := range map[string]float64{"read": m.Read, "register": m.Register, "login": m.Login} {
		if !(s >= 0 && s <= 1) {
			bad("target.mix.%s = %v: must be a share in 0..1", name, s)
		}
	}
	if sum := m.Read + m.Register + m.Login; math.Abs(sum-1) > 1e-9 {
		bad("target.mix: shares add up to %v, want 1", sum)
	}
	if !(t.CacheMissRatio >= 0 && t.CacheMissRatio <= 1) {
		bad("target.cacheMissRatio = %v: must be in 0..1", t.CacheMissRatio)
	}
	if !(t.P99BudgetMillis > 0) {
		bad("target.p99BudgetMillis = %v: must be positive", t.P99BudgetMillis)
	}
	for _, b := range t.Budgeted {
		if !slices.Contains(classes, b) {
			bad("target.budgeted: %q is not a class (%v)", b, classes)
		}
	}
	for name, v := range map[string]float64{"read": t.NetworkMillis.Read, "register": t.NetworkMillis.Register, "login": t.NetworkMillis.Login} {
		if !(v >= 0) {
			bad("target.networkMillis.%s = %v: must be zero or more", name, v)
		}
	}

	if in.Zones < 1 {
		bad("zones = %d: must be at least 1", in.Zones)
	}
	if in.ZonesLost < 0 || in.ZonesLost >= max(in.Zones, 1) {
		bad("zonesLost = %d: must be in 0..zones-1 (%d), some zone must be left", in.ZonesLost, in.Zones-1)
	}
	if in.HPACPUTargetPercent < 1 || in.HPACPUTargetPercent > 100 {
		bad("hpaCpuTargetPercent = %d: must be in 1..100", in.HPACPUTargetPercent)
	}
	if in.MinReplicasFloor < 1 {
		bad("minReplicasFloor = %d: must be at least 1", in.MinReplicasFloor)
	}
	if in.HeadroomPercent < 0 {
		bad("headroomPercent = %d: must be zero or more", in.HeadroomPercent)
	}
	if in.MinPartitions < 1 {
		bad("minPartitions = %d: must be at least 1", in.MinPartitions)
	}
	consumers := 0
	for _, w := range Workloads {
		wl, ok := in.Workloads[w]
		if !ok {
			bad("workloads.%s: missing", w)
			continue
		}
		if wl.CPURequestMillis < 1 {
			bad("workloads.%s.cpuRequestMillis = %d: must be positive", w, wl.CPURequestMillis)
		}
		if wl.KafkaConsumer {
			consumers++
		}
	}
	for w := range in.Workloads {
		if !slices.Contains(Workloads, w) {
			bad("workloads.%s: not a workload the model sizes (%v)", w, Workloads)
		}
	}
	if consumers != 1 {
		bad("workloads: %d Kafka consumers, want exactly one (the registrations topic's)", consumers)
	}

	d := in.Database
	if !(d.StatementMillis > 0) {
		bad("database.statementMillis = %v: must be positive", d.StatementMillis)
	}
	if d.PoolSizeFloor < 1 {
		bad("database.poolSizeFloor = %d: must be at least 1", d.PoolSizeFloor)
	}
	if d.MaxClientConn < 1 || d.MaxConnections < 1 || d.WorkerConnsPerPod < 1 || d.UsersConnsPerURL < 1 {
		bad("database: maxClientConn, maxConnections, workerConnsPerPod and usersConnsPerUrl must be positive")
	}
	if d.ReservedConnections < 0 {
		bad("database.reservedConnections = %d: must be zero or more", d.ReservedConnections)
	}
	return errors.Join(errs...)
}
