package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

const tableClusters = "clusters"

// Cluster statuses, as ElastiCache reports them.
const (
	statusCreating  = "creating"
	statusAvailable = "available"
	statusModifying = "modifying"
	statusRebooting = "rebooting cache cluster nodes"
	statusDeleting  = "deleting"
	statusFailed    = "create-failed"
)

// Parameter apply statuses.
const (
	applyInSync        = "in-sync"
	applyPendingReboot = "pending-reboot"
	applyApplying      = "applying"
)

// cluster is a cache cluster as stored: what the user asked for (desired state) and
// what the reconciler has made of it (node handles, applied parameters, status).
type cluster struct {
	Account                 string    `json:"account"`
	Region                  string    `json:"region"`
	ID                      string    `json:"id"`
	Engine                  string    `json:"engine"`
	EngineVersion           string    `json:"engineVersion"`
	Family                  string    `json:"family"`
	NodeType                string    `json:"nodeType"`
	ParamGroup              string    `json:"paramGroup"`
	SubnetGroup             string    `json:"subnetGroup,omitempty"`
	SecurityGroupIDs        []string  `json:"securityGroupIds,omitempty"`
	CacheSecurityGroups     []string  `json:"cacheSecurityGroups,omitempty"`
	AZ                      string    `json:"az"`
	MaintenanceWindow       string    `json:"maintenanceWindow"`
	SnapshotWindow          string    `json:"snapshotWindow,omitempty"`
	SnapshotRetentionLimit  int32     `json:"snapshotRetentionLimit"`
	AutoMinorVersionUpgrade bool      `json:"autoMinorVersionUpgrade"`
	NotificationTopicArn    string    `json:"notificationTopicArn,omitempty"`
	Status                  string    `json:"status"`
	FailureReason           string    `json:"failureReason,omitempty"`
	CreatedAt               time.Time `json:"createdAt"`
	Nodes                   []*node   `json:"nodes"`
	Pending                 *pending  `json:"pending,omitempty"`
	NextNodeNumber          int       `json:"nextNodeNumber"`
	// ParamStatus is the ParameterApplyStatus; ParamGen counts changes to the
	// cluster's parameters, so the reconciler can tell whether what it applied is
	// still the latest.
	ParamStatus string `json:"paramStatus,omitempty"`
	ParamGen    int    `json:"paramGen"`
	// FinalSnapshot names the snapshot DeleteCacheCluster takes before the nodes stop.
	FinalSnapshot string `json:"finalSnapshot,omitempty"`
	// LastAutoSnapshot is the day (yyyy-mm-dd) of the last automated snapshot.
	LastAutoSnapshot string `json:"lastAutoSnapshot,omitempty"`
	// ReplicationGroupID names the replication group the cluster is a member of;
	// Role is then primary or replica, and a replica follows ReplicaOf
	// (host:port of the primary's node).
	ReplicationGroupID string `json:"replicationGroupId,omitempty"`
	Role               string `json:"role,omitempty"`
	ReplicaOf          string `json:"replicaOf,omitempty"`
	// HoldForFailover: the cluster is a primary with automatic failover, so a
	// node of it that dies is not restarted (empty, its replicas would copy the
	// emptiness): the group promotes a replica and the old node comes back as one.
	HoldForFailover bool `json:"holdForFailover,omitempty"`
	// NodeGroupID names the member's node group (shard) in a group with cluster
	// mode enabled; ClusterNodeID is its node's Redis Cluster node ID, once known.
	NodeGroupID   string `json:"nodeGroupId,omitempty"`
	ClusterNodeID string `json:"clusterNodeId,omitempty"`
	// Serverless is set when the record is a serverless cache: the same engine
	// runtime and reconciler, stored in its own table and shown by its own API.
	Serverless *serverlessSpec `json:"serverless,omitempty"`
}

// pending holds modifications deferred to the maintenance window (ApplyImmediately false).
type pending struct {
	NumCacheNodes        *int32   `json:"numCacheNodes,omitempty"`
	CacheNodeIDsToRemove []string `json:"cacheNodeIdsToRemove,omitempty"`
	EngineVersion        string   `json:"engineVersion,omitempty"`
	NodeType             string   `json:"nodeType,omitempty"`
}

