package main

// The serverless scenario: how long a serverless cache takes to become
// available, and how hoard's serverless snapshots and restores compare with the
// plain way of doing the same work on the same data in the same run. For redis
// the baselines are redis-cli --rdb and a bare redis-server loading the RDB;
// for memcached, which has no dump format of its own, a plain client loop of
// one round trip per item (dump to a file; load into a fresh memcached started
// with the command line of hoard's node).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/aws/smithy-go"
)

const (
	slCreatePoll = 5 * time.Millisecond  // create -> available samples
	slPoll       = 20 * time.Millisecond // snapshots and restores, as the snapshots scenario polls
	slBudget     = 15 * time.Minute      // one operation
)

// mcValueKB is the size of every memcached value. The default, 100 KiB, is a
// cache of large items (sessions, rendered pages) where a client loop pays few
// round trips per byte; smaller values show what pipelining is worth.
var mcValueKB = flag.Int("mc-value-kb", 100, "serverless: KiB in every memcached value (1-1000)")

// slServeFlags: node ports away from the default 21000-21999, which other
// hoards on the machine (tests, other scenarios) use too, and hoard does not
// skip a port someone else holds: the engine then fails to start. And room
// for running the scenario several times a day (2 x -reps snapshots per run).
var slServeFlags = []string{"--node-ports", "26000-26999", "--quota-serverless-snapshots-per-day", "1000"}

// slOp is one operation measured against its baseline.
type slOp struct {
	engine, name, baseline string
	aim                    float64 // the aim for hoard ÷ baseline
	hoard, base            []time.Duration
	hoardCPU, baseCPU      []time.Duration // hoard's own CPU; the baseline process's
	phases                 []string        // what the polls saw of each hoard run
}

type slRun func(rep int) (wall, cpu time.Duration, err error)

// measure runs hoard's operation and the baseline -reps times, hoard first in
// odd runs and the baseline first in even ones, so that neither always gets the
// warmer page cache.
func (op *slOp) measure(hoardRun, baseRun slRun) error {
	for rep := 1; rep <= *snapReps; rep++ {
		for i := range 2 {
			who, run, walls, cpus := "hoard", hoardRun, &op.hoard, &op.hoardCPU
			if (i == 0) != (rep%2 == 1) {
				who, run, walls, cpus = "baseline", baseRun, &op.base, &op.baseCPU
			}
			w, c, err := run(rep)
			*walls, *cpus = append(*walls, w), append(*cpus, c)
			if err != nil {
				return fmt.Errorf("%s %s, run %d of %s: %w", op.engine, op.name, rep, who, err)
			}
		}
	}
	fmt.Printf("%-9s %-8s done: hoard %s; %s %s\n", op.engine, op.name, durs(op.hoard), op.baseline, durs(op.base))
	return nil
}

// slEnv is what the operations share.
type slEnv struct {
	tmp, dataDir, baseDir string
	hoardPID              int
	ec                    *elasticache.Client
	maxGB                 int32    // DataStorage.Maximum of the measured caches
	sizes                 []string // printed with the results
	rdbFile               string   // hoard's first redis snapshot: what both restores load
	mcAddr                string
	mc                    *mcData
	mcArgs                []string // hoard's memcached node's command line, for the baseline's
	loopFile              string   // the client dump loop's first file: what the load loop reads
}

