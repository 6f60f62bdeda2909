package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

// A replication group (cluster mode disabled) is a primary and up to five
// replicas, each a member cache cluster of one node, stored as clusters are
// (cluster.ReplicationGroupID) and run by the same reconciler; a replica's node
// starts with REPLICAOF its primary. The group's record holds what is the
// group's own: description, failover settings, and the ports of the two
// endpoints, which hoard serves itself with a TCP front that follows the
// primary (see replicationrun.go).

const tableGroups = "replicationgroups"

// Member roles, as NodeGroupMember.CurrentRole shows them.
const (
	rolePrimary = "primary"
	roleReplica = "replica"
)

// replicationGroup is a replication group as stored.
type replicationGroup struct {
	Account                string    `json:"account"`
	Region                 string    `json:"region"`
	ID                     string    `json:"id"`
	Description            string    `json:"description"`
	Status                 string    `json:"status"`
	Engine                 string    `json:"engine"`
	EngineVersion          string    `json:"engineVersion"`
	NodeType               string    `json:"nodeType"`
	AutomaticFailover      bool      `json:"automaticFailover"`
	MultiAZ                bool      `json:"multiAZ"`
	SnapshotRetentionLimit int32     `json:"snapshotRetentionLimit"`
	SnapshotWindow         string    `json:"snapshotWindow,omitempty"`
	PrimaryPort            int       `json:"primaryPort"`
	ReaderPort             int       `json:"readerPort"`
	CreatedAt              time.Time `json:"createdAt"`
	NextMember             int       `json:"nextMember"`
	// AtRest and KmsKeyID: the group's data at rest — its snapshots, since its
	// nodes keep nothing on disk — is encrypted, under KmsKeyID when given.
	AtRest   bool   `json:"atRest,omitempty"`
	KmsKeyID string `json:"kmsKeyId,omitempty"`
	// SnapshottingCluster is the member snapshots are taken from ("" picks a replica).
	SnapshottingCluster string `json:"snapshottingCluster,omitempty"`
	// LastAutoSnapshot is the day (yyyy-mm-dd) of the last automated snapshot.
	LastAutoSnapshot string `json:"lastAutoSnapshot,omitempty"`
	// RetainPrimary keeps the primary as a standalone cluster when the group is deleted.
	RetainPrimary bool `json:"retainPrimary,omitempty"`
	// ClusterMode: the group is a Redis Cluster of node groups (Shards), each a
	// primary member and its replicas (see clustermode.go). ConfigPort serves
	// its ConfigurationEndpoint; PrimaryPort and ReaderPort are then unused.
	ClusterMode bool    `json:"clusterMode,omitempty"`
	ConfigPort  int     `json:"configPort,omitempty"`
	Shards      []shard `json:"shards,omitempty"`
	// SlotsToMove and SlotsLeft measure the resharding in progress.
	SlotsToMove int `json:"slotsToMove,omitempty"`
	SlotsLeft   int `json:"slotsLeft,omitempty"`
	// FinalSnapshot names the snapshot a deleting group with cluster mode
	// enabled takes before its members stop.
	FinalSnapshot string `json:"finalSnapshot,omitempty"`
	// EndpointHost is the address of a moving PrimaryEndpoint (endpoint.go),
	// on PrimaryPort, which the members share; "" when a front serves it.
	EndpointHost string `json:"endpointHost,omitempty"`
}

func (g *replicationGroup) key() string    { return g.Account + "/" + g.Region + "/" + g.ID }
func (g *replicationGroup) caller() Caller { return Caller{Account: g.Account, Region: g.Region} }
func (g *replicationGroup) arn() string    { return g.caller().arn("replicationgroup", g.ID) }

// hasShard reports whether the group has node group id (0001 is the only one
// of a group with cluster mode disabled).
func (g *replicationGroup) hasShard(id string) bool {
	if !g.ClusterMode {
		return id == "0001"
	}
	for _, sh := range g.Shards {
		if sh.ID == id {
			return true
		}
	}
	return false
}

