package postgres

import (
	"strings"

	appsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apps/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/components/internal/kube"
)

// Paths inside the PgBouncer pods.
const (
	poolerConfigDir = "/etc/pgbouncer"
	userlistDir     = "/etc/pgbouncer/userlist"
	// UserlistKey is the auth_file's name in the userlist Secret.
	UserlistKey = "userlist.txt"
	// IniKey is pgbouncer.ini's name in the pooler's ConfigMap.
	IniKey = "pgbouncer.ini"
)

// Userlist renders PgBouncer's auth_file line for one user.
func Userlist(user, password string) string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(user) + " " + q(password) + "\n"
}

// newPooler declares one PgBouncer Deployment (role rw or ro) in front of
// b: its ConfigMap, userlist Secret, Service, HPA, PDB and NetworkPolicy.
// It is not a microservice because PgBouncer answers no HTTP or gRPC
// probe: its probes are TCP checks on the pool port.
func newPooler(ctx *pulumi.Context, name, role string, a Args, b backend, pw passwords, parent pulumi.ResourceOption) (pulumi.StringOutput, error) {
	ns := a.Namespace
	objName := name + "-pgbouncer-" + role
	selector := kube.SelectorLabels(objName)
	l := kube.Labels(objName, "database-pooler", "")
	ini := b.host.ApplyT(func(host string) string {
		return RenderPgBouncerIni(a.PoolerConfig(host, b.port, b.serverTLS))
	}).(pulumi.StringOutput)
	cm, err := corev1.NewConfigMap(ctx, name+"-pgbouncer-"+role+"-config", &corev1.ConfigMapArgs{
		Metadata: kube.Meta(objName, ns, l),
		Data:     pulumi.StringMap{IniKey: ini},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler config map", err)
	}
	users, err := corev1.NewSecret(ctx, name+"-pgbouncer-"+role+"-userlist", &corev1.SecretArgs{
		Metadata: kube.Meta(objName+"-userlist", ns, l),
		Type:     pulumi.String("Opaque"),
		StringData: pulumi.StringMap{UserlistKey: pw.app.ApplyT(func(p string) string {
			return Userlist(a.User, p)
		}).(pulumi.StringOutput)},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler userlist", err)
	}
	affinity, spread := kube.Placement(selector, a.ZoneSpreadRequired)
	p := a.Pooler
	probe := func(period, failures int) *corev1.ProbeArgs {
		return &corev1.ProbeArgs{
			TcpSocket:     &corev1.TCPSocketActionArgs{Port: pulumi.String("pgbouncer")},
			PeriodSeconds: pulumi.Int(period), TimeoutSeconds: pulumi.Int(2), FailureThreshold: pulumi.Int(failures),
		}
	}
	dep, err := appsv1.NewDeployment(ctx, name+"-pgbouncer-"+role+"-deployment", &appsv1.DeploymentArgs{
		Metadata: kube.Meta(objName, ns, l),
		Spec: &appsv1.DeploymentSpecArgs{
			// No replicas: the HPA owns the count (it starts at minReplicas),
			// and a value here would reset it on every update.
			RevisionHistoryLimit: pulumi.Int(5),
			Selector:             &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
			Strategy: &appsv1.DeploymentStrategyArgs{
				Type:          pulumi.String("RollingUpdate"),
				RollingUpdate: &appsv1.RollingUpdateDeploymentArgs{MaxSurge: pulumi.String("25%"), MaxUnavailable: pulumi.Int(0)},
			},
			Template: &corev1.PodTemplateSpecArgs{
				Metadata: &metav1.ObjectMetaArgs{
					Labels: pulumi.ToStringMap(l),
					Annotations: pulumi.StringMap{kube.ConfigChecksumAnnotation: ini.ApplyT(func(s string) string {
						return kube.ConfigChecksum(s)
					}).(pulumi.StringOutput)},
				},
				Spec: &corev1.PodSpecArgs{
					AutomountServiceAccountToken:  pulumi.Bool(false),
					EnableServiceLinks:            pulumi.Bool(false),
					TerminationGracePeriodSeconds: pulumi.Int(p.GracePeriodSeconds()),
					SecurityContext:               kube.RestrictedPodSecurity(poolerUID),
					Affinity:                      affinity,
					TopologySpreadConstraints:     spread,
					Volumes: corev1.VolumeArray{
						corev1.VolumeArgs{Name: pulumi.String("config"), ConfigMap: &corev1.ConfigMapVolumeSourceArgs{Name: cm.Metadata.Name().Elem()}},
						corev1.VolumeArgs{Name: pulumi.String("userlist"), Secret: &corev1.SecretVolumeSourceArgs{SecretName: users.Metadata.Name().Elem()}},
						corev1.VolumeArgs{Name: pulumi.String("tmp"), EmptyDir: &corev1.EmptyDirVolumeSourceArgs{SizeLimit: pulumi.String("16Mi")}},
					},
					Containers: corev1.ContainerArray{corev1.ContainerArgs{
						Name:            pulumi.String("pgbouncer"),
						Image:           pulumi.String(p.Image),
						ImagePullPolicy: pulumi.String("IfNotPresent"),
						Command:         pulumi.ToStringArray([]string{"pgbouncer", poolerConfigDir + "/" + IniKey}),
						Ports: corev1.ContainerPortArray{corev1.ContainerPortArgs{
							Name: pulumi.String("pgbouncer"), ContainerPort: pulumi.Int(PoolerPort), Protocol: pulumi.String("TCP"),
						}},
						Resources:      p.Resources.Requirements(),
						StartupProbe:   probe(2, 30),
						LivenessProbe:  probe(10, 3),
						ReadinessProbe: probe(5, 2),
						Lifecycle: &corev1.LifecycleArgs{PreStop: &corev1.LifecycleHandlerArgs{
							// Endpoints stop routing new clients before SIGTERM.
							Sleep: &corev1.SleepActionArgs{Seconds: pulumi.Int(p.PreStopSeconds)},
						}},
						SecurityContext: kube.RestrictedContainerSecurity(),
						VolumeMounts: corev1.VolumeMountArray{
							corev1.VolumeMountArgs{Name: pulumi.String("config"), MountPath: pulumi.String(poolerConfigDir), ReadOnly: pulumi.Bool(true)},
							corev1.VolumeMountArgs{Name: pulumi.String("userlist"), MountPath: pulumi.String(userlistDir), ReadOnly: pulumi.Bool(true)},
							corev1.VolumeMountArgs{Name: pulumi.String("tmp"), MountPath: pulumi.String("/tmp")},
						},
					}},
				},
			},
		},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler deployment", err)
	}
	svc, err := corev1.NewService(ctx, name+"-pgbouncer-"+role+"-service", &corev1.ServiceArgs{
		Metadata: kube.Meta(objName, ns, l),
		Spec: &corev1.ServiceSpecArgs{
			Selector: pulumi.ToStringMap(selector),
			Ports: corev1.ServicePortArray{corev1.ServicePortArgs{
				Name: pulumi.String("pgbouncer"), Port: pulumi.Int(PoolerPort), TargetPort: pulumi.String("pgbouncer"), Protocol: pulumi.String("TCP"),
			}},
			SessionAffinity: pulumi.String("None"),
		},
	}, parent)
	if err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler service", err)
	}
	// maxReplicas bounds the server connections: the database's
	// max_connections is computed from it.
	if _, err := kube.NewHPA(ctx, name+"-pgbouncer-"+role+"-hpa", kube.Meta(objName, ns, l), dep.Metadata.Name().Elem(),
		p.Replicas, p.Autoscaling, p.Stabilization(), parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler autoscaler", err)
	}
	if _, err := kube.NewPDB(ctx, name+"-pgbouncer-"+role+"-pdb", kube.Meta(objName, ns, l), selector, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler disruption budget", err)
	}
	var from []map[string]string
	for _, caller := range a.AllowFrom {
		from = append(from, map[string]string{"app.kubernetes.io/name": caller})
	}
	if err := newIngressPolicy(ctx, name+"-pgbouncer-"+role+"-networkpolicy", objName, ns, l, selector, PoolerPort, from, parent); err != nil {
		return pulumi.StringOutput{}, wrap(name, role+" pooler network policy", err)
	}
	return pulumi.Sprintf("%s.%s.svc.cluster.local:%d", svc.Metadata.Name().Elem(), ns, PoolerPort), nil
}
