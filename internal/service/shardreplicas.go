package service

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

// Replica counts of a group with cluster mode enabled: IncreaseReplicaCount
// and DecreaseReplicaCount per node group. New replicas are member clusters of
// their node group (the reconciler introduces them to the cluster and makes
// them replicate the node group's primary); removed ones are marked deleting
// (the reconciler stops them, and the others forget them).

// shardReplicaTargets reads the wanted replica count of each node group from
// NewReplicaCount (every node group) or ReplicaConfiguration (those named).
func shardReplicaTargets(g *replicationGroup, count *int32, config []ecapi.ConfigureShard) (map[string]int, error) {
	out := map[string]int{}
	switch {
	case count != nil && len(config) > 0:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give either NewReplicaCount or ReplicaConfiguration, not both.")
	case count != nil:
		for _, sh := range g.Shards {
			out[sh.ID] = int(*count)
		}
	case len(config) > 0:
		for _, cs := range config {
			id := fmt.Sprintf("%04s", strings.TrimSpace(cs.NodeGroupId))
			if !g.hasShard(id) {
				return nil, ecapi.InvalidParameterValueException.Errorf("Replication group %s has no node group %s.", g.ID, cs.NodeGroupId)
			}
			out[id] = int(cs.NewReplicaCount)
		}
	default:
		return nil, ecapi.InvalidParameterValueException.Errorf("Give NewReplicaCount or ReplicaConfiguration.")
	}
	for id, n := range out {
		if n < 0 || n > 5 {
			return nil, ecapi.InvalidParameterValueException.Errorf("A node group has 0 to 5 replicas; %d were asked for node group %s.", n, id)
		}
	}
	return out, nil
}

// shardReplicas lists a node group's primary and its replicas, oldest first.
func shardReplicas(members []cluster, shardID string) (primary *cluster, replicas []cluster) {
	for i := range members {
		m := &members[i]
		if m.NodeGroupID != shardID || m.Status == statusDeleting {
			continue
		}
		if m.Role == rolePrimary {
			primary = m
		} else {
			replicas = append(replicas, *m)
		}
	}
	slices.SortFunc(replicas, func(a, b cluster) int { return strings.Compare(a.ID, b.ID) })
	return primary, replicas
}

// increaseShardReplicas adds replicas to the node groups of a group with
// cluster mode enabled.
func (s *Service) increaseShardReplicas(tx *store.Tx, c Caller, g *replicationGroup, members []cluster, in *ecapi.IncreaseReplicaCountMessage) error {
	want, err := shardReplicaTargets(g, in.NewReplicaCount, in.ReplicaConfiguration)
	if err != nil {
		return err
	}
	added := 0
	for id, n := range want {
		primary, replicas := shardReplicas(members, id)
		switch {
		case primary == nil:
			return ecapi.InvalidReplicationGroupStateFault.Errorf("Node group %s of replication group %s has no primary now.", id, g.ID)
		case n < len(replicas):
			return ecapi.InvalidParameterValueException.Errorf("Node group %s has %d replicas, more than %d: use DecreaseReplicaCount.", id, len(replicas), n)
		}
		added += n - len(replicas)
	}
	if added == 0 {
		return ecapi.NoOperationFault.Errorf("Every node group named already has that many replicas.")
	}
	if err := s.checkNodeQuotas(tx, c, added); err != nil {
		return err
	}
	for i := range g.Shards {
		sh := &g.Shards[i]
		n, ok := want[sh.ID]
		if !ok {
			continue
		}
		primary, replicas := shardReplicas(members, sh.ID)
		for k := len(replicas); k < n; k++ {
			id := ""
			for id == "" || tx.Has(tableClusters, c.scope()+id) {
				sh.NextMember++
				id = shardMemberID(g.ID, sh.ID, sh.NextMember)
			}
			cl, err := s.newMember(tx, c, g, id, sh.ID, nil, primary)
			if err != nil {
				return err
			}
			if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
				return err
			}
		}
	}
	return nil
}

// decreaseShardReplicas marks replicas of a group with cluster mode enabled
// deleting: those ReplicasToRemove names, or each node group's newest down to
// its wanted count.
func decreaseShardReplicas(tx *store.Tx, g *replicationGroup, members []cluster, in *ecapi.DecreaseReplicaCountMessage) error {
	var remove []cluster
	if len(in.ReplicasToRemove) > 0 {
		if in.NewReplicaCount != nil || len(in.ReplicaConfiguration) > 0 {
			return ecapi.InvalidParameterCombinationException.Errorf("Give either ReplicasToRemove or NewReplicaCount, not both.")
		}
		for _, id := range in.ReplicasToRemove {
			i := slices.IndexFunc(members, func(m cluster) bool {
				return strings.EqualFold(m.ID, id) && m.Role == roleReplica && m.Status != statusDeleting
			})
			if i < 0 {
				return ecapi.InvalidParameterValueException.Errorf("%s is not a replica of replication group %s.", id, g.ID)
			}
			remove = append(remove, members[i])
		}
	} else {
		want, err := shardReplicaTargets(g, in.NewReplicaCount, in.ReplicaConfiguration)
		if err != nil {
			return err
		}
		for id, n := range want {
			_, replicas := shardReplicas(members, id)
			if n > len(replicas) {
				return ecapi.InvalidParameterValueException.Errorf("Node group %s has %d replicas, fewer than %d: use IncreaseReplicaCount.", id, len(replicas), n)
			}
			remove = append(remove, replicas[n:]...) // the newest
		}
		if len(remove) == 0 {
			return ecapi.NoOperationFault.Errorf("Every node group named already has that many replicas.")
		}
	}
	return markMembersDeleting(tx, remove)
}