func runServerless(ctx context.Context, bin, tmp string) error {
	for _, tool := range []string{redisCLI, "redis-server", "cp"} {
		if _, err := lookTool(tool); err != nil {
			return err
		}
	}
	n := 10 // -samples belongs to the clusters scenario (default 20); 10 here unless set
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "samples" {
			n = *samples
		}
	})
	load0 := loadAvg()
	srv, addr, err := startHoard(ctx, bin, tmp, nil, slServeFlags...)
	if srv != nil {
		// Engines outlive hoard by design: end whatever is left under tmp, by PID.
		defer func() {
			srv.stop()
			if left := killEngines(tmp, srv.pid()); len(left) > 0 {
				fmt.Fprintf(os.Stderr, "bench: killed %d engine processes left running under %s: %s\n", len(left), tmp, procList(left))
			}
		}()
	}
	if err != nil {
		return err
	}
	fmt.Printf("hoard %s (pid %d, %s), data and log in %s\n", addr, srv.pid(), strings.Join(slServeFlags, " "), tmp)
	fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; hoard, engines and baselines share the machine; load average %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), load0)
	// Room for twice the dataset: redis (volatile-lru, keys without TTLs) and
	// memcached (-M) would refuse writes rather than evict.
	e := &slEnv{tmp: tmp, dataDir: filepath.Join(tmp, "data"), baseDir: filepath.Join(tmp, "baseline"), hoardPID: srv.pid(),
		ec: newSDKClientTimeout("http://"+addr, 2, slBudget), maxGB: int32(max(1, (*datasetMB*2+1023)/1024))}
	if err := os.MkdirAll(e.baseDir, 0o700); err != nil {
		return err
	}

	fmt.Printf("\n== serverless: create -> available, one cache at a time (no usage limits, polled every %s)\n", slCreatePoll)
	var lat []string
	for _, eng := range engines {
		line, err := e.createLatency(ctx, eng, n)
		if err != nil {
			return fmt.Errorf("create %s: %w", eng, err)
		}
		lat = append(lat, line)
	}
	fmt.Printf("\n== serverless: snapshot and restore, %d MiB of data, %d runs of each; caches with DataStorage.Maximum %d GB\n",
		*datasetMB, *snapReps, e.maxGB)
	sys0 := machineCPU()
	redis, err := e.redisOps(ctx)
	if err != nil {
		return err
	}
	mc, err := e.memcachedOps(ctx)
	if err != nil {
		return err
	}
	sys := machineCPU()
	for i := range sys {
		sys[i] -= sys0[i]
	}

	fmt.Printf("\n== serverless: results; load average before %s, after %s\n", load0, loadAvg())
	fmt.Println(strings.Join(lat, "\n"))
	fmt.Printf("\n%-10s %-9s %9s %9s %7s %5s  %s (median of %d runs)\n", "engine", "operation", "hoard", "baseline", "ratio", "aim", "baseline", *snapReps)
	ops := append(redis, mc...)
	for _, op := range ops {
		h, b := median(op.hoard), median(op.base)
		mark := ""
		if h.Seconds()/b.Seconds() > op.aim {
			mark = "  MISSES AIM"
		}
		fmt.Printf("%-10s %-9s %9s %9s %6.2fx %4.1fx  %s%s\n", op.engine, op.name, secs(h), secs(b), h.Seconds()/b.Seconds(), op.aim, op.baseline, mark)
	}
	fmt.Println("\nevery run, in order (wall time; CPU of hoard itself, or of the baseline process)")
	for _, op := range ops {
		fmt.Printf("%-10s %-9s hoard    %s  (hoard CPU %s)\n", op.engine, op.name, durs(op.hoard), durs(op.hoardCPU))
		if len(op.phases) > 0 {
			fmt.Printf("%-20s phases   %s\n", "", strings.Join(op.phases, "; "))
		}
		fmt.Printf("%-20s baseline %s  (CPU %s)\n", "", durs(op.base), durs(op.baseCPU))
	}
	fmt.Println("\nsizes:\n  " + strings.Join(e.sizes, "\n  "))
	_, hwm := procMem(srv.pid())
	_, selfHWM := procMem(os.Getpid())
	fmt.Printf("memory: hoard VmHWM %s, bench VmHWM %s\n", mib(hwm), mib(selfHWM))
	fmt.Printf("machine over the snapshot and restore part: %.0f%% idle, %.0f%% stolen by the hypervisor (of %d CPUs)\n",
		100*float64(sys[1])/float64(max(sys[0], 1)), 100*float64(sys[2])/float64(max(sys[0], 1)), runtime.NumCPU())
	if left := killEngines(tmp, srv.pid()); len(left) > 0 {
		return fmt.Errorf("%d processes still running under %s after every cache was deleted; killed them by PID: %s", len(left), tmp, procList(left))
	}
	fmt.Printf("leftovers: none: no process has its cwd or command line under %s\n", tmp)
	return nil
}

