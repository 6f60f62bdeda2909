// Command bench is hoard's load harness: it builds and starts the real binary, then
// drives it with SigV4-signed AWS Query requests from N concurrent workers and
// prints throughput and latency percentiles per scenario.
//
//	go run ./bench [-scenario describe|describe-pages|modify|all] [-workers 8] [-duration 10s] [-bin path]
//	go run ./bench -scenario clusters [-samples 20] [-clusters 200] [-workers 8]
//	go run ./bench -scenario snapshots [-dataset-mb 1024] [-reps 3]
//	go run ./bench -scenario serverless [-dataset-mb 1024] [-reps 3] [-samples 10] [-mc-value-kb 100]
//	go run ./bench -scenario replication [-reps 3]
//	go run ./bench -scenario clustermode [-reps 3] [-reshard-keys 200000]
//
// The clusters scenario (clusters.go) is opt-in: it starts hundreds of real engine
// processes, so "all" does not include it. So is the snapshots scenario
// (snapshots.go): it writes a large dataset and compares each snapshot operation
// with the plain tool doing the same work (redis-cli, cp, aws, redis-server).
// The serverless scenario (serverless.go) does the same for serverless caches,
// redis and memcached, after timing create -> available. The replication
// scenario (replication.go) times a replication group's create, a kill -9
// failover and the PrimaryEndpoint front against the node's own port. The
// clustermode scenario (clustermode.go) does create and failover for groups
// with cluster mode enabled, and times resharding against redis-cli.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/hoardcache/hoard/internal/catalog"
)

const (
	accessKey = "AKIDHOARDBENCH000001"
	secretKey = "hoard-bench-secret-key-0123456789abcdefg"
	account   = "123456789012"
	region    = "us-east-1"
	warmup    = time.Second
)

var (
	scenarioFlag = flag.String("scenario", "all", "describe, describe-pages, modify, all (those three), clusters, snapshots, serverless, replication or clustermode")
	workers      = flag.Int("workers", 8, "concurrent workers, each with its own keep-alive connection")
	duration     = flag.Duration("duration", 10*time.Second, "measured time per scenario, after a 1s warm-up")
	binFlag      = flag.String("bin", "", "prebuilt hoard binary (default: go build ./cmd/hoard)")
)

// A scenario gives each worker a function that sends one request and reports its error.
type scenario struct {
	name  string
	setup func(c *client) error
	next  func(worker int) func(c *client) error
}

var scenarios = []scenario{
	{name: "describe", next: func(int) func(*client) error {
		body := "Action=DescribeEngineDefaultParameters&Version=2015-02-02&CacheParameterGroupFamily=redis7&MaxRecords=100"
		return func(c *client) error { _, err := c.call(body); return err }
	}},
	{name: "describe-pages", next: func(int) func(*client) error {
		// Each request is one page (MaxRecords=20); a worker walks every family in turn.
		families, fam, marker := catalog.FamilyNames(), 0, ""
		return func(c *client) error {
			body := "Action=DescribeEngineDefaultParameters&Version=2015-02-02&MaxRecords=20&CacheParameterGroupFamily=" + families[fam]
			if marker != "" {
				body += "&Marker=" + url.QueryEscape(marker)
			}
			resp, err := c.call(body)
			marker = ""
			if m := markerRE.FindSubmatch(resp); m != nil {
				marker = string(m[1])
			} else {
				fam = (fam + 1) % len(families)
			}
			return err
		}
	}},
	{name: "modify",
		setup: func(c *client) error {
			_, err := c.call("Action=CreateCacheParameterGroup&Version=2015-02-02&CacheParameterGroupName=bench" +
				"&CacheParameterGroupFamily=redis7&Description=bench")
			return err
		},
		next: func(worker int) func(*client) error {
			n := worker * 7919
			return func(c *client) error {
				n++
				v := n % 2 * (20 + n%100000) // timeout allows 0, or 20 and up
				_, err := c.call("Action=ModifyCacheParameterGroup&Version=2015-02-02&CacheParameterGroupName=bench" +
					"&ParameterNameValues.ParameterNameValue.1.ParameterName=timeout" +
					"&ParameterNameValues.ParameterNameValue.1.ParameterValue=" + strconv.Itoa(v))
				return err
			}
		}},
}

