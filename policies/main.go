// Command policies is scaleplane's Pulumi policy pack: every rule of
// policies/rules wrapped as a policyx policy and served over the Analyzer
// gRPC protocol. The Pulumi CLI starts it (`--policy-pack policies`, or the
// compiled binary), and so does `scaleplane check` offline; both see the
// same rules, ids, messages and enforcement levels.
//
// Where policyx falls short this file works around it; docs/policies.md
// (section "The pack and policyx") says how.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/blang/semver"
	"github.com/pulumi/pulumi/sdk/v3/go/property"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/policyx"

	"github.com/scaleplane/scaleplane/policies/rules"
)

// PackName is the pack's name as the Pulumi CLI reports it.
const PackName = "scaleplane"

// PackVersion is the pack's version.
const PackVersion = "0.1.0"

// ThresholdsPolicy is the name of the pseudo-policy that carries the
// pack-wide thresholds: its config is the one place to set them.
const ThresholdsPolicy = "thresholds"

// EnvironmentKey is the stack config key whose value picks the default
// thresholds (prod is stricter); the CLI passes the stack's config to the
// pack when it configures it for a stack.
const EnvironmentKey = "scaleplane:environment"

// RemediationPrefix starts the remediation line of every violation message.
const RemediationPrefix = "Remediation: "

func main() {
	if err := policyx.Main(newPack); err != nil {
		fmt.Fprintf(os.Stderr, "scaleplane policy pack: %v\n", err)
		os.Exit(1)
	}
}

// thresholds holds the pack-wide values: the environment's defaults,
// overridden by the "thresholds" policy's config once the engine sends it.
type thresholds struct {
	mu  sync.Mutex
	cur rules.Thresholds
}

func (t *thresholds) get() rules.Thresholds {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// newPack is called by policyx when the engine configures the pack for a
// stack (ConfigureStack); ctx carries that stack's config.
func newPack(ctx *pulumi.Context) (policyx.PolicyPack, error) {
	env, _ := ctx.GetConfig(EnvironmentKey)
	base := rules.DefaultThresholds(env)
	st := &thresholds{cur: base}
	policies := []policyx.Policy{thresholdsPolicy(st, base)}
	for _, r := range rules.All() {
		policies = append(policies, wrap(r, st))
	}
	pack, err := policyx.NewPolicyPack(PackName, semver.MustParse(PackVersion), policyx.EnforcementLevelMandatory, policies)
	if err != nil {
		return nil, fmt.Errorf("policy pack: %w", err)
	}
	return pack, nil
}

// thresholdsPolicy reports nothing: it exists because policyx hands
// policy config to resource policies only (StackValidationArgs has no
// Config). It runs first on every resource, reads its own config and makes
// it the pack-wide thresholds every rule, stack rules included, then uses.
func thresholdsPolicy(st *thresholds, base rules.Thresholds) policyx.Policy {
	schema := &policyx.ConfigSchema{Properties: map[string]map[string]any{}}
	for _, name := range rules.ThresholdNames() {
		schema.Properties[name] = map[string]any{"type": rules.JSONType(name), "description": rules.ThresholdDocs[name]}
	}
	return policyx.NewResourceValidationPolicy(ThresholdsPolicy, policyx.ResourceValidationPolicyArgs{
		Description:      "Carries the thresholds every scaleplane rule compares against; it never reports a violation.",
		EnforcementLevel: policyx.EnforcementLevelAdvisory,
		ConfigSchema:     schema,
		ValidateResource: func(_ context.Context, args policyx.ResourceValidationArgs) error {
			t, err := base.Override(args.Config)
			if err != nil {
				return fmt.Errorf("policy config %q: %w", ThresholdsPolicy, err)
			}
			st.mu.Lock()
			st.cur = t
			st.mu.Unlock()
			return nil
		},
	})
}

// wrap turns a rule into a policyx policy of the same name and level.
func wrap(r *rules.Rule, st *thresholds) policyx.Policy {
	level := policyx.EnforcementLevelAdvisory
	if r.Level == rules.Mandatory {
		level = policyx.EnforcementLevelMandatory
	}
	if r.Stack() {
		return policyx.NewStackValidationPolicy(r.ID, policyx.StackValidationPolicyArgs{
			Description:      r.Description,
			EnforcementLevel: level,
			ValidateStack: func(_ context.Context, args policyx.StackValidationArgs) error {
				rs := make([]rules.Resource, 0, len(args.Resources))
				for _, a := range args.Resources {
					rs = append(rs, toResource(a.URN, a.Type, a.Name, a.Parent, a.Properties))
				}
				for _, v := range r.CheckStack(rs, st.get()) {
					args.Manager.ReportViolation(Message(v.Message, r), v.URN)
				}
				return nil
			},
		})
	}
	return policyx.NewResourceValidationPolicy(r.ID, policyx.ResourceValidationPolicyArgs{
		Description:      r.Description,
		EnforcementLevel: level,
		ValidateResource: func(_ context.Context, args policyx.ResourceValidationArgs) error {
			a := args.Resource
			for _, m := range r.CheckResource(toResource(a.URN, a.Type, a.Name, a.Parent, a.Properties), st.get()) {
				args.Manager.ReportViolation(Message(m, r), "")
			}
			return nil
		},
	})
}

// Message is what a violation says: what is wrong, then how to fix it.
// policyx puts the rule's description in front of it.
func Message(problem string, r *rules.Rule) string {
	return problem + "\n" + RemediationPrefix + r.Remediation
}

// toResource converts the engine's view of a resource into the rules'.
func toResource(urn, typ, name, parent string, props property.Map) rules.Resource {
	return rules.Resource{URN: urn, Type: typ, Name: name, Parent: parent, Props: plainMap(props)}
}

// plainMap turns property values into plain Go values: secrets are judged
// by their value (a rule may need a secret config file's content),
// unknowns become rules.Unknown so rules skip what they cannot see yet.
func plainMap(m property.Map) map[string]any {
	out := make(map[string]any, m.Len())
	for k, v := range m.All {
		if p := plain(v); p != nil {
			out[k] = p
		}
	}
	return out
}

func plain(v property.Value) any {
	switch {
	case v.IsComputed():
		return rules.Unknown
	case v.IsNull():
		return nil
	case v.IsBool():
		return v.AsBool()
	case v.IsNumber():
		return v.AsNumber()
	case v.IsString():
		return v.AsString()
	case v.IsArray():
		out := make([]any, 0, v.AsArray().Len())
		for _, e := range v.AsArray().All {
			out = append(out, plain(e))
		}
		return out
	case v.IsMap():
		return plainMap(v.AsMap())
	case v.IsResourceReference():
		return string(v.AsResourceReference().URN)
	default:
		// Assets and archives: rules never read them.
		return strings.TrimSpace(fmt.Sprint(v))
	}
}
