package engine

// Moving hash slots between primaries (resharding), and the two commands hoard
// needs to replace a primary it has found dead: CLUSTER FAILOVER TAKEOVER on
// its replica and CLUSTER FORGET on the nodes that remain.
//
// A slot moves as redis-cli --cluster reshard moves it: the destination
// imports it, the source migrates it, the source's keys of the slot go over
// with MIGRATE until it holds none, then every primary learns the new owner.
// While the source migrates a slot it answers a command on a key it holds and
// redirects one on a key it lacks (ASK) to the destination, which accepts it
// since it imports the slot: no client write is lost, and the source never
// gains a key of the slot, so once it has none it stays empty.
//
// hoard may die at any point of a move and calls ClusterMigrateSlots again
// with the same slots when it restarts; the redis nodes keep their migration
// state meanwhile. Each call therefore starts from what the source and the
// destination say of themselves (CLUSTER NODES) rather than from what it would
// have done, and every step is one redis accepts again.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// MigrateBatchKeys is the number of keys one CLUSTER GETKEYSINSLOT lists
	// and one MIGRATE moves (redis-cli: 10 by default): fewer round trips,
	// between hoard and the source and between the source and the
	// destination, for the same keys.
	MigrateBatchKeys = 1000
	// migrateSlotChunk is the number of slots whose SETSLOT and GETKEYSINSLOT
	// commands go to a node in one pipeline. Larger chunks save round trips
	// (an empty slot costs no more than its SETSLOTs) but keep more slots
	// migrating at once, where clients pay an ASK redirect for new keys.
	migrateSlotChunk = 512
	// migrateIOTimeout is MIGRATE's timeout: how long the source waits for the
	// destination on each read or write (redis-cli's default too).
	migrateIOTimeout = 60 * time.Second
	// migrateReadTimeout bounds the wait for the answers of one pipeline of
	// MIGRATE commands (MigrateBatchKeys keys in all), which for large values
	// takes far longer than the usual 5 s of a command.
	migrateReadTimeout = 2 * time.Minute
)

// ClusterTakeover runs CLUSTER FAILOVER TAKEOVER on a replica.
func (d *redisDriver) ClusterTakeover(ctx context.Context, h Handle) error {
	_, err := clusterDo(ctx, h, "FAILOVER", "TAKEOVER")
	return err
}

// ClusterForget runs CLUSTER FORGET nodeID; a node the node does not know
// counts as forgotten.
func (d *redisDriver) ClusterForget(ctx context.Context, h Handle, nodeID string) error {
	_, err := clusterDo(ctx, h, "FORGET", nodeID)
	// "ERR Unknown node <id>": the only answer of redis 7.0 for a node it does
	// not know (its own ID and its primary's have answers of their own).
	if err != nil && strings.Contains(err.Error(), "Unknown node") {
		return nil
	}
	return err
}

// ClusterOpenSlots reads the node's own line of CLUSTER NODES.
func (d *redisDriver) ClusterOpenSlots(ctx context.Context, h Handle) (migrating, importing map[int]string, err error) {
	n, err := openSlotNode(h)
	if err != nil {
		return nil, nil, err
	}
	defer n.close()
	self, err := n.self(ctx)
	if err != nil {
		return nil, nil, err
	}
	return self.migrating, self.importing, nil
}

