package service

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/store"
)

// A serverless cache is a cluster record (see cluster.Serverless) with one node:
// the reconciler starts, watches, restarts and stops it like any other node, and
// snapshots capture it with the same machinery. What is serverless about it is
// the API, and the usage limits, which become the node's memory settings.

const tableServerless = "serverless"

// serverlessNodeType is the node type whose catalogue values a serverless
// cache's node starts from, before its usage limits override the memory ones.
const serverlessNodeType = "cache.m5.large"

// serverlessSpec is what a serverless cache adds to its cluster record.
type serverlessSpec struct {
	Description       string                  `json:"description,omitempty"`
	MajorVersion      string                  `json:"majorVersion"`
	Limits            *ecapi.CacheUsageLimits `json:"limits,omitempty"`
	KmsKeyID          string                  `json:"kmsKeyId,omitempty"`
	SubnetIDs         []string                `json:"subnetIds,omitempty"`
	DailySnapshotTime string                  `json:"dailySnapshotTime,omitempty"`
	NetworkType       string                  `json:"networkType"`
}

func init() {
	registerTaggable("serverlesscache", func(tx *store.Tx, c Caller, name string) error {
		_, err := loadServerless(tx, c, name)
		return err
	})
}

func loadServerless(tx *store.Tx, c Caller, name string) (*cluster, error) {
	var cl cluster
	if err := tx.Get(tableServerless, c.scope()+strings.ToLower(name), &cl); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ecapi.ServerlessCacheNotFoundFault.Errorf("Serverless cache %s not found.", name)
		}
		return nil, err
	}
	return &cl, nil
}

// loadAvailableServerless loads a serverless cache that must be available for the change asked.
func loadAvailableServerless(tx *store.Tx, c Caller, name string) (*cluster, error) {
	cl, err := loadServerless(tx, c, name)
	if err == nil && serverlessStatus(cl) != statusAvailable {
		err = ecapi.InvalidServerlessCacheStateFault.Errorf("Serverless cache %s is not available (it is %s).", cl.ID, serverlessStatus(cl))
	}
	if err == nil && cl.Status == clusterSnapshotting {
		err = ecapi.InvalidServerlessCacheStateFault.Errorf("Serverless cache %s is taking a snapshot; try again when it is done.", cl.ID)
	}
	return cl, err
}

// serverlessStatus is the status the API shows: a cache taking a snapshot stays
// available to its clients, so it says so.
func serverlessStatus(cl *cluster) string {
	if cl.Status == clusterSnapshotting {
		return statusAvailable
	}
	return cl.Status
}

