package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/front"
	"github.com/hoardcache/hoard/internal/store"
)

// Each pass of the reconciler runs reconcileGroups before the clusters: it
// serves every group's endpoints, fails over a group whose primary died (when
// automatic failover is on), keeps each member's replication pointed at the
// recorded primary, and settles the group's status.
//
// The endpoints are TCP fronts in hoard's process (internal/front) on ports
// recorded with the group: PrimaryEndpoint forwards to the primary's node,
// ReaderEndpoint spreads connections over the replicas (the primary when there
// are none). A failover repoints them, closing connections to a node that is no
// longer primary so clients reconnect to the new one. While hoard is down the
// endpoints are down too (the nodes themselves keep serving on their own ports).

// groupFronts are the endpoints of one group: primary (nil with a moving
// PrimaryEndpoint, endpoint.go) and reader, or with cluster mode enabled, the
// configuration endpoint (in primary).
type groupFronts struct {
	primary, reader *front.Front
}

// frontSet holds the running endpoints, by group key.
type frontSet struct {
	mu  sync.Mutex
	all map[string]*groupFronts
}

// reconcileGroups runs one pass over every replication group.
func (s *Service) reconcileGroups(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	var groups []replicationGroup
	err := s.store.View(func(tx *store.Tx) (err error) {
		groups, err = store.ScanAs[replicationGroup](tx, tableGroups, "")
		return err
	})
	if err != nil {
		s.log.Error("reconcile: listing replication groups", "error", err)
		return
	}
	live := map[string]bool{}
	for i := range groups {
		g := &groups[i]
		live[g.key()] = true
		if err := s.reconcileGroup(ctx, g); err != nil {
			s.log.Error("reconcile replication group", "group", g.key(), "error", err)
		}
	}
	s.fronts.closeExcept(live)
}

func (s *Service) reconcileGroup(ctx context.Context, g *replicationGroup) error {
	// One actor at a time repoints a group's nodes: a pass acting on members
	// read before an API failover would undo it, and two nodes following each
	// other would both resync to nothing.
	unlock := s.groupLocks.lock(g.key())
	defer unlock()
	var members []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		members, err = groupMembers(tx, g)
		return err
	})
	if err != nil {
		return err
	}
	if g.Status == statusDeleting {
		if g.ClusterMode && len(members) > 0 && members[0].Status != statusDeleting {
			// Members stop once the final snapshot, which needs them, is done.
			if g.FinalSnapshot != "" {
				if done, err := s.finalShardedSnapshot(ctx, g, members); !done || err != nil {
					return err
				}
			}
			return s.store.Update(func(tx *store.Tx) error { return markMembersDeleting(tx, members) })
		}
		if len(members) > 0 {
			return nil // the cluster reconciler is stopping them
		}
		s.fronts.close(g.key())
		return s.store.Update(func(tx *store.Tx) error {
			if err := tx.Delete(tableGroups, g.key()); err != nil {
				return err
			}
			if err := tx.Delete(tableTags, g.arn()); err != nil {
				return err
			}
			return s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, "Replication group %s deleted", g.ID)
		})
	}
	if g.ClusterMode {
		return s.reconcileShards(ctx, g, members)
	}
	drv, ok := s.cfg.Drivers[g.Engine].(engine.Replicator)
	if !ok || len(members) == 0 {
		return nil
	}
	primary := &members[0]
	if primary.Role != rolePrimary {
		return fmt.Errorf("replication group %s has no primary", g.ID)
	}
	// A primary is down when it has failed failoverAfter probes in a row: one
	// slow answer (a long command) is not a death.
	down := s.primaryMisses.record(g.key(), primaryDown(ctx, s.cfg.Drivers[g.Engine], primary)) >= failoverAfter
	hold := holdsPrimary(g, g.Status, len(members))
	switch {
	case down && primary.HoldForFailover:
		s.primaryMisses.record(g.key(), false)
		if to := s.bestReplica(ctx, drv, members[1:]); to != "" {
			return s.failover(ctx, g, to, "Automatic failover")
		}
		// Nothing to promote: let the primary restart (empty) rather than wait
		// forever; the hold is armed again once it runs.
		return s.setHold(g, primary.ID, false, "Primary %s stopped and no replica can take over; restarting it (its data is lost)")
	case !down && primary.HoldForFailover != hold:
		if err := s.setHold(g, primary.ID, hold, ""); err != nil {
			return err
		}
	}
	s.enforceRoles(ctx, drv, members)
	s.placeEndpoint(ctx, g, members)
	if err := s.fronts.serve(g, s.cfg.AdvertiseHost, s.memberAddrs(members), s.log); err != nil {
		return err
	}
	return s.settleGroup(ctx, drv, g, members)
}

