package redis

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

func testArgs() Args {
	return Args{
		Flavour:   FlavourInCluster,
		Namespace: "ns",
		Resources: kube.Resources{
			CPURequest: resource.MustParse("100m"), MemoryRequest: resource.MustParse("256Mi"), MemoryLimit: resource.MustParse("256Mi"),
		},
		Storage: resource.MustParse("1Gi"),
	}
}

func TestRenderConfAppliesTheClusterAndMemoryRules(t *testing.T) {
	conf := RenderConf(testArgs().Conf())
	for _, want := range []string{
		"cluster-enabled yes", "cluster-node-timeout 5000", "appendonly yes", "appendfsync everysec",
		"maxmemory-policy volatile-lru", "cluster-config-file nodes.conf", "dir /data", "port 6379",
	} {
		assert.Contains(t, conf, want+"\n", "redis.conf must contain %q", want)
	}
	// 75 % of 256Mi.
	assert.Contains(t, conf, "maxmemory 201326592\n", "maxmemory is 75 % of the memory limit")
	assert.NotContains(t, conf, "requirepass", "the password never lands in the rendered file")
	assert.NotContains(t, conf, "masterauth", "the password never lands in the rendered file")
}

func TestMaxMemoryNeverExceedsEightyPercentOfTheLimit(t *testing.T) {
	a := testArgs()
	a.Password = testPassword
	a.MaxMemoryPercent = 81
	err := a.Validate("redis")
	if assert.Error(t, err, "81 %% must be refused") {
		assert.Contains(t, err.Error(), "maxMemoryPercent 81", "the error names the field and value")
	}
	a.MaxMemoryPercent = MaxMaxMemoryPercent
	assert.NoError(t, a.Validate("redis"), "80 %% is allowed")
	limit := a.Resources.MemoryLimit.Value()
	assert.LessOrEqual(t, a.Conf().MaxMemoryBytes*100, limit*MaxMaxMemoryPercent, "maxmemory at most 80 %% of the limit")
}

func TestValidateNamesTheProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"two shards":      {func(a *Args) { a.Shards = 2 }, "shards 2"},
		"no password":     {func(a *Args) { a.Password = nil }, "password: required"},
		"bad policy":      {func(a *Args) { a.EvictionPolicy = "lru" }, `evictionPolicy "lru"`},
		"latest image":    {func(a *Args) { a.Image = "redis:latest" }, `image "redis:latest"`},
		"no memory limit": {func(a *Args) { a.Resources.MemoryLimit = resource.Quantity{} }, "memoryLimit"},
		"no storage":      {func(a *Args) { a.Storage = resource.Quantity{} }, "storage"},
		"bad flavour":     {func(a *Args) { a.Flavour = "gcp" }, `flavour "gcp"`},
		"aws no network":  {func(a *Args) { a.Flavour = FlavourAWS }, "aws.subnetIds: required"},
		"aws no replica":  {func(a *Args) { a.Flavour = FlavourAWS; a.ReplicasPerShard = -1 }, "replicasPerShard 0: aws"},
	} {
		t.Run(name, func(t *testing.T) {
			a := testArgs()
			a.Password = testPassword
			tc.mutate(&a)
			err := a.Validate("redis")
			if assert.Error(t, err, "args must be refused") {
				assert.Contains(t, err.Error(), tc.want, "the error names the field")
			}
		})
	}
}

func TestFormScriptFormsOnlyAnUnformedCluster(t *testing.T) {
	s := RenderFormScript(1)
	assert.Contains(t, s, `redis-cli --cluster create $addrs --cluster-replicas "$replicas" --cluster-yes`, "the script forms with redis-cli --cluster create")
	assert.Contains(t, s, "replicas=1\n", "the replica count is rendered")
	assert.Less(t, strings.Index(s, "cluster_known_nodes"), strings.Index(s, "--cluster create"), "the formed check comes before create")
	assert.NotContains(t, s, "-a ", "the password comes from REDISCLI_AUTH, never an argument")
}
