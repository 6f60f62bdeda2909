package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// NewDriver returns the Driver for engine: "redis", "valkey" (the redis driver
// with valkey-server) or "memcached". Drivers hold no per-node state in memory:
// everything a driver needs about a node is in its Handle and in the node's
// directory, so a new driver value (after a restart of hoard) drives nodes an
// earlier one started.
func NewDriver(engine string) (Driver, error) {
	switch engine {
	case "redis", "valkey":
		return &redisDriver{engine: engine}, nil
	case "memcached":
		return &memcachedDriver{}, nil
	}
	return nil, fmt.Errorf("unknown engine %q (want redis, valkey or memcached)", engine)
}

// Engines lists the engines NewDriver knows.
func Engines() []string { return []string{"memcached", "redis", "valkey"} }

var (
	_ Driver = (*redisDriver)(nil)
	_ Driver = (*memcachedDriver)(nil)
)

// defaultBinary is the binary of engine when a Spec names none.
func defaultBinary(engine string) string {
	switch engine {
	case "redis":
		return DefaultBinaries.Redis
	case "valkey":
		return DefaultBinaries.Valkey
	case "memcached":
		return DefaultBinaries.Memcached
	}
	return ""
}

// resolveSpec checks spec for engine and returns the absolute path of its binary.
// A missing binary is reported here, before anything is started.
func resolveSpec(engine string, spec Spec) (string, error) {
	if spec.Engine != "" && spec.Engine != engine {
		return "", fmt.Errorf("spec is for engine %q, driver runs %q", spec.Engine, engine)
	}
	if spec.Dir == "" {
		return "", errors.New("spec has no Dir")
	}
	if spec.Host == "" {
		return "", errors.New("spec has no Host")
	}
	if spec.Port <= 0 || spec.Port > 65535 {
		return "", fmt.Errorf("spec port %d out of range", spec.Port)
	}
	bin := spec.Binary
	if bin == "" {
		bin = defaultBinary(engine)
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s engine binary %q not found: %w", engine, bin, err)
	}
	return path, nil
}

// nodeState is what a driver keeps in a node's directory (file hoard-node.json):
// the binary it runs and the ElastiCache parameter values in effect on the
// running node (those given at start, updated by Apply for what it applied).
type nodeState struct {
	Engine string            `json:"engine"`
	Binary string            `json:"binary"`
	Params map[string]string `json:"params"`
	// Handle is the node's handle once it has started.
	Handle *Handle `json:"handle,omitempty"`
}

// HandleInDir returns the handle of the node last started in dir, as the driver
// recorded it there. It lets a caller find (and Stop) a node whose handle it
// failed to store, e.g. when hoard died between Start and saving the handle.
// Check the handle with Alive before using it as a live node.
func HandleInDir(dir string) (Handle, bool) {
	st, err := loadState(dir)
	if err != nil || st.Handle == nil {
		return Handle{}, false
	}
	return *st.Handle, true
}

// writeNodeFiles creates dir and writes the node's state file and, when
// confPath is set, its configuration file.
func writeNodeFiles(dir string, st *nodeState, confPath string, conf []byte) error {
	unlock := lockDir(dir)
	defer unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("node directory: %w", err)
	}
	if confPath != "" {
		if err := writeFileAtomic(confPath, conf, 0o600); err != nil {
			return err
		}
	}
	return saveState(dir, st)
}

// recordHandle adds the handle of a started node to its state file.
func recordHandle(h Handle) error {
	unlock := lockDir(h.Dir)
	defer unlock()
	st, err := loadState(h.Dir)
	if err != nil {
		return err
	}
	st.Handle = &h
	return saveState(h.Dir, st)
}

