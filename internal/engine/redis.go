package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ConfFile is the name of the redis.conf hoard writes in a redis or valkey
// node's Dir.
const ConfFile = "redis.conf"

// redisDriver runs redis-server, or valkey-server for engine "valkey".
type redisDriver struct {
	engine string
}

// Start writes Dir/redis.conf from spec and runs `<binary> Dir/redis.conf`.
//
// With spec.Seed the node is restored: the file is checked to be an RDB,
// copied to Dir/dump.rdb (the dbfilename hoard gives every node), loaded by
// redis as it starts, and once the node is ready the copy is removed (unless the
// node persists to RDB itself, with save points), so that a later start of the
// node does not load it again. Without a seed, a node without RDB save points
// starts empty: a dump.rdb left in Dir (by a restore interrupted by a crash of
// hoard, a disk-based replication sync or a client's SAVE) is removed first, as
// an ElastiCache node comes back empty after a replacement or a reboot.
func (d *redisDriver) Start(ctx context.Context, spec Spec) (Handle, error) {
	path, err := resolveSpec(d.engine, spec)
	if err != nil {
		return Handle{}, err
	}
	if spec.Seed != "" {
		if _, err := checkRDBFile(spec.Seed); err != nil {
			return Handle{}, fmt.Errorf("seed RDB: %w", err)
		}
	}
	dirs, err := redisDirectives(ctx, path)
	if err != nil {
		return Handle{}, err
	}
	if spec.NewClusterNode {
		if err := os.Remove(filepath.Join(spec.Dir, clusterConfigFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Handle{}, err
		}
	}
	params := copyParams(spec.Params)
	settings, _, err := buildRedisSettings(params, nil, dirs.has)
	if err != nil {
		return Handle{}, fmt.Errorf("%s parameters: %w", d.engine, err)
	}
	conf, err := redisConfFile(spec, settings)
	if err != nil {
		return Handle{}, fmt.Errorf("%s parameters: %w", d.engine, err)
	}
	confPath := filepath.Join(spec.Dir, ConfFile)
	if err := writeNodeFiles(spec.Dir, &nodeState{Engine: d.engine, Binary: path, Params: params},
		confPath, []byte(conf)); err != nil {
		return Handle{}, err
	}
	dump := filepath.Join(spec.Dir, redisDBFilename)
	persists := savesRDB(settings)
	if spec.Seed == "" {
		if !persists {
			if err := removeIfExists(dump); err != nil {
				return Handle{}, fmt.Errorf("removing the stale %s: %w", dump, err)
			}
		}
		return launch(ctx, path, []string{confPath}, spec, redisProbe)
	}

	if err := copySeed(spec.Seed, dump); err != nil {
		return Handle{}, fmt.Errorf("seed RDB: %w", err)
	}
	h, err := launch(ctx, path, []string{confPath}, spec, redisProbe)
	if err != nil {
		_ = removeIfExists(dump)
		if why := seedRefusal(spec.Dir); why != "" {
			return Handle{}, fmt.Errorf("%s refused the seed RDB %s: %s: %w", filepath.Base(path), spec.Seed, why, err)
		}
		return Handle{}, fmt.Errorf("restoring from %s: %w", spec.Seed, err)
	}
	if err := finishRestore(ctx, h, params, settings, dump, persists); err != nil {
		_ = stopProcess(context.Background(), h.PID, h.StartTime)
		_ = removeIfExists(dump)
		return Handle{}, fmt.Errorf("restoring from %s: %w", spec.Seed, err)
	}
	return h, nil
}

// finishRestore completes the start of a node that loaded a seed: it turns the
// AOF on if the parameters ask for it (the node started with it off so as to
// load the seed; redis rewrites the AOF from the loaded data), and removes the
// seed copy unless the node persists to RDB.
func finishRestore(ctx context.Context, h Handle, params map[string]string, settings []redisSetting, dump string, persists bool) error {
	for _, s := range settings {
		if s.name != "appendonly" || !strings.EqualFold(s.value(), "yes") {
			continue
		}
		c := redisClient(h, &nodeState{Params: params})
		err := c.Do(ctx, renamedCommand(params["rename-commands"], "CONFIG"), "SET", "appendonly", "yes").Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("turning the AOF on after loading: %w", err)
		}
	}
	if persists {
		return nil
	}
	if err := removeIfExists(dump); err != nil {
		return fmt.Errorf("removing the loaded seed copy: %w", err)
	}
	return syncDir(filepath.Dir(dump))
}

