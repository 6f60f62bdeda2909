package front

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBinary finds a redis program where the redis package installs it, PATH
// being the fallback; it skips the test if there is none.
func redisBinary(t testing.TB, name string) string {
	t.Helper()
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

type redisProc struct {
	addr string
	pid  int
}

// startRedis starts a throwaway redis-server on a free 127.0.0.1 port, with
// no persistence, and kills it (by the PID started here) when the test ends.
func startRedis(t testing.TB) *redisProc {
	t.Helper()
	bin := redisBinary(t, "redis-server")
	for attempt := 0; ; attempt++ {
		addr := deadAddr(t) // a free port; another process may take it first, hence the retry
		_, port, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		logf, err := os.Create(filepath.Join(dir, "redis.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logf, logf // files, so os/exec starts no copying goroutines
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatal(err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		if waitFor(5*time.Second, func() bool { return redisPing(addr) == nil }) {
			return &redisProc{addr: addr, pid: cmd.Process.Pid}
		}
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		if attempt == 2 {
			t.Fatalf("redis-server on %s did not start:\n%s", addr, log)
		}
	}
}

// redisPing sends a raw RESP PING on a fresh connection.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return rawPing(c)
}

func rawPing(c net.Conn) error {
	c.SetDeadline(time.Now().Add(time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func newRedisClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisThroughFront plays a failover against real redis-servers: a
// client of the primary endpoint writes to the first server; after
// SetBackends to the second one, the old connection is closed and writes,
// from a new client and from the old client once it has reconnected, reach
// the second server only.
func TestRedisThroughFront(t *testing.T) {
	r1, r2 := startRedis(t).addr, startRedis(t).addr
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	direct1, direct2 := newRedisClient(t, r1), newRedisClient(t, r2)

	f := listenFront(t, []string{r1})
	old := newRedisClient(t, f.Addr())
	if err := old.Set(ctx, "k1", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := old.Get(ctx, "k1").Result(); err != nil || v != "v1" {
		t.Fatalf("GET k1 through front = %q, %v", v, err)
	}
	if v, err := direct1.Get(ctx, "k1").Result(); err != nil || v != "v1" {
		t.Fatalf("GET k1 on r1 = %q, %v", v, err)
	}
	raw := dial(t, f.Addr())
	if err := rawPing(raw); err != nil {
		t.Fatal(err)
	}
	// r1's clients: direct1, old's pooled connection, raw.
	clients1 := func() int64 {
		info, _ := direct1.Info(ctx, "clients").Result()
		m := regexp.MustCompile(`connected_clients:(\d+)`).FindStringSubmatch(info)
		if m == nil {
			return -1
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	if n := clients1(); n != 3 {
		t.Fatalf("r1 has %d clients before failover, want 3", n)
	}

	f.SetBackends([]string{r2})

	expectClosed(t, raw, time.Second)
	if !waitFor(2*time.Second, func() bool { return clients1() == 1 }) {
		t.Errorf("r1 still has %d clients after SetBackends, want only the direct one", clients1())
	}

	fresh := newRedisClient(t, f.Addr())
	if err := fresh.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// go-redis notices that its pooled connection was closed and dials
	// again, so the old client keeps working and now reaches r2.
	if err := old.Set(ctx, "k3", "v3", 0).Err(); err != nil {
		t.Fatal("old client after failover:", err)
	}
	for _, k := range []string{"k2", "k3"} {
		if v, err := direct2.Get(ctx, k).Result(); err != nil || v != strings.Replace(k, "k", "v", 1) {
			t.Errorf("GET %s on r2 = %q, %v", k, v, err)
		}
		if err := direct1.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("GET %s on r1: %v, want nil reply", k, err)
		}
	}
	if err := direct2.Get(ctx, "k1").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET k1 on r2: %v, want nil reply", err)
	}
}

// TestRedisBenchmarkThroughFront compares redis-benchmark against a
// redis-server directly and through a front. It is a measurement, not a
// test: run it on demand with
//
//	HOARD_FRONT_BENCH=1 go test -run RedisBenchmark -v -count=1 ./internal/front/
//
// HOARD_FRONT_BENCH_N sets -n (default 200000), HOARD_FRONT_BENCH_P the -P
// pipeline depths (default "1,16") and HOARD_FRONT_BENCH_RUNS the runs per
// case (default 3; medians are reported). Besides requests/s it
// reports the CPU time per request of each process (front = this test
// process, idle during the direct runs): on a small shared machine
// throughput swings with the load of other processes, CPU per request much
// less, and it shows what the front costs compared with redis itself.
func TestRedisBenchmarkThroughFront(t *testing.T) {
	if os.Getenv("HOARD_FRONT_BENCH") != "1" {
		t.Skip("set HOARD_FRONT_BENCH=1 to run")
	}
	bench := redisBinary(t, "redis-benchmark")
	n := envInt("HOARD_FRONT_BENCH_N", 200000)
	runs := envInt("HOARD_FRONT_BENCH_RUNS", 3)
	r := startRedis(t)
	f := listenFront(t, []string{r.addr})
	t.Logf("GOMAXPROCS=%d NumCPU=%d -n %d -c 50, %d runs per case", runtime.GOMAXPROCS(0), runtime.NumCPU(), n, runs)

	type sample struct {
		rps                  map[string]float64
		front, redis, bench_ time.Duration // CPU per request
	}
	run := func(addr string, extra ...string) sample {
		host, port, _ := net.SplitHostPort(addr)
		args := append([]string{"-h", host, "-p", port, "-q", "-t", "set,get", "-n", strconv.Itoa(n), "-c", "50"}, extra...)
		self0, redis0 := selfCPU(), procCPU(r.pid)
		cmd := exec.Command(bench, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark %v: %v\n%s", args, err, out)
		}
		reqs := time.Duration(2 * n) // SET and GET
		s := sample{
			rps:    map[string]float64{},
			front:  (selfCPU() - self0) / reqs,
			redis:  (procCPU(r.pid) - redis0) / reqs,
			bench_: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) / reqs,
		}
		for _, m := range regexp.MustCompile(`([A-Z]+): ([\d.]+) requests per second`).FindAllStringSubmatch(string(out), -1) {
			s.rps[m[1]], _ = strconv.ParseFloat(m[2], 64)
		}
		if len(s.rps) != 2 {
			t.Fatalf("cannot parse redis-benchmark output:\n%s", out)
		}
		return s
	}

	for _, pipeline := range envInts("HOARD_FRONT_BENCH_P", []int{1, 16}) {
		extra := []string{"-P", strconv.Itoa(pipeline)}
		var direct, front []sample
		for i := range runs {
			// Alternate the order so that neither side always runs first.
			if i%2 == 0 {
				direct = append(direct, run(r.addr, extra...))
				front = append(front, run(f.Addr(), extra...))
			} else {
				front = append(front, run(f.Addr(), extra...))
				direct = append(direct, run(r.addr, extra...))
			}
		}
		for _, test := range []string{"SET", "GET"} {
			var d, fr, paired []float64
			for i := range runs {
				d = append(d, direct[i].rps[test])
				fr = append(fr, front[i].rps[test])
				paired = append(paired, front[i].rps[test]/direct[i].rps[test])
			}
			t.Logf("-P %-2d %s: direct %7.0f req/s  front %7.0f req/s  ratio %.2f (median of paired ratios %.2f)  direct %v front %v",
				pipeline, test, median(d), median(fr), median(fr)/median(d), median(paired), rounded(d), rounded(fr))
		}
		cpu := func(ss []sample, get func(sample) time.Duration) string {
			var xs []float64
			for _, s := range ss {
				xs = append(xs, float64(get(s))/1e3)
			}
			return strconv.FormatFloat(median(xs), 'f', 2, 64)
		}
		t.Logf("-P %-2d CPU µs/request (SET+GET): direct: redis %s bench %s | front: redis %s bench %s front %s", pipeline,
			cpu(direct, func(s sample) time.Duration { return s.redis }), cpu(direct, func(s sample) time.Duration { return s.bench_ }),
			cpu(front, func(s sample) time.Duration { return s.redis }), cpu(front, func(s sample) time.Duration { return s.bench_ }),
			cpu(front, func(s sample) time.Duration { return s.front }))
	}
	waitFor(5*time.Second, func() bool { return f.Stats().Active == 0 }) // the last clients' FINs
	t.Logf("front stats: %+v", f.Stats())
}

// envInts reads a comma-separated list of positive integers.
func envInts(name string, def []int) []int {
	var out []int
	for _, f := range strings.Split(os.Getenv(name), ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rounded(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}
