package main

// The clustermode scenario's resharding part: a group of 3 node groups
// without replicas holds -reshard-keys keys; ModifyReplicationGroupShardConfiguration
// takes it to 4 node groups, then to 2. The baseline is a plain Redis Cluster
// of 4 redis-server primaries the harness starts, with hoard's 3 node groups'
// slots on 3 of them and the 4th empty, the same keys, and redis-cli --cluster
// rebalance, with redis-cli's default pipeline (10 keys per MIGRATE) and with
// hoard's (1000).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/redis/go-redis/v9"
)

// cmPipelines are the baseline's redis-cli --cluster-pipeline values: its
// default, and hoard's MIGRATE batch (engine.MigrateBatchKeys).
var cmPipelines = []int{10, engine.MigrateBatchKeys}

// moveRun is one resharding: hoard's from the request to available, or one
// redis-cli run.
type moveRun struct {
	wall  time.Duration
	slots int   // slots whose primary changed
	keys  int64 // keys in those slots
	cpu   time.Duration
}

func (r moveRun) perSec(n float64) float64 { return n / r.wall.Seconds() }

// reshardResults are every run of every row, rows in print order.
type reshardResults struct {
	rows []string
	runs map[string][]moveRun
}

func (rr *reshardResults) add(row string, r moveRun) {
	if _, ok := rr.runs[row]; !ok {
		rr.rows = append(rr.rows, row)
	}
	rr.runs[row] = append(rr.runs[row], r)
}

const (
	rowHoard   = "hoard, request -> available"
	rowMigrate = "hoard, migration only (progress first > 0 -> 100%)"
)

func rowCLI(pipeline int) string {
	return fmt.Sprintf("redis-cli --cluster rebalance, pipeline %d", pipeline)
}

// reshards runs -reps resharding runs: hoard's first in odd runs, the
// baseline's first in even ones.
func (e *rgEnv) reshards(ctx context.Context, cli, baseDir string) (*reshardResults, error) {
	n := *reshardKeys
	fmt.Printf("\n== clustermode: resharding 3 -> 4 -> 2 node groups (ReplicasPerNodeGroup 0), %d keys of %d bytes, %d runs\n", n, cmValueLen, *snapReps)
	rr := &reshardResults{runs: map[string][]moveRun{}}
	var layout []string // hoard's 3 node groups' slots, for the baseline
	for rep := 1; rep <= *snapReps; rep++ {
		hoardSide := func() error {
			id := fmt.Sprintf("rs-%02d", rep)
			_, avail, g, err := e.cmCreate(ctx, id, 0)
			if err != nil {
				return err
			}
			var l []string
			for _, ng := range g.NodeGroups {
				l = append(l, aws.ToString(ng.Slots))
			}
			if layout == nil {
				layout = l
			} else if !slices.Equal(layout, l) {
				return fmt.Errorf("%s: slots %v, the first group had %v", id, l, layout)
			}
			cc := cmClient(g)
			defer cc.Close()
			load, err := cmLoad(ctx, cc, n)
			if err != nil {
				return err
			}
			fmt.Printf("  run %d hoard %s: available after %s; %d keys loaded in %s (%.0f keys/s, pipelined)\n", rep, id, secs(avail), n, secs(load), float64(n)/load.Seconds())
			cfg := endpoint(g.ConfigurationEndpoint)
			for _, step := range []struct {
				name   string
				count  int
				retain []string
			}{{"3->4", 4, nil}, {"4->2", 2, []string{"0001", "0002"}}} {
				r, mig, phases, err := e.hoardMove(ctx, id, cfg, step.count, step.retain, n)
				if err != nil {
					return fmt.Errorf("%s %s: %w", id, step.name, err)
				}
				rr.add(step.name+" "+rowHoard, r)
				if mig.wall > 0 {
					rr.add(step.name+" "+rowMigrate, mig)
				}
				g, err := e.describe(ctx, id)
				if err != nil || g == nil {
					return cmp.Or(err, errors.New("the group vanished"))
				}
				fmt.Printf("    %s: %s; %d slots, %d keys moved (%.0f keys/s); hoard CPU %s; slots now %s\n",
					step.name, phases, r.slots, r.keys, r.perSec(float64(r.keys)), secs(r.cpu), layoutString(g))
			}
			_, err = e.delete(ctx, id)
			return err
		}
		baseSide := func() error {
			if cli == "" {
				return nil
			}
			for _, p := range cmPipelines {
				if err := baselineRun(ctx, cli, filepath.Join(baseDir, fmt.Sprintf("run%d-p%d", rep, p)), layout, rep, p, n, rr); err != nil {
					return fmt.Errorf("baseline, pipeline %d: %w", p, err)
				}
			}
			return nil
		}
		sides := []func() error{hoardSide, baseSide}
		if rep%2 == 0 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return nil, err
			}
		}
	}
	return rr, nil
}

