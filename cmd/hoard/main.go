// Command hoard is a self-hosted, ElastiCache-compatible cache service.
//
//	hoard serve [--listen 127.0.0.1:8686] [--data-dir DIR] [--region us-east-1] [--s3-endpoint URL]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hoardcache/hoard/internal/api"
	"github.com/hoardcache/hoard/internal/blob"
	"github.com/hoardcache/hoard/internal/catalog"
	"github.com/hoardcache/hoard/internal/engine"
	"github.com/hoardcache/hoard/internal/keyring"
	"github.com/hoardcache/hoard/internal/service"
	"github.com/hoardcache/hoard/internal/store"
)

const usage = `hoard: a self-hosted, ElastiCache-compatible cache service

Usage:
  hoard serve [flags]    run the API server (hoard serve -h lists the flags)
  hoard keys create|list manage the snapshot encryption keys (hoard keys -h)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "hoard:", err)
			os.Exit(1)
		}
	case "keys":
		if err := keys(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "hoard:", err)
			os.Exit(1)
		}
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "hoard: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

func defaultDataDir() string {
	if dir := os.Getenv("XDG_DATA_HOME"); dir != "" {
		return filepath.Join(dir, "hoard")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "hoard")
	}
	return "hoard-data"
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8686", "address the API listens on")
	dataDir := fs.String("data-dir", defaultDataDir(), "directory for all durable state")
	region := fs.String("region", "us-east-1", "region hoard's own defaults and logs name")
	s3Endpoint := fs.String("s3-endpoint", "", "S3-compatible endpoint (path-style) for snapshot export and seeding; without it, buckets are directories under <data-dir>/s3/")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "lowest level logged: debug, info, warn or error")
	quotas := service.DefaultQuotas
	fs.IntVar(&quotas.ParameterGroups, "quota-parameter-groups", quotas.ParameterGroups, "custom cache parameter groups per account and region")
	fs.IntVar(&quotas.TagsPerResource, "quota-tags-per-resource", quotas.TagsPerResource, "tags per resource")
	fs.IntVar(&quotas.NodesPerRegion, "quota-nodes-per-region", quotas.NodesPerRegion, "cache nodes per account and region")
	fs.IntVar(&quotas.SubnetGroups, "quota-subnet-groups", quotas.SubnetGroups, "custom cache subnet groups per account and region")
	fs.IntVar(&quotas.SecurityGroups, "quota-security-groups", quotas.SecurityGroups, "custom cache security groups per account and region")
	fs.IntVar(&quotas.ManualSnapshotsPerDay, "quota-manual-snapshots-per-day", quotas.ManualSnapshotsPerDay, "manual snapshots per node in any 24 hours")
	fs.IntVar(&quotas.ServerlessCaches, "quota-serverless-caches", quotas.ServerlessCaches, "serverless caches per account and region")
	fs.IntVar(&quotas.ServerlessSnapshotsPerDay, "quota-serverless-snapshots-per-day", quotas.ServerlessSnapshotsPerDay, "manual snapshots per serverless cache in any 24 hours")
	advertiseHost := fs.String("advertise-host", "127.0.0.1", "address engine nodes bind and endpoints name")
	nodePorts := fs.String("node-ports", fmt.Sprintf("%d-%d", service.DefaultNodePorts.First, service.DefaultNodePorts.Last), "port range for engine nodes")
	reconcileInterval := fs.Duration("reconcile-interval", time.Second, "how often node health is checked even when nothing changes")
	bins := engine.DefaultBinaries
	fs.StringVar(&bins.Redis, "redis-server", bins.Redis, "redis-server binary (name on PATH or path)")
	fs.StringVar(&bins.Valkey, "valkey-server", bins.Valkey, "valkey-server binary (name on PATH or path)")
	fs.StringVar(&bins.Memcached, "memcached", bins.Memcached, "memcached binary (name on PATH or path)")
	_ = fs.Parse(args)

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := newLogger(*logFormat, level)
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	creds, err := loadCredentials(*dataDir, os.Stdout)
	if err != nil {
		return err
	}
	st, err := store.Open(filepath.Join(*dataDir, "hoard.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	engines, err := detectEngines(ctx, bins, log)
	if err != nil {
		return err
	}
	ports, err := service.ParsePortRange(*nodePorts)
	if err != nil {
		return err
	}
	drivers, err := engineDrivers(engines)
	if err != nil {
		return err
	}
	buckets, err := bucketStorage(*s3Endpoint, *region, *dataDir)
	if err != nil {
		return err
	}
	ring, err := keyring.Open(keyringPath(*dataDir))
	if err != nil {
		return err
	}
	svc := service.New(st, service.Config{Engines: engines, Quotas: quotas, Drivers: drivers, DataDir: *dataDir,
		AdvertiseHost: *advertiseHost, NodePorts: ports, ReconcileInterval: *reconcileInterval, Log: log,
		Buckets: buckets, BucketMessage: blob.Message, Keys: serviceKeys{ring}})
	if err := svc.SweepOrphanFiles(); err != nil {
		return err
	}
	reconcilerDone := make(chan struct{})
	go func() {
		defer close(reconcilerDone)
		svc.Run(ctx)
	}()
	srv := &http.Server{
		Handler:           api.New(svc, creds, log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("hoard serving", "listen", ln.Addr().String(), "data_dir", *dataDir, "region", *region,
		"s3_endpoint", *s3Endpoint, "engines", len(engines))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-reconcilerDone
	log.Info("stopped; engine nodes keep running and are re-adopted at the next start")
	return nil
}

func newLogger(format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// detectEngines finds the engines installed here and maps them to their families.
func detectEngines(ctx context.Context, bins engine.Binaries, log *slog.Logger) ([]service.EngineVersion, error) {
	installed, err := engine.Detect(ctx, bins)
	if err != nil {
		return nil, err
	}
	var versions []service.EngineVersion
	for _, in := range installed {
		family, ok := catalog.FamilyFor(in.Engine, in.Version)
		if !ok {
			log.Warn("engine version has no ElastiCache parameter-group family; not offered", "engine", in.Engine, "version", in.Version, "binary", in.Binary)
			continue
		}
		log.Info("engine found", "engine", in.Engine, "version", in.Version, "family", family, "binary", in.Binary)
		versions = append(versions, service.EngineVersion{Engine: in.Engine, Version: in.Version, Family: family, Binary: in.Binary})
	}
	if len(versions) == 0 {
		log.Warn("no cache engine found; install redis-server or memcached (make run does)")
	}
	return versions, nil
}

// engineDrivers returns a driver for each engine installed here.
func engineDrivers(engines []service.EngineVersion) (map[string]engine.Driver, error) {
	drivers := map[string]engine.Driver{}
	for _, ev := range engines {
		if _, ok := drivers[ev.Engine]; ok {
			continue
		}
		d, err := engine.NewDriver(ev.Engine)
		if err != nil {
			return nil, err
		}
		drivers[ev.Engine] = d
	}
	return drivers, nil
}

// bucketStorage is the S3-compatible endpoint when one is given, else bucket
// directories under <data-dir>/s3/.
func bucketStorage(endpoint, region, dataDir string) (service.Buckets, error) {
	if endpoint == "" {
		root := filepath.Join(dataDir, "s3")
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, err
		}
		return callerRegionBuckets{blob.NewLocal(root)}, nil
	}
	id, secret := os.Getenv("HOARD_S3_ACCESS_KEY_ID"), os.Getenv("HOARD_S3_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		return nil, errors.New("--s3-endpoint needs HOARD_S3_ACCESS_KEY_ID and HOARD_S3_SECRET_ACCESS_KEY")
	}
	st, err := blob.NewS3(blob.S3Config{Endpoint: endpoint, Region: region, AccessKeyID: id, SecretAccessKey: secret})
	if err != nil {
		return nil, err
	}
	return callerRegionBuckets{st}, nil
}

// callerRegionBuckets checks buckets against the region of the request: a snapshot
// exports only to a bucket in its own region, as on ElastiCache.
type callerRegionBuckets struct{ blob.Storage }

func (b callerRegionBuckets) Export(ctx context.Context, path, bucket, key string) error {
	return b.Storage.Export(blob.WithRegion(ctx, service.CallerOf(ctx).Region), path, bucket, key)
}

func (b callerRegionBuckets) Fetch(ctx context.Context, bucket, key, path string) error {
	return b.Storage.Fetch(blob.WithRegion(ctx, service.CallerOf(ctx).Region), bucket, key, path)
}
