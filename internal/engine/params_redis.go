package engine

// How ElastiCache parameters become redis (and valkey) configuration.
//
//   - A parameter whose name is a config directive of the binary that runs the
//     node is passed through unchanged: a line of redis.conf at start, CONFIG SET
//     at runtime. The binary's directive list is learnt once per binary by
//     starting a throwaway instance and running CONFIG GET * (redisDirectives).
//   - ElastiCache-only parameters with a real effect are mapped:
//     maxmemory, reserved-memory and reserved-memory-percent make the effective
//     maxmemory; client-output-buffer-limit-<class>-<field> make
//     "client-output-buffer-limit <class> <hard> <soft> <seconds>";
//     rename-commands makes rename-command lines; cluster-preferred-endpoint-type
//     tls-dynamic becomes ip (hoard's nodes do not use TLS).
//   - Everything else is accepted without effect: ElastiCache-only names
//     (close-on-replica-write, replica-allow-chaining, ...), names the binary has
//     no directive for, and the directives hoard itself controls (port, bind,
//     dir, ...).

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// redisAliases pairs ElastiCache parameters that name the same redis setting:
// {legacy, modern}. When both are given, the modern name's value wins; the
// directive written is the modern one if the binary knows it, else the legacy one.
var redisAliases = [][2]string{
	{"slave-lazy-flush", "replica-lazy-flush"},
	{"min-slaves-to-write", "min-replicas-to-write"},
	{"min-slaves-max-lag", "min-replicas-max-lag"},
	{"slave-allow-chaining", "replica-allow-chaining"},
	{"close-on-slave-write", "close-on-replica-write"},
	{"hash-max-ziplist-entries", "hash-max-listpack-entries"},
	{"hash-max-ziplist-value", "hash-max-listpack-value"},
	{"zset-max-ziplist-entries", "zset-max-listpack-entries"},
	{"zset-max-ziplist-value", "zset-max-listpack-value"},
	{"list-max-ziplist-size", "list-max-listpack-size"},
	{"client-output-buffer-limit-slave-hard-limit", "client-output-buffer-limit-replica-hard-limit"},
	{"client-output-buffer-limit-slave-soft-limit", "client-output-buffer-limit-replica-soft-limit"},
	{"client-output-buffer-limit-slave-soft-seconds", "client-output-buffer-limit-replica-soft-seconds"},
}

// redisAliasOf maps each name of an alias pair to its partner.
var redisAliasOf = func() map[string]string {
	m := map[string]string{}
	for _, p := range redisAliases {
		m[p[0]] = p[1]
		m[p[1]] = p[0]
	}
	return m
}()

// redisModern maps a legacy alias to its modern name.
var redisModern = func() map[string]string {
	m := map[string]string{}
	for _, p := range redisAliases {
		m[p[0]] = p[1]
	}
	return m
}()

// redisHoardControlled are directives hoard sets itself; parameters of these
// names are ignored.
var redisHoardControlled = map[string]bool{
	"port": true, "bind": true, "dir": true, "daemonize": true, "logfile": true,
	"pidfile": true, "include": true, "supervised": true, "unixsocket": true,
	"unixsocketperm": true, "syslog-enabled": true, "protected-mode": true,
	"rename-command": true, "dbfilename": true,
}

// redisNoEffect are ElastiCache-only parameters with no redis counterpart.
var redisNoEffect = map[string]string{
	"close-on-replica-write": "ElastiCache-only: redis replicas always answer writes with -READONLY; the connection is not closed",
	"close-on-slave-write":   "ElastiCache-only (old name of close-on-replica-write)",
	"replica-allow-chaining": "ElastiCache-only: hoard does not chain replicas",
	"slave-allow-chaining":   "ElastiCache-only (old name of replica-allow-chaining)",
}

// redisMemoryParams make the effective maxmemory.
var redisMemoryParams = []string{"maxmemory", "reserved-memory", "reserved-memory-percent"}

// redisOutputClasses are the client classes of client-output-buffer-limit, with
// the class name written to redis ("slave" is understood by every redis and
// valkey version) and redis's own defaults for the class.
var redisOutputClasses = []struct {
	param, class string
	defaults     [3]string // hard, soft, seconds
}{
	{"normal", "normal", [3]string{"0", "0", "0"}},
	{"replica", "slave", [3]string{"268435456", "67108864", "60"}},
	{"pubsub", "pubsub", [3]string{"33554432", "8388608", "60"}},
}

var redisOutputFields = [3]string{"hard-limit", "soft-limit", "soft-seconds"}

// outputLimitParam names the ElastiCache parameter of a class and field.
func outputLimitParam(class, field string) string {
	return "client-output-buffer-limit-" + class + "-" + field
}

