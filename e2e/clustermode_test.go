package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/redis/go-redis/v9"
)

// waitGroupWithin waits until the group is available; a sharded group has
// more nodes to start, introduce and sync than waitGroup waits for.
func waitGroupWithin(t *testing.T, c *elasticache.Client, id string, within time.Duration) types.ReplicationGroup {
	t.Helper()
	var g types.ReplicationGroup
	eventually(t, within, func() string {
		g = describeGroup(t, c, id)
		switch s := aws.ToString(g.Status); s {
		case "available":
			return ""
		case "create-failed":
			why := groupEvents(t, c, id)
			for _, m := range g.MemberClusters {
				why = append(why, eventMessages(t, c, m)...)
			}
			t.Fatalf("replication group %s failed to create: %v", id, why)
		default:
			return "status " + s
		}
		return ""
	})
	return g
}

// clusterClient is a cluster-aware client that finds the cluster through the
// group's configuration endpoint, as a user's would.
func clusterClient(t *testing.T, g types.ReplicationGroup) *redis.ClusterClient {
	t.Helper()
	if g.ConfigurationEndpoint == nil {
		t.Fatalf("group %s has no configuration endpoint", aws.ToString(g.ReplicationGroupId))
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:      []string{fmt.Sprintf("%s:%d", aws.ToString(g.ConfigurationEndpoint.Address), aws.ToInt32(g.ConfigurationEndpoint.Port))},
		MaxRetries: 10, MinRetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 500 * time.Millisecond,
		MaxRedirects: 16,
	})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// shardSlots lists each node group's Slots, by node group ID.
func shardSlots(g types.ReplicationGroup) map[string]string {
	out := map[string]string{}
	for _, ng := range g.NodeGroups {
		out[aws.ToString(ng.NodeGroupId)] = aws.ToString(ng.Slots)
	}
	return out
}

