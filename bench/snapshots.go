package main

// The snapshots scenario: each snapshot operation of hoard beside the plain tool
// doing the same work on the same data, in the same run. One redis cluster holds
// a large dataset; hoard snapshots it, copies the snapshot, exports it to S3
// (moto_server) and to a local bucket directory, and restores it into a new
// cluster. The baselines are redis-cli --rdb, cp, aws s3 cp and a bare
// redis-server loading the RDB.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var (
	datasetMB = flag.Int("dataset-mb", 1024, "snapshots: MiB of values written to the source cluster (random, 1-10 KiB each)")
	snapReps  = flag.Int("reps", 3, "snapshots: runs of each operation and of its baseline; the table shows medians")
	s3Flag    = flag.String("s3", "moto", "snapshots: S3 servers that export-s3 uploads to, comma-separated: moto, versitygw")
	opsFlag   = flag.String("ops", strings.Join(snapRows, ","), "snapshots: operations to measure, comma-separated")
)

// snapRows are the operations of the snapshots scenario, in the order they run
// (export-s3 once per -s3 server, export-local after those, with another hoard).
var snapRows = []string{"snapshot", "copy", "export-s3", "restore", "export-local"}

const (
	snapNodeType = "cache.r6g.large" // maxmemory 14037181030 (redis7), 75% of it for data
	snapPoll     = 20 * time.Millisecond
	snapBudget   = 15 * time.Minute // one operation
	srcID        = "snapsrc"
	s3Bucket     = "hoard-bench"       // in each S3 server
	localBucket  = "hoard-bench-local" // <data-dir>/s3/hoard-bench-local
	snapAim      = 1.2                 // the aim: hoard within 1.2x of its baseline
)

// runs are the wall and CPU times of one side of a comparison, run after run.
type runs struct {
	name      string // the command (for a baseline)
	wall, cpu []time.Duration
}

// runFunc runs one side once and returns the wall time it measured and the CPU
// time of the process doing the work.
type runFunc func(rep int) (wall, cpu time.Duration, err error)

// snapOp is one operation measured against one or more baselines.
type snapOp struct {
	name  string
	hoard runs    // CPU: hoard's own
	bases []*runs // CPU: the baseline process's, with its children
	size  int64   // bytes of the RDB each run moves
}

// pair runs hoard's operation and each baseline once, hoard first in odd runs
// and last in even ones (the baselines in reverse order then too), so that
// neither always gets the warmer caches.
func (op *snapOp) pair(rep int, hoardRun runFunc, baseRuns ...runFunc) error {
	if len(op.bases) != len(baseRuns) {
		panic("snapOp.pair: one baseline name per baseline run")
	}
	record := func(r *runs, run runFunc) func() error {
		return func() error {
			w, c, err := run(rep)
			r.wall, r.cpu = append(r.wall, w), append(r.cpu, c)
			return err
		}
	}
	order := []func() error{record(&op.hoard, hoardRun)}
	for i, run := range baseRuns {
		order = append(order, record(op.bases[i], run))
	}
	if rep%2 == 0 {
		slices.Reverse(order)
	}
	for _, run := range order {
		if err := run(); err != nil {
			return fmt.Errorf("%s run %d: %w", op.name, rep, err)
		}
	}
	return nil
}

func newOp(name string, baselines ...string) *snapOp {
	op := &snapOp{name: name}
	for _, b := range baselines {
		op.bases = append(op.bases, &runs{name: b})
	}
	return op
}

// snapEnv is what the operations share.
type snapEnv struct {
	tmp, dataDir string
	hoardPID     int
	ec           *elasticache.Client
	srcAddr      string // the source node, host:port
	keys         int    // keys in the source node
	snapFile     string // snap-1's RDB: the file every later operation starts from
	size         int64  // its size
	baseDir      string // baseline outputs
	serverPIDs   []int  // the S3 servers: not engines, though versitygw's data is under tmp
}

