package front

import (
	"io"
	"net"
	"slices"
)

// maxRounds bounds how many times one client connection restarts its choice
// of backend because SetBackends removed the backend it had just dialed. Each
// round tries every backend of the then current set once; a few rounds are
// enough unless the set is being changed continuously.
const maxRounds = 3

// proxyConn is one client connection and, once dialed, its backend
// connection. backend and addr are written under Front.mu (attach) and are
// read by SetBackends and Close under the same lock.
type proxyConn struct {
	client  *net.TCPConn
	backend *net.TCPConn
	addr    string
}

// close closes both sides; the forwarding goroutines then see errors and end.
func (pc *proxyConn) close() {
	pc.client.Close()
	if pc.backend != nil {
		pc.backend.Close()
	}
}

// serve runs one client connection from accept to close.
func (f *Front) serve(client *net.TCPConn) {
	defer f.wg.Done()
	defer f.stats.active.Add(-1)

	pc := &proxyConn{client: client}
	if !f.track(pc) {
		client.Close()
		return
	}
	defer f.untrack(pc)

	backend := f.connect(pc)
	if backend == nil {
		client.Close()
		return
	}
	f.pipe(client, backend)
}

// track registers pc so that Close can close it; false if the front is closed.
func (f *Front) track(pc *proxyConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[pc] = struct{}{}
	return true
}

func (f *Front) untrack(pc *proxyConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, pc) // a nil map (after Close) is fine
}

// pick returns the current backends and the index to start from, advancing
// the round-robin position. The slice is never modified in place
// (SetBackends replaces it), so it can be used without the lock.
func (f *Front) pick() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.backends) == 0 {
		return nil, 0
	}
	start := int(f.next % uint64(len(f.backends)))
	f.next++
	return f.backends, start
}

type attachResult int

const (
	attached attachResult = iota
	frontClosed
	backendRemoved
)

// attach records c as pc's backend unless the front was closed or addr was
// removed from the backends while the dial was in flight. Checking under the
// lock that SetBackends holds means a connection can never end up attached to
// a backend that SetBackends has already swept.
func (f *Front) attach(pc *proxyConn, c *net.TCPConn, addr string) attachResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return frontClosed
	case !slices.Contains(f.backends, addr):
		return backendRemoved
	}
	pc.backend, pc.addr = c, addr
	return attached
}

// connect dials a backend for pc: the round-robin choice first, then each
// other backend once. It returns nil if none could be reached or the front
// was closed.
func (f *Front) connect(pc *proxyConn) *net.TCPConn {
	d := net.Dialer{Timeout: f.dialTimeout}
rounds:
	for range maxRounds {
		backends, start := f.pick()
		for i := range backends {
			addr := backends[(start+i)%len(backends)]
			c, err := d.DialContext(f.ctx, "tcp", addr)
			if err != nil {
				if f.ctx.Err() != nil {
					return nil // closing; not a backend failure
				}
				f.stats.failedDials.Add(1)
				f.log.Warn("front backend dial failed", "addr", f.Addr(), "backend", addr, "err", err)
				continue
			}
			switch f.attach(pc, c.(*net.TCPConn), addr) {
			case attached:
				return c.(*net.TCPConn)
			case frontClosed:
				c.Close()
				return nil
			case backendRemoved:
				c.Close()
				continue rounds
			}
		}
		break // every backend of this set failed (or there were none)
	}
	if f.ctx.Err() == nil {
		f.stats.rejected.Add(1)
		f.log.Warn("front closing client: no backend reachable", "addr", f.Addr(), "client", pc.client.RemoteAddr().String())
	}
	return nil
}

// pipe forwards both directions until both have ended, then closes both
// connections. io.Copy between two *net.TCPConn reaches TCPConn.ReadFrom,
// which on Linux moves the data with splice(2); wrapping either side (for
// counting, deadlines...) would silently fall back to a user-space copy.
func (f *Front) pipe(client, backend *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := io.Copy(client, backend)
		f.stats.toClient.Add(uint64(n))
		endDirection(client, backend, err)
	}()
	n, err := io.Copy(backend, client)
	f.stats.toBackend.Add(uint64(n))
	endDirection(backend, client, err)
	<-done
	client.Close()
	backend.Close()
}

// endDirection is called when copying src to dst has stopped. On a clean EOF
// the peer behind src has finished sending, so dst gets a FIN (CloseWrite)
// while the other direction goes on, as a direct connection would. On an
// error (reset, or a close by SetBackends/Close) both sides are closed, which
// also ends the other direction.
func endDirection(dst, src *net.TCPConn, err error) {
	if err == nil && dst.CloseWrite() == nil {
		return
	}
	dst.Close()
	src.Close()
}
