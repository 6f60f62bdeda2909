package front

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestEchoRoundTrip(t *testing.T) {
	b := startEcho(t)
	f := listenFront(t, []string{b.addr})
	c := dial(t, f.Addr())
	for i := range 100 {
		roundTrip(t, c, fmt.Sprintf("message %d\r\n", i))
	}
	c.Close()
	if !waitFor(2*time.Second, func() bool { return f.Stats().Active == 0 }) {
		t.Fatalf("connection still active after client close: %+v", f.Stats())
	}
	st := f.Stats()
	if st.Accepted != 1 || st.BytesToBackend != st.BytesToClient || st.BytesToBackend == 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestLargeTransfer pushes 64 MiB through the front and an echo backend in
// both directions at once and checks it comes back intact.
func TestLargeTransfer(t *testing.T) {
	const size = 64 << 20
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	want := sha256.Sum256(data)

	b := startEcho(t)
	f := listenFront(t, []string{b.addr})
	c := dial(t, f.Addr())
	c.SetDeadline(time.Now().Add(15 * time.Second))

	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if err := <-werr; err != nil {
		t.Fatal("write:", err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("got %d bytes, hash mismatch=%v", n, !bytes.Equal(h.Sum(nil), want[:]))
	}
	c.Close()
	waitFor(2*time.Second, func() bool { return f.Stats().Active == 0 })
	if st := f.Stats(); st.BytesToBackend != size || st.BytesToClient != size {
		t.Errorf("stats bytes = %d/%d, want %d", st.BytesToBackend, st.BytesToClient, size)
	}
}

// TestHalfClose: after the client's CloseWrite the backend reads EOF and can
// still answer, and the client reads the answer and then EOF.
func TestHalfClose(t *testing.T) {
	b := startBackend(t, func(c net.Conn) {
		got, err := io.ReadAll(c) // until the client's FIN
		if err != nil {
			return
		}
		fmt.Fprintf(c, "read %d bytes: %s", len(got), got)
	})
	f := listenFront(t, []string{b.addr})
	c := dial(t, f.Addr())
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "read 5 bytes: hello" {
		t.Fatalf("got %q", got)
	}
}

// TestBackendHalfClose: the backend finishing first (FIN) reaches the client
// as EOF while the client can still send.
func TestBackendHalfClose(t *testing.T) {
	b := startBackend(t, func(c net.Conn) {
		io.WriteString(c, "bye")
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		if string(got) != "ack" {
			c.(*net.TCPConn).SetLinger(0) // reset so the test sees a failure
		}
	})
	f := listenFront(t, []string{b.addr})
	c := dial(t, f.Addr())
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := io.WriteString(c, "ack"); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if !waitFor(2*time.Second, func() bool { return f.Stats().Active == 0 }) {
		t.Fatal("connection not finished after both sides closed")
	}
	if st := f.Stats(); st.BytesToBackend != 3 || st.BytesToClient != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRoundRobin(t *testing.T) {
	bs := []*testBackend{startEcho(t), startEcho(t), startEcho(t)}
	f := listenFront(t, []string{bs[0].addr, bs[1].addr, bs[2].addr})
	const n = 30
	for i := range n {
		roundTrip(t, dial(t, f.Addr()), fmt.Sprint(i))
	}
	for i, b := range bs {
		if got := b.accepted.Load(); got != n/3 {
			t.Errorf("backend %d got %d connections, want %d", i, got, n/3)
		}
	}
}

func TestSetBackends(t *testing.T) {
	a, b, c := startEcho(t), startEcho(t), startEcho(t)
	f := listenFront(t, []string{a.addr, b.addr})

	// Round-robin from the start: the first connection goes to a, the second to b.
	ca := dial(t, f.Addr())
	roundTrip(t, ca, "to a")
	cb := dial(t, f.Addr())
	roundTrip(t, cb, "to b")
	if a.accepted.Load() != 1 || b.accepted.Load() != 1 {
		t.Fatalf("accepted a=%d b=%d", a.accepted.Load(), b.accepted.Load())
	}

	f.SetBackends([]string{b.addr, c.addr}) // a removed, b kept, c added
	if got := f.Backends(); !slices.Equal(got, []string{b.addr, c.addr}) {
		t.Fatalf("Backends() = %v", got)
	}
	expectClosed(t, ca, time.Second)
	roundTrip(t, cb, "b survives")

	for i := range 4 {
		roundTrip(t, dial(t, f.Addr()), fmt.Sprint("new ", i))
	}
	if a.accepted.Load() != 1 {
		t.Errorf("removed backend got %d connections, want 1", a.accepted.Load())
	}
	if got := b.accepted.Load() + c.accepted.Load(); got != 1+4 || c.accepted.Load() == 0 {
		t.Errorf("new connections: b=%d c=%d", b.accepted.Load(), c.accepted.Load())
	}
	if st := f.Stats(); st.Evicted != 1 {
		t.Errorf("Evicted = %d, want 1", st.Evicted)
	}

	// Emptying the set closes everything and rejects new clients.
	f.SetBackends(nil)
	expectClosed(t, cb, time.Second)
	expectClosed(t, dial(t, f.Addr()), time.Second)
}

// TestSetBackendsDuringDial: a dial in flight to a backend that is removed
// before it completes must not leave the client attached to it.
func TestSetBackendsDuringDial(t *testing.T) {
	old, cur := startEcho(t), startEcho(t)
	f := listenFront(t, []string{old.addr})
	pc := &proxyConn{client: dial(t, startEcho(t).addr)} // any TCP conn will do
	oldConn, err := net.Dial("tcp", old.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer oldConn.Close()
	f.SetBackends([]string{cur.addr})
	if r := f.attach(pc, oldConn.(*net.TCPConn), old.addr); r != backendRemoved {
		t.Fatalf("attach to removed backend = %v", r)
	}
	// The real path: connect retries with the new set.
	c := dial(t, f.Addr())
	roundTrip(t, c, "x")
	if cur.accepted.Load() != 1 {
		t.Fatalf("current backend accepted %d", cur.accepted.Load())
	}
}

func TestDialFailover(t *testing.T) {
	live1, live2 := startEcho(t), startEcho(t)
	f := listenFront(t, []string{deadAddr(t), live1.addr, live2.addr})
	const n = 9
	for i := range n {
		roundTrip(t, dial(t, f.Addr()), fmt.Sprint(i))
	}
	if got := live1.accepted.Load() + live2.accepted.Load(); got != n {
		t.Errorf("live backends got %d connections, want %d", got, n)
	}
	if st := f.Stats(); st.FailedDials != n/3 || st.Rejected != 0 {
		t.Errorf("stats = %+v, want %d failed dials", st, n/3)
	}
}

func TestAllBackendsDead(t *testing.T) {
	f := listenFront(t, []string{deadAddr(t), deadAddr(t)})
	c := dial(t, f.Addr())
	start := time.Now()
	expectClosed(t, c, time.Second)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("closed after %v", d)
	}
	if st := f.Stats(); st.FailedDials != 2 || st.Rejected != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestNoBackends(t *testing.T) {
	f := listenFront(t, nil)
	expectClosed(t, dial(t, f.Addr()), 500*time.Millisecond)
	if st := f.Stats(); st.FailedDials != 0 || st.Rejected != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDialTimeout(t *testing.T) {
	f := listenFront(t, []string{hungAddr(t)}, WithDialTimeout(100*time.Millisecond))
	start := time.Now()
	expectClosed(t, dial(t, f.Addr()), 2*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("client closed after %v with a 100ms dial timeout", d)
	}
	if st := f.Stats(); st.FailedDials != 1 || st.Rejected != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestClose(t *testing.T) {
	b := startEcho(t)
	before := runtime.NumGoroutine()

	f, err := Listen("127.0.0.1:0", []string{b.addr})
	if err != nil {
		t.Fatal(err)
	}
	var conns []*net.TCPConn
	for i := range 10 {
		c := dial(t, f.Addr())
		roundTrip(t, c, fmt.Sprint(i))
		conns = append(conns, c)
	}
	if a := f.Stats().Active; a != 10 {
		t.Fatalf("Active = %d", a)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if a := f.Stats().Active; a != 0 {
		t.Errorf("Active after Close = %d", a)
	}
	for _, c := range conns {
		expectClosed(t, c, time.Second)
	}
	if c, err := net.DialTimeout("tcp", f.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("front still accepts after Close")
	}
	// The backend's handlers end once the front closed its side; allow a
	// little slack for runtime goroutines that come and go.
	if !waitFor(2*time.Second, func() bool { return runtime.NumGoroutine() <= before+2 }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after Close\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// TestCloseDuringDial: Close must not wait for a dial timeout.
func TestCloseDuringDial(t *testing.T) {
	f, err := Listen("127.0.0.1:0", []string{hungAddr(t)}, WithDialTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	dial(t, f.Addr())
	waitFor(time.Second, func() bool { return f.Stats().Accepted == 1 })
	time.Sleep(20 * time.Millisecond) // let the dial start
	start := time.Now()
	f.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if st := f.Stats(); st.FailedDials != 0 || st.Rejected != 0 {
		t.Errorf("a dial cut short by Close counted as a failure: %+v", st)
	}
}

// TestSpliceUsed checks that forwarding takes Go's splice(2) path: each
// direction of an open connection holds a pipe from the runtime's splice
// pipe pool, so the process gains two pipes (four fds) per proxied
// connection. A user-space copy would create none.
func TestSpliceUsed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("splice is Linux only")
	}
	// The backend copies in user space: io.Copy(c, c) would splice too and
	// add pipes of its own.
	b := startBackend(t, func(c net.Conn) { io.Copy(c, struct{ io.Reader }{c}) })
	f := listenFront(t, []string{b.addr})

	// Empty the pool first: pipes left there by earlier tests would be
	// reused rather than created. Pooled pipes are closed by cleanups that
	// run after the garbage collector drops them (two cycles).
	base, prev := 0, -1
	for i := 0; i < 50; i++ {
		runtime.GC()
		time.Sleep(2 * time.Millisecond)
		base = pipeFDs(t)
		if base == prev && i >= 3 {
			break
		}
		prev = base
	}

	const conns = 4
	for i := range conns {
		roundTrip(t, dial(t, f.Addr()), fmt.Sprint("splice ", i))
	}
	if got := pipeFDs(t); got < base+4*conns {
		t.Fatalf("pipe fds: %d before, %d with %d proxied connections; splice not used", base, got, conns)
	}
}

// flakyListener fails its first accepts with EMFILE, as a listener does when
// the process is out of file descriptors.
type flakyListener struct {
	*net.TCPListener
	failures atomic.Int32
}

func (l *flakyListener) AcceptTCP() (*net.TCPConn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.TCPListener.AcceptTCP()
}

func TestAcceptErrorBackoff(t *testing.T) {
	b := startEcho(t)
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{TCPListener: ln}
	fl.failures.Store(3)
	var logs syncBuffer
	start := time.Now()
	f := serveListener(fl, []string{b.addr}, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer f.Close()

	roundTrip(t, dial(t, f.Addr()), "after EMFILE")
	// Backoff 5ms, 10ms, 20ms before the accept that succeeds.
	if d := time.Since(start); d < 35*time.Millisecond {
		t.Errorf("served after %v: accept errors not backed off", d)
	}
	if n := strings.Count(logs.String(), "too many open files"); n != 3 {
		t.Errorf("logged %d accept errors, want 3:\n%s", n, logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the front's goroutines to log into.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
