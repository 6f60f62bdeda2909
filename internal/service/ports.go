package service

import (
	"fmt"
	"net"
	"strconv"
)

// PortRange is an inclusive range of TCP ports for engine nodes.
type PortRange struct{ First, Last int }

// DefaultNodePorts is where node ports come from unless configured.
var DefaultNodePorts = PortRange{First: 21000, Last: 21999}

// ParsePortRange reads "first-last".
func ParsePortRange(s string) (PortRange, error) {
	var r PortRange
	if _, err := fmt.Sscanf(s, "%d-%d", &r.First, &r.Last); err != nil || r.First < 1 || r.Last > 65535 || r.First > r.Last {
		return PortRange{}, fmt.Errorf("invalid port range %q: want first-last, within 1-65535", s)
	}
	return r, nil
}

// clusterBusOffset is how far above its client port a Redis Cluster node
// listens for the cluster bus (redis's default, which hoard keeps).
const clusterBusOffset = 10000

// allocate returns the first port of the range that no node holds and that is free
// to bind right now (another program may hold it).
func (r PortRange) allocate(host string, used map[int]bool) (int, error) {
	return r.allocateFor(host, used, false)
}

// allocateFor is allocate; with bus, the port's cluster bus port (port + 10000)
// must be free as well.
func (r PortRange) allocateFor(host string, used map[int]bool, bus bool) (int, error) {
	for p := r.First; p <= r.Last; p++ {
		if used[p] || !canBind(host, p) {
			continue
		}
		if bus && (p+clusterBusOffset > 65535 || used[p+clusterBusOffset] || !canBind(host, p+clusterBusOffset)) {
			continue
		}
		return p, nil
	}
	return 0, fmt.Errorf("all ports %d-%d are in use", r.First, r.Last)
}

func canBind(host string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
