package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// serverTime is the fixed clock of the harnesses that test time windows.
var serverTime = time.Date(2026, time.March, 14, 15, 9, 26, 0, time.UTC)

func TestSigV4HeaderSignedPOSTIsAccepted(t *testing.T) {
	h := newHarness(t, time.Time{}) // the server's real clock
	res := h.do(h.signedPost(describeBody, testRegion, time.Now()))
	assertDescribeOK(t, res)
}

func TestSigV4PresignedGETIsAccepted(t *testing.T) {
	h := newHarness(t, time.Time{})
	req := h.presignedGet(describeBody, 5*time.Minute, testRegion, time.Now())
	if req.Header.Get("Authorization") != "" {
		t.Fatalf("a presigned request must not carry an Authorization header")
	}
	q := req.URL.Query()
	for _, name := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if q.Get(name) == "" {
			t.Fatalf("presigned URL lacks %s: %s", name, req.URL)
		}
	}
	assertDescribeOK(t, h.do(req))
}

func TestSigV4OtherRegionsAreAccepted(t *testing.T) {
	h := newHarness(t, serverTime)
	for _, region := range []string{"eu-west-1", "ap-southeast-2", "us-gov-west-1"} {
		t.Run(region+"/header", func(t *testing.T) {
			assertDescribeOK(t, h.do(h.signedPost(describeBody, region, serverTime)))
		})
		t.Run(region+"/presigned", func(t *testing.T) {
			assertDescribeOK(t, h.do(h.presignedGet(describeBody, time.Minute, region, serverTime)))
		})
	}
}

// TestSigV4RegionScopesTheCaller checks the credential scope's region reaches the
// service: a group made in one region is not seen from another.
func TestSigV4RegionScopesTheCaller(t *testing.T) {
	h := newHarness(t, serverTime)
	res := h.do(h.signedPost(createBody("regional-group"), "eu-west-1", serverTime))
	if res.status != http.StatusOK {
		t.Fatalf("CreateCacheParameterGroup: %d\n%s", res.status, res.body)
	}
	if !strings.Contains(res.body, "arn:aws:elasticache:eu-west-1:"+testAccount+":parametergroup:regional-group") {
		t.Errorf("ARN of the new group does not name eu-west-1 and the key's account:\n%s", res.body)
	}
	if !h.groupExists("regional-group", "eu-west-1") {
		t.Errorf("group not found in the region it was made in")
	}
	if h.groupExists("regional-group", testRegion) {
		t.Errorf("group made in eu-west-1 is visible from %s", testRegion)
	}
}

func TestSigV4ClockSkewWithinFifteenMinutesIsAccepted(t *testing.T) {
	h := newHarness(t, serverTime)
	for _, skew := range []time.Duration{-14 * time.Minute, -14*time.Minute - 59*time.Second, 14 * time.Minute, 15 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			assertDescribeOK(t, h.do(h.signedPost(describeBody, testRegion, serverTime.Add(skew))))
		})
	}
}

// TestSigV4PresignedOutlivesTheClockSkew: a presigned URL is good for its
// X-Amz-Expires, however far that is past the fifteen minutes of the header form.
func TestSigV4PresignedOutlivesTheClockSkew(t *testing.T) {
	h := newHarness(t, serverTime)
	assertDescribeOK(t, h.do(h.presignedGet(describeBody, time.Hour, testRegion, serverTime.Add(-45*time.Minute))))
	assertDescribeOK(t, h.do(h.presignedGet(describeBody, 60*time.Second, testRegion, serverTime.Add(-60*time.Second))))
}

// mangleAuth rewrites the Authorization header of a signed request.
func mangleAuth(re, repl string) func(*http.Request) {
	return func(req *http.Request) {
		req.Header.Set("Authorization", regexp.MustCompile(re).ReplaceAllString(req.Header.Get("Authorization"), repl))
	}
}