// node is one cache node of a cluster.
type node struct {
	ID     string `json:"id"` // 0001, 0002, ...
	Status string `json:"status"`
	Port   int    `json:"port"`
	// Host is the address the node listens on, when not AdvertiseHost: the
	// members of a replication group with a moving PrimaryEndpoint each have
	// a loopback address of their own (see endpoint.go).
	Host      string            `json:"host,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	Handle    *engine.Handle    `json:"handle,omitempty"` // nil until started
	Binary    string            `json:"binary,omitempty"` // binary the running process was started from
	Applied   map[string]string `json:"applied,omitempty"`
	Restart   bool              `json:"restart,omitempty"` // a reboot was asked for
	Remove    bool              `json:"remove,omitempty"`  // being removed from the cluster
	// PendingReboot: the node runs parameter values that differ from its group's
	// and only a reboot applies them.
	PendingReboot bool   `json:"pendingReboot,omitempty"`
	LastError     string `json:"lastError,omitempty"` // why the last start failed, to report it once
	Seed          string `json:"seed,omitempty"`      // RDB the node loads at its first start (a restore)
}

func (c *cluster) key() string { return c.Account + "/" + c.Region + "/" + c.ID }

// table is where the record lives: serverless caches have a namespace of their own.
func (c *cluster) table() string {
	if c.Serverless != nil {
		return tableServerless
	}
	return tableClusters
}

// eventSource is the source type and identifier of the record's events.
func (c *cluster) eventSource() (string, string) {
	if c.Serverless != nil {
		return EventsServerlessCache, c.ID
	}
	return EventsCacheCluster, c.ID
}

// arn is the record's ARN.
func (c *cluster) arn() string {
	if c.Serverless != nil {
		return c.caller().arn("serverlesscache", c.ID)
	}
	return c.caller().arn("cluster", c.ID)
}

// noun names the kind of record in event messages.
func (c *cluster) noun() string {
	if c.Serverless != nil {
		return "Serverless cache"
	}
	return "Cache cluster"
}

// nodesRoot is the directory holding the record's node directories.
func (s *Service) nodesRoot(c *cluster) string {
	area := "nodes"
	if c.Serverless != nil {
		area = "serverless-nodes"
	}
	return filepath.Join(s.cfg.DataDir, area, c.Account, c.Region, c.ID)
}

func (c *cluster) caller() Caller { return Caller{Account: c.Account, Region: c.Region} }

func (c *cluster) node(id string) *node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func init() {
	registerTaggable("cluster", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadCluster(tx, c, name)
		return err
	})
}

// loadAvailableCluster loads a cluster that must be available for the change asked.
func loadAvailableCluster(tx *store.Tx, c Caller, id string) (*cluster, error) {
	cl, err := loadCluster(tx, c, id)
	if err == nil && cl.Status != statusAvailable {
		err = ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is not available (it is %s).", cl.ID, cl.Status)
	}
	return cl, err
}

// clusterUsing names one of the caller's clusters for which uses is true, if any.
func clusterUsing(tx *store.Tx, c Caller, uses func(*cluster) bool) (string, error) {
	clusters, err := store.ScanAs[cluster](tx, tableClusters, c.scope())
	for i := range clusters {
		if uses(&clusters[i]) {
			return clusters[i].ID, err
		}
	}
	return "", err
}

func loadCluster(tx *store.Tx, c Caller, id string) (*cluster, error) {
	var cl cluster
	if err := tx.Get(tableClusters, c.scope()+strings.ToLower(id), &cl); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.CacheClusterNotFoundFault.Errorf("CacheCluster not found: %s", id)
		}
		return nil, err
	}
	return &cl, nil
}

// CreateCacheCluster records a new cluster in status creating; the reconciler starts its nodes.
func (s *Service) CreateCacheCluster(ctx context.Context, in *ecapi.CreateCacheClusterMessage) (_ *ecapi.CreateCacheClusterResult, err error) {
	c := CallerOf(ctx)
	id := strings.ToLower(in.CacheClusterId)
	if err := validateName("CacheClusterId", id, 50); err != nil {
		return nil, err
	}
	switch {
	case in.ReplicationGroupId != "":
		return s.addReplica(ctx, id, in)
	case in.SnapshotName != "" && len(in.SnapshotArns) > 0:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give either SnapshotName or SnapshotArns, not both.")
	case in.TransitEncryptionEnabled != nil && *in.TransitEncryptionEnabled:
		return nil, apierr.NotImplemented.Errorf("hoard does not implement in-transit encryption yet (TransitEncryptionEnabled).")
	case in.AuthToken != "":
		return nil, ecapi.InvalidParameterCombinationException.Errorf("AuthToken can only be used with TransitEncryptionEnabled.")
	}
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
				_ = os.RemoveAll(restore.dir) // a refused cluster leaves no staged data behind
			}
		}()
		if err := applyRestore(in, restore); err != nil {
			return nil, err
		}
	}
	ev, err := s.engineVersion(in.Engine, in.EngineVersion)
	if err != nil {
		return nil, err
	}
	family, _ := catalog.Lookup(ev.Family)
	numNodes := int32(1)
	if in.NumCacheNodes != nil {
		numNodes = *in.NumCacheNodes
	}
	if err := s.validateNodeCount(ev.Engine, numNodes); err != nil {
		return nil, err
	}
	if err := validateNodeType(family, in.CacheNodeType); err != nil {
		return nil, err
	}
	if err := validateWindows(in.PreferredMaintenanceWindow, in.SnapshotWindow, in.SnapshotRetentionLimit, ev.Engine); err != nil {
		return nil, err
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	cl := &cluster{
		Account: c.Account, Region: c.Region, ID: id,
		Engine: ev.Engine, EngineVersion: ev.Version, Family: ev.Family, NodeType: in.CacheNodeType,
		SubnetGroup: in.CacheSubnetGroupName, SecurityGroupIDs: in.SecurityGroupIds, CacheSecurityGroups: in.CacheSecurityGroupNames,
		AZ: in.PreferredAvailabilityZone, MaintenanceWindow: in.PreferredMaintenanceWindow,
		SnapshotWindow: in.SnapshotWindow, AutoMinorVersionUpgrade: in.AutoMinorVersionUpgrade == nil || *in.AutoMinorVersionUpgrade,
		NotificationTopicArn: in.NotificationTopicArn, Status: statusCreating, CreatedAt: s.now(),
	}
	if in.SnapshotRetentionLimit != nil {
		cl.SnapshotRetentionLimit = *in.SnapshotRetentionLimit
	}
	if cl.MaintenanceWindow == "" {
		cl.MaintenanceWindow = "sun:05:00-sun:06:00"
	}
	if cl.SnapshotWindow == "" && ev.Engine != catalog.Memcached {
		cl.SnapshotWindow = "03:00-04:00"
	}
	err = s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableClusters, c.scope()+id) {
			return ecapi.CacheClusterAlreadyExistsFault.Errorf("Cache cluster %s already exists.", id)
		}
		g, err := s.groupForCluster(tx, c, in.CacheParameterGroupName, family)
		if err != nil {
			return err
		}
		cl.ParamGroup = g.Name
		if err := placeCluster(tx, c, cl); err != nil {
			return err
		}
		if err := s.checkNodeQuotas(tx, c, int(numNodes)); err != nil {
			return err
		}
		if err := s.addNodes(tx, cl, int(numNodes)); err != nil {
			return err
		}
		seedNodes(cl, restore)
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

// placeCluster checks the cluster's subnet group (default: "default") and cache
// security groups exist, and puts the cluster in the subnet group's first zone
// unless the request chose one.
func placeCluster(tx *store.Tx, c Caller, cl *cluster) error {
	if cl.SubnetGroup == "" {
		cl.SubnetGroup = defaultSubnetGroup
	}
	cl.SubnetGroup = strings.ToLower(cl.SubnetGroup)
	sg, err := loadSubnetGroup(tx, c, cl.SubnetGroup)
	if err != nil {
		return err
	}
	for i, name := range cl.CacheSecurityGroups {
		cl.CacheSecurityGroups[i] = strings.ToLower(name)
		if _, err := loadSecurityGroup(tx, c, cl.CacheSecurityGroups[i]); err != nil {
			return err
		}
	}
	if cl.AZ == "" {
		cl.AZ = c.Region + "a"
		if len(sg.Subnets) > 0 {
			cl.AZ = sg.Subnets[0].AvailabilityZone
		}
	}
	return nil
}

// engineVersion picks the installed engine version a request names: the newest
// installed version of the engine when none is given.
func (s *Service) engineVersion(engineName, version string) (*EngineVersion, error) {
	if engineName == "" {
		return nil, ecapi.InvalidParameterValueException.Errorf("The parameter Engine must be provided.")
	}
	engineName = strings.ToLower(engineName)
	var found *EngineVersion
	var installed []string
	for i := range s.cfg.Engines {
		ev := &s.cfg.Engines[i]
		if ev.Engine != engineName {
			continue
		}
		installed = append(installed, ev.Version)
		if (version == "" || versionMatches(version, ev.Version)) && (found == nil || compareVersions(ev.Version, found.Version) > 0) {
			found = ev
		}
	}
	switch {
	case engineName != catalog.Redis && engineName != catalog.Memcached && engineName != catalog.Valkey:
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid Engine %q: must be redis, valkey or memcached.", engineName)
	case len(installed) == 0:
		return nil, ecapi.InvalidParameterValueException.Errorf("Engine %s is not available: no %s binary was found on this hoard's machine.", engineName, engineBinaryName(engineName))
	case found == nil:
		return nil, ecapi.InvalidParameterValueException.Errorf("Engine version %s of %s is not available; this hoard runs %s.", version, engineName, strings.Join(installed, ", "))
	}
	return found, nil
}

func engineBinaryName(engineName string) string {
	if engineName == catalog.Memcached {
		return "memcached"
	}
	return engineName + "-server"
}

func (s *Service) validateNodeCount(engineName string, n int32) error {
	if engineName == catalog.Memcached {
		if n < 1 || n > 40 {
			return ecapi.InvalidParameterValueException.Errorf("NumCacheNodes must be between 1 and 40 for Memcached, got %d.", n)
		}
		return nil
	}
	if n != 1 {
		return ecapi.InvalidParameterValueException.Errorf("NumCacheNodes must be 1 for clusters running %s, got %d.", engineName, n)
	}
	return nil
}

// validateNodeType accepts the cache.* node types the family's catalogue knows.
func validateNodeType(family *catalog.Family, nodeType string) error {
	if nodeType == "" {
		return ecapi.InvalidParameterValueException.Errorf("The parameter CacheNodeType must be provided.")
	}
	for _, p := range family.NodeTypeSpecific {
		if _, ok := p.Values[nodeType]; ok {
			return nil
		}
	}
	return ecapi.InvalidParameterValueException.Errorf("Invalid CacheNodeType %q for %s.", nodeType, family.Name)
}

// groupForCluster returns the named parameter group (or the family's default) after
// checking it suits a cluster of that family.
func (s *Service) groupForCluster(tx *store.Tx, c Caller, name string, family *catalog.Family) (*paramGroup, error) {
	if name == "" {
		name = "default." + family.Name
	}
	g, err := loadGroup(tx, c, strings.ToLower(name))
	if err != nil {
		return nil, err
	}
	if g.Family != family.Name {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Cache parameter group %s is of family %s, but the cluster's engine version needs family %s.", g.Name, g.Family, family.Name)
	}
	if g.Values["cluster-enabled"] == "yes" {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Cache parameter group %s enables cluster mode, which a cache cluster outside a replication group cannot use.", g.Name)
	}
	return g, nil
}

// groupForMember is groupForCluster for a member of a replication group: with
// cluster mode enabled, the group must have cluster-enabled yes, and the
// family's .cluster.on default stands in when none is named.
func (s *Service) groupForMember(tx *store.Tx, c Caller, name string, family *catalog.Family, clusterMode bool) (*paramGroup, error) {
	if !clusterMode {
		return s.groupForCluster(tx, c, name, family)
	}
	if !family.SupportsClusterMode() {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Engine family %s does not support cluster mode.", family.Name)
	}
	if name == "" {
		name = "default." + family.Name + ".cluster.on"
	}
	g, err := loadGroup(tx, c, strings.ToLower(name))
	if err != nil {
		return nil, err
	}
	switch {
	case g.Family != family.Name:
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Cache parameter group %s is of family %s, but the group's engine version needs family %s.", g.Name, g.Family, family.Name)
	case g.Values["cluster-enabled"] != "yes":
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Cache parameter group %s has cluster-enabled no; a replication group with cluster mode enabled needs cluster-enabled yes.", g.Name)
	}
	return g, nil
}

func validateWindows(maintenance, snapshot string, retention *int32, engineName string) error {
	if maintenance != "" && !maintenanceWindowPattern.MatchString(strings.ToLower(maintenance)) {
		return ecapi.InvalidParameterValueException.Errorf("Invalid PreferredMaintenanceWindow %q: expected ddd:hh24:mi-ddd:hh24:mi.", maintenance)
	}
	if snapshot != "" && !snapshotWindowPattern.MatchString(snapshot) {
		return ecapi.InvalidParameterValueException.Errorf("Invalid SnapshotWindow %q: expected hh24:mi-hh24:mi.", snapshot)
	}
	if retention != nil && (*retention < 0 || *retention > 35) {
		return ecapi.InvalidParameterValueException.Errorf("SnapshotRetentionLimit must be between 0 and 35, got %d.", *retention)
	}
	if engineName == catalog.Memcached && (snapshot != "" || retention != nil && *retention > 0) {
		return ecapi.InvalidParameterCombinationException.Errorf("Memcached clusters do not support snapshots (SnapshotWindow, SnapshotRetentionLimit).")
	}
	return nil
}

// checkNodeQuotas refuses a cluster or nodes beyond the caller's quotas.
func (s *Service) checkNodeQuotas(tx *store.Tx, c Caller, adding int) error {
	clusters, err := store.ScanAs[cluster](tx, tableClusters, c.scope())
	if err != nil {
		return err
	}
	nodes := 0
	for _, cl := range clusters {
		nodes += len(cl.Nodes)
	}
	if nodes+adding > s.cfg.Quotas.NodesPerRegion {
		return ecapi.NodeQuotaForCustomerExceededFault.Errorf("This request would exceed the quota of %d cache nodes per account and region.", s.cfg.Quotas.NodesPerRegion)
	}
	return nil
}

// addNodes appends n nodes, each with a port no other node holds.
func (s *Service) addNodes(tx *store.Tx, cl *cluster, n int) error {
	used, err := s.usedPorts(tx)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		port, err := s.ports.allocateFor(s.cfg.AdvertiseHost, used, cl.NodeGroupID != "")
		if err != nil {
			return ecapi.InsufficientCacheClusterCapacityFault.Errorf("No free port left for a new cache node: %v", err)
		}
		used[port] = true
		cl.NextNodeNumber++
		cl.Nodes = append(cl.Nodes, &node{ID: fmt.Sprintf("%04d", cl.NextNodeNumber), Status: statusCreating, Port: port, CreatedAt: s.now()})
	}
	return nil
}

// allocatePort takes a port of the node range that nothing of hoard's holds
// and that is free to bind now.
func (s *Service) allocatePort(tx *store.Tx) (int, error) {
	used, err := s.usedPorts(tx)
	if err != nil {
		return 0, err
	}
	return s.ports.allocate(s.cfg.AdvertiseHost, used)
}

func (s *Service) usedPorts(tx *store.Tx) (map[int]bool, error) {
	used := map[int]bool{}
	all, err := allClusters(tx)
	for _, cl := range all {
		for _, n := range cl.Nodes {
			used[n.Port] = true
			if cl.NodeGroupID != "" {
				used[n.Port+clusterBusOffset] = true
			}
		}
	}
	if err != nil {
		return nil, err
	}
	groups, err := store.ScanAs[replicationGroup](tx, tableGroups, "")
	for _, g := range groups {
		used[g.PrimaryPort], used[g.ReaderPort], used[g.ConfigPort] = true, true, true
	}
	return used, err
}

// allClusters lists every record the reconciler runs nodes for: cache clusters
// and serverless caches, of every account and region.
func allClusters(tx *store.Tx) ([]cluster, error) {
	clusters, err := store.ScanAs[cluster](tx, tableClusters, "")
	if err != nil {
		return nil, err
	}
	serverless, err := store.ScanAs[cluster](tx, tableServerless, "")
	return append(clusters, serverless...), err
}

// DescribeCacheClusters lists the caller's clusters, or one, by ID.
func (s *Service) DescribeCacheClusters(ctx context.Context, in *ecapi.DescribeCacheClustersMessage) (*ecapi.CacheClusterMessage, error) {
	c := CallerOf(ctx)
	var clusters []cluster
	err := s.store.View(func(tx *store.Tx) error {
		if in.CacheClusterId != "" {
			cl, err := loadCluster(tx, c, in.CacheClusterId)
			if err == nil {
				clusters = append(clusters, *cl)
			}
			return err
		}
		var err error
		clusters, err = store.ScanAs[cluster](tx, tableClusters, c.scope())
		return err
	})
	if err != nil {
		return nil, err
	}
	clusters, next, err := pageSorted(clusters, func(cl cluster) string { return cl.ID }, in.MaxRecords, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &ecapi.CacheClusterMessage{Marker: next, CacheClusters: []ecapi.CacheCluster{}}
	showNodes := in.ShowCacheNodeInfo != nil && *in.ShowCacheNodeInfo
	for i := range clusters {
		out.CacheClusters = append(out.CacheClusters, *s.clusterShape(&clusters[i], showNodes))
	}
	return out, nil
}

// DeleteCacheCluster marks a cluster deleting; the reconciler stops its nodes and removes it.
func (s *Service) DeleteCacheCluster(ctx context.Context, in *ecapi.DeleteCacheClusterMessage) (*ecapi.DeleteCacheClusterResult, error) {
	c := CallerOf(ctx)
	var cl *cluster
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if cl, err = loadCluster(tx, c, in.CacheClusterId); err != nil {
			return err
		}
		if cl.Status != statusAvailable && cl.Status != statusFailed {
			return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is not in a deletable state (it is %s).", cl.ID, cl.Status)
		}
		if err := checkMemberRemoval(tx, c, cl); err != nil {
			return err
		}
		if in.FinalSnapshotIdentifier != "" {
			if cl.Engine == catalog.Memcached {
				return ecapi.SnapshotFeatureNotSupportedFault.Errorf("Memcached clusters do not support snapshots.")
			}
			name := strings.ToLower(in.FinalSnapshotIdentifier)
			if err := validateSnapshotName(name); err != nil {
				return err
			}
			if tx.Has(tableSnapshots, c.scope()+name) {
				return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", name)
			}
			cl.FinalSnapshot = name
		}
		cl.Status = statusDeleting
		for _, n := range cl.Nodes {
			n.Status = statusDeleting
		}
		return tx.Put(tableClusters, cl.key(), cl)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.DeleteCacheClusterResult{CacheCluster: s.clusterShape(cl, false)}, nil
}

// RebootCacheCluster restarts the listed nodes; pending parameter changes take effect.
func (s *Service) RebootCacheCluster(ctx context.Context, in *ecapi.RebootCacheClusterMessage) (*ecapi.RebootCacheClusterResult, error) {
	c := CallerOf(ctx)
	if len(in.CacheNodeIdsToReboot) == 0 {
		return nil, ecapi.InvalidParameterValueException.Errorf("CacheNodeIdsToReboot must name at least one node.")
	}
	var cl *cluster
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if cl, err = loadAvailableCluster(tx, c, in.CacheClusterId); err != nil {
			return err
		}
		if cl.Role == rolePrimary {
			// Restarted, it would come back empty and its replicas would copy that.
			return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is the primary of replication group %s: fail over (TestFailover or ModifyReplicationGroup PrimaryClusterId) before rebooting it.", cl.ID, cl.ReplicationGroupID)
		}
		for _, id := range in.CacheNodeIdsToReboot {
			n := cl.node(id)
			if n == nil {
				return ecapi.InvalidParameterValueException.Errorf("Cache cluster %s has no node %s.", cl.ID, id)
			}
			n.Restart = true
			n.Status = "rebooting"
		}
		cl.Status = statusRebooting
		return tx.Put(tableClusters, cl.key(), cl)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.RebootCacheClusterResult{CacheCluster: s.clusterShape(cl, false)}, nil
}

// checkMemberRemoval refuses to delete a group's primary, or the last replica
// of a group with automatic failover.
func checkMemberRemoval(tx *store.Tx, c Caller, cl *cluster) error {
	switch cl.Role {
	case rolePrimary:
		return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is the primary of replication group %s: delete the group, or fail over first.", cl.ID, cl.ReplicationGroupID)
	case roleReplica:
		g, err := loadGroupRecord(tx, c, cl.ReplicationGroupID)
		if err != nil {
			return err
		}
		members, err := groupMembers(tx, g)
		if err != nil {
			return err
		}
		replicas := 0
		for _, m := range members {
			if m.Role == roleReplica && m.Status != statusDeleting {
				replicas++
			}
		}
		if g.AutomaticFailover && replicas <= 1 {
			return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is the last replica of replication group %s, which has automatic failover: disable it first.", cl.ID, g.ID)
		}
	}
	return nil
}