// CreateServerlessCache records a serverless cache in status creating; the
// reconciler starts its node (seeded from SnapshotArnsToRestore, if any).
func (s *Service) CreateServerlessCache(ctx context.Context, in *ecapi.CreateServerlessCacheRequest) (_ *ecapi.CreateServerlessCacheResponse, err error) {
	c := CallerOf(ctx)
	name := strings.ToLower(in.ServerlessCacheName)
	if err := validateName("ServerlessCacheName", name, 40); err != nil {
		return nil, err
	}
	ev, major, err := s.serverlessEngine(in.Engine, in.MajorEngineVersion)
	if err != nil {
		return nil, err
	}
	if err := validateUsageLimits(in.CacheUsageLimits); err != nil {
		return nil, err
	}
	if err := validateServerlessSnapshots(in.SnapshotRetentionLimit, in.DailySnapshotTime); err != nil {
		return nil, err
	}
	if err := s.checkKmsKey(in.KmsKeyId); err != nil {
		return nil, err
	}
	if err := validateSecurityGroupIDs(in.SecurityGroupIds); err != nil {
		return nil, err
	}
	switch strings.ToLower(in.NetworkType) {
	case "", "ipv4":
	case "ipv6", "dual_stack":
		return nil, ecapi.InvalidParameterCombinationException.Errorf("NetworkType %s is not available: hoard serves IPv4 only.", in.NetworkType)
	default:
		return nil, ecapi.InvalidParameterValueException.Errorf("Invalid NetworkType %q: must be ipv4, ipv6 or dual_stack.", in.NetworkType)
	}
	if in.UserGroupId != "" {
		return nil, ecapi.UserGroupNotFoundFault.Errorf("User group %s not found.", in.UserGroupId)
	}
	if err := s.validateTags(in.Tags); err != nil {
		return nil, err
	}
	var restore *restoreSource
	if len(in.SnapshotArnsToRestore) > 0 {
		if restore, err = s.stageServerlessRestore(ctx, c, name, ev.Engine, in.SnapshotArnsToRestore); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				_ = os.RemoveAll(restore.dir) // a refused cache leaves no staged data behind
			}
		}()
	}
	cl := &cluster{
		Account: c.Account, Region: c.Region, ID: name,
		Engine: ev.Engine, EngineVersion: ev.Version, Family: ev.Family, NodeType: serverlessNodeType,
		SecurityGroupIDs: in.SecurityGroupIds, AZ: c.Region + "a", Status: statusCreating, CreatedAt: s.now(),
		Serverless: &serverlessSpec{
			Description: in.Description, MajorVersion: major, Limits: in.CacheUsageLimits, KmsKeyID: in.KmsKeyId,
			SubnetIDs: in.SubnetIds, DailySnapshotTime: in.DailySnapshotTime, NetworkType: "ipv4",
		},
	}
	if in.SnapshotRetentionLimit != nil {
		cl.SnapshotRetentionLimit = *in.SnapshotRetentionLimit
	}
	if cl.SnapshotRetentionLimit > 0 && cl.Serverless.DailySnapshotTime == "" {
		cl.Serverless.DailySnapshotTime = "03:00"
	}
	err = s.store.Update(func(tx *store.Tx) error {
		if tx.Has(tableServerless, c.scope()+name) {
			return ecapi.ServerlessCacheAlreadyExistsFault.Errorf("Serverless cache %s already exists.", name)
		}
		if tx.Count(tableServerless, c.scope()) >= s.cfg.Quotas.ServerlessCaches {
			return ecapi.ServerlessCacheQuotaForCustomerExceededFault.Errorf("This request would exceed the quota of %d serverless caches per account and region.", s.cfg.Quotas.ServerlessCaches)
		}
		family, _ := catalog.Lookup(ev.Family)
		g, err := s.groupForCluster(tx, c, "", family)
		if err != nil {
			return err
		}
		cl.ParamGroup = g.Name
		if len(cl.Serverless.SubnetIDs) == 0 {
			sg, err := loadSubnetGroup(tx, c, defaultSubnetGroup)
			if err != nil {
				return err
			}
			for _, sn := range sg.Subnets {
				cl.Serverless.SubnetIDs = append(cl.Serverless.SubnetIDs, sn.ID)
			}
		}
		if err := s.addNodes(tx, cl, 1); err != nil {
			return err
		}
		seedNodes(cl, restore)
		if err := tx.Put(tableServerless, cl.key(), cl); err != nil {
			return err
		}
		return putTags(tx, cl.arn(), in.Tags)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.CreateServerlessCacheResponse{ServerlessCache: s.serverlessShape(cl)}, nil
}

// serverlessEngine picks the installed engine version a serverless cache runs:
// the newest of the engine's installed versions with the major version asked
// for (or any). ElastiCache Serverless runs Redis OSS 7, Valkey 7 and 8, and
// Memcached 1.6.
func (s *Service) serverlessEngine(engineName, major string) (*EngineVersion, string, error) {
	engineName = strings.ToLower(engineName)
	var found *EngineVersion
	var installed []string
	for i := range s.cfg.Engines {
		ev := &s.cfg.Engines[i]
		if ev.Engine != engineName {
			continue
		}
		installed = append(installed, ev.Version)
		if !serverlessSupports(ev.Engine, majorVersion(ev.Engine, ev.Version)) || major != "" && majorVersion(ev.Engine, ev.Version) != major {
			continue
		}
		if found == nil || compareVersions(ev.Version, found.Version) > 0 {
			found = ev
		}
	}
	switch {
	case engineName != catalog.Redis && engineName != catalog.Memcached && engineName != catalog.Valkey:
		return nil, "", ecapi.InvalidParameterValueException.Errorf("Invalid Engine %q: must be redis, valkey or memcached.", engineName)
	case major != "" && !serverlessSupports(engineName, major):
		return nil, "", ecapi.InvalidParameterValueException.Errorf("MajorEngineVersion %s of %s is not available for serverless caches.", major, engineName)
	case len(installed) == 0:
		return nil, "", ecapi.InvalidParameterValueException.Errorf("Engine %s is not available: no %s binary was found on this hoard's machine.", engineName, engineBinaryName(engineName))
	case found == nil && major != "":
		return nil, "", ecapi.InvalidParameterValueException.Errorf("MajorEngineVersion %s of %s is not available; this hoard runs %s %s.", major, engineName, engineName, strings.Join(installed, ", "))
	case found == nil:
		return nil, "", ecapi.InvalidParameterValueException.Errorf("This hoard runs %s %s, which serverless caches cannot use.", engineName, strings.Join(installed, ", "))
	}
	return found, majorVersion(found.Engine, found.Version), nil
}

// majorVersion is the major engine version ElastiCache shows: "7" for redis and
// valkey 7.x, "1.6" for memcached 1.6.x.
func majorVersion(engineName, version string) string {
	parts := strings.Split(version, ".")
	if engineName == catalog.Memcached && len(parts) > 1 {
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}

func serverlessSupports(engineName, major string) bool {
	switch engineName {
	case catalog.Redis:
		return major == "7"
	case catalog.Valkey:
		return major == "7" || major == "8"
	case catalog.Memcached:
		return major == "1.6"
	}
	return false
}

// validateUsageLimits applies ElastiCache Serverless's bounds: data storage 1 to
// 5,000 GB, 1,000 to 15,000,000 ECPU per second, minimum not above maximum.
func validateUsageLimits(l *ecapi.CacheUsageLimits) error {
	if l == nil {
		return nil
	}
	if d := l.DataStorage; d != nil {
		if d.Unit != "GB" {
			return ecapi.InvalidParameterValueException.Errorf("Invalid DataStorage Unit %q: must be GB.", d.Unit)
		}
		if err := checkRange("DataStorage Maximum", d.Maximum, 1, 5000); err != nil {
			return err
		}
		if err := checkRange("DataStorage Minimum", d.Minimum, 1, 5000); err != nil {
			return err
		}
		if d.Maximum != nil && d.Minimum != nil && *d.Minimum > *d.Maximum {
			return ecapi.InvalidParameterCombinationException.Errorf("DataStorage Minimum (%d GB) is greater than Maximum (%d GB).", *d.Minimum, *d.Maximum)
		}
	}
	if e := l.ECPUPerSecond; e != nil {
		if err := checkRange("ECPUPerSecond Maximum", e.Maximum, 1000, 15000000); err != nil {
			return err
		}
		if err := checkRange("ECPUPerSecond Minimum", e.Minimum, 1000, 15000000); err != nil {
			return err
		}
		if e.Maximum != nil && e.Minimum != nil && *e.Minimum > *e.Maximum {
			return ecapi.InvalidParameterCombinationException.Errorf("ECPUPerSecond Minimum (%d) is greater than Maximum (%d).", *e.Minimum, *e.Maximum)
		}
	}
	return nil
}

func checkRange(name string, v *int32, lo, hi int32) error {
	if v != nil && (*v < lo || *v > hi) {
		return ecapi.InvalidParameterValueException.Errorf("%s must be between %d and %d, got %d.", name, lo, hi, *v)
	}
	return nil
}

var dailySnapshotTimePattern = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)

func validateServerlessSnapshots(retention *int32, daily string) error {
	if retention != nil && (*retention < 0 || *retention > 35) {
		return ecapi.InvalidParameterValueException.Errorf("SnapshotRetentionLimit must be between 0 and 35, got %d.", *retention)
	}
	if daily != "" && !dailySnapshotTimePattern.MatchString(daily) {
		return ecapi.InvalidParameterValueException.Errorf("Invalid DailySnapshotTime %q: expected hh24:mi.", daily)
	}
	return nil
}

var securityGroupIDPattern = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)

