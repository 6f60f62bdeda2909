package service

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// A replication group with cluster mode enabled is a real Redis Cluster: every
// member node runs with cluster-enabled yes (its parameter group is a
// .cluster.on one), and the group's node groups (shards) are each a primary
// member and its replicas, named <group>-<node group>-<nnn> as ElastiCache
// names them. The group's record holds, per shard, the hash slots it should own
// (Want); the reconciler (clustermoderun.go) makes the cluster match: it
// introduces the nodes to each other, makes replicas follow their shard's
// primary, assigns unowned slots, migrates slots with their keys when a
// resharding moved them (reshard.go), and removes drained shards. Since Want is
// recorded before anything moves, a resharding cut short by a crash resumes.

// maxShards is ElastiCache's limit of node groups per replication group.
const maxShards = 500

// shard is one node group of a group with cluster mode enabled.
type shard struct {
	ID   string             `json:"id"`   // 0001, 0002, ... or as the request named it
	Want []engine.SlotRange `json:"want"` // the slots it should own
	// Slots are the slots it owns, as the cluster last reported them.
	Slots []engine.SlotRange `json:"slots,omitempty"`
	// Remove: a resharding removes the shard once its slots have moved away.
	Remove     bool `json:"remove,omitempty"`
	NextMember int  `json:"nextMember"`
}

// shardRequest is one node group a request asks for.
type shardRequest struct {
	id       string
	slots    []engine.SlotRange
	replicas int
}

// requestedClusterMode tells whether a CreateReplicationGroup asks for cluster
// mode: by ClusterMode, by more than one node group, by a parameter group with
// cluster-enabled yes, or by restoring a snapshot of a group with cluster mode
// enabled. They must agree.
func (s *Service) requestedClusterMode(c Caller, in *ecapi.CreateReplicationGroupMessage) (bool, error) {
	byShards := in.NumNodeGroups != nil && *in.NumNodeGroups > 1 || len(in.NodeGroupConfiguration) > 1
	mode := strings.ToLower(in.ClusterMode)
	var byGroup *bool
	if in.SnapshotName != "" { // a snapshot of a group with cluster mode enabled restores as one
		_ = s.store.View(func(tx *store.Tx) error {
			if sn, err := loadSnapshot(tx, c, in.SnapshotName); err == nil && sn.sharded() {
				byShards = true
			}
			return nil
		})
	}
	if in.CacheParameterGroupName != "" {
		err := s.store.View(func(tx *store.Tx) error {
			pg, err := loadGroup(tx, c, strings.ToLower(in.CacheParameterGroupName))
			if err == nil {
				on := pg.Values["cluster-enabled"] == "yes"
				byGroup = &on
			}
			return err
		})
		if err != nil {
			return false, err
		}
	}
	switch mode {
	case "", "enabled", "compatible", "disabled":
	default:
		return false, ecapi.InvalidParameterValueException.Errorf("Invalid ClusterMode %q: expected enabled, disabled or compatible.", in.ClusterMode)
	}
	enabled := byShards || mode == "enabled" || mode == "compatible" || byGroup != nil && *byGroup
	switch {
	case mode == "disabled" && enabled:
		return false, ecapi.InvalidParameterCombinationException.Errorf("ClusterMode disabled cannot have more than one node group or a parameter group with cluster-enabled yes.")
	case enabled && byGroup != nil && !*byGroup:
		return false, ecapi.InvalidParameterCombinationException.Errorf("Cache parameter group %s has cluster-enabled no; a replication group with cluster mode enabled needs cluster-enabled yes (a .cluster.on group).", in.CacheParameterGroupName)
	case enabled && in.AutomaticFailoverEnabled != nil && !*in.AutomaticFailoverEnabled:
		return false, ecapi.InvalidParameterCombinationException.Errorf("Automatic failover must be enabled for a replication group with cluster mode enabled.")
	case enabled && in.PrimaryClusterId != "":
		return false, ecapi.InvalidParameterCombinationException.Errorf("PrimaryClusterId cannot be used with cluster mode enabled.")
	}
	return enabled, nil
}

