package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestEvenSlots(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 500, ClusterSlots} {
		got := EvenSlots(n)
		if len(got) != n {
			t.Fatalf("EvenSlots(%d): %d shards", n, len(got))
		}
		next, min, max := 0, ClusterSlots, 0
		for i, rs := range got {
			if len(rs) != 1 {
				t.Fatalf("EvenSlots(%d)[%d] = %v: want one range", n, i, rs)
			}
			r := rs[0]
			if r.Start != next || r.End < r.Start {
				t.Fatalf("EvenSlots(%d)[%d] = %v: want a range from %d", n, i, r, next)
			}
			size := r.End - r.Start + 1
			min, max = minInt(min, size), maxInt(max, size)
			next = r.End + 1
		}
		if next != ClusterSlots {
			t.Errorf("EvenSlots(%d) ends at %d", n, next-1)
		}
		if max-min > 1 {
			t.Errorf("EvenSlots(%d): sizes from %d to %d", n, min, max)
		}
	}
	want := [][]SlotRange{{{0, 5461}}, {{5462, 10922}}, {{10923, 16383}}}
	if got := EvenSlots(3); !reflect.DeepEqual(got, want) {
		t.Errorf("EvenSlots(3) = %v, want %v", got, want)
	}
	if got := EvenSlots(2); !reflect.DeepEqual(got, [][]SlotRange{{{0, 8191}}, {{8192, 16383}}}) {
		t.Errorf("EvenSlots(2) = %v", got)
	}
	for _, n := range []int{0, -1, ClusterSlots + 1} {
		if got := EvenSlots(n); got != nil {
			t.Errorf("EvenSlots(%d) = %v, want nil", n, got)
		}
	}
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestParseSlotRanges(t *testing.T) {
	good := []struct {
		in   string
		want []SlotRange
		out  string
	}{
		{"0-5460", []SlotRange{{0, 5460}}, "0-5460"},
		{"0-100,200-300", []SlotRange{{0, 100}, {200, 300}}, "0-100,200-300"},
		{"0-16383", []SlotRange{{0, 16383}}, "0-16383"},
		{" 5 - 9 , 12", []SlotRange{{5, 9}, {12, 12}}, "5-9,12-12"},
		{"7-7", []SlotRange{{7, 7}}, "7-7"},
		{"200-300,0-100,50-250", []SlotRange{{200, 300}, {0, 100}, {50, 250}}, "200-300,0-100,50-250"}, // overlap: not checked
	}
	for _, c := range good {
		got, err := ParseSlotRanges(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSlotRanges(%q) = %v, %v; want %v", c.in, got, err, c.want)
			continue
		}
		if s := FormatSlotRanges(got); s != c.out {
			t.Errorf("FormatSlotRanges(%v) = %q, want %q", got, s, c.out)
		}
		if again, err := ParseSlotRanges(FormatSlotRanges(got)); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("round trip of %q: %v, %v", c.in, again, err)
		}
	}
	for _, in := range []string{"", " ", "0-16384", "16384", "100-50", "-1-5", "a-b", "0-", "-5", "1-2-3",
		"0-100,", ",0-100", "0-100;200-300", "+1-5", "0x10-20", "99999999999999999999-1", "1.5-3"} {
		if got, err := ParseSlotRanges(in); err == nil {
			t.Errorf("ParseSlotRanges(%q) = %v, want an error", in, got)
		}
	}
	if s := FormatSlotRanges(nil); s != "" {
		t.Errorf("FormatSlotRanges(nil) = %q", s)
	}
}

