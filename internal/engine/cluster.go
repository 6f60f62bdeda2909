package engine

// Redis Cluster primitives. A redis or valkey node started with the ElastiCache
// parameter cluster-enabled = yes (passed through as the cluster-enabled
// directive) is a cluster node: it keeps its cluster configuration (its node ID,
// the nodes it knows, their slots) in nodes.conf in its Dir (redis's default
// cluster-config-file, relative to the dir hoard gives it), and listens for the
// cluster bus on its port + 10000 unless cluster-port says otherwise.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ClusterSlots is the number of hash slots of a Redis Cluster.
const ClusterSlots = 16384

// clusterConfigFile is where a cluster node keeps its cluster configuration,
// in its Dir (redis's default cluster-config-file).
const clusterConfigFile = "nodes.conf"

// Clusterer is implemented by drivers whose nodes can form a Redis Cluster.
// Every call goes through the node's rename-commands (a renamed CLUSTER or
// INFO) and its password.
type Clusterer interface {
	// ClusterID returns the node's cluster node ID (CLUSTER MYID).
	ClusterID(ctx context.Context, h Handle) (string, error)
	// ClusterMeet introduces the node at peer (host:port, its client port) to
	// h's node (CLUSTER MEET); gossip then spreads it to the other nodes.
	ClusterMeet(ctx context.Context, h Handle, peer string) error
	// ClusterAddSlots assigns slot ranges to the node, which must be a primary
	// (CLUSTER ADDSLOTSRANGE; CLUSTER ADDSLOTS on engines before redis 7).
	ClusterAddSlots(ctx context.Context, h Handle, ranges []SlotRange) error
	// ClusterReplicate makes the node a replica of the primary with node ID
	// primaryID (CLUSTER REPLICATE). The node must already know that primary
	// (gossip after a meet takes a moment: callers retry "Unknown node").
	ClusterReplicate(ctx context.Context, h Handle, primaryID string) error
	// ClusterFailover asks a replica to take over from its primary, with the
	// primary's agreement (CLUSTER FAILOVER). It returns once the replica has
	// accepted; the switch itself completes shortly after (see ClusterState).
	ClusterFailover(ctx context.Context, h Handle) error
	// ClusterTakeover makes a replica the primary of its shard without its
	// primary's agreement nor the other primaries' votes (CLUSTER FAILOVER
	// TAKEOVER): for a primary the caller knows is dead. The replica takes
	// the slots at once, with a new config epoch that gossip spreads.
	ClusterTakeover(ctx context.Context, h Handle) error
	// ClusterForget removes the node nodeID from h's node's table (CLUSTER
	// FORGET); a node it does not know counts as forgotten. Redis refuses to
	// forget the node itself or its primary. A forgotten node is ignored in
	// gossip for 60 s only: every remaining node must forget it within that
	// time, or one that still knows it tells the others about it again.
	ClusterForget(ctx context.Context, h Handle, nodeID string) error
	// ClusterMigrateSlots moves the slots and their keys from the primary src
	// to the primary dst as redis-cli --cluster reshard does, and tells the
	// primaries in others (best effort: dead or failing ones are skipped) that
	// dst owns them. It returns the number of keys moved. Clients that follow
	// ASK and MOVED redirects may read and write the slots meanwhile.
	// Interrupted (hoard killed, a node failing), it can be called again with
	// the same slots and finishes the move; slots already moved count no key.
	// A primary left without slots becomes a replica of dst (redis's
	// cluster-allow-replica-migration, on by default).
	ClusterMigrateSlots(ctx context.Context, src, dst Handle, slots []int, others []Handle) (keysMoved int64, err error)
	// ClusterOpenSlots reports the slots the node is migrating (to the node
	// ID given) and importing (from the node ID given): what an interrupted
	// ClusterMigrateSlots leaves behind.
	ClusterOpenSlots(ctx context.Context, h Handle) (migrating, importing map[int]string, err error)
	// ClusterStableSlots clears the node's migrating or importing state of
	// the slots (CLUSTER SETSLOT STABLE), without touching their keys.
	ClusterStableSlots(ctx context.Context, h Handle, slots []int) error
	// ClusterState reports the cluster as the node sees it (CLUSTER INFO, and
	// CLUSTER SHARDS or, on engines without it, CLUSTER NODES).
	ClusterState(ctx context.Context, h Handle) (ClusterView, error)
}

