package plainvalue

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestGetWalksMapsAndLists(t *testing.T) {
	v := map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "app"}}}}
	assert.Equal(t, "app", Get(v, "spec", "containers", 0, "name"), "a key, a key, an index, a key")
	assert.Equal(t, v, Get(v), "an empty path is the value itself")
	for _, tc := range []struct {
		why  string
		path []any
	}{
		{"a missing key", []any{"status"}},
		{"an index past the end", []any{"spec", "containers", 1}},
		{"a negative index", []any{"spec", "containers", -1}},
		{"a key into a list", []any{"spec", "containers", "name"}},
		{"an index into a map", []any{"spec", 0}},
		{"a step of another type", []any{"spec", 1.5}},
	} {
		assert.Nil(t, Get(v, tc.path...), "%s leads nowhere", tc.why)
	}
}
