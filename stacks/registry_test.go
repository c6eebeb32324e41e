package stacks_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/lbcontroller"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

// prodValues is prod's stack file as raw values, for mutated variants.
func prodValues(t *testing.T) map[string]string {
	t.Helper()
	v, err := stacks.ReadStackConfig("..", "prod")
	require.NoError(t, err, "read prod's stack file")
	return v
}

func TestAWSStacksNeedSomeoneToReachTheAPI(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(map[string]string)
		want   []string
	}{
		"no deployer network": {func(v map[string]string) { delete(v, "clusterPublicAccessCidrs") },
			[]string{"scaleplane:clusterPublicAccessCidrs", "required for an aws stack", "clusterApiPrivateRunnerCidrs"}},
		"the whole internet": {func(v map[string]string) { v["clusterPublicAccessCidrs"] = "0.0.0.0/0" },
			[]string{"scaleplane:clusterPublicAccessCidrs", `"0.0.0.0/0"`, "whole internet"}},
		"not a network": {func(v map[string]string) { v["clusterPublicAccessCidrs"] = "203.0.113.7" },
			[]string{"scaleplane:clusterPublicAccessCidrs", `"203.0.113.7"`, "IPv4 CIDR"}},
		"bad runner network": {func(v map[string]string) { v["clusterApiPrivateRunnerCidrs"] = "10.0.0.0/33" },
			[]string{"scaleplane:clusterApiPrivateRunnerCidrs", `"10.0.0.0/33"`, "IPv4 CIDR"}},
		"registry not ECR": {func(v map[string]string) { v["imageRegistry"] = "registry.example/scaleplane" },
			[]string{"scaleplane:imageRegistry", `"registry.example/scaleplane"`, "dkr.ecr"}},
		"ECR of another region": {func(v map[string]string) { v["awsRegion"] = "eu-west-1" },
			[]string{"scaleplane:imageRegistry", "must be in awsRegion (eu-west-1)"}},
		"edge image elsewhere": {func(v map[string]string) { v["edgeImage"] = "haproxy:2.8" },
			[]string{"scaleplane:edgeImage", `"haproxy:2.8"`, "comes from its registry"}},
	} {
		t.Run(name, func(t *testing.T) {
			v := prodValues(t)
			tc.mutate(v)
			_, err := stacks.Parse("prod", v)
			require.Error(t, err, "%s is refused at Parse", name)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w, "the error says %q", w)
			}
			assert.Equal(t, 1, strings.Count(err.Error(), "\n")+1, "one error line for one bad value: %v", err)
		})
	}
}

func TestARunnerNetworkAloneIsEnough(t *testing.T) {
	v := prodValues(t)
	delete(v, "clusterPublicAccessCidrs")
	v["clusterApiPrivateRunnerCidrs"] = "10.40.0.0/24"
	g, _, err := render.Values("prod", v)
	require.NoError(t, err, "a private runner network makes the stack deployable")
	cl := g.ByType("aws:eks/cluster:Cluster")
	require.Len(t, cl, 1, "one cluster")
	assert.Equal(t, false, get(cl[0].Inputs, "vpcConfig", "endpointPublicAccess"), "no public endpoint")
	rules := g.ByType("aws:ec2/securityGroupRule:SecurityGroupRule")
	var found bool
	for _, r := range rules {
		if cidrs, _ := get(r.Inputs, "cidrBlocks").([]any); len(cidrs) == 1 && cidrs[0] == "10.40.0.0/24" {
			found = true
			assert.EqualValues(t, 443, get(r.Inputs, "fromPort"), "the API port")
		}
	}
	assert.True(t, found, "the cluster security group admits the runner network on 443")
}

func TestAWSStacksDeclareTheirRegistryAndController(t *testing.T) {
	for _, stack := range []string{"staging", "prod"} {
		t.Run(stack, func(t *testing.T) {
			g, env := renderStack(t, stack)
			// The API is reachable from the configured networks.
			cl := g.ByType("aws:eks/cluster:Cluster")
			require.Len(t, cl, 1, "one cluster")
			assert.Equal(t, true, get(cl[0].Inputs, "vpcConfig", "endpointPublicAccess"), "public endpoint for the deployers")
			want := make([]any, 0, len(env.Foundation.PublicAccessCIDRs))
			for _, c := range env.Foundation.PublicAccessCIDRs {
				want = append(want, c)
			}
			assert.Equal(t, want, get(cl[0].Inputs, "vpcConfig", "publicAccessCidrs"), "only from the configured networks")

			// One repository per image of the stack's registry.
			repos := map[string]render.Resource{}
			for _, r := range g.ByType("aws:ecr/repository:Repository") {
				repos[str(r.Inputs["name"])] = r
				assert.Equal(t, "IMMUTABLE", r.Inputs["imageTagMutability"], "%s: immutable tags", r.Name)
				assert.Equal(t, true, get(r.Inputs, "imageScanningConfiguration", "scanOnPush"), "%s: scan on push", r.Name)
			}
			assert.ElementsMatch(t, []string{"scaleplane/edge-haproxy", "scaleplane/gateway", "scaleplane/topics", "scaleplane/users", "scaleplane/worker",
				"scaleplane/otelcol", "scaleplane/jaeger", "scaleplane/prometheus", "scaleplane/kube-state-metrics", "scaleplane/metrics-server", "scaleplane/pgbouncer"},
				keysOf(repos), "%s: a repository for each of its images", stack)
			assert.Len(t, g.ByType("aws:ecr/lifecyclePolicy:LifecyclePolicy"), len(repos), "a lifecycle policy each")

			// Every pod image of the stack's registry has its repository,
			// and its workload waits for that repository.
			for _, typ := range []string{"kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"} {
				for _, d := range g.ByType(typ) {
					for _, img := range podImagesOf(d) {
						if !strings.HasPrefix(img, env.ImageRegistry+"/") {
							continue
						}
						repo := strings.TrimPrefix(img[:strings.LastIndex(img, ":")], env.RegistryHost()+"/")
						require.Contains(t, repos, repo, "%s %s: its image %s has a repository", typ, d.Name, img)
						assert.Contains(t, d.DependsOn, repos[repo].URN, "%s %s waits for its repository", typ, d.Name)
					}
				}
			}

			// The AWS Load Balancer Controller, with IRSA.
			rel := g.ByType("kubernetes:helm.sh/v3:Release")
			require.Len(t, rel, 1, "the controller's Helm release")
			assert.Equal(t, lbcontroller.ChartVersion, rel[0].Inputs["version"], "pinned chart")
			assert.Equal(t, env.ClusterName(), get(rel[0].Inputs, "values", "clusterName"), "the cluster's name")
			assert.NotEmpty(t, rel[0].Provider, "declared in the stack's own cluster")
			assert.Contains(t, str(get(rel[0].Inputs, "values", "serviceAccount", "annotations", lbcontroller.RoleARNAnnotation)), "role/aws-load-balancer-controller-role",
				"the service account carries its role")
		})
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		out = append(out, k)
	}
	return out
}

// podImagesOf lists the images of a workload's containers and init containers.
func podImagesOf(r render.Resource) []string {
	var out []string
	for _, field := range []string{"containers", "initContainers"} {
		cs, _ := get(r.Inputs, "spec", "template", "spec", field).([]any)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				out = append(out, str(m["image"]))
			}
		}
	}
	return out
}
