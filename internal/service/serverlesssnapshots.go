package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

const tableServerlessSnapshots = "serverlesssnapshots"

// Serverless snapshot types, as the API reports them.
const (
	snapshotTypeManual    = "manual"
	snapshotTypeAutomated = "automated"
)

// serverlessSnapshot is a serverless cache snapshot as stored: what the cache
// was, and its node's data (an RDB, or a memcached dump) in the snapshot store,
// encrypted when the snapshot has a KMS key.
type serverlessSnapshot struct {
	Account       string         `json:"account"`
	Region        string         `json:"region"`
	Name          string         `json:"name"`
	Status        string         `json:"status"`
	Type          string         `json:"type"`
	CreatedAt     time.Time      `json:"createdAt"`
	ExpiresAt     time.Time      `json:"expiresAt,omitzero"`
	CacheName     string         `json:"cacheName"`
	Engine        string         `json:"engine"`
	MajorVersion  string         `json:"majorVersion"`
	EngineVersion string         `json:"engineVersion"`
	KmsKeyID      string         `json:"kmsKeyId,omitempty"`
	Nodes         []nodeSnapshot `json:"nodes"`
	Failure       string         `json:"failure,omitempty"`
}

func (sn *serverlessSnapshot) key() string    { return sn.Account + "/" + sn.Region + "/" + sn.Name }
func (sn *serverlessSnapshot) caller() Caller { return Caller{Account: sn.Account, Region: sn.Region} }
func (sn *serverlessSnapshot) arn() string {
	return sn.caller().arn("serverlesscachesnapshot", sn.Name)
}

// jobKey names the snapshot's job apart from cluster snapshots of the same name.
func (sn *serverlessSnapshot) jobKey() string { return "serverless:" + sn.key() }

func (s *Service) serverlessSnapshotDir(sn *serverlessSnapshot) string {
	return filepath.Join(s.cfg.DataDir, "serverless-snapshots", sn.Account, sn.Region, sn.Name)
}

func (s *Service) serverlessSnapshotFile(sn *serverlessSnapshot, ns nodeSnapshot) string {
	return filepath.Join(s.serverlessSnapshotDir(sn), dataFileName(sn.Engine, ns.NodeID))
}

func init() {
	registerTaggable("serverlesscachesnapshot", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadServerlessSnapshot(tx, c, name)
		return err
	})
}

func loadServerlessSnapshot(tx *store.Tx, c Caller, name string) (*serverlessSnapshot, error) {
	var sn serverlessSnapshot
	if err := tx.Get(tableServerlessSnapshots, c.scope()+strings.ToLower(name), &sn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.ServerlessCacheSnapshotNotFoundFault.Errorf("Serverless cache snapshot %s not found.", name)
		}
		return nil, err
	}
	return &sn, nil
}

// validateServerlessSnapshotName: 1 to 255 characters, named as other ElastiCache resources are.
func validateServerlessSnapshotName(name string) error {
	return validateName("ServerlessCacheSnapshotName", name, 255)
}

// newServerlessSnapshot describes a snapshot of cl about to be taken.
func newServerlessSnapshot(cl *cluster, name, kind, kmsKey string, now time.Time) *serverlessSnapshot {
	sn := &serverlessSnapshot{
		Account: cl.Account, Region: cl.Region, Name: name, Status: snapshotCreating, Type: kind, CreatedAt: now,
		CacheName: cl.ID, Engine: cl.Engine, MajorVersion: cl.Serverless.MajorVersion, EngineVersion: cl.EngineVersion, KmsKeyID: kmsKey,
	}
	if kind == snapshotTypeAutomated {
		sn.ExpiresAt = now.Add(time.Duration(cl.SnapshotRetentionLimit) * 24 * time.Hour)
	}
	for _, n := range cl.Nodes {
		sn.Nodes = append(sn.Nodes, nodeSnapshot{NodeID: n.ID, NodeCreatedAt: n.CreatedAt})
	}
	return sn
}

// CreateServerlessCacheSnapshot records a manual snapshot of a serverless cache
// and starts taking it; it is creating until the node's data is stored.
func (s *Service) CreateServerlessCacheSnapshot(ctx context.Context, in *ecapi.CreateServerlessCacheSnapshotRequest) (*ecapi.CreateServerlessCacheSnapshotResponse, error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.ServerlessCacheSnapshotName)
	if err := validateServerlessSnapshotName(name); err != nil {
		return nil, err
	}
	if err := s.checkKmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var sn *serverlessSnapshot
	jobKey := "serverless:" + c.scope() + name
	s.snapshotJobs.begin(jobKey) // before the record exists, so recovery never mistakes it for a crash's
	err := s.store.Update(func(tx *store.Tx) error {
		cl, err := loadAvailableServerless(tx, c, in.ServerlessCacheName)
		if err != nil {
			return err
		}
		if tx.Has(tableServerlessSnapshots, c.scope()+name) {
			return ecapi.ServerlessCacheSnapshotAlreadyExistsFault.Errorf("Serverless cache snapshot %s already exists.", name)
		}
		if err := s.checkServerlessSnapshotQuota(tx, cl); err != nil {
			return err
		}
		kmsKey := in.KmsKeyId
		if kmsKey == "" {
			kmsKey = cl.Serverless.KmsKeyID // a cache's snapshots are encrypted with its key
		}
		sn = newServerlessSnapshot(cl, name, snapshotTypeManual, kmsKey, s.now())
		if err := s.beginServerlessSnapshot(tx, cl, sn); err != nil {
			return err
		}
		return putTags(tx, sn.arn(), in.Tags)
	})
	if err != nil {
		s.snapshotJobs.end(jobKey)
		return nil, err
	}
	go s.takeServerlessSnapshot(context.WithoutCancel(ctx), sn)
	return &ecapi.CreateServerlessCacheSnapshotResponse{ServerlessCacheSnapshot: serverlessSnapshotShape(sn)}, nil
}