// savesRDB reports whether settings give the node RDB save points.
func savesRDB(settings []redisSetting) bool {
	for _, s := range settings {
		if s.name == "save" {
			return strings.TrimSpace(s.value()) != ""
		}
	}
	return false
}

// Alive reports whether h's process runs, is the one started, and answers PING
// (any reply counts, so a renamed PING or a password do not matter).
func (d *redisDriver) Alive(ctx context.Context, h Handle) bool {
	return alive(ctx, h, redisProbe)
}

// Stop ends the node: SIGTERM, StopGrace, SIGKILL.
func (d *redisDriver) Stop(ctx context.Context, h Handle) error {
	return stopProcess(ctx, h.PID, h.StartTime)
}

// Apply sets the parameters whose value differs from the node's with CONFIG SET
// (mapped as at start). Parameters redis refuses to change at runtime (immutable
// directives such as databases) and rename-commands are returned in needRestart;
// parameters without effect are recorded and not returned. needRestart is
// meaningful even when err is not nil: err reports values redis rejected.
func (d *redisDriver) Apply(ctx context.Context, h Handle, params map[string]string) ([]string, error) {
	unlock := lockDir(h.Dir)
	defer unlock()
	if err := checkNode(h); err != nil {
		return nil, err
	}
	st, err := loadState(h.Dir)
	if err != nil {
		return nil, err
	}
	c := redisClient(h, st)
	defer c.Close()
	cfg := renamedCommand(st.Params["rename-commands"], "CONFIG")
	dirs, err := liveDirectives(ctx, c, cfg)
	if err != nil {
		return nil, err
	}

	changed := map[string]bool{}
	merged := copyParams(st.Params)
	for _, n := range changedParams(st.Params, params) {
		changed[n] = true
	}
	for n := range changed {
		merged[n] = params[n]
	}
	// An alias takes its partner's new value unless both were given.
	for n := range changed {
		if a, ok := redisAliasOf[n]; ok && !changed[a] {
			merged[a] = params[n]
		}
	}
	settings, noEffect, err := buildRedisSettings(merged, changed, dirs.has)
	if err != nil {
		return nil, err
	}

	var needRestart []string
	var errs []error
	record := append([]string(nil), noEffect...)
	for _, s := range settings {
		err := c.Do(ctx, cfg, "SET", s.name, s.value()).Err()
		if err != nil && s.name == "maxclients" {
			// As at start-up, where redis lowers maxclients to what the
			// file limit allows, take the number redis offers.
			if m := tryWith.FindStringSubmatch(err.Error()); m != nil {
				err = c.Do(ctx, cfg, "SET", s.name, m[1]).Err()
			}
		}
		switch {
		case err == nil:
			record = append(record, s.sources...)
		case isRedisRestartError(err):
			needRestart = append(needRestart, s.sources...)
		default:
			errs = append(errs, fmt.Errorf("%s = %q: %w", strings.Join(s.sources, ", "), s.value(), err))
		}
	}
	if changed["rename-commands"] {
		needRestart = append(needRestart, "rename-commands")
	}
	if len(record) > 0 {
		for _, n := range record {
			st.Params[n] = merged[n]
			if a, ok := redisAliasOf[n]; ok {
				st.Params[a] = merged[a]
			}
		}
		if err := saveState(h.Dir, st); err != nil {
			errs = append(errs, err)
		}
	}
	sort.Strings(needRestart)
	return needRestart, errors.Join(errs...)
}

// tryWith finds the maxclients redis offers when the file limit is too low for
// the one asked: "... not able to handle the specified number of clients, try
// with 19968".
var tryWith = regexp.MustCompile(`number of clients, try with (\d+)`)

