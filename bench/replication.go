package main

// The replication scenario: how long a replication group of a primary and two
// replicas takes to become available, how long writes through PrimaryEndpoint
// stop when the primary's redis-server is killed (automatic failover), and
// what the PrimaryEndpoint front costs against connecting to the primary's own
// port, measured with redis-benchmark.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/aws/smithy-go"
)

const (
	rgPoll       = 5 * time.Millisecond // DescribeReplicationGroups while waiting
	rgBudget     = time.Minute          // a group to become available or gone
	rgWriteTO    = time.Second          // one write through PrimaryEndpoint
	rgRetry      = 10 * time.Millisecond
	rgRecoverTO  = 30 * time.Second // from the kill to a write accepted again
	rgBenchN     = "200000"
	rgBenchConns = "50"
	rgBenchAim   = 0.9 // the aim for front ÷ direct
)

// rgEnv is one running hoard and its client.
type rgEnv struct {
	tmp string
	srv *hoard
	ec  *elasticache.Client
}

// failover is one kill -9 of a primary.
type failover struct {
	recovered  time.Duration // kill -> first write (sent after the kill) accepted
	rejoined   time.Duration // kill -> the killed member replicates the new primary
	errs, lost int           // failed writes; writes the old primary acked that are gone
	acked      int           // writes sent before the kill and acknowledged
	from, to   string        // primary member before and after
	oldPID     int
}

func runReplication(ctx context.Context, bin, tmp string) error {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return err
	}
	load0 := loadAvg()
	fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; hoard, engines, redis-benchmark and the harness share the machine; load average %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), load0)

	// First hoard: --reconcile-interval 200ms. Create, failover, front overhead.
	var creates, calls, gones []time.Duration
	var fo200, fo1s []failover
	var bench []benchRow
	err := withHoard(ctx, bin, filepath.Join(tmp, "ri-200ms"), []string{"--reconcile-interval", "200ms"}, func(e *rgEnv) error {
		fmt.Printf("\n== replication: create -> available (1 primary + 2 replicas, %s, AutomaticFailoverEnabled), %d samples, polled every %s\n",
			nodeType, *snapReps, rgPoll)
		for i := 1; i <= *snapReps; i++ {
			id := fmt.Sprintf("lat-%02d", i)
			call, avail, err := e.create(ctx, id)
			if err != nil {
				return err
			}
			gone, err := e.delete(ctx, id)
			if err != nil {
				return err
			}
			creates, calls, gones = append(creates, avail), append(calls, call), append(gones, gone)
			fmt.Printf("  %s: CreateReplicationGroup call %s, available after %s, delete->gone %s\n", id, ms(call), ms(avail), ms(gone))
		}
		var err error
		if fo200, err = e.failovers(ctx, "fo", "--reconcile-interval 200ms"); err != nil {
			return err
		}
		fmt.Printf("\n== replication: PrimaryEndpoint vs the primary's ReadEndpoint, redis-benchmark -n %s -c %s, %d runs\n", rgBenchN, rgBenchConns, *snapReps)
		bench, err = e.frontBench(ctx)
		return err
	})
	if err != nil {
		return err
	}

	// Second hoard: the default --reconcile-interval (1s). Failover only.
	err = withHoard(ctx, bin, filepath.Join(tmp, "ri-default"), nil, func(e *rgEnv) (err error) {
		fo1s, err = e.failovers(ctx, "fo1s", "the default --reconcile-interval (1s)")
		return err
	})
	if err != nil {
		return err
	}

	fmt.Printf("\n== replication: results (median of %d); load average before %s, after %s\n", *snapReps, load0, loadAvg())
	fmt.Printf("create->available         %s   every run: %s\n", ms(median(creates)), durs(creates))
	fmt.Printf("CreateReplicationGroup    %s   every run: %s\n", ms(median(calls)), durs(calls))
	fmt.Printf("delete->gone              %s   every run: %s\n", ms(median(gones)), durs(gones))
	for i, runs := range [][]failover{fo200, fo1s} {
		var rec, rej []time.Duration
		var lost, acked, errs []int
		for _, f := range runs {
			rec, rej = append(rec, f.recovered), append(rej, f.rejoined)
			lost, acked, errs = append(lost, f.lost), append(acked, f.acked), append(errs, f.errs)
		}
		fmt.Printf("failover, %s:\n", []string{"--reconcile-interval 200ms", "--reconcile-interval 1s (the default)"}[i])
		fmt.Printf("  kill -> write accepted through PrimaryEndpoint  %s   every run: %s\n", secs(median(rec)), durs(rec))
		fmt.Printf("  kill -> killed member replicating the new one   %s   every run: %s\n", secs(median(rej)), durs(rej))
		fmt.Printf("  failed writes meanwhile %v; writes acked before the kill %v, of them lost %v (replication is asynchronous)\n", errs, acked, lost)
	}
	fmt.Printf("PrimaryEndpoint overhead (requests/s, median of %d; front = PrimaryEndpoint, direct = the primary's ReadEndpoint):\n", *snapReps)
	fmt.Printf("  %-10s %-4s %12s %12s %7s   every run (front / direct)\n", "pipeline", "test", "front", "direct", "ratio")
	for _, r := range bench {
		f, fAll := medianF(r.rps[0])
		d, dAll := medianF(r.rps[1])
		mark := ""
		if f/d < rgBenchAim {
			mark = fmt.Sprintf("  below the aim of %.1f", rgBenchAim)
		}
		fmt.Printf("  %-10s %-4s %12.0f %12.0f %6.2fx   %s / %s%s\n", "-P "+strconv.Itoa(r.pipeline), r.test, f, d, f/d, fAll, dAll, mark)
	}
	return nil
}