// redisSetting is one redis directive and its arguments, with the ElastiCache
// parameters it comes from.
type redisSetting struct {
	name    string
	args    []string
	sources []string
}

// value is the setting as CONFIG SET takes it.
func (s redisSetting) value() string { return strings.Join(s.args, " ") }

// pickRedis returns the value of name, or of its alias partner, preferring the
// modern name of the pair.
func pickRedis(all map[string]string, name string) (string, bool) {
	modern := name
	if m, ok := redisModern[name]; ok {
		modern = m
	}
	if v, ok := all[modern]; ok {
		return v, true
	}
	if legacy, ok := redisAliasOf[modern]; ok {
		if v, ok := all[legacy]; ok {
			return v, true
		}
	}
	return "", false
}

// effectiveMaxmemory computes redis's maxmemory from the node's maxmemory and
// the reserved memory: reserved-memory (bytes) when it is set and non-zero,
// otherwise reserved-memory-percent of maxmemory. ok is false when there is no
// maxmemory to set.
func effectiveMaxmemory(all map[string]string) (v uint64, ok bool, err error) {
	s, present := all["maxmemory"]
	if !present || s == "" {
		return 0, false, nil
	}
	max, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("maxmemory %q: not a number of bytes", s)
	}
	if max == 0 {
		return 0, true, nil // no limit
	}
	var reserved uint64
	if r := all["reserved-memory"]; r != "" {
		reserved, err = strconv.ParseUint(r, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("reserved-memory %q: not a number of bytes", r)
		}
	}
	if reserved == 0 {
		if p := all["reserved-memory-percent"]; p != "" {
			pct, err := strconv.ParseUint(p, 10, 64)
			if err != nil || pct > 100 {
				return 0, false, fmt.Errorf("reserved-memory-percent %q: not a percentage", p)
			}
			reserved = max/100*pct + max%100*pct/100 // max*pct/100 without overflow
		}
	}
	if reserved >= max {
		return 0, false, fmt.Errorf("reserved memory (%d bytes) leaves nothing of maxmemory (%d bytes)", reserved, max)
	}
	return max - reserved, true, nil
}

// buildRedisSettings turns ElastiCache parameters into redis directives.
//
// all holds every parameter value of the node. changed selects the parameters
// to produce settings for (nil: all of them, as at start); a composed setting is
// produced when any of its sources changed, with its value computed from all.
// has reports whether the binary has a directive. The result is sorted by
// directive name; noEffect lists the selected names that produce nothing.
func buildRedisSettings(all map[string]string, changed map[string]bool, has func(string) bool) (settings []redisSetting, noEffect []string, err error) {
	selected := func(name string) bool {
		if changed == nil {
			_, ok := all[name]
			return ok
		}
		return changed[name]
	}
	done := map[string]bool{} // names consumed

	// maxmemory from maxmemory and reserved memory.
	var memSources []string
	for _, n := range redisMemoryParams {
		done[n] = true
		if selected(n) {
			memSources = append(memSources, n)
		}
	}
	if len(memSources) > 0 {
		v, ok, err := effectiveMaxmemory(all)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			settings = append(settings, redisSetting{name: "maxmemory", args: []string{strconv.FormatUint(v, 10)}, sources: memSources})
		} else {
			noEffect = append(noEffect, memSources...)
		}
	}

	// client-output-buffer-limit per class.
	for _, c := range redisOutputClasses {
		var srcs []string
		args := []string{c.class}
		for i, f := range redisOutputFields {
			n := outputLimitParam(c.param, f)
			names := []string{n}
			if a, ok := redisAliasOf[n]; ok {
				names = append(names, a)
			}
			for _, x := range names {
				done[x] = true
				if selected(x) {
					srcs = append(srcs, x)
				}
			}
			v, ok := pickRedis(all, n)
			if !ok || v == "" {
				v = c.defaults[i]
			}
			if _, err := strconv.ParseUint(v, 10, 64); err != nil {
				return nil, nil, fmt.Errorf("%s %q: not a non-negative integer", n, v)
			}
			args = append(args, v)
		}
		if len(srcs) > 0 {
			settings = append(settings, redisSetting{name: "client-output-buffer-limit", args: args, sources: srcs})
		}
	}

	// rename-commands has no runtime form: it is written by redisConfFile.
	done["rename-commands"] = true
	if selected("rename-commands") {
		if _, err := parseRenameCommands(all["rename-commands"]); err != nil {
			return nil, nil, err
		}
	}

	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if done[n] || !selected(n) {
			continue
		}
		if _, ok := redisNoEffect[n]; ok || redisHoardControlled[n] {
			noEffect = append(noEffect, n)
			continue
		}
		// One setting per alias pair.
		directive, srcs := n, []string{n}
		if a, ok := redisAliasOf[n]; ok {
			done[a] = true
			modern, legacy := n, a
			if m, isLegacy := redisModern[n]; isLegacy {
				modern, legacy = m, n
			}
			if selected(a) {
				srcs = append(srcs, a)
			}
			switch {
			case has(modern):
				directive = modern
			case has(legacy):
				directive = legacy
			default:
				noEffect = append(noEffect, srcs...)
				continue
			}
		} else if !has(n) {
			noEffect = append(noEffect, n)
			continue
		}
		v, _ := pickRedis(all, n)
		if n == "cluster-preferred-endpoint-type" && v == "tls-dynamic" {
			v = "ip" // hoard's nodes speak plain TCP, so tls-dynamic means ip
		}
		settings = append(settings, redisSetting{name: directive, args: []string{v}, sources: srcs})
	}
	sort.SliceStable(settings, func(i, j int) bool { return settings[i].name < settings[j].name })
	sort.Strings(noEffect)
	return settings, noEffect, nil
}

