package blob

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithymiddleware "github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config says how to reach an S3-compatible endpoint.
type S3Config struct {
	// Endpoint is the endpoint's base URL, e.g. http://127.0.0.1:9000. Buckets
	// are addressed path-style: Endpoint/bucket/key.
	Endpoint string
	// Region signs the requests and is the region a bucket must be in, unless
	// the context names another (WithRegion). Default us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey are the credentials toward the endpoint
	// (hoard reads them from HOARD_S3_ACCESS_KEY_ID / HOARD_S3_SECRET_ACCESS_KEY).
	// With both empty, requests are sent unsigned.
	AccessKeyID, SecretAccessKey string
}

const (
	defaultPartSize    = 16 << 20 // bytes in one part of a multipart upload
	minPartSize        = 5 << 20  // S3's minimum for all parts but the last
	maxParts           = 10000    // S3's maximum number of parts
	defaultConcurrency = 4        // parts in flight at once
	cleanupTimeout     = time.Minute
	finalTimeout       = 10 * time.Minute
	// exportIDMeta is user metadata (x-amz-meta-hoard-export-id) put on every
	// exported object, so that an export whose last request failed ambiguously
	// can tell whether the object there is its own and remove it.
	exportIDMeta = "hoard-export-id"
)

type s3Storage struct {
	client      *s3.Client
	region      string
	partSize    int64
	concurrency int
	// partOptions apply to each UploadPart: over plain http to a loopback
	// endpoint they leave the part's payload unsigned (see newS3).
	partOptions []func(*s3.Options)

	// Test seams, nil in production.
	onPart      func(part int32) // after each part is uploaded
	beforeFinal func()           // before the PutObject / CompleteMultipartUpload
}

// NewS3 returns the Storage that talks to the S3-compatible endpoint of cfg with
// path-style addressing. It makes no request: a wrong endpoint shows at the
// first Export or Fetch.
func NewS3(cfg S3Config) (Storage, error) {
	return newS3(cfg, nil)
}

func newS3(cfg S3Config, httpClient aws.HTTPClient) (*s3Storage, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("blob: S3 endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, errors.New("blob: S3 credentials need both an access key ID and a secret access key")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	if httpClient == nil {
		httpClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = 2 * defaultConcurrency
		})
	}
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	}
	var apiOptions []func(*smithymiddleware.Stack) error
	var partOptions []func(*s3.Options)
	switch {
	case u.Scheme == "https":
		// TLS protects the body: spare the pass over each part that a signed
		// payload (its SHA-256 in the signature) costs.
		apiOptions = append(apiOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	case isLoopback(u.Hostname()):
		// Plain http, but to this host: no network lies between hoard and the
		// server, so there is nothing for the payload's SHA-256 to guard
		// against that each part's CRC-32C (which S3, MinIO and versitygw
		// check) does not catch, and it is most of hoard's CPU time in an
		// export (about 0.8 s per GiB, and as much again on a server that
		// checks it). Only parts that carry their CRC-32C go unsigned; the
		// other requests are small.
		partOptions = append(partOptions, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		})
	default:
		// Plain http across a network: the signed payload also stops anyone on
		// the way from changing the data and fixing up its CRC, so it stays.
	}
	// s3.New rather than config.LoadDefaultConfig: nothing of the host's AWS
	// profile or environment may leak into hoard's S3 client.
	client := s3.New(s3.Options{
		APIOptions:   apiOptions,
		Region:       region,
		BaseEndpoint: aws.String(strings.TrimRight(cfg.Endpoint, "/")),
		UsePathStyle: true,
		Credentials:  creds,
		HTTPClient:   httpClient,
		// Checksums only where an operation requires them: S3-compatible
		// servers vary in their support of the newer flexible checksums.
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	})
	return &s3Storage{client: client, region: region, partSize: defaultPartSize, concurrency: defaultConcurrency,
		partOptions: partOptions}, nil
}

// isLoopback reports whether host (a URL's host name, without port) is this
// machine: localhost or a loopback address. Other names are not resolved.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// respInfo digs the HTTP status, S3 error code and response headers out of an
// SDK error. status is 0 when no response was received.
func respInfo(err error) (status int, code string, hdr http.Header) {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		status = re.Response.StatusCode
		hdr = re.Response.Header
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code, hdr
}

func notImplemented(status int, code string) bool {
	return status == http.StatusNotImplemented || status == http.StatusMethodNotAllowed || code == "NotImplemented"
}

// failed wraps err, the failure of op on bucket/key, as an *Error with sentinel e.
func failed(e error, bucket, key, op string, err error) error {
	return &Error{Err: e, Bucket: bucket, Key: key, Cause: fmt.Errorf("%s: %w", op, err)}
}