// snapFlags parses -ops and -s3: the operations to run and the S3 servers
// export-s3 needs (none without export-s3).
func snapFlags() (ops map[string]bool, servers []string, err error) {
	ops = map[string]bool{}
	for _, o := range strings.Split(*opsFlag, ",") {
		o = strings.TrimSpace(o)
		if !slices.Contains(snapRows, o) {
			return nil, nil, fmt.Errorf("-ops: unknown operation %q (want some of %s)", o, strings.Join(snapRows, ","))
		}
		ops[o] = true
	}
	if !ops["export-s3"] {
		return ops, nil, nil
	}
	for _, k := range strings.Split(*s3Flag, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(s3Kinds, k) {
			return nil, nil, fmt.Errorf("-s3: unknown S3 server %q (want some of %s)", k, strings.Join(s3Kinds, ","))
		}
		if !slices.Contains(servers, k) {
			servers = append(servers, k)
		}
	}
	return ops, servers, nil
}

func runSnapshots(ctx context.Context, bin, tmp string) error {
	ops, kinds, err := snapFlags()
	if err != nil {
		return err
	}
	tools := []string{redisCLI, "redis-server", "cp", "sh", "sync"}
	if len(kinds) > 0 {
		tools = append(tools, awsCLI)
	}
	for _, tool := range tools {
		if _, err := lookTool(tool); err != nil {
			return err
		}
	}
	for _, kind := range kinds {
		if _, err := s3Bin(kind); err != nil {
			return err
		}
	}
	// The S3 servers, stopped by PID once hoard and its engines are gone (this
	// defer runs after the one below). A missing server ends the run here, before
	// any data is written.
	var servers []*s3Server
	defer func() {
		for _, m := range servers {
			m.stop()
		}
	}()
	for _, kind := range kinds {
		m, err := startS3(ctx, kind, tmp)
		if m != nil {
			servers = append(servers, m)
		}
		if err != nil {
			return err
		}
		if _, err := m.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
			return fmt.Errorf("creating bucket %s in %s: %w", s3Bucket, kind, err)
		}
		fmt.Printf("%s %s (pid %d), log in %s.log\n", kind, m.endpoint, m.cmd.Process.Pid, kind)
	}

	// The hoard running now; the deferred cleanup stops whichever it is.
	var cur *hoard
	defer func() {
		if cur == nil {
			return
		}
		cur.stop()
		if left := killEngines(tmp, append(serverPIDs(servers), cur.pid())...); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "bench: killed %d engine processes left running under %s: %s\n", len(left), tmp, procList(left))
		}
	}()
	e := &snapEnv{tmp: tmp, dataDir: filepath.Join(tmp, "data"), baseDir: filepath.Join(tmp, "baseline"), serverPIDs: serverPIDs(servers)}
	if err := os.MkdirAll(e.baseDir, 0o700); err != nil {
		return err
	}

	// One hoard per S3 server, with --s3-endpoint toward it, then one without
	// (whose buckets are directories under <data-dir>/s3/) for export-local. All
	// run on the same data dir; the source node keeps running across restarts
	// and each new hoard adopts it. The first hoard also runs the other rows.
	phases := slices.Clone(servers)
	if ops["export-local"] || len(phases) == 0 {
		phases = append(phases, nil)
	}
	var done []*snapOp
	var memNotes []string
	var load0 string
	var sys0 [3]int
	for i, m := range phases {
		if cur != nil {
			_, hwm := procMem(cur.pid())
			memNotes = append(memNotes, fmt.Sprintf("hoard VmHWM %s (%s)", mib(hwm), hoardRole(phases[i-1])))
			cur.stop()
			cur = nil
			kept := "hoard-local.log"
			if prev := phases[i-1]; prev != nil {
				kept = "hoard-" + prev.kind + ".log"
			}
			if err := os.Rename(filepath.Join(tmp, "hoard.log"), filepath.Join(tmp, kept)); err != nil {
				return err
			}
			fmt.Printf("hoard stopped; its log is %s\n", kept)
		}
		flags := []string{"--quota-manual-snapshots-per-day", "1000"}
		var env []string
		if m != nil {
			flags = append([]string{"--s3-endpoint", m.endpoint}, flags...)
			env = []string{"HOARD_S3_ACCESS_KEY_ID=" + s3Key, "HOARD_S3_SECRET_ACCESS_KEY=" + s3Secret}
		}
		srv, addr, err := startHoard(ctx, bin, tmp, env, flags...)
		cur = srv
		if err != nil {
			return err
		}
		e.hoardPID, e.ec = srv.pid(), newSDKClientTimeout("http://"+addr, 2, snapBudget)
		fmt.Printf("hoard %s (pid %d, %s), data and log in %s\n", addr, srv.pid(), strings.Join(flags, " "), tmp)

		var steps []func(context.Context) (*snapOp, error)
		if i == 0 {
			fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; hoard, engines, S3 servers and the baseline tools on the same machine\n",
				runtime.NumCPU(), runtime.GOMAXPROCS(0))
			if err := e.prepare(ctx); err != nil {
				return err
			}
			load0, sys0 = loadAvg(), machineCPU()
			steps = append(steps, e.snapshot(ops["snapshot"]))
			if ops["copy"] {
				steps = append(steps, e.copy)
			}
		} else if _, err := awaitPoll(ctx, e.ec, srcID, "available", snapPoll, time.Minute); err != nil {
			return fmt.Errorf("after restarting hoard: %w", err)
		}
		if m != nil {
			steps = append(steps, e.exportS3(m))
		} else if ops["export-local"] {
			steps = append(steps, e.exportLocal)
		}
		if i == 0 && ops["restore"] {
			steps = append(steps, e.restore)
		}
		for _, step := range steps {
			op, err := step(ctx)
			if err != nil {
				return err
			}
			if op == nil { // snap-1 taken untimed: snapshot is not in -ops
				continue
			}
			done = append(done, op)
			line := fmt.Sprintf("%-16s done: hoard %s", op.name, durs(op.hoard.wall))
			for _, b := range op.bases {
				line += fmt.Sprintf(", %s %s", b.name, durs(b.wall))
			}
			fmt.Println(line)
		}
	}

	sys := machineCPU()
	for i := range sys {
		sys[i] -= sys0[i]
	}
	printSnapTable(e, done)
	_, hwm := procMem(cur.pid())
	memNotes = append(memNotes, fmt.Sprintf("hoard VmHWM %s (%s)", mib(hwm), hoardRole(phases[len(phases)-1])))
	_, selfHWM := procMem(os.Getpid())
	fmt.Printf("\nmemory: bench VmHWM %s; %s", mib(selfHWM), strings.Join(memNotes, ", "))
	for _, m := range servers {
		_, h := procMem(m.cmd.Process.Pid)
		fmt.Printf("; %s VmHWM %s", m.kind, mib(h))
	}
	for _, p := range engineProcs(tmp, append(e.serverPIDs, cur.pid())...) {
		_, hwm := procMem(p.pid)
		fmt.Printf("; %s %d VmRSS %s, VmHWM %s", p.comm, p.pid, mib(p.rssKB), mib(hwm))
	}
	fmt.Printf("\nmachine over all runs: %.0f%% idle, %.0f%% stolen by the hypervisor (of %d CPUs); load average before them %s\n",
		100*float64(sys[1])/float64(max(sys[0], 1)), 100*float64(sys[2])/float64(max(sys[0], 1)), runtime.NumCPU(), load0)
	return e.finish(ctx)
}

