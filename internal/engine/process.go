package engine

// The process supervisor shared by the drivers: start a node in its own session,
// name it by (pid, start time), check it is alive, wait for it to be ready, and
// stop it with SIGTERM, a grace period and SIGKILL. Everything here works both for
// processes this hoard started (its children) and for processes a previous hoard
// started (re-adopted, reparented to init), because nothing relies on being the
// parent: liveness and exit are read from /proc.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supervisor timings. They are variables so that tests and the service's
// configuration can tune them.
var (
	// StopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
	StopGrace = 5 * time.Second
	// ReadyTimeout bounds how long Start waits for a new node to answer.
	ReadyTimeout = 10 * time.Second
	// AliveTimeout bounds the port check Alive makes.
	AliveTimeout = time.Second
	// LoadTimeout bounds how long Start waits for a node that answers but is
	// still loading its data (redis -LOADING: a restore from a large RDB, or a
	// node's own persistence files).
	LoadTimeout = 10 * time.Minute
	// readyPollInterval is the pause between two readiness probes.
	readyPollInterval = 2 * time.Millisecond
	// loadPollInterval is the pause between two probes of a node that is
	// loading its data.
	loadPollInterval = 20 * time.Millisecond
	// killWait bounds the wait for a SIGKILLed process to disappear.
	killWait = 10 * time.Second
)

// LogFile is the name of the file, in a node's Dir, that receives the node's
// stdout and stderr.
const LogFile = "node.log"

// logTailLines is how many lines of node.log a start error quotes.
const logTailLines = 20

// errNotReady is returned by a probe that reached the node while it is still
// starting up (for example redis answering -LOADING).
var errNotReady = errors.New("node is not ready yet")

// probeFunc checks the engine answers on addr. It returns nil when the node is
// ready, errNotReady when it answered but is not ready, and another error when it
// did not answer.
type probeFunc func(ctx context.Context, addr string) error

// started is a node process this hoard has just started.
type started struct {
	handle Handle
	exited chan struct{} // closed when the reaper's cmd.Wait returns
	mu     sync.Mutex
	err    error // cmd.Wait's result, valid once exited is closed
}

func (s *started) waitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// startProcess launches binary with args in dir, in a new session, with stdout
// and stderr appended to dir/node.log, and returns its handle. A reaper goroutine
// waits for the child so that it never lingers as a zombie while hoard runs.
func startProcess(binary string, args []string, dir, host string, port int) (*started, error) {
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("engine binary %q: %w", binary, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("node directory: %w", err)
	}
	logPath := filepath.Join(dir, LogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("node log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- hoard: %s starting %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), path, strings.Join(args, " "))

	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Setsid: the node gets its own session and process group, so neither a
	// signal to hoard's group nor the end of hoard's session reaches it.
	// No Pdeathsig: the node must outlive hoard.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	s := &started{exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.exited)
	}()
	pid := cmd.Process.Pid
	st, err := readProcStat(pid)
	if err != nil {
		// The process is already gone (and perhaps reaped): report how it ended.
		select {
		case <-s.exited:
		case <-time.After(time.Second):
		}
		return nil, fmt.Errorf("%s exited at once (%v)%s", path, s.waitErr(), logTailMessage(dir))
	}
	s.handle = Handle{PID: pid, StartTime: st.startTime, Host: host, Port: port, Dir: dir}
	return s, nil
}

// procStat is what hoard reads from /proc/<pid>/stat.
type procStat struct {
	state     byte
	startTime uint64 // field 22, in clock ticks since boot
}

// readProcStat reads the state and start time of pid.
func readProcStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, fmt.Errorf("invalid pid %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (field 2) is
// in parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat: too few fields")
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat start time: %w", err)
	}
	return procStat{state: f[0][0], startTime: st}, nil
}

// running reports whether pid is the process that started at startTime and has
// not exited (a zombie or dead process has exited).
//
// A thread-group leader that has exited shows as a zombie while its other
// threads are still being torn down, and those threads still hold the process's
// files (its listening socket): the process counts as running until every
// thread is gone.
func running(pid int, startTime uint64) bool {
	st, err := readProcStat(pid)
	if err != nil || st.startTime != startTime {
		return false
	}
	if !exitedState(st.state) {
		return true
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if t.Name() == strconv.Itoa(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/stat")
		if err != nil {
			continue
		}
		if ts, err := parseProcStat(b); err == nil && !exitedState(ts.state) {
			return true
		}
	}
	return false
}

func exitedState(s byte) bool { return s == 'Z' || s == 'X' || s == 'x' }

// signalProcess sends sig to pid only if pid is still the process that started
// at startTime. It reports false when that process is gone. Through a pidfd the
// check and the signal name the same process even if the pid is recycled in
// between; where pidfds are not available it falls back to kill(2) right after
// the check.
func signalProcess(pid int, startTime uint64, sig unix.Signal) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(fd)
		if !running(pid, startTime) {
			return false, nil
		}
		err := unix.PidfdSendSignal(fd, sig, nil, 0)
		if errors.Is(err, unix.ESRCH) {
			return false, nil
		}
		return err == nil, err
	}
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if !running(pid, startTime) {
		return false, nil
	}
	err = unix.Kill(pid, sig)
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	return err == nil, err
}

