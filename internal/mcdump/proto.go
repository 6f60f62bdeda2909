package mcdump

// Helpers for memcached's text protocol shared by Dump and Load.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// maxB64KeyLen is the longest key that can be sent base64-encoded:
// memcached 1.6 limits a meta command's key token to 250 bytes before it
// decodes it, and 4*ceil(186/3) = 248.
const maxB64KeyLen = 186

// addressable reports whether keyToken can give key a token.
func addressable(key []byte) bool {
	n := len(key)
	return n > 0 && n <= MaxKeyLen &&
		(plainSafe(key) || n <= maxB64KeyLen || !bytes.ContainsAny(key, "\x00 \r\n"))
}

// keyToken appends key to dst as a meta command takes it, and reports
// whether it went base64-encoded (and so needs the b flag). ok is false, and
// nothing is appended, if memcached cannot be asked about the key at all.
func keyToken(dst, key []byte) (tok []byte, b bool, ok bool) {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return dst, false, false
	}
	if plainSafe(key) {
		return append(dst, key...), false, true
	}
	if len(key) <= maxB64KeyLen {
		return base64.StdEncoding.AppendEncode(dst, key), true, true
	}
	// Too long for base64. memcached's tokenizer takes control bytes other
	// than NUL, CR and LF, and splits only on space, so such a key can still
	// go as it is.
	if !bytes.ContainsAny(key, "\x00 \r\n") {
		return append(dst, key...), false, true
	}
	return dst, false, false
}

// plainSafe reports whether key can be sent without encoding under any
// reading of the protocol: no space, control byte or DEL. Bytes above 0x7f
// (UTF-8 keys) are fine.
func plainSafe(key []byte) bool {
	for _, c := range key {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// uriDecode undoes the %XX escaping of keys in lru_crawler metadump output.
// It is not url.QueryUnescape: memcached escapes every byte outside
// [A-Za-z0-9._~-], so a literal '+' cannot occur and must not become a space.
func uriDecode(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(s) {
			return nil, fmt.Errorf("truncated escape in %q", s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("bad escape %q in %q", s[i:i+3], s)
		}
		dst = append(dst, hi<<4|lo)
		i += 2
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// readLine reads one line, without its line end. The slice is valid until
// the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("line longer than %d bytes from memcached", br.Size())
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// dial connects to memcached at addr and ties the connection to ctx: the
// connection gets ctx's deadline, and cancelling ctx unblocks any read or
// write on it. The returned stop undoes the tie; call it before closing.
func dial(ctx context.Context, addr string) (net.Conn, func(), error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to memcached: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("setting a deadline on the connection: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() {
		// A deadline in the past fails pending and future I/O at once.
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	return conn, func() { stop() }, nil
}

// group runs goroutines that fail together: the first error cancels the
// group's context (which, through dial, unblocks their connections) and is
// the one Wait returns.
type group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newGroup(ctx context.Context) *group {
	g := &group{}
	g.ctx, g.cancel = context.WithCancelCause(ctx)
	return g
}

func (g *group) fail(err error) {
	g.once.Do(func() {
		g.err = err
		g.cancel(err)
	})
}

func (g *group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.fail(err)
		}
	}()
}

// Wait waits for the goroutines and returns the first error. If the parent
// context ended, the goroutines' errors are consequences of that (deadlines
// forced onto the connections), so the context's error is returned instead.
func (g *group) Wait(parent context.Context) error {
	g.wg.Wait()
	g.cancel(nil)
	if g.err != nil && parent.Err() != nil {
		return context.Cause(parent)
	}
	return g.err
}
