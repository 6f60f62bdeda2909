package catalog

import "testing"

// Every family ElastiCache documents has a catalogue.
func TestEveryDocumentedFamilyIsPresent(t *testing.T) {
	for _, name := range []string{"memcached1.4", "memcached1.5", "memcached1.6", "redis2.6", "redis2.8", "redis3.2",
		"redis4.0", "redis5.0", "redis6.x", "redis7", "valkey7", "valkey8"} {
		f, ok := Lookup(name)
		if !ok {
			t.Errorf("family %s missing", name)
			continue
		}
		if len(f.Params) < 20 || len(f.NodeTypeSpecific) == 0 {
			t.Errorf("family %s: %d parameters, %d node-type-specific: too few for a full catalogue", name, len(f.Params), len(f.NodeTypeSpecific))
		}
		for _, p := range f.Params {
			if p.Modifiable && p.Value != "" {
				if why := p.Validate(p.Value); why != "" {
					t.Errorf("%s: the default of %s fails its own rule: %s", name, p.Name, why)
				}
			}
		}
	}
}

func TestDefaultGroups(t *testing.T) {
	cases := map[string]string{
		"default.redis7":              "redis7",
		"default.redis7.cluster.on":   "redis7",
		"default.redis3.2.cluster.on": "redis3.2",
		"default.memcached1.6":        "memcached1.6",
		"default.valkey8.cluster.on":  "valkey8",
	}
	for group, family := range cases {
		f, ok := DefaultGroupFamily(group)
		if !ok || f.Name != family {
			t.Errorf("DefaultGroupFamily(%s) = %v, %v; want %s", group, f, ok, family)
		}
	}
	for _, absent := range []string{"default.redis2.8.cluster.on", "default.memcached1.6.cluster.on", "default.redis9"} {
		if _, ok := DefaultGroupFamily(absent); ok {
			t.Errorf("%s should not be a default group", absent)
		}
	}
	if f, _ := Lookup("redis7"); f.DefaultGroupValues("default.redis7.cluster.on")["cluster-enabled"] != "yes" {
		t.Error("default.redis7.cluster.on must turn cluster-enabled on")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		p     Param
		value string
		ok    bool
	}{
		{Param{DataType: "string", AllowedValues: "yes,no"}, "yes", true},
		{Param{DataType: "string", AllowedValues: "yes,no"}, "maybe", false},
		{Param{DataType: "integer", AllowedValues: "0-"}, "0", true},
		{Param{DataType: "integer", AllowedValues: "0-"}, "-1", false},
		{Param{DataType: "integer", AllowedValues: "0-"}, "ten", false},
		{Param{DataType: "integer", AllowedValues: "1-10000"}, "10000", true},
		{Param{DataType: "integer", AllowedValues: "1-10000"}, "10001", false},
		{Param{DataType: "integer", AllowedValues: "-5,-4,-3,-2,-1,1-"}, "-2", true},
		{Param{DataType: "integer", AllowedValues: "-5,-4,-3,-2,-1,1-"}, "0", false},
		{Param{DataType: "integer", AllowedValues: "-5,-4,-3,-2,-1,1-"}, "9", true},
		{Param{DataType: "float", AllowedValues: "1-"}, "1.25", true},
		{Param{DataType: "string", AllowedValues: "volatile-lru,allkeys-lru"}, "allkeys-lru", true},
		{Param{DataType: "string", AllowedValues: "volatile-lru,allkeys-lru"}, "lru", false},
		{Param{DataType: "string"}, "anything at all", true},
	}
	for _, c := range cases {
		if got := c.p.Validate(c.value) == ""; got != c.ok {
			t.Errorf("Validate(%+v, %q) ok=%v, want %v", c.p, c.value, got, c.ok)
		}
	}
}

func TestFamilyFor(t *testing.T) {
	cases := []struct{ engine, version, family string }{
		{"redis", "7.0.15", "redis7"}, {"redis", "6.2.6", "redis6.x"}, {"redis", "5.0.6", "redis5.0"},
		{"redis", "2.8.24", "redis2.8"}, {"valkey", "8.0.1", "valkey8"}, {"valkey", "7.2.4", "valkey7"},
		{"memcached", "1.6.18", "memcached1.6"}, {"memcached", "1.4.5", "memcached1.4"},
	}
	for _, c := range cases {
		if got, ok := FamilyFor(c.engine, c.version); !ok || got != c.family {
			t.Errorf("FamilyFor(%s, %s) = %s, %v; want %s", c.engine, c.version, got, ok, c.family)
		}
	}
	if _, ok := FamilyFor("redis", "9.0.0"); ok {
		t.Error("redis 9 has no family")
	}
}