func loadState(dir string) (*nodeState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &nodeState{Params: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var st nodeState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Params == nil {
		st.Params = map[string]string{}
	}
	return &st, nil
}

func saveState(dir string, st *nodeState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	// 0600: the parameters may include a password (requirepass).
	return writeFileAtomic(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

// checkNode returns an error unless h's process runs and listens on h's port, so
// that Apply and Get never talk to another process that took over the port.
func checkNode(h Handle) error {
	if !running(h.PID, h.StartTime) {
		return fmt.Errorf("node pid %d (port %d) is not running", h.PID, h.Port)
	}
	if !listensOn(h.PID, h.Port) {
		return fmt.Errorf("node pid %d does not listen on port %d", h.PID, h.Port)
	}
	return nil
}

func copyParams(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// changedParams returns the names of params whose value differs from (or is
// absent in) running, sorted.
func changedParams(running, params map[string]string) []string {
	var out []string
	for n, v := range params {
		if old, ok := running[n]; ok && old == v {
			continue
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Effect says what a driver does with an ElastiCache parameter.
type Effect string

const (
	// Applied: the parameter is an engine setting of the same meaning — a redis
	// config directive of the same name, or one memcached flag or -o option.
	Applied Effect = "applied"
	// Mapped: the parameter is translated, alone or with others, into engine
	// settings of another name or form.
	Mapped Effect = "mapped"
	// NoEffect: the parameter is accepted and recorded but changes nothing in the
	// engine.
	NoEffect Effect = "no-effect"
)

// ParamEffect describes the handling of one ElastiCache parameter.
type ParamEffect struct {
	Effect Effect `json:"effect"`
	// Target is the engine setting it becomes: a redis directive, or memcached
	// flags/options such as "-m" or "-o slab_reassign".
	Target string `json:"target,omitempty"`
	// Runtime reports whether Apply changes it on a running node; when false a
	// change is returned in needRestart (unless the effect is NoEffect).
	Runtime bool   `json:"runtime"`
	Note    string `json:"note,omitempty"`
}

// ParameterEffects returns, for engine, the handling of every ElastiCache
// parameter of its catalogue families (internal/catalog/families), keyed by
// name. Parameters not listed are passed through to redis when the binary has a
// directive of that name and are ignored by memcached.
//
// For redis and valkey the table says what happens with a binary that has the
// directive; ResolveParameterEffects gives the answer for a given binary.
func ParameterEffects(engine string) map[string]ParamEffect {
	var src map[string]ParamEffect
	switch engine {
	case "redis", "valkey":
		src = redisEffects()
	case "memcached":
		src = memcachedEffects
	default:
		return nil
	}
	out := make(map[string]ParamEffect, len(src))
	for k, v := range src {
		out[k] = v
	}
	return out
}

// noteList joins notes for display.
func noteList(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// ResolveParameterEffects is ParameterEffects for a given binary (a path or a
// name on PATH): redis parameters whose directive the binary lacks, and
// memcached -o options the binary rejects, are NoEffect.
func ResolveParameterEffects(ctx context.Context, engine, binary string) (map[string]ParamEffect, error) {
	table := ParameterEffects(engine)
	if table == nil {
		return nil, fmt.Errorf("unknown engine %q", engine)
	}
	if binary == "" {
		binary = defaultBinary(engine)
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("%s engine binary %q not found: %w", engine, binary, err)
	}
	switch engine {
	case "memcached":
		opts, err := memcachedOptions(ctx, path)
		if err != nil {
			return nil, err
		}
		for n, e := range table {
			if e.Effect != NoEffect && !memcachedOptionSupported(n, opts) {
				table[n] = ParamEffect{Effect: NoEffect, Note: noteList(filepath.Base(path)+" rejects "+e.Target, e.Note)}
			}
		}
	default:
		dirs, err := redisDirectives(ctx, path)
		if err != nil {
			return nil, err
		}
		for n, e := range table {
			if e.Effect == NoEffect || n == "rename-commands" {
				continue
			}
			target := strings.Fields(e.Target)[0]
			ok := dirs.has(target)
			if a, isAlias := redisAliasOf[n]; isAlias && e.Effect == Applied {
				ok = ok || dirs.has(a)
			}
			if !ok {
				table[n] = ParamEffect{Effect: NoEffect, Note: filepath.Base(path) + " has no " + target + " directive"}
				continue
			}
			e.Note = strings.TrimSuffix(strings.TrimSuffix(e.Note, noDirectiveNote), "; ")
			table[n] = e
		}
	}
	return table, nil
}