// shardRequests reads the node groups a cluster-mode request asks for:
// NumNodeGroups and ReplicasPerNodeGroup, or one NodeGroupConfiguration per
// node group, whose Slots, when given, must cover every slot exactly once.
// Without Slots, the slots are split evenly; from a snapshot of a sharded
// group, as that group had them.
func shardRequests(in *ecapi.CreateReplicationGroupMessage, from *snapshot) ([]shardRequest, error) {
	n := len(in.NodeGroupConfiguration)
	switch {
	case in.NumNodeGroups != nil && n > 0 && int(*in.NumNodeGroups) != n:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("NumNodeGroups (%d) and the number of NodeGroupConfiguration entries (%d) disagree.", *in.NumNodeGroups, n)
	case in.NumNodeGroups != nil:
		n = int(*in.NumNodeGroups)
	case n == 0 && from != nil && len(from.Nodes) > 1:
		n = len(from.Nodes)
	case n == 0:
		n = 1
	}
	switch {
	case n < 1:
		return nil, ecapi.InvalidParameterValueException.Errorf("NumNodeGroups must be at least 1; it was %d.", n)
	case n > maxShards:
		return nil, ecapi.NodeGroupsPerReplicationGroupQuotaExceededFault.Errorf("A replication group has at most %d node groups; %d were asked for.", maxShards, n)
	}
	if in.NumCacheClusters != nil && n > 1 {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("NumCacheClusters is for a single node group; use ReplicasPerNodeGroup with NumNodeGroups.")
	}
	replicas := 0
	switch {
	case in.ReplicasPerNodeGroup != nil:
		replicas = int(*in.ReplicasPerNodeGroup)
	case in.NumCacheClusters != nil:
		replicas = int(*in.NumCacheClusters) - 1
	}
	even := engine.EvenSlots(n)
	out := make([]shardRequest, n)
	seen := map[string]bool{}
	withSlots := 0
	for i := range out {
		r := shardRequest{id: fmt.Sprintf("%04d", i+1), slots: even[i], replicas: replicas}
		if i < len(in.NodeGroupConfiguration) {
			ngc := in.NodeGroupConfiguration[i]
			if ngc.NodeGroupId != "" {
				if !validShardID(ngc.NodeGroupId) {
					return nil, ecapi.InvalidParameterValueException.Errorf("Invalid NodeGroupId %q: expected 1 to 4 digits.", ngc.NodeGroupId)
				}
				r.id = fmt.Sprintf("%04s", ngc.NodeGroupId)
			}
			if ngc.ReplicaCount != nil {
				r.replicas = int(*ngc.ReplicaCount)
			}
			if ngc.Slots != "" {
				ranges, err := engine.ParseSlotRanges(ngc.Slots)
				if err != nil {
					return nil, ecapi.InvalidParameterValueException.Errorf("Invalid Slots of node group %s: %v", r.id, err)
				}
				r.slots = ranges
				withSlots++
			}
		}
		if seen[r.id] {
			return nil, ecapi.InvalidParameterValueException.Errorf("NodeGroupId %s is given twice.", r.id)
		}
		seen[r.id] = true
		if r.replicas < 0 || r.replicas > 5 {
			return nil, ecapi.InvalidParameterValueException.Errorf("A node group has 0 to 5 replicas; %d were asked for.", r.replicas)
		}
		out[i] = r
	}
	switch {
	case withSlots > 0 && withSlots < n:
		return nil, ecapi.InvalidParameterValueException.Errorf("Give Slots for every node group or for none.")
	case withSlots == 0 && from != nil && len(from.Nodes) == n:
		for i := range out { // as the snapshot's group had them
			if ranges, err := engine.ParseSlotRanges(from.Nodes[i].Slots); err == nil {
				out[i].slots = ranges
			}
		}
	}
	owners := make([]string, engine.ClusterSlots)
	for _, r := range out {
		for _, sr := range r.slots {
			for slot := sr.Start; slot <= sr.End; slot++ {
				if owners[slot] != "" {
					return nil, ecapi.InvalidParameterValueException.Errorf("Slot %d is given to node groups %s and %s; slot ranges must not overlap.", slot, owners[slot], r.id)
				}
				owners[slot] = r.id
			}
		}
	}
	for slot, owner := range owners {
		if owner == "" {
			return nil, ecapi.InvalidParameterValueException.Errorf("Slot %d is given to no node group; the slot ranges must cover 0-%d.", slot, engine.ClusterSlots-1)
		}
	}
	return out, nil
}

func validShardID(id string) bool {
	return len(id) >= 1 && len(id) <= 4 && strings.Trim(id, "0123456789") == ""
}

// shardMemberID names the n-th member of a node group as ElastiCache does.
func shardMemberID(groupID, shardID string, n int) string {
	return fmt.Sprintf("%s-%s-%03d", groupID, shardID, n)
}

// slotOwners maps every slot to the shard that should own it (Want), skipping
// shards being removed.
func slotOwners(shards []shard) []string {
	owners := make([]string, engine.ClusterSlots)
	for _, sh := range shards {
		if sh.Remove {
			continue
		}
		for _, r := range sh.Want {
			for slot := r.Start; slot <= r.End && slot < engine.ClusterSlots; slot++ {
				owners[slot] = sh.ID
			}
		}
	}
	return owners
}

