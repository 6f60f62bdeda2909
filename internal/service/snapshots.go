package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

const tableSnapshots = "snapshots"

// Snapshot statuses and sources, as the API reports them.
const (
	snapshotCreating    = "creating"
	snapshotAvailable   = "available"
	snapshotDeleting    = "deleting"
	snapshotFailed      = "failed"
	sourceManual        = "manual"
	sourceAutomated     = "automated"
	clusterSnapshotting = "snapshotting"
	groupSnapshotting   = "snapshotting"
)

// snapshot is a cache cluster snapshot as stored: the source cluster's
// configuration, and one RDB file per node in hoard's snapshot store.
type snapshot struct {
	Account   string    `json:"account"`
	Region    string    `json:"region"`
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"createdAt"`
	ClusterID string    `json:"clusterId"`
	// ReplicationGroupID is set when the snapshot is of a replication group
	// (taken from its snapshotting member, ClusterID).
	ReplicationGroupID      string         `json:"replicationGroupId,omitempty"`
	ReplicationGroupDesc    string         `json:"replicationGroupDescription,omitempty"`
	AutomaticFailover       bool           `json:"automaticFailover,omitempty"`
	ClusterCreatedAt        time.Time      `json:"clusterCreatedAt"`
	NodeType                string         `json:"nodeType"`
	Engine                  string         `json:"engine"`
	EngineVersion           string         `json:"engineVersion"`
	Family                  string         `json:"family"`
	ParamGroup              string         `json:"paramGroup"`
	SubnetGroup             string         `json:"subnetGroup"`
	AZ                      string         `json:"az"`
	MaintenanceWindow       string         `json:"maintenanceWindow"`
	SnapshotWindow          string         `json:"snapshotWindow"`
	SnapshotRetentionLimit  int32          `json:"snapshotRetentionLimit"`
	AutoMinorVersionUpgrade bool           `json:"autoMinorVersionUpgrade"`
	TopicArn                string         `json:"topicArn,omitempty"`
	KmsKeyID                string         `json:"kmsKeyId,omitempty"`
	Nodes                   []nodeSnapshot `json:"nodes"`
	Failure                 string         `json:"failure,omitempty"`
}

// nodeSnapshot is one node's data in a snapshot.
type nodeSnapshot struct {
	NodeID        string    `json:"nodeId"`
	NodeCreatedAt time.Time `json:"nodeCreatedAt"`
	Size          int64     `json:"size"`
	Checksum      string    `json:"checksum,omitempty"` // newChecksum of the RDB file
	SnapshotTaken time.Time `json:"snapshotTaken,omitempty"`
	// In a sharded snapshot (snapshot.sharded) the data is one node group's:
	// NodeID is the node group's ID, ClusterID the member it was taken from,
	// and Slots the node group's slots.
	ClusterID string `json:"clusterId,omitempty"`
	Slots     string `json:"slots,omitempty"`
}

func (sn *snapshot) key() string { return sn.Account + "/" + sn.Region + "/" + sn.Name }

// sharded reports a snapshot of a group with cluster mode enabled: a node
// snapshot per node group, each from its own member (no single ClusterID).
func (sn *snapshot) sharded() bool  { return sn.ClusterID == "" && sn.ReplicationGroupID != "" }
func (sn *snapshot) caller() Caller { return Caller{Account: sn.Account, Region: sn.Region} }
func (s *Service) snapshotDir(sn *snapshot) string {
	return filepath.Join(s.cfg.DataDir, "snapshots", sn.Account, sn.Region, sn.Name)
}

// nodeFile is where a node's RDB lives in the snapshot store.
func (s *Service) nodeFile(sn *snapshot, nodeID string) string {
	return filepath.Join(s.snapshotDir(sn), nodeID+".rdb")
}

func init() {
	registerTaggable("snapshot", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadSnapshot(tx, c, name)
		return err
	})
}

func loadSnapshot(tx *store.Tx, c Caller, name string) (*snapshot, error) {
	var sn snapshot
	if err := tx.Get(tableSnapshots, c.scope()+strings.ToLower(name), &sn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.SnapshotNotFoundFault.Errorf("Snapshot %s not found.", name)
		}
		return nil, err
	}
	return &sn, nil
}

// newSnapshot describes a snapshot of cl about to be taken.
func newSnapshot(cl *cluster, name, source string, now time.Time) *snapshot {
	sn := &snapshot{
		Account: cl.Account, Region: cl.Region, Name: name, Status: snapshotCreating, Source: source, CreatedAt: now,
		ClusterID: cl.ID, ReplicationGroupID: cl.ReplicationGroupID, ClusterCreatedAt: cl.CreatedAt, NodeType: cl.NodeType, Engine: cl.Engine, EngineVersion: cl.EngineVersion,
		Family: cl.Family, ParamGroup: cl.ParamGroup, SubnetGroup: cl.SubnetGroup, AZ: cl.AZ, MaintenanceWindow: cl.MaintenanceWindow,
		SnapshotWindow: cl.SnapshotWindow, SnapshotRetentionLimit: cl.SnapshotRetentionLimit, AutoMinorVersionUpgrade: cl.AutoMinorVersionUpgrade,
		TopicArn: cl.NotificationTopicArn,
	}
	for _, n := range cl.Nodes {
		if !n.Remove {
			sn.Nodes = append(sn.Nodes, nodeSnapshot{NodeID: n.ID, NodeCreatedAt: n.CreatedAt})
		}
	}
	return sn
}

func validateSnapshotName(name string) error {
	return validateName("SnapshotName", name, 255)
}

// CreateSnapshot records a manual snapshot of a cluster and starts taking it: the
// snapshot is creating and the cluster snapshotting until every node's RDB is stored.
func (s *Service) CreateSnapshot(ctx context.Context, in *ecapi.CreateSnapshotMessage) (*ecapi.CreateSnapshotResult, error) {
	c := CallerOf(ctx)
	switch {
	case in.ReplicationGroupId != "" && in.CacheClusterId != "":
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give either CacheClusterId or ReplicationGroupId, not both.")
	case in.CacheClusterId == "" && in.ReplicationGroupId == "":
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Either CacheClusterId or ReplicationGroupId must be given.")
	}
	name := strings.ToLower(in.SnapshotName)
	if err := validateSnapshotName(name); err != nil {
		return nil, err
	}
	if err := s.checkKmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var sn *snapshot
	s.snapshotJobs.begin(c.scope() + name)
	err := s.store.Update(func(tx *store.Tx) error {
		var group *replicationGroup
		clusterID := in.CacheClusterId
		if in.ReplicationGroupId != "" {
			g, members, err := loadAvailableGroup(tx, c, in.ReplicationGroupId)
			if err != nil {
				return err
			}
			if g.ClusterMode {
				if tx.Has(tableSnapshots, c.scope()+name) {
					return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", name)
				}
				if sn, err = s.newShardedSnapshot(g, members, name, sourceManual); err != nil {
					return err
				}
				if in.KmsKeyId != "" {
					sn.KmsKeyID = in.KmsKeyId
				}
				if err := beginShardedSnapshot(tx, g, sn); err != nil {
					return err
				}
				return putTags(tx, c.arn("snapshot", name), in.Tags)
			}
			group, clusterID = g, snapshottingMember(g, members)
		}
		cl, err := loadCluster(tx, c, clusterID)
		if err != nil {
			return err
		}
		if err := canSnapshot(cl); err != nil {
			return err
		}
		if tx.Has(tableSnapshots, c.scope()+name) {
			return ecapi.SnapshotAlreadyExistsFault.Errorf("Snapshot %s already exists.", name)
		}
		if err := s.checkSnapshotQuota(tx, cl); err != nil {
			return err
		}
		sn = newSnapshot(cl, name, sourceManual, s.now())
		sn.KmsKeyID = in.KmsKeyId
		if group != nil {
			sn.ReplicationGroupDesc, sn.AutomaticFailover = group.Description, group.AutomaticFailover
			sn.SnapshotRetentionLimit, sn.SnapshotWindow = group.SnapshotRetentionLimit, group.SnapshotWindow
			if sn.KmsKeyID == "" {
				sn.KmsKeyID = group.KmsKeyID // the group's data at rest is encrypted with its key
			}
		}
		if err := s.beginSnapshot(tx, cl, sn); err != nil {
			return err
		}
		return putTags(tx, c.arn("snapshot", name), in.Tags)
	})
	if err != nil {
		s.snapshotJobs.end(c.scope() + name)
		return nil, err
	}
	go s.takeSnapshot(context.WithoutCancel(ctx), sn)
	return &ecapi.CreateSnapshotResult{Snapshot: s.snapshotShape(sn)}, nil
}

// canSnapshot refuses clusters that cannot be snapshotted now.
func canSnapshot(cl *cluster) error {
	if cl.Engine == catalog.Memcached {
		return ecapi.SnapshotFeatureNotSupportedFault.Errorf("Memcached clusters do not support snapshots.")
	}
	if cl.Status != statusAvailable {
		return ecapi.InvalidCacheClusterStateFault.Errorf("Cache cluster %s is not available (it is %s).", cl.ID, cl.Status)
	}
	return nil
}

// checkSnapshotQuota allows each node ManualSnapshotsPerDay manual snapshots in any 24 hours.
func (s *Service) checkSnapshotQuota(tx *store.Tx, cl *cluster) error {
	all, err := store.ScanAs[snapshot](tx, tableSnapshots, cl.caller().scope())
	if err != nil {
		return err
	}
	since := s.now().Add(-24 * time.Hour)
	n := 0
	for _, sn := range all {
		if sn.ClusterID == cl.ID && sn.Source == sourceManual && sn.CreatedAt.After(since) {
			n++
		}
	}
	if n >= s.cfg.Quotas.ManualSnapshotsPerDay {
		return ecapi.SnapshotQuotaExceededFault.Errorf("Cache cluster %s has had %d manual snapshots in the last 24 hours; the limit is %d.", cl.ID, n, s.cfg.Quotas.ManualSnapshotsPerDay)
	}
	return nil
}

// beginSnapshot stores a creating snapshot and marks its cluster snapshotting.
func (s *Service) beginSnapshot(tx *store.Tx, cl *cluster, sn *snapshot) error {
	cl.Status = clusterSnapshotting
	if err := tx.Put(tableClusters, cl.key(), cl); err != nil {
		return err
	}
	return tx.Put(tableSnapshots, sn.key(), sn)
}

// DescribeSnapshots lists snapshots, filtered by cluster, name and source.
func (s *Service) DescribeSnapshots(ctx context.Context, in *ecapi.DescribeSnapshotsMessage) (*ecapi.DescribeSnapshotsListMessage, error) {
	c := CallerOf(ctx)
	switch in.SnapshotSource {
	case "", sourceManual, sourceAutomated:
	default:
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid SnapshotSource %q: must be manual or automated.", in.SnapshotSource)
	}
	if in.ReplicationGroupId != "" && in.CacheClusterId != "" {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give either CacheClusterId or ReplicationGroupId, not both.")
	}
	var matched []snapshot
	err := s.store.View(func(tx *store.Tx) error {
		if in.SnapshotName != "" {
			if _, err := loadSnapshot(tx, c, in.SnapshotName); err != nil {
				return err
			}
		}
		all, err := store.ScanAs[snapshot](tx, tableSnapshots, c.scope())
		for _, sn := range all {
			switch {
			case in.SnapshotName != "" && sn.Name != strings.ToLower(in.SnapshotName),
				in.CacheClusterId != "" && sn.ClusterID != strings.ToLower(in.CacheClusterId),
				in.ReplicationGroupId != "" && sn.ReplicationGroupID != strings.ToLower(in.ReplicationGroupId),
				in.SnapshotSource != "" && sn.Source != in.SnapshotSource:
				continue
			}
			matched = append(matched, sn)
		}
		if err == nil && in.CacheClusterId != "" && len(matched) == 0 {
			_, err = loadCluster(tx, c, in.CacheClusterId)
		}
		if err == nil && in.ReplicationGroupId != "" && len(matched) == 0 {
			_, err = loadGroupRecord(tx, c, in.ReplicationGroupId)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	page, next, err := pageSortedWithin(matched, func(sn snapshot) string { return sn.Name }, in.MaxRecords, 50, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &ecapi.DescribeSnapshotsListMessage{Marker: next, Snapshots: []ecapi.Snapshot{}}
	for i := range page {
		out.Snapshots = append(out.Snapshots, *s.snapshotShape(&page[i]))
	}
	return out, nil
}

// DeleteSnapshot deletes a snapshot and its data.
func (s *Service) DeleteSnapshot(ctx context.Context, in *ecapi.DeleteSnapshotMessage) (*ecapi.DeleteSnapshotResult, error) {
	c := CallerOf(ctx)
	var sn *snapshot
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if sn, err = loadSnapshot(tx, c, in.SnapshotName); err != nil {
			return err
		}
		if sn.Status == snapshotCreating {
			return ecapi.InvalidSnapshotStateFault.Errorf("Snapshot %s is still being created.", sn.Name)
		}
		if err := tx.Delete(tableSnapshots, sn.key()); err != nil {
			return err
		}
		return tx.Delete(tableTags, c.arn("snapshot", sn.Name))
	})
	if err != nil {
		return nil, err
	}
	// The record is gone first, so a crash here leaves only unreferenced files.
	if err := os.RemoveAll(s.snapshotDir(sn)); err != nil {
		s.log.Error("removing snapshot files", "snapshot", sn.key(), "error", err)
	}
	sn.Status = snapshotDeleting
	return &ecapi.DeleteSnapshotResult{Snapshot: s.snapshotShape(sn)}, nil
}

// snapshotShape is a snapshot as the API shows it.
func (s *Service) snapshotShape(sn *snapshot) *ecapi.Snapshot {
	c := sn.caller()
	n := int32(len(sn.Nodes))
	retention := sn.SnapshotRetentionLimit
	out := &ecapi.Snapshot{
		SnapshotName: sn.Name, CacheClusterId: sn.ClusterID, SnapshotStatus: sn.Status, SnapshotSource: sn.Source,
		CacheNodeType: sn.NodeType, Engine: sn.Engine, EngineVersion: sn.EngineVersion, NumCacheNodes: &n,
		PreferredAvailabilityZone: sn.AZ, CacheClusterCreateTime: sn.ClusterCreatedAt, PreferredMaintenanceWindow: sn.MaintenanceWindow,
		TopicArn: sn.TopicArn, CacheParameterGroupName: sn.ParamGroup, CacheSubnetGroupName: sn.SubnetGroup, VpcId: vpcID(c),
		AutoMinorVersionUpgrade: sn.AutoMinorVersionUpgrade, SnapshotRetentionLimit: &retention, SnapshotWindow: sn.SnapshotWindow,
		KmsKeyId: sn.KmsKeyID, ARN: c.arn("snapshot", sn.Name), DataTiering: "disabled",
		NodeSnapshots: []ecapi.NodeSnapshot{},
	}
	port := int32(6379)
	out.Port = &port
	if sn.ReplicationGroupID != "" {
		shards := int32(1)
		if sn.sharded() {
			shards = int32(len(sn.Nodes))
		}
		out.ReplicationGroupId, out.ReplicationGroupDescription, out.NumNodeGroups = sn.ReplicationGroupID, sn.ReplicationGroupDesc, &shards
		out.AutomaticFailover = "disabled"
		if sn.AutomaticFailover {
			out.AutomaticFailover = "enabled"
		}
	}
	for _, ns := range sn.Nodes {
		node := ecapi.NodeSnapshot{CacheNodeId: ns.NodeID, CacheNodeCreateTime: ns.NodeCreatedAt, SnapshotCreateTime: ns.SnapshotTaken}
		switch {
		case sn.sharded():
			node.CacheClusterId, node.NodeGroupId, node.CacheNodeId = ns.ClusterID, ns.NodeID, "0001"
			node.NodeGroupConfiguration = &ecapi.NodeGroupConfiguration{NodeGroupId: ns.NodeID, Slots: ns.Slots}
		case sn.ReplicationGroupID != "":
			node.CacheClusterId, node.NodeGroupId = sn.ClusterID, "0001"
		}
		if sn.Status == snapshotAvailable {
			node.CacheSize = formatSize(ns.Size)
		}
		out.NodeSnapshots = append(out.NodeSnapshots, node)
	}
	return out
}

// formatSize writes a size as ElastiCache does in CacheSize ("6 MB").
func formatSize(bytes int64) string {
	mb := float64(bytes) / (1 << 20)
	if mb < 1 {
		return strconv.FormatInt(bytes, 10) + " bytes"
	}
	return strconv.FormatFloat(mb, 'f', 0, 64) + " MB"
}

// beginShardedSnapshot stores a creating snapshot of a group with cluster mode
// enabled and marks the group snapshotting, which holds off reshardings,
// failovers and replica changes until every node group's RDB is taken: a slot
// moving between two captures would be in both files, or in neither.
func beginShardedSnapshot(tx *store.Tx, g *replicationGroup, sn *snapshot) error {
	g.Status = groupSnapshotting
	if err := tx.Put(tableGroups, g.key(), g); err != nil {
		return err
	}
	return tx.Put(tableSnapshots, sn.key(), sn)
}

// releaseGroup returns a snapshotting group to available.
func releaseGroup(tx *store.Tx, c Caller, id string) error {
	g, err := loadGroupRecord(tx, c, id)
	if err != nil || g.Status != groupSnapshotting {
		return nil // deleted meanwhile, or not held
	}
	g.Status = statusAvailable
	return tx.Put(tableGroups, g.key(), g)
}

// newShardedSnapshot describes a snapshot of a group with cluster mode
// enabled: one RDB per node group, taken from its primary, with the slots it
// owns, so that a restore puts every key back in a node group owning its slot.
func (s *Service) newShardedSnapshot(g *replicationGroup, members []cluster, name, source string) (*snapshot, error) {
	var sn *snapshot
	for _, sh := range g.Shards {
		var primary *cluster
		for i := range members {
			if m := &members[i]; m.NodeGroupID == sh.ID && m.Role == rolePrimary && m.Status != statusDeleting {
				primary = m
			}
		}
		if primary == nil || len(primary.Nodes) == 0 {
			return nil, ecapi.InvalidReplicationGroupStateFault.Errorf("Node group %s of replication group %s has no primary now.", sh.ID, g.ID)
		}
		if sn == nil {
			sn = newSnapshot(primary, name, source, s.now())
			sn.ClusterID, sn.Nodes = "", nil
			sn.ReplicationGroupDesc, sn.AutomaticFailover, sn.KmsKeyID = g.Description, g.AutomaticFailover, g.KmsKeyID
			sn.SnapshotRetentionLimit, sn.SnapshotWindow = g.SnapshotRetentionLimit, g.SnapshotWindow
		}
		slots := sh.Slots
		if len(slots) == 0 {
			slots = sh.Want
		}
		sn.Nodes = append(sn.Nodes, nodeSnapshot{NodeID: sh.ID, NodeCreatedAt: primary.Nodes[0].CreatedAt, ClusterID: primary.ID,
			Slots: engine.FormatSlotRanges(slots)})
	}
	if sn == nil {
		return nil, ecapi.InvalidReplicationGroupStateFault.Errorf("Replication group %s has no node groups.", g.ID)
	}
	return sn, nil
}
