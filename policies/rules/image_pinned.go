package rules

import (
	"regexp"
	"strings"

	"github.com/scaleplane/scaleplane/policies/rules/internal/object"
)

var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// imagePinned reports whether a reference carries a digest or a tag other than latest.
func imagePinned(ref string) bool {
	if digestRef.MatchString(ref) {
		return true
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(last, ":")
	return i > 0 && i < len(last)-1 && last[i+1:] != "latest"
}

// ImagePinned forbids untagged and :latest images.
var ImagePinned = register(&Rule{
	ID:          "image-pinned",
	Name:        "Images pinned to a tag or digest",
	Category:    Security,
	Level:       Mandatory,
	Description: "Every container image carries a digest or an explicit tag other than latest.",
	Remediation: "Set imageTag (and edgeImage) in the stack file to a release tag such as 0.1.0, or pin a digest.",
	Rationale:   "When the autoscaler adds a pod it pulls the image again: with :latest, pods of one Deployment can run different code, and a rollback has nothing to roll back to.",
	CheckResource: func(r Resource, t Thresholds) []string {
		spec, _, ok := object.Pod(r)
		if !ok {
			return nil
		}
		var out []string
		for _, c := range object.Containers(spec, true) {
			img := object.Str(c.Fields["image"])
			if img == Unknown {
				continue
			}
			if !imagePinned(img) {
				out = append(out, msgf("%s %s: image %q is untagged or :latest", object.Display(r), c.Label(), img))
			}
		}
		return out
	},
})
