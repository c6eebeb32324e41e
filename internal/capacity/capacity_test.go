package capacity_test

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/apps/account"
	"github.com/scaleplane/scaleplane/apps/kit"
	"github.com/scaleplane/scaleplane/apps/users/users"
	"github.com/scaleplane/scaleplane/apps/worker/worker"
	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/components/postgres"
	"github.com/scaleplane/scaleplane/internal/capacity"
	"github.com/scaleplane/scaleplane/policies/rules"
	"github.com/scaleplane/scaleplane/stacks"
	"github.com/scaleplane/scaleplane/topology"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/capacity.md")

// root is the module root, from this package's directory.
const root = "../.."

// committed reads the committed inputs and plans them.
func committed(t *testing.T) (capacity.Inputs, capacity.Plan) {
	t.Helper()
	in, err := capacity.ReadInputs(filepath.Join(root, capacity.InputsFile))
	require.NoError(t, err, "read %s", capacity.InputsFile)
	p, err := capacity.PlanFor(in)
	require.NoError(t, err, "plan the committed inputs")
	return in, p
}

// prod parses stacks/Pulumi.prod.yaml the way the program does.
func prod(t *testing.T, override map[string]string) *stacks.Env {
	t.Helper()
	values, err := stacks.ReadStackConfig(root, "prod")
	require.NoError(t, err, "read stacks/Pulumi.prod.yaml")
	for k, v := range override {
		values[k] = v
	}
	env, err := stacks.Parse("prod", values)
	require.NoError(t, err, "parse the prod stack")
	return env
}

// TestProdMatchesModel is the drift test: every capacity figure the prod
// stack declares must be the model's, and the inputs the model assumes of
// the stack (zones, HPA target, CPU requests, instance class) must be what
// the stack declares.
func TestProdMatchesModel(t *testing.T) {
	in, p := committed(t)
	env := prod(t, nil)
	drift := func(key string, modelled, declared any) {
		t.Helper()
		assert.Equal(t, modelled, declared,
			"stacks/Pulumi.prod.yaml drifts from the capacity model: scaleplane:%s declares %v, the model says %v. "+
				"Set it to the model's value, or change internal/capacity/inputs.json if an input changed (docs/capacity.md)",
			key, declared, modelled)
	}
	for _, name := range stacks.Workloads {
		wp, ok := p.Workload(name)
		require.True(t, ok, "the model sizes %s", name)
		wl := env.Workloads[name]
		drift(name+"MinReplicas", wp.Min, wl.Replicas.Min)
		drift(name+"MaxReplicas", wp.Max, wl.Replicas.Max)
		drift(name+"CpuRequest", int64(in.Workloads[name].CPURequestMillis), wl.Resources.CPURequest.MilliValue())
	}
	pooler, ok := p.Workload(capacity.Pooler)
	require.True(t, ok, "the model sizes the pooler")
	drift("pgbouncerMinReplicas", pooler.Min, env.Data.PgBouncerReplicas.Min)
	drift("pgbouncerMaxReplicas", pooler.Max, env.Data.PgBouncerReplicas.Max)
	drift("pgbouncerPoolSize", p.Database.PoolSize, env.Data.PgBouncerPoolSize)
	drift("hpaCpuTargetPercent", in.HPACPUTargetPercent, env.Autoscaling.CPUTargetPercent)
	drift("awsZones (how many)", in.Zones, len(env.Zones()))
	drift("zoneSpreadRequired (the model counts on an even spread)", true, env.ZoneSpreadRequired)
	drift("awsPostgresInstanceClass", in.Database.InstanceClass, env.Data.AWSPostgresClass)

	var partitions int
	for _, topic := range env.Topics() {
		if topic.Name == topology.RegistrationsTopic {
			partitions = topic.Partitions
		}
	}
	drift("workerMaxReplicas (sets the registrations partitions in stacks.Env.Topics)", p.Partitions, partitions)
}