// checkServerlessSnapshotQuota allows each cache ServerlessSnapshotsPerDay manual snapshots in any 24 hours.
func (s *Service) checkServerlessSnapshotQuota(tx *store.Tx, cl *cluster) error {
	all, err := store.ScanAs[serverlessSnapshot](tx, tableServerlessSnapshots, cl.caller().scope())
	if err != nil {
		return err
	}
	since := s.now().Add(-24 * time.Hour)
	n := 0
	for _, sn := range all {
		if sn.CacheName == cl.ID && sn.Type == snapshotTypeManual && sn.CreatedAt.After(since) {
			n++
		}
	}
	if n >= s.cfg.Quotas.ServerlessSnapshotsPerDay {
		return ecapi.ServerlessCacheSnapshotQuotaExceededFault.Errorf("Serverless cache %s has had %d manual snapshots in the last 24 hours; the limit is %d.", cl.ID, n, s.cfg.Quotas.ServerlessSnapshotsPerDay)
	}
	return nil
}

// beginServerlessSnapshot stores a creating snapshot and marks its cache
// snapshotting (one snapshot at a time). The caller has registered its job.
func (s *Service) beginServerlessSnapshot(tx *store.Tx, cl *cluster, sn *serverlessSnapshot) error {
	cl.Status = clusterSnapshotting
	if err := tx.Put(tableServerless, cl.key(), cl); err != nil {
		return err
	}
	return tx.Put(tableServerlessSnapshots, sn.key(), sn)
}

// takeServerlessSnapshot captures the cache's node and records the outcome.
func (s *Service) takeServerlessSnapshot(ctx context.Context, sn *serverlessSnapshot) {
	defer s.snapshotJobs.end(sn.jobKey())
	err := s.captureServerless(ctx, sn)
	if err != nil {
		s.log.Error("serverless snapshot failed", "snapshot", sn.key(), "error", err)
	}
	if err := s.finishServerlessSnapshot(sn, err); err != nil {
		s.log.Error("recording serverless snapshot", "snapshot", sn.key(), "error", err)
	}
}

func (s *Service) captureServerless(ctx context.Context, sn *serverlessSnapshot) error {
	var cl *cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		cl, err = loadServerless(tx, sn.caller(), sn.CacheName)
		return err
	})
	if err != nil {
		return err
	}
	return s.capture(ctx, nodesOf(cl), sn.Nodes, s.serverlessSnapshotDir(sn), sn.KmsKeyID)
}

// finishServerlessSnapshot records a snapshot's outcome and gives its cache back.
func (s *Service) finishServerlessSnapshot(sn *serverlessSnapshot, captureErr error) error {
	c := sn.caller()
	if captureErr != nil {
		_ = os.RemoveAll(s.serverlessSnapshotDir(sn))
		sn.Status, sn.Failure = snapshotFailed, captureErr.Error()
	} else {
		sn.Status = snapshotAvailable
	}
	return s.store.Update(func(tx *store.Tx) error {
		if err := releaseCluster(tx, tableServerless, c, sn.CacheName); err != nil {
			return err
		}
		if !tx.Has(tableServerlessSnapshots, sn.key()) {
			return nil // deleted meanwhile
		}
		if err := tx.Put(tableServerlessSnapshots, sn.key(), sn); err != nil {
			return err
		}
		if captureErr != nil {
			return s.recordEvent(tx, c, EventsServerlessSnapshot, sn.Name, "Snapshot %s of serverless cache %s failed: %v", sn.Name, sn.CacheName, captureErr)
		}
		return s.recordEvent(tx, c, EventsServerlessSnapshot, sn.Name, "Snapshot %s of serverless cache %s succeeded", sn.Name, sn.CacheName)
	})
}

// recoverServerlessSnapshots fails the serverless snapshots a crash interrupted.
func (s *Service) recoverServerlessSnapshots() error {
	return recoverInterrupted(s, tableServerlessSnapshots, func(sn *serverlessSnapshot) (string, string, string, string) {
		return sn.Status, sn.key(), sn.jobKey(), s.serverlessSnapshotDir(sn)
	}, s.finishServerlessSnapshot)
}