func init() {
	registerTaggable("replicationgroup", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadGroupRecord(tx, c, name)
		return err
	})
}

func loadGroupRecord(tx *store.Tx, c Caller, id string) (*replicationGroup, error) {
	var g replicationGroup
	if err := tx.Get(tableGroups, c.scope()+strings.ToLower(id), &g); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.ReplicationGroupNotFoundFault.Errorf("ReplicationGroup not found: %s", id)
		}
		return nil, err
	}
	return &g, nil
}

// groupMembers lists a group's member clusters, primary first, then replicas by ID.
func groupMembers(tx *store.Tx, g *replicationGroup) ([]cluster, error) {
	all, err := store.ScanAs[cluster](tx, tableClusters, g.caller().scope())
	if err != nil {
		return nil, err
	}
	var members []cluster
	for _, cl := range all {
		if cl.ReplicationGroupID == g.ID {
			members = append(members, cl)
		}
	}
	sortMembers(members)
	return members, nil
}

func sortMembers(members []cluster) {
	sort.Slice(members, func(i, j int) bool {
		if (members[i].Role == rolePrimary) != (members[j].Role == rolePrimary) {
			return members[i].Role == rolePrimary
		}
		return members[i].ID < members[j].ID
	})
}

// CreateReplicationGroup records a group of one primary and its replicas, each a
// member cluster in status creating; the reconciler starts them and the group
// turns available once every replica has synced.
func (s *Service) CreateReplicationGroup(ctx context.Context, in *ecapi.CreateReplicationGroupMessage) (_ *ecapi.CreateReplicationGroupResult, err error) {
	c := CallerOf(ctx)
	id := strings.ToLower(in.ReplicationGroupId)
	if err := validateName("ReplicationGroupId", id, 40); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.ReplicationGroupDescription) == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter ReplicationGroupDescription must be provided and must not be blank.")
	}
	clusterMode, err := s.requestedClusterMode(c, in)
	if err != nil {
		return nil, err
	}
	switch {
	case in.GlobalReplicationGroupId != "" || in.ServerlessCacheSnapshotName != "":
		return nil, apierr.NotImplemented.Errorf("hoard does not implement global replication groups or restoring a replication group from a serverless snapshot yet.")
	case in.TransitEncryptionEnabled != nil && *in.TransitEncryptionEnabled, in.AuthToken != "":
		return nil, apierr.NotImplemented.Errorf("hoard does not implement in-transit encryption or AUTH tokens yet.")
	case len(in.UserGroupIds) > 0:
		return nil, ecapi.UserGroupNotFoundFault.Errorf("User group %s not found.", in.UserGroupIds[0])
	case in.SnapshotName != "" && len(in.SnapshotArns) > 0:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give either SnapshotName or SnapshotArns, not both.")
	}
	nodes := 0
	if !clusterMode {
		if nodes, err = memberCount(in); err != nil {
			return nil, err
		}
	}
	failover := in.AutomaticFailoverEnabled != nil && *in.AutomaticFailoverEnabled || clusterMode
	multiAZ := in.MultiAZEnabled != nil && *in.MultiAZEnabled
	switch {
	case failover && nodes < 2 && !clusterMode:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Automatic failover needs at least one replica (NumCacheClusters at least 2).")
	case multiAZ && !failover:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Multi-AZ needs AutomaticFailoverEnabled.")
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	if err := s.checkKmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if in.PrimaryClusterId != "" {
		return s.adoptPrimary(ctx, in, id, nodes, failover, multiAZ)
	}
	engineName := in.Engine
	if engineName == "" {
		engineName = catalog.Redis
	}
	if strings.EqualFold(engineName, catalog.Memcached) {
		return nil, ecapi.InvalidParameterValueException.Errorf("Replication groups run redis or valkey, not memcached.")
	}
	// The member clusters are made as CreateCacheCluster makes clusters; the
	// first is the primary, and only it is seeded: replicas sync from it.
	var restore *restoreSource
	if in.SnapshotName != "" || len(in.SnapshotArns) > 0 {
		if in.SnapshotName != "" {
			restore, err = s.stageSnapshot(c, id, in.SnapshotName)
		} else {
			restore, err = s.stageObjects(ctx, c, id, in.SnapshotArns)
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = os.RemoveAll(restore.dir)
			}
		}()
		if len(restore.files) != 1 && !clusterMode {
			return nil, ecapi.InvalidParameterValueException.Errorf("A replication group with cluster mode disabled restores from one RDB file; %d were given.", len(restore.files))
		}
		if sn := restore.snapshot; sn != nil {
			if in.Engine == "" {
				engineName = sn.Engine
			}
			if in.CacheNodeType == "" {
				in.CacheNodeType = sn.NodeType
			}
		}
	}
	template := &ecapi.CreateCacheClusterMessage{
		Engine: engineName, EngineVersion: in.EngineVersion, CacheNodeType: in.CacheNodeType, CacheParameterGroupName: in.CacheParameterGroupName,
		CacheSubnetGroupName: in.CacheSubnetGroupName, CacheSecurityGroupNames: in.CacheSecurityGroupNames, SecurityGroupIds: in.SecurityGroupIds,
		PreferredMaintenanceWindow: in.PreferredMaintenanceWindow, NotificationTopicArn: in.NotificationTopicArn, AutoMinorVersionUpgrade: in.AutoMinorVersionUpgrade,
		SnapshotWindow: in.SnapshotWindow, SnapshotRetentionLimit: in.SnapshotRetentionLimit,
	}
	g := &replicationGroup{Account: c.Account, Region: c.Region, ID: id, Description: in.ReplicationGroupDescription, Status: statusCreating,
		AutomaticFailover: failover, MultiAZ: multiAZ, CreatedAt: s.now(), KmsKeyID: in.KmsKeyId, ClusterMode: clusterMode,
		AtRest: in.AtRestEncryptionEnabled != nil && *in.AtRestEncryptionEnabled || in.KmsKeyId != ""}
	if in.SnapshotRetentionLimit != nil {
		g.SnapshotRetentionLimit = *in.SnapshotRetentionLimit
	}
	if clusterMode {
		return s.createShardedGroup(ctx, in, g, template, restore)
	}
	err = s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableGroups, c.scope()+id) {
			return ecapi.ReplicationGroupAlreadyExistsFault.Errorf("Replication group %s already exists.", id)
		}
		if err := s.checkNodeQuotas(tx, c, nodes); err != nil {
			return err
		}
		if s.movingEndpoints() {
			if err := s.placeMovingEndpoint(tx, g); err != nil {
				return ecapi.InsufficientCacheClusterCapacityFault.Errorf("No address or port left for the replication group's endpoint: %v", err)
			}
		}
		var primary *cluster
		for i := 0; i < nodes; i++ {
			g.NextMember++
			cl, err := s.newMember(tx, c, g, fmt.Sprintf("%s-%03d", id, g.NextMember), "", template, primary)
			if err != nil {
				return err
			}
			if primary == nil {
				primary = cl
				seedNodes(cl, restore)
				g.Engine, g.EngineVersion, g.NodeType = cl.Engine, cl.EngineVersion, cl.NodeType
				g.SnapshotWindow = cl.SnapshotWindow
			}
			if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
				return err
			}
		}
		return s.putNewGroup(tx, g, in.Tags)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CreateReplicationGroupResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// memberCount is how many member clusters a request asks for: NumCacheClusters
