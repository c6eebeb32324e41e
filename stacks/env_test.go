package stacks_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/stacks"
)

func TestEveryStackFileParses(t *testing.T) {
	names, err := stacks.StackNames("..")
	require.NoError(t, err, "list stacks")
	assert.Equal(t, []string{"dev", "local", "prod", "staging"}, names, "the four shipped environments")
	for _, name := range names {
		values, err := stacks.ReadStackConfig("..", name)
		require.NoError(t, err, "read stack %s", name)
		env, err := stacks.Parse(name, values)
		require.NoError(t, err, "parse stack %s", name)
		assert.Equal(t, name, env.Environment, "stack %s declares its environment", name)
	}
}

func TestDefaultsAloneMakeAValidEnv(t *testing.T) {
	env, err := stacks.Parse("scratch", nil)
	require.NoError(t, err, "the knob defaults must be a valid config")
	assert.Equal(t, 70, env.Autoscaling.CPUTargetPercent, "the articles' CPU target")
	assert.Equal(t, 80, env.Autoscaling.MemoryTargetPercent, "the articles' memory target")
	assert.Equal(t, int64(1<<20), env.Edge.BodyLimitBytes, "1 MiB body limit by default")
	assert.Len(t, env.Workloads, len(stacks.Workloads), "every workload has settings")
}

// TestBadConfigGetsOneClearError: each bad value is refused before any
// resource is declared, with the key, the value and what is allowed.
func TestBadConfigGetsOneClearError(t *testing.T) {
	for name, tc := range map[string]struct {
		values map[string]string
		want   []string
	}{
		"min above max": {map[string]string{"gatewayMinReplicas": "5", "gatewayMaxReplicas": "3"},
			[]string{"scaleplane:gatewayMaxReplicas", `"3"`, "at least gatewayMinReplicas (5)"}},
		"unparsable quantity": {map[string]string{"workerMemoryLimit": "lots"},
			[]string{"scaleplane:workerMemoryLimit", `"lots"`, "Kubernetes quantity"}},
		"unknown edge kind": {map[string]string{"edgeKind": "envoy"},
			[]string{"scaleplane:edgeKind", `"envoy"`, "one of nginx, haproxy"}},
		"memory limit below request": {map[string]string{"usersMemoryRequest": "512Mi", "usersMemoryLimit": "256Mi"},
			[]string{"scaleplane:usersMemoryLimit", `"256Mi"`, "at least usersMemoryRequest (512Mi)"}},
		"cpu limit below request": {map[string]string{"gatewayCpuRequest": "2", "gatewayCpuLimit": "1"},
			[]string{"scaleplane:gatewayCpuLimit", `"1"`, "0 (no limit) or at least"}},
		"not an integer": {map[string]string{"edgeMaxReplicas": "many"},
			[]string{"scaleplane:edgeMaxReplicas", `"many"`, "integer in 1..1000"}},
		"target out of range": {map[string]string{"hpaCpuTargetPercent": "150"},
			[]string{"scaleplane:hpaCpuTargetPercent", `"150"`, "1..100"}},
		"latest tag": {map[string]string{"imageTag": "latest"},
			[]string{"scaleplane:imageTag", `"latest"`, "other than latest"}},
		"unknown environment": {map[string]string{"environment": "qa"},
			[]string{"scaleplane:environment", `"qa"`, "local, dev, staging, prod"}},
		"typo in a key": {map[string]string{"gatewayMaxReplica": "3"},
			[]string{"scaleplane:gatewayMaxReplica", "unknown key"}},
		"aws for local": {map[string]string{"environment": "local", "flavour": "aws"},
			[]string{"scaleplane:flavour", `"aws"`, "local and dev run in-cluster"}},
		"edge image untagged": {map[string]string{"edgeImage": "nginx"},
			[]string{"scaleplane:edgeImage", `"nginx"`, "explicit tag"}},
		"trusted proxy not a network": {map[string]string{"trustedProxyCidrs": "10.244.0.0/16,edge"},
			[]string{"scaleplane:trustedProxyCidrs", `"10.244.0.0/16,edge"`, `"edge" is not a network`, "CIDRs such as 10.244.0.0/16"}},
		"trusted proxy with host bits": {map[string]string{"trustedProxyCidrs": "10.244.1.0/16"},
			[]string{"scaleplane:trustedProxyCidrs", `"10.244.1.0/16" has host bits set`, "10.244.0.0/16"}},
		"not a boolean": {map[string]string{"zoneSpreadRequired": "sometimes"},
			[]string{"scaleplane:zoneSpreadRequired", "true or false"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := stacks.Parse("test", tc.values)
			require.Error(t, err, "%s must be refused", name)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w, "the error says %q", w)
			}
			assert.Equal(t, 1, strings.Count(err.Error(), "\n")+1, "one error line for one bad value: %v", err)
		})
	}
}

func TestUnknownStackNamesTheKnownOnes(t *testing.T) {
	_, err := stacks.ReadStackConfig("..", "qa")
	require.ErrorIs(t, err, stacks.ErrUnknownStack, "qa has no stack file")
	assert.Contains(t, err.Error(), "dev, local, prod, staging", "the error lists the stacks there are")
}
