package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
)

// SigV4 verification: the server rebuilds the canonical request from what it
// received, signs it with the secret of the claimed access key, and compares the
// signatures in constant time. Both the Authorization-header form and the
// presigned query-string form are accepted.

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
	maxClockSkew = 15 * time.Minute
	signedName   = "elasticache"
)

// Principal is who an access key belongs to.
type Principal struct {
	AccessKeyID string
	Secret      string
	Account     string
}

// Credentials looks up access keys.
type Credentials interface {
	Lookup(accessKeyID string) (Principal, bool)
}

// KeyRing is a fixed set of access keys.
type KeyRing map[string]Principal

// Lookup implements Credentials.
func (k KeyRing) Lookup(id string) (Principal, bool) {
	p, ok := k[id]
	return p, ok
}

// signature is what a request claims about its signature.
type signature struct {
	accessKeyID   string
	date          string // yyyymmdd of the credential scope
	region        string
	service       string
	signedHeaders []string
	signature     string
	amzDate       time.Time
	presigned     bool
	expires       time.Duration
}

// authenticate checks the request's signature and returns the principal and the
// region of its credential scope. body is the full request body.
func (s *Server) authenticate(r *http.Request, body []byte) (Principal, string, error) {
	sig, err := parseSignature(r)
	if err != nil {
		return Principal{}, "", err
	}
	principal, ok := s.creds.Lookup(sig.accessKeyID)
	if !ok {
		return Principal{}, "", apierr.InvalidClientTokenID.Errorf("The security token included in the request is invalid.")
	}
	if sig.service != signedName {
		return Principal{}, "", apierr.SignatureDoesNotMatch.Errorf("Credential should be scoped to correct service: '%s'.", signedName)
	}
	now := s.now()
	if sig.presigned {
		if now.After(sig.amzDate.Add(sig.expires)) || sig.amzDate.After(now.Add(maxClockSkew)) {
			return Principal{}, "", apierr.RequestExpired.Errorf("Request has expired (signed at %s, valid for %s).", sig.amzDate.Format(amzDateFmt), sig.expires)
		}
	} else if skew := now.Sub(sig.amzDate); skew > maxClockSkew || skew < -maxClockSkew {
		return Principal{}, "", apierr.RequestExpired.Errorf("Request timestamp %s is more than 15 minutes away from the server time %s.",
			sig.amzDate.Format(amzDateFmt), now.Format(amzDateFmt))
	}
	if sig.amzDate.Format("20060102") != sig.date {
		return Principal{}, "", apierr.SignatureDoesNotMatch.Errorf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'.", sig.date, sig.amzDate.Format("20060102"))
	}

	payloadHash, err := payloadHashOf(r, body)
	if err != nil {
		return Principal{}, "", err
	}
	canonical := canonicalRequest(r, sig, payloadHash)
	scope := sig.date + "/" + sig.region + "/" + sig.service + "/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	stringToSign := sigAlgorithm + "\n" + sig.amzDate.Format(amzDateFmt) + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := s.signingKeys.get(principal.Secret, sig.date, sig.region, sig.service)
	want := hex.EncodeToString(hmacSHA256(key, []byte(stringToSign)))
	if !hmac.Equal([]byte(want), []byte(sig.signature)) {
		return Principal{}, "", apierr.SignatureDoesNotMatch.Errorf("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return principal, sig.region, nil
}

// payloadHashOf returns the payload hash to sign: the body's SHA-256. A client may
// state it in X-Amz-Content-Sha256, but the statement must match the body, or
// anyone who saw one signed request could replay its headers with another body.
// UNSIGNED-PAYLOAD is accepted only when there is no body to leave unsigned.
func payloadHashOf(r *http.Request, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	computed := hex.EncodeToString(sum[:])
	switch stated := r.Header.Get("X-Amz-Content-Sha256"); {
	case stated == "":
		return computed, nil
	case stated == "UNSIGNED-PAYLOAD" && len(body) == 0:
		return stated, nil
	case stated != computed:
		return "", apierr.SignatureDoesNotMatch.Errorf("The provided X-Amz-Content-Sha256 header does not match the SHA-256 of the request body.")
	default:
		return stated, nil
	}
}

// parseSignature reads the signature claims from the Authorization header or, for a
// presigned request, from the X-Amz-* query parameters.
func parseSignature(r *http.Request) (*signature, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		return parseAuthorizationHeader(r, auth)
	}
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") == "" && q.Get("X-Amz-Signature") == "" {
		return nil, apierr.MissingAuthenticationToken.Errorf("Request is missing Authentication Token")
	}
	if q.Get("X-Amz-Algorithm") != sigAlgorithm {
		return nil, apierr.IncompleteSignature.Errorf("Unsupported X-Amz-Algorithm %q; only %s is supported.", q.Get("X-Amz-Algorithm"), sigAlgorithm)
	}
	sig := &signature{presigned: true, signature: q.Get("X-Amz-Signature")}
	for _, name := range []string{"X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Expires"} {
		if q.Get(name) == "" {
			return nil, apierr.IncompleteSignature.Errorf("The request signature is missing the query parameter %s.", name)
		}
	}
	if err := sig.setCredential(q.Get("X-Amz-Credential")); err != nil {
		return nil, err
	}
	sig.signedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || secs < 1 || secs > 604800 {
		return nil, apierr.IncompleteSignature.Errorf("X-Amz-Expires must be a number of seconds from 1 to 604800.")
	}
	sig.expires = time.Duration(secs) * time.Second
	if sig.amzDate, err = time.Parse(amzDateFmt, q.Get("X-Amz-Date")); err != nil {
		return nil, apierr.IncompleteSignature.Errorf("X-Amz-Date %q is not in the form %s.", q.Get("X-Amz-Date"), amzDateFmt)
	}
	return sig, nil
}