// parseRenameCommands parses ElastiCache's rename-commands value: a
// space-separated list of "OLD NEW" pairs.
func parseRenameCommands(v string) ([][2]string, error) {
	f := strings.Fields(v)
	if len(f)%2 != 0 {
		return nil, fmt.Errorf("rename-commands %q: want pairs of command and new name", v)
	}
	var out [][2]string
	for i := 0; i < len(f); i += 2 {
		out = append(out, [2]string{f[i], f[i+1]})
	}
	return out, nil
}

// renamedCommand returns the name cmd has on a node with the given
// rename-commands value.
func renamedCommand(renames, cmd string) string {
	pairs, _ := parseRenameCommands(renames)
	for _, p := range pairs {
		if strings.EqualFold(p[0], cmd) {
			return p[1]
		}
	}
	return cmd
}

// redisQuote quotes s for redis.conf: a double-quoted string with redis's
// escapes, so that any value (empty, with spaces, with quotes) is one argument.
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// redisConfFile renders the redis.conf of a node: hoard's fixed lines, then a
// line per setting, then the rename-command lines.
func redisConfFile(spec Spec, settings []redisSetting) (string, error) {
	var b strings.Builder
	line := func(name string, args ...string) {
		b.WriteString(name)
		for _, a := range args {
			b.WriteByte(' ')
			b.WriteString(redisQuote(a))
		}
		b.WriteByte('\n')
	}
	b.WriteString("# Written by hoard at every start of the node; edits are lost.\n")
	line("port", strconv.Itoa(spec.Port))
	line("bind", spec.Host)
	line("dir", spec.Dir)
	line("daemonize", "no")
	line("supervised", "no")
	line("protected-mode", "no")
	line("logfile", "") // stdout, which hoard sends to node.log; no pidfile either
	set := map[string]bool{}
	for _, s := range settings {
		set[s.name] = true
	}
	line("dbfilename", redisDBFilename)
	if spec.ReplicaOf != "" {
		host, port, err := net.SplitHostPort(spec.ReplicaOf)
		if err != nil {
			return "", fmt.Errorf("ReplicaOf %q: %w", spec.ReplicaOf, err)
		}
		line("replicaof", host, port)
	}
	// ElastiCache nodes do not persist unless asked to.
	if !set["save"] {
		line("save", "")
	}
	// Snapshots stream over the replication protocol; redis's default 5 s wait for
	// more replicas to share a diskless transfer would only delay each one.
	if !set["repl-diskless-sync-delay"] {
		line("repl-diskless-sync-delay", "0")
	}
	// In a cluster, hoard places every replica (its node group's record says
	// whose replica it is); redis moving replicas to orphaned primaries on its
	// own would fight that, each move a full resync.
	if spec.Params["cluster-enabled"] == "yes" {
		line("cluster-migration-barrier", "999")
	}
	// A node restored from a seed RDB starts with the AOF off, whatever its
	// parameters: with appendonly on redis would load the (missing or old)
	// AOF instead of the seed. Start turns the AOF on once the seed is loaded.
	seeding := spec.Seed != ""
	if !set["appendonly"] || seeding {
		line("appendonly", "no")
	}
	for _, s := range settings {
		if seeding && s.name == "appendonly" {
			continue
		}
		line(s.name, s.args...)
	}
	pairs, err := parseRenameCommands(spec.Params["rename-commands"])
	if err != nil {
		return "", err
	}
	for _, p := range pairs {
		line("rename-command", p[0], p[1])
	}
	return b.String(), nil
}