// masterSizes is the number of keys on each primary of the cluster.
func masterSizes(t *testing.T, cc *redis.ClusterClient) map[string]int64 {
	t.Helper()
	var mu sync.Mutex
	sizes := map[string]int64{}
	err := cc.ForEachMaster(context.Background(), func(ctx context.Context, rc *redis.Client) error {
		n, err := rc.DBSize(ctx).Result()
		mu.Lock()
		sizes[rc.Options().Addr] = n
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sizes
}

// shardNodes returns the addresses of the primary serving slot and of one of
// its replicas.
func shardNodes(t *testing.T, cc *redis.ClusterClient, slot int) (primary, replica string) {
	t.Helper()
	shards, err := cc.ClusterShards(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		owns := false
		for _, r := range sh.Slots {
			owns = owns || int(r.Start) <= slot && slot <= int(r.End)
		}
		if !owns {
			continue
		}
		for _, n := range sh.Nodes {
			addr := fmt.Sprintf("%s:%d", n.IP, n.Port)
			if n.Role == "master" {
				primary = addr
			} else {
				replica = addr
			}
		}
	}
	return primary, replica
}

func nodeClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// TestClusterModeGroup: a 3-shard group with a replica per shard is a real
// Redis Cluster a go-redis ClusterClient and redis-cli -c drive through the
// configuration endpoint; TestFailover and a kill -9 of a shard's primary each
// promote its replica with no key lost; the documented errors.
func TestClusterModeGroup(t *testing.T) {
	h := startHoard(t, fastReconcile)
	c := h.client("us-east-1")
	out, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("Shop"),
		ReplicationGroupDescription: aws.String("catalogue"), Engine: aws.String("redis"), CacheNodeType: aws.String("cache.t3.micro"),
		NumNodeGroups: aws.Int32(3), ReplicasPerNodeGroup: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(out.ReplicationGroup.ClusterEnabled) || out.ReplicationGroup.ClusterMode != types.ClusterModeEnabled ||
		out.ReplicationGroup.AutomaticFailover != types.AutomaticFailoverStatusEnabled {
		t.Fatalf("new group: %+v", out.ReplicationGroup)
	}
	g := waitGroupWithin(t, c, "shop", 60*time.Second)
	wantMembers := "shop-0001-001,shop-0001-002,shop-0002-001,shop-0002-002,shop-0003-001,shop-0003-002"
	if got := strings.Join(g.MemberClusters, ","); got != wantMembers {
		t.Fatalf("members %s, want %s", got, wantMembers)
	}
	wantSlots := map[string]string{"0001": "0-5461", "0002": "5462-10922", "0003": "10923-16383"}
	if got := shardSlots(g); fmt.Sprint(got) != fmt.Sprint(wantSlots) {
		t.Fatalf("slots %v, want %v", got, wantSlots)
	}
	for _, ng := range g.NodeGroups {
		if len(ng.NodeGroupMembers) != 2 || ng.PrimaryEndpoint != nil || aws.ToString(ng.Status) != "available" {
			t.Fatalf("node group %+v", ng)
		}
	}
	if member := describeCluster(t, c, "shop-0002-002"); aws.ToString(member.ReplicationGroupId) != "shop" || aws.ToString(member.CacheParameterGroup.CacheParameterGroupName) != "default.redis7.cluster.on" {
		t.Fatalf("member cluster: %+v", member)
	}

	// 10,000 keys through the configuration endpoint land on all three shards.
	bg := context.Background()
	cc := clusterClient(t, g)
	for i := 0; i < 10000; i++ {
		if err := cc.Set(bg, fmt.Sprintf("item:%05d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	sizes := masterSizes(t, cc)
	if len(sizes) != 3 {
		t.Fatalf("primaries: %v", sizes)
	}
	for addr, n := range sizes {
		if n < 2500 {
			t.Errorf("primary %s holds only %d of 10000 keys", addr, n)
		}
	}
	if cli, err := exec.LookPath("redis-cli"); err == nil {
		ep := g.ConfigurationEndpoint
		run := func(args ...string) string {
			out, err := exec.Command(cli, append([]string{"-c", "-h", aws.ToString(ep.Address), "-p", fmt.Sprint(aws.ToInt32(ep.Port))}, args...)...).CombinedOutput()
			if err != nil {
				t.Fatalf("redis-cli %v: %v %s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		for _, key := range []string{"a", "b", "c", "item:09999"} {
			if key != "item:09999" {
				run("SET", key, "v-"+key)
			}
			want := "v-" + key
			if key == "item:09999" {
				want = "9999"
			}
			if got := run("GET", key); got != want {
				t.Fatalf("redis-cli -c GET %s = %q, want %q", key, got, want)
			}
		}
	}

	// TestFailover of node group 0002: its replica takes over, the old primary follows it.
	// The node the client asks learns of the replicas by gossip, which may
	// lag the group turning available by a few seconds.
	var oldPrimary, oldReplica string
	eventually(t, 20*time.Second, func() string {
		if oldPrimary, oldReplica = shardNodes(t, cc, 6000); oldReplica == "" {
			return "the cluster shows no replica of slot 6000's primary yet"
		}
		return ""
	})
	if _, err := c.TestFailover(ctx(t), &elasticache.TestFailoverInput{ReplicationGroupId: aws.String("shop"), NodeGroupId: aws.String("0002")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		if p, _ := shardNodes(t, cc, 6000); p != oldReplica {
			return fmt.Sprintf("slot 6000 is served by %s, not the promoted %s", p, oldReplica)
		}
		role, _ := nodeClient(t, oldPrimary).Do(bg, "ROLE").Slice()
		if len(role) == 0 || role[0] != "slave" {
			return fmt.Sprintf("old primary's role: %v", role)
		}
		return ""
	})

	// kill -9 of the primary of item:00000's node group: hoard promotes its replica.
	primary, _ := shardNodes(t, cc, int(cc.ClusterKeySlot(bg, "item:00000").Val()))
	pc := nodeClient(t, primary)
	if err := pc.Wait(bg, 1, 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := syscall.Kill(redisPID(t, pc), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if err := cc.Set(bg, "{item:00000}after", "1", 0).Err(); err != nil {
			return err.Error()
		}
		return ""
	})
	t.Logf("writes to the killed primary's slots accepted again %v after the kill", time.Since(killed).Round(time.Millisecond))
	for i := 0; i < 10000; i++ {
		if v, err := cc.Get(bg, fmt.Sprintf("item:%05d", i)).Int(); err != nil || v != i {
			t.Fatalf("item:%05d after the failovers: %v %v", i, v, err)
		}
	}
	eventually(t, 30*time.Second, func() string {
		role, err := pc.Do(bg, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != "slave" {
			return fmt.Sprintf("killed primary's role: %v %v", role, err)
		}
		return ""
	})
	if msgs := groupEvents(t, c, "shop"); !hasMessage(msgs, "Automatic failover") || !hasMessage(msgs, "Test failover") {
		t.Errorf("failover events missing: %v", msgs)
	}
	g = waitGroupWithin(t, c, "shop", 30*time.Second)
	if got := shardSlots(g); fmt.Sprint(got) != fmt.Sprint(wantSlots) {
		t.Fatalf("slots after the failovers %v, want %v", got, wantSlots)
	}

	// Replica counts per node group: 0003 gets a second replica, which syncs
	// its slots' keys; then every node group is back to one, and the cluster
	// forgets the removed nodes.
	if _, err := c.IncreaseReplicaCount(ctx(t), &elasticache.IncreaseReplicaCountInput{ReplicationGroupId: aws.String("shop"), ApplyImmediately: aws.Bool(true),
		ReplicaConfiguration: []types.ConfigureShard{{NodeGroupId: aws.String("0003"), NewReplicaCount: aws.Int32(2)}}}); err != nil {
		t.Fatal(err)
	}
	g = waitGroupWithin(t, c, "shop", 60*time.Second)
	if len(g.MemberClusters) != 7 || len(g.NodeGroups[2].NodeGroupMembers) != 3 {
		t.Fatalf("after IncreaseReplicaCount: %v", g.MemberClusters)
	}
	added := describeCluster(t, c, "shop-0003-003")
	ac := redisClient(t, added.CacheNodes[0])
	primary0003, _ := shardNodes(t, cc, 16383)
	want0003, err := nodeClient(t, primary0003).DBSize(bg).Result()
	if err != nil || want0003 == 0 {
		t.Fatalf("node group 0003's primary holds %d keys (%v)", want0003, err)
	}
	eventually(t, 20*time.Second, func() string {
		if n, err := ac.DBSize(bg).Result(); err != nil || n != want0003 {
			return fmt.Sprintf("the new replica holds %d keys of %d (%v)", n, want0003, err)
		}
		return ""
	})
	if _, err := c.DecreaseReplicaCount(ctx(t), &elasticache.DecreaseReplicaCountInput{ReplicationGroupId: aws.String("shop"), ApplyImmediately: aws.Bool(true),
		NewReplicaCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	g = waitGroupWithin(t, c, "shop", 60*time.Second)
	if len(g.MemberClusters) != 6 {
		t.Fatalf("after DecreaseReplicaCount: %v", g.MemberClusters)
	}
	eventually(t, 20*time.Second, func() string {
		nodes, err := cc.ClusterNodes(bg).Result()
		if n := strings.Count(strings.TrimSpace(nodes), "\n") + 1; err != nil || n != 6 {
			return fmt.Sprintf("the cluster knows %d nodes: %s %v", n, nodes, err)
		}
		return ""
	})
	_, err = c.DecreaseReplicaCount(ctx(t), &elasticache.DecreaseReplicaCountInput{ReplicationGroupId: aws.String("shop"), ApplyImmediately: aws.Bool(true),
		ReplicaConfiguration: []types.ConfigureShard{{NodeGroupId: aws.String("0008"), NewReplicaCount: aws.Int32(0)}}})
	wantAPIError(t, err, "InvalidParameterValue", 400) // DecreaseReplicaCount does not list NodeGroupNotFoundFault

	// Errors.
	_, err = c.TestFailover(ctx(t), &elasticache.TestFailoverInput{ReplicationGroupId: aws.String("shop"), NodeGroupId: aws.String("0009")})
	wantAPIError(t, err, "NodeGroupNotFoundFault", 404)
	// The same count rebalances; the slots are even already, so nothing changes.
	evenSlots := fmt.Sprint(shardSlots(describeGroup(t, c, "shop")))
	if out, err := c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("shop"), NodeGroupCount: aws.Int32(3), ApplyImmediately: aws.Bool(true)}); err != nil ||
		aws.ToString(out.ReplicationGroup.Status) != "available" || fmt.Sprint(shardSlots(*out.ReplicationGroup)) != evenSlots {
		t.Fatalf("rebalancing an even group: %v", err)
	}
	_, err = c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("shop"), NodeGroupCount: aws.Int32(2), ApplyImmediately: aws.Bool(true)})
	wantAPIError(t, err, "InvalidParameterValue", 400) // which node group goes must be said
	_, err = c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("shop"), NodeGroupCount: aws.Int32(2), ApplyImmediately: aws.Bool(true), NodeGroupsToRemove: []string{"0007"}})
	wantAPIError(t, err, "InvalidParameterValue", 400)
	bad := func(in *elasticache.CreateReplicationGroupInput, code string, status int) {
		t.Helper()
		in.ReplicationGroupDescription, in.CacheNodeType = aws.String("bad"), aws.String("cache.t3.micro")
		_, err := c.CreateReplicationGroup(ctx(t), in)
		wantAPIError(t, err, code, status)
	}
	slots := func(ranges ...string) []types.NodeGroupConfiguration {
		var out []types.NodeGroupConfiguration
		for _, r := range ranges {
			out = append(out, types.NodeGroupConfiguration{Slots: aws.String(r)})
		}
		return out
	}
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("overlap"), NodeGroupConfiguration: slots("0-9000", "8000-16383")}, "InvalidParameterValue", 400)
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("gap"), NodeGroupConfiguration: slots("0-8000", "8002-16383")}, "InvalidParameterValue", 400)
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("range"), NodeGroupConfiguration: slots("0-8000", "8001-16384")}, "InvalidParameterValue", 400)
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("mixed"), NumNodeGroups: aws.Int32(2), ClusterMode: types.ClusterModeDisabled}, "InvalidParameterCombination", 400)
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("pg"), NumNodeGroups: aws.Int32(2), CacheParameterGroupName: aws.String("default.redis7")}, "InvalidParameterCombination", 400)
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("nofail"), NumNodeGroups: aws.Int32(2), AutomaticFailoverEnabled: aws.Bool(false)}, "InvalidParameterCombination", 400)
	bad(&elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("shop"), NumNodeGroups: aws.Int32(2)}, "ReplicationGroupAlreadyExists", 400)
	_, err = c.CreateCacheCluster(ctx(t), &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String("extra"), ReplicationGroupId: aws.String("shop")})
	wantAPIError(t, err, "InvalidParameterCombination", 400)

	if _, err := c.DeleteReplicationGroup(ctx(t), &elasticache.DeleteReplicationGroupInput{ReplicationGroupId: aws.String("shop")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		_, err := c.DescribeReplicationGroups(ctx(t), &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String("shop")})
		if err == nil {
			return "group still there"
		}
		wantAPIError(t, err, "ReplicationGroupNotFoundFault", 404)
		return ""
	})
}

