package front

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// selfCPU is the CPU time (user+system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time (user+system) process pid has used, from
// /proc/PID/stat, counted in clock ticks of 10ms (USER_HZ is 100 on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	fs := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fs) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fs[11], 10, 64) // field 14, utime
	st, _ := strconv.ParseInt(fs[12], 10, 64) // field 15, stime
	return time.Duration(ut+st) * 10 * time.Millisecond
}
