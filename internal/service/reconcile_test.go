package service

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// dyingDriver's node answers alive for its first aliveAnswers probes and is
// dead from then on, as a node killed while the reconciler looks at it; it
// counts the starts asked of it and runs no process.
type dyingDriver struct {
	mu           sync.Mutex
	aliveAnswers int
	starts       int
}

func (d *dyingDriver) Start(_ context.Context, spec engine.Spec) (engine.Handle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.starts++
	return engine.Handle{PID: 1, Host: spec.Host, Port: spec.Port, Dir: spec.Dir}, nil
}
func (d *dyingDriver) Alive(context.Context, engine.Handle) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aliveAnswers--
	return d.aliveAnswers >= 0
}
func (d *dyingDriver) Stop(context.Context, engine.Handle) error { return nil }
func (d *dyingDriver) Apply(context.Context, engine.Handle, map[string]string) ([]string, error) {
	return nil, nil
}
func (d *dyingDriver) Get(context.Context, engine.Handle, string) (string, error) { return "", nil }

// TestHeldPrimaryIsNeverRestarted: a primary held for failover is not
// restarted by the reconciler whether it is dead when looked at or dies while
// being looked at (restarted, it would come back empty and its replicas would
// copy that); an unheld node that died is restarted.
func TestHeldPrimaryIsNeverRestarted(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hoard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct {
		name         string
		hold         bool
		aliveAnswers int
		wantStarts   int
	}{
		{"held, dead", true, 0, 0},
		{"held, dies while looked at", true, 1, 0},
		{"not held, dead", false, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := &dyingDriver{aliveAnswers: tc.aliveAnswers}
			svc := New(st, Config{Drivers: map[string]engine.Driver{"redis": drv}, DataDir: t.TempDir()})
			n := &node{ID: "0001", Status: statusAvailable, Port: 47300, Handle: &engine.Handle{PID: 1, Port: 47300}}
			cl := &cluster{ID: "g-001", Engine: "redis", Family: "redis7", Role: rolePrimary, HoldForFailover: tc.hold, Nodes: []*node{n}}
			r := svc.reconcileNode(context.Background(), drv, cl, n, "/bin/true", map[string]string{})
			if drv.starts != tc.wantStarts {
				t.Fatalf("starts: %d, want %d (result %+v)", drv.starts, tc.wantStarts, r)
			}
			if tc.hold && tc.aliveAnswers == 0 && r.err == nil {
				t.Fatal("a dead held primary is not reported as waiting for failover")
			}
		})
	}
}

// TestArmHoldsAsGroupTurnsAvailable: the transaction that makes a group
// available holds every primary with a replica (a node group of one has
// nobody to fail over to, a member being deleted does not count).
func TestArmHoldsAsGroupTurnsAvailable(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hoard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &replicationGroup{Account: "123456789012", Region: "us-east-1", ID: "g", AutomaticFailover: true, ClusterMode: true}
	member := func(id, nodeGroup, role, status string) cluster {
		return cluster{Account: g.Account, Region: g.Region, ID: id, ReplicationGroupID: g.ID, NodeGroupID: nodeGroup, Role: role, Status: status}
	}
	members := []cluster{
		member("g-0001-001", "0001", rolePrimary, statusAvailable),
		member("g-0001-002", "0001", roleReplica, statusAvailable),
		member("g-0002-001", "0002", rolePrimary, statusAvailable),
		member("g-0002-002", "0002", roleReplica, statusDeleting),
	}
	err = st.Update(func(tx *store.Tx) error {
		for i := range members {
			if err := tx.Put(tableClusters, members[i].key(), &members[i]); err != nil {
				return err
			}
		}
		return armHolds(tx, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"g-0001-001": true, "g-0001-002": false, "g-0002-001": false, "g-0002-002": false}
	err = st.View(func(tx *store.Tx) error {
		for id, hold := range want {
			cl, err := loadCluster(tx, g.caller(), id)
			if err != nil {
				return err
			}
			if cl.HoldForFailover != hold {
				t.Errorf("%s: hold %v, want %v", id, cl.HoldForFailover, hold)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
