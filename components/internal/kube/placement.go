package kube

import (
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Topology keys pods are spread over.
const (
	ZoneKey = "topology.kubernetes.io/zone"
	NodeKey = "kubernetes.io/hostname"
)

// RolloutKey is the label a Deployment's ReplicaSet stamps on its pods.
// Given to Spread as a match label key, each rollout's pods are counted
// on their own, so a rolling update does not pile the new pods where the
// old ones were.
const RolloutKey = "pod-template-hash"

// whenZone is the zone rule: a hard one where the environment demands it
// (prod), a preference elsewhere, since a single-zone cluster could not
// schedule the pods otherwise.
func whenZone(required bool) string {
	if required {
		return "DoNotSchedule"
	}
	return "ScheduleAnyway"
}

// Spread spreads a stateless workload's pods over zones (a hard rule when
// zoneRequired) and, as a preference, over nodes. matchLabelKeys (such as
// RolloutKey) narrow each count to the pods sharing those labels' values.
func Spread(selector map[string]string, zoneRequired bool, matchLabelKeys ...string) corev1.TopologySpreadConstraintArray {
	on := func(key, when string) corev1.TopologySpreadConstraintArgs {
		c := corev1.TopologySpreadConstraintArgs{
			MaxSkew:           pulumi.Int(1),
			TopologyKey:       pulumi.String(key),
			WhenUnsatisfiable: pulumi.String(when),
			LabelSelector:     &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)},
		}
		if len(matchLabelKeys) > 0 {
			c.MatchLabelKeys = pulumi.ToStringArray(matchLabelKeys)
		}
		return c
	}
	return corev1.TopologySpreadConstraintArray{
		on(ZoneKey, whenZone(zoneRequired)),
		on(NodeKey, "ScheduleAnyway"),
	}
}

// Placement is for pods that are members of one set (Redis nodes, Kafka
// brokers, database replicas, a pooler): they are spread over zones (a
// hard rule when zoneRequired) and kept off a shared node where they can
// be, so a node loss costs at most one member.
func Placement(selector map[string]string, zoneRequired bool) (*corev1.AffinityArgs, corev1.TopologySpreadConstraintArray) {
	sel := &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(selector)}
	return &corev1.AffinityArgs{PodAntiAffinity: &corev1.PodAntiAffinityArgs{
			PreferredDuringSchedulingIgnoredDuringExecution: corev1.WeightedPodAffinityTermArray{corev1.WeightedPodAffinityTermArgs{
				Weight:          pulumi.Int(100),
				PodAffinityTerm: corev1.PodAffinityTermArgs{TopologyKey: pulumi.String(NodeKey), LabelSelector: sel},
			}},
		}}, corev1.TopologySpreadConstraintArray{corev1.TopologySpreadConstraintArgs{
			MaxSkew: pulumi.Int(1), TopologyKey: pulumi.String(ZoneKey),
			WhenUnsatisfiable: pulumi.String(whenZone(zoneRequired)), LabelSelector: sel,
		}}
}
