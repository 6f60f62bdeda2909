package main

// The clustermode scenario: replication groups with cluster mode enabled, each
// a real Redis Cluster. How long a group of 3 node groups of a primary and 2
// replicas takes to become available; how long writes to one node group's
// slots stop, as a go-redis ClusterClient sees it, when that node group's
// primary is killed -9, and how many acknowledged writes are lost; and how fast
// ModifyReplicationGroupShardConfiguration moves slots and keys from 3 to 4
// node groups and from 4 to 2, against redis-cli --cluster rebalance doing the
// same on a plain Redis Cluster the harness builds (clustermode_reshard.go).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/redis/go-redis/v9"
)

var reshardKeys = flag.Int("reshard-keys", 200000, "clustermode: keys (100-byte values) in the group before each resharding")

const (
	// hoard's nodes and configuration endpoints; their cluster bus ports are
	// 38000-38899. The baseline cluster's 4 nodes take the first free ports
	// of 28900-28999 (bus 38900-38999).
	cmNodePorts = "28000-28899"
	cmBasePort  = 28900
	cmBaseLast  = 28999
	cmShards    = 3
	cmReplicas  = 2
	cmValueLen  = 100
	cmPoll      = 20 * time.Millisecond // DescribeReplicationGroups while resharding
	cmBudget    = 5 * time.Minute       // one resharding
	cmSettle    = 500 * time.Millisecond
	cmProbe     = 10 * time.Millisecond // the server-side probe after a kill
)

// cmFailover is one kill -9 of a node group's primary.
type cmFailover struct {
	victim, oldAddr, newAddr string
	pid                      int
	promoted                 time.Duration // kill -> a survivor's CLUSTER SLOTS names a new primary that took a direct SET
	restarted                time.Duration // kill -> the killed node's address answers PING again (hoard restarted it)
	accepted                 time.Duration // kill -> a ClusterClient write (sent after the kill) to the node group's slots acked
	rejoined                 time.Duration // kill -> the killed node is a replica with its link up
	available                time.Duration // kill -> DescribeReplicationGroups says available again
	errs, otherErrs          int           // failed writes to the node group, to the others
	ackedBefore, lostBefore  int           // writes to the node group sent before the kill and acked
	ackedAfter, lostAfter    int           // ... sent after the kill
	otherAcked, otherLost    int           // writes to the other node groups
	firstErr, lastErr        string        // of the node group's lane
}

// cmHoard is what one hoard measured.
type cmHoard struct {
	label                string
	creates, calls, gone []time.Duration
	failovers            []cmFailover
	logNotes             []string
}