func TestSigV4Rejections(t *testing.T) {
	h := newHarness(t, serverTime)
	wrongSecret := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret + "x"}
	unknownKey := aws.Credentials{AccessKeyID: "AKIDNOBODYHASTHISKEY", SecretAccessKey: testSecret}
	post := func(creds aws.Credentials, svcName, region string, at time.Time, after ...func(*http.Request)) func() *http.Request {
		return func() *http.Request {
			req := h.newPost(describeBody)
			sign(t, req, describeBody, creds, svcName, region, at)
			for _, f := range after {
				f(req)
			}
			return req
		}
	}
	// tamper signs describeBody and then sends body instead.
	tamper := func(body string) func() *http.Request {
		return func() *http.Request {
			signed := h.signedPost(describeBody, testRegion, serverTime)
			req := h.newPost(body) // its own Content-Length
			req.Header = signed.Header
			return req
		}
	}
	sameLength := strings.Replace(describeBody, "MaxRecords=20", "MaxRecords=99", 1)
	if len(sameLength) != len(describeBody) || sameLength == describeBody {
		t.Fatalf("bad same-length tamper %q", sameLength)
	}
	presigned := func(creds aws.Credentials, svcName string, expires time.Duration, at time.Time, after ...func(*http.Request)) func() *http.Request {
		return func() *http.Request {
			req := presign(t, h.ts.URL, describeBody, expires, creds, svcName, testRegion, at)
			for _, f := range after {
				f(req)
			}
			return req
		}
	}
	editQuery := func(edit func(url.Values)) func(*http.Request) {
		return func(req *http.Request) {
			q := req.URL.Query()
			edit(q)
			req.URL.RawQuery = q.Encode()
		}
	}

	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"wrong secret", post(wrongSecret, "elasticache", testRegion, serverTime), 403, "SignatureDoesNotMatch"},
		{"wrong secret presigned", presigned(wrongSecret, "elasticache", time.Minute, serverTime), 403, "SignatureDoesNotMatch"},
		{"unknown access key", post(unknownKey, "elasticache", testRegion, serverTime), 403, "InvalidClientTokenId"},
		{"unknown access key presigned", presigned(unknownKey, "elasticache", time.Minute, serverTime), 403, "InvalidClientTokenId"},
		{"no authentication POST", func() *http.Request { return h.newPost(describeBody) }, 403, "MissingAuthenticationToken"},
		{"no authentication GET", func() *http.Request { return h.newGet(describeBody) }, 403, "MissingAuthenticationToken"},
		{"Authorization without Signature=", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`, Signature=[0-9a-f]+$`, "")), 400, "IncompleteSignature"},
		{"Authorization with empty Signature=", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`Signature=[0-9a-f]+$`, "Signature=")), 400, "IncompleteSignature"},
		{"Authorization without SignedHeaders", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(` SignedHeaders=[^,]+,`, "")), 400, "IncompleteSignature"},
		{"Authorization without Credential", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(` Credential=[^,]+,`, "")), 400, "IncompleteSignature"},
		{"Authorization with wrong algorithm", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`^AWS4-HMAC-SHA256 `, "AWS4-HMAC-SHA512 ")), 400, "IncompleteSignature"},
		{"Authorization with SigV2-style algorithm", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`^AWS4-HMAC-SHA256 `, "AWS ")), 400, "IncompleteSignature"},
		{"Authorization with short credential scope", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`/aws4_request`, "")), 400, "IncompleteSignature"},
		{"signed 16 minutes in the past", post(testCreds, "elasticache", testRegion, serverTime.Add(-16*time.Minute)), 400, "RequestExpired"},
		{"signed 16 minutes in the future", post(testCreds, "elasticache", testRegion, serverTime.Add(16*time.Minute)), 400, "RequestExpired"},
		{"signed a day ago", post(testCreds, "elasticache", testRegion, serverTime.Add(-24*time.Hour)), 400, "RequestExpired"},
		{"body tampered, same length", tamper(sameLength), 403, "SignatureDoesNotMatch"},
		{"body tampered, longer", tamper(describeBody + "&Marker=x"), 403, "SignatureDoesNotMatch"},
		{"body tampered, shorter", tamper(strings.TrimSuffix(describeBody, "&MaxRecords=20")), 403, "SignatureDoesNotMatch"},
		{"signed Content-Type changed", post(testCreds, "elasticache", testRegion, serverTime, func(r *http.Request) {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=latin1")
		}), 403, "SignatureDoesNotMatch"},
		{"signed Content-Type given a second value", post(testCreds, "elasticache", testRegion, serverTime, func(r *http.Request) {
			r.Header.Add("Content-Type", "text/plain")
		}), 403, "SignatureDoesNotMatch"},
		{"signed X-Amz-Date moved by a second", post(testCreds, "elasticache", testRegion, serverTime, func(r *http.Request) {
			r.Header.Set("X-Amz-Date", serverTime.Add(time.Second).Format("20060102T150405Z"))
		}), 403, "SignatureDoesNotMatch"},
		{"query string added to a header-signed POST", post(testCreds, "elasticache", testRegion, serverTime, func(r *http.Request) {
			r.URL.RawQuery = "CacheParameterGroupName=default.redis7"
		}), 403, "SignatureDoesNotMatch"},
		{"method changed", post(testCreds, "elasticache", testRegion, serverTime, func(r *http.Request) {
			r.Method = http.MethodGet
			r.Body, r.ContentLength = nil, 0
			r.URL.RawQuery = describeBody
		}), 403, "SignatureDoesNotMatch"},
		{"credential scope for s3", post(testCreds, "s3", testRegion, serverTime), 403, "SignatureDoesNotMatch"},
		{"credential scope for s3 presigned", presigned(testCreds, "s3", time.Minute, serverTime), 403, "SignatureDoesNotMatch"},
		{"credential scope date is another day", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`/20260314/`, "/20260313/")), 403, "SignatureDoesNotMatch"},
		{"credential scope region changed", post(testCreds, "elasticache", testRegion, serverTime, mangleAuth(`/us-east-1/`, "/us-west-2/")), 403, "SignatureDoesNotMatch"},
		{"presigned past its expiry", presigned(testCreds, "elasticache", time.Minute, serverTime.Add(-61*time.Second)), 400, "RequestExpired"},
		{"presigned 16 minutes in the future", presigned(testCreds, "elasticache", time.Hour, serverTime.Add(16*time.Minute)), 400, "RequestExpired"},
		{"presigned X-Amz-Expires raised", presigned(testCreds, "elasticache", time.Minute, serverTime.Add(-2*time.Minute), editQuery(func(q url.Values) {
			q.Set("X-Amz-Expires", "3600")
		})), 403, "SignatureDoesNotMatch"},
		{"presigned parameter changed", presigned(testCreds, "elasticache", time.Minute, serverTime, editQuery(func(q url.Values) {
			q.Set("MaxRecords", "21")
		})), 403, "SignatureDoesNotMatch"},
		{"presigned parameter added", presigned(testCreds, "elasticache", time.Minute, serverTime, editQuery(func(q url.Values) {
			q.Set("CacheParameterGroupName", "default.redis7")
		})), 403, "SignatureDoesNotMatch"},
		{"presigned signature altered", presigned(testCreds, "elasticache", time.Minute, serverTime, editQuery(func(q url.Values) {
			s := []byte(q.Get("X-Amz-Signature"))
			if s[0] == '0' {
				s[0] = '1'
			} else {
				s[0] = '0'
			}
			q.Set("X-Amz-Signature", string(s))
		})), 403, "SignatureDoesNotMatch"},
		{"presigned without X-Amz-Expires", presigned(testCreds, "elasticache", time.Minute, serverTime, editQuery(func(q url.Values) {
			q.Del("X-Amz-Expires")
		})), 400, "IncompleteSignature"},
		{"presigned with wrong algorithm", presigned(testCreds, "elasticache", time.Minute, serverTime, editQuery(func(q url.Values) {
			q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA1")
		})), 400, "IncompleteSignature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertError(t, h.do(c.req()), c.status, c.code)
		})
	}
}