var _ Clusterer = (*redisDriver)(nil)

// SlotRange is a range of hash slots, both ends inclusive, within 0..16383.
type SlotRange struct{ Start, End int }

// ClusterView is a node's view of its cluster.
type ClusterView struct {
	State  string // cluster_state: "ok" or "fail"
	Known  int    // cluster_known_nodes
	Shards []ClusterShard
}

// SlotOwners maps each slot to the node ID of the primary that owns it in
// the view ("" for a slot the view knows no owner of).
func (v ClusterView) SlotOwners() []string {
	owners := make([]string, ClusterSlots)
	for _, sh := range v.Shards {
		if len(sh.Nodes) == 0 || sh.Nodes[0].Role != "master" {
			continue
		}
		for _, r := range sh.Slots {
			for slot := r.Start; slot <= r.End && slot < ClusterSlots; slot++ {
				owners[slot] = sh.Nodes[0].ID
			}
		}
	}
	return owners
}

// ClusterShard is a primary with its replicas. Shards with slots come first,
// by their first slot.
type ClusterShard struct {
	Slots []SlotRange
	Nodes []ClusterNode // primary first
}

// ClusterNode is one node of a shard.
type ClusterNode struct {
	ID     string
	Addr   string // host:port of its client port
	Role   string // "master" or "replica"
	Offset int64  // replication offset (0 when read from CLUSTER NODES)
	// Healthy is CLUSTER SHARDS health "online" (CLUSTER NODES: connected and
	// not failing). Redis reports a replica whose replication offset is still 0
	// as "loading", not online: a replica of a primary that has had no write yet
	// is not healthy until the primary's first replication PING
	// (repl-ping-replica-period, 10 s by default).
	Healthy bool
}

// EvenSlots splits the slots 0..16383 into n contiguous ranges as ElastiCache
// does: sizes differ by at most one, the larger ones first (3 shards:
// 0-5461, 5462-10922, 10923-16383). Each element holds one range. n outside
// 1..16384 gives nil.
func EvenSlots(n int) [][]SlotRange {
	if n < 1 || n > ClusterSlots {
		return nil
	}
	out := make([][]SlotRange, n)
	size, extra := ClusterSlots/n, ClusterSlots%n
	start := 0
	for i := range out {
		k := size
		if i < extra {
			k++
		}
		out[i] = []SlotRange{{Start: start, End: start + k - 1}}
		start += k
	}
	return out
}

// ParseSlotRanges parses ElastiCache's Slots syntax: comma-separated ranges
// "start-end" (or a single slot "n"), e.g. "0-5460" or "0-100,200-300". Each
// range must lie within 0..16383 with start <= end. Overlaps are not checked.
func ParseSlotRanges(s string) ([]SlotRange, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("slots %q: no ranges", s)
	}
	var out []SlotRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		a, b, isRange := strings.Cut(part, "-")
		if !isRange {
			b = a
		}
		start, err1 := parseSlot(strings.TrimSpace(a))
		end, err2 := parseSlot(strings.TrimSpace(b))
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("slots %q: range %q: %w", s, part, err)
		}
		if start > end {
			return nil, fmt.Errorf("slots %q: range %q ends before it starts", s, part)
		}
		out = append(out, SlotRange{Start: start, End: end})
	}
	return out, nil
}

// parseSlot parses a slot number: decimal digits only, within 0..16383.
func parseSlot(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || len(s) > 5 {
		return 0, fmt.Errorf("%q is not a slot number", s)
	}
	n, _ := strconv.Atoi(s)
	if n >= ClusterSlots {
		return 0, fmt.Errorf("slot %d is out of range 0-%d", n, ClusterSlots-1)
	}
	return n, nil
}

// FormatSlotRanges writes ranges in ElastiCache's Slots syntax ("0-100,200-300");
// every range is written start-end, a single slot too.
func FormatSlotRanges(ranges []SlotRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = strconv.Itoa(r.Start) + "-" + strconv.Itoa(r.End)
	}
	return strings.Join(parts, ",")
}

