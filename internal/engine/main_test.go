package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hoardcache/hoard/internal/catalog"
)

// testRoot holds every directory the tests create (TMPDIR points at it), so
// that TestMain can find any node process left running: its working directory
// is under testRoot.
var testRoot string

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(m.Run())
	}
	root, err := os.MkdirTemp("", "hoard-engine-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testRoot = root
	os.Setenv("TMPDIR", root)
	code := m.Run()
	if leaked := processesUnder(root); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "processes left running under %s: %v\n", root, leaked)
		for _, p := range leaked {
			_ = stopProcess(context.Background(), p.pid, p.start)
		}
		code = 1
	}
	os.RemoveAll(root)
	os.Exit(code)
}

type procRef struct {
	pid   int
	start uint64
	cmd   string
}

func (p procRef) String() string { return fmt.Sprintf("%d(%s)", p.pid, p.cmd) }

// processesUnder lists running processes whose working directory or command
// line is under dir.
func processesUnder(dir string) []procRef {
	ents, _ := os.ReadDir("/proc")
	var out []procRef
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cmd := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if !strings.HasPrefix(cwd, dir) && !strings.Contains(cmd, dir) {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.state == 'Z' {
			continue
		}
		out = append(out, procRef{pid: pid, start: st.startTime, cmd: cmd})
	}
	return out
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// portFree reports whether port can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func needBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func newDriver(t testing.TB, engine string) Driver {
	t.Helper()
	d, err := NewDriver(engine)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startNode starts a node and registers its Stop (by pid) for the end of the test.
func startNode(t testing.TB, d Driver, spec Spec) Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(context.Background(), h); err != nil {
			t.Errorf("Stop %d: %v", h.PID, err)
		}
	})
	return h
}

func redisSpec(t testing.TB, params map[string]string) Spec {
	return Spec{Engine: "redis", Binary: needBinary(t, "redis-server"), Dir: filepath.Join(t.TempDir(), "node"),
		Host: "127.0.0.1", Port: freePort(t), Params: params}
}

func memcachedSpec(t testing.TB, params map[string]string) Spec {
	return Spec{Engine: "memcached", Binary: needBinary(t, "memcached"), Dir: filepath.Join(t.TempDir(), "node"),
		Host: "127.0.0.1", Port: freePort(t), Params: params}
}

// familyParams returns a family's defaults with the node-type values of nodeType.
func familyParams(t testing.TB, family, nodeType string) map[string]string {
	t.Helper()
	f, ok := catalog.Lookup(family)
	if !ok {
		t.Fatalf("no family %s", family)
	}
	p := map[string]string{}
	for _, x := range f.Params {
		p[x.Name] = x.Value
	}
	for _, x := range f.NodeTypeSpecific {
		if v, ok := x.Values[nodeType]; ok {
			p[x.Name] = v
		}
	}
	return p
}

// The helper process: started by a test with helperEnv set to a JSON Spec, it
// starts the node, prints the Handle, and kills itself with SIGKILL as
// `kill -9 hoard` would.
const helperEnv = "HOARD_ENGINE_TEST_HELPER"

func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("helper process only")
	}
	var spec Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	d, err := NewDriver(spec.Engine)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	h, err := d.Start(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	b, _ := json.Marshal(h)
	os.Stdout.Write(append(b, '\n'))
	os.Stdout.Sync()
	p, _ := os.FindProcess(os.Getpid())
	p.Kill()
	select {}
}