func serverPIDs(servers []*s3Server) []int {
	var pids []int
	for _, m := range servers {
		pids = append(pids, m.cmd.Process.Pid)
	}
	return pids
}

// hoardRole names a hoard by its bucket storage: the S3 server, or local.
func hoardRole(m *s3Server) string {
	if m == nil {
		return "local buckets"
	}
	return "--s3-endpoint " + m.kind
}

// prepare creates the source cluster and writes the dataset into it.
func (e *snapEnv) prepare(ctx context.Context) error {
	t0 := time.Now()
	if _, err := e.ec.CreateCacheCluster(ctx, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(srcID),
		Engine: aws.String("redis"), CacheNodeType: aws.String(snapNodeType), NumCacheNodes: aws.Int32(1)}); err != nil {
		return fmt.Errorf("create %s: %w", srcID, err)
	}
	if _, err := awaitPoll(ctx, e.ec, srcID, "available", snapPoll, time.Minute); err != nil {
		return err
	}
	addr, err := nodeAddr(ctx, e.ec, srcID)
	if err != nil {
		return err
	}
	e.srcAddr = addr
	fmt.Printf("\n== snapshots: one %s redis cluster (%s, available after %s), %d MiB of values, %d runs of each operation and baseline\n",
		snapNodeType, addr, secs(time.Since(t0)), *datasetMB, *snapReps)
	t0 = time.Now()
	keys, bytes, err := loadDataset(ctx, addr, int64(*datasetMB)<<20)
	if err != nil {
		return fmt.Errorf("writing the dataset: %w", err)
	}
	d := time.Since(t0)
	e.keys = keys
	used, err := redisInfoField(addr, "memory", "used_memory_human")
	if err != nil {
		return err
	}
	fmt.Printf("%-12s %d keys, %.1f MiB of values (%d-%d bytes, random) by pipelined SET in %s (%.0f MB/s); used_memory %s\n",
		"dataset", keys, float64(bytes)/(1<<20), minValue, maxValue, secs(d), float64(bytes)/1e6/d.Seconds(), used)
	return nil
}

