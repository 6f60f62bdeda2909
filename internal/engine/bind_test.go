package engine

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A node takes on a second loopback address and gives it up again; the
// clients that came in on it are dropped, those on its own address kept.
func TestBindMovesAnExtraAddress(t *testing.T) {
	d := newDriver(t, "redis")
	h := startNode(t, d, redisSpec(t, nil))
	b := d.(Binder)
	ctx := context.Background()
	extra := "127.0.0.77"
	extraAddr := net.JoinHostPort(extra, strconv.Itoa(h.Port))
	if changed, err := b.Bind(ctx, h, []string{h.Host, extra}); err != nil || !changed {
		t.Fatalf("Bind: %v %v", changed, err)
	}
	if changed, err := b.Bind(ctx, h, []string{h.Host, extra}); err != nil || changed {
		t.Fatalf("Bind again: %v %v (want no change)", changed, err)
	}
	via := redis.NewClient(&redis.Options{Addr: extraAddr, MaxRetries: -1})
	defer via.Close()
	own := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), MaxRetries: -1})
	defer own.Close()
	for _, c := range []*redis.Client{via, own} {
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("through %s: %v", c.Options().Addr, err)
		}
	}
	if changed, err := b.Bind(ctx, h, []string{h.Host}); err != nil || !changed {
		t.Fatalf("Bind back: %v %v", changed, err)
	}
	if err := b.DropClientsOn(ctx, h, extraAddr); err != nil {
		t.Fatal(err)
	}
	if err := via.Get(ctx, "k").Err(); err == nil {
		t.Fatal("the connection through the given-up address still works")
	}
	if conn, err := net.DialTimeout("tcp", extraAddr, time.Second); err == nil {
		conn.Close()
		t.Fatal("the node still listens on the given-up address")
	}
	if v, err := own.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("through its own address: %q %v", v, err)
	}
	if err := b.DropClientsOn(ctx, h, extraAddr); err != nil {
		t.Fatalf("dropping when none is left: %v", err)
	}
}
