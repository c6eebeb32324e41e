package analyzer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/scaleplane/scaleplane/components/microservice"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/policies/rules"
	"github.com/scaleplane/scaleplane/stacks"
)

// Thresholds are the rules' thresholds for a stack: the environment's
// defaults, with the values the platform itself defines taken from where
// they are defined (the microservice component's GOMEMLIMIT ratio, the
// stack's image registry), so the policy and the rendered config cannot
// drift apart.
func Thresholds(env *stacks.Env) rules.Thresholds {
	t := rules.DefaultThresholds(env.Environment)
	t.GoMemLimitMaxRatio = microservice.GoMemLimitRatio
	t.ImageRegistry = env.ImageRegistry
	return t
}

// ThresholdsConfig is t by JSON name, as Stack.Thresholds: Configure sends
// each policy the values its config schema declares. The environment is
// left out: it is no policy's threshold, the pack reads it from the
// stack's config to pick the defaults.
func ThresholdsConfig(t rules.Thresholds) (map[string]any, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("thresholds: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("thresholds: %w", err)
	}
	delete(out, "environment")
	return out, nil
}

// StackConfig turns raw stack values (keys without the project prefix)
// into the engine's config map.
func StackConfig(values map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range values {
		out[stacks.Project+":"+k] = v
	}
	return out
}

// Check starts the pack binary, configures it for the rendered stack and
// returns what it reports. Each call runs its own pack process.
func Check(ctx context.Context, binary string, g *render.Graph, env *stacks.Env, values map[string]string) ([]Diagnostic, error) {
	th, err := ThresholdsConfig(Thresholds(env))
	if err != nil {
		return nil, err
	}
	p, err := Start(ctx, binary)
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.Close() }()
	if err := p.Configure(ctx, Stack{Name: g.Stack, Project: stacks.Project, Config: StackConfig(values), Thresholds: th}); err != nil {
		return nil, err
	}
	return p.Analyze(ctx, g.Resources)
}
