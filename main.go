// Command scaleplane-program is the Pulumi program run by `pulumi up` with
// the Pulumi CLI and its Go language host. It holds nothing but the call:
// the program itself is stacks.Program, shared with the scaleplane
// command and the tests.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/scaleplane/scaleplane/stacks"
)

func main() {
	pulumi.Run(stacks.Program)
}