// snapshot: CreateSnapshot until available, against redis-cli --rdb of the same
// node. Its first run makes snap-1, the file every later operation starts from;
// when snapshot is not in -ops, snap-1 is taken once, untimed, and the step
// returns no operation.
func (e *snapEnv) snapshot(timed bool) func(context.Context) (*snapOp, error) {
	return func(ctx context.Context) (*snapOp, error) {
		if !timed {
			_, _, err := e.takeSnapshot(ctx, 1)
			return nil, err
		}
		op := newOp("snapshot", "redis-cli --rdb")
		for rep := 1; rep <= *snapReps; rep++ {
			err := op.pair(rep, func(rep int) (time.Duration, time.Duration, error) {
				return e.takeSnapshot(ctx, rep)
			}, func(rep int) (time.Duration, time.Duration, error) {
				out := filepath.Join(e.baseDir, fmt.Sprintf("redis-cli-%d.rdb", rep))
				host, port, _ := strings.Cut(e.srcAddr, ":")
				wall, cpu, err := runTool(ctx, nil, redisCLI, "-h", host, "-p", port, "--rdb", out)
				if err == nil {
					var fi os.FileInfo
					if fi, err = os.Stat(out); err == nil && e.size > 0 && absDiff(fi.Size(), e.size) > e.size/100 {
						err = fmt.Errorf("redis-cli wrote %d bytes, hoard's snapshot has %d", fi.Size(), e.size)
					}
				}
				os.Remove(out)
				return wall, cpu, err
			})
			if err != nil {
				return op, err
			}
		}
		op.size = e.size
		return op, nil
	}
}