func TestParseClusterNodes(t *testing.T) {
	text := "" +
		"e7d1 127.0.0.1:30004@40004 slave 07c3 0 1 4 connected\n" +
		"67ed 127.0.0.1:30002@40002,host2 master - 0 1 2 connected 5462-10922\n" +
		"07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5000 5001-5461 [93->-292f]\n" +
		"292f 127.0.0.1:30003@40003 master,fail - 0 1 3 disconnected 10923-16383\n" +
		"6ec2 127.0.0.1:30005@40005 slave 67ed 0 1 2 connected\n"
	got, err := parseClusterNodes(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []ClusterShard{
		{Slots: []SlotRange{{0, 5000}, {5001, 5461}}, Nodes: []ClusterNode{
			{ID: "07c3", Addr: "127.0.0.1:30001", Role: "master", Healthy: true},
			{ID: "e7d1", Addr: "127.0.0.1:30004", Role: "replica", Healthy: true}}},
		{Slots: []SlotRange{{5462, 10922}}, Nodes: []ClusterNode{
			{ID: "67ed", Addr: "127.0.0.1:30002", Role: "master", Healthy: true},
			{ID: "6ec2", Addr: "127.0.0.1:30005", Role: "replica", Healthy: true}}},
		{Slots: []SlotRange{{10923, 16383}}, Nodes: []ClusterNode{
			{ID: "292f", Addr: "127.0.0.1:30003", Role: "master", Healthy: false}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseClusterNodes:\n got %+v\nwant %+v", got, want)
	}
	if _, err := parseClusterNodes("abc 127.0.0.1:1@2 master"); err == nil {
		t.Error("a short line was accepted")
	}
}

// clusterPort returns a free port whose cluster bus port (port + 10000) is
// free and valid: redis refuses to start a cluster node on a port above 55535.
func clusterPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		p := freePort(t)
		if p+10000 <= 65535 && portFree(p+10000) {
			return p
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// TestRedisCluster builds a cluster of three shards of two nodes with the
// Clusterer primitives, uses it through a cluster client, fails one shard over
// and restarts a replica from its nodes.conf.
func TestRedisCluster(t *testing.T) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newDriver(t, "redis")
	cl := d.(Clusterer)
	params := map[string]string{"cluster-enabled": "yes", "cluster-node-timeout": "2000"}

	const n = 6 // nodes 0-2 primaries, 3-5 their replicas
	var specs [n]Spec
	var hs [n]Handle
	var ids [n]string
	for i := range hs {
		specs[i] = redisSpec(t, params)
		specs[i].Port = clusterPort(t)
		hs[i] = startNode(t, d, specs[i])
		id, err := cl.ClusterID(ctx, hs[i])
		if err != nil || len(id) != 40 {
			t.Fatalf("ClusterID of node %d: %q, %v", i, id, err)
		}
		ids[i] = id
	}
	if got, err := d.Get(ctx, hs[0], "cluster-node-timeout"); err != nil || got != "2000" {
		t.Errorf("cluster-node-timeout = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(hs[0].Dir, "nodes.conf")); err != nil {
		t.Errorf("nodes.conf is not in the node's Dir: %v", err)
	}
	addr := func(i int) string { return hostPort(hs[i].Host, hs[i].Port) }

	waitFor := func(what string, limit time.Duration, ok func() error) {
		t.Helper()
		start := time.Now()
		for {
			err := ok()
			if err == nil {
				t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > limit || ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	state := func(i int) ClusterView {
		t.Helper()
		v, err := cl.ClusterState(ctx, hs[i])
		if err != nil {
			t.Fatalf("ClusterState of node %d: %v", i, err)
		}
		return v
	}

	// A lone node knows itself and has no slots.
	if v := state(0); v.State != "fail" || v.Known != 1 || len(v.Shards) != 1 || len(v.Shards[0].Slots) != 0 {
		t.Errorf("lone node: %+v", v)
	}
	if err := cl.ClusterMeet(ctx, hs[0], "nonsense"); err == nil {
		t.Error("a meet of nonsense was accepted")
	}
	for i := 1; i < n; i++ {
		if err := cl.ClusterMeet(ctx, hs[0], addr(i)); err != nil {
			t.Fatal(err)
		}
	}
	slots := EvenSlots(3)
	for i := 0; i < 3; i++ {
		if err := cl.ClusterAddSlots(ctx, hs[i], slots[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ClusterAddSlots(ctx, hs[0], []SlotRange{{0, 1}}); err == nil {
		t.Error("slots were assigned twice")
	}
	if err := cl.ClusterAddSlots(ctx, hs[0], []SlotRange{{16383, 16384}}); err == nil {
		t.Error("slot 16384 was accepted")
	}
	waitFor("every node to know the 6", 10*time.Second, func() error {
		for i := range hs {
			if v := state(i); v.Known != n {
				return fmt.Errorf("node %d knows %d", i, v.Known)
			}
		}
		return nil
	})
	// A replica's CLUSTER REPLICATE fails ("Unknown node") until gossip has told
	// it about its primary: retry.
	for i := 3; i < n; i++ {
		waitFor(fmt.Sprintf("node %d to replicate node %d", i, i-3), 10*time.Second, func() error {
			return cl.ClusterReplicate(ctx, hs[i], ids[i-3])
		})
	}
	// wantShards checks v shows the shards with the given primaries (replica of
	// primary p: node (p+3)%6). A replica's health reads "loading" until its
	// replication offset is non-zero, that is until its primary has had a write
	// or sent its first replication PING (repl-ping-replica-period, 10 s):
	// healthy asks for every node to be healthy.
	wantShards := func(v ClusterView, primaries [3]int, healthy bool) error {
		if v.State != "ok" || v.Known != n || len(v.Shards) != 3 {
			return fmt.Errorf("state %s, %d known, %d shards", v.State, v.Known, len(v.Shards))
		}
		for s, sh := range v.Shards {
			p, r := primaries[s], (primaries[s]+3)%6
			if !reflect.DeepEqual(sh.Slots, slots[s]) {
				return fmt.Errorf("shard %d has slots %v, want %v", s, sh.Slots, slots[s])
			}
			if len(sh.Nodes) != 2 {
				return fmt.Errorf("shard %d has %d nodes", s, len(sh.Nodes))
			}
			want := []ClusterNode{{ID: ids[p], Addr: addr(p), Role: "master", Healthy: true},
				{ID: ids[r], Addr: addr(r), Role: "replica", Healthy: true}}
			for k, nd := range sh.Nodes {
				want[k].Offset = nd.Offset
				if !healthy {
					want[k].Healthy = nd.Healthy
				}
			}
			if !reflect.DeepEqual(sh.Nodes, want) {
				return fmt.Errorf("shard %d nodes %+v, want %+v", s, sh.Nodes, want)
			}
		}
		return nil
	}
	waitFor("cluster_state ok with 3 shards of 2 on every node", 20*time.Second, func() error {
		for i := range hs {
			if err := wantShards(state(i), [3]int{0, 1, 2}, false); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
	t.Logf("cluster formed %v after the start", time.Since(begin).Round(time.Millisecond))

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addr(0)}, MaxRedirects: 8})
	defer cc.Close()
	const keys = 10000
	_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := 0; k < keys; k++ {
			p.Set(ctx, "key:"+strconv.Itoa(k), k, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkKeys := func() error {
		cmds, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for k := 0; k < keys; k++ {
				p.Get(ctx, "key:"+strconv.Itoa(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k, c := range cmds {
			if v := c.(*redis.StringCmd).Val(); v != strconv.Itoa(k) {
				return fmt.Errorf("key:%d = %q", k, v)
			}
		}
		return nil
	}
	if err := checkKeys(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := 0; i < 3; i++ {
		sz, err := testClient(t, hs[i], "", 0).DBSize(ctx).Result()
		if err != nil || sz < keys/4 {
			t.Errorf("primary %d holds %d keys, %v", i, sz, err)
		}
		total += int(sz)
	}
	if total != keys {
		t.Errorf("the primaries hold %d keys, want %d", total, keys)
	}
	waitFor("every node healthy on every node", 10*time.Second, func() error {
		for i := range hs {
			if err := wantShards(state(i), [3]int{0, 1, 2}, true); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})

	// Failover of shard 0 to its replica, node 3.
	if err := cl.ClusterFailover(ctx, hs[0]); err == nil {
		t.Error("CLUSTER FAILOVER on a primary succeeded")
	}
	fo := time.Now()
	if err := cl.ClusterFailover(ctx, hs[3]); err != nil {
		t.Fatal(err)
	}
	waitFor("node 3 to be primary of shard 0 on every node", 15*time.Second, func() error {
		for i := range hs {
			if err := wantShards(state(i), [3]int{3, 1, 2}, true); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
	t.Logf("failover done in %v", time.Since(fo).Round(time.Millisecond))
	if rs, err := d.(Replicator).Replication(ctx, hs[3]); err != nil || rs.Role != "master" {
		t.Errorf("node 3 replication %+v, %v", rs, err)
	}
	waitFor("the cluster client to read every key", 10*time.Second, checkKeys)
	if err := cc.Set(ctx, "after-failover", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// A replica restarted in the same Dir comes back from nodes.conf: same ID,
	// same shard, without a new meet.
	if err := d.Stop(ctx, hs[5]); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(hs[5].Dir, "nodes.conf"))
	if err != nil || !strings.Contains(string(conf), ids[5]+" "+addr(5)) {
		t.Fatalf("nodes.conf after stop: %v\n%s", err, conf)
	}
	hs[5] = startNode(t, d, specs[5])
	if id, err := cl.ClusterID(ctx, hs[5]); err != nil || id != ids[5] {
		t.Errorf("restarted node 5 has ID %q (was %q), %v", id, ids[5], err)
	}
	waitFor("the restarted replica to be back in shard 2", 15*time.Second, func() error {
		for i := range hs {
			if err := wantShards(state(i), [3]int{3, 1, 2}, true); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
	t.Logf("whole test %v", time.Since(begin).Round(time.Millisecond))
}

// TestRedisClusterRenamedAndPassword checks the primitives go through a
// renamed CLUSTER and the node's password: a one-shard cluster of two nodes.
func TestRedisClusterRenamedAndPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := newDriver(t, "redis")
	cl := d.(Clusterer)
	params := map[string]string{"cluster-enabled": "yes", "cluster-node-timeout": "2000",
		"rename-commands": "cluster hoard-cluster", "requirepass": "s3cret", "masterauth": "s3cret"}
	var hs [2]Handle
	var ids [2]string
	for i := range hs {
		spec := redisSpec(t, params)
		spec.Port = clusterPort(t)
		hs[i] = startNode(t, d, spec)
		id, err := cl.ClusterID(ctx, hs[i])
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	if err := testClient(t, hs[0], "s3cret", 0).Do(ctx, "CLUSTER", "MYID").Err(); err == nil {
		t.Fatal("CLUSTER is not renamed")
	}
	if err := cl.ClusterMeet(ctx, hs[0], hostPort(hs[1].Host, hs[1].Port)); err != nil {
		t.Fatal(err)
	}
	if err := cl.ClusterAddSlots(ctx, hs[0], EvenSlots(1)[0]); err != nil {
		t.Fatal(err)
	}
	var err error
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if err = cl.ClusterReplicate(ctx, hs[1], ids[0]); err == nil || time.Since(start) > 10*time.Second {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var v ClusterView
	for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(50 * time.Millisecond) {
		if v, err = cl.ClusterState(ctx, hs[1]); err != nil {
			t.Fatal(err)
		}
		if v.State == "ok" && len(v.Shards) == 1 && len(v.Shards[0].Nodes) == 2 && v.Shards[0].Nodes[1].ID == ids[1] {
			break
		}
	}
	if v.State != "ok" || v.Known != 2 || len(v.Shards) != 1 || !reflect.DeepEqual(v.Shards[0].Slots, []SlotRange{{0, 16383}}) ||
		len(v.Shards[0].Nodes) != 2 || v.Shards[0].Nodes[0].ID != ids[0] || v.Shards[0].Nodes[1].Role != "replica" {
		t.Fatalf("cluster state %+v", v)
	}
}
