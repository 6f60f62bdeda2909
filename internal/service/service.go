// Package service holds ElastiCache's business rules: one method per API operation,
// taking and returning the generated ecapi shapes. It never sees HTTP; the caller's
// account and region arrive in the context.
package service

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/store"
)

// Quotas are the per-account, per-region limits AWS documents; all configurable.
type Quotas struct {
	ParameterGroups int // custom cache parameter groups
	TagsPerResource int
	NodesPerRegion  int // cache nodes across all clusters
	// ManualSnapshotsPerDay is how many manual snapshots one node may have taken in
	// any 24 hours (AWS: 20).
	ManualSnapshotsPerDay int
	SubnetGroups          int // custom cache subnet groups
	SecurityGroups        int // custom cache security groups
	ServerlessCaches      int // serverless caches
	// ServerlessSnapshotsPerDay is how many manual snapshots one serverless cache
	// may have taken in any 24 hours (AWS: 24).
	ServerlessSnapshotsPerDay int
}

// DefaultQuotas are AWS's default service quotas.
var DefaultQuotas = Quotas{ParameterGroups: 150, TagsPerResource: 50, NodesPerRegion: 300, SubnetGroups: 50, SecurityGroups: 50,
	ManualSnapshotsPerDay: 20, ServerlessCaches: 40, ServerlessSnapshotsPerDay: 24}

// EngineVersion is an engine version hoard can run, found on this machine.
type EngineVersion struct {
	Engine  string // redis, valkey, memcached
	Version string // the version the binary reports, e.g. 7.0.15
	Family  string // its parameter-group family
	Binary  string // path of the engine binary
}

// Config is what the service needs from its host.
type Config struct {
	Quotas  Quotas
	Engines []EngineVersion
	Drivers map[string]engine.Driver // by engine name: redis, valkey, memcached
	DataDir string                   // engine nodes work under <DataDir>/nodes
	// AdvertiseHost is the address nodes bind and endpoints name.
	AdvertiseHost string
	// NodePorts is the range node ports are taken from.
	NodePorts PortRange
	// Buckets is where snapshots are exported to and clusters seeded from;
	// BucketMessage words its errors as ElastiCache does.
	Buckets       Buckets
	BucketMessage func(error) string
	// Keys encrypts snapshots created with a KmsKeyId; nil refuses KmsKeyId.
	Keys              Keys
	ReconcileInterval time.Duration    // how often the reconciler looks even when not poked
	Now               func() time.Time // injectable clock; time.Now when nil
	Log               *slog.Logger
}

// Buckets stores exported snapshots and the RDB objects clusters are seeded from
// (S3 or local bucket directories; internal/blob implements it).
type Buckets interface {
	// Export copies a local file to bucket/key, refusing an existing key and
	// leaving no partial object on failure.
	Export(ctx context.Context, path, bucket, key string) error
	// Fetch downloads bucket/key into a new local file.
	Fetch(ctx context.Context, bucket, key, path string) error
}

// Service implements the ElastiCache operations and reconciles engines with them.
type Service struct {
	store *store.Store
	cfg   Config
	log   *slog.Logger
	ports PortRange
	wake  chan struct{}
	// snapshotJobs are the snapshot captures running in this process.
	snapshotJobs jobSet
	// fronts serve the replication groups' endpoints.
	fronts frontSet
	// primaryMisses counts each group's failed primary probes in a row.
	primaryMisses missCounter
	// groupLocks serialise what repoints a replication group's nodes.
	groupLocks keyLocks
	// slotMoves: held by a migration call (a chunk of slots changing
	// owner) and by a takeover, which must not interleave (see
	// replaceDeadPrimaries).
	slotMoves keyLocks
	// reshardJobs are the slot migrations running, by group key.
	reshardJobs jobSet
}

