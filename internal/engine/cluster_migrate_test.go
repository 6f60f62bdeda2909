package engine

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testCluster is a cluster of real redis nodes built for a test.
type testCluster struct {
	tb       testing.TB
	d        Driver
	cl       Clusterer
	hs       []Handle
	ids      []string
	password string
	stopped  map[int]bool // nodes left out of owners
}

// startCluster starts a node per element of slots, a primary owning those
// slots, then a node per element of replicaOf, a replica of that primary
// (an index into slots), and waits until every node sees the whole cluster.
func startCluster(tb testing.TB, ctx context.Context, params map[string]string, slots [][]SlotRange, replicaOf []int) *testCluster {
	tb.Helper()
	p := map[string]string{"cluster-enabled": "yes", "cluster-node-timeout": "2000"}
	for k, v := range params {
		p[k] = v
	}
	d := newDriver(tb, "redis")
	tc := &testCluster{tb: tb, d: d, cl: d.(Clusterer), password: p["requirepass"], stopped: map[int]bool{}}
	n := len(slots) + len(replicaOf)
	for i := 0; i < n; i++ {
		spec := redisSpec(tb, p)
		spec.Port = clusterNodePort(tb)
		h := startNode(tb, d, spec)
		id, err := tc.cl.ClusterID(ctx, h)
		if err != nil {
			tb.Fatal(err)
		}
		tc.hs, tc.ids = append(tc.hs, h), append(tc.ids, id)
		if i > 0 {
			if err := tc.cl.ClusterMeet(ctx, tc.hs[0], tc.addr(i)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for i, rs := range slots {
		if err := tc.cl.ClusterAddSlots(ctx, tc.hs[i], rs); err != nil {
			tb.Fatal(err)
		}
	}
	// CLUSTER REPLICATE answers "Unknown node" until gossip has told the
	// replica about its primary.
	for k, p := range replicaOf {
		r := len(slots) + k
		waitUntil(tb, ctx, "a replica to follow its primary", 10*time.Second, func() error {
			return tc.cl.ClusterReplicate(ctx, tc.hs[r], tc.ids[p])
		})
	}
	waitUntil(tb, ctx, "every node to see the whole cluster", 15*time.Second, func() error {
		for i := range tc.hs {
			v, err := tc.cl.ClusterState(ctx, tc.hs[i])
			if err != nil {
				return err
			}
			nodes := 0
			for _, sh := range v.Shards {
				nodes += len(sh.Nodes)
			}
			if v.State != "ok" || v.Known != n || len(v.Shards) != len(slots) || nodes != n {
				return fmt.Errorf("node %d: %s, knows %d, %d shards of %d nodes", i, v.State, v.Known, len(v.Shards), nodes)
			}
		}
		return nil
	})
	return tc
}

func (tc *testCluster) addr(i int) string { return hostPort(tc.hs[i].Host, tc.hs[i].Port) }

// client returns a cluster client, which follows ASK and MOVED redirects.
func (tc *testCluster) client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{tc.addr(0)}, Password: tc.password,
		MaxRedirects: 16, ReadTimeout: 30 * time.Second})
	tc.tb.Cleanup(func() { cc.Close() })
	return cc
}

// node returns a client of node i alone.
func (tc *testCluster) node(i int) *redis.Client { return testClient(tc.tb, tc.hs[i], tc.password, 0) }

// owners returns, for every node not stopped, the primary ID owning each slot
// in its CLUSTER SHARDS view ("" for none).
func (tc *testCluster) owners(ctx context.Context, slots []int) ([][]string, error) {
	var out [][]string
	for i := range tc.hs {
		if tc.stopped[i] {
			continue
		}
		v, err := tc.cl.ClusterState(ctx, tc.hs[i])
		if err != nil {
			return nil, err
		}
		own := make([]string, len(slots))
		for _, sh := range v.Shards {
			for _, r := range sh.Slots {
				for k, s := range slots {
					if s >= r.Start && s <= r.End && len(sh.Nodes) > 0 {
						own[k] = sh.Nodes[0].ID
					}
				}
			}
		}
		out = append(out, own)
	}
	return out, nil
}

