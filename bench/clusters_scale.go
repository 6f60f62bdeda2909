package main

// The scale phase of the clusters scenario: a few hundred clusters at once.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/aws-sdk-go-v2/service/elasticache/types"
	"github.com/aws/smithy-go"
)

// parallel calls fn for 0..n-1 from w goroutines; the first error stops the rest.
func parallel(ctx context.Context, n, w int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// errStaleMarker is hoard refusing a Marker it issued: its markers are offsets, and
// one past the end of a list that shrank meanwhile is "invalid".
var errStaleMarker = errors.New("hoard rejected the marker of its previous page")

// listAll pages through every cluster with MaxRecords 100.
func listAll(ctx context.Context, c *elasticache.Client, showNodes bool) (clusters []types.CacheCluster, pages int, err error) {
	in := &elasticache.DescribeCacheClustersInput{MaxRecords: aws.Int32(100)}
	if showNodes {
		in.ShowCacheNodeInfo = aws.Bool(true)
	}
	for {
		out, err := c.DescribeCacheClusters(ctx, in)
		var ae smithy.APIError
		if in.Marker != nil && errors.As(err, &ae) && ae.ErrorCode() == "InvalidParameterValue" {
			return nil, pages, fmt.Errorf("%w: %v", errStaleMarker, err)
		}
		if err != nil {
			return nil, pages, err
		}
		pages++
		clusters = append(clusters, out.CacheClusters...)
		if aws.ToString(out.Marker) == "" {
			return clusters, pages, nil
		}
		in.Marker = out.Marker
	}
}

// stamps records, per cluster index, when an action was sent; the scale phase's
// poller reads them while the workers write them.
type stamps struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (s *stamps) set(id string, t time.Time) { s.mu.Lock(); s.at[id] = t; s.mu.Unlock() }

func (s *stamps) get(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return t, ok
}

// pollAll lists every cluster every scalePoll until every id is settled. For each
// id, mark is called once, at the first listing in which settled(id) holds. A
// listing hoard cuts short with errStaleMarker is dropped and counted in restarts.
//
// hoard's markers are offsets, so a listing taken while clusters come and go may
// skip or repeat some: seeing a cluster with a status is proof, missing from a
// listing is not (settled must check that itself).
func pollAll(ctx context.Context, c *elasticache.Client, ids []string,
	settled func(ctx context.Context, id string, byID map[string]types.CacheCluster) (bool, error),
	mark func(id string, at time.Time)) (restarts int, err error) {
	tick := time.NewTicker(scalePoll)
	defer tick.Stop()
	deadline := time.Now().Add(scaleBudget)
	marked := map[string]bool{}
	for {
		list, _, err := listAll(ctx, c, false)
		switch {
		case errors.Is(err, errStaleMarker):
			restarts++
		case err != nil:
			return restarts, fmt.Errorf("describe all: %w", err)
		default:
			byID := make(map[string]types.CacheCluster, len(list))
			for _, cl := range list {
				byID[aws.ToString(cl.CacheClusterId)] = cl
			}
			for _, id := range ids {
				if marked[id] {
					continue
				}
				ok, err := settled(ctx, id, byID)
				if err != nil {
					return restarts, err
				}
				if ok {
					marked[id] = true
					mark(id, time.Now())
				}
			}
		}
		if len(marked) == len(ids) {
			return restarts, nil
		}
		if time.Now().After(deadline) {
			return restarts, fmt.Errorf("after %s only %d of %d clusters are done", scaleBudget, len(marked), len(ids))
		}
		select {
		case <-ctx.Done():
			return restarts, ctx.Err()
		case <-tick.C:
		}
	}
}

// phaseResult is what phase measured.
type phaseResult struct {
	calls     []time.Duration // each API call, sent to reply
	settle    []time.Duration // each cluster, call sent to the poll that saw it settled
	callsDone time.Duration   // first call sent to last reply
	allDone   time.Duration   // first call sent to every cluster settled
	cpu       time.Duration   // hoard's CPU time over allDone
	restarts  int             // listings dropped for a stale marker
}

// phase sends call(id) for every id from w workers while a poller lists all
// clusters every scalePoll until settled holds for every id whose call was sent.
func phase(ctx context.Context, c *elasticache.Client, hoardPID int, ids []string, w int,
	call func(ctx context.Context, id string) error,
	settled func(ctx context.Context, id string, byID map[string]types.CacheCluster) (bool, error)) (phaseResult, error) {
	var r phaseResult
	sent := &stamps{at: map[string]time.Time{}}
	var mu sync.Mutex
	cpu0, start := procCPU(hoardPID), time.Now()
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollErr := make(chan error, 1)
	go func() {
		var err error
		r.restarts, err = pollAll(pollCtx, c, ids, func(ctx context.Context, id string, byID map[string]types.CacheCluster) (bool, error) {
			if _, ok := sent.get(id); !ok {
				return false, nil
			}
			return settled(ctx, id, byID)
		}, func(id string, at time.Time) {
			t0, _ := sent.get(id)
			r.settle = append(r.settle, at.Sub(t0))
		})
		pollErr <- err
	}()
	err := parallel(ctx, len(ids), w, func(ctx context.Context, i int) error {
		t0 := time.Now()
		sent.set(ids[i], t0)
		if err := call(ctx, ids[i]); err != nil {
			return err
		}
		d := time.Since(t0)
		mu.Lock()
		r.calls = append(r.calls, d)
		mu.Unlock()
		return nil
	})
	r.callsDone = time.Since(start)
	if err != nil {
		stopPoll()
		<-pollErr
		return r, err
	}
	if err := <-pollErr; err != nil {
		return r, err
	}
	r.allDone, r.cpu = time.Since(start), procCPU(hoardPID)-cpu0
	return r, nil
}

func (r phaseResult) print(action, settledAs, perCluster string) {
	n := time.Duration(len(r.calls))
	fmt.Printf("%-10s %d %s calls returned after %s (%s per cluster); call %s\n",
		strings.ToLower(strings.TrimSuffix(action, "CacheCluster")), n, action, ms(r.callsDone), ms(r.callsDone/n), dist(r.calls))
	fmt.Printf("%-10s all %d %s %s after the first call (%s per cluster); hoard used %.2fs CPU meanwhile\n",
		settledAs, n, settledAs, ms(r.allDone), ms(r.allDone/n), r.cpu.Seconds())
	fmt.Printf("%-10s per cluster %s %s\n", "", perCluster, dist(r.settle))
	if r.restarts > 0 {
		fmt.Printf("%-10s %d listings restarted: hoard rejected the marker of its own previous page (offset past a list that shrank)\n", "", r.restarts)
	}
}

// scaleRun creates scaleN clusters from the workers, waits until all are
// available, measures memory, idle CPU and full listings, deletes them all and
// checks that no engine process is left.
func scaleRun(ctx context.Context, c *elasticache.Client, hoardPID int, tmp string, problems *[]string) error {
	n, w := *scaleN, *workers
	ids := make([]string, n)
	engOf := map[string]string{}
	for i := range ids {
		eng := engines[i%2]
		ids[i] = fmt.Sprintf("scale-%s-%03d", eng[:1], i/2+1)
		engOf[ids[i]] = eng
	}
	rss0, hwm0 := procMem(hoardPID)
	fmt.Printf("\n== clusters: scale (%d single-node %s clusters, %d redis and %d memcached, %d workers; full listing polled every %s)\n",
		n, nodeType, (n+1)/2, n/2, w, scalePoll)
	fmt.Printf("%-10s VmRSS %s, VmHWM %s (hoard, after the one-at-a-time runs)\n", "before", mib(rss0), mib(hwm0))

	created, err := phase(ctx, c, hoardPID, ids, w, func(ctx context.Context, id string) error {
		if _, err := c.CreateCacheCluster(ctx, createInput(id, engOf[id])); err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		return nil
	}, func(_ context.Context, id string, byID map[string]types.CacheCluster) (bool, error) {
		cl, ok := byID[id]
		switch st := aws.ToString(cl.CacheClusterStatus); {
		case ok && st == "failed":
			return false, fmt.Errorf("%s failed", id)
		default:
			return ok && st == "available", nil
		}
	})
	if err != nil {
		return fmt.Errorf("creating: %w", err)
	}
	created.print("CreateCacheCluster", "available", "create->first listed available")

	// Memory and idle CPU with every node up.
	rss, hwm := procMem(hoardPID)
	procs := engineProcs(tmp, hoardPID)
	byComm := map[string][]int{}
	total := 0
	for _, p := range procs {
		byComm[p.comm] = append(byComm[p.comm], p.rssKB)
		total += p.rssKB
	}
	fmt.Printf("%-10s hoard VmRSS %s, VmHWM %s; engines: %d processes, RSS %s in all", "memory",
		mib(rss), mib(hwm), len(procs), mib(total))
	comms := make([]string, 0, len(byComm))
	for k := range byComm {
		comms = append(comms, k)
	}
	slices.Sort(comms)
	for _, k := range comms {
		sum := 0
		for _, v := range byComm[k] {
			sum += v
		}
		fmt.Printf("; %d %s %s (%s each)", len(byComm[k]), k, mib(sum), mib(sum/len(byComm[k])))
	}
	fmt.Println()
	if len(procs) != n {
		*problems = append(*problems, fmt.Sprintf("%d engine processes under %s with %d clusters available", len(procs), tmp, n))
		fmt.Printf("PROBLEM    expected %d engine processes, found %d\n", n, len(procs))
	}
	engCPU := func() (t time.Duration) {
		for _, p := range procs {
			t += procCPU(p.pid)
		}
		return t
	}
	h0, e0, t0 := procCPU(hoardPID), engCPU(), time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(idleWindow):
	}
	secs := time.Since(t0).Seconds()
	fmt.Printf("%-10s no requests for %s: hoard %.2f cores, engines %.2f cores in all (of %d)\n", "idle",
		idleWindow, (procCPU(hoardPID)-h0).Seconds()/secs, (engCPU()-e0).Seconds()/secs, runtime.NumCPU())

	// Full listings, with and without node info.
	for _, showNodes := range []bool{false, true} {
		var passes []time.Duration
		pages := 0
		cpu0 := procCPU(hoardPID)
		for range describePass {
			t0 := time.Now()
			list, p, err := listAll(ctx, c, showNodes)
			if err != nil {
				return fmt.Errorf("describe pass: %w", err)
			}
			passes = append(passes, time.Since(t0))
			pages = p
			if len(list) != n {
				return fmt.Errorf("a describe pass listed %d clusters, want %d", len(list), n)
			}
		}
		var sum time.Duration
		for _, d := range passes {
			sum += d
		}
		fmt.Printf("%-10s %d passes of %d page(s) (MaxRecords 100, ShowCacheNodeInfo=%t): pass %s; %s per cluster; hoard CPU meanwhile %.0fms per pass\n",
			"describe", describePass, pages, showNodes, dist(passes), ms(sum/time.Duration(describePass*n)),
			msf(procCPU(hoardPID)-cpu0)/describePass)
	}

	// Delete everything. Missing from a listing is only a hint (see pollAll): each
	// cluster counts as gone once DescribeCacheClusters of its id says not found.
	deleted, err := phase(ctx, c, hoardPID, ids, w, func(ctx context.Context, id string) error {
		if _, err := c.DeleteCacheCluster(ctx, &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String(id)}); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
		return nil
	}, func(ctx context.Context, id string, byID map[string]types.CacheCluster) (bool, error) {
		if _, listed := byID[id]; listed {
			return false, nil
		}
		st, err := status(ctx, c, id)
		return err == nil && st == "", err
	})
	if err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	deleted.print("DeleteCacheCluster", "gone", "delete->gone")

	rss, hwm = procMem(hoardPID)
	fmt.Printf("%-10s VmRSS %s, VmHWM %s (hoard)\n", "after", mib(rss), mib(hwm))
	if left := killEngines(tmp, hoardPID); len(left) > 0 {
		*problems = append(*problems, fmt.Sprintf("%d engine processes left after every cluster was gone (killed: %s)", len(left), procList(left)))
		fmt.Printf("PROBLEM    %d engine processes still running after every cluster was gone; killed them by PID: %s\n", len(left), procList(left))
	} else {
		fmt.Printf("%-10s none: no process has its cwd or command line under %s\n", "leftovers", tmp)
	}
	return nil
}