// (1–6), or ReplicasPerNodeGroup (0–5) replicas and the primary.
func memberCount(in *ecapi.CreateReplicationGroupMessage) (int, error) {
	n := 1
	if len(in.NodeGroupConfiguration) == 1 && in.NodeGroupConfiguration[0].ReplicaCount != nil && in.ReplicasPerNodeGroup == nil {
		in.ReplicasPerNodeGroup = in.NodeGroupConfiguration[0].ReplicaCount
	}
	switch {
	case in.NumCacheClusters != nil && in.ReplicasPerNodeGroup != nil && *in.NumCacheClusters != *in.ReplicasPerNodeGroup+1:
		return 0, ecapi.InvalidParameterCombinationException.Errorf("NumCacheClusters (%d) and ReplicasPerNodeGroup (%d) disagree.", *in.NumCacheClusters, *in.ReplicasPerNodeGroup)
	case in.NumCacheClusters != nil:
		n = int(*in.NumCacheClusters)
	case in.ReplicasPerNodeGroup != nil:
		n = int(*in.ReplicasPerNodeGroup) + 1
	}
	if n < 1 || n > 6 {
		return 0, ecapi.InvalidParameterValueException.Errorf("A replication group has 1 to 6 cache clusters (a primary and up to 5 replicas); %d were asked for.", n)
	}
	return n, nil
}

