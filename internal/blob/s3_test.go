package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// getObject returns the content of bucket/key, or nil if it is absent.
func getObject(t *testing.T, s *s3Storage, bucket, key string) []byte {
	t.Helper()
	out, err := s.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if status, _, _ := respInfo(err); status == http.StatusNotFound {
			return nil
		}
		t.Fatalf("GetObject %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pendingUploads returns the multipart uploads in progress in bucket.
func pendingUploads(t *testing.T, s *s3Storage, bucket string) int {
	t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	return len(out.Uploads)
}

func putObject(t *testing.T, s *s3Storage, bucket, key string, body []byte) {
	t.Helper()
	_, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
}

func TestS3ExportMultipartAndFetch(t *testing.T) {
	s := newMotoStorage(t, nil)
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	src, data := writeRandom(t, t.TempDir(), 40<<20+12345) // 3 parts of 16 MiB
	ctx := context.Background()
	var parts atomic.Int32
	s.onPart = func(int32) { parts.Add(1) }
	if err := s.Export(ctx, src, bucket, "exports/my-backup-0001.rdb"); err != nil {
		t.Fatal(err)
	}
	if parts.Load() != 3 {
		t.Errorf("uploaded %d parts, want 3", parts.Load())
	}
	if got := getObject(t, s, bucket, "exports/my-backup-0001.rdb"); !bytes.Equal(got, data) {
		t.Fatalf("object differs from the file (%d bytes vs %d)", len(got), len(data))
	}
	if n := pendingUploads(t, s, bucket); n != 0 {
		t.Fatalf("%d multipart uploads left", n)
	}

	// Fetch it back, byte for byte, with no temporary file left.
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.rdb")
	if err := s.Fetch(ctx, bucket, "exports/my-backup-0001.rdb", p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched file differs: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("destination has %d entries", len(ents))
	}
}

func TestS3ExportSmall(t *testing.T) {
	s := newMotoStorage(t, nil)
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	src, data := writeRandom(t, t.TempDir(), 100<<10)
	if err := s.Export(context.Background(), src, bucket, "small-0001.rdb"); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, s, bucket, "small-0001.rdb"); !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
	// An empty file exports as an empty object.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	if err := s.Export(context.Background(), empty, bucket, "empty-0001.rdb"); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, s, bucket, "empty-0001.rdb"); got == nil || len(got) != 0 {
		t.Fatalf("empty object: %v", got)
	}
}

func TestS3ExportKeyExists(t *testing.T) {
	s := newMotoStorage(t, nil)
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	original := []byte("the original object")
	putObject(t, s, bucket, "snap-0001.rdb", original)
	for _, size := range []int{1 << 10, 20 << 20} {
		src, _ := writeRandom(t, t.TempDir(), size)
		err := s.Export(context.Background(), src, bucket, "snap-0001.rdb")
		if !errors.Is(err, ErrKeyExists) {
			t.Fatalf("size %d: err = %v, want ErrKeyExists", size, err)
		}
		if want := "The S3 bucket " + bucket + " already contains an object with key snap-0001.rdb."; Message(err) != want {
			t.Errorf("Message = %q", Message(err))
		}
		if got := getObject(t, s, bucket, "snap-0001.rdb"); !bytes.Equal(got, original) {
			t.Fatal("existing object changed")
		}
	}
	if n := pendingUploads(t, s, bucket); n != 0 {
		t.Fatalf("%d multipart uploads left", n)
	}
}

// The key appears after the existence check but before the upload completes:
// the conditional write (If-None-Match: *) refuses to overwrite it.
func TestS3ExportConditionalWriteRace(t *testing.T) {
	s := newMotoStorage(t, nil)
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	rival := []byte("written by someone else meanwhile")
	for _, size := range []int{1 << 10, 20 << 20} {
		key := "race-" + strings.Repeat("x", size%7) + "-0001.rdb"
		s.beforeFinal = func() { putObject(t, s, bucket, key, rival) }
		src, _ := writeRandom(t, t.TempDir(), size)
		err := s.Export(context.Background(), src, bucket, key)
		if !errors.Is(err, ErrKeyExists) {
			t.Fatalf("size %d: err = %v, want ErrKeyExists", size, err)
		}
		if got := getObject(t, s, bucket, key); !bytes.Equal(got, rival) {
			t.Fatalf("size %d: the rival object was overwritten", size)
		}
	}
	s.beforeFinal = nil
	if n := pendingUploads(t, s, bucket); n != 0 {
		t.Fatalf("%d multipart uploads left", n)
	}
}

