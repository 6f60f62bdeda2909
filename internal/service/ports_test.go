package service

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// portStealingDriver refuses to start nodes on the ports in taken, as an engine
// does when another program has bound the port; it runs no process.
type portStealingDriver struct {
	mu      sync.Mutex
	taken   map[int]bool
	started []int
}

func (d *portStealingDriver) Start(_ context.Context, spec engine.Spec) (engine.Handle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.taken[spec.Port] {
		return engine.Handle{}, errors.New("redis-server: node exited during start-up: bind: Address already in use")
	}
	d.started = append(d.started, spec.Port)
	return engine.Handle{PID: 1, Host: spec.Host, Port: spec.Port, Dir: spec.Dir}, nil
}
func (d *portStealingDriver) Alive(context.Context, engine.Handle) bool { return true }
func (d *portStealingDriver) Stop(context.Context, engine.Handle) error { return nil }
func (d *portStealingDriver) Apply(context.Context, engine.Handle, map[string]string) ([]string, error) {
	return nil, nil
}
func (d *portStealingDriver) Get(context.Context, engine.Handle, string) (string, error) {
	return "", nil
}

// TestNodeMovesOffAPortTakenBeforeItsFirstStart: a port free when allocated
// but bound by another program before the node's first start is replaced, and
// the cluster becomes available on the new one instead of failing.
func TestNodeMovesOffAPortTakenBeforeItsFirstStart(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hoard.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	drv := &portStealingDriver{taken: map[int]bool{}}
	svc := New(st, Config{Engines: []EngineVersion{{Engine: "redis", Version: "7.0.15", Family: "redis7", Binary: "/bin/true"}},
		Drivers: map[string]engine.Driver{"redis": drv}, DataDir: t.TempDir(), NodePorts: PortRange{First: 47100, Last: 47199}})
	ctx := WithCaller(context.Background(), Caller{Account: "123456789012", Region: "us-east-1"})
	out, err := svc.CreateCacheCluster(ctx, &ecapi.CreateCacheClusterMessage{CacheClusterId: "c", Engine: "redis", CacheNodeType: "cache.t3.micro"})
	if err != nil {
		t.Fatal(err)
	}
	first := describeNodePort(t, svc, ctx)
	drv.taken[first] = true // another program binds it now
	svc.reconcileAll(ctx)
	moved := describeNodePort(t, svc, ctx)
	if moved == first {
		t.Fatalf("the node is still on the taken port %d", first)
	}
	svc.reconcileAll(ctx)
	cl, err := svc.DescribeCacheClusters(ctx, &ecapi.DescribeCacheClustersMessage{CacheClusterId: out.CacheCluster.CacheClusterId})
	if err != nil || cl.CacheClusters[0].CacheClusterStatus != statusAvailable {
		t.Fatalf("cluster after the move: %+v %v", cl, err)
	}
	if len(drv.started) != 1 || drv.started[0] != moved {
		t.Fatalf("started on %v, want [%d]", drv.started, moved)
	}
}

func describeNodePort(t *testing.T, svc *Service, ctx context.Context) int {
	t.Helper()
	show := true
	out, err := svc.DescribeCacheClusters(ctx, &ecapi.DescribeCacheClustersMessage{CacheClusterId: "c", ShowCacheNodeInfo: &show})
	if err != nil {
		t.Fatal(err)
	}
	return int(out.CacheClusters[0].CacheNodes[0].Endpoint.Port)
}