// other wraps a failure that has no ElastiCache message of its own.
func other(verb, bucket, key, op string, err error) error {
	return fmt.Errorf("blob: %s %s/%s: %s: %w", verb, bucket, key, op, err)
}

// checkBucket runs ElastiCache's checks of an export target, in the order of its
// documented messages: the bucket exists (HeadBucket), is in the expected region
// (x-amz-bucket-region), is owned by the authenticated user (ListBuckets lists
// only the caller's own buckets), and grants READ (HeadBucket is s3:ListBucket)
// and READ_ACP (GetBucketAcl).
func (s *s3Storage) checkBucket(ctx context.Context, bucket, key, region string) error {
	const verb = "export to"
	hb, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		status, code, hdr := respInfo(err)
		switch {
		case status == http.StatusNotFound || code == "NoSuchBucket":
			return failed(ErrBucketNotFound, bucket, key, "HeadBucket", err)
		case status == http.StatusMovedPermanently,
			status == http.StatusBadRequest && hdr.Get("x-amz-bucket-region") != "" && hdr.Get("x-amz-bucket-region") != region:
			return failed(ErrBucketWrongRegion, bucket, key, "HeadBucket", err)
		case status == http.StatusForbidden:
			return failed(ErrNoRead, bucket, key, "HeadBucket", err)
		}
		return other(verb, bucket, key, "HeadBucket", err)
	}
	if r := aws.ToString(hb.BucketRegion); r != "" && r != region {
		return failed(ErrBucketWrongRegion, bucket, key, "HeadBucket",
			fmt.Errorf("bucket region is %s, expected %s", r, region))
	}

	owned, err := s.ownsBucket(ctx, bucket)
	if err != nil {
		status, code, _ := respInfo(err)
		switch {
		case status == http.StatusForbidden:
			return failed(ErrAccessDenied, bucket, key, "ListBuckets", err)
		case !notImplemented(status, code):
			return other(verb, bucket, key, "ListBuckets", err)
		}
		owned = true // the endpoint cannot list buckets: nothing to check
	}
	if !owned {
		return failed(ErrBucketNotOwned, bucket, key, "ListBuckets",
			errors.New("bucket is not among the authenticated user's buckets"))
	}

	if _, err := s.client.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String(bucket)}); err != nil {
		status, code, _ := respInfo(err)
		switch {
		case status == http.StatusForbidden:
			return failed(ErrNoReadACP, bucket, key, "GetBucketAcl", err)
		case code == "NoSuchBucket":
			return failed(ErrBucketNotFound, bucket, key, "GetBucketAcl", err)
		case !notImplemented(status, code):
			return other(verb, bucket, key, "GetBucketAcl", err)
		}
	}
	return nil
}

// ownsBucket reports whether bucket is among the caller's buckets.
func (s *s3Storage) ownsBucket(ctx context.Context, bucket string) (bool, error) {
	p := s3.NewListBucketsPaginator(s.client, &s3.ListBucketsInput{Prefix: aws.String(bucket)})
	for pages := 0; p.HasMorePages() && pages < 1000; pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			return false, err
		}
		for _, b := range out.Buckets {
			if aws.ToString(b.Name) == bucket {
				return true, nil
			}
		}
	}
	return false, nil
}

// keyExists reports whether bucket/key is there, or the *Error to report.
func (s *s3Storage) keyExists(ctx context.Context, bucket, key string) (bool, error) {
	_, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		return true, nil
	}
	status, code, _ := respInfo(err)
	switch {
	case code == "NoSuchBucket":
		return false, failed(ErrBucketNotFound, bucket, key, "HeadObject", err)
	case status == http.StatusNotFound:
		return false, nil
	case status == http.StatusForbidden:
		return false, failed(ErrNoRead, bucket, key, "HeadObject", err)
	}
	return false, other("export to", bucket, key, "HeadObject", err)
}

// writeFailed maps the failure of a write request (PutObject, the multipart
// calls).
func writeFailed(bucket, key, op string, err error) error {
	status, code, _ := respInfo(err)
	switch {
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed",
		status == http.StatusConflict && code == "ConditionalRequestConflict":
		return failed(ErrKeyExists, bucket, key, op, err)
	case code == "NoSuchBucket":
		return failed(ErrBucketNotFound, bucket, key, op, err)
	case status == http.StatusForbidden:
		return failed(ErrNoWrite, bucket, key, op, err)
	}
	return other("export to", bucket, key, op, err)
}