// newMember makes a member cluster of one node from a template request: the
// primary when primary is nil, else a replica of it. In a group with cluster
// mode enabled, the member goes in node group shardID, and a replica is made a
// replica through the cluster (reconcileShards), not with REPLICAOF.
func (s *Service) newMember(tx *store.Tx, c Caller, g *replicationGroup, id, shardID string, template *ecapi.CreateCacheClusterMessage, primary *cluster) (*cluster, error) {
	if tx.Has(tableClusters, c.scope()+id) {
		return nil, ecapi.CacheClusterAlreadyExistsFault.Errorf("Cache cluster %s already exists.", id)
	}
	var cl *cluster
	if primary != nil {
		copied := *primary
		copied.Nodes, copied.NextNodeNumber, copied.Pending, copied.LastAutoSnapshot = nil, 0, nil, ""
		cl = &copied
	} else {
		ev, err := s.engineVersion(template.Engine, template.EngineVersion)
		if err != nil {
			return nil, err
		}
		family, _ := catalog.Lookup(ev.Family)
		if err := validateNodeType(family, template.CacheNodeType); err != nil {
			return nil, err
		}
		if err := validateWindows(template.PreferredMaintenanceWindow, template.SnapshotWindow, template.SnapshotRetentionLimit, ev.Engine); err != nil {
			return nil, err
		}
		gr, err := s.groupForMember(tx, c, template.CacheParameterGroupName, family, g.ClusterMode)
		if err != nil {
			return nil, err
		}
		cl = &cluster{Account: c.Account, Region: c.Region, Engine: ev.Engine, EngineVersion: ev.Version, Family: ev.Family,
			NodeType: template.CacheNodeType, ParamGroup: gr.Name, SubnetGroup: template.CacheSubnetGroupName,
			SecurityGroupIDs: template.SecurityGroupIds, CacheSecurityGroups: template.CacheSecurityGroupNames,
			MaintenanceWindow: template.PreferredMaintenanceWindow, SnapshotWindow: template.SnapshotWindow,
			AutoMinorVersionUpgrade: template.AutoMinorVersionUpgrade == nil || *template.AutoMinorVersionUpgrade,
			NotificationTopicArn:    template.NotificationTopicArn}
		if cl.MaintenanceWindow == "" {
			cl.MaintenanceWindow = "sun:05:00-sun:06:00"
		}
		if cl.SnapshotWindow == "" {
			cl.SnapshotWindow = "03:00-04:00"
		}
		if err := placeCluster(tx, c, cl); err != nil {
			return nil, err
		}
	}
	cl.ID, cl.Status, cl.CreatedAt, cl.ParamStatus, cl.ParamGen = id, statusCreating, s.now(), "", 0
	cl.ReplicationGroupID, cl.Role, cl.ReplicaOf = g.ID, rolePrimary, ""
	cl.SnapshotRetentionLimit = 0 // the group takes the backups, not its members
	cl.HoldForFailover = false    // armed by reconcileGroup once the group is available
	cl.NodeGroupID, cl.ClusterNodeID = shardID, ""
	if primary != nil {
		cl.Role = roleReplica
		if !g.ClusterMode {
			cl.ReplicaOf = s.nodeAddr(primary.Nodes[0])
		}
	}
	if g.EndpointHost != "" {
		if err := s.addMemberNode(tx, g, cl); err != nil {
			return nil, err
		}
		return cl, nil
	}
	if err := s.addNodes(tx, cl, 1); err != nil {
		return nil, err
	}
	return cl, nil
}