// primaryDown reports whether the primary's node has stopped.
func primaryDown(ctx context.Context, drv engine.Driver, primary *cluster) bool {
	if len(primary.Nodes) == 0 || primary.Nodes[0].Handle == nil {
		return false
	}
	return !drv.Alive(ctx, *primary.Nodes[0].Handle)
}

// bestReplica names the live replica with the most replicated data: the one
// that lost the fewest writes of the old primary.
func (s *Service) bestReplica(ctx context.Context, drv engine.Replicator, replicas []cluster) string {
	best, bestOffset := "", int64(-1)
	for _, r := range replicas {
		if r.Status == statusDeleting || len(r.Nodes) == 0 || r.Nodes[0].Handle == nil {
			continue
		}
		rs, err := drv.Replication(ctx, *r.Nodes[0].Handle)
		if err != nil {
			continue
		}
		if rs.Offset > bestOffset {
			best, bestOffset = r.ID, rs.Offset
		}
	}
	return best
}

// setHold arms or releases a primary's hold for failover (see
// cluster.HoldForFailover), with an event when one is given.
func (s *Service) setHold(g *replicationGroup, primaryID string, hold bool, event string) error {
	return s.store.Update(func(tx *store.Tx) error {
		cl, err := loadCluster(tx, g.caller(), primaryID)
		if err != nil || cl.HoldForFailover == hold || cl.Role != rolePrimary {
			return err
		}
		cl.HoldForFailover = hold
		if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
			return err
		}
		if event == "" {
			return nil
		}
		return s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, event, primaryID)
	})
}

// failoverAfter is how many passes in a row a primary must fail its probe
// before the group fails over.
const failoverAfter = 3

// missCounter counts consecutive failed probes per group.
type missCounter struct {
	mu     sync.Mutex
	misses map[string]int
}

// record notes a probe's outcome and returns the failures in a row so far.
func (m *missCounter) record(key string, failed bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !failed {
		delete(m.misses, key)
		return 0
	}
	if m.misses == nil {
		m.misses = map[string]int{}
	}
	m.misses[key]++
	return m.misses[key]
}

// failover promotes the member to, makes every other member (the old primary
// too, now or when it restarts) its replica, and repoints the endpoints. The
// records change first: should hoard stop midway, the next pass makes the
// nodes follow them (enforceRoles).
func (s *Service) failover(ctx context.Context, g *replicationGroup, to, why string) error {
	var members []cluster
	var old string
	err := s.store.Update(func(tx *store.Tx) error {
		ms, err := groupMembers(tx, g)
		if err != nil {
			return err
		}
		var promoted *cluster
		for i := range ms {
			if ms[i].ID == to {
				promoted = &ms[i]
			}
		}
		if promoted == nil || len(promoted.Nodes) == 0 {
			return fmt.Errorf("member %s is gone", to)
		}
		addr := s.nodeAddr(promoted.Nodes[0])
		for i := range ms {
			m := &ms[i]
			if m.Role == rolePrimary {
				old = m.ID
			}
			if m.ID == to {
				m.Role, m.ReplicaOf, m.HoldForFailover = rolePrimary, "", g.AutomaticFailover
			} else {
				m.Role, m.ReplicaOf, m.HoldForFailover = roleReplica, addr, false
			}
			if err := tx.Put(tableClusters, m.key(), m); err != nil {
				return err
			}
		}
		members = ms
		sortMembers(members)
		return s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, "%s: promoted %s to primary in place of %s", why, to, old)
	})
	if err != nil {
		return err
	}
	drv := s.cfg.Drivers[g.Engine].(engine.Replicator)
	s.enforceRoles(ctx, drv, members)
	s.placeEndpoint(ctx, g, members)
	s.log.Info("replication group failed over", "group", g.key(), "from", old, "to", to, "why", why)
	return s.fronts.serve(g, s.cfg.AdvertiseHost, s.memberAddrs(members), s.log)
}

