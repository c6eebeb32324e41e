package registry

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type declared struct {
	typ, name, parent string
	inputs            map[string]any
}

type recorder struct {
	mu  sync.Mutex
	all []declared
}

func (r *recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, declared{args.TypeToken, args.Name, string(args.RegisterRPC.GetParent()), args.Inputs.Mappable()})
	out := args.Inputs.Copy()
	if args.TypeToken == "aws:ecr/repository:Repository" {
		out["repositoryUrl"] = resource.NewStringProperty("123456789012.dkr.ecr.eu-west-1.amazonaws.com/" + args.Inputs["name"].StringValue())
	}
	return args.Name + "-id", out, nil
}

func (r *recorder) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (r *recorder) ofType(typ string) []declared {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []declared
	for _, d := range r.all {
		if d.typ == typ {
			out = append(out, d)
		}
	}
	return out
}

func TestEveryRepositoryIsScannedImmutableEncryptedAndExpires(t *testing.T) {
	r := &recorder{}
	urls := map[string]string{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		reg, err := NewRegistry(ctx, "registry", &Args{Repositories: []string{"scaleplane/gateway", "scaleplane/edge-haproxy"}})
		if err != nil {
			return err
		}
		reg.RepositoryURLs.ApplyT(func(m map[string]string) error {
			for k, v := range m {
				urls[k] = v
			}
			return nil
		})
		return nil
	}, pulumi.WithMocks("scaleplane", "test", r))
	require.NoError(t, err, "declare the registry")

	repos := r.ofType("aws:ecr/repository:Repository")
	require.Len(t, repos, 2, "one repository per image")
	for _, rp := range repos {
		in := rp.inputs
		assert.Equal(t, "IMMUTABLE", in["imageTagMutability"], "%s: a tag always names the same bits", rp.name)
		assert.Equal(t, true, in["imageScanningConfiguration"].(map[string]any)["scanOnPush"], "%s: scanned on push", rp.name)
		assert.Equal(t, []any{map[string]any{"encryptionType": AES256}}, in["encryptionConfigurations"], "%s: encrypted at rest", rp.name)
		assert.Contains(t, rp.parent, TypeToken, "%s: parented to the registry", rp.name)
	}
	assert.ElementsMatch(t, []string{"registry-scaleplane-gateway", "registry-scaleplane-edge-haproxy"},
		[]string{repos[0].name, repos[1].name}, "children named <name>-<repository>")

	policies := r.ofType("aws:ecr/lifecyclePolicy:LifecyclePolicy")
	require.Len(t, policies, 2, "a lifecycle policy per repository")
	var lp struct {
		Rules []struct {
			Selection map[string]any `json:"selection"`
		} `json:"rules"`
	}
	require.NoError(t, json.Unmarshal([]byte(policies[0].inputs["policy"].(string)), &lp), "the policy is JSON")
	require.Len(t, lp.Rules, 2, "untagged expiry and a tagged cap")
	assert.Equal(t, "untagged", lp.Rules[0].Selection["tagStatus"], "rule 1 expires untagged images")
	assert.EqualValues(t, DefaultUntaggedDays, lp.Rules[0].Selection["countNumber"], "after a week")
	assert.EqualValues(t, DefaultKeepTagged, lp.Rules[1].Selection["countNumber"], "rule 2 keeps the last N tagged")
	assert.Equal(t, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/scaleplane/gateway", urls["scaleplane/gateway"], "URL output per repository")
}

func TestBadArgsAreRefusedBeforeAnythingIsDeclared(t *testing.T) {
	for name, a := range map[string]*Args{
		"no repositories":  {},
		"upper case":       {Repositories: []string{"Scaleplane/Gateway"}},
		"duplicate":        {Repositories: []string{"a/b", "a/b"}},
		"bad encryption":   {Repositories: []string{"a/b"}, Encryption: "DES"},
		"negative expiry":  {Repositories: []string{"a/b"}, UntaggedDays: -1},
		"negative keeping": {Repositories: []string{"a/b"}, KeepTagged: -1},
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{}
			err := pulumi.RunErr(func(ctx *pulumi.Context) error {
				_, err := NewRegistry(ctx, "registry", a)
				return err
			}, pulumi.WithMocks("scaleplane", "test", r))
			require.Error(t, err, "refused")
			assert.Empty(t, r.ofType("aws:ecr/repository:Repository"), "nothing declared")
		})
	}
}