// slotRanges folds sorted slot numbers into ranges.
func slotRanges(slots []int) []engine.SlotRange {
	var out []engine.SlotRange
	for _, s := range slots {
		if n := len(out); n > 0 && out[n-1].End == s-1 {
			out[n-1].End = s
			continue
		}
		out = append(out, engine.SlotRange{Start: s, End: s})
	}
	return out
}

// rebalance plans a resharding: the shards in keep (in their order) end up with
// slot counts as even as ElastiCache makes them, and every other shard with
// none, moving as few slots as it can: shards over their share give up their
// highest slots, and shards under it take the lowest of those given up.
// current maps each shard ID to the slots it owns now.
func rebalance(current map[string][]engine.SlotRange, keep []string) map[string][]engine.SlotRange {
	sizes := engine.EvenSlots(len(keep))
	owned := map[string][]int{}
	for id, ranges := range current {
		for _, r := range ranges {
			for s := r.Start; s <= r.End; s++ {
				owned[id] = append(owned[id], s)
			}
		}
	}
	kept := map[string]bool{}
	target := map[string]int{}
	for i, id := range keep {
		kept[id] = true
		target[id] = sizes[i][0].End - sizes[i][0].Start + 1
	}
	var pool []int
	for id, slots := range owned {
		sort.Ints(slots)
		n := target[id] // 0 for shards not kept
		if len(slots) > n {
			pool = append(pool, slots[n:]...)
			owned[id] = slots[:n]
		}
	}
	// Slots nobody owns (a cluster not yet formed) go to the pool too.
	taken := make([]bool, engine.ClusterSlots)
	for _, slots := range owned {
		for _, s := range slots {
			taken[s] = true
		}
	}
	for _, s := range pool {
		taken[s] = true
	}
	for s, t := range taken {
		if !t {
			pool = append(pool, s)
		}
	}
	sort.Ints(pool)
	out := map[string][]engine.SlotRange{}
	for _, id := range keep {
		slots := owned[id]
		if need := target[id] - len(slots); need > 0 {
			slots = append(slots, pool[:need]...)
			pool = pool[need:]
		}
		sort.Ints(slots)
		out[id] = slotRanges(slots)
	}
	for id := range current {
		if !kept[id] {
			out[id] = nil
		}
	}
	return out
}

// slotCount is how many slots ranges cover.
func slotCount(ranges []engine.SlotRange) int {
	n := 0
	for _, r := range ranges {
		n += r.End - r.Start + 1
	}
	return n
}

// describeShards fills in what a group with cluster mode enabled shows: its
// configuration endpoint and a node group per shard with its slots and members.
func (s *Service) describeShards(g *replicationGroup, members []cluster, out *ecapi.ReplicationGroup) {
	on := true
	out.ClusterEnabled, out.ClusterMode = &on, "enabled"
	out.ConfigurationEndpoint = &ecapi.Endpoint{Address: s.cfg.AdvertiseHost, Port: int32(g.ConfigPort)}
	out.NodeGroups = []ecapi.NodeGroup{}
	for _, sh := range g.Shards {
		slots := sh.Slots
		if len(slots) == 0 {
			slots = sh.Want
		}
		status := statusAvailable
		if g.Status == statusCreating || g.Status == statusDeleting || sh.Remove {
			status = g.Status
		} else if !sameRanges(sh.Slots, sh.Want) {
			status = statusModifying
		}
		ng := ecapi.NodeGroup{NodeGroupId: sh.ID, Status: status, Slots: engine.FormatSlotRanges(slots), NodeGroupMembers: []ecapi.NodeGroupMember{}}
		for _, m := range members {
			if m.NodeGroupID == sh.ID {
				ng.NodeGroupMembers = append(ng.NodeGroupMembers, ecapi.NodeGroupMember{CacheClusterId: m.ID, CacheNodeId: "0001", PreferredAvailabilityZone: m.AZ})
			}
		}
		out.NodeGroups = append(out.NodeGroups, ng)
	}
	if g.Status == statusModifying && g.SlotsToMove > 0 {
		done := min(max(float64(g.SlotsToMove-g.SlotsLeft)*100/float64(g.SlotsToMove), 0), 100)
		out.PendingModifiedValues.Resharding = &ecapi.ReshardingStatus{SlotMigration: &ecapi.SlotMigration{ProgressPercentage: &done}}
	}
}

