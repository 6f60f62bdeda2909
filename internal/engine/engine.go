package engine

import "context"

// Spec is what a node should be.
type Spec struct {
	Engine string // "redis", "valkey" or "memcached"
	Binary string // path of the engine binary
	Dir    string // the node's own working directory; Start creates it
	Host   string // address the node binds and clients connect to, e.g. 127.0.0.1
	Port   int
	// Params are ElastiCache parameter values by their ElastiCache names (the
	// family's defaults, node-type-specific values such as maxmemory or
	// max_cache_memory, and the group's overrides). The driver maps them to the
	// engine's own configuration; names it has no mapping for are ignored.
	Params map[string]string
	// SeedRDB names an RDB file the node loads its data from when it starts (a
	// restore); "" starts the node empty. The file is copied, never moved or changed.
	SeedRDB string
}

// Handle identifies a running node process. It is persisted, so that a restarted
// hoard can find the process again and check it is the one it started.
type Handle struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"` // /proc/<pid>/stat start time: with PID, names one process
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Dir       string `json:"dir"`
}

// Driver runs nodes of one engine.
type Driver interface {
	// Start launches a node in its own session (it outlives hoard) and returns once
	// it accepts connections, or an error saying why it could not start (with the
	// tail of its log).
	Start(ctx context.Context, spec Spec) (Handle, error)
	// Alive reports whether h's process still runs and is the process Start started
	// (not a recycled PID), and answers on its port.
	Alive(ctx context.Context, h Handle) bool
	// Stop ends the node: SIGTERM, a grace period, then SIGKILL. Stopping a node
	// that is already gone is not an error.
	Stop(ctx context.Context, h Handle) error
	// Apply sets parameters on the running node where the engine can change them at
	// runtime, and returns the names it could not apply without a restart.
	// Parameters whose value is already in effect are skipped, and parameters
	// without effect (see ParameterEffects) are recorded but never returned.
	// needRestart is meaningful even when err is not nil; err then reports
	// values the engine rejected.
	Apply(ctx context.Context, h Handle, params map[string]string) (needRestart []string, err error)
	// Get reads the running node's value of a parameter (for tests and inspection),
	// in the parameter's units. Mapped parameters read back their effect (redis
	// maxmemory is the limit after reserved memory; memcached max_cache_memory is
	// -m); parameters without an engine counterpart return the recorded value.
	Get(ctx context.Context, h Handle, name string) (string, error)
}

// Snapshotter is implemented by drivers whose engine can write a point-in-time
// copy of a running node's data (redis and valkey: an RDB file).
type Snapshotter interface {
	// Snapshot writes a consistent point-in-time RDB of the running node to a new
	// file at path (created with 0600, fsynced before returning) and returns its
	// size. The node keeps serving meanwhile. On error no file is left at path.
	Snapshot(ctx context.Context, h Handle, path string) (int64, error)
}
