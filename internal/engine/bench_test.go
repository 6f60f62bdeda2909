package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// benchmarkStart measures Start (process start until the node answers) and
// reports the median and the slowest start besides the mean.
func benchmarkStart(b *testing.B, engine string, spec func(testing.TB, map[string]string) Spec, params map[string]string) {
	d := newDriver(b, engine)
	ctx := context.Background()
	// The first start of a binary learns its directives or options; measure
	// the steady state.
	warm := spec(b, params)
	h, err := d.Start(ctx, warm)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Stop(ctx, h); err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := spec(b, params)
		s.Dir = filepath.Join(root, fmt.Sprint(i))
		b.StartTimer()
		t0 := time.Now()
		h, err := d.Start(ctx, s)
		elapsed := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, elapsed)
		if err := d.Stop(ctx, h); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
}

func BenchmarkStartRedis(b *testing.B) {
	benchmarkStart(b, "redis", redisSpec, familyParams(b, "redis7", "cache.t3.micro"))
}

func BenchmarkStartMemcached(b *testing.B) {
	benchmarkStart(b, "memcached", memcachedSpec, familyParams(b, "memcached1.6", "cache.t3.micro"))
}
