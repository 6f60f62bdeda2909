package service

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// Failures in groups with cluster mode enabled: a node group's primary that
// dies (replaceDeadPrimaries), TestFailover of a node group (shardFailover),
// and members that fail to start while a group grows (abandonFailed).

// replaceDeadPrimaries promotes a replica in each node group whose held
// primary has failed failoverAfter probes in a row: of the live members the
// cluster shows replicating that very primary, the one with the most
// replicated data. A node group being removed has given its slots away: its
// primary is let go instead.
func (p *shardPass) replaceDeadPrimaries(ctx context.Context) (bool, error) {
	acted := false
	rep, _ := p.s.cfg.Drivers[p.g.Engine].(engine.Replicator)
	for _, sh := range p.g.Shards {
		ms := p.shardMembers(sh.ID)
		var primary *cluster
		for _, m := range ms {
			if m.Role == rolePrimary {
				primary = m
			}
		}
		if primary == nil || !primary.HoldForFailover {
			continue
		}
		if p.s.primaryMisses.record(primary.key(), primaryDown(ctx, p.s.cfg.Drivers[p.g.Engine], primary)) < failoverAfter {
			continue
		}
		var best *cluster
		bestOffset := int64(-1)
		for _, m := range ms {
			h, live := p.live(m)
			n, known := p.nodes[p.ids[m.ID]]
			if m == primary || !live || !known || rep == nil || n.Role == "master" || p.masterOf[n.ID] != primary.ClusterNodeID || sh.Remove {
				continue
			}
			if rs, err := rep.Replication(ctx, h); err == nil && rs.Offset > bestOffset {
				best, bestOffset = m, rs.Offset
			}
		}
		if best == nil {
			p.s.primaryMisses.record(primary.key(), false)
			if err := p.s.setHold(p.g, primary.ID, false, "Primary %s stopped and no replica of it can take over; restarting it (its data is lost)"); err != nil {
				return acted, err
			}
			continue
		}
		// Not while a migration call moves slots: the call makes sure the
		// destination outranks the source before it claims a chunk
		// (engine.ClusterMigrateSlots); a takeover's new epoch, unknown to
		// the destination, would beat the claim — the destination would give
		// the chunk back and delete its keys, and the source, told it is the
		// destination's, would not claim it either.
		unlock := p.s.slotMoves.tryLock(p.g.key())
		if unlock == nil {
			p.s.log.Debug("failover waits for a slot migration call", "group", p.g.key(), "node group", sh.ID)
			continue
		}
		if stale := p.staleSlotMap(ctx, best, primary); stale != "" {
			// A takeover claims, with a new epoch that beats every other
			// claim, each slot the replica believes its primary had. One a
			// migration has already handed to another node would go back to
			// the replica — without its keys, which the other node then
			// deletes. Gossip brings the replica up to date within seconds.
			unlock()
			p.s.log.Info("failover waits for the replica's slot map", "group", p.g.key(), "node group", sh.ID, "to", best.ID, "why", stale)
			continue
		}
		p.s.primaryMisses.record(primary.key(), false)
		if p.s.log.Enabled(ctx, slog.LevelDebug) {
			p.s.log.Debug("takeover", "group", p.g.key(), "node group", sh.ID, "to", best.ID, "claims", p.creditedTo(ctx, best, primary))
		}
		err := p.drv.ClusterTakeover(ctx, p.handles[best.ID])
		unlock()
		if err != nil {
			p.s.log.Error("cluster failover", "group", p.g.key(), "node group", sh.ID, "to", best.ID, "error", err)
			continue
		}
		acted = true
		best.Role, best.HoldForFailover = rolePrimary, p.g.AutomaticFailover
		primary.Role, primary.HoldForFailover = roleReplica, false
		p.change(best, fmt.Sprintf("Automatic failover: promoted %s to primary of node group %s in place of %s", best.ID, sh.ID, primary.ID))
		p.change(primary, "")
		p.s.log.Info("replication group failed over", "group", p.g.key(), "node group", sh.ID, "from", primary.ID, "to", best.ID)
	}
	if acted {
		return true, p.save()
	}
	return false, nil
}