func validateSecurityGroupIDs(ids []string) error {
	for _, id := range ids {
		if !securityGroupIDPattern.MatchString(id) {
			return ecapi.InvalidParameterValueException.Errorf("Invalid SecurityGroupId %q: expected sg- and 8 to 17 hexadecimal digits.", id)
		}
	}
	return nil
}

// limitParams turns the usage limits into engine settings. DataStorage.Maximum
// bounds the data as ElastiCache Serverless does: redis evicts keys that have a
// TTL, least recently used first, and refuses writes when none is left
// (volatile-lru); memcached, which cannot tell keys with a TTL from others,
// refuses writes once full instead of evicting (-M). Without a maximum redis has
// no memory limit and memcached the node type's. ECPUPerSecond is not enforced.
func (sp *serverlessSpec) limitParams(engineName string, params map[string]string) {
	var maxGB int64
	if sp.Limits != nil && sp.Limits.DataStorage != nil && sp.Limits.DataStorage.Maximum != nil {
		maxGB = int64(*sp.Limits.DataStorage.Maximum)
	}
	if engineName == catalog.Memcached {
		params["error_on_memory_exhausted"] = "1"
		if maxGB > 0 {
			params["max_cache_memory"] = strconv.FormatInt(maxGB*1024, 10) // MB
			params["memcached_connections_overhead"] = "0"
		}
		return
	}
	params["maxmemory-policy"] = "volatile-lru"
	params["reserved-memory-percent"] = "0"
	params["reserved-memory"] = "0"
	if maxGB > 0 {
		params["maxmemory"] = strconv.FormatInt(maxGB<<30, 10)
	} else {
		delete(params, "maxmemory")
	}
}

