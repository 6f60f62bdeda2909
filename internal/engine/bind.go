package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Binder is implemented by drivers whose nodes can listen on more addresses
// than their own at runtime, on their port. hoard uses it for a replication
// group's PrimaryEndpoint on a loopback host: a spare address that the current
// primary listens on, moved to another node by a failover, so that clients
// reach the primary with no proxy in between.
type Binder interface {
	// Bind makes the node listen on exactly addrs (hosts; its own first)
	// and reports whether that changed anything (CONFIG SET bind).
	Bind(ctx context.Context, h Handle, addrs []string) (bool, error)
	// DropClientsOn closes the client connections that came in on local
	// address addr (host:port), so that their clients reconnect to whichever
	// node listens there now (CLIENT KILL LADDR).
	DropClientsOn(ctx context.Context, h Handle, addr string) error
}

var _ Binder = (*redisDriver)(nil)

// Bind runs CONFIG SET bind when the node's bind list differs from addrs.
func (d *redisDriver) Bind(ctx context.Context, h Handle, addrs []string) (bool, error) {
	c, st, err := openNode(h)
	if err != nil {
		return false, err
	}
	defer c.Close()
	config := renamedCommand(st.Params["rename-commands"], "CONFIG")
	got, err := c.Do(ctx, config, "GET", "bind").StringSlice()
	if err != nil {
		return false, fmt.Errorf("CONFIG GET bind on %s: %w", hostPort(h.Host, h.Port), err)
	}
	var have []string
	if len(got) == 2 {
		have = strings.Fields(got[1])
	}
	if slices.Equal(have, addrs) {
		return false, nil
	}
	if err := c.Do(ctx, config, "SET", "bind", strings.Join(addrs, " ")).Err(); err != nil {
		return false, fmt.Errorf("CONFIG SET bind %q on %s: %w", strings.Join(addrs, " "), hostPort(h.Host, h.Port), err)
	}
	return true, nil
}

// DropClientsOn runs CLIENT KILL LADDR addr; no such client is no error.
func (d *redisDriver) DropClientsOn(ctx context.Context, h Handle, addr string) error {
	c, st, err := openNode(h)
	if err != nil {
		return err
	}
	defer c.Close()
	err = c.Do(ctx, renamedCommand(st.Params["rename-commands"], "CLIENT"), "KILL", "LADDR", addr, "SKIPME", "yes").Err()
	if err != nil && !strings.Contains(err.Error(), "No such client") {
		return fmt.Errorf("CLIENT KILL LADDR %s on %s: %w", addr, hostPort(h.Host, h.Port), err)
	}
	return nil
}