// seedKeys writes n keys, prefix:000000 and on, each holding its own name,
// pipelined, and returns them.
func seedKeys(t *testing.T, cc *redis.ClusterClient, prefix string, n int) []string {
	t.Helper()
	bg := context.Background()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s:%06d", prefix, i)
	}
	for start := 0; start < n; start += 1000 {
		if _, err := cc.Pipelined(bg, func(p redis.Pipeliner) error {
			for _, k := range keys[start:min(start+1000, n)] {
				p.Set(bg, k, k, 0)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// writeLoad writes keys through a ClusterClient until stopped, and returns
// every key whose write was acknowledged.
type writeLoad struct {
	stop  chan struct{}
	done  chan struct{}
	acked []string
	errs  int
}

func startWriteLoad(cc *redis.ClusterClient, prefix string) *writeLoad {
	w := &writeLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			key := fmt.Sprintf("%s:%07d", prefix, i)
			if err := cc.Set(context.Background(), key, key, 0).Err(); err != nil {
				w.errs++
				continue
			}
			w.acked = append(w.acked, key)
		}
	}()
	return w
}

func (w *writeLoad) finish() []string {
	close(w.stop)
	<-w.done
	return w.acked
}

// checkKeys reads every key back through the cluster client.
func checkKeys(t *testing.T, cc *redis.ClusterClient, keys []string, value func(string) string) {
	t.Helper()
	if bad := badKey(cc, keys, value); bad != "" {
		t.Fatal(bad)
	}
}

// badKey reads keys back, 500 to a pipeline, and describes the first that is
// missing or does not hold value(key); "" when all are right.
func badKey(cc *redis.ClusterClient, keys []string, value func(string) string) string {
	bg := context.Background()
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		cmds := make([]*redis.StringCmd, len(batch))
		_, err := cc.Pipelined(bg, func(p redis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.Get(bg, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Sprintf("reading keys back: %v", err)
		}
		for i, k := range batch {
			if v, err := cmds[i].Result(); err != nil || v != value(k) {
				return fmt.Sprintf("key %s: %q %v (want %q)", k, v, err, value(k))
			}
		}
	}
	return ""
}

// TestClusterModeResharding: 3 → 4 → 2 node groups under a steady write load,
// with hoard killed (-9) in the middle of the second resharding: the group
// converges after the restart and every acknowledged key is there.
func TestClusterModeResharding(t *testing.T) {
	h := startHoard(t, fastReconcile)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.stderr.String())
		}
	})
	c := h.client("us-east-1")
	if _, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("cart"),
		ReplicationGroupDescription: aws.String("carts"), CacheNodeType: aws.String("cache.t3.micro"),
		NumNodeGroups: aws.Int32(3), ReplicasPerNodeGroup: aws.Int32(1), CacheParameterGroupName: aws.String("default.redis7.cluster.on")}); err != nil {
		t.Fatal(err)
	}
	g := waitGroupWithin(t, c, "cart", 60*time.Second)
	cc := clusterClient(t, g)
	seeded := seedKeys(t, cc, "seed", 20000)
	load := startWriteLoad(cc, "live")

	// 3 → 4: a new node group takes a quarter of the slots.
	out, err := c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("cart"), NodeGroupCount: aws.Int32(4), ApplyImmediately: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if s := aws.ToString(out.ReplicationGroup.Status); s != "modifying" || len(out.ReplicationGroup.NodeGroups) != 4 {
		t.Fatalf("resharding answered %s with %d node groups", s, len(out.ReplicationGroup.NodeGroups))
	}
	g = waitGroupWithin(t, c, "cart", 120*time.Second)
	want4 := map[string]string{"0001": "0-4095", "0002": "5462-9557", "0003": "10923-15018", "0004": "4096-5461,9558-10922,15019-16383"}
	if got := shardSlots(g); fmt.Sprint(got) != fmt.Sprint(want4) {
		t.Fatalf("slots over 4 node groups %v, want %v", got, want4)
	}
	if len(g.MemberClusters) != 8 {
		t.Fatalf("members after 3 → 4: %v", g.MemberClusters)
	}
	checkKeys(t, cc, seeded, func(k string) string { return k })

	// 4 → 2, keeping 0002 and 0004; hoard is killed while slots move.
	if _, err := c.ModifyReplicationGroupShardConfiguration(ctx(t), &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String("cart"), NodeGroupCount: aws.Int32(2), ApplyImmediately: aws.Bool(true),
		NodeGroupsToRetain: []string{"0002", "0004"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		g := describeGroup(t, c, "cart")
		if g.PendingModifiedValues == nil || g.PendingModifiedValues.Resharding == nil {
			return "no resharding progress yet"
		}
		if p := aws.ToFloat64(g.PendingModifiedValues.Resharding.SlotMigration.ProgressPercentage); p <= 0 {
			return fmt.Sprintf("progress %.1f%%", p)
		}
		return ""
	})
	h.kill9()
	h.restart()
	c = h.client("us-east-1")
	g = waitGroupWithin(t, c, "cart", 120*time.Second)
	acked := load.finish()
	t.Logf("%d writes acknowledged during the reshardings (%d failed and were retried as new keys)", len(acked), load.errs)
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged during the reshardings")
	}
	want2 := map[string]string{"0002": "0-8191", "0004": "8192-16383"}
	got := shardSlots(g)
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != "[0002 0004]" || slotTotal(t, got) != 16384 {
		t.Fatalf("slots over 2 node groups %v (even split would be %v)", got, want2)
	}
	if len(g.MemberClusters) != 4 {
		t.Fatalf("members after 4 → 2: %v", g.MemberClusters)
	}
	same := func(k string) string { return k }
	checkKeys(t, cc, seeded, same)
	checkKeys(t, cc, acked, same)
	if sizes := masterSizes(t, cc); len(sizes) != 2 {
		t.Fatalf("primaries after 4 → 2: %v", sizes)
	}
	if msgs := groupEvents(t, c, "cart"); !hasMessage(msgs, "Resharding") {
		t.Errorf("resharding events missing: %v", msgs)
	}
}