func runClusterMode(ctx context.Context, bin, tmp string) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return err
	}
	cli, cliErr := exec.LookPath("redis-cli")
	redis.SetLogger(quietLogger{}) // go-redis logs every failed dial; the lanes count them
	// Each hoard's engines and the baseline's servers are stopped by PID on
	// the way; anything still running under tmp at the end is a bug, ended here.
	defer func() {
		if left := killEngines(tmp); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "bench: killed %d processes left running under %s: %s\n", len(left), tmp, procList(left))
		}
	}()
	load0 := loadAvg()
	fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; hoard, its engines, the baseline cluster, redis-cli and the harness share the machine; load average %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), load0)
	if cliErr != nil {
		fmt.Printf("redis-cli is not on PATH (%v): the resharding baseline is skipped\n", cliErr)
		cli = ""
	}
	var hoards []*cmHoard
	var rs *reshardResults
	for i, h := range []struct {
		dir, prefix, label string
		flags              []string
	}{
		{"ri-200ms", "c200", "--reconcile-interval 200ms", []string{"--reconcile-interval", "200ms"}},
		{"ri-default", "c1s", "--reconcile-interval 1s (the default)", nil},
	} {
		r := &cmHoard{label: h.label}
		hoards = append(hoards, r)
		dir := filepath.Join(tmp, h.dir)
		err := withGroupHoard(ctx, bin, dir, cmNodePorts, 4, h.flags, func(e *rgEnv) (err error) {
			if err := e.cmCreatesAndFailovers(ctx, r, h.prefix); err != nil {
				return err
			}
			if i == 1 { // resharding with the default interval, as a user would run hoard
				rs, err = e.reshards(ctx, cli, filepath.Join(tmp, "baseline"))
			}
			return err
		})
		r.logNotes = hoardLogProblems(filepath.Join(dir, "hoard.log"))
		if err != nil {
			printLogNotes(r)
			return err
		}
	}

	fmt.Printf("\n== clustermode: results (median, min-max of %d runs); load average before %s, after %s\n", *snapReps, load0, loadAvg())
	fmt.Printf("create -> available, %d node groups x (1 primary + %d replicas) = %d nodes, %s:\n", cmShards, cmReplicas, cmShards*(1+cmReplicas), nodeType)
	for _, h := range hoards {
		fmt.Printf("  %-38s %s   every run: %s   (CreateReplicationGroup call %s, delete -> gone %s)\n",
			h.label, mmm(h.creates), durs(h.creates), ms(median(h.calls)), secs(median(h.gone)))
	}
	fmt.Printf("failover: kill -9 of one node group's primary while 3 go-redis ClusterClient lanes (one per node group) write unique keys through the ConfigurationEndpoint:\n")
	for _, h := range hoards {
		pick := func(f func(cmFailover) time.Duration) []time.Duration {
			var out []time.Duration
			for _, x := range h.failovers {
				out = append(out, f(x))
			}
			return out
		}
		ints := func(f func(cmFailover) int) []int {
			var out []int
			for _, x := range h.failovers {
				out = append(out, f(x))
			}
			return out
		}
		fmt.Printf("  %s:\n", h.label)
		for _, row := range []struct {
			name string
			f    func(cmFailover) time.Duration
		}{
			{"kill -> new primary takes a direct SET", func(f cmFailover) time.Duration { return f.promoted }},
			{"kill -> killed node restarted (PING)", func(f cmFailover) time.Duration { return f.restarted }},
			{"kill -> ClusterClient write accepted", func(f cmFailover) time.Duration { return f.accepted }},
			{"kill -> killed node replicating", func(f cmFailover) time.Duration { return f.rejoined }},
			{"kill -> group available", func(f cmFailover) time.Duration { return f.available }},
		} {
			d := pick(row.f)
			fmt.Printf("    %-40s %s   every run: %s\n", row.name, mmm(d), durs(d))
		}
		fmt.Printf("    failed writes to the node group %v, to the other node groups %v\n", ints(func(f cmFailover) int { return f.errs }), ints(func(f cmFailover) int { return f.otherErrs }))
		fmt.Printf("    acked writes to the node group sent before the kill %v, lost %v (replication is asynchronous); sent after the kill %v, lost %v; other node groups %v, lost %v\n",
			ints(func(f cmFailover) int { return f.ackedBefore }), ints(func(f cmFailover) int { return f.lostBefore }),
			ints(func(f cmFailover) int { return f.ackedAfter }), ints(func(f cmFailover) int { return f.lostAfter }),
			ints(func(f cmFailover) int { return f.otherAcked }), ints(func(f cmFailover) int { return f.otherLost }))
	}
	if rs != nil {
		rs.print()
	}
	for _, h := range hoards {
		printLogNotes(h)
	}
	return nil
}

// cmCreatesAndFailovers creates -reps groups of 3 node groups x 2 replicas,
// one at a time; on each kills a node group's primary (the first node group
// in the first run, the second in the second, ...), then deletes it.
func (e *rgEnv) cmCreatesAndFailovers(ctx context.Context, r *cmHoard, prefix string) error {
	fmt.Printf("\n== clustermode: create -> available and failover, hoard with %s, %d runs\n", r.label, *snapReps)
	for i := 1; i <= *snapReps; i++ {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		call, avail, g, err := e.cmCreate(ctx, id, cmReplicas)
		if err != nil {
			return err
		}
		r.creates, r.calls = append(r.creates, avail), append(r.calls, call)
		fmt.Printf("  %s: CreateReplicationGroup call %s, available after %s; slots %s\n", id, ms(call), secs(avail), layoutString(g))
		f, err := e.cmFailover(ctx, g, fmt.Sprintf("%04d", (i-1)%cmShards+1))
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		r.failovers = append(r.failovers, f)
		gone, err := e.delete(ctx, id)
		if err != nil {
			return err
		}
		r.gone = append(r.gone, gone)
		fmt.Printf("  %s: killed node group %s's primary %s (pid %d); a new primary (%s) took a direct SET after %s; the killed node answered PING after %s; the ClusterClient's writes after %s "+
			"(%d failed meanwhile, %d to the other node groups); killed node replicating after %s, group available after %s; "+
			"acked writes lost: %d of %d sent before the kill, %d of %d after, %d of %d to other node groups; delete -> gone %s\n",
			id, f.victim, f.oldAddr, f.pid, f.newAddr, secs(f.promoted), secs(f.restarted), secs(f.accepted), f.errs, f.otherErrs, secs(f.rejoined), secs(f.available),
			f.lostBefore, f.ackedBefore, f.lostAfter, f.ackedAfter, f.otherLost, f.otherAcked, secs(gone))
		if f.firstErr != "" {
			fmt.Printf("      the node group's lane: first error %q, last %q\n", f.firstErr, f.lastErr)
		}
	}
	return nil
}

