package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// ModifyReplicationGroup changes a group: its description, failover settings,
// snapshot settings and snapshotting cluster at once; a parameter group,
// maintenance window, topic and security groups on every member (parameters
// reach the running nodes as for a cache cluster); PrimaryClusterId switches the
// primary over to that replica.
func (s *Service) ModifyReplicationGroup(ctx context.Context, in *ecapi.ModifyReplicationGroupMessage) (*ecapi.ModifyReplicationGroupResult, error) {
	c := CallerOf(ctx)
	switch {
	case in.AuthToken != "" || in.TransitEncryptionEnabled != nil || in.ClusterMode != "":
		return nil, apierr.NotImplemented.Errorf("hoard does not implement AUTH tokens, in-transit encryption or cluster mode changes yet.")
	case len(in.UserGroupIdsToAdd) > 0:
		return nil, ecapi.UserGroupNotFoundFault.Errorf("User group %s not found.", in.UserGroupIdsToAdd[0])
	}
	if err := validateWindows(in.PreferredMaintenanceWindow, in.SnapshotWindow, in.SnapshotRetentionLimit, catalog.Redis); err != nil {
		return nil, err
	}
	if in.PrimaryClusterId != "" {
		if err := s.checkSwitchover(ctx, c, in.ReplicationGroupId, in.PrimaryClusterId); err != nil {
			return nil, err
		}
	}
	var g *replicationGroup
	switchTo := ""
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if g, err = loadGroupRecord(tx, c, in.ReplicationGroupId); err != nil {
			return err
		}
		if g.Status != statusAvailable {
			return ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s is not available (it is %s).", g.ID, g.Status)
		}
		switch {
		case in.NodeGroupId != "" && !g.hasShard(in.NodeGroupId):
			return ecapi.InvalidParameterValueException.Errorf("Replication group %s has no node group %s.", g.ID, in.NodeGroupId)
		case g.ClusterMode && in.PrimaryClusterId != "":
			return ecapi.InvalidParameterCombinationException.Errorf("PrimaryClusterId is for groups with cluster mode disabled; use TestFailover with a NodeGroupId.")
		}
		members, err := groupMembers(tx, g)
		if err != nil {
			return err
		}
		if err := s.modifyGroupSettings(g, members, in); err != nil {
			return err
		}
		if err := s.modifyGroupEngine(g, members, in); err != nil {
			return err
		}
		if in.PrimaryClusterId != "" && !strings.EqualFold(in.PrimaryClusterId, members[0].ID) {
			if !slices.ContainsFunc(members, func(m cluster) bool { return strings.EqualFold(m.ID, in.PrimaryClusterId) }) {
				return ecapi.InvalidParameterValueException.Errorf("Cache cluster %s is not a member of replication group %s.", in.PrimaryClusterId, g.ID)
			}
			switchTo = strings.ToLower(in.PrimaryClusterId)
		}
		family, _ := catalog.Lookup(members[0].Family)
		for i := range members {
			m := &members[i]
			if in.CacheParameterGroupName != "" && strings.ToLower(in.CacheParameterGroupName) != m.ParamGroup {
				pg, err := s.groupForMember(tx, c, in.CacheParameterGroupName, family, g.ClusterMode)
				if err != nil {
					return err
				}
				m.ParamGroup, m.ParamStatus, m.Status = pg.Name, applyApplying, statusModifying
				g.Status = statusModifying // until every member has applied it
			}
			if in.PreferredMaintenanceWindow != "" {
				m.MaintenanceWindow = strings.ToLower(in.PreferredMaintenanceWindow)
			}
			if in.NotificationTopicArn != "" {
				m.NotificationTopicArn = in.NotificationTopicArn
			}
			if in.SecurityGroupIds != nil {
				m.SecurityGroupIDs = in.SecurityGroupIds
			}
			if m.Role == rolePrimary {
				m.HoldForFailover = g.AutomaticFailover
			}
			if err := tx.Put(tableClusters, m.key(), m); err != nil {
				return err
			}
		}
		return tx.Put(tableGroups, g.key(), g)
	})
	if err != nil {
		return nil, err
	}
	if switchTo != "" {
		if err := s.lockedFailover(ctx, g, switchTo, "Primary changed by ModifyReplicationGroup"); err != nil {
			return nil, err
		}
	}
	s.poke()
	return &ecapi.ModifyReplicationGroupResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// checkSwitchover refuses to make primary a member that is not a running,
