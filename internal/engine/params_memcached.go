package engine

// How ElastiCache parameters become memcached command-line flags.
//
// memcached takes its configuration on the command line only; hoard builds the
// flags from the parameters at every start. Extended (-o) options that the
// binary does not accept are skipped: each is tried once per binary with
// `memcached -o <option> -V`, which parses the option and prints the version.

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// memcachedPageSize is memcached's slab page size (1 MB), which slab_chunk_max
// must divide.
const memcachedPageSize = 1 << 20

// memcachedEffects is the ParameterEffects table of memcached, for every
// parameter of the memcached1.4, 1.5 and 1.6 catalogue families.
var memcachedEffects = map[string]ParamEffect{
	"max_cache_memory": {Effect: Mapped, Target: "-m", Runtime: true,
		Note: "-m is max_cache_memory minus memcached_connections_overhead (MB); changed at runtime with cache_memlimit"},
	"memcached_connections_overhead": {Effect: Mapped, Target: "-m", Runtime: true,
		Note: "subtracted from max_cache_memory for -m; changed at runtime with cache_memlimit"},
	"num_threads": {Effect: Applied, Target: "-t"},
	"max_simultaneous_connections": {Effect: Applied, Target: "-c",
		Note: "lowered to hoard's hard RLIMIT_NOFILE when that is smaller, since memcached exits if it cannot raise its file limit to -c"},
	"max_item_size":             {Effect: Applied, Target: "-I"},
	"chunk_size":                {Effect: Applied, Target: "-n"},
	"chunk_size_growth_factor":  {Effect: Applied, Target: "-f"},
	"cas_disabled":              {Effect: Applied, Target: "-C", Note: "-C when 1"},
	"error_on_memory_exhausted": {Effect: Applied, Target: "-M", Note: "-M when 1"},
	"backlog_queue_limit":       {Effect: Applied, Target: "-b"},
	"requests_per_event":        {Effect: Applied, Target: "-R"},
	"binding_protocol": {Effect: Applied, Target: "-B",
		Note: "binary becomes auto (which also accepts binary clients) so that hoard's text-protocol health checks keep working"},
	"disable_flush_all":        {Effect: Applied, Target: "-F", Note: "-F when 1"},
	"maximize_core_file_limit": {Effect: Applied, Target: "-r", Note: "-r when 1"},
	"watch":                    {Effect: Mapped, Target: "-W", Note: "0 disables the watch command with -W; 1 is memcached's default"},
	"slab_reassign":            {Effect: Applied, Target: "-o slab_reassign / no_slab_reassign"},
	"slab_automove": {Effect: Applied, Target: "-o slab_automove", Runtime: true,
		Note: "changed at runtime with `slabs automove N`"},
	"hash_algorithm": {Effect: Applied, Target: "-o hash_algorithm"},
	"lru_crawler": {Effect: Applied, Target: "-o lru_crawler / no_lru_crawler", Runtime: true,
		Note: "changed at runtime with `lru_crawler enable|disable`"},
	"lru_maintainer":      {Effect: Applied, Target: "-o lru_maintainer / no_lru_maintainer"},
	"hashpower_init":      {Effect: Applied, Target: "-o hashpower"},
	"idle_timeout":        {Effect: Applied, Target: "-o idle_timeout"},
	"track_sizes":         {Effect: Applied, Target: "-o track_sizes", Note: "-o track_sizes when 1"},
	"watcher_logbuf_size": {Effect: Applied, Target: "-o watcher_logbuf_size", Note: "KB"},
	"worker_logbuf_size": {Effect: NoEffect,
		Note: "not passed: memcached's -o worker_logbuf_size falls through to slab_sizes (an upstream bug in 1.6.18), which would replace the slab classes with one of worker_logbuf_size bytes"},
	"slab_chunk_max": {Effect: Applied, Target: "-o slab_chunk_max",
		Note: "bytes; when it does not fit max_item_size (memcached wants it <= -I, dividing -I and 1 MB) the largest power of two that fits is used"},
	"expirezero_does_not_evict": {Effect: Applied, Target: "-o expirezero_does_not_evict",
		Note: "-o expirezero_does_not_evict when 1, where the binary has the option (memcached 1.6 does not)"},
	"maxconns_fast":     {Effect: Applied, Target: "-o maxconns_fast / no_maxconns_fast"},
	"inline_ascii_resp": {Effect: Applied, Target: "-o inline_ascii_resp / no_inline_ascii_resp"},
	"modern":            {Effect: Applied, Target: "-o modern", Note: "written first, so the individual parameters override it; a no-op in memcached 1.6"},
	"no_modern": {Effect: Applied, Target: "-o no_modern",
		Note: "written first (instead of modern when both are 1), so the individual parameters override it"},
	"large_memory_pages": {Effect: NoEffect,
		Note: "would be -L; needs huge pages configured for the user, so hoard does not pass it"},
	"lock_down_paged_memory": {Effect: NoEffect,
		Note: "would be -k; needs CAP_IPC_LOCK / a memlock limit, so hoard does not pass it"},
	"config_max":      {Effect: NoEffect, Note: "ElastiCache Auto Discovery configuration store; not a memcached setting"},
	"config_size_max": {Effect: NoEffect, Note: "ElastiCache Auto Discovery configuration store; not a memcached setting"},
}

