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
)

const (
	snapNodeType = "cache.r6g.large" // maxmemory 14037181030 (redis7), 75% of it for data
	snapPoll     = 20 * time.Millisecond
	snapBudget   = 15 * time.Minute // one operation
	srcID        = "snapsrc"
	s3Bucket     = "hoard-bench"       // in moto_server
	localBucket  = "hoard-bench-local" // <data-dir>/s3/hoard-bench-local
	snapAim      = 1.2                 // the aim: hoard within 1.2x of its baseline
)

// snapOp is one operation measured against its baseline.
type snapOp struct {
	name, baseline string          // baseline: the command it is compared with
	hoard, base    []time.Duration // wall time of each run
	hoardCPU       []time.Duration // hoard's own CPU time in each hoard run
	baseCPU        []time.Duration // the baseline process's CPU time in each run
	size           int64           // bytes of the RDB each run moves
}

// pair runs hoard's operation and the baseline once each, hoard first in odd
// runs and the baseline first in even ones, so that neither always gets the
// warmer caches. Each function returns the wall time it measured and the CPU
// time of the process doing the work.
func (op *snapOp) pair(rep int, hoardRun, baseRun func(rep int) (wall, cpu time.Duration, err error)) error {
	runs := []func() error{
		func() error {
			w, c, err := hoardRun(rep)
			op.hoard, op.hoardCPU = append(op.hoard, w), append(op.hoardCPU, c)
			return err
		},
		func() error {
			w, c, err := baseRun(rep)
			op.base, op.baseCPU = append(op.base, w), append(op.baseCPU, c)
			return err
		},
	}
	if rep%2 == 0 {
		slices.Reverse(runs)
	}
	for _, run := range runs {
		if err := run(); err != nil {
			return fmt.Errorf("%s run %d: %w", op.name, rep, err)
		}
	}
	return nil
}

// snapEnv is what the operations share.
type snapEnv struct {
	tmp, dataDir string
	hoardPID     int
	ec           *elasticache.Client
	s3c          *s3.Client
	moto         *motoServer
	srcAddr      string // the source node, host:port
	keys         int    // keys in the source node
	snapFile     string // snap-1's RDB: the file every later operation starts from
	baseDir      string // baseline outputs
}

func runSnapshots(ctx context.Context, bin, tmp string) error {
	for _, tool := range []string{redisCLI, awsCLI, "redis-server", "cp"} {
		if _, err := lookTool(tool); err != nil {
			return err
		}
	}
	m, err := startMoto(ctx, tmp)
	if m != nil {
		defer m.stop() // deferred first, so it runs after hoard and its engines are gone
	}
	if err != nil {
		return err
	}

	// The hoard running now; the deferred cleanup stops whichever it is.
	var cur *hoard
	defer func() {
		if cur == nil {
			return
		}
		cur.stop()
		if left := killEngines(tmp, cur.pid()); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "bench: killed %d engine processes left running under %s: %s\n", len(left), tmp, procList(left))
		}
	}()
	s3Flags := []string{"--s3-endpoint", m.endpoint, "--quota-manual-snapshots-per-day", "1000"}
	s3Env := []string{"HOARD_S3_ACCESS_KEY_ID=" + motoKey, "HOARD_S3_SECRET_ACCESS_KEY=" + motoSecret}
	srv, addr, err := startHoard(ctx, bin, tmp, s3Env, s3Flags...)
	cur = srv
	if err != nil {
		return err
	}
	fmt.Printf("hoard %s (pid %d, %s), data and log in %s\n", addr, srv.pid(), strings.Join(s3Flags, " "), tmp)
	fmt.Printf("moto_server %s (pid %d)\n", m.endpoint, m.cmd.Process.Pid)
	fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; hoard, engines, moto and the baseline tools on the same machine\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0))

	e := &snapEnv{tmp: tmp, dataDir: filepath.Join(tmp, "data"), hoardPID: srv.pid(),
		ec: newSDKClientTimeout("http://"+addr, 2, snapBudget), s3c: newS3Client(m.endpoint), moto: m, baseDir: filepath.Join(tmp, "baseline")}
	if err := os.MkdirAll(e.baseDir, 0o700); err != nil {
		return err
	}
	if _, err := e.s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s3Bucket)}); err != nil {
		return fmt.Errorf("creating bucket %s in moto: %w", s3Bucket, err)
	}
	if err := e.prepare(ctx); err != nil {
		return err
	}

	load0, sys0 := loadAvg(), machineCPU()
	ops := map[string]*snapOp{}
	for _, step := range []struct {
		name string
		run  func(context.Context, *snapOp) error
	}{
		{"snapshot", e.snapshot}, {"copy", e.copy}, {"export-s3", e.exportS3}, {"restore", e.restore},
	} {
		op := &snapOp{name: step.name}
		ops[step.name] = op
		if err := step.run(ctx, op); err != nil {
			return err
		}
		fmt.Printf("%-12s done: hoard %s, baseline %s\n", op.name, durs(op.hoard), durs(op.base))
	}

	// A second hoard on the same data dir, without --s3-endpoint: its buckets are
	// directories under <data-dir>/s3/. The node keeps running across the restart.
	_, hwm1 := procMem(cur.pid())
	cur.stop()
	cur = nil
	if err := os.Rename(filepath.Join(tmp, "hoard.log"), filepath.Join(tmp, "hoard-s3.log")); err != nil {
		return err
	}
	localFlags := []string{"--quota-manual-snapshots-per-day", "1000"}
	srv, addr, err = startHoard(ctx, bin, tmp, nil, localFlags...)
	cur = srv
	if err != nil {
		return err
	}
	e.hoardPID, e.ec = srv.pid(), newSDKClientTimeout("http://"+addr, 2, snapBudget)
	if _, err := awaitPoll(ctx, e.ec, srcID, "available", snapPoll, time.Minute); err != nil {
		return fmt.Errorf("after restarting hoard without --s3-endpoint: %w", err)
	}
	fmt.Printf("hoard restarted without --s3-endpoint: %s (pid %d, %s); earlier log in hoard-s3.log\n",
		addr, srv.pid(), strings.Join(localFlags, " "))
	op := &snapOp{name: "export-local"}
	ops[op.name] = op
	if err := e.exportLocal(ctx, op); err != nil {
		return err
	}
	fmt.Printf("%-12s done: hoard %s, baseline %s\n", op.name, durs(op.hoard), durs(op.base))

	sys := machineCPU()
	for i := range sys {
		sys[i] -= sys0[i]
	}
	printSnapTable(e, ops, []string{"snapshot", "copy", "export-s3", "export-local", "restore"})
	_, hwm2 := procMem(cur.pid())
	_, motoHWM := procMem(m.cmd.Process.Pid)
	_, selfHWM := procMem(os.Getpid())
	fmt.Printf("\nmemory: bench VmHWM %s; hoard VmHWM %s (with --s3-endpoint), %s (without); moto_server VmHWM %s",
		mib(selfHWM), mib(hwm1), mib(hwm2), mib(motoHWM))
	for _, p := range engineProcs(tmp, cur.pid()) {
		_, hwm := procMem(p.pid)
		fmt.Printf("; %s %d VmRSS %s, VmHWM %s", p.comm, p.pid, mib(p.rssKB), mib(hwm))
	}
	fmt.Printf("\nmachine over all runs: %.0f%% idle, %.0f%% stolen by the hypervisor (of %d CPUs); load average before them %s\n",
		100*float64(sys[1])/float64(max(sys[0], 1)), 100*float64(sys[2])/float64(max(sys[0], 1)), runtime.NumCPU(), load0)
	return e.finish(ctx)
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

