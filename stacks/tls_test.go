package stacks_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/scaleplane/scaleplane/components/certmanager"
	"github.com/scaleplane/scaleplane/components/edgecert"
	"github.com/scaleplane/scaleplane/internal/render"
	"github.com/scaleplane/scaleplane/stacks"
)

func countType(g *render.Graph, typ string) int {
	n := 0
	for _, r := range g.Resources {
		if r.Type == typ {
			n++
		}
	}
	return n
}

// TestEdgeCertificateInEveryStack: in-cluster stacks install cert-manager
// and issue EdgeTLSSecret in the application namespace; AWS stacks request
// an ACM certificate for their domain and install no cert-manager.
func TestEdgeCertificateInEveryStack(t *testing.T) {
	for _, stack := range shipped {
		t.Run(stack, func(t *testing.T) {
			g, env := renderStack(t, stack)
			crds := countType(g, "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")
			if env.Flavour == stacks.FlavourAWS {
				assert.Equal(t, 1, countType(g, "aws:acm/certificate:Certificate"), "one ACM certificate")
				assert.Zero(t, crds, "no cert-manager on AWS")
				return
			}
			assert.Equal(t, 6, crds, "cert-manager's CRDs")
			assert.Zero(t, countType(g, "aws:acm/certificate:Certificate"), "no ACM in-cluster")
			var leaf *render.Resource
			for i, r := range g.Resources {
				if r.Type == "kubernetes:cert-manager.io/v1:Certificate" && str(get(r.Inputs, "spec", "secretName")) == stacks.EdgeTLSSecret {
					leaf = &g.Resources[i]
				}
			}
			require.NotNil(t, leaf, "a Certificate writes %s", stacks.EdgeTLSSecret)
			assert.Equal(t, env.Namespace, str(get(leaf.Inputs, "metadata", "namespace")), "in the application namespace, where the edge mounts it")
			assert.Equal(t, env.Domain(), str(get(leaf.Inputs, "spec", "commonName")), "for the stack's domain")
			assert.Equal(t, "edge-tls-ca", str(get(leaf.Inputs, "spec", "issuerRef", "name")), "signed by the self-signed CA by default")
			for _, r := range g.Resources {
				if r.Type == "kubernetes:apps/v1:Deployment" && str(get(r.Inputs, "metadata", "namespace")) == env.TLS.CertManagerNamespace {
					img := str(get(r.Inputs, "spec", "template", "spec", "containers", 0, "image"))
					assert.Equal(t, env.ImageRegistry+"/cert-manager:"+certmanager.Version, img, "cert-manager from the stack's registry")
				}
			}
		})
	}
}

func TestTLSKnobs(t *testing.T) {
	env, err := stacks.Parse("local", map[string]string{"tlsIssuer": "ClusterIssuer/letsencrypt-prod", "domain": "Demo.Example.com"})
	require.NoError(t, err, "a named ClusterIssuer is accepted")
	assert.Equal(t, &edgecert.IssuerRef{Kind: "ClusterIssuer", Name: "letsencrypt-prod"}, env.TLS.Issuer, "tlsIssuer is parsed into kind and name")
	assert.Equal(t, "demo.example.com", env.Domain(), "the domain is lower-cased")
	def, err := stacks.Parse("local", nil)
	require.NoError(t, err, "defaults parse")
	assert.Equal(t, "scaleplane.local", def.Domain(), "local's default domain")
	assert.Nil(t, def.TLS.Issuer, "the self-signed CA by default")

	for _, tc := range []struct {
		stack  string
		values map[string]string
		want   string
	}{
		{"local", map[string]string{"tlsIssuer": "letsencrypt"}, `config scaleplane:tlsIssuer = "letsencrypt": must be ClusterIssuer/<name> or Issuer/<name>`},
		{"local", map[string]string{"route53ZoneId": "Z1"}, `config scaleplane:route53ZoneId = "Z1": aws only`},
		{"local", map[string]string{"certManagerImage": "x/cert-manager:latest"}, `certManagerImage = "x/cert-manager:latest": must carry an explicit tag`},
		{"local", map[string]string{"certManagerNamespace": "scaleplane"}, `certManagerNamespace = "scaleplane": must differ from namespace`},
		{"prod", map[string]string{"environment": "prod", "flavour": "aws"}, `config scaleplane:domain = "": required on AWS`},
	} {
		_, err := stacks.Parse(tc.stack, tc.values)
		require.Error(t, err, "%v is refused", tc.values)
		assert.Contains(t, err.Error(), tc.want, "the error names key, value and what is allowed")
	}
}

// TestCertManagerInstallOff: a second stack on a cluster that already runs
// cert-manager declares only its Certificate chain.
func TestCertManagerInstallOff(t *testing.T) {
	values, err := stacks.ReadStackConfig("..", "local")
	require.NoError(t, err, "read local")
	values["certManagerInstall"] = "false"
	g, _, err := render.Values("local", values)
	require.NoError(t, err, "render local without cert-manager")
	assert.Zero(t, countType(g, "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"), "no CRDs declared")
	assert.Zero(t, countType(g, certmanager.TypeToken), "no cert-manager component")
	assert.Equal(t, 2, countType(g, "kubernetes:cert-manager.io/v1:Certificate"), "the CA and the edge certificate")
}
