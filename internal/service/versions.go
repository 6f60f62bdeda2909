package service

import (
	"strconv"
	"strings"
)

// compareVersions orders dotted version strings numerically ("7.0.15" > "7.0.9").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// versionMatches reports whether a requested version names an installed one, either
// exactly or as a prefix of whole components ("7.0" and "7" match "7.0.15"), since
// ElastiCache users ask for major.minor versions.
func versionMatches(requested, installed string) bool {
	return requested == installed || strings.HasPrefix(installed, requested+".")
}