// ClusterMigrateSlots moves slots from src to dst. The steps of each slot, and
// what a call finds when an earlier one was interrupted between them:
//
//  1. dst: SETSLOT IMPORTING src. Again on an importing node: accepted.
//  2. src: SETSLOT MIGRATING dst. Again: accepted.
//  3. src: GETKEYSINSLOT and MIGRATE ... REPLACE until the slot is empty.
//     Keys moved earlier are gone from src. A MIGRATE that failed after dst
//     restored some keys (a timeout) leaves them on both, and src's copy is
//     the newer (writes to a key src holds go to src), hence REPLACE.
//  4. dst: SETSLOT NODE dst, which ends its import and bumps its config
//     epoch above src's, so that its claim beats src's in gossip — once dst
//     knows src's current epoch (see outrank). See claim for the slots it
//     first drops the import of (SETSLOT STABLE): one left there is neither
//     imported nor owned by dst, still src's.
//  5. src: SETSLOT NODE dst, which ends its migration. Gossip from dst may
//     already have taken the slot from src, but not its MIGRATING state.
//  6. the others: SETSLOT NODE dst, best effort: gossip also tells them.
//
// A slot dst owns (in its own view) is past step 4: the call only repeats
// steps 5 and 6 for it and moves no key. Any other slot must be src's (in
// src's view) and goes through every step. Keys that expire during their
// MIGRATE may be counted as moved.
func (d *redisDriver) ClusterMigrateSlots(ctx context.Context, src, dst Handle, slots []int, others []Handle) (keysMoved int64, err error) {
	slots, err = sortedSlots(slots)
	if err != nil || len(slots) == 0 {
		return 0, err
	}
	m, err := openMigration(ctx, src, dst, others)
	if err != nil {
		return 0, err
	}
	defer m.close()

	var moving, finished []int
	for _, s := range slots {
		if m.dstSelf.owns[s] {
			finished = append(finished, s)
			continue
		}
		if !m.srcSelf.primary || !m.srcSelf.owns[s] {
			return 0, fmt.Errorf("slot %d: owned neither by %s nor by %s", s, m.src.addr(), m.dst.addr())
		}
		// A migration to or from another node may have moved some keys
		// there: taking the slot over would strand them.
		// Unless that node is no longer a live primary: a failover replaced
		// it mid-migration, and its replica — now src or dst — has its data.
		if to, ok := m.srcSelf.migrating[s]; ok && to != m.dst.id && m.srcSelf.livePrimary[to] {
			return 0, fmt.Errorf("slot %d: %s is migrating it to node %s", s, m.src.addr(), to)
		}
		if from, ok := m.dstSelf.importing[s]; ok && from != m.src.id && m.dstSelf.livePrimary[from] {
			return 0, fmt.Errorf("slot %d: %s is importing it from node %s", s, m.dst.addr(), from)
		}
		moving = append(moving, s)
	}

	if len(finished) > 0 {
		// dst claimed them in an earlier call; its claim must win before src
		// and the others are told.
		if err := m.outrank(ctx); err != nil {
			return 0, err
		}
	}
	// src needs step 5 for a finished slot only while it still is a primary
	// that owns or migrates it.
	var unclosed []int
	for _, s := range finished {
		_, migrating := m.srcSelf.migrating[s]
		if m.srcSelf.primary && (m.srcSelf.owns[s] || migrating) {
			unclosed = append(unclosed, s)
		}
	}
	for len(unclosed) > 0 {
		chunk := unclosed[:min(len(unclosed), migrateSlotChunk)]
		unclosed = unclosed[len(chunk):]
		if err := m.closeOnSource(ctx, chunk); err != nil {
			return 0, err
		}
	}
	for len(finished) > 0 {
		chunk := finished[:min(len(finished), migrateSlotChunk)]
		finished = finished[len(chunk):]
		m.announce(ctx, chunk)
	}

	for len(moving) > 0 {
		chunk := moving[:min(len(moving), migrateSlotChunk)]
		moving = moving[len(chunk):]
		n, err := m.moveSlots(ctx, chunk)
		keysMoved += n
		if err != nil {
			return keysMoved, err
		}
	}
	return keysMoved, nil
}

// sortedSlots checks every slot is within 0..16383 and returns them sorted,
// without duplicates.
func sortedSlots(slots []int) ([]int, error) {
	out := make([]int, 0, len(slots))
	for _, s := range slots {
		if s < 0 || s >= ClusterSlots {
			return nil, fmt.Errorf("slot %d is out of range 0-%d", s, ClusterSlots-1)
		}
		out = append(out, s)
	}
	sort.Ints(out)
	k := 0
	for i, s := range out {
		if i == 0 || s != out[k-1] {
			out[k] = s
			k++
		}
	}
	return out[:k], nil
}

