// Package postgres declares the relational tier as one component with two
// flavours: in-cluster (a primary StatefulSet, streaming read replicas
// bootstrapped with pg_basebackup -R, and PgBouncer in transaction mode in
// front of each) and aws (RDS primary and read replicas, RDS Proxy for
// writes). Both expose the same outputs: a read-write and a read-only URL
// through a pooler, and the pool sizes, so the connection budget can be
// checked.
package postgres

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// The flavours a Postgres tier can take.
const (
	FlavourInCluster = "in-cluster"
	FlavourAWS       = "aws"
)

// Defaults of the knobs a caller may leave at zero.
const (
	// DefaultImage is the PostgreSQL major the real-server tests run (15).
	DefaultImage = "postgres:15.10"
	// DefaultPgBouncerImage is a PgBouncer build with a pgbouncer binary on PATH.
	DefaultPgBouncerImage = "ghcr.io/cloudnative-pg/pgbouncer:1.23.0"
	// DefaultDatabase and DefaultUser are the application's database and role.
	DefaultDatabase = "app"
	DefaultUser     = "app"
	// ReplicationUser streams WAL to the replicas and takes their base backups.
	ReplicationUser = "replicator"
	// DefaultPoolSize is the server connections one PgBouncer pod opens per
	// database and user: in transaction mode twenty connections serve
	// hundreds of clients, since a client holds one only inside a transaction.
	DefaultPoolSize = 20
	// DefaultMaxClientConn is how many clients one PgBouncer pod accepts.
	DefaultMaxClientConn = 1000
	// AdminConnections are kept beyond the poolers' budget for migrations,
	// psql and monitoring, so a full pool never locks the operator out.
	AdminConnections = 10
	// SuperuserReservedConnections is PostgreSQL's own reserve for superusers.
	SuperuserReservedConnections = 3
	// Port is PostgreSQL's port; PoolerPort is PgBouncer's.
	Port       = 5432
	PoolerPort = 6432
	// DefaultEngineVersion is RDS's PostgreSQL release.
	DefaultEngineVersion = "16.4"
	// DefaultInstanceClass is a small Graviton instance.
	DefaultInstanceClass = "db.t4g.medium"
)

// PoolerArgs size the PgBouncer Deployments (one read-write, one read-only).
type PoolerArgs struct {
	// Image is the PgBouncer image; empty means DefaultPgBouncerImage.
	Image     string
	Resources kube.Resources
	Replicas  kube.Replicas
	kube.Autoscaling
	// Shutdown gives the preStop sleep, so clients move to other pods
	// before PgBouncer stops.
	kube.Shutdown
	// DefaultPoolSize is default_pool_size; 0 means DefaultPoolSize. It is
	// also max_db_connections, so a pod never opens more than this many
	// server connections whatever the load.
	DefaultPoolSize int
	// MaxClientConn is max_client_conn; 0 means DefaultMaxClientConn.
	MaxClientConn int
}

// AWSArgs are the inputs of the aws flavour. The network comes from the
// network component: until it lands, the stack passes config knobs.
type AWSArgs struct {
	// NamePrefix makes the RDS identifiers unique in the account and
	// region ("scaleplane-prod" gives "scaleplane-prod-postgres").
	NamePrefix             string
	VpcID                  pulumi.StringInput
	SubnetIDs              pulumi.StringArrayInput
	AllowedSecurityGroupID pulumi.StringInput
	// InstanceClass is the class of the primary and the replicas.
	InstanceClass string
	// EngineVersion is RDS's PostgreSQL version; empty means DefaultEngineVersion.
	EngineVersion string
	// AllocatedStorageGiB is the initial gp3 volume; storage autoscales to 5x.
	AllocatedStorageGiB int
	// MultiAZ keeps a synchronous standby in another zone (prod).
	MultiAZ bool
	// DeletionProtection refuses deleting the primary (prod).
	DeletionProtection bool
	// BackupRetentionDays keeps automated backups (1..35).
	BackupRetentionDays int
}

