package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/redis/go-redis/v9"
)

// fastReconcile makes hoard notice dead nodes quickly, so tests need not wait long.
var fastReconcile = withArgs("--reconcile-interval", "200ms")

func waitAvailable(t *testing.T, c *elasticache.Client, id string) types.CacheCluster {
	t.Helper()
	w := elasticache.NewCacheClusterAvailableWaiter(c, func(o *elasticache.CacheClusterAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	out, err := w.WaitForOutput(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String(id), ShowCacheNodeInfo: aws.Bool(true)}, 30*time.Second)
	if err != nil {
		t.Fatalf("cluster %s did not become available: %v", id, err)
	}
	return out.CacheClusters[0]
}

func describeCluster(t *testing.T, c *elasticache.Client, id string) types.CacheCluster {
	t.Helper()
	out, err := c.DescribeCacheClusters(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String(id), ShowCacheNodeInfo: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.CacheClusters[0]
}

func createCluster(t *testing.T, c *elasticache.Client, in *elasticache.CreateCacheClusterInput) types.CacheCluster {
	t.Helper()
	out, err := c.CreateCacheCluster(ctx(t), in)
	if err != nil {
		t.Fatalf("create %s: %v", aws.ToString(in.CacheClusterId), err)
	}
	if got := aws.ToString(out.CacheCluster.CacheClusterStatus); got != "creating" {
		t.Fatalf("a new cluster is %q, want creating", got)
	}
	return waitAvailable(t, c, aws.ToString(in.CacheClusterId))
}

func redisClient(t *testing.T, n types.CacheNode) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", aws.ToString(n.Endpoint.Address), aws.ToInt32(n.Endpoint.Port))})
	t.Cleanup(func() { rc.Close() })
	return rc
}

func configGet(t *testing.T, rc *redis.Client, name string) string {
	t.Helper()
	v, err := rc.ConfigGet(ctx(t), name).Result()
	if err != nil {
		t.Fatalf("CONFIG GET %s: %v", name, err)
	}
	return v[name]
}

func redisPID(t *testing.T, rc *redis.Client) int {
	t.Helper()
	info, err := rc.Info(ctx(t), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	t.Fatal("INFO has no process_id")
	return 0
}

func eventMessages(t *testing.T, c *elasticache.Client, id string) []string {
	t.Helper()
	out, err := c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{SourceType: types.SourceTypeCacheCluster, SourceIdentifier: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range out.Events {
		msgs = append(msgs, aws.ToString(e.Message))
	}
	return msgs
}

func hasMessage(msgs []string, prefix string) bool {
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			return true
		}
	}
	return false
}

// eventually retries check until it returns "" or the time is up.
func eventually(t *testing.T, within time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRedisClusterWithParameterGroup(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("Cache-One"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1), Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("test")}}})
	if aws.ToString(cl.CacheClusterId) != "cache-one" || len(cl.CacheNodes) != 1 || aws.ToString(cl.CacheParameterGroup.CacheParameterGroupName) != "default.redis7" ||
		aws.ToString(cl.CacheParameterGroup.ParameterApplyStatus) != "in-sync" || aws.ToString(cl.ARN) != "arn:aws:elasticache:us-east-1:"+testAccount+":cluster:cache-one" {
		t.Fatalf("cluster: %+v", cl)
	}
	rc := redisClient(t, cl.CacheNodes[0])
	if err := rc.Set(ctx(t), "k", "v", 0).Err(); err != nil {
		t.Fatalf("write to the node at its advertised endpoint: %v", err)
	}
	if v, _ := rc.Get(ctx(t), "k").Result(); v != "v" {
		t.Fatalf("read back %q", v)
	}
	if v := configGet(t, rc, "maxmemory"); v == "0" || v == "" {
		t.Fatalf("the node type did not set maxmemory: %q", v)
	}

	// Switch to a custom group, then change it: immediate parameters reach the node.
	if _, err := c.CreateCacheParameterGroup(ctx(t), &elasticache.CreateCacheParameterGroupInput{CacheParameterGroupName: aws.String("custom"),
		CacheParameterGroupFamily: aws.String("redis7"), Description: aws.String("d")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyCacheCluster(ctx(t), &elasticache.ModifyCacheClusterInput{CacheClusterId: aws.String("cache-one"),
		CacheParameterGroupName: aws.String("custom"), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, c, "cache-one")
	modify := func(name, value string) {
		if _, err := c.ModifyCacheParameterGroup(ctx(t), &elasticache.ModifyCacheParameterGroupInput{CacheParameterGroupName: aws.String("custom"),
			ParameterNameValues: []types.ParameterNameValue{{ParameterName: aws.String(name), ParameterValue: aws.String(value)}}}); err != nil {
			t.Fatal(err)
		}
	}
	modify("maxmemory-policy", "allkeys-lfu")
	eventually(t, 5*time.Second, func() string {
		if v := configGet(t, rc, "maxmemory-policy"); v != "allkeys-lfu" {
			return "CONFIG GET maxmemory-policy = " + v
		}
		if s := aws.ToString(describeCluster(t, c, "cache-one").CacheParameterGroup.ParameterApplyStatus); s != "in-sync" {
			return "ParameterApplyStatus " + s
		}
		return ""
	})

	// A requires-reboot parameter waits for RebootCacheCluster.
	modify("acl-pubsub-default", "resetchannels")
	eventually(t, 5*time.Second, func() string {
		d := describeCluster(t, c, "cache-one")
		if s := aws.ToString(d.CacheParameterGroup.ParameterApplyStatus); s != "pending-reboot" {
			return "ParameterApplyStatus " + s
		}
		if ids := d.CacheParameterGroup.CacheNodeIdsToReboot; len(ids) != 1 || ids[0] != "0001" {
			return fmt.Sprintf("CacheNodeIdsToReboot %v", ids)
		}
		return ""
	})
	if v := configGet(t, rc, "acl-pubsub-default"); v != "allchannels" {
		t.Fatalf("a requires-reboot change reached the node before the reboot: %s", v)
	}
	if _, err := c.RebootCacheCluster(ctx(t), &elasticache.RebootCacheClusterInput{CacheClusterId: aws.String("cache-one"), CacheNodeIdsToReboot: []string{"0001"}}); err != nil {
		t.Fatal(err)
	}
	cl = waitAvailable(t, c, "cache-one")
	if s := aws.ToString(cl.CacheParameterGroup.ParameterApplyStatus); s != "in-sync" {
		t.Fatalf("after reboot ParameterApplyStatus is %s", s)
	}
	if v := configGet(t, rc, "acl-pubsub-default"); v != "resetchannels" {
		t.Fatalf("after reboot acl-pubsub-default = %s", v)
	}
	if v := configGet(t, rc, "maxmemory-policy"); v != "allkeys-lfu" {
		t.Fatalf("after reboot maxmemory-policy = %s", v)
	}
	msgs := eventMessages(t, c, "cache-one")
	for _, want := range []string{"Cache cluster created", "Added cache node 0001", "Cache cluster rebooted", "Cache node 0001 restarted"} {
		if !hasMessage(msgs, want) {
			t.Errorf("no event %q in %q", want, msgs)
		}
	}

	_, err := c.DeleteCacheParameterGroup(ctx(t), &elasticache.DeleteCacheParameterGroupInput{CacheParameterGroupName: aws.String("custom")})
	wantAPIError(t, err, "InvalidCacheParameterGroupState", 400)

	port := aws.ToInt32(cl.CacheNodes[0].Endpoint.Port)
	if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("cache-one")}); err != nil {
		t.Fatal(err)
	}
	deleted := elasticache.NewCacheClusterDeletedWaiter(c, func(o *elasticache.CacheClusterDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	if err := deleted.Wait(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String("cache-one")}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		conn.Close()
		t.Fatalf("port %d still answers after delete", port)
	}
	if !hasMessage(eventMessages(t, c, "cache-one"), "Cache cluster deleted") {
		t.Error("no deletion event")
	}
}

// memcachedSetGet stores and reads back an item over memcached's text protocol.
func memcachedSetGet(t *testing.T, addr, key, value string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("connect to memcached node %s: %v", addr, err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "set %s 7 0 %d\r\n%s\r\n", key, len(value), value)
	if line, _ := r.ReadString('\n'); line != "STORED\r\n" {
		t.Fatalf("set on %s: %q", addr, line)
	}
	fmt.Fprintf(conn, "get %s\r\n", key)
	header, _ := r.ReadString('\n')
	data, _ := r.ReadString('\n')
	end, _ := r.ReadString('\n')
	if header != fmt.Sprintf("VALUE %s 7 %d\r\n", key, len(value)) || data != value+"\r\n" || end != "END\r\n" {
		t.Fatalf("get on %s: %q %q %q", addr, header, data, end)
	}
}

func nodeAddr(n types.CacheNode) string {
	return fmt.Sprintf("%s:%d", aws.ToString(n.Endpoint.Address), aws.ToInt32(n.Endpoint.Port))
}

func TestMemcachedClusterScales(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("mc"), Engine: aws.String("memcached"),
		CacheNodeType: aws.String("cache.t3.small"), NumCacheNodes: aws.Int32(3)})
	if len(cl.CacheNodes) != 3 || cl.ConfigurationEndpoint == nil || aws.ToInt32(cl.NumCacheNodes) != 3 {
		t.Fatalf("memcached cluster: %+v", cl)
	}
	ports := map[int32]bool{}
	for _, n := range cl.CacheNodes {
		memcachedSetGet(t, nodeAddr(n), "key-"+aws.ToString(n.CacheNodeId), "value")
		ports[aws.ToInt32(n.Endpoint.Port)] = true
	}
	if len(ports) != 3 {
		t.Fatalf("nodes share ports: %v", ports)
	}
	if _, err := c.ModifyCacheCluster(ctx(t), &elasticache.ModifyCacheClusterInput{CacheClusterId: aws.String("mc"),
		NumCacheNodes: aws.Int32(4), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	cl = waitAvailable(t, c, "mc")
	if len(cl.CacheNodes) != 4 || aws.ToString(cl.CacheNodes[3].CacheNodeId) != "0004" {
		t.Fatalf("after adding a node: %+v", cl.CacheNodes)
	}
	memcachedSetGet(t, nodeAddr(cl.CacheNodes[3]), "new", "node")

	_, err := c.ModifyCacheCluster(ctx(t), &elasticache.ModifyCacheClusterInput{CacheClusterId: aws.String("mc"), NumCacheNodes: aws.Int32(3), ApplyImmediately: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	if _, err := c.ModifyCacheCluster(ctx(t), &elasticache.ModifyCacheClusterInput{CacheClusterId: aws.String("mc"),
		NumCacheNodes: aws.Int32(3), CacheNodeIdsToRemove: []string{"0002"}, ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	cl = waitAvailable(t, c, "mc")
	var ids []string
	for _, n := range cl.CacheNodes {
		ids = append(ids, aws.ToString(n.CacheNodeId))
	}
	if strings.Join(ids, ",") != "0001,0003,0004" {
		t.Fatalf("after removing 0002: %v", ids)
	}
	// Deferred to the maintenance window: shown as pending, not applied.
	out, err := c.ModifyCacheCluster(ctx(t), &elasticache.ModifyCacheClusterInput{CacheClusterId: aws.String("mc"), NumCacheNodes: aws.Int32(5),
		PreferredMaintenanceWindow: aws.String("sun:05:00-sun:06:00")})
	if err != nil {
		t.Fatal(err)
	}
	if p := out.CacheCluster.PendingModifiedValues; p == nil || aws.ToInt32(p.NumCacheNodes) != 5 {
		t.Fatalf("pending modifications: %+v", out.CacheCluster.PendingModifiedValues)
	}
	if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("mc"), FinalSnapshotIdentifier: aws.String("final")}); err == nil {
		t.Fatal("a final snapshot of a memcached cluster must be refused")
	}
}

// kill -9 of hoard leaves the nodes serving; after a restart they are re-adopted
// (the same process) and still described. kill -9 of a node brings it back.
func TestNodesOutliveHoardAndRecover(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	cl := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("durable"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)})
	rc := redisClient(t, cl.CacheNodes[0])
	if err := rc.Set(ctx(t), "survives", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := redisPID(t, rc)
	h.kill9()
	if v, err := rc.Get(ctx(t), "survives").Result(); err != nil || v != "yes" {
		t.Fatalf("the node stopped serving when hoard died: %q %v", v, err)
	}
	h.restart()
	c = h.client("us-east-1")
	time.Sleep(500 * time.Millisecond) // a few reconcile passes
	cl = describeCluster(t, c, "durable")
	if aws.ToString(cl.CacheClusterStatus) != "available" || redisPID(t, rc) != pid {
		t.Fatalf("after restart: status %s, pid %d (was %d)", aws.ToString(cl.CacheClusterStatus), redisPID(t, rc), pid)
	}
	if v, _ := rc.Get(ctx(t), "survives").Result(); v != "yes" {
		t.Fatal("the re-adopted node lost its data")
	}

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		if err := rc.Ping(ctx(t)).Err(); err != nil {
			return "node not back: " + err.Error()
		}
		if redisPID(t, rc) == pid {
			return "still the old process"
		}
		if !hasMessage(eventMessages(t, c, "durable"), "Recovered cache node 0001") {
			return "no recovery event"
		}
		return ""
	})
	if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("durable")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		_, err := c.DescribeCacheClusters(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String("durable")})
		if err == nil {
			return "still described"
		}
		return ""
	})
}

