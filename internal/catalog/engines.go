package catalog

import "strings"

// Engines, as the API names them.
const (
	Redis     = "redis"
	Valkey    = "valkey"
	Memcached = "memcached"
)

// FamilyFor returns the parameter-group family of an engine version, following
// ElastiCache's naming: redis 6.0/6.2 share redis6.x, redis 7.x is redis7, valkey
// 7.2 is valkey7, memcached 1.6.x is memcached1.6. ok is false for versions
// ElastiCache has no family for.
func FamilyFor(engine, version string) (family string, ok bool) {
	parts := strings.SplitN(version, ".", 3)
	major := parts[0]
	minor := ""
	if len(parts) > 1 {
		minor = parts[1]
	}
	switch engine {
	case Redis:
		switch major {
		case "2", "3", "4", "5":
			family = "redis" + major + "." + minor
		case "6":
			family = "redis6.x"
		case "7":
			family = "redis7"
		}
	case Valkey:
		family = "valkey" + major
	case Memcached:
		family = "memcached" + major + "." + minor
	}
	_, ok = families[family]
	return family, ok
}