// TestInputsMatchTheCode ties the inputs that restate code (defaults of
// the services and of the postgres component, the policy pack's prod
// thresholds, the topic's floor) to that code, so changing it without the
// model fails here.
func TestInputsMatchTheCode(t *testing.T) {
	in, p := committed(t)

	wc, err := worker.ConfigFromEnv(kit.MapEnv(map[string]string{"DATABASE_URL_RW": "postgres://x@y/z"}))
	require.NoError(t, err, "worker config with defaults")
	uc, err := users.ConfigFromEnv(kit.MapEnv(map[string]string{"DATABASE_URL_RW": "postgres://x@y/z"}))
	require.NoError(t, err, "users config with defaults")
	h := in.Costs.HashParams
	assert.Equal(t, account.HashParams{Time: h.Time, Memory: h.MemoryKiB, Threads: h.Threads}, wc.Hash,
		"the hash cost was measured with other argon2id parameters than the worker's: measure again (make bench)")
	assert.Equal(t, account.DefaultHashParams, wc.Hash, "the worker hashes with account.DefaultHashParams")
	assert.Equal(t, wc.MaxConns, in.Database.WorkerConnsPerPod, "database.workerConnsPerPod is the worker's DATABASE_MAX_CONNS default")
	assert.Equal(t, uc.MaxConns, in.Database.UsersConnsPerURL, "database.usersConnsPerUrl is the users service's DATABASE_MAX_CONNS default")

	assert.Equal(t, postgres.DefaultPoolSize, in.Database.PoolSizeFloor, "database.poolSizeFloor is postgres.DefaultPoolSize")
	assert.Equal(t, postgres.DefaultMaxClientConn, in.Database.MaxClientConn, "database.maxClientConn is postgres.DefaultMaxClientConn")
	assert.Equal(t, postgres.AdminConnections+postgres.SuperuserReservedConnections, in.Database.ReservedConnections,
		"database.reservedConnections is the postgres component's admin and superuser reserve")
	pooler, _ := p.Workload(capacity.Pooler)
	args := postgres.Args{Pooler: postgres.PoolerArgs{Replicas: microservice.Replicas{Min: pooler.Min, Max: pooler.Max}, DefaultPoolSize: p.Database.PoolSize}}
	assert.Equal(t, args.MaxConnections(), p.Database.InClusterMaxConnections, "the model's in-cluster max_connections is the component's")

	th := rules.DefaultThresholds(rules.Prod)
	assert.GreaterOrEqual(t, in.MinReplicasFloor, th.MinReplicas, "the replica floor meets the prod policy's minReplicas")
	assert.LessOrEqual(t, in.HPACPUTargetPercent, th.MaxCPUTargetPercent, "the HPA target meets the prod policy's cap")

	// With a small worker the topic keeps its floor: that floor is minPartitions.
	small := prod(t, map[string]string{"workerMinReplicas": "1", "workerMaxReplicas": "1"})
	for _, topic := range small.Topics() {
		if topic.Name == topology.RegistrationsTopic {
			assert.Equal(t, in.MinPartitions, topic.Partitions, "minPartitions is the floor stacks.Env.Topics keeps")
		}
	}
}

// TestCommittedPlanMeetsItsGoals checks the plan of the committed inputs:
// no missed goal, budgeted classes under the budget, each workload within
// the HPA target with a zone lost, HPA bounds the policies accept.
func TestCommittedPlanMeetsItsGoals(t *testing.T) {
	in, p := committed(t)
	assert.Empty(t, p.Problems, "the committed inputs' plan misses no goal")
	for _, path := range p.Paths {
		if path.Budgeted {
			assert.Less(t, path.P99Millis, in.Target.P99BudgetMillis, "%s p99 estimate within the budget", path.Class)
		}
	}
	target := float64(in.HPACPUTargetPercent) / 100
	for _, w := range p.Workloads {
		assert.LessOrEqual(t, w.UtilisationZoneLost, target, "%s within the HPA target with a zone lost", w.Name)
		assert.GreaterOrEqual(t, w.ZoneSized*(in.Zones-in.ZonesLost)/in.Zones, w.Needed, "%s: a zone loss leaves the pods needed", w.Name)
		assert.Zero(t, w.ZoneSized%in.Zones, "%s: zone-loss size spreads evenly over the zones", w.Name)
		assert.GreaterOrEqual(t, w.Min, in.MinReplicasFloor, "%s: minReplicas at or above the floor", w.Name)
		assert.Greater(t, w.Max, w.Min, "%s: maxReplicas above minReplicas (policy hpa-replicas)", w.Name)
		if in.Workloads[w.Name].Synchronous {
			assert.Equal(t, w.ZoneSized, w.Min, "%s: a synchronous workload runs its zone-loss size at least", w.Name)
		}
	}
	worker, _ := p.Workload(capacity.Worker)
	assert.GreaterOrEqual(t, p.Partitions, worker.Max, "every worker pod can own a partition")
	assert.Zero(t, p.Partitions%worker.ZoneSized, "partitions split evenly over the worker's zone-loss size")
	assert.Zero(t, p.Partitions%(worker.ZoneSized*(in.Zones-in.ZonesLost)/in.Zones), "partitions split evenly over the pods a zone loss leaves")
}