// hoardMove reshards the group to count node groups and polls until it is
// available; mig is the part of it between the first progress above 0 and
// 100%, the slots and keys scaled by the share of the migration in it.
func (e *rgEnv) hoardMove(ctx context.Context, id, cfg string, count int, retain []string, want int) (r, mig moveRun, phases string, err error) {
	before, err := slotOwners(ctx, cfg)
	if err != nil {
		return r, mig, "", err
	}
	cpu0 := procCPU(e.srv.pid())
	t0 := time.Now()
	if _, err := e.ec.ModifyReplicationGroupShardConfiguration(ctx, &elasticache.ModifyReplicationGroupShardConfigurationInput{
		ReplicationGroupId: aws.String(id), NodeGroupCount: aws.Int32(int32(count)), ApplyImmediately: aws.Bool(true), NodeGroupsToRetain: retain}); err != nil {
		return r, mig, "", fmt.Errorf("ModifyReplicationGroupShardConfiguration: %w", err)
	}
	call := time.Since(t0)
	var t1, t2 time.Time
	p1, st := 0.0, ""
	at, err := poll(ctx, cmPoll, cmBudget, func() (bool, error) {
		g, err := e.describe(ctx, id)
		if err != nil || g == nil {
			return false, cmp.Or(err, errors.New("the group vanished"))
		}
		st = aws.ToString(g.Status)
		pct := -1.0
		if pm := g.PendingModifiedValues; pm != nil && pm.Resharding != nil && pm.Resharding.SlotMigration != nil {
			pct = aws.ToFloat64(pm.Resharding.SlotMigration.ProgressPercentage)
		}
		now := time.Now()
		if pct > 0 && t1.IsZero() {
			t1, p1 = now, pct
		}
		if t2.IsZero() && !t1.IsZero() && (pct >= 100 || st == "available") {
			t2 = now
		}
		return st == "available", nil
	})
	if err != nil {
		return r, mig, "", fmt.Errorf("waiting for available (status %q): %w", st, err)
	}
	r = moveRun{wall: at.Sub(t0), cpu: procCPU(e.srv.pid()) - cpu0}
	after, err := slotOwners(ctx, cfg)
	if err != nil {
		return r, mig, "", err
	}
	if r.slots, r.keys, err = movedKeys(ctx, before, after, want); err != nil {
		return r, mig, "", err
	}
	phases = fmt.Sprintf("request %s, available after %s", ms(call), secs(r.wall))
	if !t1.IsZero() {
		phases = fmt.Sprintf("request %s, progress first %.1f%% after %s, 100%% after %s, available after %s",
			ms(call), p1, secs(t1.Sub(t0)), secs(t2.Sub(t0)), secs(r.wall))
		if frac := (100 - p1) / 100; t2.After(t1) && frac > 0 {
			mig = moveRun{wall: t2.Sub(t1), slots: int(math.Round(float64(r.slots) * frac)), keys: int64(math.Round(float64(r.keys) * frac))}
		}
	}
	return r, mig, phases, nil
}

// movedKeys counts the slots whose primary changed and the keys in them (by
// CLUSTER COUNTKEYSINSLOT on the new primary), and checks that the primaries
// hold want keys in all.
func movedKeys(ctx context.Context, before, after []string, want int) (slots int, keys int64, err error) {
	byDst := map[string][]int{}
	for s := range before {
		if after[s] == "" {
			return 0, 0, fmt.Errorf("slot %d has no primary after the move", s)
		}
		if after[s] != before[s] {
			byDst[after[s]] = append(byDst[after[s]], s)
			slots++
		}
	}
	for addr, ss := range byDst {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		cmds := make([]*redis.IntCmd, len(ss))
		_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, s := range ss {
				cmds[i] = p.ClusterCountKeysInSlot(ctx, s)
			}
			return nil
		})
		rc.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("CLUSTER COUNTKEYSINSLOT on %s: %w", addr, err)
		}
		for _, c := range cmds {
			keys += c.Val()
		}
	}
	var total int64
	for _, addr := range slices.Compact(slices.Sorted(slices.Values(after))) {
		rc := redis.NewClient(&redis.Options{Addr: addr})
		n, err := rc.DBSize(ctx).Result()
		rc.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("DBSIZE on %s: %w", addr, err)
		}
		total += n
	}
	if total != int64(want) {
		return slots, keys, fmt.Errorf("the primaries hold %d keys after the move, want %d", total, want)
	}
	return slots, keys, nil
}

// cmLoad writes n keys rk:0000000... with cmValueLen-byte values, 1000 to a pipeline.
func cmLoad(ctx context.Context, cc *redis.ClusterClient, n int) (time.Duration, error) {
	t0 := time.Now()
	pad := strings.Repeat("v", cmValueLen-8)
	for start := 0; start < n; start += 1000 {
		_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+1000, n); i++ {
				p.Set(ctx, fmt.Sprintf("rk:%07d", i), fmt.Sprintf("%08d", i)+pad, 0)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("loading keys: %w", err)
		}
	}
	return time.Since(t0), nil
}

