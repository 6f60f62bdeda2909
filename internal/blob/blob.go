// Package blob is hoard's bucket storage: it exports snapshot files to S3 buckets
// (CopySnapshot with TargetBucket, ExportServerlessCacheSnapshot) and fetches
// seed files from them (SnapshotArns of the form arn:aws:s3:::bucket/key).
//
// Two implementations exist, chosen by hoard's --s3-endpoint flag:
//
//   - NewS3 talks to an S3-compatible endpoint with path-style addressing.
//   - NewLocal keeps every bucket as a directory under a root (<data-dir>/s3/);
//     a bucket exists when its directory exists, an object is a file, and a key's
//     "/" separators are subdirectories.
//
// Both promise the same thing: an export never overwrites an existing object and
// never leaves a partial object behind; a fetch never leaves a partial local file.
//
// Failures that ElastiCache reports to its caller are *Error values wrapping one of
// the sentinel errors below; Message turns them into ElastiCache's wording.
package blob

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Storage is bucket storage for snapshot export and seeding.
type Storage interface {
	// Export copies the local file at path to bucket/key. It fails with
	// ErrKeyExists if the key is already there, and on any failure leaves no
	// object (not even a partial one) behind.
	Export(ctx context.Context, path, bucket, key string) error
	// Fetch downloads bucket/key into a new local file at path (fsynced; no file
	// left on error). ErrNoSuchKey when the object is absent. An existing file at
	// path is replaced atomically, and only once the download is complete.
	Fetch(ctx context.Context, bucket, key, path string) error
}

// The errors Export and Fetch report, each wrapped in an *Error that names the
// bucket and key. Test with errors.Is.
var (
	// ErrBucketNotFound: the bucket does not exist (or its name cannot name a
	// bucket; errors.Is(err, ErrInvalidBucketName) tells that case apart).
	ErrBucketNotFound = errors.New("bucket does not exist")
	// ErrBucketWrongRegion: the bucket is in another region than the one expected
	// (S3Config.Region, or the one set on the context with WithRegion).
	ErrBucketWrongRegion = errors.New("bucket is outside of the region")
	// ErrBucketNotOwned: the bucket exists but the authenticated user does not own it.
	ErrBucketNotOwned = errors.New("bucket is not owned by the authenticated user")
	// ErrNoRead: no READ (list/get) permission on the bucket or object.
	ErrNoRead = errors.New("no READ permission on the bucket")
	// ErrNoWrite: no WRITE (put) permission on the bucket.
	ErrNoWrite = errors.New("no WRITE permission on the bucket")
	// ErrNoReadACP: no READ_ACP (GetBucketAcl) permission on the bucket.
	ErrNoReadACP = errors.New("no READ_ACP permission on the bucket")
	// ErrKeyExists: Export refused to overwrite an existing object.
	ErrKeyExists = errors.New("object already exists")
	// ErrNoSuchKey: Fetch found no object at the key.
	ErrNoSuchKey = errors.New("no such key")
	// ErrAccessDenied: the credentials may not perform an account-level call
	// (ListBuckets) that the export needs.
	ErrAccessDenied = errors.New("access denied")

	// ErrInvalidBucketName is the Cause of an ErrBucketNotFound error whose bucket
	// name breaks S3's naming rules (errors.Is finds it through the *Error).
	ErrInvalidBucketName = errors.New("invalid bucket name")
	// ErrInvalidKey: the key is empty, too long, not UTF-8, or has path segments
	// that are empty, "." or "..". Message returns "" for it: the caller validates
	// the names it builds keys from.
	ErrInvalidKey = errors.New("invalid object key")
)

