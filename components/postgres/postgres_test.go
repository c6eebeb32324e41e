package postgres

import (
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	k8sresource "k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

func testArgs() Args {
	res := kube.Resources{
		CPURequest: k8sresource.MustParse("100m"), MemoryRequest: k8sresource.MustParse("512Mi"), MemoryLimit: k8sresource.MustParse("512Mi"),
	}
	return Args{
		Flavour:             FlavourInCluster,
		Namespace:           "ns",
		AppPassword:         pulumi.String("app-secret"),
		SuperuserPassword:   pulumi.String("super-secret"),
		ReplicationPassword: pulumi.String("repl-secret"),
		Replicas:            1,
		Pooler: PoolerArgs{
			Resources: kube.Resources{
				CPURequest: k8sresource.MustParse("50m"), MemoryRequest: k8sresource.MustParse("32Mi"), MemoryLimit: k8sresource.MustParse("64Mi"),
			},
			Replicas:    kube.Replicas{Min: 2, Max: 4},
			Autoscaling: kube.Autoscaling{CPUTargetPercent: 70, MemoryTargetPercent: 80},
			Shutdown:    kube.Shutdown{PreStopSeconds: 5, DrainSeconds: 20},
		},
		AllowFrom: []string{"users", "worker"},
		Resources: res,
		Storage:   k8sresource.MustParse("10Gi"),
	}
}

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
	case "aws:rds/instance:Instance":
		out["address"] = resource.NewStringProperty(args.Name + ".rds.amazonaws.com")
	case "aws:rds/proxy:Proxy":
		out["endpoint"] = resource.NewStringProperty(args.Name + ".proxy.rds.amazonaws.com")
		out["arn"] = resource.NewStringProperty("arn:aws:rds:proxy:" + args.Name)
	case "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup":
		out["name"] = resource.NewStringProperty("default")
	case "aws:kms/key:Key", "aws:secretsmanager/secret:Secret", "aws:iam/role:Role":
		out["arn"] = resource.NewStringProperty("arn:aws:test:" + args.Name)
	}
	return args.Name + "-id", out, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
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

func (m *mocks) named(typ, name string) resource.PropertyMap {
	for _, r := range m.byType(typ) {
		if r.Name == name {
			return r.Inputs
		}
	}
	return nil
}

func declare(t *testing.T, a Args) (*mocks, map[string]string) {
	t.Helper()
	m := &mocks{}
	got := make(chan map[string]string, 1)
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		p, err := NewPostgres(ctx, "postgres", &a)
		if err != nil {
			return err
		}
		pulumi.All(p.ReadWriteEndpoint, p.ReadOnlyEndpoint, p.ReadWriteURLSecretRef, p.ReadOnlyURLSecretRef).ApplyT(func(v []any) int {
			got <- map[string]string{"rw": v[0].(string), "ro": v[1].(string), "rwRef": v[2].(string), "roRef": v[3].(string)}
			return 0
		})
		return nil
	}, pulumi.WithMocks("scaleplane", "test", m))
	require.NoError(t, err, "declare postgres")
	return m, <-got
}

func TestRenderedConfsCarryTheReplicationAndBudgetRules(t *testing.T) {
	a := testArgs()
	c := a.Conf()
	conf := RenderConf(c)
	assert.Equal(t, 4*DefaultPoolSize+AdminConnections+SuperuserReservedConnections, c.MaxConnections, "max_connections is the rw poolers' budget plus reserves")
	for _, want := range []string{"wal_level = replica", "hot_standby = on", "max_connections = 93", "shared_buffers = 128MB", "password_encryption = 'scram-sha-256'"} {
		assert.Contains(t, conf, want+"\n", "postgresql.conf must contain %q", want)
	}
	hba := RenderHBA(c)
	assert.NotContains(t, hba, "trust", "no trust authentication")
	assert.NotContains(t, hba, " md5", "SCRAM only")
	assert.Contains(t, hba, "host    replication  replicator", "the replication user may stream")
	ini := RenderPgBouncerIni(a.PoolerConfig("postgres-rw.ns.svc.cluster.local", Port, false))
	for _, want := range []string{"pool_mode = transaction", "default_pool_size = 20", "max_db_connections = 20", "reserve_pool_size = 0", "max_client_conn = 1000",
		"app = host=postgres-rw.ns.svc.cluster.local port=5432 dbname=app"} {
		assert.Contains(t, ini, want+"\n", "pgbouncer.ini must contain %q", want)
	}
	start := RenderStartScript("/etc/postgresql/" + InitScriptName)
	for _, want := range []string{"--auth=scram-sha-256", "--pwfile=", "--locale=C.UTF-8", "listen_addresses=''", "sh /etc/postgresql/10-roles.sh", `exec postgres "$@"`} {
		assert.Contains(t, start, want, "start.sh must contain %q", want)
	}
	assert.NotContains(t, start, "$POSTGRES_PASSWORD\" --", "the password never goes on a command line")
	init := RenderInitScript(c)
	assert.Contains(t, init, ":'app_password'", "the password is a psql variable from the environment")
	assert.NotContains(t, init, "app-secret", "no password in the init script")
}

