package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

func TestRedisStartApplyGet(t *testing.T) {
	d := newDriver(t, "redis")
	params := familyParams(t, "redis7", "cache.t3.micro") // maxmemory 536870912, reserved-memory-percent 25
	params["maxmemory-policy"] = "allkeys-lru"
	params["timeout"] = "300"
	params["databases"] = "32"
	params["client-output-buffer-limit-pubsub-soft-seconds"] = "30"
	spec := redisSpec(t, params)
	h := startNode(t, d, spec)
	ctx := context.Background()

	// The node is in its own session.
	if sid, err := unix.Getsid(h.PID); err != nil || sid != h.PID {
		t.Errorf("node session %d (%v), want its own (%d)", sid, err, h.PID)
	}

	c := redis.NewClient(&redis.Options{Addr: hostPort(h.Host, h.Port)})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k = %q, %v", v, err)
	}
	// No persistence unless asked.
	if v, _ := c.ConfigGet(ctx, "save").Result(); v["save"] != "" {
		t.Errorf("save = %q, want empty", v["save"])
	}

	want := map[string]string{
		"maxmemory-policy": "allkeys-lru",
		"timeout":          "300",
		"databases":        "32",
		"maxmemory":        "402653184", // 536870912 less 25 %
		"client-output-buffer-limit-pubsub-soft-seconds": "30",
		"client-output-buffer-limit-replica-hard-limit":  "53687091", // node type value
		"reserved-memory-percent":                        "25",
		"cluster-preferred-endpoint-type":                "ip", // tls-dynamic without TLS
		"close-on-replica-write":                         "yes",
	}
	for n, w := range want {
		if v, err := d.Get(ctx, h, n); err != nil || v != w {
			t.Errorf("Get(%s) = %q, %v; want %q", n, v, err, w)
		}
	}

	need, err := d.Apply(ctx, h, map[string]string{"maxmemory-policy": "volatile-ttl", "reserved-memory-percent": "50"})
	if err != nil || len(need) != 0 {
		t.Fatalf("Apply = %v, %v", need, err)
	}
	if v, _ := c.ConfigGet(ctx, "maxmemory-policy").Result(); v["maxmemory-policy"] != "volatile-ttl" {
		t.Errorf("CONFIG GET maxmemory-policy = %q", v["maxmemory-policy"])
	}
	if v, _ := c.ConfigGet(ctx, "maxmemory").Result(); v["maxmemory"] != "268435456" {
		t.Errorf("maxmemory after reserved-memory-percent 50 = %q", v["maxmemory"])
	}
	if v, _ := d.Get(ctx, h, "reserved-memory-percent"); v != "50" {
		t.Errorf("Get(reserved-memory-percent) = %q", v)
	}

	need, err = d.Apply(ctx, h, map[string]string{"databases": "64", "rename-commands": "flushall nukeall", "timeout": "300", "close-on-replica-write": "no"})
	if err != nil || !slices.Equal(need, []string{"databases", "rename-commands"}) {
		t.Fatalf("Apply(databases, rename-commands) = %v, %v; want [databases rename-commands]", need, err)
	}
	if v, _ := d.Get(ctx, h, "databases"); v != "32" {
		t.Errorf("databases = %q after a refused runtime change", v)
	}
	if v, _ := d.Get(ctx, h, "close-on-replica-write"); v != "no" {
		t.Errorf("close-on-replica-write = %q, want the recorded no", v)
	}

	// A bad value is an error, not a restart.
	if need, err := d.Apply(ctx, h, map[string]string{"maxmemory-policy": "bogus"}); err == nil || len(need) != 0 {
		t.Errorf("Apply(maxmemory-policy bogus) = %v, %v; want an error", need, err)
	}
	// client-output-buffer-limit composes the class.
	if _, err := d.Apply(ctx, h, map[string]string{"client-output-buffer-limit-normal-hard-limit": "1048576"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.ConfigGet(ctx, "client-output-buffer-limit").Result(); !strings.HasPrefix(v["client-output-buffer-limit"], "normal 1048576 0 0 slave 53687091 53687091 60 pubsub 33554432 8388608 30") {
		t.Errorf("client-output-buffer-limit = %q", v["client-output-buffer-limit"])
	}

	if !d.Alive(ctx, h) {
		t.Fatal("not Alive")
	}
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if d.Alive(ctx, h) {
		t.Error("Alive after Stop")
	}
	if !portFree(h.Port) {
		t.Errorf("port %d still taken after Stop", h.Port)
	}
	if err := d.Stop(ctx, h); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRedisRenameCommands(t *testing.T) {
	d := newDriver(t, "redis")
	h := startNode(t, d, redisSpec(t, map[string]string{"rename-commands": "ping pong flushall nukeall", "requirepass": "s3cret"}))
	ctx := context.Background()
	if !d.Alive(ctx, h) {
		t.Fatal("not Alive with PING renamed and a password")
	}
	c := redis.NewClient(&redis.Options{Addr: hostPort(h.Host, h.Port), Password: "s3cret"})
	defer c.Close()
	if err := c.Do(ctx, "nukeall").Err(); err != nil {
		t.Errorf("renamed FLUSHALL: %v", err)
	}
	if err := c.Do(ctx, "flushall").Err(); err == nil {
		t.Error("FLUSHALL still works")
	}
	if _, err := d.Apply(ctx, h, map[string]string{"timeout": "7"}); err != nil {
		t.Fatal(err)
	}
	if v, err := d.Get(ctx, h, "timeout"); v != "7" {
		t.Errorf("Get(timeout) = %q, %v", v, err)
	}
	if _, err := d.Start(ctx, redisSpec(t, map[string]string{"rename-commands": "flushall"})); err == nil {
		t.Error("odd rename-commands accepted")
	}
}

func TestMemcachedStartSetGet(t *testing.T) {
	d := newDriver(t, "memcached")
	params := familyParams(t, "memcached1.6", "cache.t3.micro") // max_cache_memory 512, overhead 100
	params["max_item_size"] = "2097152"
	params["chunk_size"] = "96"
	params["max_simultaneous_connections"] = "65000"
	h := startNode(t, d, memcachedSpec(t, params))
	ctx := context.Background()

	conn, err := net.Dial("tcp", hostPort(h.Host, h.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "set k 7 0 5\r\nhello\r\nget k\r\n")
	var lines []string
	for len(lines) < 4 {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	if want := []string{"STORED", "VALUE k 7 5", "hello", "END"}; !slices.Equal(lines, want) {
		t.Fatalf("set/get = %q, want %q", lines, want)
	}
	fmt.Fprintf(conn, "stats settings\r\n")
	settings := map[string]string{}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		l = strings.TrimSpace(l)
		if l == "END" {
			break
		}
		f := strings.Fields(l)
		settings[f[1]] = f[2]
	}
	for k, w := range map[string]string{"item_size_max": "2097152", "chunk_size": "96", "maxbytes": fmt.Sprint(412 << 20),
		"hash_algorithm": "jenkins", "slab_reassign": "no", "lru_crawler": "no"} {
		if settings[k] != w {
			t.Errorf("stats settings %s = %q, want %q", k, settings[k], w)
		}
	}
	for n, w := range map[string]string{"max_item_size": "2097152", "chunk_size": "96", "max_cache_memory": "412",
		"cas_disabled": "0", "watcher_logbuf_size": "256", "config_max": "16", "maxbytes": fmt.Sprint(412 << 20)} {
		if v, err := d.Get(ctx, h, n); err != nil || v != w {
			t.Errorf("Get(%s) = %q, %v; want %q", n, v, err, w)
		}
	}
	if v, _ := d.Get(ctx, h, "max_simultaneous_connections"); v != fmt.Sprint(min(65000, fileLimit())) {
		t.Errorf("maxconns = %s (file limit %d)", v, fileLimit())
	}

	need, err := d.Apply(ctx, h, map[string]string{"slab_automove": "2", "lru_crawler": "1", "max_cache_memory": "612",
		"chunk_size": "48", "config_max": "4", "chunk_size_growth_factor": "1.25"})
	if err != nil || !slices.Equal(need, []string{"chunk_size"}) {
		t.Fatalf("Apply = %v, %v; want [chunk_size]", need, err)
	}
	for n, w := range map[string]string{"slab_automove": "2", "lru_crawler": "1", "max_cache_memory": "512", "config_max": "4"} {
		if v, err := d.Get(ctx, h, n); err != nil || v != w {
			t.Errorf("after Apply Get(%s) = %q, %v; want %q", n, v, err, w)
		}
	}

	conn.Close()
	if err := d.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	if !portFree(h.Port) {
		t.Errorf("port %d still taken after Stop", h.Port)
	}
}

func TestReadoption(t *testing.T) {
	for _, tc := range []struct {
		engine string
		spec   func(testing.TB, map[string]string) Spec
	}{{"redis", redisSpec}, {"memcached", memcachedSpec}} {
		t.Run(tc.engine, func(t *testing.T) {
			h := startNode(t, newDriver(t, tc.engine), tc.spec(t, nil))
			// A new driver value, as after a restart of hoard, with the handle
			// as it would be read back from the store.
			b, _ := json.Marshal(h)
			var h2 Handle
			if err := json.Unmarshal(b, &h2); err != nil {
				t.Fatal(err)
			}
			d := newDriver(t, tc.engine)
			ctx := context.Background()
			if !d.Alive(ctx, h2) {
				t.Fatal("re-adopted node not Alive")
			}
			if _, err := d.Get(ctx, h2, map[string]string{"redis": "maxmemory-policy", "memcached": "num_threads"}[tc.engine]); err != nil {
				t.Errorf("Get on re-adopted node: %v", err)
			}
			other := h2
			other.StartTime++
			if d.Alive(ctx, other) {
				t.Error("Alive with a different start time (recycled pid)")
			}
			if err := d.Stop(ctx, other); err != nil {
				t.Errorf("Stop of a recycled pid: %v", err)
			}
			if !d.Alive(ctx, h2) {
				t.Fatal("Stop with a wrong start time signalled the node")
			}
			wrongPort := h2
			wrongPort.Port = freePort(t)
			if d.Alive(ctx, wrongPort) {
				t.Error("Alive on a port the node does not listen on")
			}
			if err := syscall.Kill(h2.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for d.Alive(ctx, h2) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if d.Alive(ctx, h2) {
				t.Error("Alive after kill -9")
			}
		})
	}
}

func TestNodeOutlivesParent(t *testing.T) {
	for _, tc := range []struct {
		engine string
		spec   func(testing.TB, map[string]string) Spec
	}{{"redis", redisSpec}, {"memcached", memcachedSpec}} {
		t.Run(tc.engine, func(t *testing.T) {
			spec := tc.spec(t, nil)
			raw, _ := json.Marshal(spec)
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var h Handle
			if jerr := json.Unmarshal([]byte(strings.TrimSpace(string(out))), &h); jerr != nil || h.PID == 0 {
				t.Fatalf("helper: %v / %v; stdout %q; stderr %s", err, jerr, out, stderr.String())
			}
			d := newDriver(t, tc.engine)
			t.Cleanup(func() { d.Stop(context.Background(), h) })
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Errorf("helper ended with %v, want SIGKILL", cmd.ProcessState)
			}
			time.Sleep(100 * time.Millisecond)
			ctx := context.Background()
			if !d.Alive(ctx, h) {
				t.Fatal("node died with its parent")
			}
			if err := d.Stop(ctx, h); err != nil {
				t.Fatal(err)
			}
			if d.Alive(ctx, h) || running(h.PID, h.StartTime) {
				t.Error("node still running after Stop")
			}
			if !portFree(h.Port) {
				t.Errorf("port %d still taken", h.Port)
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("missing binary", func(t *testing.T) {
		for _, engine := range []string{"redis", "memcached"} {
			spec := Spec{Engine: engine, Binary: "/nonexistent/" + engine, Dir: t.TempDir(), Host: "127.0.0.1", Port: freePort(t)}
			t0 := time.Now()
			_, err := newDriver(t, engine).Start(ctx, spec)
			if err == nil || !strings.Contains(err.Error(), "not found") || time.Since(t0) > time.Second {
				t.Errorf("%s: err %v after %s", engine, err, time.Since(t0))
			}
		}
	})
	t.Run("port taken", func(t *testing.T) {
		for _, tc := range []struct {
			engine, logWord string
			spec            func(testing.TB, map[string]string) Spec
		}{{"redis", "Address already in use", redisSpec}, {"memcached", "failed to listen", memcachedSpec}} {
			spec := tc.spec(t, nil)
			l, err := net.Listen("tcp", hostPort(spec.Host, spec.Port))
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			_, err = newDriver(t, tc.engine).Start(ctx, spec)
			l.Close()
			if err == nil || !strings.Contains(err.Error(), tc.logWord) || time.Since(t0) > ReadyTimeout {
				t.Errorf("%s: err %v after %s", tc.engine, err, time.Since(t0))
			}
		}
	})
	t.Run("port answered by another node", func(t *testing.T) {
		d := newDriver(t, "redis")
		first := startNode(t, d, redisSpec(t, nil))
		spec := redisSpec(t, nil)
		spec.Port = first.Port
		if _, err := d.Start(ctx, spec); err == nil {
			t.Error("Start succeeded on a port another redis holds")
		}
		if !d.Alive(ctx, first) {
			t.Error("first node hurt")
		}
	})
	t.Run("invalid parameter", func(t *testing.T) {
		t0 := time.Now()
		_, err := newDriver(t, "redis").Start(ctx, redisSpec(t, map[string]string{"maxmemory-policy": "bogus"}))
		if err == nil || !strings.Contains(err.Error(), "maxmemory-policy") || time.Since(t0) > 5*time.Second {
			t.Errorf("redis: err %v after %s", err, time.Since(t0))
		}
		_, err = newDriver(t, "memcached").Start(ctx, memcachedSpec(t, map[string]string{"chunk_size_growth_factor": "0.5"}))
		if err == nil || !strings.Contains(err.Error(), "Factor must be greater than 1") {
			t.Errorf("memcached: err %v", err)
		}
		_, err = newDriver(t, "memcached").Start(ctx, memcachedSpec(t, map[string]string{"num_threads": "four"}))
		if err == nil || !strings.Contains(err.Error(), "num_threads") {
			t.Errorf("memcached: err %v", err)
		}
	})
	t.Run("hang", func(t *testing.T) {
		// A "node" that never answers: the start gives up at ReadyTimeout and
		// does not leave the process behind.
		old := ReadyTimeout
		ReadyTimeout = 300 * time.Millisecond
		defer func() { ReadyTimeout = old }()
		dir := t.TempDir()
		spec := Spec{Dir: dir, Host: "127.0.0.1", Port: freePort(t)}
		_, err := launch(ctx, "sleep", []string{"60"}, spec, redisProbe)
		if err == nil || !strings.Contains(err.Error(), "did not become ready") {
			t.Errorf("err %v", err)
		}
	})
}

// TestCatalogueDefaults starts a node with the defaults of every family of the
// installed engines and checks the effects table covers the catalogue.
func TestCatalogueDefaults(t *testing.T) {
	for _, family := range []string{"redis2.6", "redis2.8", "redis3.2", "redis4.0", "redis5.0", "redis6.x", "redis7", "valkey7", "valkey8",
		"memcached1.4", "memcached1.5", "memcached1.6"} {
		t.Run(family, func(t *testing.T) {
			params := familyParams(t, family, "cache.m5.large")
			engine := "redis"
			if strings.HasPrefix(family, "memcached") {
				engine = "memcached"
			}
			table := ParameterEffects(engine)
			for n := range params {
				if _, ok := table[n]; !ok {
					t.Errorf("%s is not in ParameterEffects(%s)", n, engine)
				}
			}
			var spec Spec
			if engine == "redis" {
				spec = redisSpec(t, params)
			} else {
				spec = memcachedSpec(t, params)
			}
			d := newDriver(t, engine)
			h := startNode(t, d, spec)
			if !d.Alive(context.Background(), h) {
				t.Fatal("not alive")
			}
		})
	}
}

// TestRedisRuntimeTable checks the Runtime column of the redis table against
// redis itself: every catalogue parameter with an effect is applied to a node
// started without parameters.
func TestRedisRuntimeTable(t *testing.T) {
	d := newDriver(t, "redis")
	h := startNode(t, d, redisSpec(t, nil))
	params := familyParams(t, "redis7", "cache.m5.large")
	for n, v := range familyParams(t, "redis6.x", "cache.m5.large") {
		if _, ok := params[n]; !ok {
			params[n] = v
		}
	}
	params["rename-commands"] = "flushall nukeall"
	params["databases"] = "20"
	params["cluster-enabled"] = "no"
	ctx := context.Background()
	effects, err := ResolveParameterEffects(ctx, "redis", "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	for n, v := range params {
		e := effects[n]
		need, err := d.Apply(ctx, h, map[string]string{n: v})
		if err != nil {
			t.Errorf("Apply %s=%q: %v", n, v, err)
			continue
		}
		gotRuntime := len(need) == 0
		if e.Effect != NoEffect && gotRuntime != e.Runtime {
			t.Errorf("%s: Apply needRestart %v, table says runtime %v", n, need, e.Runtime)
		}
		if e.Effect == NoEffect && len(need) != 0 {
			t.Errorf("%s (no effect): needRestart %v", n, need)
		}
	}
}

func TestEffectsTable(t *testing.T) {
	for _, engine := range []string{"redis", "memcached"} {
		effects, err := ResolveParameterEffects(context.Background(), engine, "")
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(effects))
		for n := range effects {
			names = append(names, n)
		}
		slices.Sort(names)
		if os.Getenv("HOARD_PRINT_EFFECTS") != "" {
			fmt.Printf("\n| %s parameter | effect | engine setting | runtime | note |\n|---|---|---|---|---|\n", engine)
			for _, n := range names {
				e := effects[n]
				rt := ""
				if e.Effect != NoEffect {
					rt = map[bool]string{true: "yes", false: "restart"}[e.Runtime]
				}
				fmt.Printf("| %s | %s | %s | %s | %s |\n", n, e.Effect, e.Target, rt, e.Note)
			}
		}
		if engine == "redis" {
			for n, want := range map[string]Effect{"list-max-ziplist-entries": NoEffect, "lua-replicate-commands": NoEffect,
				"commandlog-large-reply-max-len": NoEffect, "timeout": Applied, "hash-max-ziplist-entries": Applied, "reserved-memory": Mapped} {
				if effects[n].Effect != want {
					t.Errorf("%s: %s, want %s", n, effects[n].Effect, want)
				}
			}
		} else if effects["expirezero_does_not_evict"].Effect != NoEffect || effects["slab_reassign"].Effect != Applied {
			t.Errorf("memcached effects: %+v %+v", effects["expirezero_does_not_evict"], effects["slab_reassign"])
		}
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (we) ird (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 10000 200 18446744073709551615\n"
	st, err := parseProcStat([]byte(line))
	if err != nil || st.state != 'S' || st.startTime != 987654 {
		t.Fatalf("parseProcStat = %+v, %v", st, err)
	}
	if _, err := parseProcStat([]byte("1 (x) S 1 2")); err == nil {
		t.Error("short line accepted")
	}
	self, err := readProcStat(os.Getpid())
	if err != nil || self.startTime == 0 {
		t.Fatalf("own stat: %+v %v", self, err)
	}
}

func TestFitSlabChunkMax(t *testing.T) {
	for _, c := range []struct{ want, item, fit int64 }{
		{524288, 1 << 20, 524288},
		{524288, 262144, 262144},
		{1 << 20, 1 << 20, 1 << 20},
		{1 << 20, 262144, 262144},
		{524288, 300000, 32},
		{150000, 1 << 20, 131072},
		{524288, 4 << 20, 524288},
	} {
		if got := fitSlabChunkMax(c.want, c.item); got != c.fit {
			t.Errorf("fitSlabChunkMax(%d, %d) = %d, want %d", c.want, c.item, got, c.fit)
		}
	}
}

func TestBuildRedisSettings(t *testing.T) {
	has := func(n string) bool { return n != "close-on-replica-write" && n != "list-max-ziplist-entries" }
	all := map[string]string{
		"maxmemory": "1000", "reserved-memory": "100", "reserved-memory-percent": "25",
		"hash-max-ziplist-entries": "10", "hash-max-listpack-entries": "20",
		"client-output-buffer-limit-slave-hard-limit": "5", "client-output-buffer-limit-replica-soft-limit": "6",
		"close-on-replica-write": "yes", "list-max-ziplist-entries": "1", "port": "1", "notify-keyspace-events": "",
	}
	s, noEffect, err := buildRedisSettings(all, nil, has)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, x := range s {
		got[x.name] = x.value()
	}
	want := map[string]string{"maxmemory": "900", "hash-max-listpack-entries": "20",
		"client-output-buffer-limit": "slave 5 6 60", "notify-keyspace-events": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("settings %v, want %v", got, want)
	}
	if fmt.Sprint(noEffect) != "[close-on-replica-write list-max-ziplist-entries port]" {
		t.Errorf("noEffect %v", noEffect)
	}
	// Only what changed, with composed values from all.
	s, _, err = buildRedisSettings(all, map[string]bool{"reserved-memory": true}, has)
	if err != nil || len(s) != 1 || s[0].name != "maxmemory" || s[0].value() != "900" {
		t.Errorf("changed reserved-memory: %+v %v", s, err)
	}
	all["reserved-memory"] = "0"
	s, _, _ = buildRedisSettings(all, map[string]bool{"reserved-memory": true}, has)
	if len(s) != 1 || s[0].value() != "750" {
		t.Errorf("reserved-memory-percent: %+v", s)
	}
	if _, _, err := buildRedisSettings(map[string]string{"maxmemory": "100", "reserved-memory": "100"}, nil, has); err == nil {
		t.Error("reserved >= maxmemory accepted")
	}
	conf, err := redisConfFile(Spec{Port: 1, Host: "127.0.0.1", Dir: "/d i r", Params: map[string]string{"rename-commands": "a b"}},
		[]redisSetting{{name: "x", args: []string{"q\"\\\n"}}})
	if err != nil || !strings.Contains(conf, "dir \"/d i r\"\n") || !strings.Contains(conf, "x \"q\\\"\\\\\\n\"\n") ||
		!strings.Contains(conf, "rename-command \"a\" \"b\"\n") || !strings.Contains(conf, "save \"\"\n") {
		t.Errorf("conf:\n%s", conf)
	}
}

func TestMemcachedArgs(t *testing.T) {
	opts := optionSet{}
	for n := range memcachedOptionProbes {
		opts[n] = n != "expirezero_does_not_evict"
	}
	spec := Spec{Host: "127.0.0.1", Port: 11211, Params: map[string]string{
		"max_cache_memory": "512", "memcached_connections_overhead": "100", "num_threads": "2", "cas_disabled": "1",
		"no_modern": "1", "modern": "1", "slab_reassign": "1", "lru_crawler": "0", "hashpower_init": "17",
		"expirezero_does_not_evict": "1", "max_item_size": "262144", "binding_protocol": "binary", "watch": "0",
		"large_memory_pages": "1",
	}}
	args, err := memcachedArgs(spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"-p 11211 -l 127.0.0.1 -U 0", "-m 412", "-t 2", "-C", "-I 262144", "-B auto", "-W",
		"-o no_modern,slab_reassign,no_lru_crawler,hashpower=17,slab_chunk_max=262144"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "expirezero") || strings.Contains(got, "-L") {
		t.Errorf("args %q", got)
	}
	spec.Params["max_cache_memory"] = "50"
	if _, err := memcachedArgs(spec, opts); err == nil {
		t.Error("no memory left accepted")
	}
}

func TestStopEscalates(t *testing.T) {
	// A process that ignores SIGTERM is killed after StopGrace.
	old := StopGrace
	StopGrace = 200 * time.Millisecond
	defer func() { StopGrace = old }()
	s, err := startProcess("sh", []string{"-c", "trap '' TERM; exec sleep 60"}, filepath.Join(t.TempDir(), "n"), "127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	if err := stopProcess(context.Background(), s.handle.PID, s.handle.StartTime); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < StopGrace || d > StopGrace+2*time.Second {
		t.Errorf("stop took %s", d)
	}
	if running(s.handle.PID, s.handle.StartTime) {
		t.Error("still running")
	}
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
		t.Error("not reaped")
	}
}

// TestValkeyDriver runs the valkey driver (the redis code with another binary)
// on redis-server, which speaks the same protocol and configuration.
func TestValkeyDriver(t *testing.T) {
	d := newDriver(t, "valkey")
	spec := redisSpec(t, familyParams(t, "valkey8", "cache.t3.micro"))
	spec.Engine = "valkey"
	h := startNode(t, d, spec)
	ctx := context.Background()
	if !d.Alive(ctx, h) {
		t.Fatal("not alive")
	}
	if v, err := d.Get(ctx, h, "maxmemory-policy"); err != nil || v != "volatile-lru" {
		t.Errorf("Get = %q, %v", v, err)
	}
	if _, err := NewDriver("mongodb"); err == nil {
		t.Error("unknown engine accepted")
	}
	// Without a binary the driver looks for valkey-server on PATH.
	if _, err := exec.LookPath("valkey-server"); err != nil {
		spec.Binary = ""
		if _, err := d.Start(ctx, spec); err == nil || !strings.Contains(err.Error(), `"valkey-server" not found`) {
			t.Errorf("Start without valkey-server: %v", err)
		}
	}
}

func TestHandleInDir(t *testing.T) {
	spec := memcachedSpec(t, nil)
	h := startNode(t, newDriver(t, "memcached"), spec)
	got, ok := HandleInDir(spec.Dir)
	if !ok || got != h {
		t.Fatalf("HandleInDir = %+v, %v; want %+v", got, ok, h)
	}
	if _, ok := HandleInDir(t.TempDir()); ok {
		t.Error("handle in an empty directory")
	}
}
