package images

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// ecrHostRE is a private ECR registry host; the region is group 1.
var ecrHostRE = regexp.MustCompile(`^\d{12}\.dkr\.ecr(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$`)

// ECRRegion returns the region of an ECR registry host, and whether host
// is one.
func ECRRegion(host string) (string, bool) {
	m := ecrHostRE.FindStringSubmatch(host)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// ECRTokens is the one ECR call a push needs; *ecr.Client implements it,
// tests give a fake.
type ECRTokens interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, opts ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// NewECRTokens makes the ECR client of a region from the AWS SDK's default
// credential chain (environment, ~/.aws config and SSO, web identity, the
// instance's role).
func NewECRTokens(ctx context.Context, region string) (ECRTokens, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration (default credential chain): %w", err)
	}
	return ecr.NewFromConfig(cfg), nil
}

// ECRAuthenticator asks ECR for an authorization token (valid 12 hours)
// and turns it into the basic auth the registry takes: the token is
// base64 of "AWS:<password>".
func ECRAuthenticator(ctx context.Context, tokens ECRTokens) (authn.Authenticator, error) {
	out, err := tokens.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, fmt.Errorf("ECR authorization token (AWS credentials from the default chain: AWS_* variables, ~/.aws, SSO, the instance role): %w", err)
	}
	if out == nil || len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, errors.New("ECR authorization token: the answer holds none")
	}
	raw, err := base64.StdEncoding.DecodeString(*out.AuthorizationData[0].AuthorizationToken)
	if err != nil {
		return nil, fmt.Errorf("ECR authorization token: not base64: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("ECR authorization token: not user:password")
	}
	return &authn.Basic{Username: user, Password: pass}, nil
}

// Authenticate resolves how to log in to a registry: for an ECR host, a
// token from ECR through newTokens (nil: NewECRTokens, the AWS SDK's
// default credential chain); for any other, docker's config
// (~/.docker/config.json and its helpers) or anonymous.
func Authenticate(ctx context.Context, reg name.Registry, newTokens func(context.Context, string) (ECRTokens, error)) (authn.Authenticator, error) {
	region, ok := ECRRegion(reg.RegistryStr())
	if !ok {
		a, err := authn.DefaultKeychain.Resolve(reg)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s from the docker config: %w", reg.RegistryStr(), err)
		}
		return a, nil
	}
	if newTokens == nil {
		newTokens = NewECRTokens
	}
	tokens, err := newTokens(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reg.RegistryStr(), err)
	}
	a, err := ECRAuthenticator(ctx, tokens)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", reg.RegistryStr(), err)
	}
	return a, nil
}
