package edgecert

import (
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mocks records what a component registers; outputs echo the inputs plus
// the computed ones AWS would return.
type mocks struct {
	mu  sync.Mutex
	res []pulumi.MockResourceArgs
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.res = append(m.res, args)
	m.mu.Unlock()
	out := args.Inputs.Copy()
	switch args.TypeToken {
	case "aws:acm/certificate:Certificate":
		out["arn"] = resource.NewStringProperty("arn:aws:acm:us-east-1:123456789012:certificate/" + args.Name)
		var opts []resource.PropertyValue
		names := []string{args.Inputs["domainName"].StringValue()}
		if v, ok := args.Inputs["subjectAlternativeNames"]; ok {
			for _, n := range v.ArrayValue() {
				names = append(names, n.StringValue())
			}
		}
		for _, n := range names {
			opts = append(opts, resource.NewObjectProperty(resource.PropertyMap{
				"domainName":          resource.NewStringProperty(n),
				"resourceRecordName":  resource.NewStringProperty("_x." + n + "."),
				"resourceRecordType":  resource.NewStringProperty("CNAME"),
				"resourceRecordValue": resource.NewStringProperty("_y.acm-validations.aws."),
			}))
		}
		out["domainValidationOptions"] = resource.NewArrayProperty(opts)
	case "aws:route53/record:Record":
		out["fqdn"] = args.Inputs["name"]
	case "aws:acm/certificateValidation:CertificateValidation":
		out["certificateArn"] = args.Inputs["certificateArn"]
	}
	return args.Name + "-id", out, nil
}

func (m *mocks) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

func (m *mocks) byType(typ string) []pulumi.MockResourceArgs {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []pulumi.MockResourceArgs
	for _, r := range m.res {
		if r.TypeToken == typ {
			out = append(out, r)
		}
	}
	return out
}

func (m *mocks) byName(t *testing.T, name string) pulumi.MockResourceArgs {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.res {
		if r.Name == name {
			return r
		}
	}
	require.Failf(t, "resource not registered", "no resource named %s", name)
	return pulumi.MockResourceArgs{}
}

// dependsOn returns the Pulumi names of a resource's declared dependencies.
func dependsOn(r pulumi.MockResourceArgs) []string {
	var out []string
	for _, u := range r.RegisterRPC.GetDependencies() {
		out = append(out, u[strings.LastIndex(u, "::")+2:])
	}
	return out
}

// outputs are the component's outputs, resolved.
type outputs struct {
	secret, namespace, caSecret, arn string
	dnsNames, records                []string
}

// declare runs NewEdgeCertificate under mocks after a stand-in for
// cert-manager's readiness ("gate"), passed as the caller's DependsOn.
func declare(t *testing.T, a Args) (*mocks, outputs) {
	t.Helper()
	m := &mocks{}
	ch := make(chan outputs, 1)
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		gate, err := pulumi.NewStackReference(ctx, "gate", nil)
		if err != nil {
			return err
		}
		c, err := NewEdgeCertificate(ctx, "edge-tls", &a, pulumi.DependsOn([]pulumi.Resource{gate}))
		if err != nil {
			return err
		}
		pulumi.All(c.SecretName, c.Namespace, c.CASecretName, c.CertificateARN, c.DNSNames, c.ValidationRecords).ApplyT(func(v []any) error {
			ch <- outputs{v[0].(string), v[1].(string), v[2].(string), v[3].(string), v[4].([]string), v[5].([]string)}
			return nil
		})
		return nil
	}, pulumi.WithMocks("scaleplane", "test", m))
	require.NoError(t, err, "declare the edge certificate")
	return m, <-ch
}

func inClusterArgs() Args {
	return Args{Mode: ModeInCluster, DNSNames: []string{"scaleplane.local", "*.scaleplane.local"}, Namespace: "scaleplane", SecretName: "edge-tls"}
}

func spec(r pulumi.MockResourceArgs) resource.PropertyMap { return r.Inputs["spec"].ObjectValue() }

