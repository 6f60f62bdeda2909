// Package api is hoard's HTTP front: it authenticates each request (SigV4), decodes
// the AWS Query form into the operation's input shape, calls the service, and
// writes the XML envelope or the error. It is the only layer that sees HTTP.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hoardcache/hoard/internal/apierr"
	"github.com/hoardcache/hoard/internal/awsquery"
	"github.com/hoardcache/hoard/internal/ecapi"
	"github.com/hoardcache/hoard/internal/service"
)

// maxBodyBytes bounds a request body; query requests are small.
const maxBodyBytes = 4 << 20

// Server serves the ElastiCache API.
type Server struct {
	svc         *service.Service
	creds       Credentials
	log         *slog.Logger
	now         func() time.Time
	ops         map[string]handler
	signingKeys signingKeyCache
	buffers     sync.Pool
	cacheMu     sync.Mutex
	resultCache map[string][]byte // by request parameters, for pureOperations
}

// New returns a server for svc that accepts requests signed with creds.
func New(svc *service.Service, creds Credentials, log *slog.Logger) *Server {
	return &Server{svc: svc, creds: creds, log: log, now: time.Now, ops: operations(), resultCache: map[string][]byte{},
		buffers: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

// ServeHTTP handles one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := newRequestID()
	w.Header().Set("X-Amzn-RequestId", reqID)
	action, status, err := s.handle(w, r, reqID)
	if err != nil {
		status = s.writeError(w, reqID, action, err)
	}
	level := slog.LevelInfo
	switch {
	case status == http.StatusNotImplemented:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	attrs := []any{"request_id", reqID, "action", action, "status", status, "duration", time.Since(start)}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	s.log.Log(r.Context(), level, "request", attrs...)
}

// handle does the work of a request and returns its action and status; on error,
// nothing has been written yet.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, reqID string) (string, int, error) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return "", 0, apierr.InvalidAction.Errorf("Unsupported HTTP method %s; use POST or GET.", r.Method)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return "", 0, apierr.MalformedQueryString.Errorf("Could not read the request body: %v", err)
	}
	if len(body) > maxBodyBytes {
		return "", 0, apierr.InvalidQueryParameter.Errorf("The request body exceeds %d bytes.", maxBodyBytes)
	}
	principal, region, err := s.authenticate(r, body)
	if err != nil {
		return "", 0, err
	}
	form, err := requestForm(r, body)
	if err != nil {
		return "", 0, err
	}
	action := form.Get("Action")
	if action == "" {
		return "", 0, apierr.MissingAction.Errorf("The request must contain the parameter Action.")
	}
	if v := form.Get("Version"); v != "" && v != ecapi.APIVersion {
		return action, 0, apierr.InvalidAction.Errorf("Version %s is not valid for this web service; use %s.", v, ecapi.APIVersion)
	}
	h, ok := s.ops[action]
	if !ok {
		if slices.Contains(notYetImplemented, action) {
			return action, 0, apierr.NotImplemented.Errorf("hoard does not implement %s yet.", action)
		}
		return action, 0, apierr.InvalidAction.Errorf("The action %s is not valid for this web service.", action)
	}
	ctx := service.WithCaller(r.Context(), service.Caller{RequestID: reqID, Account: principal.Account, Region: region})
	encoded, err := s.result(ctx, action, h, form)
	if err != nil {
		return action, 0, err
	}
	buf := s.buffers.Get().(*bytes.Buffer)
	defer s.buffers.Put(buf)
	buf.Reset()
	writeEnvelope(buf, action, ecapi.Operations[action].ResultWrapper, reqID, encoded)
	writeXML(w, http.StatusOK, buf.Bytes())
	return action, http.StatusOK, nil
}

// pureOperations answer from their input alone, and their answers never change
// while hoard runs (the parameter catalogues are compiled in), so their encoded
// results are cached.
var pureOperations = map[string]bool{"DescribeEngineDefaultParameters": true}

const maxCachedResults = 512

// result runs the operation and returns its encoded result elements (nil when the
// operation has no result), from the cache for pure operations.
func (s *Server) result(ctx context.Context, action string, h handler, form url.Values) ([]byte, error) {
	var key string
	if pureOperations[action] {
		key = resultCacheKey(form)
		s.cacheMu.Lock()
		cached, ok := s.resultCache[key]
		s.cacheMu.Unlock()
		if ok {
			return cached, nil
		}
	}
	result, err := h(ctx, s.svc, form)
	if err != nil || result == nil {
		return nil, err
	}
	var b bytes.Buffer
	awsquery.EncodeFields(&b, result)
	if key != "" {
		s.cacheMu.Lock()
		if len(s.resultCache) >= maxCachedResults {
			clear(s.resultCache)
		}
		s.resultCache[key] = b.Bytes()
		s.cacheMu.Unlock()
	}
	return b.Bytes(), nil
}

// resultCacheKey is the request's parameters, without the signature's.
func resultCacheKey(form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		if !strings.HasPrefix(k, "X-Amz-") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v) + "&")
		}
	}
	return b.String()
}

// requestForm merges the form-encoded body with the URL's query parameters, so
// that both POST bodies and GET query strings carry the Query API's parameters.
func requestForm(r *http.Request, body []byte) (url.Values, error) {
	form, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apierr.MalformedQueryString.Errorf("The query string is malformed: %v", err)
	}
	if r.Method == http.MethodPost && len(body) > 0 {
		bodyForm, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, apierr.MalformedQueryString.Errorf("The form-encoded body is malformed: %v", err)
		}
		for k, vs := range bodyForm {
			form[k] = append(form[k], vs...)
		}
	}
	return form, nil
}

func writeEnvelope(b *bytes.Buffer, action, resultWrapper, reqID string, result []byte) {
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<")
	b.WriteString(action)
	b.WriteString(`Response xmlns="` + ecapi.XMLNamespace + `">`)
	if result != nil && resultWrapper != "" {
		b.WriteString("<" + resultWrapper + ">")
		b.Write(result)
		b.WriteString("</" + resultWrapper + ">")
	}
	b.WriteString("<ResponseMetadata><RequestId>")
	b.WriteString(reqID)
	b.WriteString("</RequestId></ResponseMetadata></")
	b.WriteString(action)
	b.WriteString("Response>\n")
}

// writeError writes the one error envelope every failure uses and returns its
// status. Errors without a wire code are internal: logged, and answered as
// InternalFailure without their details.
func (s *Server) writeError(w http.ResponseWriter, reqID, action string, err error) int {
	e, ok := apierr.As(err)
	if !ok {
		if errors.Is(err, context.Canceled) {
			return 499 // the client went away; nothing to write
		}
		s.log.Error("internal failure", "request_id", reqID, "action", action, "error", err)
		e = apierr.InternalFailure.Errorf("An internal error occurred (request %s).", reqID)
	}
	faultType := "Sender"
	if !e.Sender {
		faultType = "Receiver"
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<ErrorResponse xmlns="` + ecapi.XMLNamespace + `"><Error><Type>` + faultType + `</Type><Code>`)
	awsquery.Escape(&b, e.Code)
	b.WriteString("</Code><Message>")
	awsquery.Escape(&b, e.Message)
	b.WriteString("</Message></Error><RequestId>" + reqID + "</RequestId></ErrorResponse>\n")
	writeXML(w, e.Status, b.Bytes())
	return e.Status
}

// writeXML sends a whole XML document with its length, in one write.
func writeXML(w http.ResponseWriter, status int, doc []byte) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(status)
	_, _ = w.Write(doc)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
