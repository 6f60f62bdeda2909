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