// memcachedOptionProbes are the -o options hoard may pass, each with a value
// that is valid for the probe.
var memcachedOptionProbes = map[string]string{
	"modern": "modern", "no_modern": "no_modern",
	"slab_reassign": "slab_reassign", "no_slab_reassign": "no_slab_reassign",
	"slab_automove": "slab_automove=0", "hash_algorithm": "hash_algorithm=murmur3",
	"lru_crawler": "lru_crawler", "no_lru_crawler": "no_lru_crawler",
	"lru_maintainer": "lru_maintainer", "no_lru_maintainer": "no_lru_maintainer",
	"hashpower": "hashpower=16", "idle_timeout": "idle_timeout=0", "track_sizes": "track_sizes",
	"watcher_logbuf_size": "watcher_logbuf_size=256",
	"slab_chunk_max":      "slab_chunk_max=524288", "expirezero_does_not_evict": "expirezero_does_not_evict",
	"maxconns_fast": "maxconns_fast", "no_maxconns_fast": "no_maxconns_fast",
	"inline_ascii_resp": "inline_ascii_resp", "no_inline_ascii_resp": "no_inline_ascii_resp",
}

// optionSet is the set of -o options a memcached binary accepts.
type optionSet map[string]bool

var optionCache struct {
	sync.Mutex
	m map[string]optionSet
}

// memcachedOptions returns the -o options the memcached binary at path accepts,
// learnt once per binary.
func memcachedOptions(ctx context.Context, path string) (optionSet, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
	optionCache.Lock()
	defer optionCache.Unlock()
	if s, ok := optionCache.m[key]; ok {
		return s, nil
	}
	s := optionSet{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, probe := range memcachedOptionProbes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// -o is parsed before -V prints the version and exits, so an
			// unknown option fails ("Illegal suboption") before any version.
			out, err := exec.CommandContext(ctx, path, "-o", probe, "-V").CombinedOutput()
			if err == nil && strings.HasPrefix(string(out), "memcached ") {
				mu.Lock()
				s[name] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("%s accepts none of the -o options hoard uses; is it memcached?", path)
	}
	if optionCache.m == nil {
		optionCache.m = map[string]optionSet{}
	}
	optionCache.m[key] = s
	return s, nil
}

// mcParams reads typed parameter values.
type mcParams map[string]string

func (p mcParams) int(name string) (int64, bool, error) {
	s, ok := p[name]
	if !ok || s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q: not an integer", name, s)
	}
	return v, true, nil
}

func (p mcParams) bool(name string) (bool, bool, error) {
	s, ok := p[name]
	if !ok || s == "" {
		return false, false, nil
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, true, nil
	case "0", "false", "no", "off":
		return false, true, nil
	}
	return false, false, fmt.Errorf("%s %q: not 0 or 1", name, s)
}

// memoryLimitMB is memcached's -m: max_cache_memory minus
// memcached_connections_overhead. ok is false without max_cache_memory.
func memoryLimitMB(p mcParams) (int64, bool, error) {
	max, ok, err := p.int("max_cache_memory")
	if err != nil || !ok {
		return 0, false, err
	}
	over, _, err := p.int("memcached_connections_overhead")
	if err != nil {
		return 0, false, err
	}
	m := max - over
	if m < 1 {
		return 0, false, fmt.Errorf("max_cache_memory %d MB minus memcached_connections_overhead %d MB leaves no memory for items", max, over)
	}
	return m, true, nil
}