// TestSigV4ErrorEnvelope looks at one rejection in full.
func TestSigV4ErrorEnvelope(t *testing.T) {
	h := newHarness(t, serverTime)
	res := h.do(h.newPost(describeBody))
	e := assertError(t, res, http.StatusForbidden, "MissingAuthenticationToken")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(e.RequestID) {
		t.Errorf("RequestId %q is not a UUID", e.RequestID)
	}
	if !strings.HasPrefix(res.body, `<?xml version="1.0" encoding="UTF-8"?>`) {
		t.Errorf("no XML declaration:\n%s", res.body)
	}
	if !strings.Contains(res.body, `<ErrorResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code><Message>`) {
		t.Errorf("unexpected envelope:\n%s", res.body)
	}
	// Every request has its own id.
	e2 := assertError(t, h.do(h.newPost(describeBody)), http.StatusForbidden, "MissingAuthenticationToken")
	if e2.RequestID == e.RequestID {
		t.Errorf("two requests share the RequestId %s", e.RequestID)
	}
}

// TestSigV4RejectedRequestsAreNotActedOn sends CreateCacheParameterGroup requests
// that fail authentication, then checks with a correctly signed request that no
// group was made; a correctly signed create shows the check can see one.
func TestSigV4RejectedRequestsAreNotActedOn(t *testing.T) {
	h := newHarness(t, serverTime)
	wrongSecret := aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: "not-the-secret"}
	cases := []struct {
		name   string
		req    func(body string) *http.Request
		status int
		code   string
	}{
		{"bad-signature", func(body string) *http.Request {
			req := h.newPost(body)
			sign(t, req, body, wrongSecret, "elasticache", testRegion, serverTime)
			return req
		}, 403, "SignatureDoesNotMatch"},
		{"unsigned", func(body string) *http.Request { return h.newPost(body) }, 403, "MissingAuthenticationToken"},
		{"expired", func(body string) *http.Request {
			return h.signedPost(body, testRegion, serverTime.Add(-20*time.Minute))
		}, 400, "RequestExpired"},
		{"signed-for-another-body", func(body string) *http.Request {
			// A signature over a same-length create of another name.
			other := strings.Replace(body, "group-signed-for-another-body", "group-xxxxxx-for-another-body", 1)
			signed := h.signedPost(other, testRegion, serverTime)
			req := h.newPost(body)
			req.Header = signed.Header
			return req
		}, 403, "SignatureDoesNotMatch"},
		{"presigned-get-with-bad-signature", func(body string) *http.Request {
			return presign(t, h.ts.URL, body, time.Minute, wrongSecret, "elasticache", testRegion, serverTime)
		}, 403, "SignatureDoesNotMatch"},
		{"s3-scope", func(body string) *http.Request {
			req := h.newPost(body)
			sign(t, req, body, testCreds, "s3", testRegion, serverTime)
			return req
		}, 403, "SignatureDoesNotMatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "group-" + c.name
			assertError(t, h.do(c.req(createBody(name))), c.status, c.code)
			if h.groupExists(name, testRegion) {
				t.Errorf("a %s CreateCacheParameterGroup made the group %s", c.name, name)
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		res := h.do(h.signedPost(createBody("group-control"), testRegion, serverTime))
		if res.status != http.StatusOK || !strings.Contains(res.body, "<CreateCacheParameterGroupResponse") {
			t.Fatalf("signed CreateCacheParameterGroup: %d\n%s", res.status, res.body)
		}
		if !h.groupExists("group-control", testRegion) {
			t.Fatalf("the correctly signed create made no group")
		}
	})
}