func TestSelfSignedChainIssuesTheLeafFromItsOwnCA(t *testing.T) {
	m, out := declare(t, inClusterArgs())
	assert.Equal(t, outputs{secret: "edge-tls", namespace: "scaleplane", caSecret: "edge-tls-ca",
		dnsNames: []string{"scaleplane.local", "*.scaleplane.local"}, records: []string{}}, out, "outputs of the in-cluster path")

	issuers := m.byType("kubernetes:cert-manager.io/v1:Issuer")
	certs := m.byType("kubernetes:cert-manager.io/v1:Certificate")
	require.Len(t, issuers, 2, "a SelfSigned and a CA Issuer")
	require.Len(t, certs, 2, "the CA and the leaf")

	self := m.byName(t, "edge-tls-selfsigned-issuer")
	assert.True(t, spec(self)["selfSigned"].IsObject(), "the root issuer is self-signed")
	ca := m.byName(t, "edge-tls-ca-certificate")
	assert.True(t, spec(ca)["isCA"].BoolValue(), "the CA certificate is a CA")
	assert.Equal(t, "edge-tls-selfsigned", spec(ca)["issuerRef"].ObjectValue()["name"].StringValue(), "the CA is self-signed")
	assert.Equal(t, "edge-tls-ca", spec(ca)["secretName"].StringValue(), "the CA lands in edge-tls-ca")
	caIssuer := m.byName(t, "edge-tls-ca-issuer")
	assert.Equal(t, "edge-tls-ca", spec(caIssuer)["ca"].ObjectValue()["secretName"].StringValue(), "the CA Issuer signs with the CA's Secret")

	leaf := m.byName(t, "edge-tls-certificate")
	ls := spec(leaf)
	assert.Equal(t, "edge-tls", ls["secretName"].StringValue(), "the leaf writes the Secret the edge mounts")
	assert.Equal(t, "edge-tls", leaf.Inputs["metadata"].ObjectValue()["name"].StringValue(), "the Certificate is named after its Secret")
	assert.Equal(t, "scaleplane", leaf.Inputs["metadata"].ObjectValue()["namespace"].StringValue(), "in the edge's namespace")
	assert.Equal(t, map[string]string{"kind": "Issuer", "name": "edge-tls-ca", "group": "cert-manager.io"}, toMap(ls["issuerRef"]), "the leaf is signed by the CA Issuer")
	assert.Equal(t, "2160h0m0s", ls["duration"].StringValue(), "90 days")
	assert.Equal(t, "720h0m0s", ls["renewBefore"].StringValue(), "renewed 30 days before expiry")
	pk := ls["privateKey"].ObjectValue()
	assert.Equal(t, "ECDSA", pk["algorithm"].StringValue(), "ECDSA key")
	assert.Equal(t, 256.0, pk["size"].NumberValue(), "P-256")
	assert.Equal(t, "scaleplane.local", ls["commonName"].StringValue(), "the first name is the common name")
	assert.Len(t, ls["dnsNames"].ArrayValue(), 2, "every DNS name is in the SAN")

	for _, r := range append(issuers, certs...) {
		assert.Contains(t, dependsOn(r), "gate", "%s waits for cert-manager (the caller's DependsOn)", r.Name)
	}
	assert.Contains(t, dependsOn(ca), "edge-tls-selfsigned-issuer", "the CA waits for its issuer")
	assert.Contains(t, dependsOn(caIssuer), "edge-tls-ca-certificate", "the CA Issuer waits for the CA")
	assert.Contains(t, dependsOn(leaf), "edge-tls-ca-issuer", "the leaf waits for the CA Issuer")
	assert.Empty(t, m.byType("aws:acm/certificate:Certificate"), "no ACM in-cluster")
}

func TestNamedIssuerIssuesOnlyTheLeaf(t *testing.T) {
	a := inClusterArgs()
	a.Issuer = &IssuerRef{Kind: KindClusterIssuer, Name: "letsencrypt-prod"}
	m, out := declare(t, a)
	assert.Empty(t, out.caSecret, "no CA of ours to trust")
	assert.Empty(t, m.byType("kubernetes:cert-manager.io/v1:Issuer"), "no Issuer is declared")
	certs := m.byType("kubernetes:cert-manager.io/v1:Certificate")
	require.Len(t, certs, 1, "only the leaf")
	assert.Equal(t, map[string]string{"kind": "ClusterIssuer", "name": "letsencrypt-prod", "group": "cert-manager.io"}, toMap(spec(certs[0])["issuerRef"]), "signed by the named issuer")
	assert.Contains(t, dependsOn(certs[0]), "gate", "the leaf waits for cert-manager")
}