// waitGone polls /proc until the process is gone or d has passed or ctx ends.
func waitGone(ctx context.Context, pid int, startTime uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if !running(pid, startTime) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return !running(pid, startTime)
		case <-tick.C:
		}
	}
}

// stopProcess ends the process named by (pid, startTime): SIGTERM, up to
// StopGrace for it to exit, then SIGKILL, and returns once it is gone. A process
// that is already gone is not an error. If ctx ends during the grace period the
// process is killed at once.
func stopProcess(ctx context.Context, pid int, startTime uint64) error {
	ok, err := signalProcess(pid, startTime, unix.SIGTERM)
	if err != nil {
		return fmt.Errorf("SIGTERM %d: %w", pid, err)
	}
	if !ok {
		return nil
	}
	if waitGone(ctx, pid, startTime, StopGrace) {
		return nil
	}
	ok, err = signalProcess(pid, startTime, unix.SIGKILL)
	if err != nil {
		return fmt.Errorf("SIGKILL %d: %w", pid, err)
	}
	if !ok {
		return nil
	}
	// Wait for the kill regardless of ctx: returning while the node still holds
	// its port would let the caller reuse the port too early.
	if waitGone(context.Background(), pid, startTime, killWait) {
		return nil
	}
	return fmt.Errorf("process %d still running %s after SIGKILL", pid, killWait)
}

// alive is Driver.Alive for any engine: the process runs, is the one recorded,
// listens on the handle's port and answers the probe within AliveTimeout.
func alive(ctx context.Context, h Handle, probe probeFunc) bool {
	if !running(h.PID, h.StartTime) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, AliveTimeout)
	defer cancel()
	err := probe(ctx, hostPort(h.Host, h.Port))
	if err != nil && !errors.Is(err, errNotReady) {
		return false
	}
	return listensOn(h.PID, h.Port) && running(h.PID, h.StartTime)
}

// waitReady polls the node until the probe says it is ready and the port that
// answered is the node's own, the process exits, ReadyTimeout passes or ctx ends.
// A node that answers that it is still loading its data (errNotReady) is given
// up to LoadTimeout from the start instead of ReadyTimeout.
func waitReady(ctx context.Context, s *started, probe probeFunc) error {
	h := s.handle
	addr := hostPort(h.Host, h.Port)
	start := time.Now()
	deadline := start.Add(ReadyTimeout)
	limit := ReadyTimeout
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("node exited during start-up (%v)%s", s.waitErr(), logTailMessage(h.Dir))
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 250*time.Millisecond)
		err := probe(pctx, addr)
		pcancel()
		if err == nil {
			// Something answered: make sure it is our node and not another
			// process already holding the port.
			if listensOn(h.PID, h.Port) {
				return nil
			}
			err = fmt.Errorf("%s answers, but not from pid %d", addr, h.PID)
		}
		poll := readyPollInterval
		if errors.Is(err, errNotReady) && listensOn(h.PID, h.Port) {
			// Our node answers and is loading its data, which may take
			// longer than a start: wait up to LoadTimeout, polling less
			// often.
			if LoadTimeout > limit {
				limit = LoadTimeout
				deadline = start.Add(LoadTimeout)
			}
			poll = loadPollInterval
		}
		last = err
		wait := min(time.Until(deadline), poll)
		if wait <= 0 {
			return fmt.Errorf("node %s (pid %d) did not become ready within %s (last probe: %v)%s", addr, h.PID, limit, last, logTailMessage(h.Dir))
		}
		select {
		case <-s.exited:
			return fmt.Errorf("node exited during start-up (%v)%s", s.waitErr(), logTailMessage(h.Dir))
		case <-ctx.Done():
			why := "start cancelled"
			if ctx.Err() == context.DeadlineExceeded {
				why = "start timed out (" + ctx.Err().Error() + ")"
			}
			return fmt.Errorf("node %s (pid %d) %s (last probe: %v)%s", addr, h.PID, why, last, logTailMessage(h.Dir))
		case <-time.After(wait):
		}
	}
}

