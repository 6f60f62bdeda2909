package service

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

var (
	maintenanceWindowPattern = regexp.MustCompile(`^(sun|mon|tue|wed|thu|fri|sat):([01]\d|2[0-3]):[0-5]\d-(sun|mon|tue|wed|thu|fri|sat):([01]\d|2[0-3]):[0-5]\d$`)
	snapshotWindowPattern    = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$`)
)

// ModifyCacheCluster changes a cluster. Node count, node type and engine version
// wait for the maintenance window unless ApplyImmediately; the parameter group,
// windows and security groups change at once.
func (s *Service) ModifyCacheCluster(ctx context.Context, in *ecapi.ModifyCacheClusterMessage) (*ecapi.ModifyCacheClusterResult, error) {
	c := CallerOf(ctx)
	if in.Engine != "" || in.AuthToken != "" || in.ScaleConfig != nil {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Engine, AuthToken and ScaleConfig cannot be changed on a cache cluster by hoard.")
	}
	var cl *cluster
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if cl, err = loadAvailableCluster(tx, c, in.CacheClusterId); err != nil {
			return err
		}
		if cl.ReplicationGroupID != "" && (in.CacheNodeType != "" || in.EngineVersion != "" || in.NumCacheNodes != nil ||
			in.SnapshotRetentionLimit != nil || in.SnapshotWindow != "" || in.CacheParameterGroupName != "") {
			return ecapi.InvalidParameterCombinationException.Errorf("Cache cluster %s is a member of replication group %s: change its node type, engine version, parameters and backups with ModifyReplicationGroup.", cl.ID, cl.ReplicationGroupID)
		}
		if err := validateWindows(in.PreferredMaintenanceWindow, in.SnapshotWindow, in.SnapshotRetentionLimit, cl.Engine); err != nil {
			return err
		}
		family, _ := catalog.Lookup(cl.Family)
		work := &pending{}
		if in.EngineVersion != "" && in.EngineVersion != cl.EngineVersion {
			ev, err := s.engineVersion(cl.Engine, in.EngineVersion)
			if err != nil {
				return err
			}
			if compareVersions(ev.Version, cl.EngineVersion) < 0 {
				return ecapi.InvalidParameterValueException.Errorf("Engine version %s is older than the cluster's %s; downgrades are not supported.", ev.Version, cl.EngineVersion)
			}
			if ev.Family != cl.Family {
				return ecapi.InvalidParameterCombinationException.Errorf("Engine version %s is of family %s; moving the cluster from %s needs a parameter group of the new family, which hoard does not do yet.", ev.Version, ev.Family, cl.Family)
			}
			work.EngineVersion = ev.Version
		}
		if in.CacheNodeType != "" && in.CacheNodeType != cl.NodeType {
			if err := validateNodeType(family, in.CacheNodeType); err != nil {
				return err
			}
			work.NodeType = in.CacheNodeType
		}
		if err := s.planNodeCount(cl, in, work); err != nil {
			return err
		}
		if in.CacheParameterGroupName != "" && strings.ToLower(in.CacheParameterGroupName) != cl.ParamGroup {
			g, err := s.groupForCluster(tx, c, in.CacheParameterGroupName, family)
			if err != nil {
				return err
			}
			cl.ParamGroup = g.Name
			cl.ParamStatus = applyApplying
		}
		applyMetadata(cl, in)
		if in.CacheSecurityGroupNames != nil {
			for _, name := range in.CacheSecurityGroupNames {
				if _, err := loadSecurityGroup(tx, c, strings.ToLower(name)); err != nil {
					return err
				}
			}
			cl.CacheSecurityGroups = in.CacheSecurityGroupNames
		}
		if work.NumCacheNodes != nil || work.EngineVersion != "" || work.NodeType != "" {
			if in.ApplyImmediately {
				if err := s.applyModification(tx, cl, work); err != nil {
					return err
				}
			} else {
				cl.Pending = work
			}
		}
		if cl.ParamStatus == applyApplying || cl.Status == statusModifying {
			cl.Status = statusModifying
		}
		return tx.Put(tableClusters, cl.key(), cl)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.ModifyCacheClusterResult{CacheCluster: s.clusterShape(cl, false)}, nil
}

// planNodeCount validates a node count change: memcached clusters grow by adding
// nodes and shrink by removing the nodes CacheNodeIdsToRemove names.
func (s *Service) planNodeCount(cl *cluster, in *ecapi.ModifyCacheClusterMessage, work *pending) error {
	if in.NumCacheNodes == nil {
		if len(in.CacheNodeIdsToRemove) > 0 {
			return ecapi.InvalidParameterCombinationException.Errorf("CacheNodeIdsToRemove needs NumCacheNodes.")
		}
		return nil
	}
	want := *in.NumCacheNodes
	if err := s.validateNodeCount(cl.Engine, want); err != nil {
		return err
	}
	have := int32(len(cl.Nodes))
	switch {
	case want > have && len(in.CacheNodeIdsToRemove) > 0:
		return ecapi.InvalidParameterCombinationException.Errorf("CacheNodeIdsToRemove cannot be given when adding nodes.")
	case want < have && int32(len(in.CacheNodeIdsToRemove)) != have-want:
		return ecapi.InvalidParameterValueException.Errorf("Removing %d nodes needs CacheNodeIdsToRemove to name exactly %d node IDs.", have-want, have-want)
	}
	for _, id := range in.CacheNodeIdsToRemove {
		if cl.node(id) == nil {
			return ecapi.InvalidParameterValueException.Errorf("Cache cluster %s has no node %s.", cl.ID, id)
		}
	}
	if want != have {
		work.NumCacheNodes = &want
		work.CacheNodeIDsToRemove = in.CacheNodeIdsToRemove
	}
	return nil
}

func applyMetadata(cl *cluster, in *ecapi.ModifyCacheClusterMessage) {
	if in.PreferredMaintenanceWindow != "" {
		cl.MaintenanceWindow = strings.ToLower(in.PreferredMaintenanceWindow)
	}
	if in.SnapshotWindow != "" {
		cl.SnapshotWindow = in.SnapshotWindow
	}
	if in.SnapshotRetentionLimit != nil {
		cl.SnapshotRetentionLimit = *in.SnapshotRetentionLimit
	}
	if in.AutoMinorVersionUpgrade != nil {
		cl.AutoMinorVersionUpgrade = *in.AutoMinorVersionUpgrade
	}
	if in.SecurityGroupIds != nil {
		cl.SecurityGroupIDs = in.SecurityGroupIds
	}

	if in.NotificationTopicArn != "" {
		cl.NotificationTopicArn = in.NotificationTopicArn
	}
}

// applyModification turns deferred work into desired state for the reconciler:
// new nodes to start, nodes to remove, a new version or node type to restart with.
func (s *Service) applyModification(tx *store.Tx, cl *cluster, work *pending) error {
	if work.EngineVersion != "" {
		cl.EngineVersion = work.EngineVersion
		for _, n := range cl.Nodes {
			n.Restart = true
		}
	}
	if work.NodeType != "" {
		cl.NodeType = work.NodeType // maxmemory and friends follow through the parameters
	}
	if work.NumCacheNodes != nil {
		if add := int(*work.NumCacheNodes) - len(cl.Nodes); add > 0 {
			if err := s.checkNodeQuotas(tx, cl.caller(), add); err != nil {
				return err
			}
			if err := s.addNodes(tx, cl, add); err != nil {
				return err
			}
		}
		for _, id := range work.CacheNodeIDsToRemove {
			if n := cl.node(id); n != nil {
				n.Remove = true
				n.Status = statusDeleting
			}
		}
	}
	cl.Pending = nil
	cl.Status = statusModifying
	return nil
}

// ListAllowedNodeTypeModifications lists the node types a cluster can scale to: the
// family's node types with more (up) or less (down) memory than its own.
func (s *Service) ListAllowedNodeTypeModifications(ctx context.Context, in *ecapi.ListAllowedNodeTypeModificationsMessage) (*ecapi.AllowedNodeTypeModificationsMessage, error) {
	c := CallerOf(ctx)
	if in.ReplicationGroupId != "" {
		// A group's members share one node type: answer for its primary.
		err := s.store.View(func(tx *store.Tx) error {
			g, err := loadGroupRecord(tx, c, in.ReplicationGroupId)
			if err != nil {
				return err
			}
			members, err := groupMembers(tx, g)
			if err == nil && len(members) > 0 {
				in.CacheClusterId = members[0].ID
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if in.CacheClusterId == "" {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Either CacheClusterId or ReplicationGroupId must be given.")
	}
	var cl *cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		cl, err = loadCluster(tx, c, in.CacheClusterId)
		return err
	})
	if err != nil {
		return nil, err
	}
	family, _ := catalog.Lookup(cl.Family)
	memory := nodeTypeMemory(family)
	own := memory[cl.NodeType]
	out := &ecapi.AllowedNodeTypeModificationsMessage{ScaleUpModifications: []string{}, ScaleDownModifications: []string{}}
	for nodeType, m := range memory {
		switch {
		case m > own:
			out.ScaleUpModifications = append(out.ScaleUpModifications, nodeType)
		case m < own:
			out.ScaleDownModifications = append(out.ScaleDownModifications, nodeType)
		}
	}
	sort.Strings(out.ScaleUpModifications)
	sort.Strings(out.ScaleDownModifications)
	return out, nil
}

// nodeTypeMemory maps each node type of a family to its memory parameter's value.
func nodeTypeMemory(family *catalog.Family) map[string]float64 {
	memory := map[string]float64{}
	for _, name := range []string{"maxmemory", "max_cache_memory"} {
		if p, ok := family.NodeTypeParam(name); ok {
			for nt, v := range p.Values {
				memory[nt], _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	return memory
}

// clusterShape is a cluster as the API shows it.
func (s *Service) clusterShape(cl *cluster, showNodes bool) *ecapi.CacheCluster {
	c := cl.caller()
	count := int32(0)
	var toReboot []string
	var nodes []ecapi.CacheNode
	for _, n := range cl.Nodes {
		if n.Remove {
			continue
		}
		count++
		status := applyInSync
		if n.PendingReboot {
			status = applyPendingReboot
			toReboot = append(toReboot, n.ID)
		}
		nodes = append(nodes, ecapi.CacheNode{
			CacheNodeId: n.ID, CacheNodeStatus: n.Status, CacheNodeCreateTime: n.CreatedAt,
			Endpoint:             &ecapi.Endpoint{Address: s.nodeHost(n), Port: int32(n.Port)},
			ParameterGroupStatus: status, CustomerAvailabilityZone: cl.AZ,
		})
	}
	paramStatus := cl.ParamStatus
	if paramStatus == "" {
		paramStatus = applyInSync
	}
	out := &ecapi.CacheCluster{
		CacheClusterId:             cl.ID,
		ClientDownloadLandingPage:  "https://console.aws.amazon.com/elasticache/home#client-download:",
		CacheNodeType:              cl.NodeType,
		Engine:                     cl.Engine,
		EngineVersion:              cl.EngineVersion,
		CacheClusterStatus:         cl.Status,
		NumCacheNodes:              &count,
		PreferredAvailabilityZone:  cl.AZ,
		CacheClusterCreateTime:     cl.CreatedAt,
		PreferredMaintenanceWindow: cl.MaintenanceWindow,
		PendingModifiedValues:      pendingShape(cl.Pending),
		CacheParameterGroup: &ecapi.CacheParameterGroupStatus{
			CacheParameterGroupName: cl.ParamGroup, ParameterApplyStatus: paramStatus, CacheNodeIdsToReboot: orEmpty(toReboot),
		},
		CacheSubnetGroupName:     cl.SubnetGroup,
		AutoMinorVersionUpgrade:  cl.AutoMinorVersionUpgrade,
		AuthTokenEnabled:         new(bool),
		TransitEncryptionEnabled: new(bool),
		AtRestEncryptionEnabled:  new(bool),
		ARN:                      c.arn("cluster", cl.ID),
		ReplicationGroupId:       cl.ReplicationGroupID,
		NetworkType:              "ipv4",
		IpDiscovery:              "ipv4",
	}
	if cl.NotificationTopicArn != "" {
		out.NotificationConfiguration = &ecapi.NotificationConfiguration{TopicArn: cl.NotificationTopicArn, TopicStatus: "active"}
	}
	if cl.Engine != catalog.Memcached {
		out.SnapshotRetentionLimit = &cl.SnapshotRetentionLimit
		out.SnapshotWindow = cl.SnapshotWindow
	} else if len(cl.Nodes) > 0 {
		// Memcached's configuration endpoint: hoard answers it with the first node.
		out.ConfigurationEndpoint = &ecapi.Endpoint{Address: s.cfg.AdvertiseHost, Port: int32(cl.Nodes[0].Port)}
	}
	for _, id := range cl.SecurityGroupIDs {
		out.SecurityGroups = append(out.SecurityGroups, ecapi.SecurityGroupMembership{SecurityGroupId: id, Status: "active"})
	}
	for _, name := range cl.CacheSecurityGroups {
		out.CacheSecurityGroups = append(out.CacheSecurityGroups, ecapi.CacheSecurityGroupMembership{CacheSecurityGroupName: name, Status: "active"})
	}
	if showNodes {
		out.CacheNodes = orEmpty(nodes)
	}
	return out
}

func pendingShape(p *pending) *ecapi.PendingModifiedValues {
	out := &ecapi.PendingModifiedValues{}
	if p != nil {
		out.NumCacheNodes, out.EngineVersion, out.CacheNodeType = p.NumCacheNodes, p.EngineVersion, p.NodeType
		if len(p.CacheNodeIDsToRemove) > 0 {
			out.CacheNodeIdsToRemove = slices.Clone(p.CacheNodeIDsToRemove)
		}
	}
	return out
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
