package stacks

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
)

// Services are the bundled Go services the stack runs, each an image
// `<imageRegistry>/<name>:<imageTag>` (topics is the Kafka topics Job).
var Services = []string{"gateway", "users", "worker", "topics"}

// ecrRegistryRE is an ECR registry with a repository prefix:
// <account>.dkr.ecr.<region>.amazonaws.com/<prefix>.
var ecrRegistryRE = regexp.MustCompile(`^(\d{12})\.dkr\.ecr\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com/([a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)$`)

// RegistryHost is the host of imageRegistry (what `images push` talks to
// and refuses any other than).
func (e *Env) RegistryHost() string {
	host, _, _ := strings.Cut(e.ImageRegistry, "/")
	return host
}

// Images are every image reference the stack runs: the services', the
// edge's, the observability stack's, the read-only pooler's and,
// in-cluster, the rest of the data tier's.
func (e *Env) Images() []string {
	var out []string
	for _, s := range Services {
		out = append(out, e.Image(s))
	}
	o := e.Observability
	out = append(out, e.Edge.Image, o.CollectorImage, o.JaegerImage, o.PrometheusImage, o.KubeStateMetricsImage, o.MetricsServerImage)
	// The read-only pooler runs in the cluster on AWS too (RDS Proxy pools
	// the primary's connections; the replicas get PgBouncer); the rest of
	// the data tier is managed there.
	d := e.Data
	out = append(out, d.PgBouncerImage)
	if e.Flavour != FlavourAWS {
		out = append(out, d.RedisImage, d.PostgresImage, d.KafkaImage)
	}
	return out
}

// RegistryRepositories are the repositories of the stack's own registry
// its images need, sorted: for each image under imageRegistry, its path
// after the registry host without tag or digest ("scaleplane/gateway").
// Images from elsewhere (public images, another registry) need none.
func (e *Env) RegistryRepositories() []string {
	prefix := e.ImageRegistry + "/"
	host := e.RegistryHost() + "/"
	seen := map[string]bool{}
	for _, ref := range e.Images() {
		if !strings.HasPrefix(ref, prefix) {
			continue
		}
		repo := strings.TrimPrefix(ref, host)
		if i := strings.IndexAny(repo, "@"); i >= 0 {
			repo = repo[:i]
		}
		if i := strings.LastIndex(repo, ":"); i >= 0 {
			repo = repo[:i]
		}
		seen[repo] = true
	}
	return slices.Sorted(func(yield func(string) bool) {
		for r := range seen {
			if !yield(r) {
				return
			}
		}
	})
}

// validateAWSAccess checks what an aws stack needs to be deployable: its
// images come from the ECR registry of its own region (the repositories
// the stack declares), and someone can reach the EKS API.
func (e *Env) validateAWSAccess() []error {
	var errs []error
	f := e.Foundation
	m := ecrRegistryRE.FindStringSubmatch(e.ImageRegistry)
	switch {
	case m == nil:
		errs = append(errs, &ConfigError{Key: "imageRegistry", Value: e.ImageRegistry,
			Allowed: "an aws stack pulls from the ECR repositories it declares: <12-digit account>.dkr.ecr.<awsRegion>.amazonaws.com/<prefix>, e.g. 123456789012.dkr.ecr." + f.Region + ".amazonaws.com/scaleplane"})
	case m[2] != f.Region:
		errs = append(errs, &ConfigError{Key: "imageRegistry", Value: e.ImageRegistry,
			Allowed: fmt.Sprintf("the ECR registry must be in awsRegion (%s), where the repositories are declared", f.Region)})
	}
	if m != nil && !strings.HasPrefix(e.Edge.Image, e.ImageRegistry+"/") {
		errs = append(errs, &ConfigError{Key: "edgeImage", Value: e.Edge.Image,
			Allowed: "an aws stack's edge image comes from its registry: " + e.ImageRegistry + "/edge-<kind>:<tag>"})
	}
	if len(f.PublicAccessCIDRs) == 0 && len(f.PrivateRunnerCIDRs) == 0 {
		errs = append(errs, &ConfigError{Key: "clusterPublicAccessCidrs", Value: "",
			Allowed: "required for an aws stack: the networks `pulumi up` runs from (the EKS API is private otherwise, and no one could deploy); or declare a runner network inside the VPC with clusterApiPrivateRunnerCidrs"})
	}
	for _, c := range f.PublicAccessCIDRs {
		if err := checkCIDR(c); err != nil {
			errs = append(errs, &ConfigError{Key: "clusterPublicAccessCidrs", Value: c, Allowed: err.Error()})
		}
	}
	for _, c := range f.PrivateRunnerCIDRs {
		if err := checkCIDR(c); err != nil {
			errs = append(errs, &ConfigError{Key: "clusterApiPrivateRunnerCidrs", Value: c, Allowed: err.Error()})
		}
	}
	return errs
}

// checkCIDR accepts an IPv4 network narrower than the whole internet: an
// API endpoint open to 0.0.0.0/0 is found by every scanner within hours,
// and one credential leak away from the cluster; a deployer with a
// changing address uses a runner network instead.
func checkCIDR(c string) error {
	ip, n, err := net.ParseCIDR(c)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("must be an IPv4 CIDR such as 203.0.113.0/24")
	}
	if ones, _ := n.Mask.Size(); ones == 0 {
		return fmt.Errorf("0.0.0.0/0 opens the EKS API to the whole internet; list the deployers' networks")
	}
	return nil
}