// failovers runs -reps failovers, each on a new group.
func (e *rgEnv) failovers(ctx context.Context, prefix, label string) ([]failover, error) {
	fmt.Printf("\n== replication: failover, hoard with %s, %d runs\n", label, *snapReps)
	var out []failover
	for i := 1; i <= *snapReps; i++ {
		f, err := e.failover(ctx, fmt.Sprintf("%s-%02d", prefix, i))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// rgNodePorts are the replication scenario's node ports: away from
// 21000-21999 and 26000-26999, which other hoards on the machine use; hoard
// does not skip a port someone else holds.
const rgNodePorts = "27000-27999"

// withHoard starts a hoard in dir with the scenario's flags plus extra, runs
// fn, stops hoard and ends, by PID, any engine left under dir.
func withHoard(ctx context.Context, bin, dir string, extra []string, fn func(*rgEnv) error) error {
	return withGroupHoard(ctx, bin, dir, rgNodePorts, 2, extra, fn)
}

// withGroupHoard starts a hoard in dir on nodePorts with extra flags and an
// SDK client of conns connections, runs fn, stops hoard and ends, by PID, any
// engine left under dir.
func withGroupHoard(ctx context.Context, bin, dir, nodePorts string, conns int, extra []string, fn func(*rgEnv) error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	flags := append([]string{"--node-ports", nodePorts}, extra...)
	srv, addr, err := startHoard(ctx, bin, dir, nil, flags...)
	if srv != nil {
		defer func() {
			srv.stop()
			if left := killEngines(dir, srv.pid()); len(left) > 0 {
				fmt.Fprintf(os.Stderr, "bench: killed %d engine processes left running under %s: %s\n", len(left), dir, procList(left))
			}
		}()
	}
	if err != nil {
		return err
	}
	fmt.Printf("\nhoard %s (pid %d, %s), data and log in %s\n", addr, srv.pid(), strings.Join(flags, " "), dir)
	if err := fn(&rgEnv{tmp: dir, srv: srv, ec: newSDKClient("http://"+addr, conns)}); err != nil {
		return err
	}
	if left := killEngines(dir, srv.pid()); len(left) > 0 {
		return fmt.Errorf("%d processes still running under %s after every group was deleted; killed them by PID: %s", len(left), dir, procList(left))
	}
	return nil
}

// create sends CreateReplicationGroup and polls until the group is available.
func (e *rgEnv) create(ctx context.Context, id string) (call, avail time.Duration, err error) {
	t0 := time.Now()
	_, err = e.ec.CreateReplicationGroup(ctx, &elasticache.CreateReplicationGroupInput{ReplicationGroupId: aws.String(id),
		ReplicationGroupDescription: aws.String("bench"), Engine: aws.String("redis"), CacheNodeType: aws.String(nodeType),
		NumCacheClusters: aws.Int32(3), AutomaticFailoverEnabled: aws.Bool(true)})
	if err != nil {
		return 0, 0, fmt.Errorf("CreateReplicationGroup %s: %w", id, err)
	}
	call = time.Since(t0)
	at, err := e.await(ctx, id, "available")
	return call, at.Sub(t0), err
}

// delete sends DeleteReplicationGroup and polls until the group is gone.
func (e *rgEnv) delete(ctx context.Context, id string) (time.Duration, error) {
	t0 := time.Now()
	if _, err := e.ec.DeleteReplicationGroup(ctx, &elasticache.DeleteReplicationGroupInput{ReplicationGroupId: aws.String(id)}); err != nil {
		return 0, fmt.Errorf("DeleteReplicationGroup %s: %w", id, err)
	}
	at, err := e.await(ctx, id, "")
	return at.Sub(t0), err
}

// describe is one group, or nil once hoard no longer knows it.
func (e *rgEnv) describe(ctx context.Context, id string) (*types.ReplicationGroup, error) {
	out, err := e.ec.DescribeReplicationGroups(ctx, &elasticache.DescribeReplicationGroupsInput{ReplicationGroupId: aws.String(id)})
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && strings.HasPrefix(ae.ErrorCode(), "ReplicationGroupNotFound"):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("DescribeReplicationGroups %s: %w", id, err)
	case len(out.ReplicationGroups) != 1:
		return nil, fmt.Errorf("DescribeReplicationGroups %s returned %d groups", id, len(out.ReplicationGroups))
	}
	return &out.ReplicationGroups[0], nil
}

// await polls the group until its status is want ("" = gone).
func (e *rgEnv) await(ctx context.Context, id, want string) (time.Time, error) {
	st := ""
	at, err := poll(ctx, rgPoll, rgBudget, func() (bool, error) {
		g, err := e.describe(ctx, id)
		if st = ""; g != nil {
			st = aws.ToString(g.Status)
		}
		if err == nil && st != want && (st == "create-failed" || (st == "" && want != "")) {
			err = errors.New("it failed or vanished")
		}
		return st == want, err
	})
	if err != nil {
		return at, fmt.Errorf("replication group %s is %q, waiting for %q: %w", id, st, want, err)
	}
	return at, nil
}

// roles describes the group and returns its primary member, PrimaryEndpoint
// and the primary's ReadEndpoint, checking one node group of three members.
func (e *rgEnv) roles(ctx context.Context, id string) (primary, front, direct string, err error) {
	g, err := e.describe(ctx, id)
	if err == nil && (g == nil || len(g.NodeGroups) != 1 || g.NodeGroups[0].PrimaryEndpoint == nil || len(g.NodeGroups[0].NodeGroupMembers) != 3) {
		err = fmt.Errorf("replication group %s: want one node group of 3 members and a PrimaryEndpoint, got %+v", id, g)
	}
	if err != nil {
		return "", "", "", err
	}
	ep := func(p *types.Endpoint) string {
		return fmt.Sprintf("%s:%d", aws.ToString(p.Address), aws.ToInt32(p.Port))
	}
	for _, m := range g.NodeGroups[0].NodeGroupMembers {
		if aws.ToString(m.CurrentRole) == "primary" && m.ReadEndpoint != nil {
			if primary != "" {
				return "", "", "", fmt.Errorf("replication group %s has two primaries, %s and %s", id, primary, aws.ToString(m.CacheClusterId))
			}
			primary, direct = aws.ToString(m.CacheClusterId), ep(m.ReadEndpoint)
		}
	}
	if primary == "" {
		err = fmt.Errorf("replication group %s has no primary member", id)
	}
	return primary, ep(g.NodeGroups[0].PrimaryEndpoint), direct, err
}

// failover creates a group, writes a canary confirmed by WAIT 2, writes in a
// loop through PrimaryEndpoint, kill -9s the primary's redis-server and times
// the first write sent after the kill that is accepted; then checks that
// another member is primary, the canary survived and the killed member
// rejoined as a replica, and deletes the group.
func (e *rgEnv) failover(ctx context.Context, id string) (f failover, err error) {
	if _, _, err := e.create(ctx, id); err != nil {
		return f, err
	}
	from, front, direct, err := e.roles(ctx, id)
	if f.from = from; err != nil {
		return f, err
	}
	rc, err := dialRESP(front)
	if err != nil {
		return f, err
	}
	defer rc.Close()
	canary := "canary-" + id
	if _, err := rc.do("SET", canary, id); err != nil {
		return f, fmt.Errorf("SET through PrimaryEndpoint: %w", err)
	}
	if n, err := rc.do("WAIT", "2", "1000"); err != nil || n != "2" {
		return f, fmt.Errorf("WAIT 2 1000 after the canary: %q %v", n, err)
	}
	pid, err := redisInfoField(direct, "server", "process_id")
	if err != nil {
		return f, err
	}
	f.oldPID, _ = strconv.Atoi(pid)
	if !slices.ContainsFunc(engineProcs(e.tmp, e.srv.pid()), func(p proc) bool { return p.pid == f.oldPID && p.comm == "redis-server" }) {
		return f, fmt.Errorf("process_id %d of %s is not a redis-server under %s", f.oldPID, direct, e.tmp)
	}

	// Write for a while, kill -9 the primary between two writes, and write on
	// until a write sent after the kill is acknowledged, then a few more.
	w := &rgWriter{addr: front}
	defer w.close()
	var before, after []string
	for t0 := time.Now(); time.Since(t0) < 300*time.Millisecond; {
		key, err := w.set()
		if err != nil {
			return f, err
		} else if key != "" {
			before = append(before, key)
		}
	}
	killed := time.Now()
	if err := syscall.Kill(f.oldPID, syscall.SIGKILL); err != nil {
		return f, fmt.Errorf("kill -9 %d: %w", f.oldPID, err)
	}
	for w.errs = 0; len(after) < 100; {
		key, err := w.set()
		switch {
		case err != nil:
			return f, err
		case key == "" && time.Since(killed) > rgRecoverTO:
			return f, fmt.Errorf("%s: no write accepted through PrimaryEndpoint %s after the kill", id, rgRecoverTO)
		case key != "" && len(after) == 0:
			f.recovered = time.Since(killed)
			fallthrough
		case key != "":
			after = append(after, key)
		}
	}
	f.errs, f.acked = w.errs, len(before)

	// Checks: another member is primary; the canary and the writes are there.
	if f.to, _, _, err = e.roles(ctx, id); err != nil || f.to == f.from {
		return f, fmt.Errorf("%s: after the kill DescribeReplicationGroups shows %q as primary, was %s (%v)", id, f.to, f.from, err)
	}
	if rc, err = dialRESP(front); err != nil {
		return f, err
	}
	defer rc.Close() // the first connection was closed by the failover
	if v, err := rc.do("GET", canary); err != nil || v != id {
		return f, fmt.Errorf("%s: the canary written with WAIT 2 before the kill reads %q (%v) after the failover", id, v, err)
	}
	if f.lost, err = missing(rc, before); err != nil {
		return f, err
	}
	if n, err := missing(rc, after); err != nil || n > 0 {
		return f, fmt.Errorf("%s: %d of the %d writes acked after the kill are missing (%v)", id, n, len(after), err)
	}
	// The killed member comes back as a replica of the new primary.
	_, err = poll(ctx, rgPoll*4, rgRecoverTO, func() (bool, error) {
		role, _ := redisInfoField(direct, "replication", "role")
		link, _ := redisInfoField(direct, "replication", "master_link_status")
		return role == "slave" && link == "up", nil
	})
	if err != nil {
		return f, fmt.Errorf("%s: the killed member %s (%s) is not a replica with its link up: %w", id, f.from, direct, err)
	}
	f.rejoined = time.Since(killed)
	fmt.Printf("  %s: killed %s (pid %d); writes accepted through PrimaryEndpoint again after %s (%d failed writes meanwhile); primary now %s; canary kept; %d of %d writes acked before the kill lost; %s back as a replica after %s\n",
		id, f.from, f.oldPID, secs(f.recovered), f.errs, f.to, f.lost, f.acked, f.from, secs(f.rejoined))
	_, err = e.delete(ctx, id)
	return f, err
}

// missing counts the keys that do not exist, with EXISTS in chunks.
func missing(rc *respConn, keys []string) (int, error) {
	n := 0
	for len(keys) > 0 {
		k := keys[:min(len(keys), 500)]
		keys = keys[len(k):]
		got, err := rc.do(append([]string{"EXISTS"}, k...)...)
		if err != nil {
			return 0, fmt.Errorf("EXISTS: %w", err)
		}
		c, _ := strconv.Atoi(got)
		n += len(k) - c
	}
	return n, nil
}

// rgWriter writes fo:N keys one at a time through an address on one
// connection, and after a failure redials for the next write.
type rgWriter struct {
	addr    string
	c       *respConn
	n, errs int
}

// set sends the next SET and returns its key if it was acknowledged. A failed
// write or an error reply (READONLY, LOADING while repointing) is counted in
// errs and returns "" after rgRetry; anything else is an error.
func (w *rgWriter) set() (string, error) {
	key := fmt.Sprintf("fo:%07d", w.n)
	w.n++
	var err error
	if w.c == nil {
		w.c, err = dialRESP(w.addr)
	}
	line := ""
	if err == nil {
		_ = w.c.SetDeadline(time.Now().Add(rgWriteTO))
		if _, err = fmt.Fprintf(w.c, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n", len(key), key); err == nil {
			line, err = w.c.r.ReadString('\n')
		}
	}
	switch {
	case err == nil && line == "+OK\r\n":
		return key, nil
	case err == nil && !strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("SET %s through %s: %q", key, w.addr, line)
	}
	w.errs++
	w.close()
	time.Sleep(rgRetry)
	return "", nil
}

func (w *rgWriter) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}

