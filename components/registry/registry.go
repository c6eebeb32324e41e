// Package registry declares the stack's container registry on AWS: one ECR
// repository per image the stack runs, each scanned on push, with
// immutable tags (a tag once pushed always names the same bits, so a
// rollback redeploys what was tested), encrypted at rest, and a lifecycle
// policy so untagged layers and old releases do not pile up forever.
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ecr"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:registry:Registry"

// Encryption types ECR supports at rest.
const (
	AES256 = "AES256"
	KMS    = "KMS"
)

// Defaults of the lifecycle policy.
const (
	// DefaultUntaggedDays expires an untagged image a week after its push:
	// long enough for a build that pushes by digest and tags afterwards.
	DefaultUntaggedDays = 7
	// DefaultKeepTagged keeps the last 30 tagged images of a repository:
	// many releases to roll back to, a bounded bill.
	DefaultKeepTagged = 30
)

// Args configure the registry.
type Args struct {
	// Repositories are the repository names, one per image
	// ("scaleplane/gateway"): the path of the image reference after the
	// registry host.
	Repositories []string
	// UntaggedDays expires untagged images this long after their push
	// (default DefaultUntaggedDays).
	UntaggedDays int
	// KeepTagged is how many tagged images each repository keeps (default
	// DefaultKeepTagged).
	KeepTagged int
	// Encryption is AES256 (default) or KMS (the account's aws/ecr key).
	Encryption string
	// Tags go on every repository.
	Tags map[string]string
}

// Registry is the declared set of repositories.
type Registry struct {
	pulumi.ResourceState

	// RepositoryURLs maps each repository name to its URL
	// (<account>.dkr.ecr.<region>.amazonaws.com/<name>).
	RepositoryURLs pulumi.StringMapOutput `pulumi:"repositoryUrls"`
	// Repositories are the declared repositories by name, for a workload to
	// depend on exactly the repository its image comes from.
	Repositories map[string]*ecr.Repository
}

// repoRE is ECR's repository name rule (lower case, path segments).
var repoRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)

// Validate reports every problem of the arguments.
func (a *Args) Validate() error {
	var errs []error
	if len(a.Repositories) == 0 {
		errs = append(errs, errors.New("repositories: at least one (one per image the stack runs)"))
	}
	seen := map[string]bool{}
	for _, r := range a.Repositories {
		if len(r) < 2 || len(r) > 256 || !repoRE.MatchString(r) {
			errs = append(errs, fmt.Errorf("repository %q: must be 2..256 lower-case letters, digits, '.', '_', '-' in '/'-separated segments", r))
		}
		if seen[r] {
			errs = append(errs, fmt.Errorf("repository %q: listed twice", r))
		}
		seen[r] = true
	}
	if a.UntaggedDays < 0 {
		errs = append(errs, fmt.Errorf("untaggedDays %d: must be positive (0 takes %d)", a.UntaggedDays, DefaultUntaggedDays))
	}
	if a.KeepTagged < 0 {
		errs = append(errs, fmt.Errorf("keepTagged %d: must be positive (0 takes %d)", a.KeepTagged, DefaultKeepTagged))
	}
	if a.Encryption != "" && a.Encryption != AES256 && a.Encryption != KMS {
		errs = append(errs, fmt.Errorf("encryption %q: must be %s or %s", a.Encryption, AES256, KMS))
	}
	return errors.Join(errs...)
}

// LifecyclePolicy is the ECR lifecycle policy of every repository: untagged
// images expire untaggedDays after their push (rule 1), and of the tagged
// ones only the newest keepTagged stay (rule 2).
func LifecyclePolicy(untaggedDays, keepTagged int) string {
	b, _ := json.Marshal(map[string]any{"rules": []any{
		map[string]any{
			"rulePriority": 1,
			"description":  fmt.Sprintf("expire untagged images %d days after their push", untaggedDays),
			"selection": map[string]any{
				"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": untaggedDays,
			},
			"action": map[string]any{"type": "expire"},
		},
		map[string]any{
			"rulePriority": 2,
			"description":  fmt.Sprintf("keep the last %d tagged images", keepTagged),
			"selection": map[string]any{
				"tagStatus": "tagged", "tagPatternList": []string{"*"}, "countType": "imageCountMoreThan", "countNumber": keepTagged,
			},
			"action": map[string]any{"type": "expire"},
		},
	}})
	return string(b)
}

// NewRegistry validates args and declares one repository and its lifecycle
// policy per name.
func NewRegistry(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Registry, error) {
	if args == nil {
		return nil, fmt.Errorf("registry %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("registry %s: %w", name, err)
	}
	untagged, keep, enc := args.UntaggedDays, args.KeepTagged, args.Encryption
	if untagged == 0 {
		untagged = DefaultUntaggedDays
	}
	if keep == 0 {
		keep = DefaultKeepTagged
	}
	if enc == "" {
		enc = AES256
	}
	r := &Registry{Repositories: map[string]*ecr.Repository{}}
	if err := ctx.RegisterComponentResource(TypeToken, name, r, opts...); err != nil {
		return nil, fmt.Errorf("registry %s: register: %w", name, err)
	}
	child, err := children.Options(r, opts)
	if err != nil {
		return nil, fmt.Errorf("registry %s: options: %w", name, err)
	}
	urls := pulumi.StringMap{}
	policy := pulumi.String(LifecyclePolicy(untagged, keep))
	for _, repo := range slices.Sorted(slices.Values(args.Repositories)) {
		role := name + "-" + strings.NewReplacer("/", "-", ".", "-", "_", "-").Replace(repo)
		rp, err := ecr.NewRepository(ctx, role, &ecr.RepositoryArgs{
			Name:                       pulumi.String(repo),
			ImageTagMutability:         pulumi.String("IMMUTABLE"),
			ImageScanningConfiguration: &ecr.RepositoryImageScanningConfigurationArgs{ScanOnPush: pulumi.Bool(true)},
			EncryptionConfigurations: ecr.RepositoryEncryptionConfigurationArray{
				&ecr.RepositoryEncryptionConfigurationArgs{EncryptionType: pulumi.String(enc)},
			},
			Tags: pulumi.ToStringMap(args.Tags),
		}, child)
		if err != nil {
			return nil, fmt.Errorf("registry %s: repository %s: %w", name, repo, err)
		}
		if _, err := ecr.NewLifecyclePolicy(ctx, role, &ecr.LifecyclePolicyArgs{
			Repository: rp.Name, Policy: policy,
		}, child); err != nil {
			return nil, fmt.Errorf("registry %s: lifecycle policy of %s: %w", name, repo, err)
		}
		r.Repositories[repo] = rp
		urls[repo] = rp.RepositoryUrl
	}
	r.RepositoryURLs = urls.ToStringMapOutput()
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{"repositoryUrls": r.RepositoryURLs}); err != nil {
		return nil, fmt.Errorf("registry %s: outputs: %w", name, err)
	}
	return r, nil
}