func TestACMWithAHostedZoneValidatesThroughRoute53(t *testing.T) {
	a := Args{Mode: ModeACM, DNSNames: []string{"api.scaleplane.example", "www.scaleplane.example"}, HostedZoneID: "Z0123456789ABCDEFGHIJ", Tags: map[string]string{"stack": "prod"}}
	m, out := declare(t, a)
	certs := m.byType("aws:acm/certificate:Certificate")
	require.Len(t, certs, 1, "one ACM certificate")
	in := certs[0].Inputs
	assert.Equal(t, "DNS", in["validationMethod"].StringValue(), "DNS validation")
	assert.Equal(t, "api.scaleplane.example", in["domainName"].StringValue(), "the first name is the domain")
	assert.Equal(t, "www.scaleplane.example", in["subjectAlternativeNames"].ArrayValue()[0].StringValue(), "the rest are SANs")
	recs := m.byType("aws:route53/record:Record")
	require.Len(t, recs, 2, "one validation record per name")
	assert.Equal(t, "Z0123456789ABCDEFGHIJ", recs[0].Inputs["zoneId"].StringValue(), "in the stack's zone")
	assert.Equal(t, "CNAME", recs[0].Inputs["type"].StringValue(), "ACM's CNAME")
	v := m.byName(t, "edge-tls-validation")
	assert.Subset(t, dependsOn(v), []string{"edge-tls-validation-0", "edge-tls-validation-1"}, "validation waits for the records")
	assert.Equal(t, "arn:aws:acm:us-east-1:123456789012:certificate/edge-tls-certificate", out.arn, "the ARN comes through the validation")
	assert.Len(t, out.records, 2, "the validation records are reported")
	assert.Empty(t, out.secret, "no Secret on AWS")
	assert.Empty(t, m.byType("kubernetes:cert-manager.io/v1:Certificate"), "no cert-manager on AWS")
}

func TestACMWithoutAZoneLeavesTheRecordsToTheDNSOwner(t *testing.T) {
	m, out := declare(t, Args{Mode: ModeACM, DNSNames: []string{"api.scaleplane.example"}})
	assert.Empty(t, m.byType("aws:route53/record:Record"), "no records without a zone")
	assert.Empty(t, m.byType("aws:acm/certificateValidation:CertificateValidation"), "no validation wait without a zone")
	assert.Equal(t, []string{"_x.api.scaleplane.example. CNAME _y.acm-validations.aws."}, out.records, "the record to create is reported")
	assert.NotEmpty(t, out.arn, "the ARN is the certificate's")
}

func TestValidateNamesFieldValueAndWhatIsAllowed(t *testing.T) {
	for _, tc := range []struct {
		args Args
		want []string
	}{
		{Args{Mode: "tls"}, []string{`mode "tls": must be in-cluster or acm`, "dnsNames: at least one name"}},
		{Args{Mode: ModeInCluster, DNSNames: []string{"Bad_Name", "a.example", "a.example"}, Namespace: "ns", SecretName: "edge-tls"},
			[]string{`dnsNames[0] "Bad_Name": must be a lower-case DNS name`, `dnsNames[2] "a.example": listed twice`}},
		{Args{Mode: ModeInCluster, DNSNames: []string{"a.example"}, Namespace: "ns", SecretName: "edge-tls", Issuer: &IssuerRef{Kind: "Acme", Name: ""}},
			[]string{`issuer.kind "Acme": must be Issuer or ClusterIssuer`, `issuer.name "": must be an object name`}},
		{Args{Mode: ModeInCluster, DNSNames: []string{"a.example"}, SecretName: "edge-tls"}, []string{`namespace "": must be a DNS label`}},
		{Args{Mode: ModeACM, DNSNames: []string{"a.example"}, SecretName: "edge-tls", HostedZoneID: "zone", Issuer: &IssuerRef{Kind: KindIssuer, Name: "x"}},
			[]string{`secretName "edge-tls": only for mode in-cluster`, `hostedZoneId "zone": must be a Route53 hosted zone id`, "issuer: only for mode in-cluster"}},
	} {
		err := tc.args.Validate("edge-tls")
		require.Error(t, err, "args %+v are refused", tc.args)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, "the error names the field, the value and what is allowed")
		}
	}
	ok := inClusterArgs()
	assert.NoError(t, ok.Validate("edge-tls"), "a wildcard and its apex are fine")
}

func toMap(v resource.PropertyValue) map[string]string {
	out := map[string]string{}
	for k, e := range v.ObjectValue() {
		out[string(k)] = e.StringValue()
	}
	return out
}
