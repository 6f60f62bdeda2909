//go:build !linux

package front

import "testing"

// hungAddr needs a listener with a backlog of 0 that drops SYNs once full,
// which hung_linux_test.go builds with Linux socket calls.
func hungAddr(t testing.TB) string {
	t.Skip("needs Linux accept-queue behaviour")
	return ""
}
