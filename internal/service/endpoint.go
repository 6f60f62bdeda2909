package service

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// A moving PrimaryEndpoint. When hoard advertises a loopback address (as it
// does by default), a new replication group with cluster mode disabled gets an
// address of its own for its PrimaryEndpoint, 127.100.x.y, and each member
// node another; all of them listen on one port. The current primary listens on
// the endpoint's address too (CONFIG SET bind), and a failover moves it: the
// old primary stops listening there and drops the clients that came that way,
// which reconnect — to the new primary. Clients thus reach the primary
// directly, with no proxy and its cost, and the endpoint keeps working while
// hoard itself is down. ReaderEndpoint stays a front (internal/front), since
// several replicas cannot share one address and port. Groups that predate
// this, adopt a cluster as primary, or run under a non-loopback
// --advertise-host use the front for PrimaryEndpoint too.

// endpointPool is where moving endpoints and their members' addresses come from.
var endpointPool = net.IPv4(127, 100, 0, 0)

// movingEndpoints reports whether new groups get a moving PrimaryEndpoint:
// only on a loopback host, where every 127/8 address can be bound.
func (s *Service) movingEndpoints() bool {
	ip := net.ParseIP(s.cfg.AdvertiseHost)
	return ip != nil && ip.To4() != nil && ip.IsLoopback()
}

// allocateHosts takes n loopback addresses of the pool that no node, no
// endpoint and none of taken uses (a group being created is not stored yet).
func allocateHosts(tx *store.Tx, n int, taken ...string) ([]string, error) {
	used := map[string]bool{}
	for _, h := range taken {
		used[h] = true
	}
	all, err := allClusters(tx)
	if err != nil {
		return nil, err
	}
	for _, cl := range all {
		for _, nd := range cl.Nodes {
			used[nd.Host] = true
		}
	}
	groups, err := store.ScanAs[replicationGroup](tx, tableGroups, "")
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		used[g.EndpointHost] = true
	}
	var out []string
	base := endpointPool.To4()
	for k := 0; k < 256*254 && len(out) < n; k++ {
		host := net.IPv4(base[0], base[1], byte(k/254), byte(k%254+1)).String()
		if !used[host] {
			out = append(out, host)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("no loopback address left in %s/16", endpointPool)
	}
	return out, nil
}

// placeMovingEndpoint gives a new group its endpoint address and the port its
// members share (from the node range, so that nothing else of hoard's uses it).
func (s *Service) placeMovingEndpoint(tx *store.Tx, g *replicationGroup) error {
	hosts, err := allocateHosts(tx, 1)
	if err != nil {
		return err
	}
	port, err := s.allocatePort(tx)
	if err != nil {
		return err
	}
	g.EndpointHost, g.PrimaryPort = hosts[0], port
	return nil
}

// addMemberNode gives a member of a group with a moving endpoint its node: an
// address of its own, on the group's port.
func (s *Service) addMemberNode(tx *store.Tx, g *replicationGroup, cl *cluster) error {
	hosts, err := allocateHosts(tx, 1, g.EndpointHost)
	if err != nil {
		return err
	}
	cl.NextNodeNumber++
	cl.Nodes = append(cl.Nodes, &node{ID: fmt.Sprintf("%04d", cl.NextNodeNumber), Status: statusCreating,
		Host: hosts[0], Port: g.PrimaryPort, CreatedAt: s.now()})
	return nil
}

// placeEndpoint makes the primary, and only it, listen on the group's
// endpoint address; a member that gives it up drops the clients that came
// that way.
func (s *Service) placeEndpoint(ctx context.Context, g *replicationGroup, members []cluster) {
	binder, ok := s.cfg.Drivers[g.Engine].(engine.Binder)
	if !ok || g.EndpointHost == "" {
		return
	}
	endpoint := net.JoinHostPort(g.EndpointHost, strconv.Itoa(g.PrimaryPort))
	// Replicas first: the address must be free before the primary can take it.
	ordered := append(append([]cluster{}, members[min(1, len(members)):]...), members[:min(1, len(members))]...)
	for _, m := range ordered {
		if m.Status == statusDeleting || len(m.Nodes) == 0 || m.Nodes[0].Handle == nil {
			continue
		}
		h := *m.Nodes[0].Handle
		addrs := []string{s.nodeHost(m.Nodes[0])}
		if m.Role == rolePrimary {
			addrs = append(addrs, g.EndpointHost)
		}
		changed, err := binder.Bind(ctx, h, addrs)
		if err != nil {
			s.log.Debug("moving the primary endpoint", "group", g.key(), "member", m.ID, "error", err)
			continue
		}
		if changed && m.Role != rolePrimary {
			if err := binder.DropClientsOn(ctx, h, endpoint); err != nil {
				s.log.Warn("dropping clients of the primary endpoint", "group", g.key(), "member", m.ID, "error", err)
			}
		}
		if changed {
			s.log.Info("primary endpoint placed", "group", g.key(), "member", m.ID, "listens", addrs)
		}
	}
}

// releaseEndpoint makes a primary that leaves its group (RetainPrimaryCluster)
// give the group's endpoint address up, so that it can go to another group.
func (s *Service) releaseEndpoint(ctx context.Context, g *replicationGroup, cl *cluster) {
	binder, ok := s.cfg.Drivers[g.Engine].(engine.Binder)
	if !ok || g.EndpointHost == "" || len(cl.Nodes) == 0 || cl.Nodes[0].Handle == nil {
		return
	}
	h := *cl.Nodes[0].Handle
	if _, err := binder.Bind(ctx, h, []string{s.nodeHost(cl.Nodes[0])}); err != nil {
		s.log.Warn("releasing the primary endpoint", "group", g.key(), "cluster", cl.ID, "error", err)
		return
	}
	_ = binder.DropClientsOn(ctx, h, net.JoinHostPort(g.EndpointHost, strconv.Itoa(g.PrimaryPort)))
}