// synced replica: promoting one that is empty or still syncing would make the
// old primary, and then every replica, copy its emptiness.
func (s *Service) checkSwitchover(ctx context.Context, c Caller, groupID, target string) error {
	var members []cluster
	err := s.store.View(func(tx *store.Tx) error {
		g, err := loadGroupRecord(tx, c, groupID)
		if err == nil {
			members, err = groupMembers(tx, g)
		}
		return err
	})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(members, func(m cluster) bool { return strings.EqualFold(m.ID, target) })
	switch {
	case i < 0:
		return ecapi.InvalidParameterValueException.Errorf("Cache cluster %s is not a member of replication group %s.", target, groupID)
	case i == 0:
		return nil // already the primary
	case members[i].Status != statusAvailable || len(members[i].Nodes) == 0 || members[i].Nodes[0].Handle == nil:
		return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is not available (it is %s); it cannot become the primary.", members[i].ID, members[i].Status)
	}
	rep, ok := s.cfg.Drivers[members[i].Engine].(engine.Replicator)
	if !ok {
		return fmt.Errorf("the %s engine does not replicate", members[i].Engine)
	}
	// The target must have caught up with what the primary had when asked: a
	// replica whose link is up may still lag, or be stuck.
	var want int64
	if p := members[0]; len(p.Nodes) > 0 && p.Nodes[0].Handle != nil {
		if ps, err := rep.Replication(ctx, *p.Nodes[0].Handle); err == nil {
			want = ps.Offset
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := rep.Replication(ctx, *members[i].Nodes[0].Handle)
		if err == nil && rs.LinkUp && rs.Offset >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s has not caught up with the primary (replication offset %d of %d); it cannot become the primary.", members[i].ID, rs.Offset, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// modifyGroupEngine applies a node type change to every member: the node type
// sets maxmemory and its kin, which the reconciler applies to the running
// nodes (CONFIG SET), so the data stays; at once with ApplyImmediately, else
// in each member's maintenance window. An engine version is accepted when it is
// the version the group runs: hoard runs one binary per engine, so there is
// nothing to upgrade to.
func (s *Service) modifyGroupEngine(g *replicationGroup, members []cluster, in *ecapi.ModifyReplicationGroupMessage) error {
	if in.Engine != "" && !strings.EqualFold(in.Engine, g.Engine) {
		return apierr.NotImplemented.Errorf("hoard does not change a replication group's engine (%s to %s) yet.", g.Engine, in.Engine)
	}
	if in.EngineVersion != "" {
		ev, err := s.engineVersion(g.Engine, in.EngineVersion)
		if err != nil {
			return err
		}
		if ev.Version != g.EngineVersion {
			return apierr.NotImplemented.Errorf("hoard does not upgrade a replication group's engine version (%s to %s) yet.", g.EngineVersion, ev.Version)
		}
	}
	if in.CacheNodeType == "" || in.CacheNodeType == g.NodeType || len(members) == 0 {
		return nil
	}
	family, _ := catalog.Lookup(members[0].Family)
	if err := validateNodeType(family, in.CacheNodeType); err != nil {
		return err
	}
	if in.ApplyImmediately {
		g.NodeType, g.Status = in.CacheNodeType, statusModifying
	}
	for i := range members {
		m := &members[i]
		if in.ApplyImmediately {
			m.NodeType, m.Status = in.CacheNodeType, statusModifying
		} else {
			if m.Pending == nil {
				m.Pending = &pending{}
			}
			m.Pending.NodeType = in.CacheNodeType
		}
	}
	return nil
}

// modifyGroupSettings applies the group-level settings of a modification.
func (s *Service) modifyGroupSettings(g *replicationGroup, members []cluster, in *ecapi.ModifyReplicationGroupMessage) error {
	failover, multiAZ := g.AutomaticFailover, g.MultiAZ
	if in.AutomaticFailoverEnabled != nil {
		failover = *in.AutomaticFailoverEnabled
	}
	if in.MultiAZEnabled != nil {
		multiAZ = *in.MultiAZEnabled
	}
	switch {
	case g.ClusterMode && !failover:
		return ecapi.InvalidParameterCombinationException.Errorf("Automatic failover must stay enabled for a replication group with cluster mode enabled.")
	case failover && len(members) < 2 && !g.ClusterMode:
		return ecapi.InvalidParameterCombinationException.Errorf("Automatic failover needs at least one replica.")
	case multiAZ && !failover:
		return ecapi.InvalidParameterCombinationException.Errorf("Multi-AZ needs automatic failover.")
	}
	g.AutomaticFailover, g.MultiAZ = failover, multiAZ
	if in.ReplicationGroupDescription != "" {
		g.Description = in.ReplicationGroupDescription
	}
	if in.SnapshotRetentionLimit != nil {
		g.SnapshotRetentionLimit = *in.SnapshotRetentionLimit
	}
	if in.SnapshotWindow != "" {
		g.SnapshotWindow = in.SnapshotWindow
	}
	if id := strings.ToLower(in.SnapshottingClusterId); id != "" {
		if !slices.ContainsFunc(members, func(m cluster) bool { return m.ID == id }) {
			return ecapi.InvalidParameterValueException.Errorf("Cache cluster %s is not a member of replication group %s.", id, g.ID)
		}
		g.SnapshottingCluster = id
	}
	return nil
}

// IncreaseReplicaCount adds replicas until the group has NewReplicaCount.
func (s *Service) IncreaseReplicaCount(ctx context.Context, in *ecapi.IncreaseReplicaCountMessage) (*ecapi.IncreaseReplicaCountResult, error) {
	c := CallerOf(ctx)
	var g *replicationGroup
	err := s.store.Update(func(tx *store.Tx) (err error) {
		var members []cluster
		if g, members, err = loadAvailableGroup(tx, c, in.ReplicationGroupId); err != nil {
			return err
		}
		if g.ClusterMode {
			if err := s.increaseShardReplicas(tx, c, g, members, in); err != nil {
				return err
			}
			g.Status = statusModifying
			return tx.Put(tableGroups, g.key(), g)
		}
		want, err := newReplicaCount(in.NewReplicaCount, in.ReplicaConfiguration)
		if err != nil {
			return err
		}
		have := len(members) - 1
		switch {
		case want == have:
			return ecapi.NoOperationFault.Errorf("Replication group %s already has %d replicas.", g.ID, have)
		case want < have:
			return ecapi.InvalidParameterValueException.Errorf("NewReplicaCount %d is fewer than the %d replicas of %s: use DecreaseReplicaCount.", want, have, g.ID)
		case want > 5:
			return ecapi.InvalidParameterValueException.Errorf("A replication group has at most 5 replicas; NewReplicaCount was %d.", want)
		}
		if err := s.checkNodeQuotas(tx, c, want-have); err != nil {
			return err
		}
		for i := have; i < want; i++ {
			id := ""
			for id == "" || tx.Has(tableClusters, c.scope()+id) {
				g.NextMember++
				id = fmt.Sprintf("%s-%03d", g.ID, g.NextMember)
			}
			cl, err := s.newMember(tx, c, g, id, "", nil, &members[0])
			if err != nil {
				return err
			}
			if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
				return err
			}
		}
		g.Status = statusModifying
		return tx.Put(tableGroups, g.key(), g)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.IncreaseReplicaCountResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// DecreaseReplicaCount removes replicas: those ReplicasToRemove names, or the
// newest, down to NewReplicaCount. A group with automatic failover keeps one.
func (s *Service) DecreaseReplicaCount(ctx context.Context, in *ecapi.DecreaseReplicaCountMessage) (*ecapi.DecreaseReplicaCountResult, error) {
	c := CallerOf(ctx)
	var g *replicationGroup
	err := s.store.Update(func(tx *store.Tx) (err error) {
		var members []cluster
		if g, members, err = loadAvailableGroup(tx, c, in.ReplicationGroupId); err != nil {
			return err
		}
		if g.ClusterMode {
			if err := decreaseShardReplicas(tx, g, members, in); err != nil {
				return err
			}
			g.Status = statusModifying
			return tx.Put(tableGroups, g.key(), g)
		}
		replicas := members[1:]
		var remove []cluster
		switch {
		case len(in.ReplicasToRemove) > 0 && (in.NewReplicaCount != nil || len(in.ReplicaConfiguration) > 0):
			return ecapi.InvalidParameterCombinationException.Errorf("Give either ReplicasToRemove or NewReplicaCount, not both.")
		case len(in.ReplicasToRemove) > 0:
			for _, id := range in.ReplicasToRemove {
				i := slices.IndexFunc(replicas, func(m cluster) bool { return strings.EqualFold(m.ID, id) })
				if i < 0 {
					return ecapi.InvalidParameterValueException.Errorf("%s is not a replica of replication group %s.", id, g.ID)
				}
				remove = append(remove, replicas[i])
			}
		default:
			want, err := newReplicaCount(in.NewReplicaCount, in.ReplicaConfiguration)
			if err != nil {
				return err
			}
			if want == len(replicas) {
				return ecapi.NoOperationFault.Errorf("Replication group %s already has %d replicas.", g.ID, want)
			}
			if want > len(replicas) {
				return ecapi.InvalidParameterValueException.Errorf("NewReplicaCount %d is more than the %d replicas of %s: use IncreaseReplicaCount.", want, len(replicas), g.ID)
			}
			remove = replicas[want:] // the newest
		}
		if g.AutomaticFailover && len(replicas)-len(remove) < 1 {
			return ecapi.InvalidParameterCombinationException.Errorf("Replication group %s has automatic failover, which needs at least one replica.", g.ID)
		}
		if err := markMembersDeleting(tx, remove); err != nil {
			return err
		}
		g.Status = statusModifying
		return tx.Put(tableGroups, g.key(), g)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.DecreaseReplicaCountResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// newReplicaCount reads the wanted replica count from NewReplicaCount or the
// one node group's ReplicaConfiguration.
func newReplicaCount(count *int32, config []ecapi.ConfigureShard) (int, error) {
	switch {
	case count != nil && len(config) > 0:
		return 0, ecapi.InvalidParameterCombinationException.Errorf("Give either NewReplicaCount or ReplicaConfiguration, not both.")
	case count != nil:
		if *count < 0 {
			return 0, ecapi.InvalidParameterValueException.Errorf("NewReplicaCount must be at least 0, got %d.", *count)
		}
		return int(*count), nil
	case len(config) == 1 && config[0].NodeGroupId == "0001":
		return int(config[0].NewReplicaCount), nil
	case len(config) > 0:
		return 0, ecapi.InvalidParameterValueException.Errorf("A replication group with cluster mode disabled has one node group, 0001.")
	}
	return 0, ecapi.InvalidParameterValueException.Errorf("Give NewReplicaCount or ReplicaConfiguration.")
}

func loadAvailableGroup(tx *store.Tx, c Caller, id string) (*replicationGroup, []cluster, error) {
	g, err := loadGroupRecord(tx, c, id)
	if err != nil {
		return nil, nil, err
	}
	if g.Status != statusAvailable {
		return nil, nil, ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s is not available (it is %s).", g.ID, g.Status)
	}
	members, err := groupMembers(tx, g)
	if err == nil && (len(members) == 0 || members[0].Role != rolePrimary) {
		err = ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s has no primary.", g.ID)
	}
	return g, members, err
}
