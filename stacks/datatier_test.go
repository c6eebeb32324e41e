package stacks_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

// secretRefs collects "secret/key" of every secretKeyRef in the stack's Deployments.
func secretRefs(g *render.Graph) map[string]bool {
	refs := map[string]bool{}
	for _, d := range g.ByType("kubernetes:apps/v1:Deployment") {
		spec, _ := d.Inputs["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		pod, _ := tmpl["spec"].(map[string]any)
		cs, _ := pod["containers"].([]any)
		for _, c := range cs {
			env, _ := c.(map[string]any)["env"].([]any)
			for _, e := range env {
				vf, ok := e.(map[string]any)["valueFrom"].(map[string]any)
				if !ok {
					continue
				}
				if ref, ok := vf["secretKeyRef"].(map[string]any); ok {
					refs[ref["name"].(string)+"/"+ref["key"].(string)] = true
				}
			}
		}
	}
	return refs
}

func secretNames(g *render.Graph) map[string]bool {
	names := map[string]bool{}
	for _, s := range g.ByType("kubernetes:core/v1:Secret") {
		if md, ok := s.Inputs["metadata"].(map[string]any); ok {
			names[md["name"].(string)] = true
		}
	}
	return names
}

// TestDataTierFlavourFollowsTheStack renders every shipped stack: local and
// dev declare the in-cluster data tier, staging and prod the AWS-managed
// one, and in every stack the Secrets the services reference exist.
func TestDataTierFlavourFollowsTheStack(t *testing.T) {
	for stack, want := range map[string]struct {
		aws        bool
		kafkaNodes float64
	}{
		"local": {false, 1}, "dev": {false, 3}, "staging": {true, 3}, "prod": {true, 3},
	} {
		t.Run(stack, func(t *testing.T) {
			g, _, err := render.Stack("..", stack)
			require.NoError(t, err, "render %s", stack)
			for _, typ := range []string{"scaleplane:redis:Redis", "scaleplane:postgres:Postgres", "scaleplane:kafka:Kafka"} {
				assert.Len(t, g.ByType(typ), 1, "%s declares one %s", stack, typ)
			}
			aws := []string{
				"aws:elasticache/replicationGroup:ReplicationGroup", "aws:rds/instance:Instance",
				"aws:rds/proxy:Proxy", "aws:msk/cluster:Cluster",
			}
			for _, typ := range aws {
				assert.Equal(t, want.aws, len(g.ByType(typ)) > 0, "%s: %s present only on aws", stack, typ)
			}
			var sets []string
			for _, s := range g.ByType("kubernetes:apps/v1:StatefulSet") {
				sets = append(sets, s.Name)
			}
			for _, s := range []string{"redis-statefulset", "postgres-primary-statefulset", "postgres-replica-statefulset", "kafka-statefulset"} {
				assert.Equal(t, !want.aws, strings.Contains(strings.Join(sets, " "), s), "%s: %s present only in-cluster", stack, s)
			}
			if want.aws {
				msk := g.ByType("aws:msk/cluster:Cluster")[0]
				assert.Equal(t, want.kafkaNodes, msk.Inputs["numberOfBrokerNodes"], "%s: MSK brokers", stack)
			} else {
				for _, s := range g.ByType("kubernetes:apps/v1:StatefulSet") {
					if s.Name == "kafka-statefulset" {
						assert.Equal(t, want.kafkaNodes, s.Inputs["spec"].(map[string]any)["replicas"], "%s: Kafka nodes", stack)
					}
				}
			}
			names := secretNames(g)
			for ref := range secretRefs(g) {
				secret, _, _ := strings.Cut(ref, "/")
				assert.True(t, names[secret], "%s: services reference %s, which the stack declares", stack, ref)
			}
			for _, ref := range []string{"redis-auth/password", "postgres-app/url-rw", "postgres-app/url-ro"} {
				assert.True(t, secretRefs(g)[ref], "%s: some service reads %s", stack, ref)
			}
		})
	}
}

// TestWorkerTopicHasAPartitionPerWorkerPod keeps the registrations topic at
// least as wide as the worker's HPA maximum in every stack.
func TestWorkerTopicHasAPartitionPerWorkerPod(t *testing.T) {
	for _, stack := range []string{"local", "dev", "staging", "prod"} {
		_, env, err := render.Stack("..", stack)
		require.NoError(t, err, "render %s", stack)
		ts := env.Topics()
		require.NotEmpty(t, ts, "%s declares topics", stack)
		assert.GreaterOrEqual(t, ts[0].Partitions, env.Workloads["worker"].Replicas.Max,
			"%s: %s has a partition for every worker pod", stack, ts[0].Name)
	}
}

// TestAWSCredentialsAreGeneratedOnceNotPerRun renders staging without and
// with the password knobs: unset, each managed store's credential is a
// random.RandomPassword resource (created once and kept in the state, so a
// second `pulumi up` does not rotate it under running services) wired into
// the ElastiCache auth token and the RDS master password; set, the stack
// uses the secret as given and declares no generator.
func TestAWSCredentialsAreGeneratedOnceNotPerRun(t *testing.T) {
	values, err := stacks.ReadStackConfig("..", "staging")
	require.NoError(t, err, "read the staging stack file")

	g, _, err := render.Values("staging", values)
	require.NoError(t, err, "render staging without password knobs")
	generated := map[string]render.Resource{}
	for _, r := range g.ByType("random:index/randomPassword:RandomPassword") {
		generated[r.Name] = r
	}
	require.ElementsMatch(t, []string{"redis-password", "postgres-app-password"}, keys(generated),
		"one generator per managed credential (RDS has no separate superuser or replication role)")
	for name, r := range generated {
		assert.Equal(t, float64(32), r.Inputs["length"], "%s: length within ElastiCache's 16-128", name)
		assert.Equal(t, false, r.Inputs["special"], "%s: letters and digits only (ElastiCache refuses @ \" /)", name)
	}
	rg := g.ByType("aws:elasticache/replicationGroup:ReplicationGroup")
	require.Len(t, rg, 1, "staging has one replication group")
	assert.Equal(t, render.SecretPlaceholder, rg[0].Inputs["authToken"], "the auth token is set, and only as a secret")
	db := g.ByType("aws:rds/instance:Instance")
	require.NotEmpty(t, db, "staging has RDS instances")
	assert.Equal(t, render.SecretPlaceholder, db[0].Inputs["password"], "the RDS master password is set, and only as a secret")

	values["redisPassword"] = "Given-by-the-operator-0123456789"
	values["postgresPassword"] = "Also-given-by-the-operator-98765"
	g, _, err = render.Values("staging", values)
	require.NoError(t, err, "render staging with both password knobs set")
	assert.Empty(t, g.ByType("random:index/randomPassword:RandomPassword"), "set passwords are used as given, nothing generated")
}

// TestBadPasswordIsRefusedWithoutShowingIt: a password ElastiCache would
// refuse fails before anything is declared, and the error names the key but
// never the value.
func TestBadPasswordIsRefusedWithoutShowingIt(t *testing.T) {
	for value, why := range map[string]string{
		"short-secret":                    "16 to 128",
		"has-an-@-sign-in-it-0123456789":  "'@'",
		"has a space in it 0123456789abc": "space",
	} {
		_, err := stacks.Parse("staging", map[string]string{"environment": "staging", "flavour": "aws", "redisPassword": value})
		require.Error(t, err, "redisPassword %q is refused", why)
		assert.Contains(t, err.Error(), "redisPassword", "the error names the key")
		assert.Contains(t, err.Error(), why, "the error says what is allowed")
		assert.NotContains(t, err.Error(), value, "the error does not print the secret")
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestServicesSpeakTLSToManagedStores: on aws the gateway and the worker
// are told to speak TLS to ElastiCache (transit encryption) and MSK (a TLS
// listener only); in-cluster they are not.
func TestServicesSpeakTLSToManagedStores(t *testing.T) {
	for _, stack := range shipped {
		g, env := renderStack(t, stack)
		want := strconv.FormatBool(env.Flavour == stacks.FlavourAWS)
		deps := byName(g.ByType("kubernetes:apps/v1:Deployment"))
		for _, svc := range []string{"gateway", "worker"} {
			d, ok := deps[svc]
			require.True(t, ok, "%s declares the %s Deployment", stack, svc)
			vars := envVars(get(d.Inputs, "spec", "template", "spec", "containers", 0))
			assert.Equal(t, want, vars["REDIS_TLS"], "%s %s: REDIS_TLS", stack, svc)
			assert.Equal(t, want, vars["KAFKA_TLS"], "%s %s: KAFKA_TLS", stack, svc)
		}
	}
}

// TestOneKafkaNodeOnlyInLocal: replication 1 loses an acknowledged
// registration with a disk, so a single node is refused outside local,
// naming the knob.
func TestOneKafkaNodeOnlyInLocal(t *testing.T) {
	for env, ok := range map[string]bool{"local": true, "dev": false} {
		_, err := stacks.Parse(env, map[string]string{"environment": env, "kafkaNodes": "1"})
		if ok {
			assert.NoError(t, err, "%s may run one Kafka node", env)
			continue
		}
		require.Error(t, err, "%s refuses one Kafka node", env)
		assert.Contains(t, err.Error(), "kafkaNodes", "the error names the knob")
	}
}

// podImages maps each workload of kind typ (by resource name) to its first
// container's image.
func podImages(g *render.Graph, typ string) map[string]string {
	out := map[string]string{}
	for _, r := range g.ByType(typ) {
		spec, _ := r.Inputs["spec"].(map[string]any)
		tmpl, _ := spec["template"].(map[string]any)
		pod, _ := tmpl["spec"].(map[string]any)
		cs, _ := pod["containers"].([]any)
		if len(cs) > 0 {
			out[r.Name], _ = cs[0].(map[string]any)["image"].(string)
		}
	}
	return out
}

// TestPostgresImagesFollowTheKnobs: local runs the Debian-based database
// and pooler images `scaleplane images build` makes, and so does dev,
// under its team registry's names; a reference without a tag, or latest,
// is refused naming the key.
func TestPostgresImagesFollowTheKnobs(t *testing.T) {
	for stack, want := range map[string][2]string{
		"local": {"scaleplane.local/postgresql:15.20", "scaleplane.local/pgbouncer:1.18.0"},
		"dev":   {"registry.dev.scaleplane.example/scaleplane/postgresql:15.20", "registry.dev.scaleplane.example/scaleplane/pgbouncer:1.18.0"},
	} {
		g, _, err := render.Stack("..", stack)
		require.NoError(t, err, "render %s", stack)
		sets := podImages(g, "kubernetes:apps/v1:StatefulSet")
		for _, name := range []string{"postgres-primary-statefulset", "postgres-replica-statefulset"} {
			assert.Equal(t, want[0], sets[name], "%s: %s runs postgresImage", stack, name)
		}
		deps := podImages(g, "kubernetes:apps/v1:Deployment")
		for _, name := range []string{"postgres-pgbouncer-rw-deployment", "postgres-pgbouncer-ro-deployment"} {
			assert.Equal(t, want[1], deps[name], "%s: %s runs pgbouncerImage", stack, name)
		}
	}
	for _, key := range []string{"postgresImage", "pgbouncerImage"} {
		for _, bad := range []string{"scaleplane.local/postgresql", "scaleplane.local/postgresql:latest"} {
			_, err := stacks.Parse("local", map[string]string{"environment": "local", key: bad})
			require.Error(t, err, "%s=%s is refused", key, bad)
			assert.Contains(t, err.Error(), key, "the error names the knob")
		}
	}
}
