package postgres

import (
	"fmt"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// ConfigDir is where the database pods mount the ConfigMap (ConfigFiles).
const ConfigDir = "/etc/postgresql"

// Paths inside the database pods.
const (
	configDir = ConfigDir
	dataMount = "/var/lib/postgresql/data"
	// pgData is a subdirectory of the volume: initdb wants a 0700
	// directory of its own, which a volume's root may not be.
	pgData     = dataMount + "/pgdata"
	runDir     = "/var/run/postgresql"
	configFile = "postgresql.conf"
	hbaFile    = "pg_hba.conf"
)

// Keys of the credentials Secret ("<name>-credentials"). SuperuserKey is
// exported for operators and tests that log in as postgres.
const (
	SuperuserKey   = "superuser-password"
	replicationKey = "replication-password"
	appKey         = "app-password"
)

// newInCluster declares the primary and replica StatefulSets with their
// Services, ConfigMap, credentials, PDBs and NetworkPolicies, and returns
// the backends the poolers front.
func newInCluster(ctx *pulumi.Context, name string, a Args, pw passwords, parent pulumi.ResourceOption) (backend, backend, error) {
	ns := a.Namespace
	l := kube.Labels(name, "database", "")
	creds := name + "-credentials"
	if _, err := corev1.NewSecret(ctx, name+"-credentials-secret", &corev1.SecretArgs{
		Metadata: kube.Meta(creds, ns, l),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{
			SuperuserKey:   pw.superuser,
			replicationKey: pw.replication,
			appKey:         pw.app,
		},
	}, parent); err != nil {
		return backend{}, backend{}, wrap(name, "credentials secret", err)
	}
	primaryName, replicaName := name+"-primary", name+"-replica"
	primaryHost := fmt.Sprintf("%s-0.%s.%s.svc.cluster.local", primaryName, primaryName, ns)
	files := a.ConfigFiles(primaryHost, Port)
	cm, err := corev1.NewConfigMap(ctx, name+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(name, ns, l),
		Data:     pulumi.ToStringMap(files),
	}, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "config map", err)
	}
	sum := kube.ConfigChecksum(files[configFile], files[hbaFile])
	serverArgs := append([]string{"postgres"}, ServerArgs()...)
	rwPooler := kube.SelectorLabels(name + "-pgbouncer-rw")
	roPooler := kube.SelectorLabels(name + "-pgbouncer-ro")
	primarySel := kube.SelectorLabels(primaryName)
	replicaSel := kube.SelectorLabels(replicaName)

	primary := dbSet{
		name: primaryName, selector: primarySel, replicas: 1, image: a.Image, a: a, cm: cm, checksum: sum,
		// The component's own start script, not an image's entrypoint:
		// it initialises an empty volume, then execs postgres serverArgs.
		command: []string{"sh", configDir + "/" + StartScriptName}, args: serverArgs[1:],
		env: corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String("PGDATA"), Value: pulumi.String(pgData)},
			secretEnv("POSTGRES_PASSWORD", creds, SuperuserKey),
			secretEnv("REPLICATION_PASSWORD", creds, replicationKey),
			secretEnv("APP_PASSWORD", creds, appKey),
		},
	}
	if err := primary.declare(ctx, name, "primary", parent); err != nil {
		return backend{}, backend{}, err
	}
	// The primary admits its poolers and the replicas (streaming, base backups).
	if err := newIngressPolicy(ctx, name+"-primary-networkpolicy", primaryName, ns, l, primarySel, Port,
		[]map[string]string{rwPooler, roPooler, replicaSel}, parent); err != nil {
		return backend{}, backend{}, wrap(name, "primary network policy", err)
	}
	rwSvc, err := clusterIPService(ctx, name+"-rw-service", name+"-rw", ns, l, primarySel, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "rw service", err)
	}
	rw := backend{
		host:     pulumi.Sprintf("%s.%s.svc.cluster.local", rwSvc.Metadata.Name().Elem(), ns),
		port:     Port,
		selector: primarySel,
	}
	if a.Replicas == 0 {
		// Without replicas the read-only pooler reads from the primary.
		return rw, rw, nil
	}
	replica := dbSet{
		name: replicaName, selector: replicaSel, replicas: a.Replicas, image: a.Image, a: a, cm: cm, checksum: sum,
		// start.sh too: the base backup leaves PG_VERSION, so it only takes
		// the volume's lock (a force-deleted replica's replacement waits)
		// and starts the standby.
		command: []string{"sh", configDir + "/" + StartScriptName}, args: serverArgs[1:],
		env: corev1.EnvVarArray{
			corev1.EnvVarArgs{Name: pulumi.String("PGDATA"), Value: pulumi.String(pgData)},
			// The WAL receiver's libpq reads it when primary_conninfo has none.
			secretEnv("PGPASSWORD", creds, replicationKey),
		},
		basebackup: true,
	}
	if err := replica.declare(ctx, name, "replica", parent); err != nil {
		return backend{}, backend{}, err
	}
	if err := newIngressPolicy(ctx, name+"-replica-networkpolicy", replicaName, ns, l, replicaSel, Port,
		[]map[string]string{roPooler}, parent); err != nil {
		return backend{}, backend{}, wrap(name, "replica network policy", err)
	}
	roSvc, err := clusterIPService(ctx, name+"-ro-service", name+"-ro", ns, l, replicaSel, parent)
	if err != nil {
		return backend{}, backend{}, wrap(name, "ro service", err)
	}
	ro := backend{
		host:     pulumi.Sprintf("%s.%s.svc.cluster.local", roSvc.Metadata.Name().Elem(), ns),
		port:     Port,
		selector: replicaSel,
	}
	return rw, ro, nil
}