// snapshot: CreateSnapshot until available, against redis-cli --rdb of the same node.
func (e *snapEnv) snapshot(ctx context.Context, op *snapOp) error {
	op.baseline = "redis-cli --rdb"
	for rep := 1; rep <= *snapReps; rep++ {
		err := op.pair(rep, func(rep int) (time.Duration, time.Duration, error) {
			name := fmt.Sprintf("snap-%d", rep)
			cpu0, t0 := procCPU(e.hoardPID), time.Now()
			if _, err := e.ec.CreateSnapshot(ctx, &elasticache.CreateSnapshotInput{CacheClusterId: aws.String(srcID), SnapshotName: aws.String(name)}); err != nil {
				return 0, 0, fmt.Errorf("CreateSnapshot: %w", err)
			}
			at, err := awaitSnapshot(ctx, e.ec, name)
			wall, cpu := at.Sub(t0), procCPU(e.hoardPID)-cpu0
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
				e.snapFile, op.size = file, fi.Size()
				return wall, cpu, nil
			}
			// Only snap-1 is kept; its cluster must be available again before the next run.
			if _, err := e.ec.DeleteSnapshot(ctx, &elasticache.DeleteSnapshotInput{SnapshotName: aws.String(name)}); err != nil {
				return wall, cpu, fmt.Errorf("DeleteSnapshot %s: %w", name, err)
			}
			_, err = awaitPoll(ctx, e.ec, srcID, "available", snapPoll, time.Minute)
			return wall, cpu, err
		}, func(rep int) (time.Duration, time.Duration, error) {
			out := filepath.Join(e.baseDir, fmt.Sprintf("redis-cli-%d.rdb", rep))
			host, port, _ := strings.Cut(e.srcAddr, ":")
			wall, cpu, err := runTool(ctx, nil, redisCLI, "-h", host, "-p", port, "--rdb", out)
			if err == nil {
				var fi os.FileInfo
				if fi, err = os.Stat(out); err == nil && op.size > 0 && absDiff(fi.Size(), op.size) > op.size/100 {
					err = fmt.Errorf("redis-cli wrote %d bytes, hoard's snapshot has %d", fi.Size(), op.size)
				}
			}
			os.Remove(out)
			return wall, cpu, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// copy: CopySnapshot (local) until it returns, against cp of snap-1's file.
func (e *snapEnv) copy(ctx context.Context, op *snapOp) error {
	op.baseline, op.size = "cp", fileSize(e.snapFile)
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
		}, e.cpBaseline(ctx, e.baseDir, op.size))
		if err != nil {
			return err
		}
	}
	return nil
}