// takeSnapshot takes snap-<rep> and times it. snap-1 is kept (e.snapFile); the
// others are deleted again.
func (e *snapEnv) takeSnapshot(ctx context.Context, rep int) (wall, cpu time.Duration, err error) {
	name := fmt.Sprintf("snap-%d", rep)
	cpu0, t0 := procCPU(e.hoardPID), time.Now()
	if _, err := e.ec.CreateSnapshot(ctx, &elasticache.CreateSnapshotInput{CacheClusterId: aws.String(srcID), SnapshotName: aws.String(name)}); err != nil {
		return 0, 0, fmt.Errorf("CreateSnapshot: %w", err)
	}
	at, err := awaitSnapshot(ctx, e.ec, name)
	wall, cpu = at.Sub(t0), procCPU(e.hoardPID)-cpu0
	if err != nil {
		return wall, cpu, err
	}
	file, err := e.snapshotFile(ctx, name)
	if err != nil {
		return wall, cpu, err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return wall, cpu, err
	}
	if rep == 1 {
		e.snapFile, e.size = file, fi.Size()
		return wall, cpu, nil
	}
	// Only snap-1 is kept; its cluster must be available again before the next run.
	if _, err := e.ec.DeleteSnapshot(ctx, &elasticache.DeleteSnapshotInput{SnapshotName: aws.String(name)}); err != nil {
		return wall, cpu, fmt.Errorf("DeleteSnapshot %s: %w", name, err)
	}
	_, err = awaitPoll(ctx, e.ec, srcID, "available", snapPoll, time.Minute)
	return wall, cpu, err
}

// copy: CopySnapshot (local) until it returns, against cp of snap-1's file, and
// against cp followed by an fsync of the copy and its directory.
func (e *snapEnv) copy(ctx context.Context) (*snapOp, error) {
	op := newOp("copy", cpName, cpSyncName)
	op.size = e.size
	for rep := 1; rep <= *snapReps; rep++ {
		err := op.pair(rep, func(rep int) (time.Duration, time.Duration, error) {
			name := fmt.Sprintf("copy-%d", rep)
			cpu0, t0 := procCPU(e.hoardPID), time.Now()
			_, err := e.ec.CopySnapshot(ctx, &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-1"), TargetSnapshotName: aws.String(name)})
			wall, cpu := time.Since(t0), procCPU(e.hoardPID)-cpu0
			if err != nil {
				return wall, cpu, fmt.Errorf("CopySnapshot: %w", err)
			}
			file, err := e.snapshotFile(ctx, name)
			if err != nil {
				return wall, cpu, err
			}
			if n := fileSize(file); n != op.size {
				return wall, cpu, fmt.Errorf("the copy %s has %d bytes, want %d", name, n, op.size)
			}
			if _, err := e.ec.DeleteSnapshot(ctx, &elasticache.DeleteSnapshotInput{SnapshotName: aws.String(name)}); err != nil {
				return wall, cpu, fmt.Errorf("DeleteSnapshot %s: %w", name, err)
			}
			return wall, cpu, nil
		}, e.cpBaseline(ctx, e.baseDir, false), e.cpBaseline(ctx, e.baseDir, true))
		if err != nil {
			return op, err
		}
	}
	return op, nil
}

// exportS3: CopySnapshot with TargetBucket (in the S3 server m, which is hoard's
// --s3-endpoint) until it returns, against aws s3 cp of the same file to the
// same bucket.
func (e *snapEnv) exportS3(m *s3Server) func(context.Context) (*snapOp, error) {
	return func(ctx context.Context) (*snapOp, error) {
		op := newOp("export-"+m.kind, "aws s3 cp")
		op.size = e.size
		for rep := 1; rep <= *snapReps; rep++ {
			err := op.pair(rep, func(rep int) (time.Duration, time.Duration, error) {
				name := fmt.Sprintf("export-%d", rep)
				cpu0, t0 := procCPU(e.hoardPID), time.Now()
				_, err := e.ec.CopySnapshot(ctx, &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-1"),
					TargetSnapshotName: aws.String(name), TargetBucket: aws.String(s3Bucket)})
				wall, cpu := time.Since(t0), procCPU(e.hoardPID)-cpu0
				if err != nil {
					return wall, cpu, fmt.Errorf("CopySnapshot to bucket %s: %w", s3Bucket, err)
				}
				return wall, cpu, checkAndDeleteObject(ctx, m, name+"-0001.rdb", op.size)
			}, func(rep int) (time.Duration, time.Duration, error) {
				key := fmt.Sprintf("aws-cli-%d.rdb", rep)
				wall, cpu, err := runTool(ctx, awsEnv(e.tmp), awsCLI, "s3", "cp", e.snapFile, "s3://"+s3Bucket+"/"+key,
					"--endpoint-url", m.endpoint, "--only-show-errors")
				if err != nil {
					return wall, cpu, err
				}
				return wall, cpu, checkAndDeleteObject(ctx, m, key, op.size)
			})
			if err != nil {
				return op, err
			}
		}
		return op, nil
	}
}

