package lbcontroller

import "encoding/json"

// clusterTagKey is the tag the controller puts on everything it creates;
// the policy's conditions let it change only what carries it.
const clusterTagKey = "elbv2.k8s.aws/cluster"

// IAMPolicy is the controller's IAM policy: the documented policy of
// aws-load-balancer-controller v2.13 (docs/install/iam_policy.json),
// trimmed to what NLBs with IP targets need. Left out: WAF, WAFv2, Shield
// and Cognito (ALB-only features), listener rules (NLB listeners have
// none). Kept: reading the VPC, creating and tagging security groups
// (the controller fronts NLBs with its own), load balancers, target
// groups, listeners and their certificates (TLS on the NLB), target
// registration, and the ELB service-linked role. Every mutation of an
// existing load balancer, target group or security group is conditioned
// on the cluster tag, so the controller cannot touch what it did not
// create. The ARNs use the aws partition (not GovCloud or China).
func IAMPolicy() string {
	notNull := func(key string) map[string]any { return map[string]any{"Null": map[string]any{key: "false"}} }
	lbARNs := []string{
		"arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
		"arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
		"arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
	}
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Effect": "Allow", "Action": []string{"iam:CreateServiceLinkedRole"}, "Resource": "*",
				"Condition": map[string]any{"StringEquals": map[string]any{"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "*",
				"Action": []string{
					"ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
					"ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
					"ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
					"ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables",
					"ec2:GetSecurityGroupsForVpc", "ec2:DescribeIpamPools",
					"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
					"elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerCertificates",
					"elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeSSLPolicies",
					"elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
					"elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
					"elasticloadbalancing:DescribeCapacityReservation",
					"acm:ListCertificates", "acm:DescribeCertificate",
				},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "*",
				"Action": []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:CreateSecurityGroup"},
			},
			map[string]any{
				"Effect": "Allow", "Action": []string{"ec2:CreateTags"}, "Resource": "arn:aws:ec2:*:*:security-group/*",
				"Condition": map[string]any{
					"StringEquals": map[string]any{"ec2:CreateAction": "CreateSecurityGroup"},
					"Null":         map[string]any{"aws:RequestTag/" + clusterTagKey: "false"},
				},
			},
			map[string]any{
				"Effect": "Allow", "Action": []string{"ec2:CreateTags", "ec2:DeleteTags"}, "Resource": "arn:aws:ec2:*:*:security-group/*",
				"Condition": map[string]any{"Null": map[string]any{
					"aws:RequestTag/" + clusterTagKey: "true", "aws:ResourceTag/" + clusterTagKey: "false",
				}},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "*", "Condition": notNull("aws:ResourceTag/" + clusterTagKey),
				"Action": []string{"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "*", "Condition": notNull("aws:RequestTag/" + clusterTagKey),
				"Action": []string{"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "*",
				"Action": []string{
					"elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
					"elasticloadbalancing:ModifyListener", "elasticloadbalancing:AddListenerCertificates",
					"elasticloadbalancing:RemoveListenerCertificates",
				},
			},
			map[string]any{
				"Effect": "Allow", "Resource": lbARNs,
				"Action": []string{"elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"},
				"Condition": map[string]any{"Null": map[string]any{
					"aws:RequestTag/" + clusterTagKey: "true", "aws:ResourceTag/" + clusterTagKey: "false",
				}},
			},
			map[string]any{
				"Effect": "Allow", "Action": []string{"elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"},
				"Resource": []string{"arn:aws:elasticloadbalancing:*:*:listener/net/*/*/*", "arn:aws:elasticloadbalancing:*:*:listener/app/*/*/*"},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "*", "Condition": notNull("aws:ResourceTag/" + clusterTagKey),
				"Action": []string{
					"elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
					"elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
					"elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
					"elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
					"elasticloadbalancing:ModifyListenerAttributes",
				},
			},
			map[string]any{
				"Effect": "Allow", "Resource": lbARNs, "Action": []string{"elasticloadbalancing:AddTags"},
				"Condition": map[string]any{
					"StringEquals": map[string]any{"elasticloadbalancing:CreateAction": []string{"CreateTargetGroup", "CreateLoadBalancer"}},
					"Null":         map[string]any{"aws:RequestTag/" + clusterTagKey: "false"},
				},
			},
			map[string]any{
				"Effect": "Allow", "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
				"Action": []string{"elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"},
			},
		},
	})
	return string(b)
}