// isRedisRestartError reports whether a CONFIG SET error means the setting
// exists but can only be changed by a restart.
func isRedisRestartError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "immutable config") ||
		strings.Contains(msg, "protected config") ||
		strings.Contains(msg, "Unknown option")
}

// Get reads a parameter from the running node with CONFIG GET. maxmemory is the
// effective limit (after reserved memory); client-output-buffer-limit-* fields
// are read from client-output-buffer-limit; parameters with no redis
// counterpart (reserved-memory*, rename-commands, close-on-replica-write, ...)
// return the value in effect as recorded by the driver.
func (d *redisDriver) Get(ctx context.Context, h Handle, name string) (string, error) {
	if err := checkNode(h); err != nil {
		return "", err
	}
	st, err := loadState(h.Dir)
	if err != nil {
		return "", err
	}
	recorded := func() (string, error) {
		if v, ok := st.Params[name]; ok {
			return v, nil
		}
		return "", fmt.Errorf("parameter %q is not set on this node", name)
	}
	switch name {
	case "reserved-memory", "reserved-memory-percent", "rename-commands":
		return recorded()
	}
	if _, ok := redisNoEffect[name]; ok {
		return recorded()
	}
	c := redisClient(h, st)
	defer c.Close()
	cfg := renamedCommand(st.Params["rename-commands"], "CONFIG")
	if class, field, ok := parseOutputLimitParam(name); ok {
		v, err := configGet(ctx, c, cfg, "client-output-buffer-limit")
		if err != nil {
			return "", err
		}
		return outputLimitField(v, class, field)
	}
	v, err := configGet(ctx, c, cfg, name)
	if errors.Is(err, errNoSuchConfig) {
		return recorded()
	}
	return v, err
}

var errNoSuchConfig = errors.New("no such config")

// configGet runs CONFIG GET name (through the possibly renamed CONFIG) and
// returns the value of name.
func configGet(ctx context.Context, c *redis.Client, cfg, name string) (string, error) {
	m, err := configGetAll(ctx, c, cfg, name)
	if err != nil {
		return "", err
	}
	v, ok := m[name]
	if !ok {
		return "", fmt.Errorf("%q: %w", name, errNoSuchConfig)
	}
	return v, nil
}

// configGetAll runs CONFIG GET pattern and returns the pairs.
func configGetAll(ctx context.Context, c *redis.Client, cfg, pattern string) (map[string]string, error) {
	res, err := c.Do(ctx, cfg, "GET", pattern).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	switch r := res.(type) {
	case []interface{}:
		for i := 0; i+1 < len(r); i += 2 {
			out[fmt.Sprint(r[i])] = fmt.Sprint(r[i+1])
		}
	case map[interface{}]interface{}:
		for k, v := range r {
			out[fmt.Sprint(k)] = fmt.Sprint(v)
		}
	default:
		return nil, fmt.Errorf("CONFIG GET %s: unexpected reply %T", pattern, res)
	}
	return out, nil
}

// parseOutputLimitParam splits client-output-buffer-limit-<class>-<field>.
func parseOutputLimitParam(name string) (class, field string, ok bool) {
	rest, ok := strings.CutPrefix(name, "client-output-buffer-limit-")
	if !ok {
		return "", "", false
	}
	for _, f := range redisOutputFields {
		if c, ok := strings.CutSuffix(rest, "-"+f); ok {
			switch c {
			case "normal", "replica", "slave", "pubsub":
				return c, f, true
			}
		}
	}
	return "", "", false
}

// outputLimitField picks a class's field out of redis's client-output-buffer-limit
// value, e.g. "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60".
func outputLimitField(v, class, field string) (string, error) {
	f := strings.Fields(v)
	for i := 0; i+3 < len(f); i += 4 {
		c := f[i]
		if c == "replica" {
			c = "slave"
		}
		want := class
		if want == "replica" {
			want = "slave"
		}
		if c != want {
			continue
		}
		for j, name := range redisOutputFields {
			if name == field {
				return f[i+1+j], nil
			}
		}
	}
	return "", fmt.Errorf("client-output-buffer-limit %q has no class %s", v, class)
}