func TestValidateNamesTheProblem(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Args)
		want   string
	}{
		"no app password":   {func(a *Args) { a.AppPassword = nil }, "appPassword: required"},
		"too many replicas": {func(a *Args) { a.Replicas = 9 }, "replicas 9"},
		"no pooler max":     {func(a *Args) { a.Pooler.Replicas.Max = 0 }, "pooler.replicas 2..0"},
		"bad flavour":       {func(a *Args) { a.Flavour = "gcp" }, `flavour "gcp"`},
		"aws no prefix":     {func(a *Args) { a.Flavour = FlavourAWS }, "aws.namePrefix"},
		"user replicator":   {func(a *Args) { a.User = ReplicationUser }, `user "replicator"`},
	} {
		t.Run(name, func(t *testing.T) {
			a := testArgs()
			tc.mutate(&a)
			err := a.Validate("postgres")
			if assert.Error(t, err, "args must be refused") {
				assert.Contains(t, err.Error(), tc.want, "the error names the field")
			}
		})
	}
}

func TestInClusterDeclaresPrimaryReplicasAndPoolers(t *testing.T) {
	m, out := declare(t, testArgs())
	assert.Equal(t, "postgres-pgbouncer-rw.ns.svc.cluster.local:6432", out["rw"], "writes go through the rw pooler")
	assert.Equal(t, "postgres-pgbouncer-ro.ns.svc.cluster.local:6432", out["ro"], "reads go through the ro pooler")
	assert.Equal(t, "postgres-app/url-rw", out["rwRef"], "services read postgres-app/url-rw")
	assert.Equal(t, "postgres-app/url-ro", out["roRef"], "services read postgres-app/url-ro")

	sets := m.byType("kubernetes:apps/v1:StatefulSet")
	require.Len(t, sets, 2, "a primary and a replica StatefulSet")
	replica := m.named("kubernetes:apps/v1:StatefulSet", "postgres-replica-statefulset")
	require.NotNil(t, replica, "the replica StatefulSet")
	pod := replica["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()
	initCmd := pod["initContainers"].ArrayValue()[0].ObjectValue()["command"].ArrayValue()
	assert.Equal(t, "/etc/postgresql/basebackup.sh", initCmd[1].StringValue(), "replicas bootstrap with the base-backup script")
	primary := m.named("kubernetes:apps/v1:StatefulSet", "postgres-primary-statefulset")
	require.NotNil(t, primary, "the primary StatefulSet")
	pc := primary["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()
	var cmd []string
	for _, v := range pc["command"].ArrayValue() {
		cmd = append(cmd, v.StringValue())
	}
	// The component's start script, not an image's docker-entrypoint.sh:
	// the Debian image has none.
	assert.Equal(t, []string{"sh", "/etc/postgresql/start.sh"}, cmd, "the primary runs the rendered start script")
	assert.Equal(t, "-c", pc["args"].ArrayValue()[0].StringValue(), "its args are postgres' (the script execs postgres \"$@\")")
	for _, s := range sets {
		c := s.Inputs["spec"].ObjectValue()["template"].ObjectValue()["spec"].ObjectValue()["containers"].ArrayValue()[0].ObjectValue()
		sc := c["securityContext"].ObjectValue()
		assert.True(t, sc["readOnlyRootFilesystem"].BoolValue(), "%s: read-only root", s.Name)
		assert.False(t, sc["allowPrivilegeEscalation"].BoolValue(), "%s: no escalation", s.Name)
		assert.True(t, c["readinessProbe"].IsObject() && c["livenessProbe"].IsObject(), "%s: probes", s.Name)
	}
	deps := m.byType("kubernetes:apps/v1:Deployment")
	require.Len(t, deps, 2, "a rw and a ro PgBouncer")
	assert.Len(t, m.byType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"), 2, "each pooler autoscales")
	assert.Len(t, m.byType("kubernetes:policy/v1:PodDisruptionBudget"), 4, "primary, replicas and both poolers have a PDB")
	app := m.named("kubernetes:core/v1:Secret", "postgres-app-secret")
	require.NotNil(t, app, "the postgres-app Secret")
	assert.True(t, app["stringData"].ContainsSecrets(), "the URLs are secrets")
	for _, r := range m.byType("kubernetes:core/v1:ConfigMap") {
		for k, v := range r.Inputs["data"].ObjectValue() {
			if v.IsString() {
				for _, pw := range []string{"app-secret", "super-secret", "repl-secret"} {
					assert.NotContains(t, v.StringValue(), pw, "%s/%s holds no password", r.Name, k)
				}
			}
		}
	}
}

func TestAWSIsEncryptedPrivateAndProxied(t *testing.T) {
	a := testArgs()
	a.Flavour = FlavourAWS
	a.Replicas = 2
	a.AWS = AWSArgs{
		NamePrefix: "scaleplane-prod", VpcID: pulumi.String("vpc-1"),
		SubnetIDs:              pulumi.ToStringArray([]string{"subnet-a", "subnet-b", "subnet-c"}),
		AllowedSecurityGroupID: pulumi.String("sg-nodes"), MultiAZ: true, DeletionProtection: true,
	}
	m, out := declare(t, a)
	assert.Equal(t, "postgres-proxy.proxy.rds.amazonaws.com:5432", out["rw"], "writes go through the RDS Proxy")
	assert.Equal(t, "postgres-pgbouncer-ro.ns.svc.cluster.local:6432", out["ro"], "reads go through PgBouncer over the replicas")
	insts := m.byType("aws:rds/instance:Instance")
	require.Len(t, insts, 3, "a primary and two replicas")
	primary := m.named("aws:rds/instance:Instance", "postgres-primary")
	for _, k := range []string{"storageEncrypted", "multiAz", "deletionProtection"} {
		assert.True(t, primary[resource.PropertyKey(k)].BoolValue(), "primary %s in prod", k)
	}
	assert.True(t, primary["password"].ContainsSecrets(), "the master password is a secret")
	for _, i := range insts {
		assert.False(t, i.Inputs["publiclyAccessible"].BoolValue(), "%s is private", i.Name)
		assert.True(t, i.Inputs["storageEncrypted"].BoolValue(), "%s is encrypted", i.Name)
	}
	replica := m.named("aws:rds/instance:Instance", "postgres-replica-1")
	assert.Equal(t, "scaleplane-prod-postgres", replica["replicateSourceDb"].StringValue(), "replicas follow the primary")
	proxy := m.named("aws:rds/proxy:Proxy", "postgres-proxy")
	require.NotNil(t, proxy, "an RDS Proxy")
	assert.True(t, proxy["requireTls"].BoolValue(), "the proxy requires TLS")
	assert.Len(t, m.byType("aws:rds/proxyTarget:ProxyTarget"), 1, "the proxy targets the primary")
	ini := m.named("kubernetes:core/v1:ConfigMap", "postgres-pgbouncer-ro-config")["data"].ObjectValue()[IniKey].StringValue()
	assert.Contains(t, ini, "host=postgres-replica-0.rds.amazonaws.com,postgres-replica-1.rds.amazonaws.com", "the ro pooler balances over the replicas")
	assert.Contains(t, ini, "server_tls_sslmode = require", "TLS to RDS")
	assert.Empty(t, m.byType("kubernetes:apps/v1:StatefulSet"), "no in-cluster database in aws")
	assert.True(t, m.named("aws:secretsmanager/secretVersion:SecretVersion", "postgres-credentials-version")["secretString"].ContainsSecrets(),
		"the proxy's credentials are a secret")
}
