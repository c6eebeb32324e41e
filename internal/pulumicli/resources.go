package pulumicli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"github.com/scaleplane/scaleplane/internal/rollout"
)

// resources is what the stack holds after an update, read from the
// engine's resource-outputs events as they stream by. Reading it there
// rather than exporting the state afterwards saves a CLI run that decrypts
// and prints the whole state (1.4–1.9 s for the local stack).
type resources struct {
	byURN map[string]resourceSeen
	// missed says why not every step's event may have arrived (nil when
	// they all did); the state is then read instead (exported).
	missed error
}

// resourceSeen is one resource's type and, for Kubernetes objects, where
// it lives.
type resourceSeen struct {
	Type, Namespace, Name string
}

// record applies one finished step. Every resource the program declares
// has one (a "same" step when nothing changed); a deletion removes it,
// while the old half of a replacement ("delete-replaced") leaves its URN to
// the new object.
func (r *resources) record(m apitype.StepEventMetadata) {
	switch m.Op {
	case apitype.OpDelete, apitype.OpReadDiscard:
		delete(r.byURN, m.URN)
		return
	case apitype.OpDeleteReplaced, apitype.OpDiscardReplaced, apitype.OpRemovePendingReplace:
		return
	}
	if m.New == nil {
		return
	}
	seen := resourceSeen{Type: m.New.Type}
	if meta, ok := m.New.Outputs["metadata"].(map[string]any); ok {
		seen.Name, _ = meta["name"].(string)
		seen.Namespace, _ = meta["namespace"].(string)
	}
	r.byURN[m.URN] = seen
}

// kinds counts the resources per type.
func (r *resources) kinds() map[string]int {
	out := map[string]int{}
	for _, s := range r.byURN {
		out[s.Type]++
	}
	return out
}

// workloads lists the Deployments and StatefulSets, sorted, for the
// rollout wait.
func (r *resources) workloads() []rollout.Workload {
	var out []rollout.Workload
	for _, s := range r.byURN {
		kind := ""
		switch s.Type {
		case "kubernetes:apps/v1:Deployment":
			kind = "Deployment"
		case "kubernetes:apps/v1:StatefulSet":
			kind = "StatefulSet"
		default:
			continue
		}
		out = append(out, rollout.Workload{Kind: kind, Namespace: s.Namespace, Name: s.Name})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return out
}

// exported reads the stack's resources from its state, for when the
// engine's events are incomplete.
func exported(ctx context.Context, st auto.Stack) (*resources, error) {
	dep, err := st.Export(ctx)
	if err != nil {
		return nil, err
	}
	return fromState(dep.Deployment)
}

// fromState reads the resources of an exported deployment.
func fromState(deployment json.RawMessage) (*resources, error) {
	var state struct {
		Resources []struct {
			URN     string         `json:"urn"`
			Type    string         `json:"type"`
			Outputs map[string]any `json:"outputs"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(deployment, &state); err != nil {
		return nil, fmt.Errorf("reading the exported state: %w", err)
	}
	r := &resources{byURN: map[string]resourceSeen{}}
	for _, s := range state.Resources {
		r.record(apitype.StepEventMetadata{Op: apitype.OpSame, URN: s.URN,
			New: &apitype.StepEventStateMetadata{Type: s.Type, Outputs: s.Outputs}})
	}
	return r, nil
}