// base is a small, valid set of inputs for the table tests.
func base() capacity.Inputs {
	fig := func(us float64) capacity.Figure {
		return capacity.Figure{Micros: us, Kind: capacity.Assumed, Note: "test"}
	}
	return capacity.Inputs{
		Costs: capacity.Costs{
			EdgePerRequest: fig(25), GatewayCachedGet: fig(60), GatewayAcceptedPost: fig(100),
			PasswordHash: fig(20000), WorkerPerRecord: fig(300), UsersPerCall: fig(200), PoolerPerStatement: fig(50),
		},
		Target: capacity.Target{
			RequestsPerSecond: 10000, Mix: capacity.Mix{Read: 0.96, Register: 0.03, Login: 0.01},
			CacheMissRatio: 0.05, P99BudgetMillis: 50, Budgeted: []string{capacity.Read, capacity.Register},
			NetworkMillis: capacity.PathMillis{Read: 10, Register: 20, Login: 10},
		},
		Zones: 3, ZonesLost: 1, HPACPUTargetPercent: 70, MinReplicasFloor: 3, HeadroomPercent: 50, MinPartitions: 6,
		Workloads: map[string]capacity.Workload{
			capacity.Edge:    {CPURequestMillis: 500, Synchronous: true},
			capacity.Gateway: {CPURequestMillis: 1000, Synchronous: true},
			capacity.Users:   {CPURequestMillis: 500, Synchronous: true},
			capacity.Worker:  {CPURequestMillis: 1000, KafkaConsumer: true},
			capacity.Pooler:  {CPURequestMillis: 50, Synchronous: true},
		},
		Database: capacity.Database{StatementMillis: 2, PoolSizeFloor: 20, MaxClientConn: 1000, InstanceClass: "db.r7g.large",
			MaxConnections: 1600, ReservedConnections: 13, WorkerConnsPerPod: 4, UsersConnsPerURL: 10},
	}
}

// TestPlanZoneLoss sizes the worker alone (300 registrations/s at 20 ms of
// CPU each: 6.09 cores, 9 pods of 1 core at 70 %) for several zone
// layouts: a zone loss must leave the pods needed, spread evenly.
func TestPlanZoneLoss(t *testing.T) {
	cases := map[string]struct {
		zones, lost                int
		zoneSized, min, max, parts int
	}{
		// 9 pods needed; 9*3/2 = 13.5 -> 14 -> 15 (a multiple of 3); max: 15
		// plus 50 % (8 -> 9) = 24, raised to a multiple of lcm(15, 10) = 30.
		"three zones, one lost": {zones: 3, lost: 1, zoneSized: 15, min: 3, max: 30, parts: 30},
		// No loss to survive: 9 is already a multiple of 3; 9+6 = 15 (a
		// multiple of 9 is 18).
		"three zones, none lost": {zones: 3, lost: 0, zoneSized: 9, min: 3, max: 18, parts: 18},
		// Two zones, one lost: each zone alone must carry 9: 18.
		"two zones, one lost": {zones: 2, lost: 1, zoneSized: 18, min: 3, max: 36, parts: 36},
		// One zone: nothing to lose; the floor of 3 is below the 9 needed.
		"one zone": {zones: 1, lost: 0, zoneSized: 9, min: 3, max: 18, parts: 18},
		// Five zones, two lost: 9*5/3 = 15.
		"five zones, two lost": {zones: 5, lost: 2, zoneSized: 15, min: 3, max: 45, parts: 45},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := base()
			in.Zones, in.ZonesLost = c.zones, c.lost
			p, err := capacity.PlanFor(in)
			require.NoError(t, err, "plan")
			w, ok := p.Workload(capacity.Worker)
			require.True(t, ok, "the worker is planned")
			assert.Equal(t, 9, w.Needed, "pods needed at 70 %% for %.2f cores", w.CPUCores)
			assert.Equal(t, c.zoneSized, w.ZoneSized, "zone-loss size")
			assert.Equal(t, c.min, w.Min, "the asynchronous worker keeps the floor as minReplicas")
			assert.Equal(t, c.max, w.Max, "maxReplicas")
			assert.Equal(t, c.parts, p.Partitions, "partitions")
			left := w.ZoneSized * (c.zones - c.lost) / c.zones
			assert.GreaterOrEqual(t, left, w.Needed, "losing %d of %d zones leaves %d pods", c.lost, c.zones, left)
			assert.LessOrEqual(t, w.UtilisationZoneLost, 0.7+1e-9, "the pods left stay within the HPA target")
		})
	}
}

