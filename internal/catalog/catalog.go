// Package catalog holds what ElastiCache publishes about its engines: the parameter
// catalogue of every parameter-group family (embedded data files, one per family,
// transcribed from the AWS user guide), the default parameter groups, and the
// mapping from engine versions to families.
package catalog

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed families/*.json
var familyFiles embed.FS

// Param is one parameter of a family, with its engine default.
type Param struct {
	Name                 string `json:"name"`
	Value                string `json:"value"`
	Description          string `json:"description"`
	DataType             string `json:"dataType"`
	AllowedValues        string `json:"allowedValues"`
	Modifiable           bool   `json:"modifiable"`
	MinimumEngineVersion string `json:"minimumEngineVersion"`
	ChangeType           string `json:"changeType"`
}

// NodeTypeParam is a parameter whose default depends on the cache node type.
type NodeTypeParam struct {
	Param
	Values map[string]string `json:"values"` // node type -> value
}

// Change types, as the API spells them.
const (
	Immediate      = "immediate"
	RequiresReboot = "requires-reboot"
)

// Family is the parameter catalogue of one parameter-group family.
type Family struct {
	Name             string          `json:"family"`
	Engine           string          `json:"engine"`
	Notes            string          `json:"notes"`
	Params           []Param         `json:"parameters"`
	NodeTypeSpecific []NodeTypeParam `json:"nodeTypeSpecific"`

	byName map[string]int
}

// Param returns the named parameter of the family.
func (f *Family) Param(name string) (*Param, bool) {
	i, ok := f.byName[name]
	if !ok {
		return nil, false
	}
	return &f.Params[i], true
}

// NodeTypeParam returns the named node-type-specific parameter of the family.
func (f *Family) NodeTypeParam(name string) (*NodeTypeParam, bool) {
	for i := range f.NodeTypeSpecific {
		if f.NodeTypeSpecific[i].Name == name {
			return &f.NodeTypeSpecific[i], true
		}
	}
	return nil, false
}

// SupportsClusterMode reports whether the family has cluster-mode-enabled default
// groups (default.<family>.cluster.on), as Redis 3.2 and later and Valkey do.
func (f *Family) SupportsClusterMode() bool {
	_, ok := f.Param("cluster-enabled")
	return ok
}

// DefaultGroups returns the names of the family's default parameter groups.
func (f *Family) DefaultGroups() []string {
	groups := []string{"default." + f.Name}
	if f.SupportsClusterMode() {
		groups = append(groups, "default."+f.Name+".cluster.on")
	}
	return groups
}

// DefaultGroupValues returns the values a default group holds beyond the engine
// defaults: the .cluster.on groups turn cluster mode on.
func (f *Family) DefaultGroupValues(group string) map[string]string {
	if strings.HasSuffix(group, ".cluster.on") {
		return map[string]string{"cluster-enabled": "yes"}
	}
	return nil
}

var (
	families     = map[string]*Family{}
	familyNames  []string
	defaultGroup = map[string]*Family{} // default group name -> family
)

func init() {
	entries, err := familyFiles.ReadDir("families")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		raw, err := familyFiles.ReadFile(path.Join("families", e.Name()))
		if err != nil {
			panic(err)
		}
		f, err := parseFamily(raw)
		if err != nil {
			panic(fmt.Sprintf("catalog: %s: %v", e.Name(), err))
		}
		if want := strings.TrimSuffix(e.Name(), ".json"); f.Name != want {
			panic(fmt.Sprintf("catalog: %s declares family %q", e.Name(), f.Name))
		}
		families[f.Name] = f
		familyNames = append(familyNames, f.Name)
		for _, g := range f.DefaultGroups() {
			defaultGroup[g] = f
		}
	}
	sort.Strings(familyNames)
}

// parseFamily decodes and checks one family file; mistakes in the data fail loudly.
func parseFamily(raw []byte) (*Family, error) {
	var f Family
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	if f.Name == "" || f.Engine == "" {
		return nil, fmt.Errorf("family and engine are required")
	}
	sort.Slice(f.Params, func(i, j int) bool { return f.Params[i].Name < f.Params[j].Name })
	f.byName = make(map[string]int, len(f.Params))
	check := func(p *Param) error {
		if p.Name == "" {
			return fmt.Errorf("a parameter has no name")
		}
		if p.ChangeType != Immediate && p.ChangeType != RequiresReboot {
			return fmt.Errorf("parameter %s: changeType %q", p.Name, p.ChangeType)
		}
		return nil
	}
	for i := range f.Params {
		p := &f.Params[i]
		if err := check(p); err != nil {
			return nil, err
		}
		if _, dup := f.byName[p.Name]; dup {
			return nil, fmt.Errorf("parameter %s appears twice", p.Name)
		}
		f.byName[p.Name] = i
	}
	sort.Slice(f.NodeTypeSpecific, func(i, j int) bool { return f.NodeTypeSpecific[i].Name < f.NodeTypeSpecific[j].Name })
	for i := range f.NodeTypeSpecific {
		p := &f.NodeTypeSpecific[i]
		if err := check(&p.Param); err != nil {
			return nil, err
		}
		if len(p.Values) == 0 {
			return nil, fmt.Errorf("node-type-specific parameter %s has no values", p.Name)
		}
		if _, dup := f.byName[p.Name]; dup {
			return nil, fmt.Errorf("parameter %s is both plain and node-type-specific", p.Name)
		}
	}
	return &f, nil
}

// Lookup returns a family by name ("redis7", "memcached1.6", ...).
func Lookup(name string) (*Family, bool) {
	f, ok := families[name]
	return f, ok
}

// FamilyNames returns every family, sorted.
func FamilyNames() []string { return append([]string(nil), familyNames...) }

// DefaultGroupFamily returns the family of a default group name, if it is one.
func DefaultGroupFamily(group string) (*Family, bool) {
	f, ok := defaultGroup[group]
	return f, ok
}

// DefaultGroupNames returns every default group of every family, sorted.
func DefaultGroupNames() []string {
	names := make([]string, 0, len(defaultGroup))
	for g := range defaultGroup {
		names = append(names, g)
	}
	sort.Strings(names)
	return names
}

// Validate checks a value against the parameter's data type and allowed values and
// returns a sentence saying what is wrong, or "" when the value is acceptable.
func (p *Param) Validate(value string) string {
	switch p.DataType {
	case "integer":
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return fmt.Sprintf("%q is not an integer", value)
		}
	case "float":
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return fmt.Sprintf("%q is not a number", value)
		}
	}
	if p.AllowedValues == "" || allowed(p.AllowedValues, p.DataType, value) {
		return ""
	}
	return fmt.Sprintf("%q is not one of the allowed values %s", value, p.AllowedValues)
}

// allowed matches value against an AWS allowed-values string: a comma-separated list
// of literals and, for numeric types, ranges "lo-hi" or "lo-" (lo and up).
func allowed(spec, dataType, value string) bool {
	numeric := dataType == "integer" || dataType == "float"
	x, xerr := strconv.ParseFloat(value, 64)
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == value {
			return true
		}
		if !numeric || xerr != nil {
			continue
		}
		if lo, hi, ok := numericRange(item); ok && x >= lo && x <= hi {
			return true
		}
	}
	return false
}

// numericRange parses "lo-hi", "lo-" or "-" (any number, as AWS writes it for
// slowlog-log-slower-than); a leading '-' before digits is a negative lower bound.
func numericRange(item string) (lo, hi float64, ok bool) {
	if item == "-" {
		return -1e300, 1e300, true
	}
	cut := strings.Index(item[min(1, len(item)):], "-")
	if cut < 0 {
		return 0, 0, false
	}
	cut += min(1, len(item))
	lo, err := strconv.ParseFloat(item[:cut], 64)
	if err != nil {
		return 0, 0, false
	}
	if rest := item[cut+1:]; rest != "" {
		if hi, err = strconv.ParseFloat(rest, 64); err != nil {
			return 0, 0, false
		}
		return lo, hi, true
	}
	return lo, 1e300, true
}
