package main

// What the snapshots scenario needs besides hoard: the S3 servers (moto_server,
// versitygw), the baseline tools, a minimal RESP client, and the dataset writer.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	redisCLI = "/usr/bin/redis-cli"
	awsCLI   = "/root/.pyenv/shims/aws"

	// Keys toward the S3 server, for hoard (HOARD_S3_*), the S3 client and aws.
	s3Key    = "AKIDHOARDBENCHS3"
	s3Secret = "hoard-bench-s3-secret"

	minValue = 1 << 10  // bytes in the smallest value
	maxValue = 10 << 10 // and in the largest
)

func lookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("the snapshots scenario needs %s: %w", name, err)
	}
	return p, nil
}

// runTool runs a baseline command to completion and returns its wall time and
// its CPU time (user+system, its waited-for children included). env nil: ours.
func runTool(ctx context.Context, env []string, name string, args ...string) (wall, cpu time.Duration, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	wall = time.Since(t0)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return wall, cpu, fmt.Errorf("%s %s: %w: %.500s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return wall, cpu, nil
}

// awsEnv is our environment without any AWS_ settings, plus the S3 keys and
// no config or credentials files, so that nothing in ~/.aws changes the upload.
func awsEnv(tmp string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	none := filepath.Join(tmp, "no-aws-config")
	return append(env, "AWS_ACCESS_KEY_ID="+s3Key, "AWS_SECRET_ACCESS_KEY="+s3Secret, "AWS_DEFAULT_REGION="+region,
		"AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none, "AWS_EC2_METADATA_DISABLED=true")
}

func newS3Client(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3Key, s3Secret, ""),
		HTTPClient:   &http.Client{Timeout: time.Minute},
		Retryer:      aws.NopRetryer{},
	})
}

// s3Server is an S3 server we started (moto_server or versitygw), in its own
// process group, on a free loopback port.
type s3Server struct {
	kind     string // "moto" or "versitygw"
	cmd      *exec.Cmd
	endpoint string
	client   *s3.Client
	exited   chan struct{}
}

// The S3 servers the snapshots scenario can export to (-s3).
var s3Kinds = []string{"moto", "versitygw"}

// versitygwInstall is how to get the versitygw the scenario was measured with.
const versitygwInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// findVersitygw looks for versitygw on PATH, then where go install puts it.
func findVersitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(d)[0], "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("-s3 versitygw: versitygw is not on PATH nor in $GOBIN, $GOPATH/bin or ~/go/bin "+
		"(install it with `%s`, or leave it out of -s3)", versitygwInstall)
}

// s3Bin finds the program of the S3 server kind.
func s3Bin(kind string) (string, error) {
	switch kind {
	case "moto":
		bin, err := lookTool("moto_server")
		if err != nil {
			return "", fmt.Errorf("%w (pip install 'moto[server]')", err)
		}
		return bin, nil
	case "versitygw":
		return findVersitygw()
	}
	return "", fmt.Errorf("unknown S3 server %q (want one of %s)", kind, strings.Join(s3Kinds, ", "))
}

// s3Command is the command line that serves kind on 127.0.0.1:port, with its data
// (versitygw's buckets) under tmp.
func s3Command(kind, tmp string, port int) (*exec.Cmd, error) {
	bin, err := s3Bin(kind)
	if err != nil {
		return nil, err
	}
	if kind == "moto" {
		return exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port)), nil
	}
	root := filepath.Join(tmp, "versitygw")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	// The posix backend: each bucket a directory under root, each object a
	// file. --keep-alive because every S3 client here (hoard, aws) reuses
	// connections, as real S3 lets them; --quiet drops the per-request log line.
	return exec.Command(bin, "--access", s3Key, "--secret", s3Secret, "--region", region,
		"--port", "127.0.0.1:"+strconv.Itoa(port), "--keep-alive", "--quiet", "posix", root), nil
}

// startS3 starts the S3 server kind on a free loopback port, as internal/blob's
// tests start moto, and waits until it answers HTTP. Its log is tmp/<kind>.log.
func startS3(ctx context.Context, kind, tmp string) (*s3Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd, err := s3Command(kind, tmp, port)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(tmp, kind+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, whose id is its PID: stop signals the group, which
	// holds the server and any wrapper that started it (moto's pyenv shim).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	m := &s3Server{kind: kind, cmd: cmd, endpoint: endpoint, client: newS3Client(endpoint), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Any HTTP answer will do: versitygw refuses the anonymous request (403).
		resp, err := http.Get(m.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-m.exited:
			return m, fmt.Errorf("%s exited before answering (log: %s)", kind, logf.Name())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return m, fmt.Errorf("%s did not answer on %s within 60s (log: %s)", kind, m.endpoint, logf.Name())
		}
	}
}

