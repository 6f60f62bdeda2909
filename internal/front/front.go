// Package front is the TCP front behind a replication group's endpoints.
//
// An ElastiCache replication group publishes a PrimaryEndpoint, which must
// always reach the current primary even after a failover promotes a replica,
// and a ReaderEndpoint, which spreads connections over the replicas. hoard
// runs each endpoint as a Front: a small TCP proxy listening on its own port
// and forwarding every accepted connection, byte for byte, to one of a set of
// backends (redis-server addresses) that the service repoints as the topology
// changes. The front does not parse the protocol, so it works for any engine.
//
// Backend choice: each new connection goes to the next backend in round-robin
// order (a primary endpoint simply has one backend). If the dial fails, the
// other backends are tried once each before the client connection is closed;
// with no backends the client connection is closed at once.
//
// SetBackends semantics: the new set applies to the next accepted connection.
// Open connections to a backend that is no longer in the set are closed, both
// the client and the backend side, so that a client of a demoted primary
// cannot go on writing to it: it sees its connection drop, reconnects and
// reaches the new primary. Connections to backends that remain in the set are
// left alone. A connection whose dial was in flight when its backend was
// removed is not attached to it; it is dialed again against the new set.
//
// Forwarding uses io.Copy between the two *net.TCPConn so that Linux moves
// the bytes with splice(2) without copying them through user space. When one
// side finishes sending (EOF), the front half-closes the other side's write
// direction and keeps forwarding the reverse direction until it ends too; an
// error on either direction closes both sides.
//
// Close stops listening, closes every proxied connection (both sides) and
// returns once all of the front's goroutines have ended, dials included.
//
// What a caller should know: the front checks no backend health beyond the
// dial, so whoever runs failover must call SetBackends; a duplicate address
// in the set gets a matching extra share of connections. A client whose
// connection is dropped by SetBackends may have had a command in flight
// that the old backend did or did not execute, as after any failover. Each
// proxied connection holds two sockets plus, for splice, two pipes (four
// descriptors), so six file descriptors. Every request crosses two more
// loopback TCP hops than a direct connection; on a small machine where
// client, redis-server and front share the CPU, throughput through the front
// is bounded by that extra CPU, not by the front's latency.
package front

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDialTimeout bounds each dial to a backend unless WithDialTimeout
// says otherwise. Backends are local processes, so a dial that takes longer
// than this means the backend is hung and the next one should be tried.
const DefaultDialTimeout = 2 * time.Second

// Option configures a Front in Listen.
type Option func(*Front)

// WithLogger sets where backend changes and dial failures are logged. The
// default discards them. Nothing is logged per byte or per request.
func WithLogger(l *slog.Logger) Option {
	return func(f *Front) {
		if l != nil {
			f.log = l
		}
	}
}

// WithDialTimeout bounds each dial to a backend (DefaultDialTimeout if d <= 0).
func WithDialTimeout(d time.Duration) Option {
	return func(f *Front) {
		if d > 0 {
			f.dialTimeout = d
		}
	}
}

// Stats is a snapshot of a Front's counters.
type Stats struct {
	Accepted    uint64 // client connections accepted
	Active      int64  // client connections being served (dialing or forwarding)
	FailedDials uint64 // backend dials that failed (each backend tried counts)
	Rejected    uint64 // client connections closed because no backend could be reached
	Evicted     uint64 // connections closed because SetBackends removed their backend
	// Bytes forwarded each way. splice(2) reports how much it moved only when
	// a direction ends, so these grow when a connection direction finishes,
	// not while it is open.
	BytesToBackend uint64
	BytesToClient  uint64
}

type counters struct {
	accepted, failedDials, rejected, evicted atomic.Uint64
	toBackend, toClient                      atomic.Uint64
	active                                   atomic.Int64
}

// Front is a TCP proxy from one listening address to a changeable set of
// backends. Its methods are safe for concurrent use.
type Front struct {
	ln          tcpListener
	log         *slog.Logger
	dialTimeout time.Duration

	// ctx is cancelled by Close so that dials in flight stop at once
	// instead of holding Close up for the dial timeout.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	backends []string
	next     uint64 // round-robin position, advanced once per connection
	conns    map[*proxyConn]struct{}
	closed   bool

	// wg counts the accept loop and every connection goroutine, so that
	// Close can return only when none is left.
	wg    sync.WaitGroup
	stats counters
}