func TestS3ExportMissingBucket(t *testing.T) {
	s := newMotoStorage(t, nil)
	src, _ := writeRandom(t, t.TempDir(), 1<<10)
	err := s.Export(context.Background(), src, "no-such-bucket-hoard", "k-0001.rdb")
	if !errors.Is(err, ErrBucketNotFound) {
		t.Fatalf("err = %v, want ErrBucketNotFound", err)
	}
	if Message(err) != "The S3 bucket no-such-bucket-hoard does not exist." {
		t.Errorf("Message = %q", Message(err))
	}
	if err := s.Export(context.Background(), src, "Not_A_Bucket", "k"); !errors.Is(err, ErrInvalidBucketName) {
		t.Fatalf("err = %v, want ErrInvalidBucketName", err)
	}
}

func TestS3ExportWrongRegion(t *testing.T) {
	s := newMotoStorage(t, nil)
	bucket := bucketName(t)
	createBucket(t, s, bucket, "eu-west-1")
	src, data := writeRandom(t, t.TempDir(), 1<<10)
	err := s.Export(context.Background(), src, bucket, "k-0001.rdb")
	if !errors.Is(err, ErrBucketWrongRegion) {
		t.Fatalf("err = %v, want ErrBucketWrongRegion", err)
	}
	if Message(err) != "The S3 bucket "+bucket+" is outside of the region." {
		t.Errorf("Message = %q", Message(err))
	}
	// A snapshot of eu-west-1 may go there.
	if err := s.Export(WithRegion(context.Background(), "eu-west-1"), src, bucket, "k-0001.rdb"); err != nil {
		t.Fatal(err)
	}
	if got := getObject(t, s, bucket, "k-0001.rdb"); !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
}