// stop sends SIGTERM to the server's process group (its PID) and waits; SIGKILL
// after 10s.
func (m *s3Server) stop() {
	pid := m.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-m.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baselineRestore copies snap-1's file into a fresh directory (not timed), then
// starts redis-server on it and times it from the start until it answers PING
// and INFO persistence says loading:0. The server is then stopped by PID.
func (e *snapEnv) baselineRestore(ctx context.Context, rep int) (wall, cpu time.Duration, err error) {
	dir := filepath.Join(e.tmp, fmt.Sprintf("redis-server-%d", rep))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	if _, _, err := runTool(ctx, nil, "cp", e.snapFile, filepath.Join(dir, "0001.rdb")); err != nil {
		return 0, 0, err
	}
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	// --save "" so that SIGTERM does not write the dataset back (hoard's nodes
	// have no save points either); --bind keeps it on loopback.
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--dbfilename", "0001.rdb", "--save", "", "--appendonly", "no")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() { // by PID: SIGTERM, then SIGKILL after 10s
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	at, err := awaitLoaded(ctx, addr, exited)
	wall, cpu = at.Sub(t0), procCPU(cmd.Process.Pid)
	if err != nil {
		log, _ := os.ReadFile(logf.Name())
		return wall, cpu, fmt.Errorf("redis-server on %s: %w\n%s", addr, err, tail(log, 1000))
	}
	return wall, cpu, checkKeys(addr, e.keys)
}

// awaitLoaded polls a redis server every snapPoll until it answers PING and
// INFO persistence says loading:0, and returns when that reply arrived.
func awaitLoaded(ctx context.Context, addr string, exited <-chan struct{}) (time.Time, error) {
	tick := time.NewTicker(snapPoll)
	defer tick.Stop()
	deadline := time.Now().Add(snapBudget)
	var rc *respConn
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	for {
		if rc == nil {
			rc, _ = dialRESP(addr)
		}
		if rc != nil {
			pong, err := rc.do("PING")
			if err == nil && pong == "PONG" {
				var info string
				if info, err = rc.do("INFO", "persistence"); err == nil && strings.Contains(info, "\nloading:0\r") {
					return time.Now(), nil
				}
			}
			var re respError
			if err != nil && !errors.As(err, &re) { // -LOADING keeps the connection
				rc.Close()
				rc = nil
			}
		}
		if time.Now().After(deadline) {
			return time.Now(), fmt.Errorf("not loaded after %s", snapBudget)
		}
		select {
		case <-ctx.Done():
			return time.Now(), ctx.Err()
		case <-exited:
			return time.Now(), errors.New("exited before it had loaded the RDB")
		case <-tick.C:
		}
	}
}

// checkKeys checks that the redis server at addr holds want keys.
func checkKeys(addr string, want int) error {
	rc, err := dialRESP(addr)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := rc.do("DBSIZE")
	if err != nil {
		return err
	}
	if n != strconv.Itoa(want) {
		return fmt.Errorf("%s holds %s keys, want %d", addr, n, want)
	}
	return nil
}

// redisInfoField is one field of one INFO section.
func redisInfoField(addr, section, field string) (string, error) {
	rc, err := dialRESP(addr)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	info, err := rc.do("INFO", section)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// loadDataset writes random values of minValue to maxValue bytes under keys
// key:000000001, ... until total bytes of values are written, as one pipeline of
// SET commands over one connection. The values are generated as they are sent
// (ChaCha8, fixed seed), so the harness holds one value at a time. A reader
// counts the replies; a PING at the end marks the last one.
func loadDataset(ctx context.Context, addr string, total int64) (keys int, written int64, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var acked atomic.Int64
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(conn, 64<<10)
		for {
			line, err := r.ReadString('\n')
			switch {
			case err != nil:
				done <- fmt.Errorf("reading replies after %d: %w", acked.Load(), err)
				return
			case line == "+OK\r\n":
				acked.Add(1)
			case line == "+PONG\r\n":
				done <- nil
				return
			default:
				done <- fmt.Errorf("SET number %d: %q", acked.Load()+1, strings.TrimSpace(line))
				return
			}
		}
	}()
	src := rand.NewChaCha8([32]byte{'h', 'o', 'a', 'r', 'd'})
	rng := rand.New(src)
	w := bufio.NewWriterSize(conn, 256<<10)
	val := make([]byte, maxValue)
	var cmd []byte
	for written < total {
		select {
		case err := <-done: // the reader stopped early
			if err == nil {
				err = errors.New("reply stream ended early")
			}
			return keys, written, err
		default:
		}
		n := minValue + rng.IntN(maxValue-minValue+1)
		_, _ = src.Read(val[:n])
		key := fmt.Sprintf("key:%09d", keys+1)
		cmd = fmt.Appendf(cmd[:0], "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, n)
		if _, err := w.Write(cmd); err != nil {
			return keys, written, err
		}
		if _, err := w.Write(val[:n]); err != nil {
			return keys, written, err
		}
		if _, err := w.WriteString("\r\n"); err != nil {
			return keys, written, err
		}
		keys++
		written += int64(n)
	}
	if _, err := w.WriteString("*1\r\n$4\r\nPING\r\n"); err != nil {
		return keys, written, err
	}
	if err := w.Flush(); err != nil {
		return keys, written, err
	}
	if err := <-done; err != nil {
		return keys, written, err
	}
	if got := acked.Load(); got != int64(keys) {
		return keys, written, fmt.Errorf("%d SETs sent, %d acknowledged", keys, got)
	}
	return keys, written, nil
}

// respConn is a minimal RESP2 client: one command at a time.
type respConn struct {
	net.Conn
	r *bufio.Reader
}

// respError is an error reply (-ERR ..., -LOADING ...).
type respError string

func (e respError) Error() string { return string(e) }

func dialRESP(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// do sends a command and returns a simple, integer or bulk reply as a string.
func (c *respConn) do(args ...string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	b = fmt.Appendf(b, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", respError(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bulk reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