// createLatency creates n caches of one engine one after the other and times
// each from the CreateServerlessCache request to the first "available" reply;
// each is deleted (and gone) before the next.
func (e *slEnv) createLatency(ctx context.Context, eng string, n int) (string, error) {
	var avail, calls, gone []time.Duration
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("lat-%s-%02d", eng, i)
		t0 := time.Now()
		if _, err := e.ec.CreateServerlessCache(ctx, &elasticache.CreateServerlessCacheInput{
			ServerlessCacheName: aws.String(name), Engine: aws.String(eng)}); err != nil {
			return "", fmt.Errorf("CreateServerlessCache %s: %w", name, err)
		}
		calls = append(calls, time.Since(t0))
		at, err := e.awaitCache(ctx, name, "available", slCreatePoll, time.Minute, nil)
		if err != nil {
			return "", err
		}
		avail = append(avail, at.Sub(t0))
		t1 := time.Now()
		if err := e.deleteCache(ctx, name); err != nil {
			return "", err
		}
		gone = append(gone, time.Since(t1))
	}
	line := fmt.Sprintf("%-10s create->available %s\n%-10s CreateServerlessCache call %s\n%-10s delete->gone %s",
		eng, dist(avail), "", dist(calls), "", dist(gone))
	fmt.Println(line)
	return line, nil
}

// note prints a line about the data and keeps it for the results.
func (e *slEnv) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	fmt.Println(s)
	e.sizes = append(e.sizes, s)
}

// redisOps fills a redis serverless cache and measures snapshot and restore.
func (e *slEnv) redisOps(ctx context.Context) ([]*slOp, error) {
	const src = "sl-redis"
	addr, err := e.createMeasured(ctx, src, "redis")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	keys, written, err := loadDataset(ctx, addr, int64(*datasetMB)<<20)
	if err != nil {
		return nil, fmt.Errorf("filling %s: %w", src, err)
	}
	fill := time.Since(t0)
	if err := checkKeys(addr, keys); err != nil {
		return nil, fmt.Errorf("after the fill: %w", err)
	}
	used, _ := redisInfoField(addr, "memory", "used_memory_human")
	e.note("redis      %s (%s): %d keys, %.1f MiB of values (1-10 KiB, random), pipelined SET in %s; used_memory %s",
		src, addr, keys, float64(written)/(1<<20), secs(fill), used)

	var rdbSize int64
	snap := &slOp{engine: "redis", name: "snapshot", baseline: "redis-cli --rdb", aim: 1.2}
	err = snap.measure(func(rep int) (time.Duration, time.Duration, error) {
		file, wall, cpu, err := e.hoardSnapshot(ctx, src, fmt.Sprintf("rsnap-%d", rep))
		if err == nil && rep == 1 {
			e.rdbFile, rdbSize = file, fileSize(file)
		}
		return wall, cpu, err
	}, func(rep int) (time.Duration, time.Duration, error) {
		out := filepath.Join(e.baseDir, fmt.Sprintf("redis-cli-%d.rdb", rep))
		defer os.Remove(out)
		host, port, _ := strings.Cut(addr, ":")
		wall, cpu, err := runTool(ctx, nil, redisCLI, "-h", host, "-p", port, "--rdb", out)
		if n := fileSize(out); err == nil && rdbSize > 0 && absDiff(n, rdbSize) > rdbSize/100 {
			err = fmt.Errorf("redis-cli wrote %d bytes, hoard's snapshot has %d", n, rdbSize)
		}
		return wall, cpu, err
	})
	if err != nil {
		return nil, err
	}
	e.note("redis      RDB %.1f MB (%d bytes), hoard's rsnap-1; redis-cli's within 1%%", float64(rdbSize)/1e6, rdbSize)

	restore := &slOp{engine: "redis", name: "restore", baseline: "redis-server loading the RDB", aim: 1.2}
	err = restore.measure(func(rep int) (time.Duration, time.Duration, error) {
		return e.hoardRestore(ctx, restore, "redis", fmt.Sprintf("rrestore-%d", rep), "rsnap-1",
			func(addr string) error { return checkKeys(addr, keys) })
	}, func(rep int) (time.Duration, time.Duration, error) {
		// The snapshots scenario's baseline (a copy of the file, untimed; then
		// redis-server until PING and loading:0; then DBSIZE), on rsnap-1's RDB.
		return (&snapEnv{tmp: e.baseDir, snapFile: e.rdbFile, keys: keys}).baselineRestore(ctx, rep)
	})
	if err != nil {
		return nil, err
	}
	// Gone before the memcached half, so that it does not run beside 2 GB of redis.
	return []*slOp{snap, restore}, e.cleanup(ctx, src, "rsnap-")
}