func TestCacheClusterErrors(t *testing.T) {
	h := startHoard(t, withArgs("--quota-nodes-per-region", "4"))
	c := h.client("us-east-1")
	create := func(id, eng, nodeType string, n int32, group string) error {
		in := &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(id), Engine: aws.String(eng), CacheNodeType: aws.String(nodeType), NumCacheNodes: aws.Int32(n)}
		if group != "" {
			in.CacheParameterGroupName = aws.String(group)
		}
		_, err := c.CreateCacheCluster(ctx(t), in)
		return err
	}
	if err := create("taken", "redis", "cache.t3.micro", 1, ""); err != nil {
		t.Fatal(err)
	}
	// A cluster still creating cannot be rebooted or deleted.
	_, err := c.RebootCacheCluster(ctx(t), &elasticache.RebootCacheClusterInput{CacheClusterId: aws.String("taken"), CacheNodeIdsToReboot: []string{"0001"}})
	if err == nil {
		waitAvailable(t, c, "taken") // it may have been quick; then the reboot was legal
	} else {
		wantAPIError(t, err, "InvalidCacheClusterState", 400)
	}
	cases := []struct {
		name, code string
		status     int
		err        error
	}{
		{"duplicate", "CacheClusterAlreadyExists", 400, create("TAKEN", "redis", "cache.t3.micro", 1, "")},
		{"redis with two nodes", "InvalidParameterValue", 400, create("r2", "redis", "cache.t3.micro", 2, "")},
		{"memcached with 41 nodes", "InvalidParameterValue", 400, create("m41", "memcached", "cache.t3.micro", 41, "")},
		{"unknown node type", "InvalidParameterValue", 400, create("nt", "redis", "cache.x9.huge", 1, "")},
		{"unknown engine", "InvalidParameterValue", 400, create("eng", "mysql", "cache.t3.micro", 1, "")},
		{"bad id", "InvalidParameterValue", 400, create("9lives", "redis", "cache.t3.micro", 1, "")},
		{"unknown group", "CacheParameterGroupNotFound", 404, create("pg", "redis", "cache.t3.micro", 1, "nope")},
		{"family mismatch", "InvalidParameterCombination", 400, create("fm", "redis", "cache.t3.micro", 1, "default.memcached1.6")},
		{"cluster-mode group", "InvalidParameterCombination", 400, create("co", "redis", "cache.t3.micro", 1, "default.redis7.cluster.on")},
		{"node quota", "NodeQuotaForCustomerExceeded", 400, create("many", "memcached", "cache.t3.micro", 4, "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, tc.err, tc.code, tc.status) })
	}
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("v"), Engine: aws.String("redis"),
		EngineVersion: aws.String("2.8.24"), CacheNodeType: aws.String("cache.t3.micro")})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	for _, call := range []func() error{
		func() error {
			_, err := c.DescribeCacheClusters(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String("ghost")})
			return err
		},
		func() error {
			_, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("ghost")})
			return err
		},
		func() error {
			_, err := c.RebootCacheCluster(ctx(t), &elasticache.RebootCacheClusterInput{CacheClusterId: aws.String("ghost"), CacheNodeIdsToReboot: []string{"0001"}})
			return err
		},
		func() error {
			_, err := c.ModifyCacheCluster(ctx(t), &elasticache.ModifyCacheClusterInput{CacheClusterId: aws.String("ghost"), ApplyImmediately: aws.Bool(true)})
			return err
		},
	} {
		wantAPIError(t, call(), "CacheClusterNotFound", 404)
	}
	waitAvailable(t, c, "taken")
	_, err = c.RebootCacheCluster(ctx(t), &elasticache.RebootCacheClusterInput{CacheClusterId: aws.String("taken"), CacheNodeIdsToReboot: []string{"0009"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	allowed, err := c.ListAllowedNodeTypeModifications(ctx(t), &elasticache.ListAllowedNodeTypeModificationsInput{CacheClusterId: aws.String("taken")})
	if err != nil || len(allowed.ScaleUpModifications) == 0 || len(allowed.ScaleDownModifications) == 0 {
		t.Fatalf("allowed node type modifications of a t3.micro: %+v %v", allowed, err)
	}
	if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("taken")}); err != nil {
		t.Fatal(err)
	}
}