// openNode checks the handle's process is the node's and connects to it; st
// is the node's recorded state (its parameters: password, renamed commands).
// The caller closes c.
func openNode(h Handle) (c *redis.Client, st *nodeState, err error) {
	if err := checkNode(h); err != nil {
		return nil, nil, err
	}
	if st, err = loadState(h.Dir); err != nil {
		return nil, nil, err
	}
	return redisClient(h, st), st, nil
}

// redisClient connects to the node with the password it was given, if any.
func redisClient(h Handle, st *nodeState) *redis.Client {
	return newRedisClient("tcp", hostPort(h.Host, h.Port), st.Params["requirepass"])
}

func newRedisClient(network, addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Network:                  network,
		Addr:                     addr,
		Password:                 password,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		PoolSize:                 1,
		MaxRetries:               -1,
		DialTimeout:              2 * time.Second,
		ReadTimeout:              5 * time.Second,
		WriteTimeout:             5 * time.Second,
		ContextTimeoutEnabled:    true,
	})
}

// redisProbe sends PING over a fresh connection. Any reply means the node
// answers; -LOADING means it is still loading its dataset.
func redisProbe(ctx context.Context, addr string) error {
	c, err := dialProbe(ctx, addr, "PING\r\n")
	if err != nil {
		return err
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(line, "-LOADING"):
		return errNotReady
	case strings.HasPrefix(line, "+"), strings.HasPrefix(line, "-"):
		return nil
	}
	return fmt.Errorf("unexpected reply to PING: %q", line)
}

// directiveSet is the set of config directives of a redis binary.
type directiveSet map[string]bool

func (s directiveSet) has(name string) bool { return s[name] }

// liveDirectives reads the directive list of a running node.
func liveDirectives(ctx context.Context, c *redis.Client, cfg string) (directiveSet, error) {
	m, err := configGetAll(ctx, c, cfg, "*")
	if err != nil {
		return nil, fmt.Errorf("CONFIG GET *: %w", err)
	}
	s := directiveSet{}
	for k := range m {
		s[k] = true
	}
	return s, nil
}

// The directive lists of the binaries seen so far, learnt once per binary (by
// path, size and modification time).
var directiveCache struct {
	sync.Mutex
	m map[string]directiveSet
}

// redisDirectives returns the config directives of the redis or valkey binary at
// path: CONFIG GET * of a throwaway instance that listens only on a unix socket
// in a temporary directory.
func redisDirectives(ctx context.Context, path string) (directiveSet, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
	directiveCache.Lock()
	defer directiveCache.Unlock()
	if s, ok := directiveCache.m[key]; ok {
		return s, nil
	}
	s, err := probeRedisDirectives(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("learning the config directives of %s: %w", path, err)
	}
	if directiveCache.m == nil {
		directiveCache.m = map[string]directiveSet{}
	}
	directiveCache.m[key] = s
	return s, nil
}

func probeRedisDirectives(ctx context.Context, path string) (directiveSet, error) {
	tmp, err := os.MkdirTemp("", "hoard-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	sock := filepath.Join(tmp, "probe.sock")
	if len(sock) > 100 { // sun_path is 108 bytes
		os.RemoveAll(tmp)
		if tmp, err = os.MkdirTemp("/tmp", "hoard-probe-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		sock = filepath.Join(tmp, "probe.sock")
	}
	args := []string{"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", tmp, "--daemonize", "no", "--logfile", ""}
	s, err := startProcess(path, args, tmp, "", 0)
	if err != nil {
		return nil, err
	}
	defer stopProcess(context.Background(), s.handle.PID, s.handle.StartTime)

	c := newRedisClient("unix", sock, "")
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 250*time.Millisecond)
		err := c.Ping(pctx).Err()
		pcancel()
		if err == nil {
			break
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("probe instance exited (%v)%s", s.waitErr(), logTailMessage(tmp))
		case <-ctx.Done():
			return nil, fmt.Errorf("probe instance did not answer: %v%s", err, logTailMessage(tmp))
		case <-time.After(readyPollInterval):
		}
	}
	return liveDirectives(ctx, c, "CONFIG")
}
