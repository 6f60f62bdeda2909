package service

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// jobSet tracks the snapshot jobs running in this process. A creating snapshot
// with no job here was interrupted by a crash: the reconciler marks it failed.
// Jobs are counted, not just marked: a request that registers a name and is
// then refused (the name is taken) must not unregister the job that holds it.
type jobSet struct {
	mu      sync.Mutex
	running map[string]int
}

func (j *jobSet) begin(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running == nil {
		j.running = map[string]int{}
	}
	j.running[key]++
}

func (j *jobSet) end(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running[key]--; j.running[key] <= 0 {
		delete(j.running, key)
	}
}

func (j *jobSet) isRunning(key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.running[key] > 0
}

// orphaned reports whether a snapshot record is creating with no job running
// for it. The job is checked first and the record read after: a job records
// its outcome before it ends, so a job that has just ended is not mistaken
// for one a crash interrupted.
func (s *Service) orphaned(table, key, jobKey string) bool {
	if s.snapshotJobs.isRunning(jobKey) {
		return false
	}
	var status struct {
		Status string `json:"status"`
	}
	err := s.store.View(func(tx *store.Tx) error { return tx.Get(table, key, &status) })
	return err == nil && status.Status == snapshotCreating
}

// takeSnapshot captures every node of a snapshot's cluster and records the outcome.
func (s *Service) takeSnapshot(ctx context.Context, sn *snapshot) {
	defer s.snapshotJobs.end(sn.key())
	err := s.captureNodes(ctx, sn)
	if err != nil {
		s.log.Error("snapshot failed", "snapshot", sn.key(), "error", err)
	}
	if err := s.finishSnapshot(sn, err); err != nil {
		s.log.Error("recording snapshot", "snapshot", sn.key(), "error", err)
	}
}

// captureNodes streams each node's data into a staging directory, checksums it,
// and moves the directory into place only when every node is captured.
func (s *Service) captureNodes(ctx context.Context, sn *snapshot) error {
	if sn.sharded() { // a node per node group, each of its own member
		members := map[string]*cluster{}
		err := s.store.View(func(tx *store.Tx) error {
			for _, ns := range sn.Nodes {
				cl, err := loadCluster(tx, sn.caller(), ns.ClusterID)
				if err != nil {
					return err
				}
				members[ns.ClusterID] = cl
			}
			return nil
		})
		if err != nil {
			return err
		}
		return s.capture(ctx, func(ns *nodeSnapshot) (*cluster, *node) {
			cl := members[ns.ClusterID]
			return cl, cl.node("0001")
		}, sn.Nodes, s.snapshotDir(sn), sn.KmsKeyID)
	}
	var cl *cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		cl, err = loadCluster(tx, sn.caller(), sn.ClusterID)
		return err
	})
	if err != nil {
		return err
	}
	return s.capture(ctx, nodesOf(cl), sn.Nodes, s.snapshotDir(sn), sn.KmsKeyID)
}

// nodesOf finds a snapshot's nodes in cluster cl, by node ID.
func nodesOf(cl *cluster) func(ns *nodeSnapshot) (*cluster, *node) {
	return func(ns *nodeSnapshot) (*cluster, *node) { return cl, cl.node(ns.NodeID) }
}

// capture writes each listed node's data (an RDB, or a memcached dump; source
// finds the node and its cluster) to
// <final>/<node>.<ext>, encrypted under kmsKey when one is given, and fills in
// each node's size, checksum and time. It works in <final>.staging and renames
// the directory into place only when every node is done, so a crash leaves
// either the whole snapshot or a staging directory to sweep.
func (s *Service) capture(ctx context.Context, source func(*nodeSnapshot) (*cluster, *node), nodes []nodeSnapshot, final, kmsKey string) error {
	return s.writeStaged(final, func(staging string) error {
		for i := range nodes {
			ns := &nodes[i]
			cl, n := source(ns)
			if n == nil || n.Handle == nil {
				return fmt.Errorf("node %s is not running", ns.NodeID)
			}
			snapper, ok := s.cfg.Drivers[cl.Engine].(engine.Snapshotter)
			if !ok {
				return fmt.Errorf("the %s engine cannot take snapshots", cl.Engine)
			}
			if err := s.awaitReplicaSynced(ctx, cl, *n.Handle); err != nil {
				return fmt.Errorf("node %s: %w", ns.NodeID, err)
			}
			path := filepath.Join(staging, dataFileName(cl.Engine, ns.NodeID))
			size, err := snapper.Snapshot(ctx, *n.Handle, path)
			if err != nil {
				return fmt.Errorf("node %s: %w", ns.NodeID, err)
			}
			if kmsKey != "" {
				if size, err = s.encryptInPlace(kmsKey, path); err != nil {
					return fmt.Errorf("node %s: encrypting: %w", ns.NodeID, err)
				}
			}
			sum, err := fileChecksum(path)
			if err != nil {
				return err
			}
			ns.Size, ns.Checksum, ns.SnapshotTaken = size, sum, s.now()
		}
		return nil
	})
}

