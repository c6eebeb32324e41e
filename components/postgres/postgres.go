package postgres

import (
	"fmt"
	"net/url"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/children"
	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// TypeToken is the Pulumi type of the component.
const TypeToken = "scaleplane:postgres:Postgres"

// Keys of the application Secret services read ("<name>-app").
const (
	URLReadWriteKey = "url-rw"
	URLReadOnlyKey  = "url-ro"
	UsernameKey     = "username"
	PasswordKey     = "password"
)

// Postgres is a Postgres tier. Its outputs are the same in both flavours.
type Postgres struct {
	pulumi.ResourceState

	// ReadWriteEndpoint and ReadOnlyEndpoint are the poolers' host:port.
	ReadWriteEndpoint pulumi.StringOutput `pulumi:"readWriteEndpoint"`
	ReadOnlyEndpoint  pulumi.StringOutput `pulumi:"readOnlyEndpoint"`
	// ReadWriteURLSecretRef and ReadOnlyURLSecretRef are "secret/key" of
	// the full connection URLs, for microservice.Args.SecretEnv.
	ReadWriteURLSecretRef pulumi.StringOutput `pulumi:"readWriteUrlSecretRef"`
	ReadOnlyURLSecretRef  pulumi.StringOutput `pulumi:"readOnlyUrlSecretRef"`
	// DefaultPoolSize is the server connections one pooler pod opens.
	DefaultPoolSize pulumi.IntOutput `pulumi:"defaultPoolSize"`
	// MaxClientConn is the clients one pooler pod accepts.
	MaxClientConn pulumi.IntOutput `pulumi:"maxClientConn"`
	// MaxServerConnections is the read-write poolers' server connections
	// at their most pods; MaxConnections is the database's max_connections.
	MaxServerConnections pulumi.IntOutput `pulumi:"maxServerConnections"`
	MaxConnections       pulumi.IntOutput `pulumi:"maxConnections"`
}

// AppSecretName is the Secret holding the application's URLs ("postgres-app").
func AppSecretName(name string) string { return name + "-app" }

// NewPostgres validates args, then declares the flavour's resources as
// children named "<name>-<role>".
func NewPostgres(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*Postgres, error) {
	if args == nil {
		return nil, fmt.Errorf("postgres %s: args are required", name)
	}
	if err := args.Validate(name); err != nil {
		return nil, fmt.Errorf("postgres %s: %w", name, err)
	}
	a := args.withDefaults()
	p := &Postgres{}
	if err := ctx.RegisterComponentResource(TypeToken, name, p, opts...); err != nil {
		return nil, fmt.Errorf("postgres %s: register: %w", name, err)
	}
	parent, err := children.Options(p, opts)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: options: %w", name, err)
	}
	pw := passwords{app: pulumi.ToSecret(a.AppPassword).(pulumi.StringOutput)}
	if a.SuperuserPassword != nil {
		pw.superuser = pulumi.ToSecret(a.SuperuserPassword).(pulumi.StringOutput)
	}
	if a.ReplicationPassword != nil {
		pw.replication = pulumi.ToSecret(a.ReplicationPassword).(pulumi.StringOutput)
	}

	var rw, rodb backend
	switch a.Flavour {
	case FlavourInCluster:
		rw, rodb, err = newInCluster(ctx, name, a, pw, parent)
	case FlavourAWS:
		rw, rodb, err = newAWS(ctx, name, a, pw, parent)
	}
	if err != nil {
		return nil, err
	}
	// The read-write path: PgBouncer in-cluster, RDS Proxy on AWS. The
	// read-only path: PgBouncer over the replicas in both (RDS Proxy's
	// read-only endpoints exist only for Aurora clusters).
	rwEndpoint := rw.endpoint
	if !rw.pooled {
		rwEndpoint, err = newPooler(ctx, name, "rw", a, rw, pw, parent)
		if err != nil {
			return nil, err
		}
	}
	roEndpoint, err := newPooler(ctx, name, "ro", a, rodb, pw, parent)
	if err != nil {
		return nil, err
	}
	dbURL := func(endpoint pulumi.StringOutput, tls bool) pulumi.StringOutput {
		return pulumi.All(endpoint, pw.app).ApplyT(func(v []any) string {
			mode := "disable"
			if tls {
				mode = "require"
			}
			u := url.URL{Scheme: "postgres", User: url.UserPassword(a.User, v[1].(string)), Host: v[0].(string), Path: "/" + a.Database,
				// exec mode: pgx sends each statement unnamed, which a
				// transaction-mode pooler can hand to any server connection.
				RawQuery: "sslmode=" + mode + "&default_query_exec_mode=exec"}
			return u.String()
		}).(pulumi.StringOutput)
	}
	if _, err := corev1.NewSecret(ctx, name+"-app-secret", &corev1.SecretArgs{
		Metadata: kube.Meta(AppSecretName(name), a.Namespace, kube.Labels(name, "database", "")),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			URLReadWriteKey: pulumi.ToSecret(dbURL(rwEndpoint, rw.clientTLS)).(pulumi.StringOutput),
			URLReadOnlyKey:  pulumi.ToSecret(dbURL(roEndpoint, false)).(pulumi.StringOutput),
			UsernameKey:     pulumi.String(a.User),
			PasswordKey:     pw.app,
		},
	}, parent); err != nil {
		return nil, wrap(name, "app secret", err)
	}

	p.ReadWriteEndpoint = rwEndpoint
	p.ReadOnlyEndpoint = roEndpoint
	p.ReadWriteURLSecretRef = pulumi.String(AppSecretName(name) + "/" + URLReadWriteKey).ToStringOutput()
	p.ReadOnlyURLSecretRef = pulumi.String(AppSecretName(name) + "/" + URLReadOnlyKey).ToStringOutput()
	p.DefaultPoolSize = pulumi.Int(a.Pooler.DefaultPoolSize).ToIntOutput()
	p.MaxClientConn = pulumi.Int(a.Pooler.MaxClientConn).ToIntOutput()
	p.MaxServerConnections = pulumi.Int(a.MaxServerConnections()).ToIntOutput()
	p.MaxConnections = pulumi.Int(a.MaxConnections()).ToIntOutput()
	if err := ctx.RegisterResourceOutputs(p, pulumi.Map{
		"readWriteEndpoint":     p.ReadWriteEndpoint,
		"readOnlyEndpoint":      p.ReadOnlyEndpoint,
		"readWriteUrlSecretRef": p.ReadWriteURLSecretRef,
		"readOnlyUrlSecretRef":  p.ReadOnlyURLSecretRef,
		"defaultPoolSize":       p.DefaultPoolSize,
		"maxClientConn":         p.MaxClientConn,
		"maxServerConnections":  p.MaxServerConnections,
		"maxConnections":        p.MaxConnections,
	}); err != nil {
		return nil, fmt.Errorf("postgres %s: outputs: %w", name, err)
	}
	return p, nil
}

type passwords struct {
	app, superuser, replication pulumi.StringOutput
}

// backend is where a pooler (or the client, when pooled already) connects.
type backend struct {
	// host is a PgBouncer host list ("a,b" balances new server connections).
	host     pulumi.StringOutput
	port     int
	endpoint pulumi.StringOutput
	// pooled: the endpoint pools already (RDS Proxy), no PgBouncer needed.
	pooled bool
	// serverTLS: PgBouncer must speak TLS to it (RDS); clientTLS: clients must.
	serverTLS, clientTLS bool
	// selector selects the database pods a pooler may reach (in-cluster).
	selector map[string]string
}