// memcachedOps fills a memcached serverless cache and measures snapshot and
// restore against the plain client loops.
func (e *slEnv) memcachedOps(ctx context.Context) ([]*slOp, error) {
	const src = "sl-mc"
	addr, err := e.createMeasured(ctx, src, "memcached")
	if err != nil {
		return nil, err
	}
	e.mcAddr = addr
	nodes := engineProcs(filepath.Join(e.dataDir, "serverless-nodes", account, region, src))
	if len(nodes) != 1 {
		return nil, fmt.Errorf("found %d engine processes for %s, want 1", len(nodes), src)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", nodes[0].pid))
	if err != nil {
		return nil, err
	}
	e.mcArgs = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	t0 := time.Now()
	d, err := mcFill(ctx, addr, int64(*datasetMB)<<20)
	if err != nil {
		return nil, fmt.Errorf("filling %s: %w", src, err)
	}
	fill := time.Since(t0)
	e.mc = d
	if err := d.check(addr); err != nil {
		return nil, fmt.Errorf("after the fill: %w", err)
	}
	var used string
	if c, err := dialMC(addr); err == nil {
		st, _ := c.stats()
		used = st["bytes"]
		c.Close()
	}
	e.note("memcached  %s (%s): %d items of %d KiB (random; flags; 3 in 4 with a TTL), %.1f MiB of values, pipelined set in %s; stats bytes %s",
		src, addr, d.n, *mcValueKB, float64(d.bytes)/(1<<20), secs(fill), used)
	e.note("memcached  hoard's node (and, on another port, the baseline's): %s", strings.Join(e.mcArgs, " "))

	snap := &slOp{engine: "memcached", name: "snapshot", baseline: "client loop, one mg per key, to a file", aim: 1}
	var dumpFile string
	err = snap.measure(func(rep int) (time.Duration, time.Duration, error) {
		file, wall, cpu, err := e.hoardSnapshot(ctx, src, fmt.Sprintf("msnap-%d", rep))
		if rep == 1 {
			dumpFile = file
		}
		return wall, cpu, err
	}, func(rep int) (time.Duration, time.Duration, error) {
		out := filepath.Join(e.baseDir, fmt.Sprintf("loop-%d.dump", rep))
		cpu0, t0 := selfCPU(), time.Now()
		err := e.mcClientDump(out)
		wall, cpu := time.Since(t0), selfCPU()-cpu0
		if rep == 1 && err == nil {
			e.loopFile = out
		} else {
			os.Remove(out)
		}
		return wall, cpu, err
	})
	if err != nil {
		return nil, err
	}
	e.note("memcached  hoard's dump (msnap-1) %.1f MB, the client loop's file %.1f MB", float64(fileSize(dumpFile))/1e6, float64(fileSize(e.loopFile))/1e6)

	restore := &slOp{engine: "memcached", name: "restore", baseline: "client loop, one set per item, fresh memcached", aim: 1}
	err = restore.measure(func(rep int) (time.Duration, time.Duration, error) {
		return e.hoardRestore(ctx, restore, "memcached", fmt.Sprintf("mrestore-%d", rep), "msnap-1", d.check)
	}, e.mcLoopRestore(ctx))
	if err != nil {
		return nil, err
	}
	return []*slOp{snap, restore}, e.cleanup(ctx, src, "msnap-")
}

// createMeasured creates a cache with the scenario's usage limits and returns
// its endpoint once it is available.
func (e *slEnv) createMeasured(ctx context.Context, name, eng string) (string, error) {
	if _, err := e.ec.CreateServerlessCache(ctx, e.createInput(name, eng, nil)); err != nil {
		return "", fmt.Errorf("CreateServerlessCache %s: %w", name, err)
	}
	if _, err := e.awaitCache(ctx, name, "available", slPoll, slBudget, nil); err != nil {
		return "", err
	}
	return e.endpoint(ctx, name)
}

func (e *slEnv) createInput(name, eng string, arns []string) *elasticache.CreateServerlessCacheInput {
	return &elasticache.CreateServerlessCacheInput{ServerlessCacheName: aws.String(name), Engine: aws.String(eng),
		SnapshotArnsToRestore: arns, CacheUsageLimits: &types.CacheUsageLimits{
			DataStorage: &types.DataStorage{Maximum: aws.Int32(e.maxGB), Unit: types.DataStorageUnitGb}}}
}

// hoardSnapshot times CreateServerlessCacheSnapshot until DescribeServerlessCacheSnapshots
// says available, and returns the snapshot's data file.
func (e *slEnv) hoardSnapshot(ctx context.Context, cache, name string) (file string, wall, cpu time.Duration, err error) {
	cpu0, t0 := procCPU(e.hoardPID), time.Now()
	if _, err := e.ec.CreateServerlessCacheSnapshot(ctx, &elasticache.CreateServerlessCacheSnapshotInput{
		ServerlessCacheName: aws.String(cache), ServerlessCacheSnapshotName: aws.String(name)}); err != nil {
		return "", 0, 0, fmt.Errorf("CreateServerlessCacheSnapshot %s: %w", name, err)
	}
	at, err := poll(ctx, slPoll, slBudget, func() (bool, error) {
		out, err := e.ec.DescribeServerlessCacheSnapshots(ctx, &elasticache.DescribeServerlessCacheSnapshotsInput{ServerlessCacheSnapshotName: aws.String(name)})
		if err != nil || len(out.ServerlessCacheSnapshots) != 1 {
			return false, fmt.Errorf("DescribeServerlessCacheSnapshots %s: %v", name, err)
		}
		st := aws.ToString(out.ServerlessCacheSnapshots[0].Status)
		if st == "failed" {
			return false, fmt.Errorf("snapshot %s failed: %s", name, e.events(ctx, types.SourceTypeServerlessCacheSnapshot, name))
		}
		return st == "available", nil
	})
	wall, cpu = at.Sub(t0), procCPU(e.hoardPID)-cpu0
	if err != nil {
		return "", wall, cpu, err
	}
	files, _ := filepath.Glob(filepath.Join(e.dataDir, "serverless-snapshots", account, region, name, "*"))
	files = slices.DeleteFunc(files, func(f string) bool { return !strings.HasSuffix(f, ".rdb") && !strings.HasSuffix(f, ".mcdump") })
	if len(files) != 1 || fileSize(files[0]) <= 0 {
		return "", wall, cpu, fmt.Errorf("snapshot %s: want one data file in its directory, found %q", name, files)
	}
	return files[0], wall, cpu, nil
}

// hoardRestore times CreateServerlessCache from a snapshot until the cache is
// available, then checks its data (untimed) and deletes it. The polls also note
// when the engine process appeared, which splits hoard's time into staging the
// snapshot (request -> process) and loading it (process -> available).
func (e *slEnv) hoardRestore(ctx context.Context, op *slOp, eng, name, snap string, check func(addr string) error) (wall, cpu time.Duration, err error) {
	arn := fmt.Sprintf("arn:aws:elasticache:%s:%s:serverlesscachesnapshot:%s", region, account, snap)
	nodeDir := filepath.Join(e.dataDir, "serverless-nodes", account, region, name)
	cpu0, t0 := procCPU(e.hoardPID), time.Now()
	if _, err := e.ec.CreateServerlessCache(ctx, e.createInput(name, eng, []string{arn})); err != nil {
		return 0, 0, fmt.Errorf("CreateServerlessCache %s from %s: %w", name, snap, err)
	}
	call := time.Since(t0)
	var up time.Duration
	at, err := e.awaitCache(ctx, name, "available", slPoll, slBudget, func() {
		if up == 0 && len(engineProcs(nodeDir)) > 0 {
			up = time.Since(t0)
		}
	})
	wall, cpu = at.Sub(t0), procCPU(e.hoardPID)-cpu0
	if err != nil {
		return wall, cpu, err
	}
	op.phases = append(op.phases, fmt.Sprintf("reply %s, engine up %s, available %s", secs(call), secs(up), secs(wall)))
	addr, err := e.endpoint(ctx, name)
	if err == nil {
		err = check(addr)
	}
	if err != nil {
		return wall, cpu, fmt.Errorf("%s restored from %s: %w", name, snap, err)
	}
	return wall, cpu, e.deleteCache(ctx, name)
}

// mcLoopRestore is the memcached restore baseline: a memcached with the command
// line of hoard's node (another port), started with the clock running, as
// hoard's restore starts its engine; then one set round trip per item of the
// client loop's file. It is checked (untimed) as hoard's restore is, and killed.
func (e *slEnv) mcLoopRestore(ctx context.Context) slRun {
	return func(rep int) (wall, cpu time.Duration, err error) {
		dir := filepath.Join(e.baseDir, fmt.Sprintf("memcached-%d", rep))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dir)
		port, err := freePort()
		if err != nil {
			return 0, 0, err
		}
		args := slices.Clone(e.mcArgs[1:])
		i := slices.Index(args, "-p")
		if i < 0 || i+1 >= len(args) {
			return 0, 0, fmt.Errorf("hoard's memcached command line has no -p: %q", e.mcArgs)
		}
		args[i+1] = strconv.Itoa(port)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(e.mcArgs[0], args...)
		cmd.Dir = dir // under tmp, where the leftovers check looks
		cpu0, t0 := selfCPU(), time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }() // by PID; it holds nothing to keep
		n, err := mcClientLoad(addr, e.loopFile)                  // dials until memcached listens
		wall, cpu = time.Since(t0), selfCPU()-cpu0+procCPU(cmd.Process.Pid)
		if err == nil && n != e.mc.n {
			err = fmt.Errorf("the client loop's file held %d items, want %d", n, e.mc.n)
		}
		if err == nil {
			err = e.mc.check(addr)
		}
		return wall, cpu, err
	}
}