// A node that cannot start leaves its cluster in create-failed with an event that
// says why; other clusters are not affected.
func TestClusterThatCannotStartFails(t *testing.T) {
	// A redis-server that reports a version but fails to start, as a broken
	// installation or a bad configuration would.
	fake := filepath.Join(t.TempDir(), "redis-server")
	script := "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Redis server v=7.0.15 sha=0 malloc=libc bits=64'; exit 0; fi\necho 'FATAL: cannot start: bad configuration' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHoard(t, fastReconcile, withArgs("--redis-server", fake))
	c := h.client("us-east-1")
	if _, err := c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("broken"), Engine: aws.String("redis"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	mc := createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("fine"), Engine: aws.String("memcached"),
		CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(1)})
	memcachedSetGet(t, nodeAddr(mc.CacheNodes[0]), "k", "v")
	eventually(t, 15*time.Second, func() string {
		if s := aws.ToString(describeCluster(t, c, "broken").CacheClusterStatus); s != "create-failed" {
			return "status " + s
		}
		return ""
	})
	msgs := eventMessages(t, c, "broken")
	if !hasMessage(msgs, "Failed to create cache cluster") {
		t.Fatalf("no failure event: %q", msgs)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "bad configuration") {
		t.Errorf("the failure event does not say why: %q", msgs)
	}
	// The available waiter never succeeds on it (create-failed is not in the model's
	// list of failure states, so the waiter runs to its timeout).
	w := elasticache.NewCacheClusterAvailableWaiter(c, func(o *elasticache.CacheClusterAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 100*time.Millisecond
	})
	if err := w.Wait(ctx(t), &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String("broken")}, time.Second); err == nil {
		t.Fatal("the available waiter succeeded on a failed cluster")
	}
	if _, err := c.DeleteCacheCluster(ctx(t), &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String("broken")}); err != nil {
		t.Fatalf("a failed cluster can be deleted: %v", err)
	}
}