func TestS3FetchMissing(t *testing.T) {
	s := newMotoStorage(t, nil)
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.rdb")
	err := s.Fetch(context.Background(), bucket, "no/such/key.rdb", p)
	if !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("err = %v, want ErrNoSuchKey", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Bucket != bucket || e.Key != "no/such/key.rdb" {
		t.Fatalf("error does not name the bucket and key: %#v", e)
	}
	if err := s.Fetch(context.Background(), "no-such-bucket-hoard", "k.rdb", p); !errors.Is(err, ErrBucketNotFound) {
		t.Fatalf("err = %v, want ErrBucketNotFound", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a failed fetch left a file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

// An export cancelled after its first part leaves neither an object nor a
// pending multipart upload.
func TestS3ExportCancelledMidway(t *testing.T) {
	s := newMotoStorage(t, nil)
	s.partSize = minPartSize
	s.concurrency = 2
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	src, _ := writeRandom(t, t.TempDir(), 40<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	var done atomic.Int32
	s.onPart = func(int32) { done.Add(1); once.Do(cancel) }
	err := s.Export(ctx, src, bucket, "cancelled-0001.rdb")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := done.Load(); n >= 8 {
		t.Fatalf("all %d parts were uploaded despite the cancel", n)
	}
	if got := getObject(t, s, bucket, "cancelled-0001.rdb"); got != nil {
		t.Fatal("a cancelled export left an object")
	}
	if n := pendingUploads(t, s, bucket); n != 0 {
		t.Fatalf("%d multipart uploads left", n)
	}
}

// interceptor answers the requests that fn answers and passes the rest on.
type interceptor struct {
	fn func(r *http.Request) (*http.Response, error) // nil, nil: pass on
}

func (ic *interceptor) Do(r *http.Request) (*http.Response, error) {
	if resp, err := ic.fn(r); resp != nil || err != nil {
		return resp, err
	}
	return http.DefaultTransport.RoundTrip(r)
}

func s3Error(r *http.Request, status int, code string) *http.Response {
	body := "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" + code + "</Message><RequestId>1</RequestId></Error>"
	if r.Method == http.MethodHead {
		body = ""
	}
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/xml"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}

// op names the S3 operation of a path-style request.
func op(r *http.Request) string {
	q := r.URL.Query()
	path := strings.Trim(r.URL.Path, "/")
	switch {
	case path == "":
		return "ListBuckets"
	case q.Has("acl"):
		return "GetBucketAcl"
	case q.Has("partNumber"):
		return "UploadPart"
	case q.Has("uploads") && r.Method == http.MethodPost:
		return "CreateMultipartUpload"
	case q.Has("uploadId") && r.Method == http.MethodPost:
		return "CompleteMultipartUpload"
	case q.Has("uploadId") && r.Method == http.MethodDelete:
		return "AbortMultipartUpload"
	case !strings.Contains(path, "/"):
		return r.Method + "Bucket"
	}
	return r.Method + "Object"
}

// Permission failures at each step map to the documented messages, and leave
// nothing behind.
func TestS3ExportPermissionErrors(t *testing.T) {
	cases := []struct {
		op     string
		status int
		code   string
		want   error
		size   int
	}{
		{"HEADBucket", 403, "AccessDenied", ErrNoRead, 1 << 10},
		{"HEADBucket", 301, "PermanentRedirect", ErrBucketWrongRegion, 1 << 10},
		{"ListBuckets", 403, "AccessDenied", ErrAccessDenied, 1 << 10},
		{"GetBucketAcl", 403, "AccessDenied", ErrNoReadACP, 1 << 10},
		{"HEADObject", 403, "AccessDenied", ErrNoRead, 1 << 10},
		{"PUTObject", 403, "AccessDenied", ErrNoWrite, 1 << 10},
		{"CreateMultipartUpload", 403, "AccessDenied", ErrNoWrite, 20 << 20},
		{"UploadPart", 403, "AccessDenied", ErrNoWrite, 20 << 20},
		{"CompleteMultipartUpload", 403, "AccessDenied", ErrNoWrite, 20 << 20},
	}
	for _, c := range cases {
		t.Run(c.op+"-"+c.code, func(t *testing.T) {
			s := newMotoStorage(t, &interceptor{fn: func(r *http.Request) (*http.Response, error) {
				if op(r) == c.op {
					return s3Error(r, c.status, c.code), nil
				}
				return nil, nil
			}})
			bucket := bucketName(t)
			createBucket(t, s, bucket, "")
			src, _ := writeRandom(t, t.TempDir(), c.size)
			err := s.Export(context.Background(), src, bucket, "perm-0001.rdb")
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if Message(err) == "" {
				t.Errorf("no message for %v", err)
			}
			if got := getObject(t, s, bucket, "perm-0001.rdb"); got != nil {
				t.Fatal("object left behind")
			}
			if n := pendingUploads(t, s, bucket); n != 0 {
				t.Fatalf("%d multipart uploads left", n)
			}
		})
	}

	t.Run("not-owned", func(t *testing.T) {
		s := newMotoStorage(t, &interceptor{fn: func(r *http.Request) (*http.Response, error) {
			if op(r) == "ListBuckets" {
				body := `<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Owner><ID>x</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>`
				return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
					Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
					ContentLength: int64(len(body)), Request: r}, nil
			}
			return nil, nil
		}})
		bucket := bucketName(t)
		createBucket(t, s, bucket, "")
		src, _ := writeRandom(t, t.TempDir(), 1<<10)
		err := s.Export(context.Background(), src, bucket, "k")
		if !errors.Is(err, ErrBucketNotOwned) {
			t.Fatalf("err = %v, want ErrBucketNotOwned", err)
		}
		if Message(err) != "The S3 bucket "+bucket+" is not owned by the authenticated user." {
			t.Errorf("Message = %q", Message(err))
		}
	})

	t.Run("fetch-denied", func(t *testing.T) {
		s := newMotoStorage(t, &interceptor{fn: func(r *http.Request) (*http.Response, error) {
			if op(r) == "GETObject" {
				return s3Error(r, 403, "AccessDenied"), nil
			}
			return nil, nil
		}})
		bucket := bucketName(t)
		createBucket(t, s, bucket, "")
		putObject(t, s, bucket, "k.rdb", []byte("x"))
		if err := s.Fetch(context.Background(), bucket, "k.rdb", filepath.Join(t.TempDir(), "f")); !errors.Is(err, ErrNoRead) {
			t.Fatalf("err = %v, want ErrNoRead", err)
		}
	})
}

// The server carries out the final request but its response is lost: the
// export is complete (the object there carries this export's id), so Export
// reports success rather than a failure that would contradict the bucket.
func TestS3ExportFinalResponseLost(t *testing.T) {
	for _, tc := range []struct {
		name, op string
		size     int
	}{{"single", "PUTObject", 1 << 10}, {"multipart", "CompleteMultipartUpload", 20 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			s := newMotoStorage(t, &interceptor{fn: func(r *http.Request) (*http.Response, error) {
				if op(r) != tc.op {
					return nil, nil
				}
				if calls.Add(1) == 1 {
					// Carried out, but the answer never arrives.
					if resp, err := http.DefaultTransport.RoundTrip(r); err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					return nil, errors.New("connection reset by peer (injected)")
				}
				return nil, nil // the SDK's retry: If-None-Match now fails, or the upload is gone
			}})
			bucket := bucketName(t)
			createBucket(t, s, bucket, "")
			src, data := writeRandom(t, t.TempDir(), tc.size)
			if err := s.Export(context.Background(), src, bucket, "lost-0001.rdb"); err != nil {
				t.Fatalf("err = %v, want success", err)
			}
			if got := getObject(t, s, bucket, "lost-0001.rdb"); !bytes.Equal(got, data) {
				t.Fatal("object differs")
			}
			if n := pendingUploads(t, s, bucket); n != 0 {
				t.Fatalf("%d multipart uploads left", n)
			}
		})
	}
}

func TestNewS3Config(t *testing.T) {
	for _, ep := range []string{"", "127.0.0.1:9000", "ftp://x", "http://"} {
		if _, err := NewS3(S3Config{Endpoint: ep}); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
	if _, err := NewS3(S3Config{Endpoint: "http://127.0.0.1:9000", AccessKeyID: "x"}); err == nil {
		t.Error("access key without secret accepted")
	}
	st, err := NewS3(S3Config{Endpoint: "http://127.0.0.1:9000/"})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.(*s3Storage); s.region != "us-east-1" {
		t.Errorf("default region %q", s.region)
	}
}

// Over https the body goes unsigned (TLS protects it); the export is intact.
func TestS3ExportOverTLS(t *testing.T) {
	target, err := url.Parse(motoEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	hashes := map[string]bool{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			hashes[r.Header.Get("X-Amz-Content-Sha256")] = true
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, err := newS3(S3Config{Endpoint: srv.URL, AccessKeyID: motoKey, SecretAccessKey: motoSecret}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	bucket := bucketName(t)
	createBucket(t, s, bucket, "")
	for _, size := range []int{1 << 10, 20 << 20} {
		src, data := writeRandom(t, t.TempDir(), size)
		key := "tls-" + strconv.Itoa(size) + ".rdb"
		if err := s.Export(context.Background(), src, bucket, key); err != nil {
			t.Fatal(err)
		}
		if got := getObject(t, s, bucket, key); !bytes.Equal(got, data) {
			t.Fatalf("size %d: object differs", size)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hashes) != 1 || !hashes["UNSIGNED-PAYLOAD"] {
		t.Fatalf("payload hashes sent: %v, want only UNSIGNED-PAYLOAD", hashes)
	}
}