// poll calls f every `every` until it says done or fails, for at most budget,
// and returns when the call that said done returned.
func poll(ctx context.Context, every, budget time.Duration, f func() (bool, error)) (time.Time, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	deadline := time.Now().Add(budget)
	for {
		ok, err := f()
		now := time.Now()
		if ok || err != nil {
			return now, err
		}
		if now.After(deadline) {
			return now, fmt.Errorf("not done after %s", budget)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-t.C:
		}
	}
}

// awaitCache polls DescribeServerlessCaches until the cache's status is want
// ("" = gone). tick, if set, runs after every poll.
func (e *slEnv) awaitCache(ctx context.Context, name, want string, every, budget time.Duration, tick func()) (time.Time, error) {
	st := ""
	at, err := poll(ctx, every, budget, func() (bool, error) {
		sc, err := e.describe(ctx, name)
		st = ""
		if sc != nil {
			st = aws.ToString(sc.Status)
		}
		if err == nil && st != want && (st == "create-failed" || st == "") {
			err = errors.New(e.events(ctx, types.SourceTypeServerlessCache, name))
		}
		if tick != nil {
			tick()
		}
		return st == want, err
	})
	if err != nil {
		err = fmt.Errorf("serverless cache %s is %q, waiting for %q: %w", name, st, want, err)
	}
	return at, err
}