// TestPlanSynchronousFloor: a synchronous workload runs its zone-loss size
// as minReplicas, and a tiny one still gets the floor and a maximum above it.
func TestPlanSynchronousFloor(t *testing.T) {
	p, err := capacity.PlanFor(base())
	require.NoError(t, err, "plan")
	edge, _ := p.Workload(capacity.Edge)
	assert.Equal(t, 1, edge.Needed, "0.25 cores fit one edge pod")
	assert.Equal(t, 3, edge.Min, "the floor, one pod per zone")
	assert.Equal(t, 6, edge.Max, "one more pod per zone of headroom")
	users, _ := p.Workload(capacity.Users)
	assert.Equal(t, users.ZoneSized, users.Min, "users runs its zone-loss size")
	assert.Greater(t, users.Min, 3, "logins make users larger than the floor")
}

// TestPlanLatency: the budgeted classes' p99 estimates are under the
// budget at the committed sizes, the login's is not (its hash alone is
// half the budget at a 500m request), and a saturated tier makes the
// estimate infinite and a problem rather than a plausible number.
func TestPlanLatency(t *testing.T) {
	in := base()
	p, err := capacity.PlanFor(in)
	require.NoError(t, err, "plan")
	got := map[string]capacity.PathPlan{}
	for _, path := range p.Paths {
		got[path.Class] = path
	}
	assert.Less(t, got[capacity.Read].P99Millis, 50.0, "read p99 estimate")
	assert.Less(t, got[capacity.Register].P99Millis, 50.0, "register p99 estimate")
	assert.Greater(t, got[capacity.Login].CPUMillis, 40.0, "at the users pod's 500m request, the 20 ms hash takes 40 ms")
	assert.Greater(t, got[capacity.Login].P99Millis, 50.0, "the login estimate is over 50 ms, and not budgeted")
	assert.Empty(t, p.Problems, "no budgeted goal missed")

	in.Target.Budgeted = append(in.Target.Budgeted, capacity.Login)
	p, err = capacity.PlanFor(in)
	require.NoError(t, err, "plan with login budgeted")
	require.Len(t, p.Problems, 1, "budgeting logins makes one problem")
	assert.Contains(t, p.Problems[0], "login", "the problem names the class")

	// One zone, no floor, a 100 % target and an edge load that fills its
	// one pod exactly: the queue has no spare, the estimate explodes and
	// the budgeted classes are reported, not given a plausible number.
	in = base()
	in.Zones, in.ZonesLost, in.MinReplicasFloor, in.HPACPUTargetPercent = 1, 0, 1, 100
	in.Costs.EdgePerRequest.Micros = 50
	p, err = capacity.PlanFor(in)
	require.NoError(t, err, "plan with a saturated edge")
	edge, _ := p.Workload(capacity.Edge)
	assert.InDelta(t, 1, edge.UtilisationZoneLost, 1e-6, "the edge pod is full")
	assert.Greater(t, p.Paths[0].P99Millis, 1000.0, "a full queue has no useful p99")
	require.NotEmpty(t, p.Problems, "a saturated tier misses the budget")
	assert.Contains(t, p.Problems[0], "read", "the read class is reported first")

	in = base()
	in.Database.MaxConnections = 100
	p, err = capacity.PlanFor(in)
	require.NoError(t, err, "plan with a small database")
	require.NotEmpty(t, p.Problems, "120 pooler connections do not fit max_connections 100")
	assert.Contains(t, p.Problems[0], "max_connections 100", "the problem names the limit")
}