// exportLocal: CopySnapshot with TargetBucket to a bucket directory until it
// returns, against cp (and cp with fsync) of the same file into that directory.
func (e *snapEnv) exportLocal(ctx context.Context) (*snapOp, error) {
	op := newOp("export-local", cpName, cpSyncName)
	op.size = e.size
	dir := filepath.Join(e.dataDir, "s3", localBucket)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return op, err
	}
	for rep := 1; rep <= *snapReps; rep++ {
		err := op.pair(rep, func(rep int) (time.Duration, time.Duration, error) {
			name := fmt.Sprintf("export-%d", rep)
			cpu0, t0 := procCPU(e.hoardPID), time.Now()
			_, err := e.ec.CopySnapshot(ctx, &elasticache.CopySnapshotInput{SourceSnapshotName: aws.String("snap-1"),
				TargetSnapshotName: aws.String(name), TargetBucket: aws.String(localBucket)})
			wall, cpu := time.Since(t0), procCPU(e.hoardPID)-cpu0
			if err != nil {
				return wall, cpu, fmt.Errorf("CopySnapshot to bucket %s: %w", localBucket, err)
			}
			out := filepath.Join(dir, name+"-0001.rdb")
			if n := fileSize(out); n != op.size {
				err = fmt.Errorf("%s has %d bytes, want %d", out, n, op.size)
			}
			os.Remove(out)
			return wall, cpu, err
		}, e.cpBaseline(ctx, dir, false), e.cpBaseline(ctx, dir, true))
		if err != nil {
			return op, err
		}
	}
	return op, nil
}

// restore: CreateCacheCluster with SnapshotName until available, against a bare
// redis-server started on a copy of the same file until it has loaded it.
func (e *snapEnv) restore(ctx context.Context) (*snapOp, error) {
	op := newOp("restore", "redis-server")
	op.size = e.size
	for rep := 1; rep <= *snapReps; rep++ {
		err := op.pair(rep, func(rep int) (time.Duration, time.Duration, error) {
			id := fmt.Sprintf("restore-%d", rep)
			cpu0, t0 := procCPU(e.hoardPID), time.Now()
			if _, err := e.ec.CreateCacheCluster(ctx, &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(id),
				Engine: aws.String("redis"), CacheNodeType: aws.String(snapNodeType), NumCacheNodes: aws.Int32(1),
				SnapshotName: aws.String("snap-1")}); err != nil {
				return 0, 0, fmt.Errorf("CreateCacheCluster %s: %w", id, err)
			}
			at, err := awaitPoll(ctx, e.ec, id, "available", snapPoll, snapBudget)
			wall, cpu := at.Sub(t0), procCPU(e.hoardPID)-cpu0
			if err != nil {
				return wall, cpu, err
			}
			addr, err := nodeAddr(ctx, e.ec, id)
			if err == nil {
				err = checkKeys(addr, e.keys)
			}
			if err != nil {
				return wall, cpu, fmt.Errorf("%s: %w", id, err)
			}
			if _, err := e.ec.DeleteCacheCluster(ctx, &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String(id)}); err != nil {
				return wall, cpu, fmt.Errorf("DeleteCacheCluster %s: %w", id, err)
			}
			_, err = awaitPoll(ctx, e.ec, id, "", snapPoll, 2*time.Minute)
			return wall, cpu, err
		}, func(rep int) (time.Duration, time.Duration, error) {
			return e.baselineRestore(ctx, rep)
		})
		if err != nil {
			return op, err
		}
	}
	return op, nil
}