// events is what DescribeEvents says about a serverless cache or snapshot:
// why it failed. The temporary directory, hoard.log with it, goes at exit.
func (e *slEnv) events(ctx context.Context, kind types.SourceType, name string) string {
	out, err := e.ec.DescribeEvents(ctx, &elasticache.DescribeEventsInput{
		SourceType: kind, SourceIdentifier: aws.String(name), Duration: aws.Int32(60)})
	if err != nil {
		return "DescribeEvents: " + err.Error()
	}
	var msgs []string
	for _, ev := range out.Events {
		msgs = append(msgs, aws.ToString(ev.Message))
	}
	return "events: " + strings.Join(msgs, " | ")
}

// describe is one serverless cache, or nil once hoard no longer knows it.
func (e *slEnv) describe(ctx context.Context, name string) (*types.ServerlessCache, error) {
	out, err := e.ec.DescribeServerlessCaches(ctx, &elasticache.DescribeServerlessCachesInput{ServerlessCacheName: aws.String(name)})
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && ae.ErrorCode() == "ServerlessCacheNotFoundFault":
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("DescribeServerlessCaches %s: %w", name, err)
	case len(out.ServerlessCaches) != 1:
		return nil, fmt.Errorf("DescribeServerlessCaches %s returned %d caches", name, len(out.ServerlessCaches))
	}
	return &out.ServerlessCaches[0], nil
}