// cmCreate sends CreateReplicationGroup for a group of cmShards node groups
// and polls until it is available.
func (e *rgEnv) cmCreate(ctx context.Context, id string, replicas int32) (call, avail time.Duration, g *types.ReplicationGroup, err error) {
	t0 := time.Now()
	_, err = e.ec.CreateReplicationGroup(ctx, &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String(id),
		ReplicationGroupDescription: aws.String("bench"), Engine: aws.String("redis"), CacheNodeType: aws.String(nodeType),
		NumNodeGroups: aws.Int32(cmShards), ReplicasPerNodeGroup: aws.Int32(replicas)})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("CreateReplicationGroup %s: %w", id, err)
	}
	call = time.Since(t0)
	at, err := e.await(ctx, id, "available")
	if err != nil {
		return call, 0, nil, err
	}
	if g, err = e.describe(ctx, id); err == nil && (g == nil || g.ConfigurationEndpoint == nil || len(g.NodeGroups) != cmShards) {
		err = fmt.Errorf("replication group %s: want %d node groups and a ConfigurationEndpoint, got %+v", id, cmShards, g)
	}
	return call, at.Sub(t0), g, err
}

func endpoint(p *types.Endpoint) string {
	return fmt.Sprintf("%s:%d", aws.ToString(p.Address), aws.ToInt32(p.Port))
}

// cmClient is a go-redis ClusterClient that finds the cluster through the
// group's ConfigurationEndpoint. Short timeouts and no dial retries, so that a
// write to a dead node fails fast and the lane tries again.
func cmClient(g *types.ReplicationGroup) *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{endpoint(g.ConfigurationEndpoint)},
		DialTimeout: 500 * time.Millisecond, ReadTimeout: rgWriteTO, WriteTimeout: rgWriteTO,
		DialerRetries: 1, MaxRetryBackoff: 100 * time.Millisecond})
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// cmAck is an acknowledged write.
type cmAck struct {
	key         string
	sent, acked time.Time
}

// cmLane writes unique keys (the value is the key) whose slots are one node
// group's, one at a time through the ClusterClient, until stopped.
type cmLane struct {
	prefix            string
	slots             []bool
	n                 int
	mu                sync.Mutex
	acks              []cmAck
	errs              int
	firstErr, lastErr string
}

func (l *cmLane) next() string {
	for {
		k := l.prefix + strconv.Itoa(l.n)
		if l.n++; l.slots[engine.KeySlot(k)] {
			return k
		}
	}
}

func (l *cmLane) run(cc *redis.ClusterClient, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		k, t0 := l.next(), time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*rgWriteTO)
		err := cc.Set(ctx, k, k, 0).Err()
		cancel()
		l.mu.Lock()
		if err == nil {
			l.acks = append(l.acks, cmAck{key: k, sent: t0, acked: time.Now()})
		} else {
			l.errs++
			if l.lastErr = err.Error(); l.firstErr == "" {
				l.firstErr = l.lastErr
			}
		}
		l.mu.Unlock()
		if err != nil {
			time.Sleep(rgRetry)
		}
	}
}

// ackSentAfter is the ack time of the first write sent at or after t.
func (l *cmLane) ackSentAfter(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.acks), func(i int) bool { return !l.acks[i].sent.Before(t) })
	if i == len(l.acks) {
		return time.Time{}, false
	}
	return l.acks[i].acked, true
}

