package kube

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// NonRootUID is the distroless "nonroot" user; images built by scaleplane
// use it too, so it is the uid of every pod whose image names no user.
const NonRootUID = 65532

// RestrictedPodSecurity is the pod half of the restricted Pod Security
// Standard, running as uid (and its group, which owns the volumes). The
// namespaces enforce that standard, so a pod without it is refused.
func RestrictedPodSecurity(uid int) *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot:   pulumi.Bool(true),
		RunAsUser:      pulumi.Int(uid),
		RunAsGroup:     pulumi.Int(uid),
		FsGroup:        pulumi.Int(uid),
		SeccompProfile: &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// RestrictedContainerSecurity is the container half of the restricted Pod
// Security Standard, with a read-only root filesystem: writable paths are
// emptyDir or volume mounts.
func RestrictedContainerSecurity() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		AllowPrivilegeEscalation: pulumi.Bool(false),
		Privileged:               pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		RunAsNonRoot:             pulumi.Bool(true),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
		SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}