// redisCatalogueNames are the parameters of the redis and valkey catalogue
// families that are plain redis directives of the same name (Applied).
var redisCatalogueNames = []string{
	"acl-pubsub-default", "acllog-max-len", "active-defrag-cycle-max", "active-defrag-cycle-min",
	"active-defrag-ignore-bytes", "active-defrag-max-scan-fields", "active-defrag-threshold-lower",
	"active-defrag-threshold-upper", "active-expire-effort", "activedefrag", "activerehashing",
	"appendfsync", "appendonly", "client-query-buffer-limit", "cluster-allow-pubsubshard-when-down",
	"cluster-allow-reads-when-down", "cluster-enabled", "cluster-require-full-coverage",
	"commandlog-large-reply-max-len", "commandlog-large-request-max-len", "commandlog-reply-larger-than",
	"commandlog-request-larger-than", "databases", "extended-redis-compatibility",
	"hash-max-listpack-entries", "hash-max-listpack-value", "hash-max-ziplist-entries", "hash-max-ziplist-value",
	"hll-sparse-max-bytes", "latency-tracking", "lazyfree-lazy-eviction", "lazyfree-lazy-expire",
	"lazyfree-lazy-server-del", "lazyfree-lazy-user-del", "lfu-decay-time", "lfu-log-factor",
	"list-compress-depth", "list-max-ziplist-entries", "list-max-ziplist-size", "list-max-ziplist-value",
	"lua-replicate-commands", "lua-time-limit", "maxclients", "maxmemory-policy", "maxmemory-samples",
	"min-replicas-max-lag", "min-replicas-to-write", "min-slaves-max-lag", "min-slaves-to-write",
	"notify-keyspace-events", "proto-max-bulk-len", "repl-backlog-size", "repl-backlog-ttl", "repl-timeout",
	"replica-ignore-maxmemory", "replica-lazy-flush", "search-default-timeout-ms",
	"search-enable-partial-results", "search-fanout-target-mode", "set-max-intset-entries",
	"slave-lazy-flush", "slowlog-log-slower-than", "slowlog-max-len", "stream-node-max-bytes",
	"stream-node-max-entries", "tcp-keepalive", "timeout", "tracking-table-max-keys",
	"zset-max-listpack-entries", "zset-max-listpack-value", "zset-max-ziplist-entries", "zset-max-ziplist-value",
}

// redisImmutable are directives redis refuses to CONFIG SET (checked against
// redis 7.0.15 by the tests).
var redisImmutable = map[string]bool{"databases": true, "cluster-enabled": true}

// noDirectiveNote ends the note of the pass-through parameters in the static
// table; ResolveParameterEffects settles it for a binary.
const noDirectiveNote = "no effect when the binary has no such directive"

// redisEffects is the ParameterEffects table of redis and valkey.
func redisEffects() map[string]ParamEffect {
	m := map[string]ParamEffect{}
	for _, n := range redisCatalogueNames {
		e := ParamEffect{Effect: Applied, Target: n, Runtime: !redisImmutable[n], Note: noDirectiveNote}
		if modern, ok := redisModern[n]; ok {
			e.Note = noteList("alias of "+modern+", which wins when both are given", e.Note)
		}
		m[n] = e
	}
	e := m["maxclients"]
	e.Note = noteList("redis lowers it to what the open-file limit allows (at start, and hoard takes redis's offer at runtime)", e.Note)
	m["maxclients"] = e
	memNote := "redis maxmemory = maxmemory - reserved-memory when that is non-zero, else maxmemory - reserved-memory-percent % of maxmemory"
	for _, n := range redisMemoryParams {
		m[n] = ParamEffect{Effect: Mapped, Target: "maxmemory", Runtime: true, Note: memNote}
	}
	for _, c := range redisOutputClasses {
		for _, f := range redisOutputFields {
			n := outputLimitParam(c.param, f)
			m[n] = ParamEffect{Effect: Mapped, Target: "client-output-buffer-limit " + c.class, Runtime: true,
				Note: "the three fields of a class make one client-output-buffer-limit setting; missing fields take redis's defaults"}
			if legacy, ok := redisAliasOf[n]; ok {
				e := m[n]
				e.Note = noteList(e.Note, "client-output-buffer-limit-replica-* wins over the older client-output-buffer-limit-slave-* when both are given")
				m[n], m[legacy] = e, e
			}
		}
	}
	m["rename-commands"] = ParamEffect{Effect: Mapped, Target: "rename-command", Runtime: false,
		Note: "each OLD NEW pair becomes a rename-command line of redis.conf; redis cannot rename at runtime, so a change needs a restart"}
	m["cluster-preferred-endpoint-type"] = ParamEffect{Effect: Mapped, Target: "cluster-preferred-endpoint-type", Runtime: true,
		Note: "ip stays ip; tls-dynamic becomes ip because hoard's nodes do not use TLS"}
	for n, why := range redisNoEffect {
		m[n] = ParamEffect{Effect: NoEffect, Note: why}
	}
	return m
}