// takeFinalServerlessSnapshot is takeFinalSnapshot for a deleting serverless cache.
func (s *Service) takeFinalServerlessSnapshot(ctx context.Context, cl *cluster) (bool, error) {
	sn := newServerlessSnapshot(cl, cl.FinalSnapshot, snapshotTypeManual, cl.Serverless.KmsKeyID, s.now())
	return s.finalSnapshotJob(tableServerlessSnapshots, sn.key(), sn.jobKey(), sn, func() {
		s.takeServerlessSnapshot(context.WithoutCancel(ctx), sn)
	})
}

// DescribeServerlessCacheSnapshots lists snapshots, filtered by cache, name and type.
func (s *Service) DescribeServerlessCacheSnapshots(ctx context.Context, in *ecapi.DescribeServerlessCacheSnapshotsRequest) (*ecapi.DescribeServerlessCacheSnapshotsResponse, error) {
	c := CallerOf(ctx)
	switch in.SnapshotType {
	case "", snapshotTypeManual, snapshotTypeAutomated:
	default:
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid SnapshotType %q: must be manual or automated.", in.SnapshotType)
	}
	var matched []serverlessSnapshot
	err := s.store.View(func(tx *store.Tx) error {
		if in.ServerlessCacheSnapshotName != "" {
			if _, err := loadServerlessSnapshot(tx, c, in.ServerlessCacheSnapshotName); err != nil {
				return err
			}
		}
		all, err := store.ScanAs[serverlessSnapshot](tx, tableServerlessSnapshots, c.scope())
		if err != nil {
			return err
		}
		for _, sn := range all {
			switch {
			case in.ServerlessCacheSnapshotName != "" && sn.Name != strings.ToLower(in.ServerlessCacheSnapshotName),
				in.ServerlessCacheName != "" && sn.CacheName != strings.ToLower(in.ServerlessCacheName),
				in.SnapshotType != "" && sn.Type != in.SnapshotType:
				continue
			}
			matched = append(matched, sn)
		}
		if in.ServerlessCacheName != "" && len(matched) == 0 {
			_, err = loadServerless(tx, c, in.ServerlessCacheName)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	page, next, err := pageResults(matched, func(sn serverlessSnapshot) string { return sn.Name }, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &ecapi.DescribeServerlessCacheSnapshotsResponse{NextToken: next, ServerlessCacheSnapshots: []ecapi.ServerlessCacheSnapshot{}}
	for i := range page {
		out.ServerlessCacheSnapshots = append(out.ServerlessCacheSnapshots, *serverlessSnapshotShape(&page[i]))
	}
	return out, nil
}

// DeleteServerlessCacheSnapshot deletes a snapshot and its data.
func (s *Service) DeleteServerlessCacheSnapshot(ctx context.Context, in *ecapi.DeleteServerlessCacheSnapshotRequest) (*ecapi.DeleteServerlessCacheSnapshotResponse, error) {
	c := CallerOf(ctx)
	var sn *serverlessSnapshot
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if sn, err = loadServerlessSnapshot(tx, c, in.ServerlessCacheSnapshotName); err != nil {
			return err
		}
		if sn.Status == snapshotCreating {
			return ecapi.InvalidServerlessCacheSnapshotStateFault.Errorf("Serverless cache snapshot %s is still being created.", sn.Name)
		}
		if err := tx.Delete(tableServerlessSnapshots, sn.key()); err != nil {
			return err
		}
		return tx.Delete(tableTags, sn.arn())
	})
	if err != nil {
		return nil, err
	}
	// The record is gone first, so a crash here leaves only unreferenced files.
	if err := os.RemoveAll(s.serverlessSnapshotDir(sn)); err != nil {
		s.log.Error("removing serverless snapshot files", "snapshot", sn.key(), "error", err)
	}
	sn.Status = snapshotDeleting
	return &ecapi.DeleteServerlessCacheSnapshotResponse{ServerlessCacheSnapshot: serverlessSnapshotShape(sn)}, nil
}

// serverlessSnapshotShape is a snapshot as the API shows it: creation time and
// size once it is available, expiry for automated snapshots.
func serverlessSnapshotShape(sn *serverlessSnapshot) *ecapi.ServerlessCacheSnapshot {
	out := &ecapi.ServerlessCacheSnapshot{
		ServerlessCacheSnapshotName: sn.Name, ARN: sn.arn(), KmsKeyId: sn.KmsKeyID, SnapshotType: sn.Type, Status: sn.Status,
		ServerlessCacheConfiguration: &ecapi.ServerlessCacheConfiguration{ServerlessCacheName: sn.CacheName, Engine: sn.Engine, MajorEngineVersion: sn.MajorVersion},
	}
	if sn.Status == snapshotAvailable {
		var size int64
		for _, ns := range sn.Nodes {
			size += ns.Size
		}
		out.CreateTime, out.BytesUsedForCache = sn.CreatedAt, strconv.FormatInt(size, 10)
		if sn.Type == snapshotTypeAutomated {
			out.ExpiryTime = sn.ExpiresAt
		}
	}
	return out
}