func (s *Service) nodeAddr(n *node) string {
	return net.JoinHostPort(s.nodeHost(n), strconv.Itoa(n.Port))
}

// nodeHost is the address a node listens on.
func (s *Service) nodeHost(n *node) string {
	if n.Host != "" {
		return n.Host
	}
	return s.cfg.AdvertiseHost
}

// putNewGroup stores a new group, with its endpoints' ports and its tags,
// once its members are stored (usedPorts then sees their ports).
func (s *Service) putNewGroup(tx *store.Tx, g *replicationGroup, tags []ecapi.Tag) error {
	if err := s.allocateGroupPorts(tx, g); err != nil {
		return err
	}
	if err := tx.Put(tableGroups, g.key(), g); err != nil {
		return err
	}
	return putTags(tx, g.arn(), tags)
}

// allocateGroupPorts takes ports from the node range for the group's endpoints:
// primary and reader, or with cluster mode enabled, configuration.
func (s *Service) allocateGroupPorts(tx *store.Tx, g *replicationGroup) error {
	used, err := s.usedPorts(tx)
	if err != nil {
		return err
	}
	ports := []*int{&g.PrimaryPort, &g.ReaderPort}
	switch {
	case g.ClusterMode:
		ports = []*int{&g.ConfigPort}
	case g.EndpointHost != "": // PrimaryPort is the members' own
		ports = []*int{&g.ReaderPort}
	}
	for _, p := range ports {
		port, err := s.ports.allocate(s.cfg.AdvertiseHost, used)
		if err != nil {
			return ecapi.InsufficientCacheClusterCapacityFault.Errorf("No free port left for the replication group's endpoints: %v", err)
		}
		used[port], *p = true, port
	}
	return nil
}

// adoptPrimary makes an existing, available redis cluster the primary of a new
// group, and adds the replicas.
func (s *Service) adoptPrimary(ctx context.Context, in *ecapi.CreateReplicationGroupMessage, id string, nodes int, failover, multiAZ bool) (*ecapi.CreateReplicationGroupResult, error) {
	c := CallerOf(ctx)
	g := &replicationGroup{Account: c.Account, Region: c.Region, ID: id, Description: in.ReplicationGroupDescription, Status: statusCreating,
		AutomaticFailover: failover, MultiAZ: multiAZ, CreatedAt: s.now(), KmsKeyID: in.KmsKeyId,
		AtRest: in.AtRestEncryptionEnabled != nil && *in.AtRestEncryptionEnabled || in.KmsKeyId != ""}
	err := s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableGroups, c.scope()+id) {
			return ecapi.ReplicationGroupAlreadyExistsFault.Errorf("Replication group %s already exists.", id)
		}
		primary, err := loadAvailableCluster(tx, c, in.PrimaryClusterId)
		if err != nil {
			return err
		}
		switch {
		case primary.ReplicationGroupID != "":
			return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s already belongs to replication group %s.", primary.ID, primary.ReplicationGroupID)
		case primary.Engine == catalog.Memcached:
			return ecapi.InvalidParameterValueException.Errorf("Cache cluster %s runs memcached; a replication group's primary runs redis or valkey.", primary.ID)
		}
		if err := s.checkNodeQuotas(tx, c, nodes-1); err != nil {
			return err
		}
		primary.ReplicationGroupID, primary.Role = id, rolePrimary
		// Its automated backups become the group's, kept by the group's retention limit.
		if err := adoptBackups(tx, c, primary.ID, id); err != nil {
			return err
		}
		g.Engine, g.EngineVersion, g.NodeType, g.SnapshotWindow = primary.Engine, primary.EngineVersion, primary.NodeType, primary.SnapshotWindow
		g.SnapshotRetentionLimit, primary.SnapshotRetentionLimit = primary.SnapshotRetentionLimit, 0
		if err := tx.Put(tableClusters, primary.key(), primary); err != nil {
			return err
		}
		for i := 1; i < nodes; i++ {
			g.NextMember++
			cl, err := s.newMember(tx, c, g, fmt.Sprintf("%s-%03d", id, g.NextMember), "", nil, primary)
			if err != nil {
				return err
			}
			if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
				return err
			}
		}
		return s.putNewGroup(tx, g, in.Tags)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CreateReplicationGroupResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// DescribeReplicationGroups lists the caller's replication groups, or one.
