package main

// The clusters scenario: how long a cache cluster takes to become available, and
// how hoard copes with a few hundred of them. It talks to hoard with the real
// ElastiCache SDK client and starts real redis-server and memcached processes.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/elasticache"
	"github.com/aws/smithy-go"
)

var (
	samples = flag.Int("samples", 20, "clusters: create-to-available samples per engine, one at a time")
	scaleN  = flag.Int("clusters", 200, "clusters: single-node clusters in the scale phase, half redis and half memcached")
)

// clusterServeFlags are the hoard flags of the clusters scenario: room for every
// node, and the default 1s health check interval spelt out.
var clusterServeFlags = []string{"--quota-nodes-per-region", "1000", "--reconcile-interval", "1s"}

const (
	nodeType      = "cache.t3.micro"
	latencyPoll   = 5 * time.Millisecond  // DescribeCacheClusters of one cluster, latency phase
	scalePoll     = 50 * time.Millisecond // full listing, scale phase
	describePass  = 10                    // full listings measured in the scale phase, per variant
	latencyBudget = time.Minute           // one cluster to become available or gone
	idleWindow    = 3 * time.Second       // CPU measured with every node up and no requests
	scaleBudget   = 10 * time.Minute      // all clusters to become available or gone
)

var engines = []string{"redis", "memcached"}

func runClusters(ctx context.Context, endpoint string, hoardPID int, tmp string) error {
	c := newSDKClient(endpoint, *workers)
	var problems []string
	fmt.Printf("\n== clusters: create -> available, one cluster at a time (%s, 1 node, polled every %s)\n", nodeType, latencyPoll)
	for _, eng := range engines {
		if err := latencyRun(ctx, c, eng, *samples); err != nil {
			return fmt.Errorf("latency %s: %w", eng, err)
		}
	}
	if err := scaleRun(ctx, c, hoardPID, tmp, &problems); err != nil {
		return fmt.Errorf("scale: %w", err)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// newSDKClient is an ElastiCache client for hoard with the bench keys. Nothing is
// retried, so every failure shows.
func newSDKClient(endpoint string, conns int) *elasticache.Client {
	return newSDKClientTimeout(endpoint, conns, 30*time.Second)
}

// newSDKClientTimeout is newSDKClient with another limit on each request.
func newSDKClientTimeout(endpoint string, conns int, timeout time.Duration) *elasticache.Client {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return elasticache.New(elasticache.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		HTTPClient:   &http.Client{Timeout: timeout, Transport: plainBodyTransport{tr}},
		Retryer:      aws.NopRetryer{},
	})
}

// plainBodyTransport is the e2e harness's workaround for aws/aws-sdk-go-v2#2737:
// the SDK closes a request body as soon as response headers arrive, and when that
// body is an io.WriterTo net/http may then close the connection under a 200 still
// being read. Passing the body as a plain reader avoids the race without changing
// a byte on the wire.
type plainBodyTransport struct{ rt http.RoundTripper }

type plainBody struct{ io.ReadCloser }

func (t plainBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = plainBody{r.Body}
	}
	return t.rt.RoundTrip(r)
}

func createInput(id, eng string) *elasticache.CreateCacheClusterInput {
	return &elasticache.CreateCacheClusterInput{CacheClusterId: aws.String(id), Engine: aws.String(eng),
		CacheNodeType: aws.String(nodeType), NumCacheNodes: aws.Int32(1)}
}

// status is a cluster's CacheClusterStatus, or "" once hoard no longer knows it.
func status(ctx context.Context, c *elasticache.Client, id string) (string, error) {
	out, err := c.DescribeCacheClusters(ctx, &elasticache.DescribeCacheClustersInput{CacheClusterId: aws.String(id)})
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae) && ae.ErrorCode() == "CacheClusterNotFound":
		return "", nil
	case err != nil:
		return "", err
	case len(out.CacheClusters) != 1:
		return "", fmt.Errorf("describe %s returned %d clusters", id, len(out.CacheClusters))
	}
	return aws.ToString(out.CacheClusters[0].CacheClusterStatus), nil
}

// await polls one cluster every latencyPoll until its status is want ("" = gone)
// and returns the time the reply that showed it arrived.
func await(ctx context.Context, c *elasticache.Client, id, want string) (time.Time, error) {
	return awaitPoll(ctx, c, id, want, latencyPoll, latencyBudget)
}

// awaitPoll is await with its own poll interval and time budget.
func awaitPoll(ctx context.Context, c *elasticache.Client, id, want string, every, budget time.Duration) (time.Time, error) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.Now().Add(budget)
	last := ""
	for {
		st, err := status(ctx, c, id)
		now := time.Now()
		if err != nil {
			return now, fmt.Errorf("describe %s: %w", id, err)
		}
		if st == want {
			return now, nil
		}
		if st == "failed" || st == "create-failed" || (st == "" && want != "") {
			return now, fmt.Errorf("%s is %q while waiting for %q", id, st, want)
		}
		last = st
		if now.After(deadline) {
			return now, fmt.Errorf("%s still %q after %s (want %q)", id, last, budget, want)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-tick.C:
		}
	}
}

// latencyRun creates n clusters of one engine one after the other, measures each
// from the CreateCacheCluster request to the first "available" reply, then deletes
// it and waits until it is gone before the next.
func latencyRun(ctx context.Context, c *elasticache.Client, eng string, n int) error {
	var avail, calls, gone []time.Duration
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("lat-%s-%02d", eng, i)
		t0 := time.Now()
		if _, err := c.CreateCacheCluster(ctx, createInput(id, eng)); err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		calls = append(calls, time.Since(t0))
		at, err := await(ctx, c, id, "available")
		if err != nil {
			return err
		}
		avail = append(avail, at.Sub(t0))
		t1 := time.Now()
		if _, err := c.DeleteCacheCluster(ctx, &elasticache.DeleteCacheClusterInput{CacheClusterId: aws.String(id)}); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
		if at, err = await(ctx, c, id, ""); err != nil {
			return err
		}
		gone = append(gone, at.Sub(t1))
	}
	inOrder := make([]string, len(avail))
	for i, d := range avail {
		inOrder[i] = fmt.Sprintf("%.0f", msf(d))
	}
	fmt.Printf("%-9s create->available %s\n", eng, dist(avail))
	fmt.Printf("%-9s CreateCacheCluster call %s\n", "", dist(calls))
	fmt.Printf("%-9s delete->gone %s\n", "", dist(gone))
	fmt.Printf("%-9s create->available in order, ms: %s\n", "", strings.Join(inOrder, " "))
	return nil
}

// dist is "n=N median X p90 Y max Z" of durations (nearest rank), in milliseconds.
func dist(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("n=%d  median %s  p90 %s  max %s", len(s), ms(pct(s, 50)), ms(pct(s, 90)), ms(s[len(s)-1]))
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2fms", msf(d))
	}
	return fmt.Sprintf("%.1fms", msf(d))
}