// launch starts a node and waits until it is ready. On any failure the process
// is stopped before the error is returned.
func launch(ctx context.Context, binary string, args []string, spec Spec, probe probeFunc) (Handle, error) {
	s, err := startProcess(binary, args, spec.Dir, spec.Host, spec.Port)
	if err != nil {
		return Handle{}, err
	}
	if err := waitReady(ctx, s, probe); err != nil {
		h := s.handle
		_ = stopProcess(context.Background(), h.PID, h.StartTime)
		return Handle{}, fmt.Errorf("%s: %w", filepath.Base(binary), err)
	}
	if err := recordHandle(s.handle); err != nil {
		h := s.handle
		_ = stopProcess(context.Background(), h.PID, h.StartTime)
		return Handle{}, fmt.Errorf("recording the node's handle: %w", err)
	}
	return s.handle, nil
}

// listensOn reports whether pid holds a listening TCP socket on port. It finds
// the inodes of the sockets listening on port (through sock_diag, or
// /proc/<pid>/net/tcp{,6} where that is unavailable), then looks for one of
// them among the process's open files, which are scanned in fd order (a
// listening socket is opened early, so the scan stops soon even on a node with
// many clients). When the process's files cannot be read (no permission) it
// answers true: the caller has already checked the process.
func listensOn(pid, port int) bool {
	inodes, err := listeningInodesDiag(port)
	if err != nil {
		inodes = map[string]bool{}
		for _, f := range []string{"tcp", "tcp6"} {
			listeningInodes(fmt.Sprintf("/proc/%d/net/%s", pid, f), port, inodes)
		}
	}
	if len(inodes) == 0 {
		return false
	}
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(fdDir)
	if err != nil {
		return errors.Is(err, os.ErrPermission)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, n := range names {
			l, err := os.Readlink(fdDir + "/" + n)
			if err == nil && strings.HasPrefix(l, "socket:[") &&
				inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}

// listeningInodesDiag asks the kernel (NETLINK_SOCK_DIAG) for the TCP sockets
// in LISTEN state and returns the inodes of those on port. Asking for listening
// sockets only keeps the dump small whatever the number of connections, where
// /proc/net/tcp lists every socket of the namespace.
func listeningInodesDiag(port int) (map[string]bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	const (
		sockDiagByFamily = 20
		tcpListen        = 10
		reqLen           = unix.NLMSG_HDRLEN + 56 // nlmsghdr + inet_diag_req_v2
	)
	inodes := map[string]bool{}
	buf := make([]byte, 64<<10)
	for i, family := range []byte{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, reqLen)
		ne := binary.NativeEndian
		ne.PutUint32(req[0:], reqLen)
		ne.PutUint16(req[4:], sockDiagByFamily)
		ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
		ne.PutUint32(req[8:], uint32(i+1)) // sequence
		req[16] = family
		req[17] = unix.IPPROTO_TCP
		ne.PutUint32(req[20:], 1<<tcpListen) // idiag_states
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, err
		}
	recv:
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return nil, err
			}
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				return nil, err
			}
			for _, m := range msgs {
				switch m.Header.Type {
				case unix.NLMSG_DONE:
					break recv
				case unix.NLMSG_ERROR:
					return nil, errors.New("sock_diag: netlink error")
				}
				// inet_diag_msg: family, state, timer, retrans (4 bytes), then
				// inet_diag_sockid (sport big-endian first; 48 bytes), expires,
				// rqueue, wqueue, uid, inode.
				if len(m.Data) < 72 {
					continue
				}
				if int(binary.BigEndian.Uint16(m.Data[4:])) == port {
					inodes[strconv.FormatUint(uint64(ne.Uint32(m.Data[68:])), 10)] = true
				}
			}
		}
	}
	return inodes, nil
}

// listeningInodes adds to inodes the inode of every socket in LISTEN state (0A)
// on port in a /proc/net/tcp{,6} table.
func listeningInodes(path string, port int, inodes map[string]bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
		if len(fs) < 10 || fs[3] != "0A" || !strings.HasSuffix(fs[1], want) {
			continue
		}
		inodes[fs[9]] = true
	}
}

// logTail returns the last n lines of the node's log.
func logTail(dir string, n int) string {
	b, err := os.ReadFile(filepath.Join(dir, LogFile))
	if err != nil {
		return ""
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func logTailMessage(dir string) string {
	t := logTail(dir, logTailLines)
	if t == "" {
		return ""
	}
	return "; last lines of " + filepath.Join(dir, LogFile) + ":\n" + t
}

func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// dialProbe opens a connection to addr bounded by ctx, writes req and returns
// the connection for the caller to read the answer (with ctx's deadline set).
func dialProbe(ctx context.Context, addr string, req string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Node state kept in the node's directory: what the driver needs to talk to a
// node it did not start (a re-adopted one), and the parameter values in effect.

// stateFile is the name of the driver's state file in a node's Dir.
const stateFile = "hoard-node.json"

// dirLocks serialises Start/Apply on the same node directory.
var dirLocks sync.Map // dir → *sync.Mutex

func lockDir(dir string) func() {
	m, _ := dirLocks.LoadOrStore(filepath.Clean(dir), &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