// TestSigV4PayloadHashHeaderIsCheckedAgainstTheBody: a stated X-Amz-Content-Sha256
// must match the body received; otherwise one seen signed request could be replayed
// with any other body of the same length (a bug this test caught).
func TestSigV4PayloadHashHeaderIsCheckedAgainstTheBody(t *testing.T) {
	h := newHarness(t, serverTime)
	// bodies returns a signed and a forged create of the same length.
	bodies := func(n int) (signed, forged, forgedName string) {
		forgedName = fmt.Sprintf("forged-group-%d", n)
		signed, forged = createBody(fmt.Sprintf("signed-group-%d", n)), createBody(forgedName)
		if len(signed) != len(forged) {
			t.Fatalf("bodies differ in length")
		}
		return signed, forged, forgedName
	}

	t.Run("header added after signing", func(t *testing.T) {
		signedBody, forgedBody, forgedName := bodies(1)
		signed := h.signedPost(signedBody, testRegion, serverTime)
		if strings.Contains(signed.Header.Get("Authorization"), "x-amz-content-sha256") {
			t.Fatalf("the SDK signed x-amz-content-sha256 unasked")
		}
		req := h.newPost(forgedBody)
		req.Header = signed.Header.Clone()
		req.Header.Set("X-Amz-Content-Sha256", sha256Hex(signedBody))
		if res := h.do(req); res.status != http.StatusForbidden {
			t.Errorf("forged body answered %d, want 403 SignatureDoesNotMatch", res.status)
		} else {
			assertError(t, res, http.StatusForbidden, "SignatureDoesNotMatch")
		}
		if h.groupExists(forgedName, testRegion) {
			t.Errorf("the forged body was executed: group %s exists", forgedName)
		}
	})

	t.Run("header signed by the client", func(t *testing.T) {
		signedBody, forgedBody, forgedName := bodies(2)
		signed := h.newPost(signedBody)
		signed.Header.Set("X-Amz-Content-Sha256", sha256Hex(signedBody))
		sign(t, signed, signedBody, testCreds, "elasticache", testRegion, serverTime)
		if !strings.Contains(signed.Header.Get("Authorization"), "x-amz-content-sha256") {
			t.Fatalf("x-amz-content-sha256 not signed: %s", signed.Header.Get("Authorization"))
		}
		req := h.newPost(forgedBody)
		req.Header = signed.Header.Clone()
		if res := h.do(req); res.status != http.StatusForbidden {
			t.Errorf("forged body answered %d, want 403 SignatureDoesNotMatch", res.status)
		} else {
			assertError(t, res, http.StatusForbidden, "SignatureDoesNotMatch")
		}
		if h.groupExists(forgedName, testRegion) {
			t.Errorf("the forged body was executed: group %s exists", forgedName)
		}
	})
}

