package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// The reconciler makes the running engine processes match the stored clusters. It
// is level-based: each pass looks at every cluster as it is now (not at the call
// that changed it), so after a restart it simply runs again and re-adopts, restarts
// or stops nodes as their records say. API calls record desired state and poke it.

// Run reconciles until ctx is done: at once when poked, and every interval anyway
// (to notice nodes that died).
func (s *Service) Run(ctx context.Context) {
	ticker := time.NewTicker(s.cfg.ReconcileInterval)
	defer ticker.Stop()
	lastPrune := time.Time{}
	for {
		if err := s.recoverSnapshots(); err != nil {
			s.log.Error("recovering interrupted snapshots", "error", err)
		}
		if err := s.recoverServerlessSnapshots(); err != nil {
			s.log.Error("recovering interrupted serverless snapshots", "error", err)
		}
		s.reconcileGroups(ctx)
		s.reconcileAll(ctx)
		if err := s.autoBackups(ctx); err != nil {
			s.log.Error("automatic backups", "error", err)
		}
		if err := s.serverlessBackups(ctx); err != nil {
			s.log.Error("automatic serverless snapshots", "error", err)
		}
		if time.Since(lastPrune) > time.Hour {
			if err := s.pruneEvents(); err != nil {
				s.log.Error("pruning events", "error", err)
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			s.fronts.closeAll()
			return
		case <-s.wake:
		case <-ticker.C:
		}
	}
}

// poke asks the reconciler for a pass soon.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reconcileAll runs one pass over every cluster of every account and region, a few
// clusters at a time.
func (s *Service) reconcileAll(ctx context.Context) {
	// A pass, once begun, finishes even when hoard is asked to stop: a node being
	// started is then recorded, not orphaned or mistaken for a failure.
	ctx = context.WithoutCancel(ctx)
	var clusters []cluster
	err := s.store.View(func(tx *store.Tx) (err error) {
		clusters, err = allClusters(tx)
		return err
	})
	if err != nil {
		s.log.Error("reconcile: listing clusters", "error", err)
		return
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range clusters {
		cl := &clusters[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.reconcileCluster(ctx, cl); err != nil {
				s.log.Error("reconcile", "cluster", cl.key(), "error", err)
			}
		}()
	}
	wg.Wait()
}

// nodeResult is what the reconciler did to one node in a pass.
type nodeResult struct {
	handle        *engine.Handle
	binary        string
	applied       map[string]string
	pendingReboot bool
	restarted     bool   // Restart was honoured
	seeded        string // the seed file the node loaded, now done with
	removed       bool
	portTaken     bool // a first start found the node's port taken by another program
	err           error
	events        []string
}

func (s *Service) reconcileCluster(ctx context.Context, cl *cluster) error {
	drv, ok := s.cfg.Drivers[cl.Engine]
	if !ok {
		return fmt.Errorf("no driver for engine %s", cl.Engine)
	}
	if cl.Status == statusDeleting {
		return s.finishDelete(ctx, drv, cl)
	}
	if cl.Status == statusFailed {
		return nil
	}
	if cl.Pending != nil && cl.Status == statusAvailable && inMaintenanceWindow(cl.MaintenanceWindow, s.now()) {
		return s.updateCluster(cl, func(tx *store.Tx, fresh *cluster) error {
			if fresh.Pending == nil || fresh.Status != statusAvailable {
				return nil
			}
			kind, id := fresh.eventSource()
			if err := s.recordEvent(tx, fresh.caller(), kind, id, "Applying pending modifications in the maintenance window"); err != nil {
				return err
			}
			return s.applyModification(tx, fresh, fresh.Pending)
		})
	}
	desired, err := s.clusterParams(cl)
	if err != nil {
		return err
	}
	binary, err := s.binaryFor(cl.Engine, cl.EngineVersion)
	if err != nil {
		return err
	}
	results := make([]nodeResult, len(cl.Nodes))
	var wg sync.WaitGroup
	for i, n := range cl.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.reconcileNode(ctx, drv, cl, n, binary, desired)
		}()
	}
	wg.Wait()
	if changesNothing(cl, results) {
		return nil
	}
	err = s.updateCluster(cl, func(tx *store.Tx, fresh *cluster) error {
		kind, id := fresh.eventSource()
		if err := s.movePorts(tx, cl, fresh, results); err != nil {
			return err
		}
		for _, e := range applyResults(cl, fresh, results) {
			if err := s.recordEvent(tx, fresh.caller(), kind, id, "%s", e); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, r := range results {
			if r.seeded != "" { // loaded and no longer referenced: the staged file can go
				_ = os.Remove(r.seeded)
				_ = os.Remove(filepath.Dir(r.seeded)) // only succeeds once the staging dir is empty
			}
		}
	}
	return err
}

// reconcileNode brings one node to what its record wants.
func (s *Service) reconcileNode(ctx context.Context, drv engine.Driver, cl *cluster, n *node, binary string, desired map[string]string) nodeResult {
	family, _ := catalog.Lookup(cl.Family)
	start := func(why string) nodeResult {
		// A node hoard started but died before recording (its handle is only in the
		// node's directory) would hold the port: stop it first.
		if orphan, ok := engine.HandleInDir(s.nodeDir(cl, n)); ok && (n.Handle == nil || *n.Handle != orphan) {
			_ = drv.Stop(ctx, orphan)
		}
		// A cluster-mode replica comes back as a new cluster node, never
		// with the slots it may have owned as a primary (see NewClusterNode);
		// its group joins it to its node group again.
		fresh := cl.NodeGroupID != "" && cl.Role == roleReplica
		h, err := drv.Start(ctx, engine.Spec{Engine: cl.Engine, Binary: binary, Dir: s.nodeDir(cl, n), Host: s.nodeHost(n),
			Port: n.Port, Params: desired, Seed: n.Seed, ReplicaOf: cl.ReplicaOf, NewClusterNode: fresh})
		if err != nil && portTaken(err) && n.Handle == nil && cl.ReplicationGroupID == "" {
			// Another program (another hoard, say) bound the port between its
			// allocation and this first start: the node moves to a free one.
			return nodeResult{portTaken: true}
		}
		if err != nil {
			return nodeResult{err: err}
		}
		return nodeResult{handle: &h, binary: binary, applied: desired, events: []string{why}, seeded: n.Seed}
	}
	switch {
	case n.Remove:
		if n.Handle != nil {
			if err := drv.Stop(ctx, *n.Handle); err != nil {
				return nodeResult{err: err}
			}
		}
		_ = os.RemoveAll(s.nodeDir(cl, n))
		return nodeResult{removed: true, events: []string{"Removed cache node " + n.ID}}
	case n.Handle == nil:
		return start(fmt.Sprintf("Added cache node %s in availability zone %s", n.ID, cl.AZ))
	case n.Restart:
		if err := drv.Stop(ctx, *n.Handle); err != nil {
			return nodeResult{err: err}
		}
		r := start("Cache node " + n.ID + " restarted")
		r.restarted = r.err == nil
		return r
	case !drv.Alive(ctx, *n.Handle):
		// Asked once: a node that died between two asks would be restarted
		// (empty) in spite of the hold, and its replicas would copy that.
		if cl.HoldForFailover {
			return nodeResult{handle: n.Handle, binary: n.Binary, applied: n.Applied,
				err: fmt.Errorf("primary node %s stopped; waiting for the replication group to fail over", n.ID)}
		}
		_ = drv.Stop(ctx, *n.Handle) // make sure the old process is gone before reusing its port
		r := start("Recovered cache node " + n.ID + ": its process had stopped, and it was restarted")
		if r.err != nil {
			r.err = fmt.Errorf("node %s stopped and could not be restarted: %w", n.ID, r.err)
		}
		return r
	}
	// A live node: apply what can change at runtime; the rest waits for a reboot.
	immediate, reboot := paramDiff(family, n.Applied, desired)
	applied := cloneMap(n.Applied)
	if len(immediate) > 0 {
		needRestart, err := drv.Apply(ctx, *n.Handle, immediate)
		if err != nil {
			return nodeResult{handle: n.Handle, binary: n.Binary, applied: n.Applied, err: err}
		}
		for _, name := range needRestart {
			reboot[name] = immediate[name]
			delete(immediate, name)
		}
		for k, v := range immediate {
			applied[k] = v
		}
	}
	r := nodeResult{handle: n.Handle, binary: n.Binary, applied: applied, pendingReboot: len(reboot) > 0}
	if len(immediate) > 0 {
		r.events = append(r.events, fmt.Sprintf("Applied parameters to cache node %s: %s", n.ID, strings.Join(sortedNames(immediate), ", ")))
	}
	return r
}

// applyResults folds a pass's outcome into the cluster as it is now, which may
// have changed since the pass read it (a delete, a reboot, a group change), and
// returns the events to record. It changes nothing else, so it can also be tried
// on a copy to learn whether a pass changed anything at all.
func applyResults(seen, fresh *cluster, results []nodeResult) (events []string) {
	var kept []*node
	var failures []string
	for i, r := range results {
		id := seen.Nodes[i].ID
		n := fresh.node(id)
		if n == nil {
			continue
		}
		events = append(events, r.events...)
		if r.removed {
			n.Remove, n.Handle = true, nil
			continue
		}
		if r.err != nil {
			failures = append(failures, fmt.Sprintf("node %s: %v", id, r.err))
			if n.LastError != r.err.Error() {
				n.LastError = r.err.Error()
				events = append(events, fmt.Sprintf("Cache node %s failed: %v", id, r.err))
			}
		} else {
			n.LastError = ""
		}
		if r.handle != nil {
			n.Handle, n.Binary, n.Applied = r.handle, r.binary, r.applied
			n.PendingReboot = r.pendingReboot
			if n.Status != statusDeleting && r.err == nil {
				n.Status = statusAvailable
			}
		}
		if r.restarted {
			n.Restart = false
		}
		if r.seeded != "" && n.Seed == r.seeded {
			n.Seed = ""
		}
	}
	for _, n := range fresh.Nodes {
		if !(n.Remove && n.Handle == nil) {
			kept = append(kept, n)
		}
	}
	fresh.Nodes = kept
	if fresh.Status == statusDeleting {
		return events
	}
	if len(failures) > 0 && fresh.Status == statusCreating {
		fresh.Status, fresh.FailureReason = statusFailed, strings.Join(failures, "; ")
		return append(events, "Failed to create "+strings.ToLower(fresh.noun())+": "+fresh.FailureReason)
	}
	settled := len(failures) == 0
	anyPending := false
	for _, n := range fresh.Nodes {
		settled = settled && n.Handle != nil && !n.Restart && !n.Remove
		anyPending = anyPending || n.PendingReboot
	}
	if fresh.ParamGen == seen.ParamGen && settled {
		fresh.ParamStatus = applyInSync
		if anyPending {
			fresh.ParamStatus = applyPendingReboot
		}
	}
	if !settled {
		return events
	}
	switch fresh.Status {
	case statusCreating:
		fresh.Status = statusAvailable
		events = append(events, fresh.noun()+" created")
	case statusRebooting:
		fresh.Status = statusAvailable
		events = append(events, fresh.noun()+" rebooted")
	case statusModifying:
		if fresh.ParamStatus != applyApplying {
			fresh.Status = statusAvailable
			events = append(events, fresh.noun()+" modified")
		}
	}
	return events
}

// changesNothing reports whether a pass's results would leave the cluster as it
// was and record no event: then the pass writes nothing (most passes, when all
// nodes are healthy, so a quiet hoard does not fsync once per cluster per second).
func changesNothing(cl *cluster, results []nodeResult) bool {
	for _, r := range results {
		if r.portTaken {
			return false
		}
	}
	before, err := json.Marshal(cl)
	if err != nil {
		return false
	}
	var probe cluster
	if json.Unmarshal(before, &probe) != nil {
		return false
	}
	if len(applyResults(cl, &probe, results)) > 0 {
		return false
	}
	after, err := json.Marshal(&probe)
	return err == nil && bytes.Equal(before, after)
}

// movePorts gives each node whose first start found its port taken a new
// free port, with an event; the next pass starts it there.
func (s *Service) movePorts(tx *store.Tx, seen, fresh *cluster, results []nodeResult) error {
	for i, r := range results {
		n := fresh.node(seen.Nodes[i].ID)
		if !r.portTaken || n == nil || n.Handle != nil {
			continue
		}
		port, err := s.allocatePort(tx)
		if err != nil {
			return err
		}
		kind, id := fresh.eventSource()
		if err := s.recordEvent(tx, fresh.caller(), kind, id, "Port %d of cache node %s was taken by another program; the node moves to port %d", n.Port, n.ID, port); err != nil {
			return err
		}
		n.Port = port
	}
	return nil
}

// portTaken reports whether a start failed because the port is bound
// (redis and memcached both say so in these words).
func portTaken(err error) bool { return strings.Contains(err.Error(), "Address already in use") }

// finishDelete stops every node of a deleting cluster and removes it, after the
// final snapshot when one was asked for.
func (s *Service) finishDelete(ctx context.Context, drv engine.Driver, cl *cluster) error {
	if cl.FinalSnapshot != "" {
		final := s.takeFinalSnapshot
		if cl.Serverless != nil {
			final = s.takeFinalServerlessSnapshot
		}
		if done, err := final(ctx, cl); err != nil || !done {
			return err // the nodes stop once the final snapshot is done
		}
	}
	for _, n := range cl.Nodes {
		if n.Handle != nil {
			if err := drv.Stop(ctx, *n.Handle); err != nil {
				return err
			}
		}
		if n.Seed != "" { // restored data the node never loaded
			_ = os.Remove(n.Seed)
			_ = os.Remove(filepath.Dir(n.Seed))
		}
	}
	_ = os.RemoveAll(s.nodesRoot(cl))
	return s.store.Update(func(tx *store.Tx) error {
		c := cl.caller()
		if err := tx.Delete(cl.table(), cl.key()); err != nil {
			return err
		}
		if err := tx.Delete(tableTags, cl.arn()); err != nil {
			return err
		}
		kind, id := cl.eventSource()
		return s.recordEvent(tx, c, kind, id, "%s deleted", cl.noun())
	})
}

// updateCluster re-reads a cluster in a write transaction and lets fn change it.
func (s *Service) updateCluster(cl *cluster, fn func(*store.Tx, *cluster) error) error {
	return s.store.Update(func(tx *store.Tx) error {
		var fresh cluster
		if err := tx.Get(cl.table(), cl.key(), &fresh); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil // deleted meanwhile
			}
			return err
		}
		if err := fn(tx, &fresh); err != nil {
			return err
		}
		return tx.Put(fresh.table(), fresh.key(), &fresh)
	})
}