// slotTotal counts the slots of every node group, failing on overlaps.
func slotTotal(t *testing.T, shards map[string]string) int {
	t.Helper()
	seen := map[int]bool{}
	for id, s := range shards {
		for _, part := range strings.Split(s, ",") {
			var a, b int
			if _, err := fmt.Sscanf(part, "%d-%d", &a, &b); err != nil {
				t.Fatalf("node group %s slots %q: %v", id, s, err)
			}
			for i := a; i <= b; i++ {
				if seen[i] {
					t.Fatalf("slot %d is in two node groups: %v", i, shards)
				}
				seen[i] = true
			}
		}
	}
	return len(seen)
}

// fillCluster writes n keys through a cluster client, every third with a TTL,
// and returns each key's value.
func fillCluster(t *testing.T, cc *redis.ClusterClient, n int) map[string]string {
	t.Helper()
	bg := context.Background()
	want := map[string]string{}
	_, err := cc.Pipelined(bg, func(p redis.Pipeliner) error {
		for i := 0; i < n; i++ {
			k, v := fmt.Sprintf("order:%05d", i), fmt.Sprintf("v%d", i*7)
			ttl := time.Duration(0)
			if i%3 == 0 {
				ttl = time.Hour
			}
			p.Set(bg, k, v, ttl)
			want[k] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// checkRestored reads every key back, with its TTL kept where it had one.
func checkRestored(t *testing.T, cc *redis.ClusterClient, want map[string]string) {
	t.Helper()
	bg := context.Background()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	checkKeys(t, cc, keys, func(k string) string { return want[k] })
	for _, k := range []string{"order:00000", "order:00003", "order:00001"} {
		ttl, err := cc.TTL(bg, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if withTTL := k != "order:00001"; withTTL != (ttl > 50*time.Minute) {
			t.Fatalf("%s has TTL %v", k, ttl)
		}
	}
	// Nothing more than the snapshot's keys either; the client's map of the
	// primaries may lag a restored group's last changes for a moment.
	eventually(t, 10*time.Second, func() string {
		cc.ReloadState(bg)
		if n := totalKeys(t, cc); n != int64(len(want)) {
			return fmt.Sprintf("the primaries hold %d keys, want %d", n, len(want))
		}
		return ""
	})
}

func totalKeys(t *testing.T, cc *redis.ClusterClient) int64 {
	t.Helper()
	var total int64
	for _, n := range masterSizes(t, cc) {
		total += n
	}
	return total
}

// TestClusterModeSnapshots: a snapshot of a 3-shard group holds an RDB per
// shard with its slots; it restores into a new group with every key in a
// shard owning its slot; exported to S3 it is 3 objects, which restore too;
// DeleteReplicationGroup takes a final snapshot of every shard.
func TestClusterModeSnapshots(t *testing.T) {
	var s3opts []option
	var endpoint string
	if _, err := exec.LookPath("moto_server"); err == nil {
		endpoint = startMotoServer(t)
		s3opts = append(s3opts, withArgs("--s3-endpoint", endpoint), withEnv("HOARD_S3_ACCESS_KEY_ID="+s3TestKey, "HOARD_S3_SECRET_ACCESS_KEY="+s3TestSecret))
	}
	h := startHoard(t, append([]option{fastReconcile}, s3opts...)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.stderr.String())
		}
	})
	c := h.client("us-east-1")
	create := func(id string, in *elasticache.CreateReplicationGroupInput) types.ReplicationGroup {
		t.Helper()
		in.ReplicationGroupId, in.ReplicationGroupDescription, in.CacheNodeType = aws.String(id), aws.String("orders"), aws.String("cache.t3.micro")
		if _, err := c.CreateReplicationGroup(ctx(t), in); err != nil {
			t.Fatal(err)
		}
		return waitGroupWithin(t, c, id, 60*time.Second)
	}
	g := create("orders", &elasticache.CreateReplicationGroupInput{NodeGroupConfiguration: []types.NodeGroupConfiguration{
		{Slots: aws.String("0-3000"), ReplicaCount: aws.Int32(1)}, {Slots: aws.String("3001-12000"), ReplicaCount: aws.Int32(0)},
		{Slots: aws.String("12001-16383"), ReplicaCount: aws.Int32(0)}}})
	want := fillCluster(t, clusterClient(t, g), 6000)

	if _, err := c.CreateSnapshot(ctx(t), &elasticache.CreateSnapshotInput{ReplicationGroupId: aws.String("orders"), SnapshotName: aws.String("orders-snap")}); err != nil {
		t.Fatal(err)
	}
	sn := waitSnapshot(t, c, "orders-snap")
	if aws.ToInt32(sn.NumNodeGroups) != 3 || len(sn.NodeSnapshots) != 3 || aws.ToString(sn.ReplicationGroupId) != "orders" || aws.ToString(sn.CacheClusterId) != "" {
		t.Fatalf("snapshot %+v", sn)
	}
	for i, ns := range sn.NodeSnapshots {
		wantSlots := []string{"0-3000", "3001-12000", "12001-16383"}[i]
		if aws.ToString(ns.NodeGroupId) != fmt.Sprintf("%04d", i+1) || ns.NodeGroupConfiguration == nil || aws.ToString(ns.NodeGroupConfiguration.Slots) != wantSlots ||
			aws.ToString(ns.CacheSize) == "" {
			t.Fatalf("node snapshot %d: %+v", i, ns)
		}
	}

	// Restore by name: the new group has the snapshot's slot layout and every key.
	restored := create("orders-copy", &elasticache.CreateReplicationGroupInput{SnapshotName: aws.String("orders-snap"), ReplicasPerNodeGroup: aws.Int32(1)})
	if got := shardSlots(restored); fmt.Sprint(got) != fmt.Sprint(map[string]string{"0001": "0-3000", "0002": "3001-12000", "0003": "12001-16383"}) {
		t.Fatalf("restored slots %v", got)
	}
	checkRestored(t, clusterClient(t, restored), want)

	if endpoint != "" {
		s3c := newS3TestClient(endpoint)
		makeBucket(t, s3c, "shard-exports", "us-east-1")
		if _, err := c.CopySnapshot(ctx(t), &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("orders-snap"),
			TargetSnapshotName: aws.String("orders-x"), TargetBucket: aws.String("shard-exports")}); err != nil {
			t.Fatal(err)
		}
		var arns []string
		for i := 1; i <= 3; i++ {
			key := fmt.Sprintf("orders-x-%04d.rdb", i)
			headObject(t, s3c, "shard-exports", key)
			arns = append(arns, "arn:aws:s3:::shard-exports/"+key)
		}
		objectAbsent(t, s3c, "shard-exports", "orders-x-0004.rdb")
		// From S3 the layout is not known: the slots are split evenly, and a
		// node whose keys fall in another's slots hands them over.
		fromS3 := create("orders-s3", &elasticache.CreateReplicationGroupInput{SnapshotArns: arns, NumNodeGroups: aws.Int32(3)})
		checkRestored(t, clusterClient(t, fromS3), want)
	} else {
		t.Log("moto_server is not on PATH: the S3 export of a sharded snapshot is not tested")
	}

	_, err := c.CreateReplicationGroup(ctx(t), &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String("wrong-count"), ReplicationGroupDescription: aws.String("x"),
		CacheNodeType: aws.String("cache.t3.micro"), SnapshotName: aws.String("orders-snap"), NumNodeGroups: aws.Int32(2)})
	wantAPIError(t, err, "InvalidParameterValue", 400)

	// The final snapshot of a deleted group covers every shard.
	if _, err := c.DeleteReplicationGroup(ctx(t), &elasticache.DeleteReplicationGroupInput{ReplicationGroupId: aws.String("orders"),
		FinalSnapshotIdentifier: aws.String("orders-final")}); err != nil {
		t.Fatal(err)
	}
	final := waitSnapshot(t, c, "orders-final")
	if len(final.NodeSnapshots) != 3 {
		t.Fatalf("final snapshot %+v", final)
	}
	eventually(t, 30*time.Second, func() string {
		_, err := c.DescribeReplicationGroups(ctx(t), &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String("orders")})
		if err == nil {
			return "group still there"
		}
		return ""
	})
	again := create("orders-again", &elasticache.CreateReplicationGroupInput{SnapshotName: aws.String("orders-final")})
	checkRestored(t, clusterClient(t, again), want)
}