// cmFailover writes through three lanes, kill -9s the primary of node group
// victim, and times the recovery; then reads every acked write back.
func (e *rgEnv) cmFailover(ctx context.Context, g *types.ReplicationGroup, victim string) (f cmFailover, err error) {
	f.victim = victim
	id := aws.ToString(g.ReplicationGroupId)
	cc := cmClient(g)
	defer cc.Close()
	owned := map[string][]bool{}
	var groups []string
	for _, ng := range g.NodeGroups {
		ngID := aws.ToString(ng.NodeGroupId)
		if owned[ngID], err = parseSlots(aws.ToString(ng.Slots)); err != nil {
			return f, err
		}
		groups = append(groups, ngID)
	}
	if owned[victim] == nil {
		return f, fmt.Errorf("no node group %s in %v", victim, groups)
	}
	first := slices.Index(owned[victim], true)
	if got, err := cc.ClusterKeySlot(ctx, "bench-slot-check").Result(); err != nil || int(got) != engine.KeySlot("bench-slot-check") {
		return f, fmt.Errorf("CLUSTER KEYSLOT says %d (%v), the harness computes %d", got, err, engine.KeySlot("bench-slot-check"))
	}
	before, err := slotOwners(ctx, endpoint(g.ConfigurationEndpoint))
	if err != nil {
		return f, err
	}
	f.oldAddr = before[first]
	pid, err := redisInfoField(f.oldAddr, "server", "process_id")
	if err != nil {
		return f, err
	}
	f.pid, _ = strconv.Atoi(pid)
	if !slices.ContainsFunc(engineProcs(e.tmp, e.srv.pid()), func(p proc) bool { return p.pid == f.pid && p.comm == "redis-server" }) {
		return f, fmt.Errorf("process_id %d of %s is not a redis-server under %s", f.pid, f.oldAddr, e.tmp)
	}
	survivor := ""
	for s, a := range before {
		if !owned[victim][s] && a != "" {
			survivor = a
			break
		}
	}

	lanes := make([]*cmLane, len(groups))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, ng := range groups {
		lanes[i] = &cmLane{prefix: fmt.Sprintf("fo:%s:%s:", id, ng), slots: owned[ng]}
		wg.Add(1)
		go func(l *cmLane) { defer wg.Done(); l.run(cc, stop) }(lanes[i])
	}
	stopLanes := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLanes()
	vl := lanes[slices.Index(groups, victim)]
	time.Sleep(cmSettle)
	for _, l := range lanes {
		if _, ok := l.ackSentAfter(time.Time{}); !ok {
			return f, fmt.Errorf("lane %s: no write acked in %s before the kill (%d failed: %s)", l.prefix, cmSettle, l.errs, l.lastErr)
		}
	}
	otherErrs0 := 0
	for _, l := range lanes {
		if l != vl {
			l.mu.Lock()
			otherErrs0 += l.errs
			l.mu.Unlock()
		}
	}
	vl.mu.Lock()
	errs0 := vl.errs
	vl.mu.Unlock()

	killed := time.Now()
	if err := syscall.Kill(f.pid, syscall.SIGKILL); err != nil {
		return f, fmt.Errorf("kill -9 %d: %w", f.pid, err)
	}
	// Until all three: a survivor's CLUSTER SLOTS names another primary for
	// the node group's first slot and it takes a SET; the killed node's
	// address answers PING; the lane has a write sent after the kill acked.
	probe := &cmLane{prefix: fmt.Sprintf("probe:%s:", id), slots: owned[victim]}
	var probeAcks []string
	var acceptedAt time.Time
	_, err = poll(ctx, cmProbe, rgRecoverTO, func() (bool, error) {
		if f.promoted == 0 {
			if owners, err := slotOwners(ctx, survivor); err == nil && owners[first] != "" && owners[first] != f.oldAddr {
				k := probe.next()
				if rc, err := dialRESP(owners[first]); err == nil {
					if v, err := rc.do("SET", k, k); err == nil && v == "OK" {
						f.promoted, f.newAddr = time.Since(killed), owners[first]
						probeAcks = append(probeAcks, k)
					}
					rc.Close()
				}
			}
		}
		if f.restarted == 0 {
			if rc, err := dialRESP(f.oldAddr); err == nil {
				if v, err := rc.do("PING"); err == nil && v == "PONG" {
					f.restarted = time.Since(killed)
				}
				rc.Close()
			}
		}
		if acceptedAt.IsZero() {
			acceptedAt, _ = vl.ackSentAfter(killed)
		}
		return f.promoted > 0 && f.restarted > 0 && !acceptedAt.IsZero(), nil
	})
	if err != nil {
		stopLanes() // before reading the lane's last error
		return f, fmt.Errorf("after killing %s's primary %s: new primary after %s, restarted after %s, ClusterClient write accepted at %v: %w (lane's last error %q)",
			victim, f.oldAddr, f.promoted, f.restarted, acceptedAt, err, vl.lastErr)
	}
	f.accepted = acceptedAt.Sub(killed)
	time.Sleep(cmSettle)
	stopLanes()

	// The killed node comes back as a replica; the group is available again.
	if _, err = poll(ctx, rgPoll*4, rgRecoverTO, func() (bool, error) {
		role, _ := redisInfoField(f.oldAddr, "replication", "role")
		link, _ := redisInfoField(f.oldAddr, "replication", "master_link_status")
		return role == "slave" && link == "up", nil
	}); err != nil {
		return f, fmt.Errorf("the killed node %s is not a replica with its link up: %w", f.oldAddr, err)
	}
	f.rejoined = time.Since(killed)
	at, err := e.await(ctx, id, "available")
	if err != nil {
		return f, err
	}
	f.available = at.Sub(killed)

	// Every acked write, read back.
	cc.ReloadState(ctx)
	f.errs = vl.errs - errs0
	f.firstErr, f.lastErr = vl.firstErr, vl.lastErr
	for _, l := range lanes {
		var pre, post []string
		for _, a := range l.acks {
			if l == vl && a.sent.Before(killed) {
				pre = append(pre, a.key)
			} else {
				post = append(post, a.key)
			}
		}
		lostPre, err := cmMissing(ctx, cc, pre)
		if err != nil {
			return f, err
		}
		lostPost, err := cmMissing(ctx, cc, post)
		if err != nil {
			return f, err
		}
		if l == vl {
			f.ackedBefore, f.lostBefore, f.ackedAfter, f.lostAfter = len(pre), lostPre, len(post), lostPost
		} else {
			f.otherAcked, f.otherLost, f.otherErrs = f.otherAcked+len(post), f.otherLost+lostPost, f.otherErrs+l.errs
		}
	}
	f.otherErrs -= otherErrs0
	if n, err := cmMissing(ctx, cc, probeAcks); err != nil || n > 0 {
		return f, fmt.Errorf("the probe write the new primary acked is missing (%d, %v)", n, err)
	}
	return f, nil
}