func (s *s3Storage) Export(ctx context.Context, path, bucket, key string) error {
	if err := checkNames(bucket, key, true); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("blob: export %s to %s/%s: %w", path, bucket, key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("blob: export %s to %s/%s: %w", path, bucket, key, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("blob: export %s to %s/%s: not a regular file", path, bucket, key)
	}
	size := fi.Size()

	if err := s.checkBucket(ctx, bucket, key, regionFrom(ctx, s.region)); err != nil {
		return err
	}
	if exists, err := s.keyExists(ctx, bucket, key); err != nil {
		return err
	} else if exists {
		return &Error{Err: ErrKeyExists, Bucket: bucket, Key: key}
	}

	var idb [16]byte
	_, _ = rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])

	partSize := s.partSize
	if need := (size + maxParts - 1) / maxParts; need > partSize {
		partSize = (need + 1<<20 - 1) &^ (1<<20 - 1) // round up to whole MiB
	}
	if size <= partSize {
		err = s.putSingle(ctx, f, size, bucket, key, id)
	} else {
		err = s.putMultipart(ctx, f, size, partSize, bucket, key, id)
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// putSingle uploads a small file with one conditional PutObject.
func (s *s3Storage) putSingle(ctx context.Context, f *os.File, size int64, bucket, key, id string) error {
	put := func(ctx context.Context, cond bool) error {
		in := &s3.PutObjectInput{
			Bucket:        aws.String(bucket),
			Key:           aws.String(key),
			Body:          io.NewSectionReader(f, 0, size),
			ContentLength: aws.Int64(size),
			ContentType:   aws.String("application/octet-stream"),
			Metadata:      map[string]string{exportIDMeta: id},
		}
		if cond {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := s.client.PutObject(ctx, in)
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, err)
	}
	if s.beforeFinal != nil {
		s.beforeFinal()
	}
	fctx, cancel := finalContext(ctx)
	defer cancel()
	err, decided := s.writeIfAbsent(fctx, bucket, key, put)
	if decided {
		return err
	}
	if err != nil && !s.isOwn(ctx, bucket, key, id) {
		return writeFailed(bucket, key, "PutObject", err)
	}
	return nil
}

// putMultipart uploads parts of partSize straight from the file, concurrency at
// a time, then completes the upload conditionally. On any failure it aborts the
// upload, so that neither an object nor stored parts remain.
func (s *s3Storage) putMultipart(ctx context.Context, f *os.File, size, partSize int64, bucket, key, id string) (err error) {
	// Each part carries its CRC-32C, which the server checks against the body
	// and keeps (the object's checksum is then the composite of the parts'), as
	// aws s3 cp does with CRC-32. Without a declared algorithm an S3 server
	// computes a full-object checksum of its own as it assembles the object,
	// which costs moto_server, for one, more than the upload of the parts. A
	// server that refuses the declaration gets the upload without checksums.
	create := func(algo types.ChecksumAlgorithm) (*s3.CreateMultipartUploadOutput, error) {
		return s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(bucket),
			Key:               aws.String(key),
			ContentType:       aws.String("application/octet-stream"),
			Metadata:          map[string]string{exportIDMeta: id},
			ChecksumAlgorithm: algo,
		})
	}
	withCRC := true
	cmu, err := create(types.ChecksumAlgorithmCrc32c)
	if err != nil && checksumRefused(err) {
		withCRC = false
		cmu, err = create("")
	}
	if err != nil {
		return writeFailed(bucket, key, "CreateMultipartUpload", err)
	}
	uploadID := cmu.UploadId
	completed := false
	defer func() {
		if !completed {
			s.abort(ctx, bucket, key, uploadID)
		}
	}()

	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	jobs := make(chan int)
	for w := 0; w < s.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte // for the CRC pass, one per worker
			for i := range jobs {
				off := int64(i) * partSize
				n := min(partSize, size-off)
				num := int32(i + 1)
				in := &s3.UploadPartInput{
					Bucket:        aws.String(bucket),
					Key:           aws.String(key),
					UploadId:      uploadID,
					PartNumber:    aws.Int32(num),
					Body:          io.NewSectionReader(f, off, n),
					ContentLength: aws.Int64(n),
				}
				var err error
				if withCRC {
					if buf == nil {
						buf = make([]byte, crcBufSize)
					}
					// Computed here, not by the SDK, so that it goes in a header
					// (over https the SDK would send it in an aws-chunked
					// trailer, which fewer servers understand) and so that
					// CompleteMultipartUpload can list it.
					var sum string
					if sum, err = crc32cOf(io.NewSectionReader(f, off, n), buf); err == nil {
						in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
						in.ChecksumCRC32C = aws.String(sum)
					}
				}
				var out *s3.UploadPartOutput
				if err == nil && withCRC {
					out, err = s.client.UploadPart(pctx, in, s.partOptions...)
				} else if err == nil {
					out, err = s.client.UploadPart(pctx, in) // signed, the only check left
				}
				if err != nil {
					mu.Lock()
					// Keep the first error that is not just the cancellation
					// another failure caused.
					if firstErr == nil || errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled) {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					continue
				}
				parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32C: in.ChecksumCRC32C}
				if s.onPart != nil {
					s.onPart(num)
				}
			}
		}()
	}
