package blob

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidBucketName(t *testing.T) {
	good := []string{"abc", "my-s3-bucket", "a.b.c", "0bucket", "bucket0", strings.Repeat("a", 63), "my.bucket-1"}
	bad := []string{"", "ab", strings.Repeat("a", 64), "MyBucket", "my_bucket", "-abc", "abc-", "a..b", ".abc", "abc.",
		"a-.b", "a.-b", "192.168.5.4", "xn--abc", "sthree-abc", "abc-s3alias", "abc--ol-s3", "a/b", "a b", "abc\x00"}
	for _, n := range good {
		if !ValidBucketName(n) {
			t.Errorf("ValidBucketName(%q) = false, want true", n)
		}
	}
	for _, n := range bad {
		if ValidBucketName(n) {
			t.Errorf("ValidBucketName(%q) = true, want false", n)
		}
	}
	// Reading accepts legacy names but nothing that can leave a directory.
	for _, n := range []string{"myBucket", "my_bucket", "MY.BUCKET"} {
		if !validLegacyBucketName(n) {
			t.Errorf("validLegacyBucketName(%q) = false", n)
		}
	}
	for _, n := range []string{"..", "...", ".abc", "a..b", "a/b", `a\b`, "ab"} {
		if validLegacyBucketName(n) {
			t.Errorf("validLegacyBucketName(%q) = true", n)
		}
	}
}

func TestValidKey(t *testing.T) {
	good := []string{"x", "snap-0001.rdb", "folder/sub/snap.rdb", "a..b", "...", "sp ace", "ünïcode/ключ", strings.Repeat("k", 1024)}
	bad := []string{"", "/abs", "trailing/", "a//b", "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b",
		"nul\x00", "\xff\xfe", strings.Repeat("k", 1025)}
	for _, k := range good {
		if !ValidKey(k) {
			t.Errorf("ValidKey(%q) = false, want true", k)
		}
	}
	for _, k := range bad {
		if ValidKey(k) {
			t.Errorf("ValidKey(%q) = true, want false", k)
		}
	}
}

func TestMessage(t *testing.T) {
	mk := func(e error) error {
		return fmt.Errorf("outer: %w", &Error{Err: e, Bucket: "my-s3-bucket", Key: "snap-0001.rdb", Cause: errors.New("x")})
	}
	cases := []struct {
		err  error
		want string
	}{
		{ErrKeyExists, "The S3 bucket my-s3-bucket already contains an object with key snap-0001.rdb."},
		{ErrBucketNotFound, "The S3 bucket my-s3-bucket does not exist."},
		{ErrBucketWrongRegion, "The S3 bucket my-s3-bucket is outside of the region."},
		{ErrBucketNotOwned, "The S3 bucket my-s3-bucket is not owned by the authenticated user."},
		{ErrNoRead, "ElastiCache has not been granted READ permissions my-s3-bucket on the S3 Bucket."},
		{ErrNoWrite, "ElastiCache has not been granted WRITE permissions my-s3-bucket on the S3 Bucket."},
		{ErrNoReadACP, "ElastiCache has not been granted READ_ACP permissions my-s3-bucket on the S3 Bucket."},
		{ErrAccessDenied, "The authenticated user does not have sufficient permissions to perform the desired activity."},
		{ErrNoSuchKey, ""},
		{ErrInvalidKey, ""},
	}
	for _, c := range cases {
		err := mk(c.err)
		if got := Message(err); got != c.want {
			t.Errorf("Message(%v) = %q, want %q", c.err, got, c.want)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("errors.Is(%v, sentinel) = false", err)
		}
	}
	if got := Message(errors.New("plain")); got != "" {
		t.Errorf("Message(plain) = %q", got)
	}
	if got := Message(nil); got != "" {
		t.Errorf("Message(nil) = %q", got)
	}
	// The Cause is reachable with errors.Is as well.
	err := &Error{Err: ErrNoWrite, Bucket: "b", Cause: fmt.Errorf("put: %w", context.Canceled)}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNoWrite) || errors.Is(err, ErrNoRead) {
		t.Errorf("errors.Is through Error wrong: %v", err)
	}
	var e *Error
	if !errors.As(fmt.Errorf("w: %w", err), &e) || e.Bucket != "b" {
		t.Errorf("errors.As failed")
	}
	if s := err.Error(); !strings.Contains(s, "b") || !strings.Contains(s, "WRITE") {
		t.Errorf("Error() = %q", s)
	}
}

func TestCheckNames(t *testing.T) {
	err := checkNames("Bad_Bucket", "k", true)
	if !errors.Is(err, ErrBucketNotFound) || !errors.Is(err, ErrInvalidBucketName) {
		t.Fatalf("bad bucket for write: %v", err)
	}
	if Message(err) != "The S3 bucket Bad_Bucket does not exist." {
		t.Errorf("Message = %q", Message(err))
	}
	if err := checkNames("Bad_Bucket", "k", false); err != nil {
		t.Errorf("legacy bucket for read: %v", err)
	}
	if err := checkNames("good-bucket", "../k", true); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad key: %v", err)
	}
}

func TestWithRegion(t *testing.T) {
	ctx := context.Background()
	if got := regionFrom(ctx, "us-east-1"); got != "us-east-1" {
		t.Errorf("default region = %q", got)
	}
	if got := regionFrom(WithRegion(ctx, "eu-west-1"), "us-east-1"); got != "eu-west-1" {
		t.Errorf("context region = %q", got)
	}
}