// Args configure a Postgres tier.
type Args struct {
	// Flavour is FlavourInCluster or FlavourAWS.
	Flavour string
	// Namespace receives the Kubernetes objects (the application Secret in both flavours).
	Namespace string
	// Database and User are the application's; empty means DefaultDatabase/DefaultUser.
	Database string
	User     string
	// AppPassword, SuperuserPassword and ReplicationPassword are wrapped as
	// Pulumi secrets. aws uses AppPassword for the master user and ignores the others.
	AppPassword         pulumi.StringInput
	SuperuserPassword   pulumi.StringInput
	ReplicationPassword pulumi.StringInput
	// Replicas is the number of streaming read replicas (0..5).
	Replicas int
	// Pooler sizes the PgBouncer Deployments.
	Pooler PoolerArgs
	// AllowFrom lists the app.kubernetes.io/name of the workloads that may
	// reach the poolers.
	AllowFrom []string

	// Image is the in-cluster PostgreSQL image; empty means DefaultImage.
	Image              string
	Resources          kube.Resources
	Storage            resource.Quantity
	StorageClass       string
	ZoneSpreadRequired bool

	// AWS holds the aws flavour's inputs.
	AWS AWSArgs
}

var sqlName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func (a Args) withDefaults() Args {
	if a.Database == "" {
		a.Database = DefaultDatabase
	}
	if a.User == "" {
		a.User = DefaultUser
	}
	if a.Image == "" {
		a.Image = DefaultImage
	}
	if a.Pooler.Image == "" {
		a.Pooler.Image = DefaultPgBouncerImage
	}
	if a.Pooler.DefaultPoolSize == 0 {
		a.Pooler.DefaultPoolSize = DefaultPoolSize
	}
	if a.Pooler.MaxClientConn == 0 {
		a.Pooler.MaxClientConn = DefaultMaxClientConn
	}
	if a.AWS.EngineVersion == "" {
		a.AWS.EngineVersion = DefaultEngineVersion
	}
	if a.AWS.InstanceClass == "" {
		a.AWS.InstanceClass = DefaultInstanceClass
	}
	if a.AWS.AllocatedStorageGiB == 0 {
		a.AWS.AllocatedStorageGiB = 20
	}
	if a.AWS.BackupRetentionDays == 0 {
		a.AWS.BackupRetentionDays = 7
	}
	return a
}

// MaxServerConnections is the most server connections the poolers of one
// kind (read-write or read-only) can open together: every pod at the HPA
// maximum, each at its pool size.
func (a Args) MaxServerConnections() int {
	d := a.withDefaults()
	return d.Pooler.Replicas.Max * d.Pooler.DefaultPoolSize
}

// MaxConnections is max_connections: the poolers' budget plus the admin
// and superuser reserves. Replicas get the same value (a hot standby
// refuses to start with fewer than its primary), and the read-only poolers
// may all land on one replica, so one budget fits both.
func (a Args) MaxConnections() int {
	return a.MaxServerConnections() + AdminConnections + SuperuserReservedConnections
}