// slotNode is a connection to a node for a migration: one connection for the
// whole call, whatever the number of slots.
type slotNode struct {
	h        Handle
	c        *redis.Client
	slow     *redis.Client // c with migrateReadTimeout, for MIGRATE
	cluster  string        // the node's name for CLUSTER
	migrate  string        // the node's name for MIGRATE
	password string        // what MIGRATE must give this node as its target
	id       string
}

func openSlotNode(h Handle) (*slotNode, error) {
	c, cluster, st, err := clusterConn(h)
	if err != nil {
		return nil, err
	}
	return &slotNode{h: h, c: c, slow: c.WithTimeout(migrateReadTimeout), cluster: cluster,
		migrate: renamedCommand(st.Params["rename-commands"], "MIGRATE"), password: st.Params["requirepass"]}, nil
}

func (n *slotNode) close() { n.c.Close() }

func (n *slotNode) addr() string { return hostPort(n.h.Host, n.h.Port) }

// nodeSelf is what a node says of itself in its line of CLUSTER NODES.
type nodeSelf struct {
	id        string
	primary   bool
	master    string         // the node ID of the primary it replicates, when a replica
	owns      []bool         // by slot
	migrating map[int]string // slot: the node ID it is migrating to
	importing map[int]string // slot: the node ID it is importing from
	// livePrimary: the nodes it knows as primaries not failing, by node ID.
	livePrimary map[string]bool
	epoch       uint64            // its config epoch (a replica shows its primary's)
	epochs      map[string]uint64 // the config epoch it knows of each node, by node ID
}

func (n *slotNode) self(ctx context.Context) (nodeSelf, error) {
	text, err := n.c.Do(ctx, n.cluster, "NODES").Text()
	if err != nil {
		return nodeSelf{}, clusterErr(n.h, "NODES", err)
	}
	s, err := parseNodeSelf(text)
	if err != nil {
		return nodeSelf{}, clusterErr(n.h, "NODES", err)
	}
	return s, nil
}

// parseNodeSelf reads the "myself" line of CLUSTER NODES: "id addr flags
// master-id ping pong epoch link slot...", where a slot entry is a slot, a
// range "a-b", "[s->-id]" (migrating s to id) or "[s-<-id]" (importing s from
// id).
func parseNodeSelf(text string) (nodeSelf, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(","+f[2]+",", ",myself,") {
			continue
		}
		s := nodeSelf{id: f[0], primary: strings.Contains(","+f[2]+",", ",master,"), master: strings.Trim(f[3], "-"),
			owns: make([]bool, ClusterSlots), migrating: map[int]string{}, importing: map[int]string{}}
		for _, e := range f[8:] {
			if body, ok := strings.CutPrefix(e, "["); ok {
				body = strings.TrimSuffix(body, "]")
				open := s.migrating
				slot, id, ok := strings.Cut(body, "->-")
				if !ok {
					open = s.importing
					slot, id, ok = strings.Cut(body, "-<-")
				}
				n, err := parseSlot(slot)
				if !ok || err != nil || id == "" {
					return nodeSelf{}, fmt.Errorf("line %q: bad open slot %q", line, e)
				}
				open[n] = id
				continue
			}
			ranges, err := ParseSlotRanges(e)
			if err != nil {
				return nodeSelf{}, fmt.Errorf("line %q: %w", line, err)
			}
			for _, r := range ranges {
				for k := r.Start; k <= r.End; k++ {
					s.owns[k] = true
				}
			}
		}
		s.livePrimary = livePrimaries(text)
		s.epochs = configEpochs(text)
		s.epoch = s.epochs[s.id]
		return s, nil
	}
	return nodeSelf{}, errors.New("no line for the node itself")
}

// migration is one ClusterMigrateSlots call: connections to its nodes and
// what src and dst said of themselves at its start.
type migration struct {
	src, dst         *slotNode
	others           []*slotNode
	srcSelf, dstSelf nodeSelf
}

