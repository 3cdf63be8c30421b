package samtemplate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Dependencies returns the resources r refers to (Ref, Fn::GetAtt, Fn::Sub
// variables, DependsOn), sorted. Names that are not resources of the
// template (parameters, pseudo parameters, SAM's implicit resources) are left
// out.
func (t *Template) Dependencies(r *Resource) []string {
	seen := map[string]bool{}
	add := func(name string) {
		if _, ok := t.Resources[name]; ok && name != r.LogicalID {
			seen[name] = true
		}
	}
	for _, d := range r.DependsOn {
		add(d)
	}
	walkRefs(r.Properties, add)
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// walkRefs calls add for each name v refers to.
func walkRefs(v any, add func(string)) {
	switch x := v.(type) {
	case map[string]any:
		if fn, arg, ok := intrinsic(x); ok {
			switch fn {
			case "Ref":
				if s, ok := arg.(string); ok {
					add(s)
				}
				return
			case "Fn::GetAtt":
				switch a := arg.(type) {
				case []any:
					if len(a) > 0 {
						if s, ok := a[0].(string); ok {
							add(s)
						}
					}
				case string:
					res, _, _ := strings.Cut(a, ".")
					add(res)
				}
				return
			case "Fn::Sub":
				walkSub(arg, add)
				return
			}
		}
		for _, item := range x {
			walkRefs(item, add)
		}
	case []any:
		for _, item := range x {
			walkRefs(item, add)
		}
	}
}

func walkSub(arg any, add func(string)) {
	var tmpl string
	vars := map[string]bool{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return
		}
		tmpl, _ = a[0].(string)
		if m, ok := a[1].(map[string]any); ok {
			for k, v := range m {
				vars[k] = true
				walkRefs(v, add)
			}
		}
	}
	for _, m := range subVar.FindAllStringSubmatch(tmpl, -1) {
		name := m[1]
		if strings.HasPrefix(name, "!") || vars[name] {
			continue
		}
		res, _, _ := strings.Cut(name, ".")
		add(res)
	}
}

// Order returns every resource's logical id so that each comes after the
// resources it depends on; ties are broken alphabetically. A cycle is an
// error naming the resources in it.
func (t *Template) Order() ([]string, error) {
	deps := map[string][]string{}
	indegree := map[string]int{}
	users := map[string][]string{}
	for id, r := range t.Resources {
		deps[id] = t.Dependencies(r)
		indegree[id] = len(deps[id])
		for _, d := range deps[id] {
			users[d] = append(users[d], id)
		}
	}
	var ready []string
	for id, n := range indegree {
		if n == 0 {
			ready = append(ready, id)
		}
	}
	sort.Strings(ready)
	var out []string
	for len(ready) > 0 {
		id := ready[0]
		ready = ready[1:]
		out = append(out, id)
		var next []string
		for _, u := range users[id] {
			indegree[u]--
			if indegree[u] == 0 {
				next = append(next, u)
			}
		}
		ready = append(ready, next...)
		sort.Strings(ready)
	}
	if len(out) != len(t.Resources) {
		var stuck []string
		for id, n := range indegree {
			if n > 0 {
				stuck = append(stuck, id)
			}
		}
		sort.Strings(stuck)
		return nil, fmt.Errorf("resources depend on each other in a cycle: %s", strings.Join(stuck, ", "))
	}
	return out, nil
}

// PhysicalName is the name CloudFormation would generate for a resource
// without an explicit name: <stack>-<LogicalId>-<SUFFIX>, cut to maxLen. The
// suffix is derived from the stack and logical id, so it is stable across
// runs.
func PhysicalName(stack, logicalID string, maxLen int) string {
	suffix := Suffix(stack+"/"+logicalID, 12)
	name := stack + "-" + logicalID
	if maxLen > 0 && len(name)+1+len(suffix) > maxLen {
		keep := maxLen - 1 - len(suffix)
		if keep < 1 {
			keep = 1
		}
		if keep < len(name) {
			name = name[:keep]
		}
	}
	return name + "-" + suffix
}

// Suffix is a stable pseudo-random string of n upper-case letters and
// digits derived from seed.
func Suffix(seed string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sum := sha256.Sum256([]byte(seed))
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[int(sum[i%len(sum)])%len(alphabet)]
	}
	return string(out)
}

// syntheticUUID is a stable UUID-shaped string derived from seed.
func syntheticUUID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// SyntheticUUID is a stable UUID-shaped string derived from seed.
func SyntheticUUID(seed string) string { return syntheticUUID(seed) }

// String renders an evaluated scalar as CloudFormation does (numbers in
// decimal, booleans as true/false); lists join with commas.
func String(v any) string { return scalarString(v) }

// Int reads an evaluated number or numeric string.
func Int(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), x == float64(int(x))
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		return n, err == nil
	}
	return 0, false
}

// Bool reads an evaluated boolean or "true"/"false".
func Bool(v any) (bool, bool) {
	b, err := asBool(v)
	return b, err == nil
}