func (s *Service) DescribeReplicationGroups(ctx context.Context, in *ecapi.DescribeReplicationGroupsMessage) (*ecapi.ReplicationGroupMessage, error) {
	c := CallerOf(ctx)
	var groups []replicationGroup
	err := s.store.View(func(tx *store.Tx) error {
		if in.ReplicationGroupId != "" {
			g, err := loadGroupRecord(tx, c, in.ReplicationGroupId)
			if err == nil {
				groups = append(groups, *g)
			}
			return err
		}
		var err error
		groups, err = store.ScanAs[replicationGroup](tx, tableGroups, c.scope())
		return err
	})
	if err != nil {
		return nil, err
	}
	groups, next, err := pageSorted(groups, func(g replicationGroup) string { return g.ID }, in.MaxRecords, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &ecapi.ReplicationGroupMessage{Marker: next, ReplicationGroups: []ecapi.ReplicationGroup{}}
	for i := range groups {
		out.ReplicationGroups = append(out.ReplicationGroups, *s.describeGroup(&groups[i]))
	}
	return out, nil
}

// DeleteReplicationGroup marks the group and its members deleting; the
// reconciler stops the nodes and removes the group once its members are gone.
// With RetainPrimaryCluster the primary leaves the group and keeps running.
func (s *Service) DeleteReplicationGroup(ctx context.Context, in *ecapi.DeleteReplicationGroupMessage) (*ecapi.DeleteReplicationGroupResult, error) {
	c := CallerOf(ctx)
	final := strings.ToLower(in.FinalSnapshotIdentifier)
	if final != "" {
		if err := validateSnapshotName(final); err != nil {
			return nil, err
		}
	}
	var g *replicationGroup
	var retained *cluster
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if g, err = loadGroupRecord(tx, c, in.ReplicationGroupId); err != nil {
			return err
		}
		if g.Status != statusAvailable && g.Status != statusFailed {
			return ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s is not in a deletable state (it is %s).", g.ID, g.Status)
		}
		members, err := groupMembers(tx, g)
		if err != nil {
			return err
		}
		if g.ClusterMode {
			return deleteShardedGroup(tx, g, members, in, final)
		}
		g.Status, g.RetainPrimary = statusDeleting, in.RetainPrimaryCluster != nil && *in.RetainPrimaryCluster
		// The final snapshot is taken by a member that is being deleted, before
		// its node stops (finishDelete).
		if final != "" {
			if tx.Has(tableSnapshots, c.scope()+final) {
				return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", final)
			}
			// From the primary, which stops only after its own final snapshot,
			// so no replica loses its primary mid-snapshot; with
			// RetainPrimaryCluster, from a replica of the primary that stays.
			from := members[0].ID
			if g.RetainPrimary {
				if len(members) < 2 {
					return ecapi.InvalidParameterCombinationException.Errorf("With RetainPrimaryCluster and no replica, snapshot the retained primary instead of FinalSnapshotIdentifier.")
				}
				from = members[1].ID
			}
			for i := range members {
				if members[i].ID == from {
					members[i].FinalSnapshot = final
				}
			}
		}
		for i := range members {
			cl := &members[i]
			if g.RetainPrimary && cl.Role == rolePrimary {
				cl.ReplicationGroupID, cl.Role, cl.HoldForFailover = "", "", false
				retained = cl
			} else {
				cl.Status = statusDeleting
				for _, n := range cl.Nodes {
					n.Status = statusDeleting
				}
			}
			if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
				return err
			}
		}
		return tx.Put(tableGroups, g.key(), g)
	})
	if err != nil {
		return nil, err
	}
	if retained != nil {
		s.releaseEndpoint(ctx, g, retained)
	}
	s.poke()
	return &ecapi.DeleteReplicationGroupResult{ReplicationGroup: s.describeGroup(g)}, nil
}