// clusterConn connects to a running node and returns the client and the node's
// name for CLUSTER; the caller closes the client.
func clusterConn(h Handle) (*redis.Client, string, *nodeState, error) {
	c, st, err := openNode(h)
	if err != nil {
		return nil, "", nil, err
	}
	return c, renamedCommand(st.Params["rename-commands"], "CLUSTER"), st, nil
}

// clusterDo runs CLUSTER <args...> on the node and returns the command.
func clusterDo(ctx context.Context, h Handle, args ...any) (*redis.Cmd, error) {
	c, cluster, _, err := clusterConn(h)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cmd := c.Do(ctx, append([]any{cluster}, args...)...)
	if err := cmd.Err(); err != nil {
		return nil, clusterErr(h, args[0], err)
	}
	return cmd, nil
}

func clusterErr(h Handle, sub any, err error) error {
	return fmt.Errorf("CLUSTER %v on %s: %w", sub, hostPort(h.Host, h.Port), err)
}

// ClusterID runs CLUSTER MYID.
func (d *redisDriver) ClusterID(ctx context.Context, h Handle) (string, error) {
	cmd, err := clusterDo(ctx, h, "MYID")
	if err != nil {
		return "", err
	}
	return cmd.Text()
}

// ClusterMeet runs CLUSTER MEET host port.
func (d *redisDriver) ClusterMeet(ctx context.Context, h Handle, peer string) error {
	host, port, err := net.SplitHostPort(peer)
	if err != nil {
		return fmt.Errorf("peer %q: %w", peer, err)
	}
	_, err = clusterDo(ctx, h, "MEET", host, port)
	return err
}

// ClusterAddSlots runs CLUSTER ADDSLOTSRANGE, or CLUSTER ADDSLOTS with every
// slot when the engine does not know ADDSLOTSRANGE (before redis 7).
func (d *redisDriver) ClusterAddSlots(ctx context.Context, h Handle, ranges []SlotRange) error {
	if len(ranges) == 0 {
		return nil
	}
	args := []any{"ADDSLOTSRANGE"}
	for _, r := range ranges {
		if r.Start < 0 || r.End >= ClusterSlots || r.Start > r.End {
			return fmt.Errorf("slot range %d-%d: not within 0-%d", r.Start, r.End, ClusterSlots-1)
		}
		args = append(args, r.Start, r.End)
	}
	_, err := clusterDo(ctx, h, args...)
	if err == nil || !isUnknownSubcommand(err) {
		return err
	}
	args = []any{"ADDSLOTS"}
	for _, r := range ranges {
		for s := r.Start; s <= r.End; s++ {
			args = append(args, s)
		}
	}
	_, err = clusterDo(ctx, h, args...)
	return err
}

// isUnknownSubcommand reports whether err is redis's answer to a subcommand it
// does not have.
func isUnknownSubcommand(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "unknown subcommand") || strings.Contains(s, "unknown command")
}

// ClusterReplicate runs CLUSTER REPLICATE primaryID.
func (d *redisDriver) ClusterReplicate(ctx context.Context, h Handle, primaryID string) error {
	_, err := clusterDo(ctx, h, "REPLICATE", primaryID)
	return err
}

// ClusterFailover runs CLUSTER FAILOVER on a replica.
func (d *redisDriver) ClusterFailover(ctx context.Context, h Handle) error {
	_, err := clusterDo(ctx, h, "FAILOVER")
	return err
}

// ClusterState runs CLUSTER INFO and CLUSTER SHARDS (CLUSTER NODES on engines
// without SHARDS, before redis 7).
func (d *redisDriver) ClusterState(ctx context.Context, h Handle) (ClusterView, error) {
	c, cluster, _, err := clusterConn(h)
	if err != nil {
		return ClusterView{}, err
	}
	defer c.Close()
	info, err := c.Do(ctx, cluster, "INFO").Text()
	if err != nil {
		return ClusterView{}, clusterErr(h, "INFO", err)
	}
	v := parseClusterInfo(info)
	sc := redis.NewClusterShardsCmd(ctx, cluster, "SHARDS")
	_ = c.Process(ctx, sc)
	switch err := sc.Err(); {
	case err == nil:
		v.Shards = shardsFromReply(sc.Val())
	case isUnknownSubcommand(err):
		nodes, err := c.Do(ctx, cluster, "NODES").Text()
		if err != nil {
			return ClusterView{}, clusterErr(h, "NODES", err)
		}
		if v.Shards, err = parseClusterNodes(nodes); err != nil {
			return ClusterView{}, clusterErr(h, "NODES", err)
		}
	default:
		return ClusterView{}, clusterErr(h, "SHARDS", err)
	}
	return v, nil
}