func openMigration(ctx context.Context, src, dst Handle, others []Handle) (*migration, error) {
	m := &migration{}
	var err error
	if m.src, err = openSlotNode(src); err != nil {
		return nil, err
	}
	if m.dst, err = openSlotNode(dst); err != nil {
		m.close()
		return nil, err
	}
	if m.srcSelf, err = m.src.self(ctx); err == nil {
		m.dstSelf, err = m.dst.self(ctx)
	}
	switch {
	case err != nil:
	case m.srcSelf.id == m.dstSelf.id:
		err = fmt.Errorf("%s and %s are the same node", m.src.addr(), m.dst.addr())
	case !m.dstSelf.primary:
		err = fmt.Errorf("%s is not a primary", m.dst.addr())
	}
	if err != nil {
		m.close()
		return nil, err
	}
	m.src.id, m.dst.id = m.srcSelf.id, m.dstSelf.id
	for _, h := range others {
		n, err := openSlotNode(h)
		if err != nil { // a dead node: gossip will tell it if it comes back
			continue
		}
		if a := n.addr(); a == m.src.addr() || a == m.dst.addr() {
			n.close()
			continue
		}
		m.others = append(m.others, n)
	}
	return m, nil
}

func (m *migration) close() {
	for _, n := range append([]*slotNode{m.src, m.dst}, m.others...) {
		if n != nil {
			n.close()
		}
	}
}

// moveSlots takes slots, all src's, through every step.
func (m *migration) moveSlots(ctx context.Context, slots []int) (int64, error) {
	// dst must accept the slot's ASKING commands before src sends clients
	// there.
	if _, err := m.setSlots(ctx, m.dst, slots, "IMPORTING", m.src.id); err != nil {
		return 0, err
	}
	if _, err := m.setSlots(ctx, m.src, slots, "MIGRATING", m.dst.id); err != nil {
		return 0, err
	}
	moved, err := m.moveKeys(ctx, slots)
	if err != nil {
		return moved, err
	}
	if err := m.outrank(ctx); err != nil {
		return moved, err
	}
	// dst first: were src told first, it would send clients to dst with
	// MOVED, and dst, not yet the owner, would send them back.
	if err := m.claim(ctx, slots); err != nil {
		return moved, err
	}
	if err := m.closeOnSource(ctx, slots); err != nil {
		return moved, err
	}
	m.announce(ctx, slots)
	return moved, nil
}

// setSlots runs CLUSTER SETSLOT s <how> <id> on n for every slot in one
// pipeline and returns the commands, with the first error.
func (m *migration) setSlots(ctx context.Context, n *slotNode, slots []int, how, id string) ([]*redis.Cmd, error) {
	pipe := n.c.Pipeline()
	cmds := make([]*redis.Cmd, len(slots))
	for i, s := range slots {
		cmds[i] = pipe.Do(ctx, n.cluster, "SETSLOT", s, how, id)
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			return cmds, clusterErr(n.h, fmt.Sprintf("SETSLOT %d %s %s", slots[i], how, id), err)
		}
	}
	return cmds, nil
}

// claim makes dst the owner of slots, all of which it imports (step 4).
//
// SETSLOT NODE on a node that imports the slot bumps its config epoch, so
// that its claim beats src's, and also sends every other node a PONG with
// its slots, on which each goes over its 16384 slots and saves nodes.conf.
// Per slot, those PONGs made up three quarters of the time a move of empty
// slots took (8192 slots: 1.7 s, 0.4 s without). So only the first slot is
// claimed that way, for the bump to precede every claim, and the last, for
// one PONG to announce the whole chunk; each slot between drops its import
// (SETSLOT STABLE) just before its SETSLOT NODE. Between those two commands
// dst neither imports nor owns the slot, and a client sent there by ASK is
// sent back to src with MOVED (then to dst again with ASK): no write lands
// where it does not belong.
func (m *migration) claim(ctx context.Context, slots []int) error {
	pipe := m.dst.c.Pipeline()
	type step struct {
		cmd  *redis.Cmd
		what string
	}
	var steps []step
	for i, s := range slots {
		if i > 0 && i < len(slots)-1 {
			steps = append(steps, step{pipe.Do(ctx, m.dst.cluster, "SETSLOT", s, "STABLE"), fmt.Sprintf("SETSLOT %d STABLE", s)})
		}
		steps = append(steps, step{pipe.Do(ctx, m.dst.cluster, "SETSLOT", s, "NODE", m.dst.id), fmt.Sprintf("SETSLOT %d NODE %s", s, m.dst.id)})
	}
	_, _ = pipe.Exec(ctx)
	for _, st := range steps {
		if err := st.cmd.Err(); err != nil {
			return clusterErr(m.dst.h, st.what, err)
		}
	}
	return nil
}