// waitOwned waits until every node not stopped sees primary p owning slots.
func (tc *testCluster) waitOwned(ctx context.Context, p int, slots []int) {
	tc.tb.Helper()
	waitUntil(tc.tb, ctx, fmt.Sprintf("%d slots owned by node %d in every view", len(slots), p), 10*time.Second, func() error {
		views, err := tc.owners(ctx, slots)
		if err != nil {
			return err
		}
		for _, own := range views {
			for k, id := range own {
				if id != tc.ids[p] {
					return fmt.Errorf("a node sees slot %d owned by %q", slots[k], id)
				}
			}
		}
		return nil
	})
}

// checkSettled checks no node of the cluster has an open slot and src holds no
// key in slots.
func (tc *testCluster) checkSettled(ctx context.Context, src int, slots []int) {
	tc.tb.Helper()
	tc.checkNoOpenSlots(ctx)
	if n := countKeysInSlots(tc.tb, ctx, tc.node(src), "CLUSTER", slots); n != 0 {
		tc.tb.Errorf("node %d still holds %d keys in the moved slots", src, n)
	}
}

func (tc *testCluster) checkNoOpenSlots(ctx context.Context) {
	tc.tb.Helper()
	for i := range tc.hs {
		mig, imp, err := tc.cl.ClusterOpenSlots(ctx, tc.hs[i])
		if err != nil {
			tc.tb.Fatal(err)
		}
		if len(mig) != 0 || len(imp) != 0 {
			tc.tb.Errorf("node %d: migrating %v, importing %v", i, mig, imp)
		}
	}
}

// countKeysInSlots sums CLUSTER COUNTKEYSINSLOT, CLUSTER named cluster.
func countKeysInSlots(tb testing.TB, ctx context.Context, c *redis.Client, cluster string, slots []int) int64 {
	tb.Helper()
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range slots {
			p.Do(ctx, cluster, "COUNTKEYSINSLOT", s)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, c := range cmds {
		k, _ := c.(*redis.Cmd).Int64()
		n += k
	}
	return n
}

func waitUntil(tb testing.TB, ctx context.Context, what string, limit time.Duration, ok func() error) {
	tb.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		err := ok()
		if err == nil {
			return
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			tb.Fatalf("timed out waiting for %s: %v", what, err)
		}
	}
}

// clusterNodePort is clusterPort for benchmarks too: a free port whose
// cluster bus port (port + 10000) is free and valid.
func clusterNodePort(tb testing.TB) int {
	tb.Helper()
	for i := 0; i < 200; i++ {
		if p := freePort(tb); p+10000 <= 65535 && portFree(p+10000) {
			return p
		}
	}
	tb.Fatal("no free port pair for a cluster node")
	return 0
}

// slotTags returns a hash tag for each slot: keys "{tag}..." hash to it.
func slotTags(slots []int) map[int]string {
	want := map[int]bool{}
	for _, s := range slots {
		want[s] = true
	}
	tags := map[int]string{}
	for i := 0; len(tags) < len(want); i++ {
		tag := "t" + strconv.Itoa(i)
		if s := KeySlot(tag); want[s] && tags[s] == "" {
			tags[s] = tag
		}
	}
	return tags
}

func slotRange(start, end int) []int {
	out := make([]int, 0, end-start+1)
	for s := start; s <= end; s++ {
		out = append(out, s)
	}
	return out
}