// baseCluster is the baseline: 4 redis-server primaries in their own process groups.
type baseCluster struct {
	cmds       []*exec.Cmd
	done       []chan struct{}
	addrs, ids []string
}

// baselineRun builds a baseline cluster in dir with layout's slots on its
// first 3 nodes, loads the keys, and times redis-cli --cluster rebalance to
// 4 primaries (--cluster-use-empty-masters), then to 2 (weight 0 for the 3rd
// and 4th, as hoard keeps node groups 0001 and 0002).
func baselineRun(ctx context.Context, cli, dir string, layout []string, rep, pipeline, n int, rr *reshardResults) error {
	t0 := time.Now()
	b, err := startBaseCluster(ctx, cli, dir, layout)
	defer b.stop()
	if err != nil {
		return err
	}
	up := time.Since(t0)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.addrs[:1]})
	defer cc.Close()
	load, err := cmLoad(ctx, cc, n)
	if err != nil {
		return err
	}
	fmt.Printf("  run %d baseline, redis-cli --cluster-pipeline %d: 4 redis-servers %s, cluster ok after %s; %d keys loaded in %s\n",
		rep, pipeline, strings.Join(b.addrs, " "), secs(up), n, secs(load))
	for _, step := range []struct {
		name  string
		extra []string
	}{
		{"3->4", []string{"--cluster-use-empty-masters"}},
		{"4->2", []string{"--cluster-weight", b.ids[2] + "=0", b.ids[3] + "=0"}},
	} {
		if err := b.awaitConsistent(ctx, cli); err != nil {
			return err
		}
		before, err := slotOwners(ctx, b.addrs[0])
		if err != nil {
			return err
		}
		args := append([]string{"--cluster", "rebalance", b.addrs[0], "--cluster-pipeline", strconv.Itoa(pipeline)}, step.extra...)
		cmd := exec.CommandContext(ctx, cli, args...)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		r := moveRun{wall: time.Since(t0)}
		if err != nil {
			return fmt.Errorf("redis-cli %s: %w: %s", strings.Join(args, " "), err, tail(out, 1000))
		}
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		after, err := slotOwners(ctx, b.addrs[0])
		if err != nil {
			return err
		}
		if r.slots, r.keys, err = movedKeys(ctx, before, after, n); err != nil {
			return fmt.Errorf("after redis-cli %s: %w", strings.Join(args, " "), err)
		}
		rr.add(step.name+" "+rowCLI(pipeline), r)
		fmt.Printf("    %s: redis-cli %s: %s; %d slots, %d keys moved (%.0f keys/s); redis-cli CPU %s\n",
			step.name, strings.Join(args[1:], " "), secs(r.wall), r.slots, r.keys, r.perSec(float64(r.keys)), secs(r.cpu))
	}
	return nil
}