// cmMissing counts the keys that do not read back as their own name.
func cmMissing(ctx context.Context, cc *redis.ClusterClient, keys []string) (int, error) {
	lost := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 500)]
		keys = keys[len(batch):]
		cmds := make([]*redis.StringCmd, len(batch))
		_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("reading acked writes back: %w", err)
		}
		for i, k := range batch {
			if v, err := cmds[i].Result(); err != nil || v != k {
				lost++
			}
		}
	}
	return lost, nil
}

// slotOwners is the address of each slot's primary ("" if none), from
// CLUSTER SLOTS on addr: [start, end, [ip, port, id, ...] (the primary), replicas...].
func slotOwners(ctx context.Context, addr string) ([]string, error) {
	rc := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer rc.Close()
	ranges, err := rc.Do(ctx, "CLUSTER", "SLOTS").Slice()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SLOTS on %s: %w", addr, err)
	}
	owners := make([]string, engine.ClusterSlots)
	for _, r := range ranges {
		f, _ := r.([]any)
		if len(f) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS on %s: entry %v", addr, r)
		}
		lo, _ := f[0].(int64)
		hi, _ := f[1].(int64)
		node, _ := f[2].([]any)
		if len(node) < 2 {
			return nil, fmt.Errorf("CLUSTER SLOTS on %s: entry %v", addr, r)
		}
		a := fmt.Sprintf("%v:%v", node[0], node[1])
		for s := max(lo, 0); s <= hi && s < engine.ClusterSlots; s++ {
			owners[s] = a
		}
	}
	return owners, nil
}

// parseSlots reads a node group's Slots ("0-4095,9558-10922" or "7").
func parseSlots(s string) ([]bool, error) {
	ranges, err := engine.ParseSlotRanges(s)
	if err != nil {
		return nil, err
	}
	out := make([]bool, engine.ClusterSlots)
	for _, r := range ranges {
		for i := r.Start; i <= r.End; i++ {
			out[i] = true
		}
	}
	return out, nil
}

func layoutString(g *types.ReplicationGroup) string {
	var parts []string
	for _, ng := range g.NodeGroups {
		parts = append(parts, aws.ToString(ng.NodeGroupId)+"="+aws.ToString(ng.Slots))
	}
	return strings.Join(parts, " ")
}

// mmm is "median (min-max)".
func mmm(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s-%s)", secs(median(ds)), secs(slices.Min(ds)), secs(slices.Max(ds)))
}

// hoardLogProblems is hoard's WARN and ERROR log lines, one per distinct
// message with a count and the first occurrence.
func hoardLogProblems(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	type note struct {
		first string
		n     int
	}
	var order []string
	seen := map[string]*note{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i:]
			if j := strings.Index(msg, " group="); j > 0 {
				msg = msg[:j]
			}
		}
		if seen[msg] == nil {
			seen[msg] = &note{first: line}
			order = append(order, msg)
		}
		seen[msg].n++
	}
	var out []string
	for _, m := range order {
		out = append(out, fmt.Sprintf("%dx %.400s", seen[m].n, seen[m].first))
	}
	return out
}

func printLogNotes(h *cmHoard) {
	fmt.Printf("hoard log (%s): %d distinct WARN/ERROR messages\n", h.label, len(h.logNotes))
	for _, n := range h.logNotes {
		fmt.Printf("  %s\n", n)
	}
}