// TestSigV4PayloadHashHeaderMatchingTheBodyIsAccepted: clients such as the S3
// middleware send X-Amz-Content-Sha256 with the true hash; that must keep working.
func TestSigV4PayloadHashHeaderMatchingTheBodyIsAccepted(t *testing.T) {
	h := newHarness(t, serverTime)
	req := h.newPost(describeBody)
	req.Header.Set("X-Amz-Content-Sha256", sha256Hex(describeBody))
	sign(t, req, describeBody, testCreds, "elasticache", testRegion, serverTime)
	assertDescribeOK(t, h.do(req))
}

// TestSigV4QueryWithTenListMembers sends a GET whose query has keys that are
// prefixes of others (TagKeys.member.1 and TagKeys.member.10), as any list of ten
// or more scalars in a query string does.
func TestSigV4QueryWithTenListMembers(t *testing.T) {
	h := newHarness(t, serverTime)
	create := url.Values{
		"Action": {"CreateCacheParameterGroup"}, "Version": {"2015-02-02"}, "CacheParameterGroupName": {"tagged"},
		"CacheParameterGroupFamily": {"redis7"}, "Description": {"ten tags"},
	}
	remove := url.Values{
		"Action": {"RemoveTagsFromResource"}, "Version": {"2015-02-02"},
		"ResourceName": {"arn:aws:elasticache:us-east-1:" + testAccount + ":parametergroup:tagged"},
	}
	for i := 1; i <= 10; i++ {
		create.Set(fmt.Sprintf("Tags.Tag.%d.Key", i), fmt.Sprintf("k%d", i))
		create.Set(fmt.Sprintf("Tags.Tag.%d.Value", i), "v")
		remove.Set(fmt.Sprintf("TagKeys.member.%d", i), fmt.Sprintf("k%d", i))
	}
	res := h.do(h.signedPost(create.Encode(), testRegion, serverTime))
	if res.status != http.StatusOK {
		t.Fatalf("create with ten tags: %d\n%s", res.status, res.body)
	}
	t.Run("presigned", func(t *testing.T) {
		res := h.do(h.presignedGet(remove.Encode(), time.Minute, testRegion, serverTime))
		if res.status != http.StatusOK {
			t.Errorf("presigned RemoveTagsFromResource with ten TagKeys: %d\n%s", res.status, res.body)
		}
	})
	t.Run("header-signed GET", func(t *testing.T) {
		// The tags are gone if the presigned request worked; TagNotFound then still
		// proves the signature was accepted.
		req := h.newGet(remove.Encode())
		sign(t, req, "", testCreds, "elasticache", testRegion, serverTime)
		res := h.do(req)
		if res.status == http.StatusForbidden {
			t.Errorf("header-signed GET RemoveTagsFromResource with ten TagKeys: %d\n%s", res.status, res.body)
		}
	})
}

