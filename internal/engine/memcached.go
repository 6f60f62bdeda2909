package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/mcdump"
)

// memcachedDriver runs memcached.
type memcachedDriver struct{}

// Start runs memcached with flags built from spec.Params (see memcachedArgs).
func (d *memcachedDriver) Start(ctx context.Context, spec Spec) (Handle, error) {
	path, err := resolveSpec("memcached", spec)
	if err != nil {
		return Handle{}, err
	}
	opts, err := memcachedOptions(ctx, path)
	if err != nil {
		return Handle{}, err
	}
	params := copyParams(spec.Params)
	args, err := memcachedArgs(spec, opts)
	if err != nil {
		return Handle{}, err
	}
	if err := writeNodeFiles(spec.Dir, &nodeState{Engine: "memcached", Binary: path, Params: params}, "", nil); err != nil {
		return Handle{}, err
	}
	h, err := launch(ctx, path, args, spec, memcachedProbe)
	if err != nil || spec.Seed == "" {
		return h, err
	}
	// memcached keeps nothing on disk: a restore writes the dump's items into
	// the started node in one pass. The dump's checksum is checked as it
	// streams; a damaged or truncated dump fails the start and the node, with
	// whatever it had loaded, is stopped, so nothing half-restored is left.
	if err := loadSeed(ctx, h, spec.Seed); err != nil {
		_ = stopProcess(context.Background(), h.PID, h.StartTime)
		return Handle{}, fmt.Errorf("restoring from %s: %w", spec.Seed, err)
	}
	return h, nil
}

func loadSeed(ctx context.Context, h Handle, seed string) error {
	f, err := os.Open(seed)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = mcdump.Load(ctx, hostPort(h.Host, h.Port), bufio.NewReaderSize(f, 1<<20))
	return err
}