// TestPlanBadInputs: every input the model cannot use is an error naming
// it, never a panic or a plan built on a division by zero.
func TestPlanBadInputs(t *testing.T) {
	cases := map[string]struct {
		mutate func(*capacity.Inputs)
		want   string
	}{
		"zero zones":          {func(in *capacity.Inputs) { in.Zones, in.ZonesLost = 0, 0 }, "zones = 0"},
		"every zone lost":     {func(in *capacity.Inputs) { in.ZonesLost = 3 }, "zonesLost = 3"},
		"negative zones lost": {func(in *capacity.Inputs) { in.ZonesLost = -1 }, "zonesLost = -1"},
		"zero cost":           {func(in *capacity.Inputs) { in.Costs.GatewayCachedGet.Micros = 0 }, "gatewayCachedGet.micros = 0"},
		"negative cost":       {func(in *capacity.Inputs) { in.Costs.PasswordHash.Micros = -1 }, "passwordHash.micros = -1"},
		"NaN cost":            {func(in *capacity.Inputs) { in.Costs.EdgePerRequest.Micros = math.NaN() }, "edgePerRequest.micros = NaN"},
		"unknown kind":        {func(in *capacity.Inputs) { in.Costs.UsersPerCall.Kind = "guessed" }, "usersPerCall.kind"},
		"zero load":           {func(in *capacity.Inputs) { in.Target.RequestsPerSecond = 0 }, "requestsPerSecond = 0"},
		"mix over 1":          {func(in *capacity.Inputs) { in.Target.Mix.Read = 1 }, "add up to"},
		"zero HPA target":     {func(in *capacity.Inputs) { in.HPACPUTargetPercent = 0 }, "hpaCpuTargetPercent = 0"},
		"zero request":        {func(in *capacity.Inputs) { in.Workloads[capacity.Gateway] = capacity.Workload{} }, "gateway.cpuRequestMillis = 0"},
		"missing workload":    {func(in *capacity.Inputs) { delete(in.Workloads, capacity.Users) }, "workloads.users: missing"},
		"unknown workload":    {func(in *capacity.Inputs) { in.Workloads["cron"] = capacity.Workload{CPURequestMillis: 1} }, "workloads.cron"},
		"no consumer":         {func(in *capacity.Inputs) { in.Workloads[capacity.Worker] = capacity.Workload{CPURequestMillis: 1000} }, "0 Kafka consumers"},
		"unknown class":       {func(in *capacity.Inputs) { in.Target.Budgeted = []string{"upload"} }, `"upload" is not a class`},
		"miss ratio above 1":  {func(in *capacity.Inputs) { in.Target.CacheMissRatio = 2 }, "cacheMissRatio = 2"},
		"zero statement time": {func(in *capacity.Inputs) { in.Database.StatementMillis = 0 }, "statementMillis = 0"},
		"zero pool floor":     {func(in *capacity.Inputs) { in.Database.PoolSizeFloor = 0 }, "poolSizeFloor = 0"},
		"zero partitions":     {func(in *capacity.Inputs) { in.MinPartitions = 0 }, "minPartitions = 0"},
		"empty inputs":        {func(in *capacity.Inputs) { *in = capacity.Inputs{} }, "zones = 0"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := base()
			c.mutate(&in)
			var err error
			require.NotPanics(t, func() { _, err = capacity.PlanFor(in) }, "a bad input must not panic")
			require.Error(t, err, "a bad input is an error")
			assert.Contains(t, err.Error(), c.want, "the error names the input")
		})
	}
}

// TestPoissonBusyConnections pins the pool arithmetic on a hand-checked
// case: 580 statements/s of 2 ms hold 1.16 connections on average, at
// most 6 at the 99.9th percentile.
func TestPoissonBusyConnections(t *testing.T) {
	p, err := capacity.PlanFor(base())
	require.NoError(t, err, "plan")
	assert.InDelta(t, 580, p.Database.ReadStatements, 1e-9, "reads: 5 %% of 9,600 misses plus 100 logins")
	assert.Equal(t, 6, p.Database.BusyRead, "Poisson(1.16) 99.9th percentile")
	assert.Equal(t, 20, p.Database.PoolSize, "the floor covers the peak")
}

// TestInputsFileIsCanonical keeps inputs.json in the format WriteInputs
// writes, so a refresh by make bench changes the figures and nothing else.
func TestInputsFileIsCanonical(t *testing.T) {
	path := filepath.Join(root, capacity.InputsFile)
	raw, err := os.ReadFile(path)
	require.NoError(t, err, "read inputs.json")
	in, err := capacity.ReadInputs(path)
	require.NoError(t, err, "parse inputs.json")
	want, err := in.Marshal()
	require.NoError(t, err, "marshal inputs")
	assert.Equal(t, string(want), string(raw), "inputs.json is written by capacity.WriteInputs (rewrite it in that format)")

	bad := filepath.Join(t.TempDir(), "inputs.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"zones": 3, "zonesLots": 1}`), 0o644), "write a misspelt file")
	_, err = capacity.ReadInputs(bad)
	require.Error(t, err, "a misspelt key is refused")
	assert.Contains(t, err.Error(), "zonesLots", "the error names the key")
}

// TestDocsShowThePlan keeps the tables of docs/capacity.md equal to what
// the model computes; -update rewrites them.
func TestDocsShowThePlan(t *testing.T) {
	in, p := committed(t)
	path := filepath.Join(root, capacity.DocFile)
	raw, err := os.ReadFile(path)
	require.NoError(t, err, "read docs/capacity.md")
	want, err := capacity.ReplaceGenerated(string(raw), in, p)
	require.NoError(t, err, "docs/capacity.md has the generated part's markers")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644), "rewrite docs/capacity.md")
		return
	}
	assert.Equal(t, want, string(raw), "docs/capacity.md shows another plan than the model's: run go test ./internal/capacity -update")
}
