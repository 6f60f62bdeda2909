package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/service"
	"github.com/hoardcache/hoard/internal/store"
)

const (
	testAccessKey   = "AKIDHOARDAPITEST0001"
	testSecret      = "hoard-api-test-secret/0123456789+abcdefGH"
	testAccount     = "123456789012"
	testRegion      = "us-east-1"
	formContentType = "application/x-www-form-urlencoded; charset=utf-8"
	// describeBody is an implemented action that needs no engines.
	describeBody = "Action=DescribeCacheParameterGroups&Version=2015-02-02&MaxRecords=20"
	// emptyPayloadHash is the SHA-256 of the empty string.
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

var testCreds = aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecret}

// testKeyRing knows exactly one access key.
func testKeyRing() KeyRing {
	return KeyRing{testAccessKey: {AccessKeyID: testAccessKey, Secret: testSecret, Account: testAccount}}
}

// harness is a real api.Server over a real bbolt store, behind a real HTTP listener
// on 127.0.0.1.
type harness struct {
	t   testing.TB
	srv *Server
	ts  *httptest.Server
	// now is the server's clock: fixed when the harness was built with a time, else
	// the zero time and the server uses time.Now.
	now time.Time
}

// newHarness starts a server. A non-zero fixed pins the server's clock to it, so
// that clock-skew cases do not depend on how long the test takes.
func newHarness(t testing.TB, fixed time.Time) *harness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "hoard.db"))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := service.New(st, service.Config{})
	srv := New(svc, testKeyRing(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !fixed.IsZero() {
		srv.now = func() time.Time { return fixed }
	}
	ts := httptest.NewServer(srv) // listens on 127.0.0.1
	t.Cleanup(ts.Close)
	return &harness{t: t, srv: srv, ts: ts, now: fixed}
}

// clock is the time the server believes it is.
func (h *harness) clock() time.Time {
	if h.now.IsZero() {
		return time.Now()
	}
	return h.now
}

func sha256Hex(b string) string {
	sum := sha256.Sum256([]byte(b))
	return hex.EncodeToString(sum[:])
}

// newPost builds an unsigned form POST to the server's root.
func (h *harness) newPost(body string) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+"/", strings.NewReader(body))
	if err != nil {
		h.t.Fatalf("NewRequest: %v", err)
	}
	req.Header.Set("Content-Type", formContentType)
	return req
}

// newGet builds an unsigned GET with the query string.
func (h *harness) newGet(query string) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.ts.URL+"/?"+query, nil)
	if err != nil {
		h.t.Fatalf("NewRequest: %v", err)
	}
	return req
}

// sign signs req in place with the AWS SDK's SigV4 signer (Authorization header
// form). body must be the body req carries.
func sign(t testing.TB, req *http.Request, body string, creds aws.Credentials, svcName, region string, at time.Time) {
	t.Helper()
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, sha256Hex(body), svcName, region, at); err != nil {
		t.Fatalf("SignHTTP: %v", err)
	}
}

// signedPost is a POST of body signed with the test key for elasticache in region at at.
func (h *harness) signedPost(body, region string, at time.Time) *http.Request {
	req := h.newPost(body)
	sign(h.t, req, body, testCreds, "elasticache", region, at)
	return req
}

// presign returns a GET for the query presigned with the AWS SDK's PresignHTTP,
// valid for expires.
func presign(t testing.TB, baseURL, query string, expires time.Duration, creds aws.Credentials, svcName, region string, at time.Time) *http.Request {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("ParseQuery: %v", err)
	}
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	unsigned, err := http.NewRequest(http.MethodGet, baseURL+"/?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	signedURL, signedHeaders, err := v4.NewSigner().PresignHTTP(context.Background(), creds, unsigned, emptyPayloadHash, svcName, region, at)
	if err != nil {
		t.Fatalf("PresignHTTP: %v", err)
	}
	req, err := http.NewRequest(http.MethodGet, signedURL, nil)
	if err != nil {
		t.Fatalf("NewRequest(%s): %v", signedURL, err)
	}
	for k, vs := range signedHeaders {
		if k == "Host" {
			continue // the client sends the URL's host
		}
		req.Header[k] = vs
	}
	return req
}

func (h *harness) presignedGet(query string, expires time.Duration, region string, at time.Time) *http.Request {
	return presign(h.t, h.ts.URL, query, expires, testCreds, "elasticache", region, at)
}

// response is what came back.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends req with a plain client: no retries, no redirects, no signing of its own.
func (h *harness) do(req *http.Request) response {
	h.t.Helper()
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("reading response: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// errorResponse is the query protocol's error envelope.
type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// elementPaths lists the slash-joined paths of every element of a document, in
// order, and fails on malformed XML or on any namespace but ecapi's.
func elementPaths(t testing.TB, doc string) []string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = true
	var stack, paths []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("malformed XML: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Space != ecapi.XMLNamespace {
				t.Errorf("element %s is in namespace %q, want %q", tok.Name.Local, tok.Name.Space, ecapi.XMLNamespace)
			}
			stack = append(stack, tok.Name.Local)
			paths = append(paths, strings.Join(stack, "/"))
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("unclosed elements %v in\n%s", stack, doc)
	}
	return paths
}