// closeOnSource tells src the slots are dst's. redis turns a primary that
// gives away its last slot into a replica of the node that took it
// (cluster-allow-replica-migration), and a replica refuses SETSLOT: a slot
// src refused is fine if src, read again, no longer owns nor migrates it.
func (m *migration) closeOnSource(ctx context.Context, slots []int) error {
	cmds, err := m.setSlots(ctx, m.src, slots, "NODE", m.dst.id)
	if err == nil {
		return nil
	}
	self, rerr := m.src.self(ctx)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	for i, c := range cmds {
		if c.Err() == nil {
			continue
		}
		s := slots[i]
		if _, migrating := self.migrating[s]; self.primary && (self.owns[s] || migrating) {
			return clusterErr(m.src.h, fmt.Sprintf("SETSLOT %d NODE %s", s, m.dst.id), c.Err())
		}
	}
	return nil
}

// announce tells the other primaries the slots are dst's, ignoring their
// errors: gossip from dst, whose config epoch is now the highest, tells them
// too; this only saves them a redirect through src meanwhile.
func (m *migration) announce(ctx context.Context, slots []int) {
	for _, n := range m.others {
		_, _ = m.setSlots(ctx, n, slots, "NODE", m.dst.id)
	}
}

// keyBatch is keys of one slot to MIGRATE together (MIGRATE refuses keys of
// different slots).
type keyBatch struct {
	slot int
	keys []string
}

// moveKeys moves the keys of slots, all migrating, from src to dst. It lists
// the keys of every slot still pending in one pipeline, moves them, and lists
// again until no slot has any: the last, empty, listing is the proof each
// slot is empty that SETSLOT NODE on dst needs (dst would take the slot from
// src by gossip, and src then deletes the keys it still held in it).
func (m *migration) moveKeys(ctx context.Context, slots []int) (int64, error) {
	var moved int64
	pending := slots
	for len(pending) > 0 {
		pipe := m.src.c.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for i, s := range pending {
			cmds[i] = pipe.Do(ctx, m.src.cluster, "GETKEYSINSLOT", s, MigrateBatchKeys)
		}
		_, _ = pipe.Exec(ctx)
		var batches []keyBatch
		var next []int
		for i, c := range cmds {
			keys, err := c.StringSlice()
			if err != nil {
				return moved, clusterErr(m.src.h, fmt.Sprintf("GETKEYSINSLOT %d", pending[i]), err)
			}
			if len(keys) > 0 {
				batches = append(batches, keyBatch{slot: pending[i], keys: keys})
				next = append(next, pending[i])
			}
		}
		n, err := m.migrateBatches(ctx, batches)
		moved += n
		if err != nil {
			return moved, err
		}
		pending = next
	}
	return moved, nil
}