// fileLimit is the hard RLIMIT_NOFILE nodes inherit.
func fileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return r.Max
}

// fitSlabChunkMax returns a slab_chunk_max memcached accepts with item size
// itemMax: want itself if it is at most itemMax and divides both itemMax and the
// 1 MB page, else the largest power of two that does.
func fitSlabChunkMax(want, itemMax int64) int64 {
	if want > 0 && want <= itemMax && memcachedPageSize%want == 0 && itemMax%want == 0 {
		return want
	}
	limit := itemMax
	if want > 0 && want < limit {
		limit = want
	}
	if limit > memcachedPageSize/2 {
		limit = memcachedPageSize / 2
	}
	if limit < 1 {
		return 1
	}
	p := int64(1) << (63 - bits.LeadingZeros64(uint64(limit))) // largest power of two <= limit
	for p > 1 && itemMax%p != 0 {
		p >>= 1
	}
	return p
}

// memcachedArgs builds memcached's command line for spec. opts are the -o
// options the binary accepts; the unsupported ones are left out.
func memcachedArgs(spec Spec, opts optionSet) ([]string, error) {
	p := mcParams(spec.Params)
	args := []string{"-p", strconv.Itoa(spec.Port), "-l", spec.Host, "-U", "0"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root without -u; keep the same identity.
		name := "root"
		if u, err := user.LookupId("0"); err == nil {
			name = u.Username
		}
		args = append(args, "-u", name)
	}
	flagInt := func(name, flag string) error {
		v, ok, err := p.int(name)
		if ok {
			args = append(args, flag, strconv.FormatInt(v, 10))
		}
		return err
	}
	flagBool := func(name, flag string) error {
		v, _, err := p.bool(name)
		if v {
			args = append(args, flag)
		}
		return err
	}
	var errs []string
	check := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	if m, ok, err := memoryLimitMB(p); err != nil {
		check(err)
	} else if ok {
		args = append(args, "-m", strconv.FormatInt(m, 10))
	}
	check(flagInt("num_threads", "-t"))
	if c, ok, err := p.int("max_simultaneous_connections"); err != nil {
		check(err)
	} else if ok {
		if lim := fileLimit(); c > 0 && uint64(c) > lim {
			c = int64(lim)
		}
		args = append(args, "-c", strconv.FormatInt(c, 10))
	}
	itemMax := int64(1 << 20)
	if v, ok, err := p.int("max_item_size"); err != nil {
		check(err)
	} else if ok {
		itemMax = v
		args = append(args, "-I", strconv.FormatInt(v, 10))
	}
	check(flagInt("chunk_size", "-n"))
	if f, ok := p["chunk_size_growth_factor"]; ok && f != "" {
		if _, err := strconv.ParseFloat(f, 64); err != nil {
			check(fmt.Errorf("chunk_size_growth_factor %q: not a number", f))
		} else {
			args = append(args, "-f", f)
		}
	}
	check(flagBool("cas_disabled", "-C"))
	check(flagBool("error_on_memory_exhausted", "-M"))
	check(flagInt("backlog_queue_limit", "-b"))
	check(flagInt("requests_per_event", "-R"))
	if b, ok := p["binding_protocol"]; ok && b != "" {
		switch b {
		case "ascii", "auto":
		case "binary":
			b = "auto"
		default:
			check(fmt.Errorf("binding_protocol %q: want ascii, auto or binary", b))
		}
		args = append(args, "-B", b)
	}
	check(flagBool("disable_flush_all", "-F"))
	check(flagBool("maximize_core_file_limit", "-r"))
	if w, ok, err := p.bool("watch"); err != nil {
		check(err)
	} else if ok && !w {
		args = append(args, "-W")
	}

	// Extended options: the base alias first, so that the individual parameters
	// written after it override it.
	var o []string
	opt := func(name, token string) {
		if opts[name] {
			o = append(o, token)
		}
	}
	noModern, _, err := p.bool("no_modern")
	check(err)
	modern, _, err := p.bool("modern")
	check(err)
	switch {
	case noModern:
		opt("no_modern", "no_modern")
	case modern:
		opt("modern", "modern")
	}
	onOff := func(name string) {
		v, ok, err := p.bool(name)
		check(err)
		if !ok {
			return
		}
		if v {
			opt(name, name)
		} else {
			opt("no_"+name, "no_"+name)
		}
	}
	onlyOn := func(name string) {
		if v, _, err := p.bool(name); err != nil {
			check(err)
		} else if v {
			opt(name, name)
		}
	}
	valued := func(param, name string) {
		if v, ok, err := p.int(param); err != nil {
			check(err)
		} else if ok {
			opt(name, name+"="+strconv.FormatInt(v, 10))
		}
	}
	onOff("slab_reassign")
	valued("slab_automove", "slab_automove")
	if h, ok := p["hash_algorithm"]; ok && h != "" {
		opt("hash_algorithm", "hash_algorithm="+h)
	}
	onOff("lru_crawler")
	onOff("lru_maintainer")
	valued("hashpower_init", "hashpower")
	valued("idle_timeout", "idle_timeout")
	onlyOn("track_sizes")
	valued("watcher_logbuf_size", "watcher_logbuf_size")
	// worker_logbuf_size is not passed: see memcachedEffects.
	// slab_chunk_max must fit max_item_size; memcached's own default (512 KB, or
	// the 1 MB page with no_modern) does not fit a small max_item_size either.
	scm, scmSet, err := p.int("slab_chunk_max")
	check(err)
	if !scmSet {
		scm = memcachedPageSize / 2
		if noModern {
			scm = memcachedPageSize
		}
	}
	if fit := fitSlabChunkMax(scm, itemMax); scmSet || fit != scm {
		opt("slab_chunk_max", "slab_chunk_max="+strconv.FormatInt(fit, 10))
	}
	onlyOn("expirezero_does_not_evict")
	onOff("maxconns_fast")
	onOff("inline_ascii_resp")
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("memcached parameters: %s", strings.Join(errs, "; "))
	}
	if len(o) > 0 {
		args = append(args, "-o", strings.Join(o, ","))
	}
	return args, nil
}