// ConfigFiles are the database pods' ConfigMap, mounted at ConfigDir:
// postgresql.conf, pg_hba.conf, the primary's start and init scripts and
// the replicas' base backup script (of the primary at host:port).
func (a Args) ConfigFiles(primaryHost string, primaryPort int) map[string]string {
	conf := a.Conf()
	return map[string]string{
		configFile:           RenderConf(conf),
		hbaFile:              RenderHBA(conf),
		InitScriptName:       RenderInitScript(conf),
		StartScriptName:      RenderStartScript(configDir + "/" + InitScriptName),
		BasebackupScriptName: RenderBasebackupScript(primaryHost, primaryPort, conf),
	}
}

// ServerArgs are postgres' arguments in both roles (after the start
// script on the primary): the rendered config files from ConfigDir.
func ServerArgs() []string {
	return []string{"-c", "config_file=" + configDir + "/" + configFile, "-c", "hba_file=" + configDir + "/" + hbaFile}
}

func clusterIPService(ctx *pulumi.Context, resName, objName, ns string, l, selector map[string]string, parent pulumi.ResourceOption) (*corev1.Service, error) {
	return corev1.NewService(ctx, resName, &corev1.ServiceArgs{
		Metadata: kube.Meta(objName, ns, l),
		Spec: &corev1.ServiceSpecArgs{
			Selector: pulumi.ToStringMap(selector),
			Ports: corev1.ServicePortArray{corev1.ServicePortArgs{
				Name: pulumi.String("postgres"), Port: pulumi.Int(Port), TargetPort: pulumi.String("postgres"), Protocol: pulumi.String("TCP"),
			}},
			SessionAffinity: pulumi.String("None"),
		},
	}, parent)
}

// dbSet is one StatefulSet of database pods (the primary or the replicas).
type dbSet struct {
	name       string
	selector   map[string]string
	replicas   int
	image      string
	a          Args
	cm         *corev1.ConfigMap
	checksum   string
	command    []string
	args       []string
	env        corev1.EnvVarArray
	basebackup bool
}