// tcpListener is what a Front needs of *net.TCPListener; tests substitute
// one that fails the way a listener out of file descriptors does.
type tcpListener interface {
	AcceptTCP() (*net.TCPConn, error)
	Close() error
	Addr() net.Addr
}

// Listen starts a front on addr ("127.0.0.1:0" picks a free port) that
// forwards each accepted connection to one of backends (host:port each).
func Listen(addr string, backends []string, opts ...Option) (*Front, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return serveListener(ln.(*net.TCPListener), backends, opts...), nil
}

func serveListener(ln tcpListener, backends []string, opts ...Option) *Front {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Front{
		ln:          ln,
		log:         slog.New(slog.DiscardHandler),
		dialTimeout: DefaultDialTimeout,
		ctx:         ctx,
		cancel:      cancel,
		backends:    slices.Clone(backends),
		conns:       make(map[*proxyConn]struct{}),
	}
	for _, o := range opts {
		o(f)
	}
	f.log.Debug("front listening", "addr", f.Addr(), "backends", f.backends)
	f.wg.Add(1)
	go f.acceptLoop()
	return f
}

// Addr returns the host:port the front listens on.
func (f *Front) Addr() string { return f.ln.Addr().String() }

// Backends returns a copy of the current backends.
func (f *Front) Backends() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.backends)
}

// SetBackends replaces the backends. New connections use the new set at
// once; open connections to a backend not in the new set are closed (both
// sides) so that their clients reconnect through the front to the new set;
// connections to backends still in the set are kept.
func (f *Front) SetBackends(backends []string) {
	f.mu.Lock()
	old := f.backends
	f.backends = slices.Clone(backends)
	var evict []*proxyConn
	for pc := range f.conns {
		// A connection still dialing has no backend yet; it checks the set
		// again once its dial completes (see attach).
		if pc.backend != nil && !slices.Contains(f.backends, pc.addr) {
			evict = append(evict, pc)
			delete(f.conns, pc)
		}
	}
	f.mu.Unlock()

	// Close outside the lock: closing is a syscall and the connection
	// goroutines need the lock to untrack themselves.
	for _, pc := range evict {
		pc.close()
	}
	f.stats.evicted.Add(uint64(len(evict)))
	f.log.Debug("front backends changed", "addr", f.Addr(), "old", old, "new", backends, "closed_conns", len(evict))
}

// Close stops listening, closes every proxied connection and waits until all
// the front's goroutines have ended. It is idempotent; later calls return nil.
func (f *Front) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()

	f.cancel()
	err := f.ln.Close()
	for pc := range conns {
		pc.close()
	}
	f.wg.Wait()
	f.log.Debug("front closed", "addr", f.Addr(), "closed_conns", len(conns))
	return err
}

// Stats returns a snapshot of the front's counters.
func (f *Front) Stats() Stats {
	return Stats{
		Accepted:       f.stats.accepted.Load(),
		Active:         f.stats.active.Load(),
		FailedDials:    f.stats.failedDials.Load(),
		Rejected:       f.stats.rejected.Load(),
		Evicted:        f.stats.evicted.Load(),
		BytesToBackend: f.stats.toBackend.Load(),
		BytesToClient:  f.stats.toClient.Load(),
	}
}

func (f *Front) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// acceptLoop accepts until the listener is closed. Any other accept error
// (EMFILE, ENFILE, ENOBUFS, ECONNABORTED...) is retried after a growing
// pause: the listener is the endpoint clients were given, so giving up on it
// would break the endpoint for good while the service believes it is up.
func (f *Front) acceptLoop() {
	defer f.wg.Done()
	var backoff time.Duration
	for {
		c, err := f.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || f.isClosed() {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			f.log.Warn("front accept failed; retrying", "addr", f.Addr(), "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-f.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		f.stats.accepted.Add(1)
		f.stats.active.Add(1)
		// Add while the accept loop's own count is held, so it cannot race
		// with Close's Wait reaching zero.
		f.wg.Add(1)
		go f.serve(c)
	}
}