// assertError checks the status, the exact shape of the error envelope, its code,
// and that the X-Amzn-RequestId header names the same request. It returns the
// decoded envelope.
func assertError(t testing.TB, res response, status int, code string) errorResponse {
	t.Helper()
	if res.status != status {
		t.Errorf("status = %d, want %d; body:\n%s", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "text/xml" {
		t.Errorf("Content-Type = %q, want text/xml", ct)
	}
	want := []string{
		"ErrorResponse", "ErrorResponse/Error", "ErrorResponse/Error/Type", "ErrorResponse/Error/Code",
		"ErrorResponse/Error/Message", "ErrorResponse/RequestId",
	}
	if got := elementPaths(t, res.body); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("error envelope elements = %v, want %v; body:\n%s", got, want, res.body)
	}
	var e errorResponse
	if err := xml.Unmarshal([]byte(res.body), &e); err != nil {
		t.Fatalf("unmarshal ErrorResponse: %v\n%s", err, res.body)
	}
	if e.XMLName.Space != ecapi.XMLNamespace {
		t.Errorf("ErrorResponse xmlns = %q, want %q", e.XMLName.Space, ecapi.XMLNamespace)
	}
	if e.Error.Type != "Sender" {
		t.Errorf("Error/Type = %q, want Sender", e.Error.Type)
	}
	if e.Error.Code != code {
		t.Errorf("Error/Code = %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if strings.TrimSpace(e.Error.Message) == "" {
		t.Errorf("Error/Message is empty")
	}
	if e.RequestID == "" || res.header.Get("X-Amzn-RequestId") != e.RequestID {
		t.Errorf("RequestId = %q, X-Amzn-RequestId header = %q; want them equal and non-empty", e.RequestID, res.header.Get("X-Amzn-RequestId"))
	}
	return e
}

// describeResponse is DescribeCacheParameterGroups' answer.
type describeResponse struct {
	XMLName xml.Name `xml:"DescribeCacheParameterGroupsResponse"`
	Result  struct {
		Groups []struct {
			Name   string `xml:"CacheParameterGroupName"`
			Family string `xml:"CacheParameterGroupFamily"`
			ARN    string `xml:"ARN"`
		} `xml:"CacheParameterGroups>CacheParameterGroup"`
	} `xml:"DescribeCacheParameterGroupsResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// assertDescribeOK checks a successful DescribeCacheParameterGroups answer and
// returns it.
func assertDescribeOK(t testing.TB, res response) describeResponse {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body:\n%s", res.status, res.body)
	}
	elementPaths(t, res.body) // well-formed, one namespace
	var d describeResponse
	if err := xml.Unmarshal([]byte(res.body), &d); err != nil {
		t.Fatalf("unmarshal DescribeCacheParameterGroupsResponse: %v\n%s", err, res.body)
	}
	if d.XMLName.Space != ecapi.XMLNamespace {
		t.Errorf("response xmlns = %q, want %q", d.XMLName.Space, ecapi.XMLNamespace)
	}
	if len(d.Result.Groups) == 0 {
		t.Errorf("no parameter groups in the answer:\n%s", res.body)
	}
	if d.RequestID == "" || res.header.Get("X-Amzn-RequestId") != d.RequestID {
		t.Errorf("RequestId = %q, X-Amzn-RequestId header = %q; want them equal and non-empty", d.RequestID, res.header.Get("X-Amzn-RequestId"))
	}
	return d
}

// groupExists asks the server, with a correctly signed request, whether the
// caller's account has the parameter group in region.
func (h *harness) groupExists(name, region string) bool {
	h.t.Helper()
	body := "Action=DescribeCacheParameterGroups&Version=2015-02-02&CacheParameterGroupName=" + url.QueryEscape(name)
	res := h.do(h.signedPost(body, region, h.clock()))
	switch res.status {
	case http.StatusOK:
		d := assertDescribeOK(h.t, res)
		return len(d.Result.Groups) == 1 && d.Result.Groups[0].Name == name
	case http.StatusNotFound:
		assertError(h.t, res, http.StatusNotFound, "CacheParameterGroupNotFound")
		return false
	default:
		h.t.Fatalf("DescribeCacheParameterGroups(%s): status %d\n%s", name, res.status, res.body)
		return false
	}
}

// createBody is a CreateCacheParameterGroup form.
func createBody(name string) string {
	return url.Values{
		"Action":                    {"CreateCacheParameterGroup"},
		"Version":                   {ecapi.APIVersion},
		"CacheParameterGroupName":   {name},
		"CacheParameterGroupFamily": {"redis7"},
		"Description":               {"made by sigv4_test"},
	}.Encode()
}