// writeStaged fills <final>.staging and renames it to final only when fill
// has succeeded, so a crash leaves either the whole directory or a staging
// one to sweep; the staging directory is always removed.
func (s *Service) writeStaged(final string, fill func(staging string) error) error {
	staging := final + ".staging"
	_ = os.RemoveAll(staging)
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	if err := fill(staging); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	_ = os.RemoveAll(final)
	if err := os.Rename(staging, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

// copyNodeFiles gives a snapshot copy its own files in final (see copyData)
// and records their checksums and sizes in dst.
func (s *Service) copyNodeFiles(final, engineName string, src, dst []nodeSnapshot, srcFile func(nodeSnapshot) string,
	fromKey, toKey string, damaged func(nodeID string) error) error {
	return s.writeStaged(final, func(staging string) error {
		for i, ns := range src {
			to := filepath.Join(staging, dataFileName(engineName, ns.NodeID))
			sum, size, err := s.copyData(srcFile(ns), to, ns.Checksum, fromKey, toKey, damaged(ns.NodeID))
			if err != nil {
				return err
			}
			dst[i].Checksum, dst[i].Size = sum, size
		}
		return nil
	})
}

// awaitReplicaSynced waits until a replica's link to its primary is up: a
// replica that is (re)syncing holds partial data, or none.
func (s *Service) awaitReplicaSynced(ctx context.Context, cl *cluster, h engine.Handle) error {
	rep, ok := s.cfg.Drivers[cl.Engine].(engine.Replicator)
	if cl.Role != roleReplica || !ok {
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rs, err := rep.Replication(ctx, h)
		if err == nil && rs.LinkUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replica has not synced with its primary within a minute (%v)", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dataFileName is the name of a node's data file in a snapshot: redis and
// valkey write RDB files, memcached hoard's dump format.
func dataFileName(engineName, nodeID string) string {
	if engineName == catalog.Memcached {
		return nodeID + ".mcdump"
	}
	return nodeID + ".rdb"
}

// finishSnapshot records a snapshot's outcome and gives its cluster back.
func (s *Service) finishSnapshot(sn *snapshot, captureErr error) error {
	c := sn.caller()
	kind, id, noun := EventsCacheCluster, sn.ClusterID, "cache cluster"
	if id == "" {
		kind, id, noun = EventsReplicationGroup, sn.ReplicationGroupID, "replication group"
	}
	if captureErr != nil {
		_ = os.RemoveAll(s.snapshotDir(sn))
	}
	return s.store.Update(func(tx *store.Tx) error {
		if err := releaseCluster(tx, tableClusters, c, sn.ClusterID); err != nil {
			return err
		}
		if sn.sharded() {
			if err := releaseGroup(tx, c, sn.ReplicationGroupID); err != nil {
				return err
			}
		}
		if captureErr != nil {
			sn.Status, sn.Failure = snapshotFailed, captureErr.Error()
			if err := tx.Put(tableSnapshots, sn.key(), sn); err != nil {
				return err
			}
			return s.recordEvent(tx, c, kind, id, "Snapshot failed for snapshot with ID '%s' of %s with ID '%s': %v", sn.Name, noun, id, captureErr)
		}
		sn.Status = snapshotAvailable
		if err := tx.Put(tableSnapshots, sn.key(), sn); err != nil {
			return err
		}
		return s.recordEvent(tx, c, kind, id, "Snapshot succeeded for snapshot with ID '%s' of %s with ID '%s'", sn.Name, noun, id)
	})
}

// releaseCluster returns a snapshotting cluster (or serverless cache, in table) to available.
func releaseCluster(tx *store.Tx, table string, c Caller, id string) error {
	var cl cluster
	if err := tx.Get(table, c.scope()+id, &cl); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile: nothing to give back
		}
		return err
	}
	if cl.Status != clusterSnapshotting {
		return nil
	}
	cl.Status = statusAvailable
	return tx.Put(table, cl.key(), &cl)
}

// recoverSnapshots fails the snapshots a crash interrupted: creating, with no job
// running in this process. Their partial files go; their clusters come back.
func (s *Service) recoverSnapshots() error {
	return recoverInterrupted(s, tableSnapshots, func(sn *snapshot) (string, string, string, string) {
		return sn.Status, sn.key(), sn.key(), s.snapshotDir(sn)
	}, s.finishSnapshot)
}

// recoverInterrupted fails the records of table that are creating with no job
// running for them (see orphaned), after removing their staging files. ident
// gives a record's status, store key, job key and snapshot directory.
func recoverInterrupted[T any](s *Service, table string, ident func(*T) (status, key, jobKey, dir string), finish func(*T, error) error) error {
	var all []T
	if err := s.store.View(func(tx *store.Tx) (err error) {
		all, err = store.ScanAs[T](tx, table, "")
		return err
	}); err != nil {
		return err
	}
	for i := range all {
		status, key, jobKey, dir := ident(&all[i])
		if status != snapshotCreating || !s.orphaned(table, key, jobKey) {
			continue
		}
		_ = os.RemoveAll(dir + ".staging")
		if err := finish(&all[i], errInterrupted); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot files are checksummed with CRC-32C: it finds corruption as well as a
// cryptographic hash does for this purpose (no adversary writes hoard's data
// dir), and the CPU computes it at memory speed, so checking a 1 GiB snapshot
// before a copy or restore costs a fraction of a second instead of seconds.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newChecksum() hash.Hash32 { return crc32.New(castagnoli) }

func checksumString(h hash.Hash32) string { return fmt.Sprintf("crc32c:%08x", h.Sum32()) }

func fileChecksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := newChecksum()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return checksumString(h), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// takeFinalSnapshot starts a deleting cluster's final snapshot as a job, once,
// and reports whether it is done (available, or failed: the deletion then goes
// on, with an event saying why). The reconciler's pass is not held up while it
// is taken; the nodes stop in a later pass, once it is done.
func (s *Service) takeFinalSnapshot(ctx context.Context, cl *cluster) (bool, error) {
	sn := newSnapshot(cl, cl.FinalSnapshot, sourceManual, s.now())
	if cl.ReplicationGroupID != "" { // a group's final snapshot: the group is still recorded
		_ = s.store.View(func(tx *store.Tx) error {
			if g, err := loadGroupRecord(tx, cl.caller(), cl.ReplicationGroupID); err == nil {
				sn.ReplicationGroupDesc, sn.AutomaticFailover, sn.KmsKeyID = g.Description, g.AutomaticFailover, g.KmsKeyID
				sn.SnapshotRetentionLimit, sn.SnapshotWindow = g.SnapshotRetentionLimit, g.SnapshotWindow
			}
			return nil
		})
	}
	return s.finalSnapshotJob(tableSnapshots, sn.key(), sn.key(), sn, func() {
		s.takeSnapshot(context.WithoutCancel(ctx), sn)
	})
}

// finalSnapshotJob records a final snapshot and starts take (which ends the
// job) unless one is recorded already. A record that is creating is being
// taken (or, after a crash, is about to be marked failed by recovery); one that
// a crash cut short is taken again, since the nodes still run.
func (s *Service) finalSnapshotJob(table, key, jobKey string, record any, take func()) (bool, error) {
	var existing struct {
		Status  string `json:"status"`
		Failure string `json:"failure"`
	}
	done, started := false, false
	s.snapshotJobs.begin(jobKey)
	err := s.store.Update(func(tx *store.Tx) error {
		if tx.Get(table, key, &existing) == nil {
			switch {
			case existing.Status == snapshotCreating:
				return nil
			case existing.Failure != errInterrupted.Error():
				done = true
				return nil
			}
		}
		started = true
		return tx.Put(table, key, record)
	})
	if err != nil || !started {
		s.snapshotJobs.end(jobKey)
		return done, err
	}
	go take()
	return false, nil
}

// errInterrupted is the failure of a snapshot a crash of hoard cut short.
var errInterrupted = errors.New("hoard stopped while the snapshot was being taken")

// SweepOrphanFiles removes snapshot and seed files that no record refers to: what
// a crash left between writing files and recording them (an interrupted copy's
// staging directory, a copy renamed into place but never recorded, a restore's
// staged seeds). Call it at start-up, before serving requests, when no job runs.
func (s *Service) SweepOrphanFiles() error {
	var snapshots []snapshot
	var serverless []serverlessSnapshot
	var clusters []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		if snapshots, err = store.ScanAs[snapshot](tx, tableSnapshots, ""); err != nil {
			return err
		}
		if serverless, err = store.ScanAs[serverlessSnapshot](tx, tableServerlessSnapshots, ""); err != nil {
			return err
		}
		clusters, err = allClusters(tx)
		return err
	})
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for i := range snapshots {
		keep[s.snapshotDir(&snapshots[i])] = true
	}
	for i := range serverless {
		keep[s.serverlessSnapshotDir(&serverless[i])] = true
	}
	for _, cl := range clusters {
		for _, n := range cl.Nodes {
			if n.Seed != "" {
				keep[filepath.Dir(n.Seed)] = true
			}
		}
	}
	_ = os.RemoveAll(filepath.Join(s.cfg.DataDir, "tmp")) // scratch files (decrypted exports)
	for _, area := range []string{"snapshots", "serverless-snapshots", "seeds"} {
		// <data-dir>/<area>/<account>/<region>/<entry>
		entries, _ := filepath.Glob(filepath.Join(s.cfg.DataDir, area, "*", "*", "*"))
		for _, path := range entries {
			if !keep[path] {
				s.log.Warn("removing files no record refers to (left by a crash)", "path", path)
				if err := os.RemoveAll(path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