var markerRE = regexp.MustCompile(`<Marker>([^<]+)</Marker>`)

// client signs and sends Query requests over a shared keep-alive transport. Each
// worker has its own copy, whose buf it reuses for response bodies.
type client struct {
	ctx      context.Context
	endpoint string
	http     *http.Client
	signer   *v4.Signer
	creds    aws.Credentials
	buf      bytes.Buffer
}

func (c *client) call(body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, c.endpoint+"/", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := c.signer.SignHTTP(c.ctx, c.creds, req, hex.EncodeToString(sum[:]), "elasticache", region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %.200s", resp.StatusCode, c.buf.Bytes())
	}
	return c.buf.Bytes(), err // valid until the next call
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var todo []scenario
	for _, s := range scenarios {
		if *scenarioFlag == "all" || *scenarioFlag == s.name {
			todo = append(todo, s)
		}
	}
	clusters := *scenarioFlag == "clusters"
	snapshots := *scenarioFlag == "snapshots"
	serverless := *scenarioFlag == "serverless"
	replication := *scenarioFlag == "replication"
	clustermode := *scenarioFlag == "clustermode"
	if (len(todo) == 0 && !clusters && !snapshots && !serverless && !replication && !clustermode) || *workers < 1 {
		return fmt.Errorf("unknown -scenario %q or bad -workers %d", *scenarioFlag, *workers)
	}
	if clusters && (*samples < 1 || *scaleN < 2 || *scaleN > 1000) {
		return fmt.Errorf("-samples must be at least 1 and -clusters between 2 and 1000 (hoard's node ports are 21000-21999)")
	}
	if snapshots && (*datasetMB < 1 || *snapReps < 1) {
		return fmt.Errorf("-dataset-mb and -reps must be at least 1")
	}
	if serverless && (*datasetMB < 1 || *snapReps < 1 || *samples < 1 || *mcValueKB < 1 || *mcValueKB > 1000) {
		return fmt.Errorf("-dataset-mb, -reps and -samples must be at least 1, -mc-value-kb 1 to 1000 (memcached's items are at most 1 MiB)")
	}
	if replication && *snapReps < 1 {
		return fmt.Errorf("-reps must be at least 1")
	}
	if clustermode && (*snapReps < 1 || *reshardKeys < 1) {
		return fmt.Errorf("-reps and -reshard-keys must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "hoard-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := *binFlag
	if bin == "" {
		bin = filepath.Join(tmp, "hoard")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/hoard")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building hoard (run from the module root): %w", err)
		}
	}
	if snapshots {
		// Its own hoard (two in turn) and moto_server: see snapshots.go.
		if err := runSnapshots(ctx, bin, tmp); err != nil {
			return fmt.Errorf("snapshots: %w", err)
		}
		return nil
	}
	if serverless {
		// Its own hoard, serverless caches and baseline engines: see serverless.go.
		if err := runServerless(ctx, bin, tmp); err != nil {
			return fmt.Errorf("serverless: %w", err)
		}
		return nil
	}
	if replication {
		// Two hoards in turn (200ms and the default health check interval): see replication.go.
		if err := runReplication(ctx, bin, tmp); err != nil {
			return fmt.Errorf("replication: %w", err)
		}
		return nil
	}
	if clustermode {
		// Two hoards in turn, and a plain Redis Cluster as the baseline: see clustermode.go.
		if err := runClusterMode(ctx, bin, tmp); err != nil {
			return fmt.Errorf("clustermode: %w", err)
		}
		return nil
	}
	var extra []string
	if clusters {
		extra = clusterServeFlags
	}
	srv, addr, err := startHoard(ctx, bin, tmp, nil, extra...)
	if srv != nil {
		// Engine nodes run in their own sessions and outlive hoard by design: after
		// hoard has stopped, end whatever is still running under tmp, by PID.
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
	if clusters {
		fmt.Printf("hoard %s (pid %d, %s), data and log in %s\n", addr, srv.pid(), strings.Join(extra, " "), tmp)
		fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; server and engines on the same machine\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))
		if err := runClusters(ctx, "http://"+addr, srv.pid(), tmp); err != nil {
			return fmt.Errorf("clusters: %w", err)
		}
		return nil
	}

	c := &client{ctx: ctx, endpoint: "http://" + addr, signer: v4.NewSigner(),
		creds: aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *workers, MaxIdleConnsPerHost: *workers, IdleConnTimeout: time.Minute}}
	fmt.Printf("hoard %s (pid %d), data and log in %s\n", addr, srv.cmd.Process.Pid, tmp)
	fmt.Printf("client: NumCPU=%d GOMAXPROCS=%d; server on the same machine (loopback), sharing those CPUs\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Printf("workers=%d duration=%s warm-up=%s\n", *workers, *duration, warmup)
	for _, s := range todo {
		if err := runScenario(ctx, c, s, srv.cmd.Process.Pid); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// runScenario runs the workers for warm-up plus duration and reports the requests
// that started inside the measured window.
func runScenario(ctx context.Context, c *client, s scenario, pid int) error {
	if s.setup != nil {
		if err := s.setup(c); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	type tally struct {
		lats     []time.Duration
		errs     int
		firstErr error
	}
	tallies := make([]tally, *workers)
	measureFrom := time.Now().Add(warmup)
	end := measureFrom.Add(*duration)
	var wg sync.WaitGroup
	for w := range tallies {
		wg.Add(1)
		go func(t *tally, c *client, send func(*client) error) {
			defer wg.Done()
			for t0 := time.Now(); ctx.Err() == nil && t0.Before(end); t0 = time.Now() {
				err := send(c)
				switch {
				case t0.Before(measureFrom): // warm-up
				case err != nil:
					t.errs++
					t.firstErr = cmp.Or(t.firstErr, err)
				default:
					t.lats = append(t.lats, time.Since(t0))
				}
			}
		}(&tallies[w], &client{ctx: ctx, endpoint: c.endpoint, http: c.http, signer: c.signer, creds: c.creds}, s.next(w))
	}
	time.Sleep(time.Until(measureFrom))
	srvCPU0, cliCPU0, sys0 := procCPU(pid), selfCPU(), machineCPU()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	srvCPU, cliCPU, sys := procCPU(pid)-srvCPU0, selfCPU()-cliCPU0, machineCPU()
	for i := range sys {
		sys[i] -= sys0[i]
	}
	var all []time.Duration
	var nerr int
	var firstErr error
	for _, t := range tallies {
		all, nerr, firstErr = append(all, t.lats...), nerr+t.errs, cmp.Or(firstErr, t.firstErr)
	}
	slices.Sort(all)
	secs := duration.Seconds()
	fmt.Printf("\n== %s (workers=%d)\n", s.name, *workers)
	fmt.Printf("requests %d ok, %d errors; %.0f req/s\n", len(all), nerr, float64(len(all))/secs)
	if len(all) > 0 {
		fmt.Printf("latency p50 %s  p90 %s  p99 %s  max %s\n",
			pct(all, 50), pct(all, 90), pct(all, 99), all[len(all)-1].Round(time.Microsecond))
	}
	fmt.Printf("cpu: server %.2f cores, client %.2f cores (of %d); machine %.0f%% idle, %.0f%% stolen by the hypervisor\n",
		srvCPU.Seconds()/secs, cliCPU.Seconds()/secs, runtime.NumCPU(),
		100*float64(sys[1])/float64(max(sys[0], 1)), 100*float64(sys[2])/float64(max(sys[0], 1)))
	if firstErr != nil {
		fmt.Printf("first error: %v\n", firstErr)
	}
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1 // nearest rank
	return sorted[max(i, 0)].Round(time.Microsecond)
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is a process's user+system CPU time from /proc (Linux; 0 elsewhere),
// at the usual 100 ticks a second. utime and stime are fields 14 and 15 of stat,
// 12th and 13th after the ")" that ends the command name.
func procCPU(pid int) time.Duration {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	return time.Duration(atoi(f[11])+atoi(f[12])) * 10 * time.Millisecond
}

// machineCPU is the machine's total, idle (with iowait) and steal ticks from the
// "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal ...
func machineCPU() (ticks [3]int) {
	raw, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(raw), "\n")
	if f := strings.Fields(line); len(f) > 8 {
		for _, v := range f[1:9] {
			ticks[0] += atoi(v)
		}
		ticks[1], ticks[2] = atoi(f[4])+atoi(f[5]), atoi(f[8])
	}
	return ticks
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