// setKeys writes values, with a TTL when ttl > 0.
func setKeys(tb testing.TB, ctx context.Context, cc redis.Cmdable, values map[string]string, ttl time.Duration) {
	tb.Helper()
	_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, v := range values {
			p.Set(ctx, k, v, ttl)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// checkValues reads every key.
func checkValues(tb testing.TB, ctx context.Context, cc redis.Cmdable, want map[string]string) {
	tb.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	cmds, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Get(ctx, k)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	bad := 0
	for i, c := range cmds {
		if got := c.(*redis.StringCmd).Val(); got != want[keys[i]] {
			if bad++; bad <= 5 {
				tb.Errorf("%s = %q, want %q", keys[i], got, want[keys[i]])
			}
		}
	}
	if bad > 0 {
		tb.Errorf("%d of %d keys wrong", bad, len(want))
	}
}

func TestParseNodeSelf(t *testing.T) {
	text := "" +
		"67ed 127.0.0.1:30002@40002 master - 0 1 2 connected 5462-10922\n" +
		"07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-2 5 [3->-67ed] [7-<-292f]\n"
	got, err := parseNodeSelf(text)
	if err != nil {
		t.Fatal(err)
	}
	owns := []int{}
	for s, ok := range got.owns {
		if ok {
			owns = append(owns, s)
		}
	}
	if got.id != "07c3" || !got.primary || !reflect.DeepEqual(owns, []int{0, 1, 2, 5}) ||
		!reflect.DeepEqual(got.migrating, map[int]string{3: "67ed"}) || !reflect.DeepEqual(got.importing, map[int]string{7: "292f"}) {
		t.Errorf("parseNodeSelf: %+v (owns %v)", got, owns)
	}
	if got.epoch != 1 || !reflect.DeepEqual(got.epochs, map[string]uint64{"67ed": 2, "07c3": 1}) {
		t.Errorf("epochs: own %d, known %v", got.epoch, got.epochs)
	}
	// A node whose address a new node took (noaddr) is never marked failing:
	// it is not a live primary, nor is a failing one.
	live := livePrimaries(text + "292f :0@0 master,noaddr - 0 0 3 connected\n" + "5a5a 127.0.0.1:30003@40003 master,fail - 0 0 5 connected\n")
	if !reflect.DeepEqual(live, map[string]bool{"67ed": true, "07c3": true}) {
		t.Errorf("livePrimaries: %v", live)
	}
	replica, err := parseNodeSelf("e7d1 127.0.0.1:30004@40004 myself,slave 07c3 0 1 4 connected\n")
	if err != nil || replica.primary || replica.id != "e7d1" || replica.master != "07c3" || replica.epoch != 4 {
		t.Errorf("replica: %+v, %v", replica, err)
	}
	for _, bad := range []string{"", "07c3 127.0.0.1:1@2 master - 0 0 1 connected 0-2",
		"07c3 127.0.0.1:1@2 myself,master - 0 0 1 connected [3-x-67ed]",
		"07c3 127.0.0.1:1@2 myself,master - 0 0 1 connected [16384->-67ed]"} {
		if s, err := parseNodeSelf(bad); err == nil {
			t.Errorf("parseNodeSelf(%q) = %+v", bad, s)
		}
	}
}

// TestClusterMigrateSlots moves 4000 slots (a third of them empty) with their
// keys between two of three primaries while clients keep writing.
func TestClusterMigrateSlots(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Nodes 0-2 primaries, node 3 a replica of node 1, the destination.
	tc := startCluster(t, ctx, nil, EvenSlots(3), []int{1})
	const src, dst, other, dstReplica = 0, 1, 2, 3
	cl, hs := tc.cl, tc.hs
	cc := tc.client()

	const keys = 20000
	initial, withTTL := map[string]string{}, map[string]string{}
	for i := 0; i < keys; i++ {
		k := "key:" + strconv.Itoa(i)
		if i%3 == 0 {
			withTTL[k] = "v0:" + strconv.Itoa(i)
		} else {
			initial[k] = "v0:" + strconv.Itoa(i)
		}
	}
	setKeys(t, ctx, cc, initial, 0)
	setKeys(t, ctx, cc, withTTL, time.Hour)
	for k, v := range withTTL {
		initial[k] = v
	}
	// Other types, in a moved slot.
	tag := "{" + slotTags([]int{7})[7] + "}"
	types := map[string]string{tag + "h": "hash", tag + "l": "list", tag + "s": "set", tag + "z": "zset", tag + "x": "stream"}
	_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, tag+"h", "f", "x")
		p.RPush(ctx, tag+"l", "a", "b")
		p.SAdd(ctx, tag+"s", "a")
		p.ZAdd(ctx, tag+"z", redis.Z{Score: 1, Member: "a"})
		p.XAdd(ctx, &redis.XAddArgs{Stream: tag + "x", Values: []string{"f", "v"}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	moving := slotRange(0, 3999)
	var movingKeys []string // initial keys in the moved slots
	for k := range initial {
		if KeySlot(k) < 4000 {
			movingKeys = append(movingKeys, k)
		}
	}
	// Calls that must fail before they change anything.
	do := func(i int, args ...any) {
		t.Helper()
		if err := tc.node(i).Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	do(dst, "CLUSTER", "SETSLOT", 4000, "IMPORTING", tc.ids[other])
	do(src, "CLUSTER", "SETSLOT", 1, "MIGRATING", tc.ids[other])
	for _, c := range []struct {
		name     string
		from, to int
		slots    []int
	}{
		{"slot 16384", src, dst, []int{0, 16384}},
		{"slot -1", src, dst, []int{-1}},
		{"src is dst", src, src, []int{0}},
		{"dst is a replica", src, dstReplica, []int{0}},
		{"a slot of another primary", src, dst, []int{0, 12000}},
		{"dst imports a slot from another", src, dst, []int{0, 4000}},
		{"src migrates a slot to another", src, dst, []int{0, 1}},
	} {
		if n, err := cl.ClusterMigrateSlots(ctx, hs[c.from], hs[c.to], c.slots, nil); err == nil || n != 0 {
			t.Errorf("%s: %d keys moved, error %v", c.name, n, err)
		}
	}
	do(dst, "CLUSTER", "SETSLOT", 4000, "STABLE")
	do(src, "CLUSTER", "SETSLOT", 1, "STABLE")
	tc.checkNoOpenSlots(ctx)

	// Writers through their own cluster client: new keys and new values of
	// keys, all in the moved slots. A write that failed may or may not have
	// happened: its key may hold either value.
	wcc := tc.client()
	movingTags := slotTags(moving)
	var (
		mu        sync.Mutex
		acked     = map[string]string{}
		uncertain = map[string]string{}
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	const writers = 4
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := "{"+movingTags[(i*writers+w)%len(moving)]+"}"+strconv.Itoa(w)+":"+strconv.Itoa(i), "n"
				if j := i/2*writers + w; i%2 == 1 && j < len(movingKeys) {
					k, v = movingKeys[j], "v1"
				}
				err := wcc.Set(ctx, k, v, 0).Err()
				mu.Lock()
				if err == nil {
					acked[k] = v
				} else {
					uncertain[k] = v
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	moved, err := cl.ClusterMigrateSlots(ctx, hs[src], hs[dst], moving, []Handle{hs[other]})
	took := time.Since(start)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	asking := commandCalls(t, ctx, tc.node(dst), "asking")
	t.Logf("moved %d keys in %v; %d concurrent writes acknowledged, %d failed; dst answered %d ASKING",
		moved, took.Round(time.Millisecond), len(acked), len(uncertain), asking)
	if base := len(movingKeys) + len(types); moved < int64(base) || moved > int64(base+len(acked)+len(uncertain)) {
		t.Errorf("moved %d keys, want %d plus at most the new ones", moved, base)
	}
	if len(uncertain) > len(acked)/100 {
		t.Errorf("%d of %d concurrent writes failed", len(uncertain), len(uncertain)+len(acked))
	}

	want := map[string]string{}
	for k, v := range initial {
		want[k] = v
	}
	for k, v := range acked {
		want[k] = v
	}
	for k := range uncertain {
		delete(want, k)
	}
	checkValues(t, ctx, cc, want)
	for k, typ := range types {
		if got, err := cc.Type(ctx, k).Result(); got != typ || err != nil {
			t.Errorf("%s: type %q, %v", k, got, err)
		}
	}
	ttls, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range withTTL {
			if _, ok := want[k]; ok && want[k] == initial[k] { // not rewritten
				p.TTL(ctx, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ttls {
		if d := c.(*redis.DurationCmd).Val(); d < 59*time.Minute || d > time.Hour {
			t.Errorf("%v: TTL %v", c.Args(), d)
			break
		}
	}
	tc.waitOwned(ctx, dst, moving)
	tc.checkSettled(ctx, src, moving)
	waitUntil(t, ctx, "the replica of dst to hold dst's keys", 10*time.Second, func() error {
		a, b := tc.node(dst).DBSize(ctx).Val(), tc.node(dstReplica).DBSize(ctx).Val()
		if a != b {
			return fmt.Errorf("dst holds %d keys, its replica %d", a, b)
		}
		return nil
	})

	// Again: nothing left to move.
	if n, err := cl.ClusterMigrateSlots(ctx, hs[src], hs[dst], moving, []Handle{hs[other]}); n != 0 || err != nil {
		t.Errorf("second call: %d keys moved, %v", n, err)
	}
}

// commandCalls returns the number of calls of a command on a node (INFO
// commandstats).
func commandCalls(tb testing.TB, ctx context.Context, c *redis.Client, name string) int {
	tb.Helper()
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	_, rest, ok := strings.Cut(info, "cmdstat_"+name+":calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	return n
}

// TestClusterMigrateSlotsResume calls ClusterMigrateSlots on slots that
// earlier moves left at each step, with a password and renamed commands, then
// drains the source, which redis turns into a replica.
func TestClusterMigrateSlotsResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tc := startCluster(t, ctx, map[string]string{"requirepass": "pw", "masterauth": "pw",
		"rename-commands": "CLUSTER hc MIGRATE hm"}, EvenSlots(2), nil)
	const src, dst = 0, 1
	cl, hs, ids := tc.cl, tc.hs, tc.ids
	// CLUSTER renamed, no cluster client works: each key is read and written
	// on the node that should hold it.
	s, d := tc.node(src), tc.node(dst)
	onNodes := func(want map[string]string, onDst func(slot int) bool, f func(redis.Cmdable, map[string]string)) {
		part := [2]map[string]string{{}, {}}
		for k, v := range want {
			if onDst(KeySlot(k)) {
				part[1][k] = v
			} else {
				part[0][k] = v
			}
		}
		f(s, part[0])
		f(d, part[1])
	}
	// A dead node among the others: skipped.
	dead := startNode(t, tc.d, redisSpec(t, nil))
	if err := tc.d.Stop(ctx, dead); err != nil {
		t.Fatal(err)
	}

	const (
		half      = 100 // IMPORTING and MIGRATING set, some keys moved
		dstOwns   = 101 // every key moved, SETSLOT NODE on dst only
		importing = 102 // IMPORTING on dst only
		migrating = 103 // MIGRATING on src only
		untouched = 104
		done      = 105 // moved by an earlier call
		unclaimed = 106 // every key moved, import dropped on dst (see claim)
		perSlot   = 300
	)
	slots := slotRange(100, 199)
	tags := slotTags(slots)
	want := map[string]string{}
	keysOf := map[int][]string{}
	for _, sl := range slots[:7] {
		for i := 0; i < perSlot; i++ {
			k := "{" + tags[sl] + "}" + strconv.Itoa(i)
			want[k] = "v0"
			keysOf[sl] = append(keysOf[sl], k)
		}
	}
	for i := 0; i < 2000; i++ { // everywhere but slots, for the drain below
		if k := "k" + strconv.Itoa(i); KeySlot(k) < slots[0] || KeySlot(k) > slots[len(slots)-1] {
			want[k] = "v0"
		}
	}
	onNodes(want, func(s int) bool { return s >= ClusterSlots/2 }, func(c redis.Cmdable, m map[string]string) { setKeys(t, ctx, c, m, 0) })

	if n, err := cl.ClusterMigrateSlots(ctx, hs[src], hs[dst], []int{done}, nil); n != perSlot || err != nil {
		t.Fatalf("first move: %d keys, %v", n, err)
	}
	do := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	hm := func(opts []any, keys []string) {
		t.Helper()
		args := append([]any{"hm", "127.0.0.1", hs[dst].Port, "", 0, 5000}, opts...)
		args = append(args, "AUTH", "pw", "KEYS")
		for _, k := range keys {
			args = append(args, k)
		}
		do(s, args...)
	}
	for _, sl := range []int{half, dstOwns, importing, unclaimed} {
		do(d, "hc", "SETSLOT", sl, "IMPORTING", ids[src])
	}
	for _, sl := range []int{half, dstOwns, migrating, unclaimed} {
		do(s, "hc", "SETSLOT", sl, "MIGRATING", ids[dst])
	}
	hm(nil, keysOf[half][:150])
	// A MIGRATE that failed after dst restored the keys (a timeout) leaves
	// them on both; then they are written on src, where writes to them go.
	hm([]any{"COPY"}, keysOf[half][150:170])
	for _, k := range keysOf[half][150:170] {
		do(s, "SET", k, "v2")
		want[k] = "v2"
	}
	hm(nil, keysOf[dstOwns])
	do(d, "hc", "SETSLOT", dstOwns, "NODE", ids[dst])
	hm(nil, keysOf[unclaimed])
	do(d, "hc", "SETSLOT", unclaimed, "STABLE")

	mig, imp, err := cl.ClusterOpenSlots(ctx, hs[src])
	if err != nil || !reflect.DeepEqual(mig, map[int]string{half: ids[dst], dstOwns: ids[dst], migrating: ids[dst], unclaimed: ids[dst]}) || len(imp) != 0 {
		t.Errorf("src open slots: %v %v, %v", mig, imp, err)
	}
	mig, imp, err = cl.ClusterOpenSlots(ctx, hs[dst])
	if err != nil || !reflect.DeepEqual(imp, map[int]string{half: ids[src], importing: ids[src]}) || len(mig) != 0 {
		t.Errorf("dst open slots: %v %v, %v", mig, imp, err)
	}

	left := countKeysInSlots(t, ctx, s, "hc", slots)
	if left != perSlot*3+150 {
		t.Fatalf("%d keys left on src", left)
	}
	n, err := cl.ClusterMigrateSlots(ctx, hs[src], hs[dst], slots, []Handle{dead})
	if err != nil || n != left {
		t.Fatalf("resumed move: %d keys moved (want %d), %v", n, left, err)
	}
	onNodes(want, func(s int) bool { return s >= ClusterSlots/2 || s >= 100 && s <= 199 },
		func(c redis.Cmdable, m map[string]string) { checkValues(t, ctx, c, m) })
	tc.waitOwned(ctx, dst, slots)
	for i := range hs {
		if mig, imp, err := cl.ClusterOpenSlots(ctx, hs[i]); err != nil || len(mig)+len(imp) != 0 {
			t.Errorf("node %d open slots: %v %v, %v", i, mig, imp, err)
		}
	}
	if n := countKeysInSlots(t, ctx, s, "hc", slots); n != 0 {
		t.Errorf("src still holds %d keys of the moved slots", n)
	}

	// Drain the source: every slot it has left. Redis turns it into a
	// replica of dst; a call again finds nothing to do.
	all := slotRange(0, ClusterSlots/2-1)
	start := time.Now()
	n, err = cl.ClusterMigrateSlots(ctx, hs[src], hs[dst], all, []Handle{dead})
	t.Logf("drained %d slots, %d keys in %v", len(all), n, time.Since(start).Round(time.Millisecond))
	if err != nil || n == 0 {
		t.Fatalf("drain: %d keys, %v", n, err)
	}
	waitUntil(t, ctx, "the drained source to become a replica", 10*time.Second, func() error {
		if rs, err := tc.d.(Replicator).Replication(ctx, hs[src]); err != nil || rs.Role == "master" {
			return fmt.Errorf("%+v, %v", rs, err)
		}
		return nil
	})
	if n, err := cl.ClusterMigrateSlots(ctx, hs[src], hs[dst], all, nil); n != 0 || err != nil {
		t.Errorf("drain again: %d keys, %v", n, err)
	}
	checkValues(t, ctx, d, want)
	if got := d.DBSize(ctx).Val(); got != int64(len(want)) {
		t.Errorf("dst holds %d keys, want %d", got, len(want))
	}
}

// TestClusterTakeoverForget replaces a dead primary by its replica, then has
// the remaining nodes forget it.
func TestClusterTakeoverForget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc := startCluster(t, ctx, nil, EvenSlots(2), []int{0})
	const primary, other, replica = 0, 1, 2
	cl, hs, ids := tc.cl, tc.hs, tc.ids

	if err := cl.ClusterTakeover(ctx, hs[primary]); err == nil {
		t.Error("a takeover on a primary succeeded")
	}
	if err := cl.ClusterForget(ctx, hs[replica], ids[primary]); err == nil {
		t.Error("a replica forgot its primary")
	}
	if err := cl.ClusterForget(ctx, hs[other], ids[other]); err == nil {
		t.Error("a node forgot itself")
	}

	if err := tc.d.Stop(ctx, hs[primary]); err != nil {
		t.Fatal(err)
	}
	if err := cl.ClusterTakeover(ctx, hs[replica]); err != nil {
		t.Fatal(err)
	}
	slots := slotRange(0, ClusterSlots/2-1)
	tc.stopped[primary] = true
	tc.waitOwned(ctx, replica, slots)
	if rs, err := tc.d.(Replicator).Replication(ctx, hs[replica]); err != nil || rs.Role != "master" {
		t.Errorf("after the takeover: %+v, %v", rs, err)
	}

	for round := 0; round < 2; round++ { // the second: already forgotten
		for _, i := range []int{other, replica} {
			if err := cl.ClusterForget(ctx, hs[i], ids[primary]); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	for _, i := range []int{other, replica} {
		v, err := cl.ClusterState(ctx, hs[i])
		if err != nil || v.Known != 2 || v.State != "ok" {
			t.Errorf("node %d after forget: %+v, %v", i, v, err)
		}
	}
}

// BenchmarkClusterMigrateSlots moves 100,000 keys of 1000 slots from one
// primary to the other, and, when redis-cli is installed, back with redis-cli
// --cluster reshard: keys/s and redis-cli-keys/s.
func BenchmarkClusterMigrateSlots(b *testing.B) {
	ctx := context.Background()
	tc := startCluster(b, ctx, nil, EvenSlots(2), nil)
	const src, dst, keys = 0, 1, 100000
	slots := slotRange(0, 999)
	tags := slotTags(slots)
	values := map[string]string{}
	for i := 0; i < keys; i++ {
		values["{"+tags[i%len(slots)]+"}"+strconv.Itoa(i)] = "value-" + strconv.Itoa(i)
	}
	setKeys(b, ctx, tc.client(), values, 0)
	cli, _ := exec.LookPath("redis-cli")

	var ours, theirs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		n, err := tc.cl.ClusterMigrateSlots(ctx, tc.hs[src], tc.hs[dst], slots, nil)
		ours += time.Since(start)
		if err != nil || n != keys {
			b.Fatalf("%d keys moved, %v", n, err)
		}
		b.StopTimer()
		// Back to src for the next round: with redis-cli, which moves dst's
		// lowest slots, the same 1000.
		if cli == "" {
			if _, err := tc.cl.ClusterMigrateSlots(ctx, tc.hs[dst], tc.hs[src], slots, nil); err != nil {
				b.Fatal(err)
			}
		} else {
			cmd := exec.Command(cli, "--cluster", "reshard", tc.addr(dst), "--cluster-from", tc.ids[dst],
				"--cluster-to", tc.ids[src], "--cluster-slots", strconv.Itoa(len(slots)), "--cluster-yes")
			cmd.Stdout = io.Discard
			var stderr strings.Builder
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("redis-cli: %v: %s", err, stderr.String())
			}
			theirs += time.Since(start)
		}
		tc.waitOwned(ctx, src, slots)
		if n := countKeysInSlots(b, ctx, tc.node(src), "CLUSTER", slots); n != keys {
			b.Fatalf("src holds %d keys after the move back", n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(keys*b.N)/ours.Seconds(), "keys/s")
	if theirs > 0 {
		b.ReportMetric(float64(keys*b.N)/theirs.Seconds(), "redis-cli-keys/s")
	}
}