func parseAuthorizationHeader(r *http.Request, auth string) (*signature, error) {
	algorithm, rest, _ := strings.Cut(auth, " ")
	if algorithm != sigAlgorithm {
		return nil, apierr.IncompleteSignature.Errorf("Unsupported Authorization algorithm %q; only %s is supported.", algorithm, sigAlgorithm)
	}
	sig := &signature{}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			fields[k] = v
		}
	}
	for _, name := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[name] == "" {
			return nil, apierr.IncompleteSignature.Errorf("Authorization header requires '%s' parameter. Authorization=%s", name, auth)
		}
	}
	if err := sig.setCredential(fields["Credential"]); err != nil {
		return nil, err
	}
	sig.signedHeaders = strings.Split(fields["SignedHeaders"], ";")
	sig.signature = fields["Signature"]
	date := r.Header.Get("X-Amz-Date")
	layout := amzDateFmt
	if date == "" {
		date, layout = r.Header.Get("Date"), http.TimeFormat
	}
	if date == "" {
		return nil, apierr.IncompleteSignature.Errorf("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=%s", auth)
	}
	t, err := time.Parse(layout, date)
	if err != nil {
		return nil, apierr.IncompleteSignature.Errorf("Date header %q cannot be parsed.", date)
	}
	sig.amzDate = t.UTC()
	signsHost := false
	for _, h := range sig.signedHeaders {
		signsHost = signsHost || h == "host"
	}
	if !signsHost {
		return nil, apierr.IncompleteSignature.Errorf("The host header must be signed.")
	}
	return sig, nil
}

// setCredential parses AKID/yyyymmdd/region/service/aws4_request.
func (sig *signature) setCredential(cred string) error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || parts[2] == "" {
		return apierr.IncompleteSignature.Errorf("Credential %q is not of the form <access key>/<date>/<region>/<service>/aws4_request.", cred)
	}
	sig.accessKeyID, sig.date, sig.region, sig.service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

func canonicalRequest(r *http.Request, sig *signature, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL, sig.presigned))
	b.WriteByte('\n')
	for _, name := range sig.signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(sig.signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalURI encodes the path a second time, as SigV4 requires for every service but S3.
func canonicalURI(u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		return "/"
	}
	segments := strings.Split(path, "/")
	for i, seg := range segments {
		segments[i] = uriEncode(seg)
	}
	return strings.Join(segments, "/")
}

func canonicalQuery(u *url.URL, presigned bool) string {
	if u.RawQuery == "" {
		return ""
	}
	q := u.Query()
	if presigned {
		q.Del("X-Amz-Signature")
	}
	// Sorted by encoded name, then by encoded value: sorting whole "name=value"
	// strings would put "a-b=2" before "a=1" and "X.10" before "X.1".
	type pair struct{ k, v string }
	pairs := make([]pair, 0, len(q))
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, pair{uriEncode(k), uriEncode(v)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// uriEncode percent-encodes everything but RFC 3986 unreserved characters.
func uriEncode(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func canonicalHeaderValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		values = r.Header.Values("Content-Length")
		if len(values) == 0 {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = r.Header.Values(name)
	}
	trimmed := make([]string, len(values))
	for i, v := range values {
		trimmed[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(trimmed, ",")
}

func hmacSHA256(key, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return h.Sum(nil)
}

// signingKeyCache keeps derived signing keys: deriving one costs four HMACs and the
// key only changes with the secret, the day, the region and the service.
type signingKeyCache struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func (c *signingKeyCache) get(secret, date, region, service string) []byte {
	id := secret + "\x00" + date + "\x00" + region + "\x00" + service
	c.mu.Lock()
	defer c.mu.Unlock()
	if key, ok := c.keys[id]; ok {
		return key
	}
	if c.keys == nil || len(c.keys) > 1024 {
		c.keys = map[string][]byte{}
	}
	key := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	key = hmacSHA256(key, []byte(region))
	key = hmacSHA256(key, []byte(service))
	key = hmacSHA256(key, []byte("aws4_request"))
	c.keys[id] = key
	return key
}