func startBaseCluster(ctx context.Context, cli, dir string, layout []string) (*baseCluster, error) {
	b := &baseCluster{}
	if len(layout) != cmShards {
		return b, fmt.Errorf("no slot layout of %d node groups from hoard: %v", cmShards, layout)
	}
	// The cluster bus ports (+10000) are in Linux's ephemeral range, where an
	// outgoing connection may hold one: take ports whose pair is free now.
	next := cmBasePort
	for i := range 4 {
		d := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return b, err
		}
		for ; next < cmBaseLast && !(canListen(next) && canListen(next+10000)); next++ {
		}
		if next >= cmBaseLast {
			return b, fmt.Errorf("no free port pair (p, p+10000) for the baseline in %d-%d", cmBasePort, cmBaseLast)
		}
		port := strconv.Itoa(next)
		next++
		// cluster-allow-replica-migration no: else a primary that gives away
		// its last slot turns replica, and redis-cli's next SETSLOT to it fails
		// ("Please use SETSLOT only with masters").
		cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--dir", d, "--save", "", "--appendonly", "no",
			"--cluster-allow-replica-migration", "no", "--daemonize", "no", "--logfile", "redis.log")
		cmd.Dir = d
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return b, err
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		b.cmds, b.done, b.addrs = append(b.cmds, cmd), append(b.done, done), append(b.addrs, "127.0.0.1:"+port)
	}
	clients := make([]*redis.Client, len(b.addrs))
	for i, a := range b.addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a})
		defer clients[i].Close()
	}
	for i, rc := range clients {
		if _, err := poll(ctx, 10*time.Millisecond, 10*time.Second, func() (bool, error) {
			select {
			case <-b.done[i]:
				log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d", i), "redis.log"))
				return false, fmt.Errorf("redis-server %s exited (%s): %s", b.addrs[i], b.cmds[i].ProcessState, tail(log, 600))
			default:
			}
			return rc.Ping(ctx).Err() == nil, nil
		}); err != nil {
			return b, fmt.Errorf("redis-server %s: %w", b.addrs[i], err)
		}
		if err := rc.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return b, fmt.Errorf("CLUSTER SET-CONFIG-EPOCH on %s: %w", b.addrs[i], err)
		}
		id, err := rc.ClusterMyID(ctx).Result()
		if err != nil {
			return b, err
		}
		b.ids = append(b.ids, id)
		if i < len(layout) {
			ranges, err := engine.ParseSlotRanges(layout[i])
			if err != nil {
				return b, err
			}
			args := []any{"CLUSTER", "ADDSLOTSRANGE"}
			for _, r := range ranges {
				args = append(args, r.Start, r.End)
			}
			if err := rc.Do(ctx, args...).Err(); err != nil {
				return b, fmt.Errorf("%v on %s: %w", args, b.addrs[i], err)
			}
		}
		if i > 0 {
			host, port, _ := strings.Cut(b.addrs[0], ":")
			if err := rc.ClusterMeet(ctx, host, port).Err(); err != nil {
				return b, err
			}
		}
	}
	_, err := poll(ctx, 20*time.Millisecond, 30*time.Second, func() (bool, error) {
		for _, rc := range clients {
			info, err := rc.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:4\r") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return b, fmt.Errorf("the baseline cluster is not ok with 4 nodes: %w", err)
	}
	return b, b.awaitConsistent(ctx, cli)
}

func canListen(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err == nil {
		ln.Close()
	}
	return err == nil
}

// awaitConsistent runs redis-cli --cluster check until it finds no problem.
func (b *baseCluster) awaitConsistent(ctx context.Context, cli string) error {
	var out []byte
	_, err := poll(ctx, 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		var err error
		out, err = exec.CommandContext(ctx, cli, "--cluster", "check", b.addrs[0]).CombinedOutput()
		return err == nil && !strings.Contains(string(out), "[ERR]") && !strings.Contains(string(out), "[WARNING]"), nil
	})
	if err != nil {
		return fmt.Errorf("redis-cli --cluster check %s: %w: %s", b.addrs[0], err, tail(out, 1000))
	}
	return nil
}

// stop ends every redis-server of the baseline by PID: SIGTERM, SIGKILL after 5s.
func (b *baseCluster) stop() {
	for i, cmd := range b.cmds {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done[i]:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-b.done[i]
		}
	}
}

func (rr *reshardResults) print() {
	fmt.Printf("resharding, %d keys of %d bytes, ReplicasPerNodeGroup 0 (the baseline: 4 redis-server primaries, hoard's 3 node groups' slots on 3, the 4th empty; 3->4 = --cluster-use-empty-masters, 4->2 = weight 0 for the 3rd and 4th):\n",
		*reshardKeys, cmValueLen)
	fmt.Printf("  %-4s %-52s %9s %6s %7s %8s %9s %8s   %s\n", "", "", "wall", "slots", "keys", "slots/s", "keys/s", "CPU", "every run (wall)")
	keysPS := map[string]float64{}
	for _, row := range rr.rows {
		runs := rr.runs[row]
		var walls, cpus []time.Duration
		var sps, kps []float64
		for _, r := range runs {
			walls, cpus = append(walls, r.wall), append(cpus, r.cpu)
			sps, kps = append(sps, r.perSec(float64(r.slots))), append(kps, r.perSec(float64(r.keys)))
		}
		step, name, _ := strings.Cut(row, " ")
		s, _ := medianF(sps)
		k, _ := medianF(kps)
		keysPS[row] = k
		cpu := secs(median(cpus))
		if strings.Contains(row, rowMigrate) {
			cpu = "-"
		}
		fmt.Printf("  %-4s %-52s %9s %6d %7d %8.0f %9.0f %8s   %s\n", step, name, secs(median(walls)), runs[0].slots, runs[0].keys, s, k, cpu, durs(walls))
	}
	for _, step := range []string{"3->4", "4->2"} {
		for _, p := range cmPipelines {
			base := keysPS[step+" "+rowCLI(p)]
			if base == 0 {
				continue
			}
			fmt.Printf("  %s hoard / redis-cli (pipeline %d), keys/s: request -> available %.2fx", step, p, keysPS[step+" "+rowHoard]/base)
			if m := keysPS[step+" "+rowMigrate]; m > 0 {
				fmt.Printf(", migration only %.2fx", m/base)
			}
			fmt.Println()
		}
	}
	fmt.Println("  (slots and keys: the first run's; medians of each run's rate; CPU: hoard's own process, or redis-cli's; the migration-only row's slots and keys are those moved in its window)")
}
