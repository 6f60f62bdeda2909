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
	// Seed names a data file the node loads when it starts (a restore): an RDB
	// for redis and valkey, a hoard memcached dump (internal/mcdump) for
	// memcached. "" starts the node empty. The file is never moved or changed.
	Seed string
	// ReplicaOf makes a redis or valkey node a replica of the primary at this
	// host:port from its start; "" starts a primary.
	ReplicaOf string
	// NewClusterNode: a cluster node starts as a new node (a new node ID, no
	// slots, knowing no other node), its nodes.conf of an earlier run removed.
	// An empty node that came back with its old nodes.conf would claim the
	// slots it had; should its claim win over the replica that took them
	// (config epochs tie, and redis breaks the tie by node ID), the slots'
	// data would be replaced by its emptiness.
	NewClusterNode bool
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

// Snapshotter is implemented by drivers that can write a copy of a running
// node's data: redis and valkey a point-in-time RDB file, memcached a hoard
// memcached dump (every item, read while the node serves: not one instant).
type Snapshotter interface {
	// Snapshot writes the running node's data to a new file at path (created
	// with 0600, fsynced before returning) and returns its size, in the format
	// the node's Spec.Seed takes back. The node keeps serving meanwhile. On
	// error no file is left at path.
	Snapshot(ctx context.Context, h Handle, path string) (int64, error)
}

// Replicator is implemented by drivers whose nodes replicate (redis, valkey):
// it repoints a running node and reports its replication state.
type Replicator interface {
	// Follow makes the node a replica of the primary at host:port, or a primary
	// when primary is "" (REPLICAOF NO ONE), without a restart.
	Follow(ctx context.Context, h Handle, primary string) error
	// Replication reports the node's role and replication state.
	Replication(ctx context.Context, h Handle) (ReplicationState, error)
}

// ReplicationState is a node's view of replication (redis INFO replication).
type ReplicationState struct {
	Role   string // "master" or "slave", as redis says
	Offset int64  // master_repl_offset (primary) or slave_repl_offset (replica)
	// LinkUp is true on a replica whose link to its primary is up and synced.
	LinkUp   bool
	Primary  string // host:port a replica follows
	Replicas int    // connected_slaves, on a primary
}