// DescribeServerlessCaches lists the caller's serverless caches, or one, by name.
func (s *Service) DescribeServerlessCaches(ctx context.Context, in *ecapi.DescribeServerlessCachesRequest) (*ecapi.DescribeServerlessCachesResponse, error) {
	c := CallerOf(ctx)
	var caches []cluster
	err := s.store.View(func(tx *store.Tx) error {
		if in.ServerlessCacheName != "" {
			cl, err := loadServerless(tx, c, in.ServerlessCacheName)
			if err == nil {
				caches = append(caches, *cl)
			}
			return err
		}
		var err error
		caches, err = store.ScanAs[cluster](tx, tableServerless, c.scope())
		return err
	})
	if err != nil {
		return nil, err
	}
	caches, next, err := pageResults(caches, func(cl cluster) string { return cl.ID }, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	out := &ecapi.DescribeServerlessCachesResponse{NextToken: next, ServerlessCaches: []ecapi.ServerlessCache{}}
	for i := range caches {
		out.ServerlessCaches = append(out.ServerlessCaches, *s.serverlessShape(&caches[i]))
	}
	return out, nil
}

// ModifyServerlessCache changes a serverless cache. New usage limits reach the
// running engine at once (the cache is modifying until they have); the other
// settings are recorded.
func (s *Service) ModifyServerlessCache(ctx context.Context, in *ecapi.ModifyServerlessCacheRequest) (*ecapi.ModifyServerlessCacheResponse, error) {
	c := CallerOf(ctx)
	if err := validateUsageLimits(in.CacheUsageLimits); err != nil {
		return nil, err
	}
	if err := validateServerlessSnapshots(in.SnapshotRetentionLimit, in.DailySnapshotTime); err != nil {
		return nil, err
	}
	if err := validateSecurityGroupIDs(in.SecurityGroupIds); err != nil {
		return nil, err
	}
	if in.UserGroupId != "" && in.RemoveUserGroup != nil && *in.RemoveUserGroup {
		return nil, ecapi.InvalidParameterCombinationException.Errorf("Give either UserGroupId or RemoveUserGroup, not both.")
	}
	if in.UserGroupId != "" {
		return nil, ecapi.UserGroupNotFoundFault.Errorf("User group %s not found.", in.UserGroupId)
	}
	var cl *cluster
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if cl, err = loadAvailableServerless(tx, c, in.ServerlessCacheName); err != nil {
			return err
		}
		if err := s.checkEngineChange(cl, in.Engine, in.MajorEngineVersion); err != nil {
			return err
		}
		sp := cl.Serverless
		if in.Description != "" {
			sp.Description = in.Description
		}
		if in.SecurityGroupIds != nil {
			cl.SecurityGroupIDs = in.SecurityGroupIds
		}
		if in.SnapshotRetentionLimit != nil {
			cl.SnapshotRetentionLimit = *in.SnapshotRetentionLimit
		}
		if in.DailySnapshotTime != "" {
			sp.DailySnapshotTime = in.DailySnapshotTime
		}
		if cl.SnapshotRetentionLimit > 0 && sp.DailySnapshotTime == "" {
			sp.DailySnapshotTime = "03:00"
		}
		if in.CacheUsageLimits != nil {
			sp.Limits = mergeUsageLimits(sp.Limits, in.CacheUsageLimits)
			if err := validateUsageLimits(sp.Limits); err != nil {
				return err
			}
			cl.Status, cl.ParamStatus = statusModifying, applyApplying
			cl.ParamGen++
		}
		return tx.Put(tableServerless, cl.key(), cl)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.ModifyServerlessCacheResponse{ServerlessCache: s.serverlessShape(cl)}, nil
}

// checkEngineChange accepts an Engine and MajorEngineVersion that name what the
// cache already runs; hoard does not move a running cache to another engine.
func (s *Service) checkEngineChange(cl *cluster, engineName, major string) error {
	if engineName == "" && major == "" {
		return nil
	}
	if engineName == "" {
		engineName = cl.Engine
	}
	if strings.EqualFold(engineName, cl.Engine) && (major == "" || major == cl.Serverless.MajorVersion) {
		return nil
	}
	if _, _, err := s.serverlessEngine(engineName, major); err != nil {
		return err
	}
	return ecapi.InvalidParameterCombinationException.Errorf("hoard cannot move serverless cache %s from %s %s to %s %s yet; create a new cache from a snapshot instead.",
		cl.ID, cl.Engine, cl.Serverless.MajorVersion, strings.ToLower(engineName), major)
}

// mergeUsageLimits applies the limits a modification gives over the current ones.
func mergeUsageLimits(cur, change *ecapi.CacheUsageLimits) *ecapi.CacheUsageLimits {
	out := &ecapi.CacheUsageLimits{}
	if cur != nil {
		*out = *cur
	}
	if change.DataStorage != nil {
		out.DataStorage = change.DataStorage
	}
	if change.ECPUPerSecond != nil {
		out.ECPUPerSecond = change.ECPUPerSecond
	}
	return out
}

// DeleteServerlessCache marks a serverless cache deleting; the reconciler takes
// the final snapshot, if one was asked for, stops the node and removes the cache.
func (s *Service) DeleteServerlessCache(ctx context.Context, in *ecapi.DeleteServerlessCacheRequest) (*ecapi.DeleteServerlessCacheResponse, error) {
	c := CallerOf(ctx)
	var cl *cluster
	err := s.store.Update(func(tx *store.Tx) (err error) {
		if cl, err = loadServerless(tx, c, in.ServerlessCacheName); err != nil {
			return err
		}
		if cl.Status != statusAvailable && cl.Status != statusFailed {
			return ecapi.InvalidServerlessCacheStateFault.Errorf("Serverless cache %s cannot be deleted while it is %s.", cl.ID, describeBusy(cl))
		}
		if in.FinalSnapshotName != "" {
			name := strings.ToLower(in.FinalSnapshotName)
			if err := validateServerlessSnapshotName(name); err != nil {
				return err
			}
			if tx.Has(tableServerlessSnapshots, c.scope()+name) {
				return ecapi.ServerlessCacheSnapshotAlreadyExistsFault.Errorf("Serverless cache snapshot %s already exists.", name)
			}
			cl.FinalSnapshot = name
		}
		cl.Status = statusDeleting
		for _, n := range cl.Nodes {
			n.Status = statusDeleting
		}
		return tx.Put(tableServerless, cl.key(), cl)
	})
	if err != nil {
		return nil, err
	}
	s.poke()
	return &ecapi.DeleteServerlessCacheResponse{ServerlessCache: s.serverlessShape(cl)}, nil
}

// serverlessShape is a serverless cache as the API shows it. Endpoint and
// ReaderEndpoint both name the cache's node: it serves reads and writes.
func (s *Service) serverlessShape(cl *cluster) *ecapi.ServerlessCache {
	sp := cl.Serverless
	retention := cl.SnapshotRetentionLimit
	out := &ecapi.ServerlessCache{
		ServerlessCacheName: cl.ID, Description: sp.Description, CreateTime: cl.CreatedAt, Status: serverlessStatus(cl),
		Engine: cl.Engine, MajorEngineVersion: sp.MajorVersion, FullEngineVersion: cl.EngineVersion, CacheUsageLimits: sp.Limits,
		KmsKeyId: sp.KmsKeyID, SecurityGroupIds: cl.SecurityGroupIDs, ARN: cl.arn(), SubnetIds: sp.SubnetIDs,
		SnapshotRetentionLimit: &retention, DailySnapshotTime: sp.DailySnapshotTime, NetworkType: sp.NetworkType,
	}
	if len(cl.Nodes) > 0 && cl.Status != statusDeleting {
		port := int32(cl.Nodes[0].Port)
		out.Endpoint = &ecapi.Endpoint{Address: s.cfg.AdvertiseHost, Port: port}
		out.ReaderEndpoint = &ecapi.Endpoint{Address: s.cfg.AdvertiseHost, Port: port}
	}
	return out
}

// describeBusy says what a serverless cache is doing, for error messages.
func describeBusy(cl *cluster) string {
	if cl.Status == clusterSnapshotting {
		return "taking a snapshot"
	}
	return cl.Status
}
