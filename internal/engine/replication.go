package engine

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
)

var _ Replicator = (*redisDriver)(nil)

// Follow sends REPLICAOF (under its renamed name, if the node renames it).
func (d *redisDriver) Follow(ctx context.Context, h Handle, primary string) error {
	target := []any{"NO", "ONE"}
	if primary != "" {
		host, port, err := net.SplitHostPort(primary)
		if err != nil {
			return fmt.Errorf("primary %q: %w", primary, err)
		}
		target = []any{host, port}
	}
	c, st, err := openNode(h)
	if err != nil {
		return err
	}
	defer c.Close()
	args := append([]any{renamedCommand(st.Params["rename-commands"], "REPLICAOF")}, target...)
	if err := c.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("REPLICAOF on %s: %w", hostPort(h.Host, h.Port), err)
	}
	return nil
}

// Replication reads INFO replication.
func (d *redisDriver) Replication(ctx context.Context, h Handle) (ReplicationState, error) {
	c, st, err := openNode(h)
	if err != nil {
		return ReplicationState{}, err
	}
	defer c.Close()
	info, err := c.Do(ctx, renamedCommand(st.Params["rename-commands"], "INFO"), "replication").Text()
	if err != nil {
		return ReplicationState{}, fmt.Errorf("INFO replication on %s: %w", hostPort(h.Host, h.Port), err)
	}
	return parseReplicationInfo(info), nil
}

// parseReplicationInfo reads the fields of INFO replication hoard uses.
func parseReplicationInfo(info string) ReplicationState {
	var rs ReplicationState
	var host, port string
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "role":
			rs.Role = v
		case "master_host":
			host = v
		case "master_port":
			port = v
		case "master_link_status":
			rs.LinkUp = v == "up"
		case "connected_slaves":
			rs.Replicas, _ = strconv.Atoi(v)
		case "master_repl_offset":
			if rs.Role == "master" {
				rs.Offset, _ = strconv.ParseInt(v, 10, 64)
			}
		case "slave_repl_offset":
			rs.Offset, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if host != "" {
		rs.Primary = net.JoinHostPort(host, port)
	}
	return rs
}
