package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// Online resharding. ModifyReplicationGroupShardConfiguration only records the
// new layout: new node groups (members in status creating) or node groups
// marked for removal, and for every node group the slots it should own
// (rebalance moves as few as it can). The reconciler does the rest: it starts
// and joins the new nodes, and while a slot is owned by another node group than
// the one that wants it, runs a migration job that moves it, keys and all, as
// redis-cli --cluster reshard would (engine.Clusterer.ClusterMigrateSlots).
// Clients keep working throughout: redis answers ASK for keys already moved.
// The job is resumable by construction: killed at any point, the next pass
// finds the slots still misplaced, or half migrated, and moves them on; a key
// is never in neither node.

// migrationChunk is how many slots one migration call moves; the job records
// its progress between calls.
const migrationChunk = 256

// ModifyReplicationGroupShardConfiguration adds or removes node groups of a
// group with cluster mode enabled and rebalances the slots over them.
func (s *Service) ModifyReplicationGroupShardConfiguration(ctx context.Context, in *ecapi.ModifyReplicationGroupShardConfigurationMessage) (*ecapi.ModifyReplicationGroupShardConfigurationResult, error) {
	c := CallerOf(ctx)
	n := int(in.NodeGroupCount)
	switch {
	case !in.ApplyImmediately:
		return nil, ecapi.InvalidParameterValueException.Errorf("ApplyImmediately must be true: resharding starts at once.")
	case len(in.NodeGroupsToRemove) > 0 && len(in.NodeGroupsToRetain) > 0:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give NodeGroupsToRemove or NodeGroupsToRetain, not both.")
	case n < 1:
		return nil, ecapi.InvalidParameterValueException.Errorf("NodeGroupCount must be at least 1; it was %d.", n)
	case n > maxShards:
		return nil, ecapi.NodeGroupsPerReplicationGroupQuotaExceededFault.Errorf("A replication group has at most %d node groups; %d were asked for.", maxShards, n)
	}
	var g *replicationGroup
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if g, err = loadGroupRecord(tx, c, in.ReplicationGroupId); err != nil {
			return err
		}
		switch {
		case !g.ClusterMode:
			return ecapi.InvalidParameterCombinationException.Errorf("Replication group %s has cluster mode disabled; only groups with cluster mode enabled have node groups to add or remove.", g.ID)
		case g.Status != statusAvailable:
			return ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s is not available (it is %s).", g.ID, g.Status)
		case n <= len(g.Shards) && len(in.ReshardingConfiguration) > 0:
			return ecapi.InvalidParameterCombinationException.Errorf("ReshardingConfiguration is for adding node groups.")
		case n == len(g.Shards) && len(in.NodeGroupsToRemove)+len(in.NodeGroupsToRetain) > 0:
			return ecapi.InvalidParameterCombinationException.Errorf("NodeGroupsToRemove and NodeGroupsToRetain are for decreasing NodeGroupCount.")
		}
		members, err := groupMembers(tx, g)
		if err != nil {
			return err
		}
		current := map[string][]engine.SlotRange{}
		var keep []string
		for _, sh := range g.Shards {
			current[sh.ID] = sh.Want
			keep = append(keep, sh.ID)
		}
		if n > len(g.Shards) {
			added, err := s.addShards(tx, c, g, members, n-len(g.Shards), in)
			if err != nil {
				return err
			}
			keep = append(keep, added...)
		} else if n < len(g.Shards) {
			if keep, err = shardsToKeep(g, n, in.NodeGroupsToRemove, in.NodeGroupsToRetain); err != nil {
				return err
			}
		} // the same count: the slots are rebalanced over the node groups there are
		want := rebalance(current, keep)
		moved := 0
		for i := range g.Shards {
			sh := &g.Shards[i]
			sh.Remove = !slices.Contains(keep, sh.ID)
			moved += slotCount(sh.Want) - slotCount(intersect(sh.Want, want[sh.ID]))
			sh.Want = want[sh.ID]
		}
		if moved == 0 {
			return nil // already as even as can be: nothing to do
		}
		g.Status, g.SlotsToMove, g.SlotsLeft = statusModifying, moved, moved
		if err := tx.Put(tableGroups, g.key(), g); err != nil {
			return err
		}
		return s.recordEvent(tx, c, EventsReplicationGroup, g.ID, "Resharding replication group %s to %d node groups: %d slots to move", g.ID, n, moved)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.ModifyReplicationGroupShardConfigurationResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// addShards records count new node groups, each a primary and as many replicas
// as the group's node groups have now, named as ReshardingConfiguration asks or
// numbered after the highest ID, and returns their IDs.
func (s *Service) addShards(tx *store.Tx, c Caller, g *replicationGroup, members []cluster, count int, in *ecapi.ModifyReplicationGroupShardConfigurationMessage) ([]string, error) {
	if len(in.NodeGroupsToRemove)+len(in.NodeGroupsToRetain) > 0 {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("NodeGroupsToRemove and NodeGroupsToRetain are for decreasing NodeGroupCount.")
	}
	existing, next := map[string]bool{}, 0
	for _, sh := range g.Shards {
		existing[sh.ID] = true
		if k, err := strconv.Atoi(sh.ID); err == nil && k > next {
			next = k
		}
	}
	var ids []string
	for _, rc := range in.ReshardingConfiguration {
		if rc.NodeGroupId == "" || existing[fmt.Sprintf("%04s", rc.NodeGroupId)] {
			continue
		}
		if !validShardID(rc.NodeGroupId) {
			return nil, ecapi.InvalidParameterValueException.Errorf("Invalid NodeGroupId %q: expected 1 to 4 digits.", rc.NodeGroupId)
		}
		if id := fmt.Sprintf("%04s", rc.NodeGroupId); !slices.Contains(ids, id) && len(ids) < count {
			ids = append(ids, id)
		}
	}
	for len(ids) < count {
		next++
		if id := fmt.Sprintf("%04d", next); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	replicas := 0
	perShard := map[string]int{}
	for _, m := range members {
		if perShard[m.NodeGroupID]++; perShard[m.NodeGroupID]-1 > replicas {
			replicas = perShard[m.NodeGroupID] - 1
		}
	}
	if err := s.checkNodeQuotas(tx, c, count*(1+replicas)); err != nil {
		return nil, err
	}
	like := &members[0]
	for _, id := range ids {
		sh := shard{ID: id}
		for k := 0; k <= replicas; k++ {
			memberID := ""
			for memberID == "" || tx.Has(tableClusters, c.scope()+memberID) { // a name a removed member may still hold
				sh.NextMember++
				memberID = shardMemberID(g.ID, id, sh.NextMember)
			}
			cl, err := s.newMember(tx, c, g, memberID, id, nil, like)
			if err != nil {
				return nil, err
			}
			if k == 0 {
				cl.Role = rolePrimary
			}
			if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
				return nil, err
			}
		}
		g.Shards = append(g.Shards, sh)
	}
	return ids, nil
}

// shardsToKeep is the node groups left after removing those named, or keeping
// only those named; n node groups must be left.
func shardsToKeep(g *replicationGroup, n int, remove, retain []string) ([]string, error) {
	has := func(id string) bool {
		return slices.ContainsFunc(g.Shards, func(sh shard) bool { return sh.ID == id })
	}
	norm := func(ids []string) ([]string, error) {
		var out []string
		for _, id := range ids {
			id = fmt.Sprintf("%04s", strings.TrimSpace(id))
			if !has(id) {
				return nil, ecapi.InvalidParameterValueException.Errorf("Replication group %s has no node group %s.", g.ID, id)
			}
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out, nil
	}
	var keep []string
	switch {
	case len(remove) > 0:
		gone, err := norm(remove)
		if err != nil {
			return nil, err
		}
		for _, sh := range g.Shards {
			if !slices.Contains(gone, sh.ID) {
				keep = append(keep, sh.ID)
			}
		}
	case len(retain) > 0:
		kept, err := norm(retain)
		if err != nil {
			return nil, err
		}
		for _, sh := range g.Shards { // in the group's order
			if slices.Contains(kept, sh.ID) {
				keep = append(keep, sh.ID)
			}
		}
	default:
		return nil, ecapi.InvalidParameterValueException.Errorf("To decrease NodeGroupCount, name the node groups in NodeGroupsToRemove or NodeGroupsToRetain.")
	}
	if len(keep) != n {
		return nil, ecapi.InvalidParameterValueException.Errorf("Those node groups would leave %d node groups, but NodeGroupCount is %d.", len(keep), n)
	}
	return keep, nil
}

// intersect is the slots in both a and b.
func intersect(a, b []engine.SlotRange) []engine.SlotRange {
	in := make([]bool, engine.ClusterSlots)
	for _, r := range b {
		for s := r.Start; s <= r.End; s++ {
			in[s] = true
		}
	}
	var both []int
	for _, r := range a {
		for s := r.Start; s <= r.End; s++ {
			if in[s] {
				both = append(both, s)
			}
		}
	}
	return slotRanges(both)
}

// startMigration starts the group's migration job unless one is running.
func (s *Service) startMigration(g *replicationGroup) {
	key := g.key()
	if s.reshardJobs.isRunning(key) {
		return
	}
	s.reshardJobs.begin(key)
	go func() {
		defer s.reshardJobs.end(key)
		defer s.poke() // the next pass settles the group
		switch err := s.migrate(context.Background(), g.caller(), g.ID); {
		case errors.Is(err, errNotReady):
			s.log.Debug("slot migration waits", "group", key, "why", err)
		case err != nil:
			s.log.Warn("slot migration stopped; the reconciler resumes it", "group", key, "error", err)
		}
	}()
}

// errNotReady: the cluster cannot take a migration yet (a new node still joining).
var errNotReady = errors.New("not ready")

// slotMove is slots to move from one primary to another.
type slotMove struct {
	src, dst engine.Handle
	slots    []int
}

// migrate moves misplaced slots until there are none, reading the cluster
// afresh after each round (a failover may have changed the primaries).
func (s *Service) migrate(ctx context.Context, c Caller, groupID string) error {
	key := c.scope() + groupID // the group's key
	for round := 0; round < 10; round++ {
		drv, moves, others, err := s.migrationPlan(ctx, c, groupID)
		if err != nil || len(moves) == 0 {
			return err
		}
		left := 0
		for _, mv := range moves {
			left += len(mv.slots)
		}
		for _, mv := range moves {
			for start := 0; start < len(mv.slots); start += migrationChunk {
				chunk := mv.slots[start:min(start+migrationChunk, len(mv.slots))]
				unlock := s.slotMoves.lock(key)
				keys, err := drv.ClusterMigrateSlots(ctx, mv.src, mv.dst, chunk, others)
				unlock()
				s.log.Debug("slots migrated", "group", groupID, "from", mv.src.Port, "to", mv.dst.Port,
					"slots", slotRanges(chunk), "keys", keys, "error", err)
				if err != nil {
					return err
				}
				left -= len(chunk)
				s.recordSlotsLeft(c, groupID, left)
			}
		}
	}
	return fmt.Errorf("slots still misplaced after 10 rounds")
}

// migrationPlan reads the group and its cluster and lists the slots to move:
// those owned by another node group's primary than the one that wants them,
// and those a primary still has half migrated. others are the live primaries,
// told of each slot's new owner.
func (s *Service) migrationPlan(ctx context.Context, c Caller, groupID string) (engine.Clusterer, []slotMove, []engine.Handle, error) {
	var g *replicationGroup
	var members []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		if g, err = loadGroupRecord(tx, c, groupID); err == nil {
			members, err = groupMembers(tx, g)
		}
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	drv, ok := s.cfg.Drivers[g.Engine].(engine.Clusterer)
	if !ok {
		return nil, nil, nil, fmt.Errorf("the %s engine has no cluster mode", g.Engine)
	}
	byNodeID := map[string]engine.Handle{}
	primaryOf := map[string]string{} // node group → its primary's node ID
	var primaries []engine.Handle
	for _, m := range members {
		if m.Status == statusDeleting || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil || m.ClusterNodeID == "" {
			continue
		}
		byNodeID[m.ClusterNodeID] = *m.Nodes[0].Handle
		if m.Role == rolePrimary {
			primaryOf[m.NodeGroupID] = m.ClusterNodeID
			primaries = append(primaries, *m.Nodes[0].Handle)
		}
	}
	if len(primaries) == 0 {
		return nil, nil, nil, fmt.Errorf("no primary is running")
	}
	_, view, trusted, _ := clusterView(ctx, drv, members)
	if !trusted {
		return nil, nil, nil, fmt.Errorf("%w: the cluster is not ok", errNotReady)
	}
	owner := view.SlotOwners()
	wanted := slotOwners(g.Shards)
	type pair struct{ src, dst string }
	bySlot := map[int]pair{}
	for slot, shardID := range wanted {
		if dst := primaryOf[shardID]; dst != "" && owner[slot] != "" && owner[slot] != dst {
			bySlot[slot] = pair{owner[slot], dst}
		}
	}
	for src, h := range byNodeID {
		migrating, _, err := drv.ClusterOpenSlots(ctx, h)
		if err != nil {
			continue
		}
		for slot := range migrating {
			if dst := primaryOf[wanted[slot]]; dst != "" && dst != src {
				bySlot[slot] = pair{src, dst}
			}
		}
	}
	grouped := map[pair][]int{}
	for slot, pr := range bySlot {
		grouped[pr] = append(grouped[pr], slot)
	}
	var moves []slotMove
	for pr, slots := range grouped {
		src, ok1 := byNodeID[pr.src]
		dst, ok2 := byNodeID[pr.dst]
		if !ok1 || !ok2 {
			return nil, nil, nil, fmt.Errorf("slots %v: node %s or %s is not running", slotRanges(sortedInts(slots)), pr.src, pr.dst)
		}
		if err := s.awaitSlotMap(ctx, drv, dst); err != nil {
			return nil, nil, nil, fmt.Errorf("node %s: %w", pr.dst, err)
		}
		// The source must know the destination too (SETSLOT MIGRATING names it).
		if v, err := drv.ClusterState(ctx, src); err != nil || !knowsNode(v, pr.dst) {
			return nil, nil, nil, fmt.Errorf("%w: node %s does not know node %s yet", errNotReady, pr.src, pr.dst)
		}
		moves = append(moves, slotMove{src: src, dst: dst, slots: sortedInts(slots)})
	}
	return drv, moves, primaries, nil
}

// awaitSlotMap returns errNotReady until node h knows the owner of every
// slot. A node that has just joined learns the slot map from each primary's
// own messages: until then it refuses keys of a slot it sees unowned
// (CLUSTERDOWN), and redis never applies an owner's claim to a slot the node
// is importing — so a slot set importing before the owner's claim arrived
// would stay unowned for good. Such slots are made stable again, to be
// claimed at the owner's next message and imported afresh.
func (s *Service) awaitSlotMap(ctx context.Context, drv engine.Clusterer, h engine.Handle) error {
	v, err := drv.ClusterState(ctx, h)
	if err != nil {
		return err
	}
	owners := v.SlotOwners()
	n := 0
	for _, o := range owners {
		if o != "" {
			n++
		}
	}
	if n == engine.ClusterSlots {
		if v.State != "ok" { // e.g. its first seconds after (re)joining: it refuses keys
			return fmt.Errorf("%w: it finds the cluster %s", errNotReady, v.State)
		}
		return nil
	}
	if _, importing, err := drv.ClusterOpenSlots(ctx, h); err == nil {
		var stuck []int
		for slot := range importing {
			if owners[slot] == "" {
				stuck = append(stuck, slot)
			}
		}
		if err := drv.ClusterStableSlots(ctx, h, stuck); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: it knows the owner of %d of %d slots", errNotReady, n, engine.ClusterSlots)
}

// knowsNode reports whether view v has node id.
func knowsNode(v engine.ClusterView, id string) bool {
	for _, sh := range v.Shards {
		for _, n := range sh.Nodes {
			if n.ID == id {
				return true
			}
		}
	}
	return false
}

func sortedInts(v []int) []int {
	slices.Sort(v)
	return v
}

// recordSlotsLeft notes the migration's progress for DescribeReplicationGroups.
func (s *Service) recordSlotsLeft(c Caller, groupID string, left int) {
	err := s.store.Update(func(tx *store.Tx) error {
		g, err := loadGroupRecord(tx, c, groupID)
		if err != nil || g.Status != statusModifying {
			return err
		}
		g.SlotsLeft = max(left, 0)
		return tx.Put(tableGroups, g.key(), g)
	})
	if err != nil {
		s.log.Warn("recording resharding progress", "group", groupID, "error", err)
	}
}