// benchRow is one redis-benchmark test at one pipeline depth, every run.
type benchRow struct {
	pipeline int
	test     string
	rps      [2][]float64 // front, direct
}

var benchLine = regexp.MustCompile(`(SET|GET): ([0-9.]+) requests per second`)

// frontBench runs redis-benchmark against PrimaryEndpoint and the primary's
// ReadEndpoint, alternating which goes first, -reps times at -P 1 and -P 16.
func (e *rgEnv) frontBench(ctx context.Context) ([]benchRow, error) {
	const id = "bench"
	if _, _, err := e.create(ctx, id); err != nil {
		return nil, err
	}
	primary, front, direct, err := e.roles(ctx, id)
	if err != nil {
		return nil, err
	}
	fmt.Printf("  group %s: PrimaryEndpoint %s, primary %s ReadEndpoint %s\n", id, front, primary, direct)
	rows := []benchRow{{pipeline: 1, test: "SET"}, {pipeline: 1, test: "GET"}, {pipeline: 16, test: "SET"}, {pipeline: 16, test: "GET"}}
	addrs, names := [2]string{front, direct}, [2]string{"front ", "direct"}
	for rep := 1; rep <= *snapReps; rep++ {
		for _, p := range []int{1, 16} {
			for k := range 2 {
				which := (k + rep + 1) % 2 // front first in odd runs, direct first in even ones
				rps, err := redisBenchmark(ctx, addrs[which], p)
				if err != nil {
					return nil, err
				}
				fmt.Printf("  run %d -P %-2d %s %s: SET %.0f GET %.0f requests/s\n", rep, p, names[which], addrs[which], rps["SET"], rps["GET"])
				for i := range rows {
					if rows[i].pipeline == p {
						rows[i].rps[which] = append(rows[i].rps[which], rps[rows[i].test])
					}
				}
			}
		}
	}
	_, err = e.delete(ctx, id)
	return rows, err
}

// redisBenchmark runs redis-benchmark -q -t set,get against addr and returns
// requests per second by test.
func redisBenchmark(ctx context.Context, addr string, pipeline int) (map[string]float64, error) {
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.CommandContext(ctx, "redis-benchmark", "-h", host, "-p", port, "-q", "-t", "set,get",
		"-n", rgBenchN, "-c", rgBenchConns, "-P", strconv.Itoa(pipeline))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark against %s: %w: %s", addr, err, tail(out, 500))
	}
	rps := map[string]float64{}
	for _, m := range benchLine.FindAllStringSubmatch(string(out), -1) {
		rps[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	if rps["SET"] <= 0 || rps["GET"] <= 0 {
		return nil, fmt.Errorf("redis-benchmark against %s printed no SET and GET figures: %s", addr, tail(out, 500))
	}
	return rps, nil
}

// medianF is the median of v (the lower middle) and every value, in order.
func medianF(v []float64) (float64, string) {
	s, all := slices.Sorted(slices.Values(v)), make([]string, len(v))
	for i, f := range v {
		all[i] = strconv.FormatFloat(f, 'f', 0, 64)
	}
	return s[(len(s)-1)/2], strings.Join(all, " ")
}