// New returns a service over an open store. Call Run to start the reconciler.
func New(st *store.Store, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Quotas == (Quotas{}) {
		cfg.Quotas = DefaultQuotas
	}
	if cfg.AdvertiseHost == "" {
		cfg.AdvertiseHost = "127.0.0.1"
	}
	if cfg.NodePorts == (PortRange{}) {
		cfg.NodePorts = DefaultNodePorts
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{store: st, cfg: cfg, log: cfg.Log, ports: cfg.NodePorts, wake: make(chan struct{}, 1)}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Caller is who made a request and where: the account of its access key and the
// region of its signature's credential scope.
type Caller struct {
	RequestID string
	Account   string
	Region    string
}

type callerKey struct{}

// WithCaller returns a context carrying the caller.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerOf returns the caller the context carries.
func CallerOf(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// scope is the key prefix of the caller's resources: resources live per account and region.
func (c Caller) scope() string { return c.Account + "/" + c.Region + "/" }

// arn builds an ElastiCache ARN, e.g. arn:aws:elasticache:us-east-1:000000000000:parametergroup:my-group.
func (c Caller) arn(resourceType, name string) string {
	return fmt.Sprintf("arn:aws:elasticache:%s:%s:%s:%s", c.Region, c.Account, resourceType, name)
}

// page validates MaxRecords (20–100, default 100) and Marker and returns the window
// [start, end) of a list of total items, with the marker of the next page ("" at the end).
func page(maxRecords *int32, marker string, total int) (start, end int, next string, err error) {
	limit := 100
	if maxRecords != nil {
		if *maxRecords < 20 || *maxRecords > 100 {
			return 0, 0, "", ecapi.InvalidParameterValueException.Errorf("MaxRecords must be between 20 and 100, got %d.", *maxRecords)
		}
		limit = int(*maxRecords)
	}
	if marker != "" {
		if start, err = decodeMarker(marker); err != nil || start > total {
			return 0, 0, "", ecapi.InvalidParameterValueException.Errorf("Invalid marker: %s", marker)
		}
	}
	end = min(start+limit, total)
	if end < total {
		next = encodeMarker(end)
	}
	return start, end, next, nil
}

// pageByKey pages through a list that can change between calls (resources being
// created and deleted): keys are the items' unique keys in list order, ascending or
// descending, and the marker names the last key returned, so the next page starts
// after it wherever it now is, even if it has been deleted.
func pageByKey(maxRecords *int32, marker string, keys []string) (start, end int, next string, err error) {
	return pageByKeyWithin(maxRecords, 100, marker, keys)
}

// pageByKeyWithin is pageByKey for an operation whose MaxRecords is at most upper
// (and defaults to it): DescribeSnapshots allows 20–50.
func pageByKeyWithin(maxRecords *int32, upper int, marker string, keys []string) (start, end int, next string, err error) {
	return pageKeys("MaxRecords", maxRecords, 20, upper, "marker", marker, keys)
}

// pageKeys is pageByKey with the names and bounds of one operation's paging
// parameters: the serverless operations page with MaxResults (1–50) and NextToken.
func pageKeys(limitName string, maxRecords *int32, lower, upper int, markerName, marker string, keys []string) (start, end int, next string, err error) {
	limit := upper
	if maxRecords != nil {
		if int(*maxRecords) < lower || int(*maxRecords) > upper {
			return 0, 0, "", ecapi.InvalidParameterValueException.Errorf("%s must be between %d and %d, got %d.", limitName, lower, upper, *maxRecords)
		}
		limit = int(*maxRecords)
	}
	if marker != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(marker)
		after, ok := strings.CutPrefix(string(raw), "after:")
		if derr != nil || !ok {
			return 0, 0, "", ecapi.InvalidParameterValueException.Errorf("Invalid %s: %s", markerName, marker)
		}
		descending := len(keys) > 1 && keys[0] > keys[len(keys)-1]
		start = sort.Search(len(keys), func(i int) bool {
			if descending {
				return keys[i] < after
			}
			return keys[i] > after
		})
	}
	end = min(start+limit, len(keys))
	if end < len(keys) {
		next = base64.RawURLEncoding.EncodeToString([]byte("after:" + keys[end-1]))
	}
	return start, end, next, nil
}

// pageSorted sorts items by name and returns the page the marker asks for, with
// the marker of the next page.
func pageSorted[T any](items []T, name func(T) string, maxRecords *int32, marker string) ([]T, string, error) {
	return pageSortedWithin(items, name, maxRecords, 100, marker)
}

// pageSortedWithin is pageSorted with pageByKeyWithin's MaxRecords bound.
func pageSortedWithin[T any](items []T, name func(T) string, maxRecords *int32, upper int, marker string) ([]T, string, error) {
	keys := sortByName(items, name)
	start, end, next, err := pageByKeyWithin(maxRecords, upper, marker, keys)
	if err != nil {
		return nil, "", err
	}
	return items[start:end], next, nil
}

// pageResults is pageSorted for the operations that page with MaxResults
// (1–50, default 50) and NextToken.
func pageResults[T any](items []T, name func(T) string, maxResults *int32, nextToken string) ([]T, string, error) {
	keys := sortByName(items, name)
	start, end, next, err := pageKeys("MaxResults", maxResults, 1, 50, "NextToken", nextToken, keys)
	if err != nil {
		return nil, "", err
	}
	return items[start:end], next, nil
}

// sortByName sorts items by name and returns their names in that order.
func sortByName[T any](items []T, name func(T) string) []string {
	sort.Slice(items, func(i, j int) bool { return name(items[i]) < name(items[j]) })
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = name(it)
	}
	return keys
}

// Markers are opaque to clients: the offset of the next item, base64-encoded.
func encodeMarker(offset int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "offset:%d", offset))
}

func decodeMarker(marker string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(marker)
	if err != nil {
		return 0, err
	}
	var offset int
	if _, err := fmt.Sscanf(string(raw), "offset:%d", &offset); err != nil || offset < 0 {
		return 0, fmt.Errorf("bad marker")
	}
	return offset, nil
}

// validateName applies AWS's naming rule for parameter groups, clusters and most
// other resources: 1–max characters, ASCII letters, digits and hyphens, starting with
// a letter, not ending with a hyphen nor holding two consecutive hyphens.
func validateName(param, name string, max int) error {
	bad := func(why string) error {
		return ecapi.InvalidParameterValueException.Errorf("Invalid %s %q: %s.", param, name, why)
	}
	switch {
	case name == "":
		return ecapi.InvalidParameterValueException.Errorf("The parameter %s must be provided and must not be blank.", param)
	case len(name) > max:
		return bad(fmt.Sprintf("it must be at most %d characters long", max))
	case !isLetter(name[0]):
		return bad("the first character must be a letter")
	case strings.HasSuffix(name, "-"):
		return bad("it cannot end with a hyphen")
	case strings.Contains(name, "--"):
		return bad("it cannot contain two consecutive hyphens")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' {
			return bad("it may contain only ASCII letters, digits and hyphens")
		}
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
