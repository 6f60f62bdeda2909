package service

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/store"
)

// Automatic backups: a redis cluster with SnapshotRetentionLimit > 0 gets an
// automated snapshot once a day inside its SnapshotWindow, and automated snapshots
// older than the retention limit (or of clusters that are gone) are deleted.

// autoBackups runs once per reconciler pass.
func (s *Service) autoBackups(ctx context.Context) error {
	now := s.now()
	var clusters []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		clusters, err = store.ScanAs[cluster](tx, tableClusters, "")
		return err
	})
	if err != nil {
		return err
	}
	retention := map[string]int32{} // cluster key -> retention limit
	for i := range clusters {
		cl := &clusters[i]
		retention[cl.key()] = cl.SnapshotRetentionLimit
		if day, due := backupDue(cl, now); due {
			if err := s.startAutomatedSnapshot(ctx, cl.caller(), cl.ID, day); err != nil {
				s.log.Error("automated snapshot", "cluster", cl.key(), "error", err)
			}
		}
	}
	if err := s.groupBackups(ctx, now, retention); err != nil {
		return err
	}
	return s.pruneAutomated(now, retention)
}

// groupBackups takes the daily automated snapshots of replication groups, from
// each group's snapshotting member, and adds the groups' retention limits
// (keyed by group) to retention.
func (s *Service) groupBackups(ctx context.Context, now time.Time, retention map[string]int32) error {
	var groups []replicationGroup
	err := s.store.View(func(tx *store.Tx) (err error) {
		groups, err = store.ScanAs[replicationGroup](tx, tableGroups, "")
		return err
	})
	if err != nil {
		return err
	}
	for i := range groups {
		g := &groups[i]
		retention["group:"+g.key()] = g.SnapshotRetentionLimit
		day, in := snapshotWindowDay(g.SnapshotWindow, now)
		if g.SnapshotRetentionLimit <= 0 || g.Status != statusAvailable || !in || g.LastAutoSnapshot == day {
			continue
		}
		if err := s.startGroupSnapshot(ctx, g, day); err != nil {
			s.log.Error("automated snapshot", "group", g.key(), "error", err)
		}
	}
	return nil
}

func (s *Service) startGroupSnapshot(ctx context.Context, g *replicationGroup, day string) error {
	c, now := g.caller(), s.now()
	name := fmt.Sprintf("automatic.%s-%s", g.ID, now.Format("2006-01-02-15-04"))
	s.snapshotJobs.begin(c.scope() + name)
	var sn *snapshot
	err := s.store.Update(func(tx *store.Tx) error {
		fresh, members, err := loadAvailableGroup(tx, c, g.ID)
		if err != nil || fresh.LastAutoSnapshot == day || tx.Has(tableSnapshots, c.scope()+name) {
			return errNotDue
		}
		if fresh.ClusterMode {
			fresh.LastAutoSnapshot = day
			if err := tx.Put(tableGroups, fresh.key(), fresh); err != nil {
				return err
			}
			if sn, err = s.newShardedSnapshot(fresh, members, name, sourceAutomated); err != nil {
				return err
			}
			return beginShardedSnapshot(tx, fresh, sn)
		}
		cl, err := loadCluster(tx, c, snapshottingMember(fresh, members))
		if err != nil || cl.Status != statusAvailable {
			return errNotDue // busy: the next pass tries again
		}
		fresh.LastAutoSnapshot = day
		if err := tx.Put(tableGroups, fresh.key(), fresh); err != nil {
			return err
		}
		sn = newSnapshot(cl, name, sourceAutomated, now)
		sn.ReplicationGroupDesc, sn.AutomaticFailover, sn.KmsKeyID = fresh.Description, fresh.AutomaticFailover, fresh.KmsKeyID
		sn.SnapshotRetentionLimit, sn.SnapshotWindow = fresh.SnapshotRetentionLimit, fresh.SnapshotWindow
		return s.beginSnapshot(tx, cl, sn)
	})
	if err != nil {
		s.snapshotJobs.end(c.scope() + name)
		if err == errNotDue {
			return nil
		}
		return err
	}
	go s.takeSnapshot(context.WithoutCancel(ctx), sn)
	return nil
}