// exportS3: CopySnapshot with TargetBucket (moto) until it returns, against
// aws s3 cp of the same file to the same bucket.
func (e *snapEnv) exportS3(ctx context.Context, op *snapOp) error {
	op.baseline, op.size = "aws s3 cp", fileSize(e.snapFile)
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
			return wall, cpu, e.checkAndDeleteObject(ctx, name+"-0001.rdb", op.size)
		}, func(rep int) (time.Duration, time.Duration, error) {
			key := fmt.Sprintf("aws-cli-%d.rdb", rep)
			wall, cpu, err := runTool(ctx, awsEnv(e.tmp), awsCLI, "s3", "cp", e.snapFile, "s3://"+s3Bucket+"/"+key,
				"--endpoint-url", e.moto.endpoint, "--only-show-errors")
			if err != nil {
				return wall, cpu, err
			}
			return wall, cpu, e.checkAndDeleteObject(ctx, key, op.size)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// exportLocal: CopySnapshot with TargetBucket to a bucket directory until it
// returns, against cp of the same file into that directory.
func (e *snapEnv) exportLocal(ctx context.Context, op *snapOp) error {
	op.baseline, op.size = "cp", fileSize(e.snapFile)
	dir := filepath.Join(e.dataDir, "s3", localBucket)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
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
		}, e.cpBaseline(ctx, dir, op.size))
		if err != nil {
			return err
		}
	}
	return nil
}

// restore: CreateCacheCluster with SnapshotName until available, against a bare
// redis-server started on a copy of the same file until it has loaded it.
func (e *snapEnv) restore(ctx context.Context, op *snapOp) error {
	op.baseline, op.size = "redis-server", fileSize(e.snapFile)
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
			return err
		}
	}
	return nil
}

// finish deletes the source cluster and checks that no engine process is left.
func (e *snapEnv) finish(ctx context.Context) error {
	if _, err := e.ec.DeleteCacheCluster(ctx, &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String(srcID)}); err != nil {
		return fmt.Errorf("DeleteCacheCluster %s: %w", srcID, err)
	}
	if _, err := awaitPoll(ctx, e.ec, srcID, "", snapPoll, 2*time.Minute); err != nil {
		return err
	}
	if left := killEngines(e.tmp, e.hoardPID); len(left) > 0 {
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
// moto does not keep every export.
func (e *snapEnv) checkAndDeleteObject(ctx context.Context, key string, size int64) error {
	head, err := e.s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("HeadObject %s: %w", key, err)
	}
	if n := aws.ToInt64(head.ContentLength); n != size {
		return fmt.Errorf("object %s has %d bytes, want %d", key, n, size)
	}
	_, err = e.s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s3Bucket), Key: aws.String(key)})
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

// printSnapTable prints the medians of every operation and its baseline.
func printSnapTable(e *snapEnv, ops map[string]*snapOp, order []string) {
	rdb := ops["snapshot"].size
	fmt.Printf("\n== snapshots: median of %d runs; RDB %.1f MB (%d bytes, %d keys); MB/s = RDB bytes / 10^6 / wall time\n",
		*snapReps, float64(rdb)/1e6, rdb, e.keys)
	fmt.Printf("%-13s %10s %10s %7s %11s %11s  %s\n", "operation", "hoard", "baseline", "ratio", "hoard MB/s", "base MB/s", "baseline")
	for _, name := range order {
		op := ops[name]
		h, b := median(op.hoard), median(op.base)
		ratio := h.Seconds() / b.Seconds()
		mark := ""
		if ratio > snapAim {
			mark = fmt.Sprintf("  > %.1fx", snapAim)
		}
		fmt.Printf("%-13s %10s %10s %6.2fx %11.1f %11.1f  %s%s\n", op.name, secs(h), secs(b), ratio,
			float64(op.size)/1e6/h.Seconds(), float64(op.size)/1e6/b.Seconds(), op.baseline, mark)
	}
	fmt.Println("\nevery run, in order (wall time; CPU time of hoard itself, or of the baseline process):")
	for _, name := range order {
		op := ops[name]
		fmt.Printf("%-13s hoard    %s  (hoard CPU %s)\n", op.name, durs(op.hoard), durs(op.hoardCPU))
		fmt.Printf("%-13s %-8s %s  (%s CPU %s)\n", "", "baseline", durs(op.base), op.baseline, durs(op.baseCPU))
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

// cpBaseline is the baseline of copy and export-local: cp of the snapshot's file
// into dir, checked for size and removed.
func (e *snapEnv) cpBaseline(ctx context.Context, dir string, size int64) func(int) (time.Duration, time.Duration, error) {
	return func(rep int) (time.Duration, time.Duration, error) {
		out := filepath.Join(dir, fmt.Sprintf("cp-%d.rdb", rep))
		wall, cpu, err := runTool(ctx, nil, "cp", e.snapFile, out)
		if err == nil && fileSize(out) != size {
			err = fmt.Errorf("cp wrote %d bytes, want %d", fileSize(out), size)
		}
		os.Remove(out)
		return wall, cpu, err
	}
}
