package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// recorder passes every request on to moto (rewriting its host to moto's, so
// that the storage may be configured with another endpoint) and keeps the
// headers, and the body of the small ones, by operation. refuse, if set,
// answers a request instead.
type recorder struct {
	moto   *url.URL
	refuse func(r *http.Request) *http.Response

	mu   sync.Mutex
	reqs map[string][]recorded
}

type recorded struct {
	query  url.Values
	header http.Header
	body   []byte // only for requests other than UploadPart
}

func newRecorder(t *testing.T) *recorder {
	u, err := url.Parse(motoEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{moto: u, reqs: map[string][]recorded{}}
}

func (rc *recorder) Do(r *http.Request) (*http.Response, error) {
	rec := recorded{query: r.URL.Query(), header: r.Header.Clone()}
	o := op(r)
	if o != "UploadPart" && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b))
		rec.body = b
	}
	rc.mu.Lock()
	rc.reqs[o] = append(rc.reqs[o], rec)
	rc.mu.Unlock()
	if rc.refuse != nil {
		if resp := rc.refuse(r); resp != nil {
			return resp, nil
		}
	}
	r.URL.Scheme, r.URL.Host, r.Host = rc.moto.Scheme, rc.moto.Host, ""
	return http.DefaultTransport.RoundTrip(r)
}

func (rc *recorder) get(o string) []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs[o]
}

// storageVia returns S3 storage whose endpoint is endpoint but whose requests
// all reach moto through rc.
func storageVia(t *testing.T, endpoint string, rc *recorder) *s3Storage {
	t.Helper()
	s, err := newS3(S3Config{Endpoint: endpoint, Region: "us-east-1", AccessKeyID: motoKey, SecretAccessKey: motoSecret}, rc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// partOf returns part n (from 1) of data cut in parts of size.
func partOf(data []byte, n int, size int64) []byte {
	off := int64(n-1) * size
	return data[off:min(off+size, int64(len(data)))]
}

// Every part carries its CRC-32C, declared at CreateMultipartUpload and listed
// again in CompleteMultipartUpload. To a loopback endpoint over plain http the
// parts go unsigned (the CRC is the integrity check); to any other http
// endpoint they stay signed with their SHA-256.
func TestS3ExportPartChecksums(t *testing.T) {
	for _, tc := range []struct {
		name, endpoint string
		signed         bool
	}{
		{"loopback", "", false},
		{"localhost", "http://localhost:1", false},
		{"network", "http://s3.hoard.test:9000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newRecorder(t)
			ep := tc.endpoint
			if ep == "" {
				ep = rc.moto.String()
			}
			s := storageVia(t, ep, rc)
			s.partSize = minPartSize
			bucket := bucketName(t)
			createBucket(t, s, bucket, "")
			src, data := writeRandom(t, t.TempDir(), 3*minPartSize+777)
			if err := s.Export(context.Background(), src, bucket, "sums-0001.rdb"); err != nil {
				t.Fatal(err)
			}
			if got := getObject(t, s, bucket, "sums-0001.rdb"); !bytes.Equal(got, data) {
				t.Fatal("object differs from the file")
			}

			if c := rc.get("CreateMultipartUpload"); len(c) != 1 || c[0].header.Get("X-Amz-Checksum-Algorithm") != "CRC32C" {
				t.Fatalf("CreateMultipartUpload does not declare CRC32C: %v", c)
			}
			parts := rc.get("UploadPart")
			if len(parts) != 4 {
				t.Fatalf("%d UploadPart requests, want 4", len(parts))
			}
			sums := map[string]bool{}
			for _, p := range parts {
				n, err := strconv.Atoi(p.query.Get("partNumber"))
				if err != nil {
					t.Fatal(err)
				}
				body := partOf(data, n, s.partSize)
				want, _ := crc32cOf(bytes.NewReader(body), make([]byte, 4096))
				if got := p.header.Get("X-Amz-Checksum-Crc32c"); got != want {
					t.Errorf("part %d: x-amz-checksum-crc32c %q, want %q", n, got, want)
				}
				sums[want] = true
				hash := p.header.Get("X-Amz-Content-Sha256")
				sha := sha256.Sum256(body)
				switch {
				case tc.signed && hash != hex.EncodeToString(sha[:]):
					t.Errorf("part %d: payload hash %q, want the part's SHA-256", n, hash)
				case !tc.signed && hash != "UNSIGNED-PAYLOAD":
					t.Errorf("part %d: payload hash %q, want UNSIGNED-PAYLOAD", n, hash)
				}
			}
			// The other requests are signed as before.
			if h := rc.get("CreateMultipartUpload")[0].header.Get("X-Amz-Content-Sha256"); h == "UNSIGNED-PAYLOAD" {
				t.Error("CreateMultipartUpload went unsigned")
			}
			done := rc.get("CompleteMultipartUpload")
			if len(done) != 1 {
				t.Fatalf("%d CompleteMultipartUpload requests", len(done))
			}
			for sum := range sums {
				if !strings.Contains(string(done[0].body), "<ChecksumCRC32C>"+sum+"</ChecksumCRC32C>") {
					t.Errorf("CompleteMultipartUpload does not list checksum %s: %s", sum, done[0].body)
				}
			}
		})
	}
}

// A server that refuses the checksum declaration gets the upload without
// checksums, its parts signed, and the export succeeds.
func TestS3ExportChecksumRefused(t *testing.T) {
	for _, code := range []string{"InvalidArgument", "NotImplemented"} {
		t.Run(code, func(t *testing.T) {
			rc := newRecorder(t)
			rc.refuse = func(r *http.Request) *http.Response {
				if op(r) == "CreateMultipartUpload" && r.Header.Get("X-Amz-Checksum-Algorithm") != "" {
					status := http.StatusBadRequest
					if code == "NotImplemented" {
						status = http.StatusNotImplemented
					}
					return s3Error(r, status, code)
				}
				return nil
			}
			s := storageVia(t, rc.moto.String(), rc)
			s.partSize = minPartSize
			bucket := bucketName(t)
			createBucket(t, s, bucket, "")
			src, data := writeRandom(t, t.TempDir(), minPartSize+1)
			if err := s.Export(context.Background(), src, bucket, "plain-0001.rdb"); err != nil {
				t.Fatal(err)
			}
			if got := getObject(t, s, bucket, "plain-0001.rdb"); !bytes.Equal(got, data) {
				t.Fatal("object differs from the file")
			}
			if n := len(rc.get("CreateMultipartUpload")); n != 2 {
				t.Errorf("%d CreateMultipartUpload requests, want 2", n)
			}
			for _, p := range rc.get("UploadPart") {
				if h := p.header.Get("X-Amz-Checksum-Crc32c"); h != "" {
					t.Errorf("part sent with checksum %q after the server refused them", h)
				}
				// Without its CRC a part keeps its signed SHA-256, even to loopback.
				if h := p.header.Get("X-Amz-Content-Sha256"); h == "UNSIGNED-PAYLOAD" || h == "" {
					t.Errorf("part sent without a checksum and with payload hash %q", h)
				}
			}
			if b := rc.get("CompleteMultipartUpload"); len(b) != 1 || bytes.Contains(b[0].body, []byte("Checksum")) {
				t.Errorf("CompleteMultipartUpload: %v", b)
			}
			if n := pendingUploads(t, s, bucket); n != 0 {
				t.Fatalf("%d multipart uploads left", n)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "localhost": true, "LocalHost": true,
		"10.0.0.1": false, "::": false, "0.0.0.0": false, "s3.example.com": false, "localhost.example.com": false, "": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