// enforceRoles makes each live member's node replicate as its record says.
func (s *Service) enforceRoles(ctx context.Context, drv engine.Replicator, members []cluster) {
	for _, m := range members {
		if m.Status == statusDeleting || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil {
			continue
		}
		h := *m.Nodes[0].Handle
		rs, err := drv.Replication(ctx, h)
		if err != nil {
			continue // dead or not answering: the cluster reconciler sees to it
		}
		want := m.ReplicaOf
		if m.Role == rolePrimary {
			want = ""
		}
		if (want == "") == (rs.Role == "master") && (want == "" || sameAddr(rs.Primary, want)) {
			continue
		}
		if err := drv.Follow(ctx, h, want); err != nil {
			s.log.Error("repointing replication", "cluster", m.key(), "primary", want, "error", err)
		}
	}
}

// sameAddr compares host:port pairs as redis reports them.
func sameAddr(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	return err1 == nil && err2 == nil && ap == bp && (ah == bh || net.ParseIP(ah).Equal(net.ParseIP(bh)))
}

// memberAddrs are the node addresses of the primary and of the replicas.
func (s *Service) memberAddrs(members []cluster) (addrs endpointAddrs) {
	for _, m := range members {
		if m.Status == statusDeleting || len(m.Nodes) == 0 {
			continue
		}
		if m.Role == rolePrimary {
			addrs.primary = s.nodeAddr(m.Nodes[0])
		} else if m.Status == statusAvailable { // not a replica still starting
			addrs.replicas = append(addrs.replicas, s.nodeAddr(m.Nodes[0]))
		}
	}
	return addrs
}

type endpointAddrs struct {
	primary  string
	replicas []string
}

// settleGroup moves a creating or modifying group to available once every
// member is available (removed members gone) and every replica has synced.
func (s *Service) settleGroup(ctx context.Context, drv engine.Replicator, g *replicationGroup, members []cluster) error {
	if g.Status != statusCreating && g.Status != statusModifying {
		return nil
	}
	for _, m := range members {
		if m.Status == statusFailed && g.Status == statusCreating {
			return s.setGroupStatus(g, statusFailed, fmt.Sprintf("Failed to create replication group %s: member %s failed: %s", g.ID, m.ID, m.FailureReason))
		}
		if m.Status == statusFailed { // a replica added to the group that could not start
			return s.store.Update(func(tx *store.Tx) error {
				if err := s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, "Member %s failed to start (%s); removing it", m.ID, m.FailureReason); err != nil {
					return err
				}
				return markMembersDeleting(tx, []cluster{m})
			})
		}
		if m.Status != statusAvailable || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil {
			return nil
		}
		if m.Role == roleReplica {
			rs, err := drv.Replication(ctx, *m.Nodes[0].Handle)
			if err != nil || !rs.LinkUp {
				return nil
			}
		}
	}
	done := "created"
	if g.Status == statusModifying {
		done = "modified"
	}
	return s.setGroupStatus(g, statusAvailable, fmt.Sprintf("Replication group %s %s", g.ID, done))
}