// Error is a failure of Export or Fetch that ElastiCache reports with one of its
// documented messages. Err is one of the sentinel errors of this package, Bucket
// and Key say where, and Cause is the underlying error (an S3 error response, a
// file system error), which may be nil.
type Error struct {
	Err         error
	Bucket, Key string
	Cause       error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("blob: ")
	b.WriteString(e.Bucket)
	if e.Key != "" {
		b.WriteString("/")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("error")
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns Err, so that errors.Is(err, ErrKeyExists) works.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether the Cause matches target, so that errors.Is also sees
// through to the cause (ErrInvalidBucketName, context.Canceled, ...).
func (e *Error) Is(target error) bool {
	return e.Cause != nil && errors.Is(e.Cause, target)
}

// Message returns the ElastiCache error message for an export error, worded
// exactly as the CopySnapshot documentation words it, with the bucket and key
// filled in. It returns "" for an error that is not an *Error of this package
// with one of the documented cases (an I/O failure, a cancelled context,
// ErrInvalidKey, ErrNoSuchKey): the caller words those itself.
func Message(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	switch e.Err {
	case ErrKeyExists:
		return fmt.Sprintf("The S3 bucket %s already contains an object with key %s.", e.Bucket, e.Key)
	case ErrBucketNotFound:
		return fmt.Sprintf("The S3 bucket %s does not exist.", e.Bucket)
	case ErrBucketWrongRegion:
		return fmt.Sprintf("The S3 bucket %s is outside of the region.", e.Bucket)
	case ErrBucketNotOwned:
		return fmt.Sprintf("The S3 bucket %s is not owned by the authenticated user.", e.Bucket)
	case ErrNoRead:
		return fmt.Sprintf("ElastiCache has not been granted READ permissions %s on the S3 Bucket.", e.Bucket)
	case ErrNoWrite:
		return fmt.Sprintf("ElastiCache has not been granted WRITE permissions %s on the S3 Bucket.", e.Bucket)
	case ErrNoReadACP:
		return fmt.Sprintf("ElastiCache has not been granted READ_ACP permissions %s on the S3 Bucket.", e.Bucket)
	case ErrAccessDenied:
		return "The authenticated user does not have sufficient permissions to perform the desired activity."
	}
	return ""
}

type regionKey struct{}

// WithRegion returns a context under which S3 Export and Fetch expect the bucket
// to be in region (the region of the snapshot being exported) instead of
// S3Config.Region. Local storage has no regions and ignores it.
func WithRegion(ctx context.Context, region string) context.Context {
	return context.WithValue(ctx, regionKey{}, region)
}

func regionFrom(ctx context.Context, def string) string {
	if r, ok := ctx.Value(regionKey{}).(string); ok && r != "" {
		return r
	}
	return def
}

// ValidBucketName reports whether name follows S3's rules for new buckets, which
// ElastiCache requires of an export target: 3 to 63 characters; labels separated
// by dots, each of lowercase letters, digits and hyphens, starting and ending with
// a letter or digit; not formatted as an IP address; none of S3's reserved
// prefixes (xn--, sthree-, amzn-s3-demo-) or suffixes (-s3alias, --ol-s3, --x-s3,
// --table-s3).
func ValidBucketName(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return false
		}
	}
	return true
}

// validLegacyBucketName accepts, for reading only, the names that older buckets
// in us-east-1 may still have (upper case letters, underscores, up to 255
// characters: the seeding guide's own example is "myBucket"), but never one that
// could step out of a path.
func validLegacyBucketName(name string) bool {
	if ValidBucketName(name) {
		return true
	}
	if len(name) < 3 || len(name) > 255 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return !strings.Contains(name, "..")
}

// ValidKey reports whether key is acceptable as an object key here: 1 to 1024
// bytes of UTF-8 without NUL, made of "/"-separated segments none of which is
// empty, "." or "..". (S3 itself allows more, but such keys could escape a
// bucket directory or be rewritten by path normalisation on the way.)
func ValidKey(key string) bool {
	if key == "" || len(key) > 1024 || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// checkNames validates a bucket and key, returning the *Error to report.
func checkNames(bucket, key string, forWrite bool) error {
	ok := ValidBucketName(bucket)
	if !forWrite {
		ok = validLegacyBucketName(bucket)
	}
	if !ok {
		return &Error{Err: ErrBucketNotFound, Bucket: bucket, Key: key,
			Cause: fmt.Errorf("%w %q", ErrInvalidBucketName, bucket)}
	}
	if !ValidKey(key) {
		return &Error{Err: ErrInvalidKey, Bucket: bucket, Key: key}
	}
	return nil
}