// TestCanonicalQueryOrdersByNameThenValue is the unit form of the test above,
// against the ordering the AWS SDK's own signer produces.
func TestCanonicalQueryOrdersByNameThenValue(t *testing.T) {
	for raw, want := range map[string]string{
		"a-b=2&a=1": "a=1&a-b=2",
		"TagKeys.member.10=k10&TagKeys.member.1=k1":   "TagKeys.member.1=k1&TagKeys.member.10=k10",
		"Filter.1=x&Filter.1.Name=y":                  "Filter.1=x&Filter.1.Name=y",
		"k%2F=1&k=2":                                  "k=2&k%2F=1",
		"TagKeys.member.2=b&TagKeys.member.10=a&Zz=1": "TagKeys.member.10=a&TagKeys.member.2=b&Zz=1",
	} {
		u := &url.URL{Path: "/", RawQuery: raw}
		if got := canonicalQuery(u, false); got != want {
			t.Errorf("canonicalQuery(%q) = %q, want %q", raw, got, want)
		}
	}
}

// AWS SigV4 test suite (aws-sig-v4-test-suite, 2015-08-30 vectors): credentials
// AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region us-east-1,
// service "service", host example.amazonaws.com, X-Amz-Date 20150830T123600Z.
const (
	suiteKey     = "AKIDEXAMPLE"
	suiteSecret  = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	suiteAmzDate = "20150830T123600Z"
)