// finish deletes the source cluster and checks that no engine process is left.
func (e *snapEnv) finish(ctx context.Context) error {
	if _, err := e.ec.DeleteCacheCluster(ctx, &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String(srcID)}); err != nil {
		return fmt.Errorf("DeleteCacheCluster %s: %w", srcID, err)
	}
	if _, err := awaitPoll(ctx, e.ec, srcID, "", snapPoll, 2*time.Minute); err != nil {
		return err
	}
	if left := killEngines(e.tmp, append(e.serverPIDs, e.hoardPID)...); len(left) > 0 {
		fmt.Printf("PROBLEM      %d processes still running under %s after the last cluster was gone; killed them by PID: %s\n",
			len(left), e.tmp, procList(left))
		return fmt.Errorf("%d processes left running", len(left))
	}
	fmt.Printf("%-12s none: no process has its cwd or command line under %s\n", "leftovers", e.tmp)
	return nil
}

// snapshotFile is where hoard keeps a snapshot's (single) node RDB:
// <data-dir>/snapshots/<account>/<region>/<name>/<node id>.rdb.
func (e *snapEnv) snapshotFile(ctx context.Context, name string) (string, error) {
	out, err := e.ec.DescribeSnapshots(ctx, &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String(name)})
	if err != nil {
		return "", err
	}
	if len(out.Snapshots) != 1 || len(out.Snapshots[0].NodeSnapshots) != 1 {
		return "", fmt.Errorf("snapshot %s: want one snapshot of one node", name)
	}
	node := aws.ToString(out.Snapshots[0].NodeSnapshots[0].CacheNodeId)
	return filepath.Join(e.dataDir, "snapshots", account, region, name, node+".rdb"), nil
}

// checkAndDeleteObject checks an exported object's size and deletes it, so that
// the server does not keep every export.
func checkAndDeleteObject(ctx context.Context, m *s3Server, key string, size int64) error {
	head, err := m.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("HeadObject %s in %s: %w", key, m.kind, err)
	}
	if n := aws.ToInt64(head.ContentLength); n != size {
		return fmt.Errorf("object %s in %s has %d bytes, want %d", key, m.kind, n, size)
	}
	_, err = m.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
	return err
}

// awaitSnapshot polls DescribeSnapshots every snapPoll until the snapshot is
// available and returns when the reply that said so arrived.
func awaitSnapshot(ctx context.Context, c *elasticache.Client, name string) (time.Time, error) {
	tick := time.NewTicker(snapPoll)
	defer tick.Stop()
	deadline := time.Now().Add(snapBudget)
	for {
		out, err := c.DescribeSnapshots(ctx, &elasticache.DescribeSnapshotsInput{SnapshotName: aws.String(name)})
		now := time.Now()
		if err != nil {
			return now, fmt.Errorf("DescribeSnapshots %s: %w", name, err)
		}
		if len(out.Snapshots) != 1 {
			return now, fmt.Errorf("DescribeSnapshots %s returned %d snapshots", name, len(out.Snapshots))
		}
		switch st := aws.ToString(out.Snapshots[0].SnapshotStatus); st {
		case "available":
			return now, nil
		case "failed":
			return now, fmt.Errorf("snapshot %s failed (hoard.log says why)", name)
		default:
			if now.After(deadline) {
				return now, fmt.Errorf("snapshot %s still %q after %s", name, st, snapBudget)
			}
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-tick.C:
		}
	}
}