// backupDue reports whether a cluster's daily backup is due now, and the day (of
// the window's start) it counts for.
func backupDue(cl *cluster, now time.Time) (string, bool) {
	if cl.Engine == catalog.Memcached || cl.SnapshotRetentionLimit <= 0 || cl.Status != statusAvailable {
		return "", false
	}
	day, in := snapshotWindowDay(cl.SnapshotWindow, now)
	return day, in && cl.LastAutoSnapshot != day
}

// snapshotWindowDay reports whether now (UTC) is inside an hh:mm-hh:mm window, and
// the date the current window opened on (a window may wrap past midnight).
func snapshotWindowDay(window string, now time.Time) (string, bool) {
	from, to, ok := strings.Cut(window, "-")
	if !ok {
		return "", false
	}
	minute := func(s string) (int, bool) {
		var h, m int
		if _, err := fmt.Sscanf(s, "%d:%d", &h, &m); err != nil {
			return 0, false
		}
		return h*60 + m, true
	}
	start, ok1 := minute(from)
	end, ok2 := minute(to)
	if !ok1 || !ok2 {
		return "", false
	}
	now = now.UTC()
	cur := now.Hour()*60 + now.Minute()
	switch {
	case start <= end && cur >= start && cur < end:
		return now.Format("2006-01-02"), true
	case start > end && cur >= start:
		return now.Format("2006-01-02"), true
	case start > end && cur < end:
		return now.AddDate(0, 0, -1).Format("2006-01-02"), true
	}
	return "", false
}

// startAutomatedSnapshot begins the day's automated snapshot of a cluster, named
// as ElastiCache names them: automatic.<cluster>-<yyyy-mm-dd-hh-mm>.
func (s *Service) startAutomatedSnapshot(ctx context.Context, c Caller, id, day string) error {
	now := s.now()
	name := fmt.Sprintf("automatic.%s-%s", id, now.Format("2006-01-02-15-04"))
	key := c.scope() + name
	s.snapshotJobs.begin(key)
	var sn *snapshot
	err := s.store.Update(func(tx *store.Tx) error {
		cl, err := loadCluster(tx, c, id)
		if err != nil {
			return err
		}
		if d, due := backupDue(cl, now); !due || d != day || tx.Has(tableSnapshots, key) {
			return errNotDue
		}
		cl.LastAutoSnapshot = day
		sn = newSnapshot(cl, name, sourceAutomated, now)
		return s.beginSnapshot(tx, cl, sn)
	})
	if err != nil {
		s.snapshotJobs.end(key)
		if err == errNotDue {
			return nil
		}
		return err
	}
	go s.takeSnapshot(context.WithoutCancel(ctx), sn)
	return nil
}

var errNotDue = fmt.Errorf("backup not due")