func TestCanonicalRequestAgainstAWSTestSuite(t *testing.T) {
	cases := []struct {
		name      string
		rawQuery  string // as the request line carries it
		query     string // canonical query
		creqHash  string // sha256 of the canonical request, where the suite's .sts gives it
		signature string
	}{
		{
			name:      "get-vanilla",
			signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
		},
		{
			name:      "get-vanilla-query-order-key-case",
			rawQuery:  "Param2=value2&Param1=value1",
			query:     "Param1=value1&Param2=value2",
			creqHash:  "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
			signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
		},
		{
			name:      "get-vanilla-query-order-value",
			rawQuery:  "Param1=value2&Param1=value1",
			query:     "Param1=value1&Param1=value2",
			signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
		},
		{
			name:      "get-vanilla-utf8-query",
			rawQuery:  "%E1%88%B4=bar",
			query:     "%E1%88%B4=bar",
			signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := &url.URL{Scheme: "https", Host: "example.amazonaws.com", Path: "/", RawQuery: c.rawQuery}
			if got := canonicalQuery(u, false); got != c.query {
				t.Errorf("canonicalQuery = %q, want %q", got, c.query)
			}
			r := httptest.NewRequest(http.MethodGet, u.String(), nil)
			r.Header.Set("X-Amz-Date", suiteAmzDate)
			sig := &signature{signedHeaders: []string{"host", "x-amz-date"}, presigned: false}
			creq := canonicalRequest(r, sig, emptyPayloadHash)
			want := "GET\n/\n" + c.query + "\nhost:example.amazonaws.com\nx-amz-date:" + suiteAmzDate + "\n\nhost;x-amz-date\n" + emptyPayloadHash
			if creq != want {
				t.Fatalf("canonical request:\n%s\nwant:\n%s", creq, want)
			}
			if c.creqHash != "" && sha256Hex(creq) != c.creqHash {
				t.Errorf("sha256(canonical request) = %s, want %s", sha256Hex(creq), c.creqHash)
			}
			// The whole of authenticate's arithmetic, for the suite's "service".
			var keys signingKeyCache
			key := keys.get(suiteSecret, "20150830", "us-east-1", "service")
			sts := "AWS4-HMAC-SHA256\n" + suiteAmzDate + "\n20150830/us-east-1/service/aws4_request\n" + sha256Hex(creq)
			if got := fmt.Sprintf("%x", hmacSHA256(key, []byte(sts))); got != c.signature {
				t.Errorf("signature = %s, want %s", got, c.signature)
			}
		})
	}
}

func TestURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz": "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
		"a b":    "a%20b",
		"a+b":    "a%2Bb",
		"a/b":    "a%2Fb",
		"a=b&c":  "a%3Db%26c",
		"*!'()":  "%2A%21%27%28%29",
		"100%":   "100%25",
		"\u1234": "%E1%88%B4",
		"é":      "%C3%A9",
		"":       "",
	} {
		if got := uriEncode(in); got != want {
			t.Errorf("uriEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCanonicalQueryMatchesTheSDK compares canonicalQuery with the canonical query
// the SDK's signer writes into a presigned URL's signature, for the queries hoard's
// clients send: a presigned request signed by the SDK is accepted exactly when the
// two agree.
func TestCanonicalQueryMatchesTheSDK(t *testing.T) {
	h := newHarness(t, serverTime)
	for _, q := range []string{
		describeBody,
		describeBody + "&Marker=a%2Fb+c~d*e",
		"Action=DescribeCacheParameterGroups&Version=2015-02-02&CacheParameterGroupName=default.redis7",
		"Action=DescribeCacheParameterGroups&Version=2015-02-02&Marker=%E2%9C%93&MaxRecords=100",
	} {
		t.Run(q, func(t *testing.T) {
			// Only the signature is in question here: a 400 for a Marker the
			// service does not know still means the request was authenticated.
			if res := h.do(h.presignedGet(q, time.Minute, testRegion, serverTime)); res.status == http.StatusForbidden {
				t.Errorf("presigned GET rejected: %s", res.body)
			}
			req := h.newGet(q)
			sign(t, req, "", testCreds, "elasticache", testRegion, serverTime)
			if res := h.do(req); res.status == http.StatusForbidden {
				t.Errorf("header-signed GET rejected: %s", res.body)
			}
		})
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	h := newHarness(b, serverTime)
	body := []byte(describeBody)
	r := httptest.NewRequest(http.MethodPost, "http://elasticache.us-east-1.amazonaws.com/", strings.NewReader(describeBody))
	r.Header.Set("Content-Type", formContentType)
	if err := v4.NewSigner().SignHTTP(context.Background(), testCreds, r, sha256Hex(describeBody), "elasticache", testRegion, serverTime); err != nil {
		b.Fatal(err)
	}
	if _, _, err := h.srv.authenticate(r, body); err != nil {
		b.Fatalf("authenticate: %v", err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := h.srv.authenticate(r, body); err != nil {
			b.Fatal(err)
		}
	}
}