func (s *Service) setGroupStatus(g *replicationGroup, status, event string) error {
	return s.store.Update(func(tx *store.Tx) error {
		fresh, err := loadGroupRecord(tx, g.caller(), g.ID)
		if err != nil || fresh.Status != g.Status {
			return err
		}
		fresh.Status, fresh.SlotsToMove, fresh.SlotsLeft = status, 0, 0
		if err := tx.Put(tableGroups, fresh.key(), fresh); err != nil {
			return err
		}
		if status == statusAvailable {
			if err := armHolds(tx, fresh); err != nil {
				return err
			}
		}
		return s.recordEvent(tx, g.caller(), EventsReplicationGroup, g.ID, "%s", event)
	})
}

// holdsPrimary reports whether the primary of a node group of size members
// (its replicas and itself) in group g, in status, is held for failover (see
// cluster.HoldForFailover): with automatic failover, once the group is
// created, when there is a replica to fail over to.
func holdsPrimary(g *replicationGroup, status string, members int) bool {
	return g.AutomaticFailover && status != statusCreating && members > 1
}

// armHolds holds for failover every primary that has a replica, as the group
// turns available: in the same transaction, so that no pass between the two
// finds a primary dead and restarts it empty while clients already write to it.
// (Reconciler passes keep the holds in step afterwards.)
func armHolds(tx *store.Tx, g *replicationGroup) error {
	members, err := groupMembers(tx, g)
	if err != nil {
		return err
	}
	nodeGroupSize := map[string]int{}
	for _, m := range members {
		if m.Status != statusDeleting {
			nodeGroupSize[m.NodeGroupID]++
		}
	}
	for i := range members {
		m := &members[i]
		if m.Role != rolePrimary || m.HoldForFailover || m.Status == statusDeleting || !holdsPrimary(g, g.Status, nodeGroupSize[m.NodeGroupID]) {
			continue
		}
		m.HoldForFailover = true
		if err := tx.Put(tableClusters, m.key(), m); err != nil {
			return err
		}
	}
	return nil
}