func sameRanges(a, b []engine.SlotRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// createShardedGroup records a group with cluster mode enabled: per node group
// a primary member and its replicas, all in status creating, and the slots
// each node group should own. From a restore, node group i's primary loads the
// i-th RDB file.
func (s *Service) createShardedGroup(ctx context.Context, in *ecapi.CreateReplicationGroupMessage, g *replicationGroup, template *ecapi.CreateCacheClusterMessage, restore *restoreSource) (*ecapi.CreateReplicationGroupResult, error) {
	c := CallerOf(ctx)
	var from *snapshot
	if restore != nil {
		from = restore.snapshot
	}
	reqs, err := shardRequests(in, from)
	if err != nil {
		return nil, err
	}
	if restore != nil && len(restore.files) != len(reqs) {
		return nil, ecapi.InvalidParameterValueException.Errorf("A replication group of %d node groups restores from one RDB file per node group; %d were given.", len(reqs), len(restore.files))
	}
	nodes := 0
	for _, r := range reqs {
		nodes += 1 + r.replicas
	}
	err = s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableGroups, g.key()) {
			return ecapi.ReplicationGroupAlreadyExistsFault.Errorf("Replication group %s already exists.", g.ID)
		}
		if err := s.checkNodeQuotas(tx, c, nodes); err != nil {
			return err
		}
		var first *cluster
		for i, r := range reqs {
			sh := shard{ID: r.id, Want: r.slots}
			for k := 0; k <= r.replicas; k++ {
				sh.NextMember++
				id := shardMemberID(g.ID, r.id, sh.NextMember)
				var cl *cluster
				var err error
				if first == nil {
					cl, err = s.newMember(tx, c, g, id, r.id, template, nil)
					first = cl
					g.Engine, g.EngineVersion, g.NodeType, g.SnapshotWindow = cl.Engine, cl.EngineVersion, cl.NodeType, cl.SnapshotWindow
				} else {
					cl, err = s.newMember(tx, c, g, id, r.id, nil, first)
				}
				if err != nil {
					return err
				}
				if k == 0 {
					cl.Role = rolePrimary
					if restore != nil {
						cl.Nodes[0].Seed = restore.files[i]
					}
				}
				if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
					return err
				}
			}
			g.Shards = append(g.Shards, sh)
		}
		return s.putNewGroup(tx, g, in.Tags)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CreateReplicationGroupResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// deleteShardedGroup marks a group with cluster mode enabled deleting. With a
// final snapshot, the members stay until the reconciler has taken it
// (finalShardedSnapshot), since it needs every node group's primary.
func deleteShardedGroup(tx *store.Tx, g *replicationGroup, members []cluster, in *ecapi.DeleteReplicationGroupMessage, final string) error {
	c := g.caller()
	if in.RetainPrimaryCluster != nil && *in.RetainPrimaryCluster {
		return ecapi.InvalidParameterCombinationException.Errorf("RetainPrimaryCluster is for groups with cluster mode disabled.")
	}
	if final != "" && tx.Has(tableSnapshots, c.scope()+final) {
		return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", final)
	}
	g.Status, g.FinalSnapshot = statusDeleting, final
	if err := tx.Put(tableGroups, g.key(), g); err != nil {
		return err
	}
	if final == "" {
		return markMembersDeleting(tx, members)
	}
	return nil
}

// finalShardedSnapshot takes a deleting group's final snapshot, once, as a
// job, and reports whether it is done (available, or failed: the deletion goes
// on). One that a crash cut short is taken again, the nodes still running.
func (s *Service) finalShardedSnapshot(ctx context.Context, g *replicationGroup, members []cluster) (bool, error) {
	sn, err := s.newShardedSnapshot(g, members, g.FinalSnapshot, sourceManual)
	if err != nil {
		s.log.Error("final snapshot", "group", g.key(), "error", err)
		return true, s.store.Update(func(tx *store.Tx) error {
			return s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, "Final snapshot %s not taken: %v", g.FinalSnapshot, err)
		})
	}
	return s.finalSnapshotJob(tableSnapshots, sn.key(), sn.key(), sn, func() {
		s.takeSnapshot(context.WithoutCancel(ctx), sn)
	})
}

// markMembersDeleting marks every member deleting; the cluster reconciler stops them.
func markMembersDeleting(tx *store.Tx, members []cluster) error {
	for i := range members {
		m := &members[i]
		if m.Status == statusDeleting {
			continue
		}
		m.Status, m.HoldForFailover = statusDeleting, false
		for _, n := range m.Nodes {
			n.Status = statusDeleting
		}
		if err := tx.Put(tableClusters, m.key(), m); err != nil {
			return err
		}
	}
	return nil
}
