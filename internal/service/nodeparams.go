package service

import (
	"sort"

	"github.com/hoardcache/hoard/internal/catalog"
)

// desiredParams is every parameter a node of the given type should run with under a
// group: the family's defaults, the node type's values (maxmemory, max_cache_memory,
// num_threads, ...) and the group's own values, in that order of precedence.
func desiredParams(family *catalog.Family, nodeType string, group map[string]string) map[string]string {
	params := make(map[string]string, len(family.Params)+len(family.NodeTypeSpecific)+len(group))
	for _, p := range family.Params {
		if p.Value != "" {
			params[p.Name] = p.Value
		}
	}
	for _, p := range family.NodeTypeSpecific {
		if v, ok := p.Values[nodeType]; ok {
			params[p.Name] = v
		}
	}
	for k, v := range group {
		params[k] = v
	}
	return params
}

// paramDiff splits the parameters whose desired value differs from the applied one
// by how ElastiCache says a change takes effect.
func paramDiff(family *catalog.Family, applied, desired map[string]string) (immediate, reboot map[string]string) {
	immediate, reboot = map[string]string{}, map[string]string{}
	for name, want := range desired {
		if have, ok := applied[name]; ok && have == want {
			continue
		}
		changeType := catalog.Immediate
		if p, ok := family.Param(name); ok {
			changeType = p.ChangeType
		} else if p, ok := family.NodeTypeParam(name); ok {
			changeType = p.ChangeType
		}
		if changeType == catalog.RequiresReboot {
			reboot[name] = want
		} else {
			immediate[name] = want
		}
	}
	return immediate, reboot
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