// serve makes the group's endpoints forward to addrs, starting them if needed.
func (fs *frontSet) serve(g *replicationGroup, host string, addrs endpointAddrs, log *slog.Logger) error {
	primary := []string{}
	if addrs.primary != "" {
		primary = []string{addrs.primary}
	}
	readers := addrs.replicas
	if len(readers) == 0 {
		readers = primary
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.all == nil {
		fs.all = map[string]*groupFronts{}
	}
	gf := fs.all[g.key()]
	if gf == nil {
		logger := front.WithLogger(log.With("group", g.key()))
		var p *front.Front
		if g.EndpointHost == "" { // else the primary itself listens on the endpoint (endpoint.go)
			var err error
			if p, err = front.Listen(net.JoinHostPort(host, strconv.Itoa(g.PrimaryPort)), primary, logger); err != nil {
				return fmt.Errorf("primary endpoint: %w", err)
			}
		}
		r, err := front.Listen(net.JoinHostPort(host, strconv.Itoa(g.ReaderPort)), readers, logger)
		if err != nil {
			if p != nil {
				p.Close()
			}
			return fmt.Errorf("reader endpoint: %w", err)
		}
		fs.all[g.key()] = &groupFronts{primary: p, reader: r}
		return nil
	}
	if gf.primary != nil && !sameSet(gf.primary.Backends(), primary) {
		gf.primary.SetBackends(primary)
	}
	if !sameSet(gf.reader.Backends(), readers) {
		gf.reader.SetBackends(readers)
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

// serveConfig makes a group's configuration endpoint (cluster mode enabled)
// forward to addrs, its node groups' primaries, starting it if needed.
func (fs *frontSet) serveConfig(g *replicationGroup, host string, addrs []string, log *slog.Logger) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.all == nil {
		fs.all = map[string]*groupFronts{}
	}
	gf := fs.all[g.key()]
	if gf == nil {
		f, err := front.Listen(net.JoinHostPort(host, strconv.Itoa(g.ConfigPort)), addrs, front.WithLogger(log.With("group", g.key())))
		if err != nil {
			return fmt.Errorf("configuration endpoint: %w", err)
		}
		fs.all[g.key()] = &groupFronts{primary: f}
		return nil
	}
	if !sameSet(gf.primary.Backends(), addrs) {
		gf.primary.SetBackends(addrs)
	}
	return nil
}

func (fs *frontSet) close(key string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if gf := fs.all[key]; gf != nil {
		for _, f := range []*front.Front{gf.primary, gf.reader} {
			if f != nil {
				f.Close()
			}
		}
		delete(fs.all, key)
	}
}

// closeExcept closes the endpoints of groups that no longer exist.
func (fs *frontSet) closeExcept(live map[string]bool) {
	fs.mu.Lock()
	var gone []string
	for key := range fs.all {
		if !live[key] {
			gone = append(gone, key)
		}
	}
	fs.mu.Unlock()
	for _, key := range gone {
		fs.close(key)
	}
}

// closeAll closes every endpoint (hoard is stopping).
func (fs *frontSet) closeAll() { fs.closeExcept(nil) }

// TestFailover promotes a replica of the group's node group, as a primary
// failure would, and makes the old primary its replica.
func (s *Service) TestFailover(ctx context.Context, in *ecapi.TestFailoverMessage) (*ecapi.TestFailoverResult, error) {
	c := CallerOf(ctx)
	var g *replicationGroup
	var members []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		if g, err = loadGroupRecord(tx, c, in.ReplicationGroupId); err != nil {
			return err
		}
		members, err = groupMembers(tx, g)
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case !g.hasShard(in.NodeGroupId):
		return nil, ecapi.NodeGroupNotFoundFault.Errorf("Replication group %s has no node group %s.", g.ID, in.NodeGroupId)
	case g.Status != statusAvailable:
		return nil, ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s is not available (it is %s).", g.ID, g.Status)
	case g.ClusterMode:
		if err := s.shardFailover(ctx, g, members, in.NodeGroupId); err != nil {
			return nil, err
		}
		return &ecapi.TestFailoverResult{ReplicationGroup: s.describeGroup(g)}, nil
	case !g.AutomaticFailover:
		return nil, ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s does not have automatic failover enabled.", g.ID)
	case len(members) < 2:
		return nil, ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s has no replica to fail over to.", g.ID)
	}
	drv := s.cfg.Drivers[g.Engine].(engine.Replicator)
	to := s.bestReplica(ctx, drv, members[1:])
	if to == "" {
		return nil, ecapi.TestFailoverNotAvailableFault.Errorf("No replica of replication group %s is running to take over.", g.ID)
	}
	if err := s.lockedFailover(ctx, g, to, "Test failover"); err != nil {
		return nil, err
	}
	return &ecapi.TestFailoverResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// lockedFailover is failover for API calls: under the group's lock, which the
// reconciler's pass over the group holds too.
func (s *Service) lockedFailover(ctx context.Context, g *replicationGroup, to, why string) error {
	unlock := s.groupLocks.lock(g.key())
	defer unlock()
	return s.failover(ctx, g, to, why)
}

// keyLocks is a mutex per key, made on first use.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (k *keyLocks) lock(key string) (unlock func()) {
	l := k.get(key)
	l.Lock()
	return l.Unlock
}

// tryLock is lock, or nil at once when the key is locked.
func (k *keyLocks) tryLock(key string) (unlock func()) {
	l := k.get(key)
	if !l.TryLock() {
		return nil
	}
	return l.Unlock
}

func (k *keyLocks) get(key string) *sync.Mutex {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*sync.Mutex{}
	}
	l := k.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		k.locks[key] = l
	}
	return l
}
