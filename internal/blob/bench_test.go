package blob

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// BenchmarkExport exports a 256 MB file to moto_server with hoard's S3 storage
// and, for comparison, with `aws s3 cp` to the same server, and prints both
// rates. Run it alone, without the race detector:
//
//	go test -run '^$' -bench BenchmarkExport -benchtime 3x ./internal/blob/
func BenchmarkExport(b *testing.B) {
	const size = 256 << 20
	s := newMotoStorage(b, nil)
	bucket := bucketName(b)
	createBucket(b, s, bucket, "")
	dir := b.TempDir()
	src, _ := writeRandom(b, dir, size)
	ctx := context.Background()
	del := func(key string) {
		_, _ = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	}

	rates := map[string]float64{}
	measure := func(name string, b *testing.B, run func(key string) error) {
		b.SetBytes(size)
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			key := fmt.Sprintf("%s-%d.rdb", name, i)
			start := time.Now()
			if err := run(key); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(start)
			b.StopTimer()
			del(key)
			b.StartTimer()
		}
		rates[name] = float64(size) * float64(b.N) / elapsed.Seconds() / 1e6
	}

	b.Run("hoard", func(b *testing.B) {
		b.ReportAllocs() // B/op shows that the file is streamed, not loaded
		measure("hoard", b, func(key string) error { return s.Export(ctx, src, bucket, key) })
	})

	aws := "/root/.pyenv/shims/aws"
	if p, err := exec.LookPath("aws"); err == nil {
		aws = p
	}
	b.Run("aws-s3-cp", func(b *testing.B) {
		if _, err := os.Stat(aws); err != nil {
			b.Skip("aws CLI not found")
		}
		env := append(os.Environ(),
			"AWS_ACCESS_KEY_ID="+motoKey, "AWS_SECRET_ACCESS_KEY="+motoSecret, "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"),
			"AWS_PAGER=")
		measure("aws-s3-cp", b, func(key string) error {
			cmd := exec.Command(aws, "s3", "cp", "--only-show-errors", "--endpoint-url", moto.endpoint, src, "s3://"+bucket+"/"+key)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("aws s3 cp: %v: %s", err, out)
			}
			return nil
		})
	})

	line := "BenchmarkExport, 256 MB to moto_server:"
	for _, name := range []string{"hoard", "aws-s3-cp"} {
		if r, ok := rates[name]; ok {
			line += fmt.Sprintf(" %s %.1f MB/s;", name, r)
		}
	}
	fmt.Println(line)
}