// Snapshot writes every item of the node (key, value, flags, remaining TTL)
// to a memcached dump at path. The dump lists keys with the LRU crawler's
// metadump, so a node running with the crawler off (ElastiCache's lru_crawler
// 0) has it turned on for the dump and off again after.
func (d *memcachedDriver) Snapshot(ctx context.Context, h Handle, path string) (int64, error) {
	unlock := lockDir(h.Dir) // no Apply may toggle the crawler meanwhile
	defer unlock()
	if err := checkNode(h); err != nil {
		return 0, err
	}
	c, err := dialMemcached(ctx, hostPort(h.Host, h.Port))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	settings, err := c.stats("settings")
	if err != nil {
		return 0, err
	}
	if settings["lru_crawler"] != "yes" {
		if err := c.simple("lru_crawler enable"); err != nil {
			return 0, fmt.Errorf("turning the LRU crawler on for the dump: %w", err)
		}
		defer func() {
			// The dump of a large cache outlasts the connection's first
			// deadline; and the crawler may still be finishing the metadump's
			// crawl (it then answers BUSY): try again for a while.
			_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
			for try := 0; try < 50; try++ {
				if err := c.simple("lru_crawler disable"); err == nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	if _, err := mcdump.DumpFile(ctx, hostPort(h.Host, h.Port), path); err != nil {
		return 0, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// Alive reports whether h's process runs, is the one started, and answers
// "version".
func (d *memcachedDriver) Alive(ctx context.Context, h Handle) bool {
	return alive(ctx, h, memcachedProbe)
}

// Stop ends the node: SIGTERM, StopGrace, SIGKILL.
func (d *memcachedDriver) Stop(ctx context.Context, h Handle) error {
	return stopProcess(ctx, h.PID, h.StartTime)
}

// Apply changes what memcached can change at runtime: slab_automove
// (`slabs automove N`), lru_crawler (`lru_crawler enable|disable`) and the
// memory limit from max_cache_memory and memcached_connections_overhead
// (`cache_memlimit`). Parameters without effect are recorded; every other
// changed parameter is returned in needRestart.
func (d *memcachedDriver) Apply(ctx context.Context, h Handle, params map[string]string) ([]string, error) {
	unlock := lockDir(h.Dir)
	defer unlock()
	if err := checkNode(h); err != nil {
		return nil, err
	}
	st, err := loadState(h.Dir)
	if err != nil {
		return nil, err
	}
	changed := changedParams(st.Params, params)
	if len(changed) == 0 {
		return nil, nil
	}
	merged := copyParams(st.Params)
	for _, n := range changed {
		merged[n] = params[n]
	}
	var opts optionSet
	if st.Binary != "" {
		opts, _ = memcachedOptions(ctx, st.Binary)
	}

	c, err := dialMemcached(ctx, hostPort(h.Host, h.Port))
	if err != nil {
		return nil, err
	}
	defer c.Close()

	var needRestart, record []string
	var errs []error
	memDone := false
	for _, n := range changed {
		v := params[n]
		switch n {
		case "slab_automove":
			mode, err := strconv.Atoi(v)
			if err != nil || mode < 0 || mode > 2 {
				errs = append(errs, fmt.Errorf("slab_automove %q: want 0, 1 or 2", v))
				continue
			}
			if err := c.simple(fmt.Sprintf("slabs automove %d", mode)); err != nil {
				errs = append(errs, fmt.Errorf("slab_automove: %w", err))
				continue
			}
			record = append(record, n)
		case "lru_crawler":
			on, _, err := mcParams(params).bool(n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			settings, err := c.stats("settings")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if (settings["lru_crawler"] == "yes") != on {
				cmd := "lru_crawler disable"
				if on {
					cmd = "lru_crawler enable"
				}
				if err := c.simple(cmd); err != nil {
					errs = append(errs, fmt.Errorf("lru_crawler: %w", err))
					continue
				}
			}
			record = append(record, n)
		case "max_cache_memory", "memcached_connections_overhead":
			if memDone {
				record = append(record, n)
				continue
			}
			memDone = true
			m, ok, err := memoryLimitMB(mcParams(merged))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				if err := c.simple(fmt.Sprintf("cache_memlimit %d", m)); err != nil {
					errs = append(errs, fmt.Errorf("%s: cache_memlimit: %w", n, err))
					continue
				}
			}
			record = append(record, "max_cache_memory", "memcached_connections_overhead")
		default:
			if e, ok := memcachedEffects[n]; ok && e.Effect == NoEffect {
				record = append(record, n)
				continue
			}
			if _, known := memcachedEffects[n]; !known || !memcachedOptionSupported(n, opts) {
				record = append(record, n) // ignored by the driver: no effect
				continue
			}
			needRestart = append(needRestart, n)
		}
	}
	if len(record) > 0 {
		for _, n := range record {
			if v, ok := merged[n]; ok {
				st.Params[n] = v
			}
		}
		if err := saveState(h.Dir, st); err != nil {
			errs = append(errs, err)
		}
	}
	sort.Strings(needRestart)
	return needRestart, errors.Join(errs...)
}

// memcachedOptionSupported reports whether the -o option a parameter becomes is
// accepted by the binary (true for parameters that are not -o options, and when
// the options are unknown).
func memcachedOptionSupported(param string, opts optionSet) bool {
	if opts == nil {
		return true
	}
	switch param {
	case "expirezero_does_not_evict", "track_sizes", "slab_automove", "hash_algorithm",
		"idle_timeout", "watcher_logbuf_size", "slab_chunk_max",
		"modern", "no_modern", "slab_reassign", "lru_crawler", "lru_maintainer",
		"maxconns_fast", "inline_ascii_resp":
		return opts[param]
	case "hashpower_init":
		return opts["hashpower"]
	}
	return true
}

// Get reads a parameter from `stats settings`, in the parameter's units:
// max_cache_memory is the effective item memory (-m) in MB, booleans are 0/1,
// log buffer sizes are in KB. A `stats settings` key (e.g. maxbytes) is also
// accepted. Parameters that memcached does not report return the value recorded
// by the driver.
func (d *memcachedDriver) Get(ctx context.Context, h Handle, name string) (string, error) {
	if err := checkNode(h); err != nil {
		return "", err
	}
	c, err := dialMemcached(ctx, hostPort(h.Host, h.Port))
	if err != nil {
		return "", err
	}
	defer c.Close()
	settings, err := c.stats("settings")
	if err != nil {
		return "", err
	}
	if s, ok := memcachedStats[name]; ok {
		if v, ok := settings[s.key]; ok {
			if s.conv != nil {
				v = s.conv(v)
			}
			return v, nil
		}
	}
	if v, ok := settings[name]; ok {
		return v, nil
	}
	st, err := loadState(h.Dir)
	if err != nil {
		return "", err
	}
	if v, ok := st.Params[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("parameter %q is not set on this node", name)
}

// memcachedProbe sends "version" over a fresh connection.
func memcachedProbe(ctx context.Context, addr string) error {
	c, err := dialProbe(ctx, addr, "version\r\n")
	if err != nil {
		return err
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "VERSION ") {
		return nil
	}
	return fmt.Errorf("unexpected reply to version: %q", line)
}

// mcConn is a minimal memcached text-protocol connection for admin commands.
type mcConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialMemcached(ctx context.Context, addr string) (*mcConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	dl := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.SetDeadline(dl)
	return &mcConn{c: c, r: bufio.NewReader(c)}, nil
}

func (m *mcConn) Close() error { return m.c.Close() }

func (m *mcConn) line() (string, error) {
	l, err := m.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// simple sends a command answered by one line, and wants OK.
func (m *mcConn) simple(cmd string) error {
	if _, err := m.c.Write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	l, err := m.line()
	if err != nil {
		return err
	}
	if l != "OK" {
		return fmt.Errorf("%s: %s", cmd, l)
	}
	return nil
}

// stats runs "stats <arg>" and returns the STAT pairs.
func (m *mcConn) stats(arg string) (map[string]string, error) {
	cmd := strings.TrimSpace("stats " + arg)
	if _, err := m.c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for {
		l, err := m.line()
		if err != nil {
			return nil, err
		}
		if l == "END" {
			return out, nil
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(l, "STAT "), " ")
		if !ok || !strings.HasPrefix(l, "STAT ") {
			return nil, fmt.Errorf("%s: unexpected line %q", cmd, l)
		}
		out[k] = v
	}
}