// migrateBatches runs one MIGRATE per batch, pipelined MigrateBatchKeys keys
// at a time, and returns the number of keys moved.
func (m *migration) migrateBatches(ctx context.Context, batches []keyBatch) (int64, error) {
	host, port := m.dst.h.Host, strconv.Itoa(m.dst.h.Port)
	timeout := migrateIOTimeout.Milliseconds()
	var moved int64
	for len(batches) > 0 {
		end, keys := 1, len(batches[0].keys)
		for end < len(batches) && keys+len(batches[end].keys) <= MigrateBatchKeys {
			keys += len(batches[end].keys)
			end++
		}
		pipe := m.src.slow.Pipeline()
		cmds := make([]*redis.Cmd, end)
		for i, b := range batches[:end] {
			args := []any{m.src.migrate, host, port, "", 0, timeout, "REPLACE"}
			if m.dst.password != "" {
				args = append(args, "AUTH", m.dst.password)
			}
			args = append(args, "KEYS")
			for _, k := range b.keys {
				args = append(args, k)
			}
			cmds[i] = pipe.Do(ctx, args...)
		}
		_, _ = pipe.Exec(ctx)
		for i, c := range cmds {
			reply, err := c.Text()
			if err != nil {
				return moved, fmt.Errorf("MIGRATE of %d keys of slot %d from %s to %s: %w",
					len(batches[i].keys), batches[i].slot, m.src.addr(), m.dst.addr(), err)
			}
			if reply == "OK" { // "NOKEY": every key had expired meanwhile
				moved += int64(len(batches[i].keys))
			}
		}
		batches = batches[end:]
	}
	return moved, nil
}

// livePrimaries lists the node IDs CLUSTER NODES shows as primaries that are
// not failing (flags master, without fail, fail? or noaddr: a node whose
// address another node took, as a primary restarted as a new node does, is
// never marked failing).
func livePrimaries(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		flags := "," + f[2] + ","
		if strings.Contains(flags, ",master,") && !strings.Contains(flags, ",fail,") &&
			!strings.Contains(flags, ",fail?,") && !strings.Contains(flags, ",noaddr,") {
			out[f[0]] = true
		}
	}
	return out
}

// configEpochs reads the config epoch of every node of CLUSTER NODES (its
// seventh field), by node ID.
func configEpochs(text string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		if e, err := strconv.ParseUint(f[6], 10, 64); err == nil {
			out[f[0]] = e
		}
	}
	return out
}

// outrankTimeout bounds outrank's wait for gossip.
const outrankTimeout = 10 * time.Second

// outrank returns once dst's config epoch is above src's, as both say of
// themselves and dst knows src's: a claim of dst on src's slots then beats
// src's claim on every node. Without it a claim can lose: a replica that took
// over src (a new epoch) shortly before, its epoch not yet heard of by dst —
// dst's claim would not bump above it, every node that knows it would keep
// the slots src's, dst would give them back at the next message and delete
// their keys, and src, then told they are dst's, would claim them no more.
// A dst below src is bumped (CLUSTER BUMPEPOCH); equal epochs are a collision
// redis resolves itself within a message or two.
func (m *migration) outrank(ctx context.Context) error {
	deadline := time.Now().Add(outrankTimeout)
	for {
		src, err := m.src.self(ctx)
		if err != nil {
			return err
		}
		dst, err := m.dst.self(ctx)
		if err != nil {
			return err
		}
		// The rival claim is src's, or if src is a replica now (failed over,
		// or drained into dst), its primary's, whose epoch src shows.
		rival := src.id
		if !src.primary {
			if src.master == dst.id {
				return nil
			}
			rival = src.master
		}
		known := dst.epochs[rival]
		switch {
		case known == src.epoch && dst.epoch > src.epoch:
			return nil
		case known == src.epoch && dst.epoch < src.epoch:
			if err := m.dst.c.Do(ctx, m.dst.cluster, "BUMPEPOCH").Err(); err != nil {
				return clusterErr(m.dst.h, "BUMPEPOCH", err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (config epoch %d) does not outrank %s (config epoch %d, known to it as %d) after %s",
				m.dst.addr(), dst.epoch, m.src.addr(), src.epoch, known, outrankTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ClusterStableSlots runs CLUSTER SETSLOT s STABLE for each slot, pipelined.
func (d *redisDriver) ClusterStableSlots(ctx context.Context, h Handle, slots []int) error {
	if len(slots) == 0 {
		return nil
	}
	c, cluster, _, err := clusterConn(h)
	if err != nil {
		return err
	}
	defer c.Close()
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range slots {
			p.Do(ctx, cluster, "SETSLOT", s, "STABLE")
		}
		return nil
	})
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			return clusterErr(h, "SETSLOT STABLE", cmd.Err())
		}
	}
	return err
}