// Validate reports every problem in the arguments before any resource is declared.
func (a *Args) Validate(name string) error {
	d := a.withDefaults()
	var errs []error
	check := func(ok bool, format string, v ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, v...))
		}
	}
	errs = append(errs, kube.CheckName(name, 30), kube.CheckLabel("namespace", a.Namespace))
	check(sqlName.MatchString(d.Database), "database %q: must be a lower-case SQL identifier", d.Database)
	check(sqlName.MatchString(d.User) && d.User != ReplicationUser, "user %q: must be a lower-case SQL identifier other than %s", d.User, ReplicationUser)
	check(a.AppPassword != nil, "appPassword: required (a Pulumi secret)")
	check(a.Replicas >= 0 && a.Replicas <= 5, "replicas %d: must be in 0..5", a.Replicas)
	check(d.Pooler.DefaultPoolSize >= 1 && d.Pooler.DefaultPoolSize <= 500, "pooler.defaultPoolSize %d: must be in 1..500", d.Pooler.DefaultPoolSize)
	check(d.Pooler.MaxClientConn >= d.Pooler.DefaultPoolSize, "pooler.maxClientConn %d: must be at least defaultPoolSize (%d)", d.Pooler.MaxClientConn, d.Pooler.DefaultPoolSize)
	check(d.Pooler.Replicas.Min >= 1 && d.Pooler.Replicas.Max >= d.Pooler.Replicas.Min, "pooler.replicas %d..%d: need 1 <= min <= max", d.Pooler.Replicas.Min, d.Pooler.Replicas.Max)
	check(d.Pooler.CPUTargetPercent > 0 && d.Pooler.MemoryTargetPercent > 0, "pooler.autoscaling: cpu and memory targets are required")
	errs = append(errs, kube.CheckImage("pooler.image", d.Pooler.Image))
	if err := d.Pooler.Resources.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("pooler.%w", err))
	}
	for _, from := range a.AllowFrom {
		errs = append(errs, kube.CheckLabel("allowFrom", from))
	}
	switch a.Flavour {
	case FlavourInCluster:
		check(a.SuperuserPassword != nil, "superuserPassword: required in-cluster")
		check(a.ReplicationPassword != nil, "replicationPassword: required in-cluster")
		errs = append(errs, kube.CheckImage("image", d.Image))
		check(a.Resources.MemoryLimit.Sign() > 0, "resources.memoryLimit: required, shared_buffers derives from it")
		if err := a.Resources.Validate(); err != nil {
			errs = append(errs, err)
		}
		check(a.Storage.Sign() > 0, "storage %q: must be positive", a.Storage.String())
	case FlavourAWS:
		check(kube.DNSLabel(a.AWS.NamePrefix), "aws.namePrefix %q: must be a DNS label (RDS identifiers are unique per region)", a.AWS.NamePrefix)
		check(a.AWS.VpcID != nil, "aws.vpcId: required")
		check(a.AWS.SubnetIDs != nil, "aws.subnetIds: required")
		check(a.AWS.AllowedSecurityGroupID != nil, "aws.allowedSecurityGroupId: required, it is the only source admitted")
		check(d.AWS.BackupRetentionDays >= 1 && d.AWS.BackupRetentionDays <= 35, "aws.backupRetentionDays %d: must be in 1..35", d.AWS.BackupRetentionDays)
		check(d.AWS.AllocatedStorageGiB >= 20, "aws.allocatedStorageGiB %d: must be at least 20", d.AWS.AllocatedStorageGiB)
	default:
		check(false, "flavour %q: must be %s or %s", a.Flavour, FlavourInCluster, FlavourAWS)
	}
	return errors.Join(errs...)
}

// Conf is the postgresql.conf the in-cluster flavour renders.
func (a Args) Conf() Conf {
	d := a.withDefaults()
	mem := d.Resources.MemoryLimit.Value() / (1 << 20)
	return Conf{
		MaxConnections:     a.MaxConnections(),
		SharedBuffersMB:    max(16, mem/4),
		EffectiveCacheMB:   max(32, mem*3/4),
		MaintenanceWorkMB:  max(16, mem/16),
		WorkMemKB:          max(1024, mem*1024/4/int64(max(1, a.MaxConnections()))),
		MaxWalSenders:      a.Replicas + 4,
		WalKeepSizeMB:      512,
		ReplicationUser:    ReplicationUser,
		ApplicationDB:      d.Database,
		ApplicationUser:    d.User,
		StatementTimeoutMS: 30000,
	}
}

// PoolerConfig is the pgbouncer.ini of one pooler in front of backend.
func (a Args) PoolerConfig(backendHost string, backendPort int, serverTLS bool) PgBouncer {
	d := a.withDefaults()
	return PgBouncer{
		Database:        d.Database,
		BackendHost:     backendHost,
		BackendPort:     backendPort,
		ListenPort:      PoolerPort,
		DefaultPoolSize: d.Pooler.DefaultPoolSize,
		MaxClientConn:   d.Pooler.MaxClientConn,
		AuthFile:        userlistDir + "/" + UserlistKey,
		ServerTLS:       serverTLS,
	}
}