feed:
	for i := 0; i < nparts; i++ {
		select {
		case jobs <- i:
		case <-pctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err() // cancelled while feeding, no request failed
	}
	if firstErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("blob: export to %s/%s: %w", bucket, key, ctx.Err())
		}
		return writeFailed(bucket, key, "UploadPart", firstErr)
	}

	complete := func(ctx context.Context, cond bool) error {
		in := &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(bucket),
			Key:             aws.String(key),
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		}
		if cond {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := s.client.CompleteMultipartUpload(ctx, in)
		return err
	}
	if s.beforeFinal != nil {
		s.beforeFinal()
	}
	fctx, fcancel := finalContext(ctx)
	defer fcancel()
	err, decided := s.writeIfAbsent(fctx, bucket, key, complete)
	if decided {
		return err
	}
	if err != nil && !s.isOwn(ctx, bucket, key, id) {
		return writeFailed(bucket, key, "CompleteMultipartUpload", err)
	}
	completed = true
	return nil
}

// crcBufSize is the read size of the CRC pass over a part, which reads from the
// page cache: large enough that the syscalls cost little, small enough that one
// per worker adds little to hoard's memory.
const crcBufSize = 256 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32cOf returns the CRC-32C of r as S3 writes it: base64 of the 4 bytes,
// big-endian.
func crc32cOf(r io.Reader, buf []byte) (string, error) {
	h := crc32.New(castagnoli)
	if _, err := io.CopyBuffer(h, r, buf); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// checksumRefused reports whether a CreateMultipartUpload that declared a
// checksum algorithm failed because the server does not do checksums, rather
// than for a reason that would fail the upload without one too.
func checksumRefused(err error) bool {
	status, code, _ := respInfo(err)
	return notImplemented(status, code) ||
		status == http.StatusBadRequest && (code == "InvalidArgument" || code == "InvalidRequest")
}

// abort aborts a multipart upload, on a context of its own so that it runs even
// when ctx was cancelled.
func (s *s3Storage) abort(ctx context.Context, bucket, key string, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: uploadID,
	})
}

// isOwn reports whether bucket/key is the object of this export (its
// hoard-export-id is id). It settles a final request that failed but may have
// reached the server and created the object (a lost response whose retry then
// met If-None-Match, a broken connection): an object carrying this export's id
// is complete, since S3 objects appear whole, so the export has succeeded.
func (s *s3Storage) isOwn(ctx context.Context, bucket, key, id string) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	ho, err := s.client.HeadObject(cctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return err == nil && ho.Metadata[exportIDMeta] == id
}

// finalContext is the context of an export's last request (PutObject,
// CompleteMultipartUpload). It is not cancelled with ctx: cancelling a request
// that the server may already be carrying out would leave its outcome unknown,
// and an object might appear after Export reported failure.
func finalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
}

func (s *s3Storage) Fetch(ctx context.Context, bucket, key, path string) error {
	if err := checkNames(bucket, key, false); err != nil {
		return err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		status, code, _ := respInfo(err)
		switch {
		case code == "NoSuchBucket":
			return failed(ErrBucketNotFound, bucket, key, "GetObject", err)
		case status == http.StatusNotFound:
			return failed(ErrNoSuchKey, bucket, key, "GetObject", err)
		case status == http.StatusMovedPermanently:
			return failed(ErrBucketWrongRegion, bucket, key, "GetObject", err)
		case status == http.StatusForbidden:
			return failed(ErrNoRead, bucket, key, "GetObject", err)
		}
		return other("fetch", bucket, key, "GetObject", err)
	}
	defer out.Body.Close()
	want := int64(-1)
	if out.ContentLength != nil {
		want = *out.ContentLength
	}
	if err := writeFileAtomic(ctx, path, out.Body, want); err != nil {
		return fmt.Errorf("blob: fetch %s/%s to %s: %w", bucket, key, path, err)
	}
	return nil
}

// writeIfAbsent runs a final write conditionally (If-None-Match: *). A server that
// does not do conditional writes gets the key checked again, then the write
// unconditionally (a narrow race remains on such servers). decided reports an
// outcome known without doubt (the check failed, or found the key): the caller
// returns it as is; otherwise err is the write's own result.
func (s *s3Storage) writeIfAbsent(ctx context.Context, bucket, key string, write func(context.Context, bool) error) (err error, decided bool) {
	err = write(ctx, true)
	if err == nil {
		return nil, false
	}
	if status, code, _ := respInfo(err); !notImplemented(status, code) {
		return err, false
	}
	if exists, herr := s.keyExists(ctx, bucket, key); herr != nil {
		return herr, true
	} else if exists {
		return &Error{Err: ErrKeyExists, Bucket: bucket, Key: key}, true
	}
	return write(ctx, false), false
}