// describeGroup is a group as the API shows it, with its members as they are now.
func (s *Service) describeGroup(g *replicationGroup) *ecapi.ReplicationGroup {
	var members []cluster
	_ = s.store.View(func(tx *store.Tx) (err error) {
		members, err = groupMembers(tx, g)
		return err
	})
	enabled := func(b bool) string {
		if b {
			return "enabled"
		}
		return "disabled"
	}
	retention, clusterEnabled, atRest := g.SnapshotRetentionLimit, false, g.AtRest
	out := &ecapi.ReplicationGroup{
		ReplicationGroupId: g.ID, Description: g.Description, Status: g.Status, PendingModifiedValues: &ecapi.ReplicationGroupPendingModifiedValues{},
		MemberClusters: []string{}, AutomaticFailover: enabled(g.AutomaticFailover), MultiAZ: enabled(g.MultiAZ),
		SnapshotRetentionLimit: &retention, SnapshotWindow: g.SnapshotWindow, ClusterEnabled: &clusterEnabled, CacheNodeType: g.NodeType,
		AuthTokenEnabled: new(bool), TransitEncryptionEnabled: new(bool), AtRestEncryptionEnabled: &atRest, KmsKeyId: g.KmsKeyID, ARN: g.arn(),
		ReplicationGroupCreateTime: g.CreatedAt, DataTiering: "disabled", NetworkType: "ipv4",
		IpDiscovery: "ipv4", ClusterMode: "disabled", Engine: g.Engine,
	}
	if len(members) > 0 {
		// Members change node type together (at once, or each in its
		// maintenance window): the group shows what its members run.
		// (A pending change shows on the members' PendingModifiedValues.)
		out.AutoMinorVersionUpgrade, out.CacheNodeType = members[0].AutoMinorVersionUpgrade, members[0].NodeType
	}
	if g.SnapshotRetentionLimit > 0 {
		out.SnapshottingClusterId = snapshottingMember(g, members)
	}
	for _, m := range members {
		out.MemberClusters = append(out.MemberClusters, m.ID)
	}
	sort.Strings(out.MemberClusters)
	if g.ClusterMode {
		s.describeShards(g, members, out)
		return out
	}
	ng := ecapi.NodeGroup{NodeGroupId: "0001", Status: g.Status, NodeGroupMembers: []ecapi.NodeGroupMember{},
		PrimaryEndpoint: &ecapi.Endpoint{Address: cmp.Or(g.EndpointHost, s.cfg.AdvertiseHost), Port: int32(g.PrimaryPort)},
		ReaderEndpoint:  &ecapi.Endpoint{Address: s.cfg.AdvertiseHost, Port: int32(g.ReaderPort)}}
	for _, m := range members {
		member := ecapi.NodeGroupMember{CacheClusterId: m.ID, CacheNodeId: "0001", PreferredAvailabilityZone: m.AZ, CurrentRole: m.Role}
		if len(m.Nodes) > 0 {
			member.ReadEndpoint = &ecapi.Endpoint{Address: s.nodeHost(m.Nodes[0]), Port: int32(m.Nodes[0].Port)}
		}
		ng.NodeGroupMembers = append(ng.NodeGroupMembers, member)
	}
	out.NodeGroups = []ecapi.NodeGroup{ng}
	return out
}