// nodeAddr is host:port of a cluster's first node.
func nodeAddr(ctx context.Context, c *elasticache.Client, id string) (string, error) {
	out, err := c.DescribeCacheClusters(ctx, &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String(id), ShowCacheNodeInfo: aws.Bool(true)})
	if err != nil {
		return "", err
	}
	if len(out.CacheClusters) != 1 || len(out.CacheClusters[0].CacheNodes) == 0 || out.CacheClusters[0].CacheNodes[0].Endpoint == nil {
		return "", errors.New("no node endpoint in DescribeCacheClusters")
	}
	ep := out.CacheClusters[0].CacheNodes[0].Endpoint
	return fmt.Sprintf("%s:%d", aws.ToString(ep.Address), aws.ToInt32(ep.Port)), nil
}

// printSnapTable prints the medians of every operation against each of its
// baselines, then every run.
func printSnapTable(e *snapEnv, ops []*snapOp) {
	fmt.Printf("\n== snapshots: median of %d runs; RDB %.1f MB (%d bytes, %d keys); MB/s = RDB bytes / 10^6 / wall time\n",
		*snapReps, float64(e.size)/1e6, e.size, e.keys)
	fmt.Printf("%-16s %10s %10s %7s %11s %11s  %s\n", "operation", "hoard", "baseline", "ratio", "hoard MB/s", "base MB/s", "baseline")
	for _, op := range ops {
		h := median(op.hoard.wall)
		for _, b := range op.bases {
			m := median(b.wall)
			ratio := h.Seconds() / m.Seconds()
			mark := ""
			if ratio > snapAim {
				mark = fmt.Sprintf("  > %.1fx", snapAim)
			}
			fmt.Printf("%-16s %10s %10s %6.2fx %11.1f %11.1f  %s%s\n", op.name, secs(h), secs(m), ratio,
				float64(op.size)/1e6/h.Seconds(), float64(op.size)/1e6/m.Seconds(), b.name, mark)
		}
	}
	fmt.Println("\nevery run, in order (wall time; CPU time of hoard itself, or of the baseline process):")
	for _, op := range ops {
		fmt.Printf("%-16s %-10s %s  (hoard CPU %s)\n", op.name, "hoard", durs(op.hoard.wall), durs(op.hoard.cpu))
		for _, b := range op.bases {
			fmt.Printf("%-16s %-10s %s  (%s CPU %s)\n", "", b.name, durs(b.wall), b.name, durs(b.cpu))
		}
	}
}

// loadAvg is the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAvg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2] // the lower middle for an even count
}

// secs formats a duration in seconds from 1s up, else in milliseconds.
func secs(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return ms(d)
}

func durs(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = secs(d)
	}
	return strings.Join(s, " ")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// The baselines of copy and export-local.
const (
	cpName     = "cp"
	cpSyncName = "cp+sync"
)

// cpBaseline is a baseline of copy and export-local: cp of the snapshot's file
// into dir, checked for size and removed. cp (coreutils) copies with
// copy_file_range and does not fsync. With fsync, `sync FILE DIR` follows it
// (fsync of the copy, then of its directory), which is the durability hoard
// gives its copy before it replies.
func (e *snapEnv) cpBaseline(ctx context.Context, dir string, fsync bool) runFunc {
	return func(rep int) (time.Duration, time.Duration, error) {
		out := filepath.Join(dir, fmt.Sprintf("cp-%d.rdb", rep))
		var wall, cpu time.Duration
		var err error
		if fsync {
			wall, cpu, err = runTool(ctx, nil, "sh", "-c", `cp -- "$1" "$2" && sync -- "$2" "$3"`, "sh", e.snapFile, out, dir)
		} else {
			wall, cpu, err = runTool(ctx, nil, "cp", e.snapFile, out)
		}
		if err == nil && fileSize(out) != e.size {
			err = fmt.Errorf("cp wrote %d bytes, want %d", fileSize(out), e.size)
		}
		os.Remove(out)
		return wall, cpu, err
	}
}
