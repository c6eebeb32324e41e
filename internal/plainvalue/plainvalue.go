// Package plainvalue reads decoded JSON and YAML ("plain values": maps of
// string to any, lists of any, strings, float64s, bools), the form in which
// rendered resources reach the policy rules and the tests of the
// components and the stack.
package plainvalue

// Get walks nested maps and lists along path (a string key indexes a map,
// an int a list) and returns what it finds there, or nil when the path
// leads nowhere.
func Get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			return nil
		}
	}
	return v
}