func TestDescribeEventsFilters(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	for _, id := range []string{"ev-a", "ev-b"} {
		createCluster(t, c, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(id), Engine: aws.String("memcached"),
			CacheNodeType: aws.String("cache.t3.micro"), NumCacheNodes: aws.Int32(2)})
	}
	all, err := c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Events) < 6 {
		t.Fatalf("want at least 6 events (2 created, 4 nodes added), got %d", len(all.Events))
	}
	for i := 1; i < len(all.Events); i++ {
		if all.Events[i].Date.After(*all.Events[i-1].Date) {
			t.Fatal("events are not newest first")
		}
	}
	onlyA := eventMessages(t, c, "ev-a")
	if len(onlyA) != 3 || !hasMessage(onlyA, "Cache cluster created") {
		t.Fatalf("events of ev-a: %q", onlyA)
	}
	// A window in the past holds nothing; Duration and StartTime do not combine.
	past := time.Now().Add(-3 * time.Hour)
	old, err := c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{StartTime: aws.Time(past), EndTime: aws.Time(past.Add(time.Hour))})
	if err != nil || len(old.Events) != 0 {
		t.Fatalf("events three hours ago: %+v %v", old, err)
	}
	_, err = c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{StartTime: aws.Time(past), Duration: aws.Int32(10)})
	wantAPIError(t, err, "InvalidParameterCombination", 400)
	_, err = c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{SourceIdentifier: aws.String("ev-a")})
	wantAPIError(t, err, "InvalidParameterCombination", 400)
	_, err = c.DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{Duration: aws.Int32(20161)})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	// Pagination: 20 per page through the whole feed, nothing lost.
	p := elasticache.NewDescribeEventsPaginator(c, &elasticache.DescribeEventsInput{MaxRecords: aws.Int32(20)})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Events)
	}
	if n != len(all.Events) {
		t.Fatalf("paged through %d events, want %d", n, len(all.Events))
	}
	// Events are per region.
	eu, err := h.client("eu-west-1").DescribeEvents(ctx(t), &elasticache.DescribeEventsInput{})
	if err != nil || len(eu.Events) != 0 {
		t.Fatalf("events seen from another region: %+v %v", eu, err)
	}
}
