// Package engine finds and runs cache engine processes (redis-server,
// valkey-server, memcached). It knows nothing of the ElastiCache API.
package engine

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"time"
)

// Installed is an engine binary found on this machine.
type Installed struct {
	Engine  string // redis, valkey, memcached
	Version string // as the binary reports it, e.g. 7.0.15
	Binary  string // absolute path
}

// Binaries names the engine binaries to look for: a bare name is searched on PATH.
type Binaries struct {
	Redis     string
	Valkey    string
	Memcached string
}

// DefaultBinaries are the names engines are installed under.
var DefaultBinaries = Binaries{Redis: "redis-server", Valkey: "valkey-server", Memcached: "memcached"}

var (
	serverVersion    = regexp.MustCompile(`\bv=(\d+\.\d+\.\d+)`)
	memcachedVersion = regexp.MustCompile(`^memcached (\d+\.\d+\.\d+)`)
)

// Detect runs each binary's version command and returns the engines that answered.
// A binary that is absent is skipped; one that is present but does not report a
// version is an error, since the user named it or installed it.
func Detect(ctx context.Context, bins Binaries) ([]Installed, error) {
	probes := []struct {
		engine, binary, flag string
		re                   *regexp.Regexp
	}{
		{"redis", bins.Redis, "--version", serverVersion},
		{"valkey", bins.Valkey, "--version", serverVersion},
		{"memcached", bins.Memcached, "-V", memcachedVersion},
	}
	var found []Installed
	for _, p := range probes {
		if p.binary == "" {
			continue
		}
		path, err := exec.LookPath(p.binary)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(ctx, path, p.flag).CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v: %s", path, p.flag, err, out)
		}
		m := p.re.FindSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("%s %s printed no version: %q", path, p.flag, out)
		}
		found = append(found, Installed{Engine: p.engine, Version: string(m[1]), Binary: path})
	}
	return found, nil
}
