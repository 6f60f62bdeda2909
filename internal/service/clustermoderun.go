package service

import (
	"context"
	"fmt"
	"slices"

	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// reconcileShards runs one pass over a group with cluster mode enabled, under
// the group's lock. Each step reads the cluster as one of its nodes sees it and
// acts only where it differs from the group's record, so a pass cut short (a
// crash, a node down) is finished by a later one:
//
//   - a shard primary that died is replaced by its most up-to-date replica
//     (CLUSTER FAILOVER TAKEOVER), as automatic failover promises; the dead
//     node is then restarted, rejoins with its nodes.conf and, finding its
//     slots taken by a newer epoch, becomes the new primary's replica;
//   - nodes the cluster does not know are introduced (CLUSTER MEET), and nodes
//     no member owns any more are forgotten (CLUSTER FORGET);
//   - replicas follow their node group's primary (CLUSTER REPLICATE), and the
//     records' roles follow the cluster's;
//   - slots nobody owns go to the primary of the node group that wants them;
//     slots owned elsewhere are moved, keys and all, by a migration job
//     (reshard.go);
//   - node groups a resharding removed are deleted once they own no slot.
func (s *Service) reconcileShards(ctx context.Context, g *replicationGroup, members []cluster) error {
	drv, ok := s.cfg.Drivers[g.Engine].(engine.Clusterer)
	if !ok {
		return fmt.Errorf("the %s engine has no cluster mode", g.Engine)
	}
	p := &shardPass{s: s, drv: drv, g: g, members: members, handles: map[string]engine.Handle{}, ids: map[string]string{}}
	p.learnIDs(ctx)
	if p.readView(ctx) {
		if failedOver, err := p.replaceDeadPrimaries(ctx); failedOver || err != nil {
			return err // the next pass sees the cluster after the takeover
		}
		p.join(ctx)
		p.alignRoles(ctx)
		p.assignSlots(ctx)
		if p.misplaced > 0 || p.openSlots(ctx) {
			s.startMigration(g)
		}
	}
	if err := p.save(); err != nil {
		return err
	}
	if err := p.abandonFailed(); err != nil {
		return err
	}
	if p.viewTrusted {
		if err := p.dropDrained(); err != nil {
			return err
		}
	}
	if err := s.fronts.serveConfig(g, s.cfg.AdvertiseHost, p.primaryAddrs(), s.log); err != nil {
		return err
	}
	return p.settle(ctx)
}

// shardPass is what one pass over a sharded group has learnt.
type shardPass struct {
	s       *Service
	drv     engine.Clusterer
	g       *replicationGroup
	members []cluster
	dirty   map[string]bool          // members whose record the pass changed
	events  []string                 // to record with the changes
	handles map[string]engine.Handle // live members' nodes, by member ID
	ids     map[string]string        // cluster node IDs, by member ID

	view      engine.ClusterView
	nodes     map[string]engine.ClusterNode // by node ID, as the view has them
	masterOf  map[string]string             // a node's shard primary, by node ID
	owner     []string                      // each slot's owner's node ID ("" unowned)
	primaries map[string]string             // each node group's primary member ID
	misplaced int                           // slots owned by another node group than the one that wants them
	viewOK    bool
	// viewTrusted: the view comes from a node that owns slots and finds the
	// cluster ok, not from a fallback; only such a view may drive what cannot
	// be undone (forgetting nodes, removing drained node groups).
	viewTrusted bool
	anchor      engine.Handle // the live node the view was read from
	// groupDirty: the pass changed the group's record (the slots it reports).
	groupDirty bool
}

func (p *shardPass) live(m *cluster) (engine.Handle, bool) {
	h, ok := p.handles[m.ID]
	return h, ok
}

func (p *shardPass) change(m *cluster, event string) {
	if p.dirty == nil {
		p.dirty = map[string]bool{}
	}
	p.dirty[m.ID] = true
	if event != "" {
		p.events = append(p.events, event)
	}
}

// shardMembers are the members of node group id that are not being deleted.
func (p *shardPass) shardMembers(id string) []*cluster {
	var out []*cluster
	for i := range p.members {
		if m := &p.members[i]; m.NodeGroupID == id && m.Status != statusDeleting {
			out = append(out, m)
		}
	}
	return out
}

// learnIDs asks every running member for its node ID; one that answers is live.
func (p *shardPass) learnIDs(ctx context.Context) {
	for i := range p.members {
		m := &p.members[i]
		if m.ClusterNodeID != "" {
			p.ids[m.ID] = m.ClusterNodeID
		}
		if m.Status == statusDeleting || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil {
			continue
		}
		id, err := p.drv.ClusterID(ctx, *m.Nodes[0].Handle)
		if err != nil {
			continue
		}
		p.handles[m.ID], p.ids[m.ID] = *m.Nodes[0].Handle, id
		if m.ClusterNodeID != id {
			m.ClusterNodeID = id
			p.change(m, "")
		}
	}
}

// readView reads the cluster as a live member sees it. A node that has just
// joined may not know yet who owns what, so the view comes from a node that
// owns slots and finds the cluster whole, failing that from any that answers.
func (p *shardPass) readView(ctx context.Context) bool {
	h, v, trusted, ok := clusterView(ctx, p.drv, p.members)
	if !ok {
		return false
	}
	p.view, p.viewOK, p.viewTrusted, p.anchor = v, true, trusted, h
	p.nodes, p.masterOf, p.owner = map[string]engine.ClusterNode{}, map[string]string{}, v.SlotOwners()
	for _, sh := range v.Shards {
		master := ""
		if len(sh.Nodes) > 0 && sh.Nodes[0].Role == "master" {
			master = sh.Nodes[0].ID
		}
		for _, n := range sh.Nodes {
			p.nodes[n.ID], p.masterOf[n.ID] = n, master
		}
	}
	return true
}

// clusterView picks the view of the cluster to act on: that of a running
// member that owns slots and reports the cluster ok, or failing that, of any
// running member that answers.
// trusted reports that the view is of the first kind.
func clusterView(ctx context.Context, drv engine.Clusterer, members []cluster) (_ engine.Handle, _ engine.ClusterView, trusted, ok bool) {
	var fallback *engine.ClusterView
	var fallbackHandle engine.Handle
	for i := range members {
		m := &members[i]
		if m.Status == statusDeleting || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil {
			continue
		}
		h := *m.Nodes[0].Handle
		v, err := drv.ClusterState(ctx, h)
		if err != nil {
			continue
		}
		if v.State == "ok" && ownsSlots(v, m.ClusterNodeID) {
			return h, v, true, true
		}
		if fallback == nil {
			fallback, fallbackHandle = &v, h
		}
	}
	if fallback == nil {
		return engine.Handle{}, engine.ClusterView{}, false, false
	}
	return fallbackHandle, *fallback, false, true
}

// ownsSlots reports whether node id owns slots in view v.
func ownsSlots(v engine.ClusterView, id string) bool {
	for _, sh := range v.Shards {
		if len(sh.Slots) > 0 && len(sh.Nodes) > 0 && sh.Nodes[0].ID == id {
			return true
		}
	}
	return false
}

// join introduces live members the cluster does not know and makes every live
// member forget nodes that are no member's.
func (p *shardPass) join(ctx context.Context) {
	ours := map[string]bool{}
	for i := range p.members {
		if m := &p.members[i]; m.Status != statusDeleting && p.ids[m.ID] != "" {
			ours[p.ids[m.ID]] = true
		}
	}
	for i := range p.members {
		m := &p.members[i]
		if _, ok := p.live(m); !ok {
			continue
		}
		if _, known := p.nodes[p.ids[m.ID]]; !known {
			if err := p.drv.ClusterMeet(ctx, p.anchor, p.s.nodeAddr(m.Nodes[0])); err != nil {
				p.s.log.Warn("cluster meet", "group", p.g.key(), "member", m.ID, "error", err)
			}
		}
	}
	owners := map[string]bool{}
	for _, o := range p.owner {
		owners[o] = true
	}
	for id := range p.nodes {
		// A node that owns slots is never forgotten, whatever the records
		// say: its slots would be left unowned.
		if ours[id] || owners[id] || !p.viewTrusted {
			continue
		}
		for mid, h := range p.handles {
			if p.ids[mid] == id || !ours[p.ids[mid]] {
				continue
			}
			if err := p.drv.ClusterForget(ctx, h, id); err != nil {
				p.s.log.Debug("cluster forget", "group", p.g.key(), "member", mid, "node", id, "error", err)
			}
		}
	}
}

// alignRoles finds each node group's primary — the member owning its slots, or
// before it has any, the recorded primary — makes the others replicate it, and
// makes the records say so.
func (p *shardPass) alignRoles(ctx context.Context) {
	p.primaries = map[string]string{}
	owners := map[string]bool{}
	for _, o := range p.owner {
		owners[o] = true
	}
	for _, sh := range p.g.Shards {
		ms := p.shardMembers(sh.ID)
		var primary *cluster
		for _, m := range ms {
			if n, ok := p.nodes[p.ids[m.ID]]; ok && n.Role == "master" && owners[n.ID] && (primary == nil || m.Role == rolePrimary) {
				primary = m
			}
		}
		if primary == nil {
			for _, m := range ms {
				if _, ok := p.live(m); ok && m.Role == rolePrimary {
					primary = m
				}
			}
		}
		if primary == nil {
			continue
		}
		p.primaries[sh.ID] = primary.ID
		pid := p.ids[primary.ID]
		for _, m := range ms {
			h, ok := p.live(m)
			n, known := p.nodes[p.ids[m.ID]]
			if m == primary || !ok || !known || n.Role == "master" && owners[n.ID] || p.follows(ctx, m, primary, false) {
				continue
			}
			if err := p.drv.ClusterReplicate(ctx, h, pid); err != nil {
				p.s.log.Debug("cluster replicate", "group", p.g.key(), "member", m.ID, "error", err)
			}
		}
		for _, m := range ms {
			role := roleReplica
			if m == primary {
				role = rolePrimary
			}
			hold := role == rolePrimary && holdsPrimary(p.g, p.g.Status, len(ms))
			if m.Role == role && m.HoldForFailover == hold {
				continue
			}
			event := ""
			if role == rolePrimary && m.Role != rolePrimary {
				event = fmt.Sprintf("%s is now the primary of node group %s", m.ID, sh.ID)
			}
			if m.HoldForFailover != hold {
				p.s.log.Debug("failover hold", "group", p.g.key(), "member", m.ID, "hold", hold)
			}
			m.Role, m.HoldForFailover = role, hold
			p.change(m, event)
		}
	}
}

// follows reports whether member m's node, by its own word (INFO
// replication), replicates primary's node — with its link up, if linked. A
// node's own word is current; one node's view of who replicates whom lags by a
// gossip round or more (seconds). A replica still syncing follows but is not
// linked yet: told to replicate again, it would start its sync over.
func (p *shardPass) follows(ctx context.Context, m, primary *cluster, linked bool) bool {
	h, ok := p.live(m)
	if !ok || len(primary.Nodes) == 0 {
		return false
	}
	rep, ok := p.s.cfg.Drivers[p.g.Engine].(engine.Replicator)
	if !ok {
		return false
	}
	rs, err := rep.Replication(ctx, h)
	return err == nil && rs.Role != "master" && (rs.LinkUp || !linked) && sameAddr(rs.Primary, p.s.nodeAddr(primary.Nodes[0]))
}

// assignSlots gives unowned slots to the primary of the node group that wants
// them, and counts the slots another node group owns. Slots are unowned only
// while the group is created, and are assigned only once every live member is
// in the view: a node restored from a snapshot claims the slots of its keys
// when it starts, and the view must show those claims before anything else
// is assigned.
func (p *shardPass) assignSlots(ctx context.Context) {
	wanted := slotOwners(p.g.Shards)
	unowned := map[string][]int{}
	p.misplaced = 0
	assign := p.g.Status == statusCreating
	for mid := range p.handles {
		if _, known := p.nodes[p.ids[mid]]; !known {
			assign = false
		}
	}
	claimed := make([]string, engine.ClusterSlots)
	if assign {
		claimed = p.ownClaims(ctx)
	}
	for slot, shardID := range wanted {
		pid := p.ids[p.primaries[shardID]]
		switch cur := p.owner[slot]; {
		case cur == "" && pid != "" && assign && claimed[slot] == "":
			unowned[shardID] = append(unowned[shardID], slot)
		case cur != "" && cur != pid:
			p.misplaced++
		}
	}
	for shardID, slots := range unowned {
		h, ok := p.handles[p.primaries[shardID]]
		if !ok {
			continue
		}
		// "already busy": the node took them in an earlier pass and the view
		// has not heard yet.
		if err := p.drv.ClusterAddSlots(ctx, h, slotRanges(slots)); err != nil {
			p.s.log.Debug("cluster addslots", "group", p.g.key(), "node group", shardID, "error", err)
		}
	}
	// The record shows the slots as the cluster has them.
	for i := range p.g.Shards {
		sh := &p.g.Shards[i]
		var slots []int
		if pid := p.ids[p.primaries[sh.ID]]; pid != "" {
			for slot, o := range p.owner {
				if o == pid {
					slots = append(slots, slot)
				}
			}
		}
		if got := slotRanges(slots); !sameRanges(got, sh.Slots) {
			sh.Slots = got
			p.groupDirty = true
		}
	}
}

// ownClaims maps each slot to the live member that says it owns it itself
// (members in skip aside): a node restored from a snapshot claims its keys'
// slots at start, and one node's view may not have heard of a claim yet.
func (p *shardPass) ownClaims(ctx context.Context, skip ...string) []string {
	claims := make([]string, engine.ClusterSlots)
	for mid, h := range p.handles {
		if slices.Contains(skip, mid) {
			continue
		}
		v, err := p.drv.ClusterState(ctx, h)
		if err != nil {
			continue
		}
		for slot, owner := range v.SlotOwners() {
			if owner != "" && owner == p.ids[mid] {
				claims[slot] = mid
			}
		}
	}
	return claims
}

// everyNodeOK reports whether every live member finds the cluster ok: gossip
// reaches the nodes one by one, and a node that has not heard of every slot's
// owner yet answers CLUSTERDOWN.
func (p *shardPass) everyNodeOK(ctx context.Context) bool {
	for _, h := range p.handles {
		if v, err := p.drv.ClusterState(ctx, h); err != nil || v.State != "ok" {
			return false
		}
	}
	return true
}

// ownersClaim reports whether every slot's owner, as the view has it, claims
// the slot in its own view. A node's view can credit a slot to a node that
// has given it up; clients sent there are sent back (MOVED), and no node's
// messages would ever correct the views.
func (p *shardPass) ownersClaim(ctx context.Context) bool {
	claims := p.ownClaims(ctx)
	for slot, owner := range p.owner {
		if p.ids[claims[slot]] != owner {
			p.s.log.Debug("slot owner does not claim it", "group", p.g.key(), "slot", slot, "owner", owner, "claimed by", claims[slot])
			return false
		}
	}
	return true
}

// openSlots reports whether a live primary has a slot half migrated: a
// migration was cut short and must be finished.
func (p *shardPass) openSlots(ctx context.Context) bool {
	for _, mid := range p.primaries {
		h, ok := p.handles[mid]
		if !ok {
			continue
		}
		migrating, importing, err := p.drv.ClusterOpenSlots(ctx, h)
		if err == nil && len(migrating)+len(importing) > 0 {
			return true
		}
	}
	return false
}

// save writes what the pass changed: the members' roles, holds and node IDs,
// the slots each node group owns, and the events.
func (p *shardPass) save() error {
	if len(p.dirty) == 0 && !p.groupDirty && len(p.events) == 0 {
		return nil
	}
	err := p.s.store.Update(func(tx *store.Tx) error {
		c := p.g.caller()
		for i := range p.members {
			m := &p.members[i]
			if !p.dirty[m.ID] {
				continue
			}
			fresh, err := loadCluster(tx, c, m.ID)
			if err != nil {
				continue // deleted meanwhile
			}
			fresh.Role, fresh.HoldForFailover, fresh.ClusterNodeID = m.Role, m.HoldForFailover, m.ClusterNodeID
			if err := tx.Put(tableClusters, fresh.key(), fresh); err != nil {
				return err
			}
		}
		if p.groupDirty {
			fresh, err := loadGroupRecord(tx, c, p.g.ID)
			if err != nil {
				return err
			}
			for i := range fresh.Shards {
				for _, sh := range p.g.Shards {
					if sh.ID == fresh.Shards[i].ID {
						fresh.Shards[i].Slots = sh.Slots
					}
				}
			}
			if err := tx.Put(tableGroups, fresh.key(), fresh); err != nil {
				return err
			}
		}
		for _, e := range p.events {
			if err := p.s.recordEvent(tx, c, EventsReplicationGroup, p.g.ID, "%s", e); err != nil {
				return err
			}
		}
		return nil
	})
	p.dirty, p.groupDirty, p.events = nil, false, nil
	return err
}

// dropDrained deletes the members of node groups a resharding removes once
// they own no slot, and the node groups once their members are gone. The
// cluster reconciler stops the nodes; join then makes the rest forget them.
func (p *shardPass) dropDrained() error {
	if p.s.reshardJobs.isRunning(p.g.key()) {
		return nil
	}
	owners := map[string]bool{}
	for _, o := range p.owner {
		owners[o] = true
	}
	var drained, gone []string
	for _, sh := range p.g.Shards {
		if !sh.Remove {
			continue
		}
		left, busy := 0, false
		for i := range p.members {
			if m := &p.members[i]; m.NodeGroupID == sh.ID {
				left++
				// A member not yet started may still get slots; one that
				// failed to start never will.
				busy = busy || m.Status != statusDeleting && m.Status != statusFailed && (p.ids[m.ID] == "" || owners[p.ids[m.ID]])
			}
		}
		switch {
		case left == 0:
			gone = append(gone, sh.ID)
		case !busy && len(p.shardMembers(sh.ID)) > 0:
			drained = append(drained, sh.ID)
		}
	}
	if len(drained)+len(gone) == 0 {
		return nil
	}
	return p.s.store.Update(func(tx *store.Tx) error {
		c := p.g.caller()
		fresh, err := loadGroupRecord(tx, c, p.g.ID)
		if err != nil {
			return err
		}
		for _, id := range drained {
			var ms []cluster
			for i := range p.members {
				if m, err := loadCluster(tx, c, p.members[i].ID); err == nil && m.NodeGroupID == id {
					ms = append(ms, *m)
				}
			}
			if err := markMembersDeleting(tx, ms); err != nil {
				return err
			}
			if err := p.s.recordEvent(tx, c, EventsReplicationGroup, p.g.ID, "Node group %s has no slots left; removing its nodes", id); err != nil {
				return err
			}
		}
		kept := fresh.Shards[:0]
		for _, sh := range fresh.Shards {
			if !slices.Contains(gone, sh.ID) {
				kept = append(kept, sh)
			}
		}
		fresh.Shards = kept
		return tx.Put(tableGroups, fresh.key(), fresh)
	})
}

// primaryAddrs are the addresses of the node groups' live primaries: the
// configuration endpoint's backends.
func (p *shardPass) primaryAddrs() []string {
	addrs := []string{}
	for i := range p.members {
		m := &p.members[i]
		if _, ok := p.live(m); ok && m.Role == rolePrimary {
			addrs = append(addrs, p.s.nodeAddr(m.Nodes[0]))
		}
	}
	return addrs
}

// settle moves a creating or modifying group to available once the cluster is
// whole: every member running and known to it, every replica following its
// node group's primary with its link up, every slot owned by the node group
// that wants it, no migration running or half done, no removed node group left.
func (p *shardPass) settle(ctx context.Context) error {
	g := p.g
	if g.Status != statusCreating && g.Status != statusModifying {
		return nil
	}
	for _, m := range p.members {
		if m.Status == statusFailed && g.Status == statusCreating {
			return p.s.setGroupStatus(g, statusFailed, fmt.Sprintf("Failed to create replication group %s: member %s failed: %s", g.ID, m.ID, m.FailureReason))
		}
	}
	if !p.viewOK || p.view.State != "ok" || p.misplaced > 0 || p.s.reshardJobs.isRunning(g.key()) {
		return nil
	}
	for _, o := range p.owner {
		if o == "" {
			return nil
		}
	}
	byID := map[string]*cluster{}
	for i := range p.members {
		byID[p.members[i].ID] = &p.members[i]
	}
	for i := range p.members {
		m := &p.members[i]
		if m.Status == statusDeleting {
			return nil // a removed node group's node still stopping
		}
		_, ok := p.live(m)
		n, known := p.nodes[p.ids[m.ID]]
		if !ok || !known || m.Status != statusAvailable {
			return nil
		}
		// A replica counts once it says it follows its primary with the link
		// up, and the cluster (the view) knows it: failovers are elections
		// among primaries that must know whom the candidate replicates.
		primary := byID[p.primaries[m.NodeGroupID]]
		if m.Role == roleReplica && (primary == nil || !p.follows(ctx, m, primary, true) || p.masterOf[n.ID] != p.ids[primary.ID] || n.Role == "master") {
			return nil
		}
	}
	for _, sh := range g.Shards {
		if sh.Remove {
			return nil
		}
	}
	if p.openSlots(ctx) || !p.everyNodeOK(ctx) || !p.ownersClaim(ctx) {
		return nil
	}
	done := "created"
	if g.Status == statusModifying {
		done = "modified"
	}
	return p.s.setGroupStatus(g, statusAvailable, fmt.Sprintf("Replication group %s %s", g.ID, done))
}
