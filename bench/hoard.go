package main

// Starting and stopping hoard, and finding the engine processes it started.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var servingLine = regexp.MustCompile(`msg="hoard serving" listen=(\S+)\s`)

// hoard is a running server; exited is closed once it has been waited for.
type hoard struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startHoard starts hoard on a free loopback port and waits for its serving line.
// Its stderr (one log line per request) goes straight to a file, not through us.
// env is added to hoard's environment (which is ours plus the bench keys), and
// extra is appended to the serve flags.
func startHoard(ctx context.Context, bin, dir string, env []string, extra ...string) (*hoard, string, error) {
	logf, err := os.Create(filepath.Join(dir, "hoard.log"))
	if err != nil {
		return nil, "", err
	}
	defer logf.Close() // hoard holds its own descriptor
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOARD_ACCESS_KEY_ID="+accessKey,
		"HOARD_SECRET_ACCESS_KEY="+secretKey, "HOARD_ACCOUNT_ID="+account)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	h := &hoard{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(h.exited) }()
	timeout := time.After(20 * time.Second)
	for {
		head, _ := os.ReadFile(logf.Name())
		if m := servingLine.FindSubmatch(head); m != nil {
			return h, string(m[1]), nil
		}
		select {
		case <-ctx.Done():
			return h, "", ctx.Err()
		case <-h.exited:
			head, _ = os.ReadFile(logf.Name())
			return h, "", fmt.Errorf("hoard exited before serving (%s):\n%s", cmd.ProcessState, head)
		case <-timeout:
			return h, "", fmt.Errorf("hoard did not report serving within 20s:\n%s", head)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *hoard) pid() int { return h.cmd.Process.Pid }

// stop sends SIGTERM to hoard's PID and waits for it to exit; SIGKILL after 15s.
func (h *hoard) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
	}
	if code := h.cmd.ProcessState.ExitCode(); code != 0 {
		fmt.Fprintf(os.Stderr, "bench: hoard exited with %d after SIGTERM\n", code)
	}
}

// proc is an engine process found under the harness's temporary directory.
type proc struct {
	pid   int
	comm  string // e.g. redis-server, memcached
	rssKB int
}

// engineProcs lists the processes whose working directory is under dir or whose
// command line names it, other than this process and the PIDs in skip (hoard
// itself, whose --data-dir is under dir). hoard starts engines in their own
// sessions and they outlive it by design, so /proc is the only reliable way to
// find them: a node's working directory is its node directory under the data dir.
func engineProcs(dir string, skip ...int) []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || slices.Contains(skip, pid) {
			continue
		}
		base := filepath.Join("/proc", e.Name())
		cwd, _ := os.Readlink(filepath.Join(base, "cwd")) // "... (deleted)" once the node dir is removed
		raw, _ := os.ReadFile(filepath.Join(base, "cmdline"))
		if cwd != dir && !strings.HasPrefix(cwd, dir+"/") && !strings.Contains(string(raw), dir+"/") {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(base, "comm"))
		rss, _ := procMem(pid)
		out = append(out, proc{pid: pid, comm: strings.TrimSpace(string(comm)), rssKB: rss})
	}
	return out
}

// killEngines SIGKILLs, by PID, every engine process under dir (see engineProcs),
// waits up to 5s for them to disappear, and returns the ones it killed.
func killEngines(dir string, skip ...int) []proc {
	left := engineProcs(dir, skip...)
	for _, p := range left {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		alive := 0
		for _, p := range left {
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid)); err == nil && !isZombie(st) {
				alive++
			}
		}
		if alive == 0 {
			break
		}
	}
	return left
}

// isZombie reports whether a /proc/PID/stat line has state Z (exited, not yet reaped).
func isZombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// procMem is a process's VmRSS and VmHWM (peak RSS) in KiB, from /proc/PID/status.
func procMem(pid int) (rssKB, hwmKB int) {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			rssKB = atoi(f[0])
		case "VmHWM":
			hwmKB = atoi(f[0])
		}
	}
	return rssKB, hwmKB
}

func mib(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// procList is "PID comm, PID comm, ...".
func procList(ps []proc) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", p.pid, p.comm)
	}
	return b.String()
}