// abandonFailed recovers a modifying group from members whose node failed to
// start (IncreaseReplicaCount, or a resharding's new node groups): a failed
// replica is deleted; a node group whose primary failed is removed again, its
// slots planned back over the others — the resharding then moves them, and the
// group settles without it. Events say what happened.
func (p *shardPass) abandonFailed() error {
	if p.g.Status != statusModifying {
		return nil
	}
	var failed []cluster
	for _, m := range p.members {
		if m.Status == statusFailed {
			failed = append(failed, m)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return p.s.store.Update(func(tx *store.Tx) error {
		c := p.g.caller()
		g, err := loadGroupRecord(tx, c, p.g.ID)
		if err != nil {
			return err
		}
		dropped := map[string]bool{}
		for _, m := range failed {
			if err := p.s.recordEvent(tx, c, EventsReplicationGroup, g.ID, "Member %s of node group %s failed to start (%s); removing it", m.ID, m.NodeGroupID, m.FailureReason); err != nil {
				return err
			}
			if m.Role == rolePrimary {
				dropped[m.NodeGroupID] = true
			}
		}
		if len(dropped) > 0 {
			current := map[string][]engine.SlotRange{}
			var keep []string
			for _, sh := range g.Shards {
				current[sh.ID] = sh.Want
				if !sh.Remove && !dropped[sh.ID] {
					keep = append(keep, sh.ID)
				}
			}
			if len(keep) == 0 {
				return nil // nothing to fall back on: the group stays as it is
			}
			want := rebalance(current, keep)
			for i := range g.Shards {
				sh := &g.Shards[i]
				sh.Remove = sh.Remove || dropped[sh.ID]
				g.SlotsToMove += slotCount(sh.Want) - slotCount(intersect(sh.Want, want[sh.ID]))
				sh.Want = want[sh.ID]
			}
			g.SlotsLeft = g.SlotsToMove
			if err := tx.Put(tableGroups, g.key(), g); err != nil {
				return err
			}
		}
		var replicas []cluster
		for _, m := range failed {
			if m.Role != rolePrimary {
				replicas = append(replicas, m)
			}
		}
		return markMembersDeleting(tx, replicas)
	})
}

// shardFailover is TestFailover for a node group of a group with cluster mode
// enabled: its most up-to-date replica takes over with the primary's agreement
// (CLUSTER FAILOVER, which loses no acknowledged write), and the old primary
// becomes its replica. It waits until the cluster has switched; the next pass
// brings the records along.
func (s *Service) shardFailover(ctx context.Context, g *replicationGroup, members []cluster, shardID string) error {
	unlock := s.groupLocks.lock(g.key())
	defer unlock()
	var replicas []cluster
	for _, m := range members {
		if m.NodeGroupID == shardID && m.Role == roleReplica {
			replicas = append(replicas, m)
		}
	}
	if len(replicas) == 0 {
		return ecapi.InvalidReplicationGroupStateFault.Errorf("Node group %s of replication group %s has no replica to fail over to.", shardID, g.ID)
	}
	rep, ok1 := s.cfg.Drivers[g.Engine].(engine.Replicator)
	drv, ok2 := s.cfg.Drivers[g.Engine].(engine.Clusterer)
	if !ok1 || !ok2 {
		return fmt.Errorf("the %s engine has no cluster mode", g.Engine)
	}
	to := s.bestReplica(ctx, rep, replicas)
	if to == "" {
		return ecapi.TestFailoverNotAvailableFault.Errorf("No replica of node group %s is running to take over.", shardID)
	}
	i := slices.IndexFunc(replicas, func(m cluster) bool { return m.ID == to })
	h := *replicas[i].Nodes[0].Handle
	if err := awaitVoters(ctx, drv, members, replicas[i].ClusterNodeID); err != nil {
		return ecapi.TestFailoverNotAvailableFault.Errorf("Node group %s cannot fail over now: %v", shardID, err)
	}
	// A failover gives the new primary a new epoch: not while a migration
	// call moves slots (see replaceDeadPrimaries).
	unlockMoves := s.slotMoves.lock(g.key())
	defer unlockMoves()
	if err := drv.ClusterFailover(ctx, h); err != nil {
		return ecapi.TestFailoverNotAvailableFault.Errorf("Node group %s cannot fail over now: %v", shardID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rs, err := rep.Replication(ctx, h); err == nil && rs.Role == "master" {
			// The records follow at once, holds too: were the new primary to
			// die before the next pass, it must not be restarted empty.
			err := s.store.Update(func(tx *store.Tx) error {
				for _, m := range members {
					if m.NodeGroupID != shardID {
						continue
					}
					fresh, err := loadCluster(tx, g.caller(), m.ID)
					if err != nil {
						continue
					}
					fresh.Role, fresh.HoldForFailover = roleReplica, false
					if fresh.ID == to {
						fresh.Role, fresh.HoldForFailover = rolePrimary, g.AutomaticFailover
					}
					if err := tx.Put(tableClusters, fresh.key(), fresh); err != nil {
						return err
					}
				}
				return s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, "Test failover: promoted %s to primary of node group %s", to, shardID)
			})
			s.poke()
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ecapi.TestFailoverNotAvailableFault.Errorf("Node group %s did not fail over to %s within 10 seconds.", shardID, to)
}

// awaitVoters waits (up to 20 s) until every running primary knows node id as
// a replica: a failover is an election among the primaries, and one that has
// not heard through gossip that the candidate replicates refuses its vote.
// Nodes ping each other at least every half cluster-node-timeout (redis's
// default, 15 s), so gossip takes up to 7.5 s.
func awaitVoters(ctx context.Context, drv engine.Clusterer, members []cluster, id string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		waiting := ""
		for _, m := range members {
			if m.Role != rolePrimary || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil {
				continue
			}
			v, err := drv.ClusterState(ctx, *m.Nodes[0].Handle)
			if err != nil {
				continue // a dead primary does not vote
			}
			if !knowsReplica(v, id) {
				waiting = m.ID
				break
			}
		}
		if waiting == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("primary %s has not learnt that the replica follows its primary", waiting)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// knowsReplica reports whether view v shows node id as a replica of a primary.
func knowsReplica(v engine.ClusterView, id string) bool {
	for _, sh := range v.Shards {
		for _, n := range sh.Nodes[min(1, len(sh.Nodes)):] {
			if n.ID == id && n.Role != "master" && len(sh.Nodes) > 0 && sh.Nodes[0].Role == "master" {
				return true
			}
		}
	}
	return false
}

// staleSlotMap returns why replica's slot map is not current enough for it to
// take over from dead (a slot it credits to dead that a live primary claims as
// its own), or "" when it is.
func (p *shardPass) staleSlotMap(ctx context.Context, replica, dead *cluster) string {
	claims := p.ownClaims(ctx, replica.ID, dead.ID)
	v, err := p.drv.ClusterState(ctx, p.handles[replica.ID])
	if err != nil {
		return err.Error()
	}
	for slot, owner := range v.SlotOwners() {
		if owner == dead.ClusterNodeID && claims[slot] != "" {
			return fmt.Sprintf("it credits slot %d to %s, which %s owns now", slot, dead.ID, claims[slot])
		}
	}
	return ""
}

// creditedTo lists, as ranges, the slots replica's view credits to node
// dead's node: those a takeover by replica claims.
func (p *shardPass) creditedTo(ctx context.Context, replica, dead *cluster) string {
	v, err := p.drv.ClusterState(ctx, p.handles[replica.ID])
	if err != nil {
		return err.Error()
	}
	var slots []int
	for slot, owner := range v.SlotOwners() {
		if owner == dead.ClusterNodeID {
			slots = append(slots, slot)
		}
	}
	return fmt.Sprint(slotRanges(slots))
}