// parseClusterInfo reads cluster_state and cluster_known_nodes.
func parseClusterInfo(info string) ClusterView {
	var v ClusterView
	for _, line := range strings.Split(info, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "cluster_state":
			v.State = val
		case "cluster_known_nodes":
			v.Known, _ = strconv.Atoi(val)
		}
	}
	return v
}

func shardsFromReply(reply []redis.ClusterShard) []ClusterShard {
	out := make([]ClusterShard, 0, len(reply))
	for _, s := range reply {
		var sh ClusterShard
		for _, r := range s.Slots {
			sh.Slots = append(sh.Slots, SlotRange{Start: int(r.Start), End: int(r.End)})
		}
		for _, n := range s.Nodes {
			host := n.IP
			if host == "" {
				host = n.Endpoint
			}
			sh.Nodes = append(sh.Nodes, ClusterNode{ID: n.ID, Addr: net.JoinHostPort(host, strconv.FormatInt(n.Port, 10)),
				Role: n.Role, Offset: n.ReplicationOffset, Healthy: n.Health == "online"})
		}
		out = append(out, sh)
	}
	sortShards(out)
	return out
}

// sortShards puts each shard's primary first and the shards with slots first,
// by their first slot.
func sortShards(shards []ClusterShard) {
	for _, sh := range shards {
		sort.SliceStable(sh.Nodes, func(i, j int) bool {
			return sh.Nodes[i].Role == "master" && sh.Nodes[j].Role != "master"
		})
		sort.Slice(sh.Slots, func(i, j int) bool { return sh.Slots[i].Start < sh.Slots[j].Start })
	}
	first := func(sh ClusterShard) int {
		if len(sh.Slots) == 0 {
			return ClusterSlots
		}
		return sh.Slots[0].Start
	}
	sort.SliceStable(shards, func(i, j int) bool { return first(shards[i]) < first(shards[j]) })
}

// parseClusterNodes builds shards from CLUSTER NODES: one line per node,
// "id ip:port@cport[,hostname] flags master-id ping pong epoch link slot...".
// Replicas join their primary's shard; Offset is unknown there (0).
func parseClusterNodes(text string) ([]ClusterShard, error) {
	type entry struct {
		node     ClusterNode
		masterID string
		slots    []SlotRange
	}
	var entries []entry
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("line %q: too few fields", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		flags := "," + f[2] + ","
		e := entry{node: ClusterNode{ID: f[0], Addr: addr, Role: "replica",
			Healthy: f[7] == "connected" && !strings.Contains(flags, ",fail")}, masterID: f[3]}
		if strings.Contains(flags, ",master,") {
			e.node.Role, e.masterID = "master", f[0]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being migrated or imported
			}
			r, err := ParseSlotRanges(s)
			if err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			e.slots = append(e.slots, r...)
		}
		entries = append(entries, e)
	}
	idx := map[string]int{}
	var shards []ClusterShard
	for _, e := range entries {
		if e.node.Role == "master" {
			idx[e.node.ID] = len(shards)
			shards = append(shards, ClusterShard{Slots: e.slots, Nodes: []ClusterNode{e.node}})
		}
	}
	for _, e := range entries {
		if e.node.Role == "master" {
			continue
		}
		i, ok := idx[e.masterID]
		if !ok { // a replica of a primary not (yet) known: a shard of its own
			i = len(shards)
			idx[e.masterID] = i
			shards = append(shards, ClusterShard{})
		}
		shards[i].Nodes = append(shards[i].Nodes, e.node)
	}
	sortShards(shards)
	return shards, nil
}