// addReplica is CreateCacheCluster with a ReplicationGroupId: the new cluster
// joins the group as a replica of its primary, with the group's engine, node
// type and parameters.
func (s *Service) addReplica(ctx context.Context, id string, in *ecapi.CreateCacheClusterMessage) (*ecapi.CreateCacheClusterResult, error) {
	c := CallerOf(ctx)
	if in.SnapshotName != "" || len(in.SnapshotArns) > 0 {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("A replica syncs from its primary; it cannot be restored from a snapshot.")
	}
	if in.NumCacheNodes != nil && *in.NumCacheNodes != 1 {
		return nil, ecapi.InvalidParameterValueException.Errorf("A replica cluster has one node; NumCacheNodes was %d.", *in.NumCacheNodes)
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var cl *cluster
	err := s.store.Update(func(tx *store.Tx) error {
		g, err := loadGroupRecord(tx, c, in.ReplicationGroupId)
		if err != nil {
			return err
		}
		if g.Status != statusAvailable {
			return ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s is not available (it is %s).", g.ID, g.Status)
		}
		if g.ClusterMode {
			return ecapi.InvalidParameterCombinationException.Errorf("Replication group %s has cluster mode enabled; add replicas with IncreaseReplicaCount.", g.ID)
		}
		members, err := groupMembers(tx, g)
		if err != nil {
			return err
		}
		if len(members) >= 6 {
			return ecapi.InvalidParameterValueException.Errorf("Replication group %s already has a primary and 5 replicas.", g.ID)
		}
		if in.Engine != "" && !strings.EqualFold(in.Engine, g.Engine) || in.CacheNodeType != "" && in.CacheNodeType != g.NodeType {
			return ecapi.InvalidParameterCombinationException.Errorf("A replica runs its group's engine (%s) and node type (%s).", g.Engine, g.NodeType)
		}
		if err := s.checkNodeQuotas(tx, c, 1); err != nil {
			return err
		}
		if cl, err = s.newMember(tx, c, g, id, "", nil, &members[0]); err != nil {
			return err
		}
		if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
			return err
		}
		return putTags(tx, c.arn("cluster", id), in.Tags)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CreateCacheClusterResult{CacheCluster: s.clusterShape(cl, true)}, nil
}

// snapshottingMember is the member a group's snapshots are taken from: the one
// ModifyReplicationGroup named (SnapshottingClusterId), else the primary.
// ElastiCache prefers a replica to spare the primary the fork; hoard does not,
// because a redis 7.0 replica asked for an RDB while its own first sync is
// being acknowledged can stop receiving its primary's stream for good (seen in
// the tests: link up, offset stuck at 0), and a snapshot of the primary is the
// group's data by definition.
func snapshottingMember(g *replicationGroup, members []cluster) string {
	for _, m := range members {
		if m.ID == g.SnapshottingCluster && m.Status != statusDeleting {
			return m.ID
		}
	}
	if len(members) == 0 {
		return ""
	}
	return members[0].ID
}

// adoptBackups makes a cluster's automated snapshots the group's.
func adoptBackups(tx *store.Tx, c Caller, clusterID, groupID string) error {
	all, err := store.ScanAs[snapshot](tx, tableSnapshots, c.scope())
	if err != nil {
		return err
	}
	for i := range all {
		if sn := &all[i]; sn.ClusterID == clusterID && sn.Source == sourceAutomated {
			sn.ReplicationGroupID = groupID
			if err := tx.Put(tableSnapshots, sn.key(), sn); err != nil {
				return err
			}
		}
	}
	return nil
}