// pruneAutomated deletes automated snapshots older than their cluster's retention
// limit, and those of clusters that no longer exist.
func (s *Service) pruneAutomated(now time.Time, retention map[string]int32) error {
	var expired []snapshot
	err := s.store.View(func(tx *store.Tx) error {
		all, err := store.ScanAs[snapshot](tx, tableSnapshots, "")
		for _, sn := range all {
			if sn.Source != sourceAutomated || sn.Status == snapshotCreating {
				continue
			}
			owner := sn.Account + "/" + sn.Region + "/" + sn.ClusterID
			if sn.ReplicationGroupID != "" {
				owner = "group:" + sn.Account + "/" + sn.Region + "/" + sn.ReplicationGroupID
			}
			limit, exists := retention[owner]
			if !exists || now.Sub(sn.CreatedAt) > time.Duration(limit)*24*time.Hour {
				expired = append(expired, sn)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for i := range expired {
		sn := &expired[i]
		if err := s.pruneSnapshot(tableSnapshots, sn.key(), sn.caller().arn("snapshot", sn.Name), s.snapshotDir(sn),
			sn.caller(), EventsCacheCluster, sn.ClusterID, sn.Name); err != nil {
			return err
		}
	}
	return nil
}

// serverlessBackups takes the daily automated snapshot of each serverless cache
// with a SnapshotRetentionLimit, in the hour from its DailySnapshotTime, and
// deletes automated snapshots past their expiry (or of caches that are gone).
func (s *Service) serverlessBackups(ctx context.Context) error {
	now := s.now()
	var caches []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		caches, err = store.ScanAs[cluster](tx, tableServerless, "")
		return err
	})
	if err != nil {
		return err
	}
	exists := map[string]bool{}
	for i := range caches {
		cl := &caches[i]
		exists[cl.key()] = true
		if day, due := serverlessBackupDue(cl, now); due {
			if err := s.startAutomatedServerlessSnapshot(ctx, cl.caller(), cl.ID, day); err != nil {
				s.log.Error("automated serverless snapshot", "cache", cl.key(), "error", err)
			}
		}
	}
	return s.pruneAutomatedServerless(now, exists)
}

// serverlessBackupDue reports whether a cache's daily snapshot is due now: in
// the hour that begins at DailySnapshotTime, once a day.
func serverlessBackupDue(cl *cluster, now time.Time) (string, bool) {
	daily := cl.Serverless.DailySnapshotTime
	if cl.SnapshotRetentionLimit <= 0 || cl.Status != statusAvailable || daily == "" {
		return "", false
	}
	var h, m int
	if _, err := fmt.Sscanf(daily, "%d:%d", &h, &m); err != nil {
		return "", false
	}
	day, in := snapshotWindowDay(fmt.Sprintf("%02d:%02d-%02d:%02d", h, m, (h+1)%24, m), now)
	return day, in && cl.LastAutoSnapshot != day
}

func (s *Service) startAutomatedServerlessSnapshot(ctx context.Context, c Caller, name, day string) error {
	now := s.now()
	snapName := fmt.Sprintf("automatic.%s-%s", name, now.Format("2006-01-02-15-04"))
	jobKey := "serverless:" + c.scope() + snapName
	s.snapshotJobs.begin(jobKey)
	var sn *serverlessSnapshot
	err := s.store.Update(func(tx *store.Tx) error {
		cl, err := loadServerless(tx, c, name)
		if err != nil {
			return err
		}
		if d, due := serverlessBackupDue(cl, now); !due || d != day || tx.Has(tableServerlessSnapshots, c.scope()+snapName) {
			return errNotDue
		}
		cl.LastAutoSnapshot = day
		sn = newServerlessSnapshot(cl, snapName, snapshotTypeAutomated, cl.Serverless.KmsKeyID, now)
		return s.beginServerlessSnapshot(tx, cl, sn)
	})
	if err != nil {
		s.snapshotJobs.end(jobKey)
		if err == errNotDue {
			return nil
		}
		return err
	}
	go s.takeServerlessSnapshot(context.WithoutCancel(ctx), sn)
	return nil
}

func (s *Service) pruneAutomatedServerless(now time.Time, exists map[string]bool) error {
	var expired []serverlessSnapshot
	err := s.store.View(func(tx *store.Tx) error {
		all, err := store.ScanAs[serverlessSnapshot](tx, tableServerlessSnapshots, "")
		for _, sn := range all {
			if sn.Type == snapshotTypeAutomated && sn.Status != snapshotCreating &&
				(!exists[sn.Account+"/"+sn.Region+"/"+sn.CacheName] || now.After(sn.ExpiresAt)) {
				expired = append(expired, sn)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for i := range expired {
		sn := &expired[i]
		if err := s.pruneSnapshot(tableServerlessSnapshots, sn.key(), sn.arn(), s.serverlessSnapshotDir(sn),
			sn.caller(), EventsServerlessSnapshot, sn.Name, sn.Name); err != nil {
			return err
		}
	}
	return nil
}

// pruneSnapshot deletes an expired automated snapshot: its record and tags
// (with an event on the source), then its files, once nothing refers to them.
func (s *Service) pruneSnapshot(table, key, arn, dir string, c Caller, sourceType, sourceID, name string) error {
	err := s.store.Update(func(tx *store.Tx) error {
		if err := tx.Delete(table, key); err != nil {
			return err
		}
		if err := tx.Delete(tableTags, arn); err != nil {
			return err
		}
		return s.recordEvent(tx, c, sourceType, sourceID, "Deleted automated snapshot %s: past the retention limit", name)
	})
	if err == nil {
		_ = os.RemoveAll(dir)
	}
	return err
}
