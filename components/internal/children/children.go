// Package children is the option line every component gives its children,
// Kubernetes and AWS alike.
package children

import "github.com/pulumi/pulumi/sdk/v3/go/pulumi"

// Options is the option line of a component's children: parented to the
// component, and waiting for whatever the caller made the component wait
// for (the namespace, a secret), since Pulumi does not pass a component's
// dependsOn down to its children by itself.
func Options(component pulumi.Resource, opts []pulumi.ResourceOption) (pulumi.ResourceOption, error) {
	ro, err := pulumi.NewResourceOptions(opts...)
	if err != nil {
		return nil, err
	}
	return pulumi.Composite(pulumi.Parent(component), pulumi.DependsOn(ro.DependsOn)), nil
}
