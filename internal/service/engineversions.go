package service

import (
	"context"
	"sort"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
)

var engineDescriptions = map[string]string{
	catalog.Redis:     "Redis",
	catalog.Valkey:    "Valkey",
	catalog.Memcached: "memcached",
}

// DescribeCacheEngineVersions lists the engine versions hoard can run on this
// machine: the redis-server, valkey-server and memcached binaries it found.
func (s *Service) DescribeCacheEngineVersions(ctx context.Context, in *ecapi.DescribeCacheEngineVersionsMessage) (*ecapi.CacheEngineVersionMessage, error) {
	if in.CacheParameterGroupFamily != "" {
		if _, ok := catalog.Lookup(in.CacheParameterGroupFamily); !ok {
			return nil, ecapi.InvalidParameterValueException.Errorf("Invalid CacheParameterGroupFamily %q.", in.CacheParameterGroupFamily)
		}
	}
	versions := append([]EngineVersion(nil), s.cfg.Engines...)
	sort.Slice(versions, func(i, j int) bool {
		if versions[i].Engine != versions[j].Engine {
			return versions[i].Engine < versions[j].Engine
		}
		return compareVersions(versions[i].Version, versions[j].Version) < 0
	})
	// The default version of an engine is the newest one installed.
	newest := map[string]string{}
	for _, v := range versions {
		newest[v.Engine] = v.Version
	}
	var matched []ecapi.CacheEngineVersion
	for _, v := range versions {
		switch {
		case in.Engine != "" && in.Engine != v.Engine,
			in.EngineVersion != "" && !versionMatches(in.EngineVersion, v.Version),
			in.CacheParameterGroupFamily != "" && in.CacheParameterGroupFamily != v.Family,
			in.DefaultOnly && newest[v.Engine] != v.Version:
			continue
		}
		matched = append(matched, ecapi.CacheEngineVersion{
			Engine:                        v.Engine,
			EngineVersion:                 v.Version,
			CacheParameterGroupFamily:     v.Family,
			CacheEngineDescription:        engineDescriptions[v.Engine],
			CacheEngineVersionDescription: engineDescriptions[v.Engine] + " " + v.Version + " (" + v.Binary + ")",
		})
	}
	start, end, next, err := page(in.MaxRecords, in.Marker, len(matched))
	if err != nil {
		return nil, err
	}
	out := &ecapi.CacheEngineVersionMessage{Marker: next, CacheEngineVersions: []ecapi.CacheEngineVersion{}}
	out.CacheEngineVersions = append(out.CacheEngineVersions, matched[start:end]...)
	return out, nil
}