// clusterParams is what every node of the cluster should run with now.
func (s *Service) clusterParams(cl *cluster) (map[string]string, error) {
	family, ok := catalog.Lookup(cl.Family)
	if !ok {
		return nil, fmt.Errorf("cluster %s has unknown family %s", cl.ID, cl.Family)
	}
	var g *paramGroup
	err := s.store.View(func(tx *store.Tx) (err error) {
		g, err = loadGroup(tx, cl.caller(), cl.ParamGroup)
		return err
	})
	if err != nil {
		return nil, err
	}
	params := desiredParams(family, cl.NodeType, g.Values)
	if cl.Serverless != nil {
		cl.Serverless.limitParams(cl.Engine, params)
	}
	return params, nil
}

func (s *Service) binaryFor(engineName, version string) (string, error) {
	for _, ev := range s.cfg.Engines {
		if ev.Engine == engineName && ev.Version == version {
			return ev.Binary, nil
		}
	}
	return "", fmt.Errorf("%s %s is no longer installed", engineName, version)
}

func (s *Service) nodeDir(cl *cluster, n *node) string {
	return filepath.Join(s.nodesRoot(cl), n.ID)
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// inMaintenanceWindow reports whether now (UTC) falls in a ddd:hh:mm-ddd:hh:mm window.
func inMaintenanceWindow(window string, now time.Time) bool {
	from, to, ok := strings.Cut(window, "-")
	if !ok {
		return false
	}
	minuteOfWeek := func(s string) (int, bool) {
		var day string
		var h, m int
		if _, err := fmt.Sscanf(strings.Replace(s, ":", " ", 2), "%s %d %d", &day, &h, &m); err != nil {
			return 0, false
		}
		wd, ok := weekdays[day]
		return int(wd)*1440 + h*60 + m, ok
	}
	start, ok1 := minuteOfWeek(from)
	end, ok2 := minuteOfWeek(to)
	if !ok1 || !ok2 {
		return false
	}
	now = now.UTC()
	cur := int(now.Weekday())*1440 + now.Hour()*60 + now.Minute()
	if start <= end {
		return cur >= start && cur < end
	}
	return cur >= start || cur < end // the window wraps past Saturday midnight
}