// endpoint is host:port of a serverless cache.
func (e *slEnv) endpoint(ctx context.Context, name string) (string, error) {
	sc, err := e.describe(ctx, name)
	if err == nil && (sc == nil || sc.Endpoint == nil) {
		err = fmt.Errorf("serverless cache %s has no endpoint", name)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", aws.ToString(sc.Endpoint.Address), aws.ToInt32(sc.Endpoint.Port)), nil
}

// deleteCache deletes a serverless cache and waits until it is gone.
func (e *slEnv) deleteCache(ctx context.Context, name string) error {
	if _, err := e.ec.DeleteServerlessCache(ctx, &elasticache.DeleteServerlessCacheInput{ServerlessCacheName: aws.String(name)}); err != nil {
		return fmt.Errorf("DeleteServerlessCache %s: %w", name, err)
	}
	_, err := e.awaitCache(ctx, name, "", slPoll, 2*time.Minute, nil)
	return err
}

// cleanup deletes a source cache and its snapshots prefix1..prefixN.
func (e *slEnv) cleanup(ctx context.Context, cache, prefix string) error {
	for rep := 1; rep <= *snapReps; rep++ {
		name := prefix + strconv.Itoa(rep)
		if _, err := e.ec.DeleteServerlessCacheSnapshot(ctx, &elasticache.DeleteServerlessCacheSnapshotInput{ServerlessCacheSnapshotName: aws.String(name)}); err != nil {
			return fmt.Errorf("DeleteServerlessCacheSnapshot %s: %w", name, err)
		}
	}
	return e.deleteCache(ctx, cache)
}