func (s dbSet) declare(ctx *pulumi.Context, name, role string, parent pulumi.ResourceOption) error {
	a, ns := s.a, s.a.Namespace
	l := kube.Labels(s.name, "database", "")
	l["scaleplane.dev/postgres-role"] = role
	if _, err := corev1.NewService(ctx, name+"-"+role+"-headless-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(s.name, ns, l),
		Spec: &corev1.ServiceSpecArgs{
			ClusterIP: pulumi.String("None"),
			Selector:  pulumi.ToStringMap(s.selector),
			Ports: corev1.ServicePortArray{corev1.ServicePortArgs{
				Name: pulumi.String("postgres"), Port: pulumi.Int(Port), TargetPort: pulumi.String("postgres"), Protocol: pulumi.String("TCP"),
			}},
		},
	}, parent); err != nil {
		return wrap(name, role+" headless service", err)
	}
	cmName := s.cm.Metadata.Name().Elem()
	volumes := corev1.VolumeArray{
		corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cmName}},
		corev1.VolumeArgs{Name: pulumi.String("run"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("16Mi")}},
		corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("256Mi")}},
		// Parallel queries and dynamic shared memory live in /dev/shm,
		// which a container gets only 64 MiB of by default.
		corev1.VolumeArgs{Name: pulumi.String("shm"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{Medium: pulumi.String("Memory"), SizeLimit: pulumi.String("256Mi")}},
	}
	mounts := corev1.VolumeMountArray{
		corev1.VolumeMountArgs{Name: pulumi.String("data"), MountPath: pulumi.String(dataMount)},
		corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(configDir), ReadOnly: pulumi.Bool(true)},
		corev1.VolumeMountArgs{Name: pulumi.String("run"), MountPath: pulumi.String(runDir)},
		corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
		corev1.VolumeMountArgs{Name: pulumi.String("shm"), MountPath: pulumi.String("/dev/shm")},
	}
	isReady := func(period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			Exec:          &corev1.ExecActionArgs{Command: pulumi.ToStringArray([]string{"pg_isready", "-h", "127.0.0.1", "-p", fmt.Sprint(Port), "-q"})},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(3), FailureThreshold: pulumi.Int(failures),
		}
	}
	var inits corev1.ContainerArray
	if s.basebackup {
		inits = corev1.ContainerArray{corev1.ContainerArgs{
			Name:            pulumi.String("basebackup"),
			Image:           pulumi.String(s.image),
			ImagePullPolicy: pulumi.String("IfNotPresent"),
			Command:         pulumi.ToStringArray([]string{"sh", configDir + "/" + BasebackupScriptName}),
			Env:             s.env,
			Resources:       a.Resources.Requirements(),
			SecurityContext: kube.RestrictedContainerSecurity(),
			VolumeMounts:    mounts,
		}}
	}
	affinity, spread := kube.Placement(s.selector, a.ZoneSpreadRequired)
	claim := &corev1.PersistentVolumeClaimSpecArgs{
		AccessModes: pulumi.ToStringArray([]string{"ReadWriteOnce"}),
		Resources:   &corev1.VolumeResourceRequirementsArgs{Requests: pulumi.StringMap{"storage": pulumi.String(a.Storage.String())}},
	}
	if a.StorageClass != "" {
		claim.StorageClassName = pulumi.String(a.StorageClass)
	}
	if _, err := appsv1.NewStatefulSet(ctx, name+"-"+role+"-statefulset", &appsv1.StatefulSetArgs{
		Metadata: kube.Meta(s.name, ns, l),
		Spec: &appsv1.StatefulSetSpecArgs{
			ServiceName:         pulumi.String(s.name),
			Replicas:            pulumi.Int(s.replicas),
			PodManagementPolicy: pulumi.String("Parallel"),
			Selector:            &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(s.selector)},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels:      pulumi.ToStringMap(l),
					Annotations: pulumi.StringMap{kube.ConfigChecksumAnnotation: pulumi.String(s.checksum)},
				},
				Spec: &corev1.PodSpecArgs{
					AutomountServiceAccountToken: pulumi.Bool(false),
					EnableServiceLinks:           pulumi.Bool(false),
					// A fast shutdown checkpoints first; give it time.
					TerminationGracePeriodSeconds: pulumi.Int(60),
					SecurityContext:               kube.RestrictedPodSecurity(postgresUID),
					Affinity:                      affinity,
					TopologySpreadConstraints:     spread,
					Volumes:                       volumes,
					InitContainers:                inits,
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("postgres"),
						Image:           pulumi.String(s.image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Command:         pulumi.ToStringArray(s.command),
						Args:            pulumi.ToStringArray(s.args),
						Env:             s.env,
						Ports: corev1.ContainerPortArray{corev1.ContainerPortArgs{
							Name: pulumi.String("postgres"), ContainerPort: pulumi.Int(Port), Protocol: pulumi.String("TCP"),
						}},
						Resources:       a.Resources.Requirements(),
						StartupProbe:    isReady(5, 120),
						LivenessProbe:   isReady(10, 6),
						ReadinessProbe:  isReady(5, 2),
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts:    mounts,
					}},
				},
			},
			VolumeClaimTemplates: corev1.PersistentVolumeClaimTypeArray{corev1.PersistentVolumeClaimTypeArgs{
				Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("data"), Labels: pulumi.ToStringMap(l)},
				Spec:     claim,
			}},
		},
	}, parent); err != nil {
		return wrap(name, role+" stateful set", err)
	}
	// One pod at a time. For the single primary this still lets a node
	// drain proceed (a brief write outage the poolers ride out with
	// server_login_retry), instead of blocking it forever.
	if _, err := kube.NewPDB(ctx, name+"-"+role+"-pdb", kube.Meta(s.name, ns, l), s.selector, parent); err != nil {
		return wrap(name, role+" disruption budget", err)
	}
	return nil
}
