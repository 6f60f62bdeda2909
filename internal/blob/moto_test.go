package blob

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// The S3 tests run against a real S3 server, moto_server, started once for the
// package on a free loopback port and stopped by TestMain.

const (
	motoKey    = "AKIDHOARDTEST"
	motoSecret = "hoard-test-secret"
)

var moto struct {
	once     sync.Once
	cmd      *exec.Cmd
	endpoint string
	err      error // why the S3 tests skip
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopMoto()
	os.Exit(code)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMoto() {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		moto.err = fmt.Errorf("moto_server is not on PATH (pip install 'moto[server]' to run the S3 tests)")
		return
	}
	port, err := freePort()
	if err != nil {
		moto.err = err
		return
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	// Its own process group, so that stopMoto ends the server and whatever
	// wrapper (a pyenv shim) started it; killed with the test binary too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logf, err := os.CreateTemp("", "moto-*.log")
	if err == nil {
		cmd.Stdout, cmd.Stderr = logf, logf
		defer logf.Close()
	}
	if err := cmd.Start(); err != nil {
		moto.err = fmt.Errorf("start moto_server: %w", err)
		return
	}
	moto.cmd = cmd
	moto.endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(moto.endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if logf != nil {
				os.Remove(logf.Name())
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	moto.err = fmt.Errorf("moto_server did not answer on %s within 60s (log: %s)", moto.endpoint, logf.Name())
	stopMoto()
}

func stopMoto() {
	if moto.cmd == nil || moto.cmd.Process == nil {
		return
	}
	pid := moto.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = moto.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
	moto.cmd = nil
}

// motoEndpoint returns the endpoint of the package's moto_server, starting it
// on first use, or skips the test.
func motoEndpoint(t testing.TB) string {
	t.Helper()
	moto.once.Do(startMoto)
	if moto.err != nil {
		t.Skipf("S3 tests skipped: %v", moto.err)
	}
	return moto.endpoint
}

// newMotoStorage returns S3 storage toward moto, with httpClient (nil: the
// default) carrying its requests.
func newMotoStorage(t testing.TB, httpClient aws.HTTPClient) *s3Storage {
	t.Helper()
	s, err := newS3(S3Config{Endpoint: motoEndpoint(t), Region: "us-east-1", AccessKeyID: motoKey, SecretAccessKey: motoSecret}, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bucketName makes a bucket name of the test's own.
func bucketName(t testing.TB) string {
	n := strings.ToLower(t.Name())
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n)
	n = strings.Trim(n, "-")
	if len(n) > 50 {
		n = n[:50]
	}
	return fmt.Sprintf("%s-%d", strings.Trim(n, "-"), time.Now().UnixNano()%1e9)
}

// createBucket makes a bucket in region (us-east-1 when "").
func createBucket(t testing.TB, s *s3Storage, name, region string) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	if _, err := s.client.CreateBucket(context.Background(), in); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}
