package front

import (
	"fmt"
	"io"
	"net"
	"testing"
)

// BenchmarkRoundTrip measures request/response round trips (write a
// message, read its echo) on one connection, directly to an echo server and
// through a front, so the difference is the front's added latency per round
// trip: two more socket hops and the wakeups of its copying goroutines.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, mode := range []string{"direct", "front"} {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				addr := startEcho(b).addr
				if mode == "front" {
					addr = listenFront(b, []string{addr}).Addr()
				}
				c := dial(b, addr)
				msg, buf := make([]byte, size), make([]byte, size)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range b.N {
					if _, err := c.Write(msg); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRoundTripParallel runs round trips on many connections at once
// (one per goroutine of RunParallel), closer to many clients sharing an
// endpoint: here the front's CPU use competes with the client and server.
func BenchmarkRoundTripParallel(b *testing.B) {
	for _, mode := range []string{"direct", "front"} {
		b.Run(mode, func(b *testing.B) {
			addr := startEcho(b).addr
			if mode == "front" {
				addr = listenFront(b, []string{addr}).Addr()
			}
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				msg, buf := make([]byte, 64), make([]byte, 64)
				for pb.Next() {
					if _, err := c.Write(msg); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
