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

// EnvironmentKey is the stack config key whose value picks the default
// thresholds (prod is stricter); the CLI passes the stack's config to the
// pack when it configures it for a stack.
const EnvironmentKey = "scaleplane:environment"

// ImageRegistryKey is the stack config key naming the stack's registry,
// the image-registry rule's default threshold: the Pulumi CLI passes the
// stack's config, so the rule knows the registry without a policy config.
const ImageRegistryKey = "scaleplane:imageRegistry"

// RemediationPrefix starts the remediation line of every violation message.
const RemediationPrefix = "Remediation: "

func main() {
	if err := policyx.Main(newPack); err != nil {
		fmt.Fprintf(os.Stderr, "scaleplane policy pack: %v\n", err)
		os.Exit(1)
	}
}

// newPack is called by policyx when the engine configures the pack for a
// stack (ConfigureStack); ctx carries that stack's config, whose
// environment picks the defaults every policy starts from.
func newPack(ctx *pulumi.Context) (policyx.PolicyPack, error) {
	env, _ := ctx.GetConfig(EnvironmentKey)
	base := rules.DefaultThresholds(env)
	if registry, ok := ctx.GetConfig(ImageRegistryKey); ok {
		base.ImageRegistry = registry
	}
	var policies []policyx.Policy
	for _, r := range rules.All() {
		policies = append(policies, wrap(r, base)...)
	}
	pack, err := policyx.NewPolicyPack(PackName, semver.MustParse(PackVersion), policyx.EnforcementLevelMandatory, policies)
	if err != nil {
		return nil, fmt.Errorf("policy pack: %w", err)
	}
	return pack, nil
}

// ConfigSchema declares a rule's thresholds, and only those, as its
// policy's config, so `--policy-pack-config` sets a threshold per policy:
// {"hpa-replicas": {"minReplicas": 4}}. A rule without thresholds takes no
// config.
func ConfigSchema(r *rules.Rule) *policyx.ConfigSchema {
	if len(r.Thresholds) == 0 {
		return nil
	}
	schema := &policyx.ConfigSchema{Properties: map[string]map[string]any{}}
	for _, name := range r.Thresholds {
		schema.Properties[name] = map[string]any{"type": rules.JSONType(name), "description": rules.ThresholdDocs[name]}
	}
	return schema
}

// wrap turns a rule into policyx policies of the rule's name and level,
// each reading the thresholds from that name's own config on top of the
// stack's defaults. A resource rule is one policy. A stack rule is two of
// the same name: policyx hands config to resource policies only
// (StackValidationArgs has no Config, pulumi/pulumi#24657), so a resource
// policy named after the stack rule receives the stack rule's config on
// every Analyze call, which the engine makes before AnalyzeStack, and
// keeps it for the stack policy. Disabling the rule disables both, and no
// other policy's config or level is involved.
func wrap(r *rules.Rule, base rules.Thresholds) []policyx.Policy {
	level := policyx.EnforcementLevelAdvisory
	if r.Level == rules.Mandatory {
		level = policyx.EnforcementLevelMandatory
	}
	configured := func(config map[string]any) (rules.Thresholds, error) {
		t, err := r.Configured(base, config)
		if err != nil {
			return t, fmt.Errorf("policy config %q: %w", r.ID, err)
		}
		return t, nil
	}
	if !r.Stack() {
		return []policyx.Policy{policyx.NewResourceValidationPolicy(r.ID, policyx.ResourceValidationPolicyArgs{
			Description:      r.Description,
			EnforcementLevel: level,
			ConfigSchema:     ConfigSchema(r),
			ValidateResource: func(_ context.Context, args policyx.ResourceValidationArgs) error {
				t, err := configured(args.Config)
				if err != nil {
					return err
				}
				a := args.Resource
				for _, m := range r.CheckResource(toResource(a.URN, a.Type, a.Name, a.Parent, a.Properties), t) {
					args.Manager.ReportViolation(Message(m, r), "")
				}
				return nil
			},
		})}
	}
	own := &stackThresholds{cur: base}
	reader := policyx.NewResourceValidationPolicy(r.ID, policyx.ResourceValidationPolicyArgs{
		Description:      r.Description,
		EnforcementLevel: level,
		ConfigSchema:     ConfigSchema(r),
		ValidateResource: func(_ context.Context, args policyx.ResourceValidationArgs) error {
			t, err := configured(args.Config)
			if err != nil {
				return err
			}
			own.set(t)
			return nil
		},
	})
	stack := policyx.NewStackValidationPolicy(r.ID, policyx.StackValidationPolicyArgs{
		Description:      r.Description,
		EnforcementLevel: level,
		ConfigSchema:     ConfigSchema(r),
		ValidateStack: func(_ context.Context, args policyx.StackValidationArgs) error {
			rs := make([]rules.Resource, 0, len(args.Resources))
			for _, a := range args.Resources {
				rs = append(rs, toResource(a.URN, a.Type, a.Name, a.Parent, a.Properties))
			}
			for _, v := range r.CheckStack(rs, own.get()) {
				args.Manager.ReportViolation(Message(v.Message, r), v.URN)
			}
			return nil
		},
	})
	return []policyx.Policy{reader, stack}
}

// stackThresholds is one stack rule's thresholds as its own config last
// set them; the engine may analyze resources concurrently.
type stackThresholds struct {
	mu  sync.Mutex
	cur rules.Thresholds
}

func (s *stackThresholds) set(t rules.Thresholds) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = t
}

func (s *stackThresholds) get() rules.Thresholds {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
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