// memcachedSetting says where a parameter shows in `stats settings` and how to
// turn that value into the parameter's units.
type memcachedSetting struct {
	key  string
	conv func(string) string
}

func yesNo(invert bool) func(string) string {
	return func(v string) string {
		on := v == "yes" || v == "on" || v == "1"
		if on != invert {
			return "1"
		}
		return "0"
	}
}

func divide(by int64) func(string) string {
	return func(v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return v
		}
		return strconv.FormatInt(n/by, 10)
	}
}

// memcachedStats maps parameters to `stats settings` keys.
var memcachedStats = map[string]memcachedSetting{
	"max_cache_memory":             {"maxbytes", divide(1 << 20)},
	"max_simultaneous_connections": {"maxconns", nil},
	"max_item_size":                {"item_size_max", nil},
	"chunk_size":                   {"chunk_size", nil},
	"chunk_size_growth_factor":     {"growth_factor", nil},
	"num_threads":                  {"num_threads", nil},
	"cas_disabled":                 {"cas_enabled", yesNo(true)},
	"error_on_memory_exhausted":    {"evictions", yesNo(true)},
	"disable_flush_all":            {"flush_enabled", yesNo(true)},
	"backlog_queue_limit":          {"tcp_backlog", nil},
	"requests_per_event":           {"reqs_per_event", nil},
	"binding_protocol": {"binding_protocol", func(v string) string {
		if v == "auto-negotiate" {
			return "auto"
		}
		return v
	}},
	"slab_reassign":       {"slab_reassign", yesNo(false)},
	"slab_automove":       {"slab_automove", nil},
	"hash_algorithm":      {"hash_algorithm", nil},
	"lru_crawler":         {"lru_crawler", yesNo(false)},
	"lru_maintainer":      {"lru_maintainer_thread", yesNo(false)},
	"hashpower_init":      {"hashpower_init", nil},
	"idle_timeout":        {"idle_timeout", nil},
	"track_sizes":         {"track_sizes", yesNo(false)},
	"watcher_logbuf_size": {"watcher_logbuf_size", divide(1 << 10)},
	"slab_chunk_max":      {"slab_chunk_max", nil},
	"maxconns_fast":       {"maxconns_fast", yesNo(false)},
	"inline_ascii_resp":   {"inline_ascii_response", yesNo(false)},
}
