package mcdump

// Protocol helpers, and Dump against a scripted server for the replies a
// real memcached gives only under conditions hard to set up.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKeyToken(t *testing.T) {
	cases := []struct {
		key    string
		tok    string
		b, ok  bool
		reason string
	}{
		{"plain:key", "plain:key", false, true, "printable ASCII"},
		{"ключ", "ключ", false, true, "UTF-8"},
		{"a b", base64.StdEncoding.EncodeToString([]byte("a b")), true, true, "space"},
		{"\x00", "AA==", true, true, "NUL"},
		{strings.Repeat("é", 100), strings.Repeat("é", 100), false, true, "long UTF-8"},
		{strings.Repeat("\t", 187), strings.Repeat("\t", 187), false, true, "long with control bytes"},
		{strings.Repeat(" ", 187), "", false, false, "long with spaces"},
		{strings.Repeat("\x00", 250), "", false, false, "long with NUL"},
		{"", "", false, false, "empty"},
		{strings.Repeat("k", 251), "", false, false, "too long"},
	}
	for _, c := range cases {
		tok, b, ok := keyToken([]byte("prefix "), []byte(c.key))
		if ok != c.ok || b != c.b || ok && string(tok) != "prefix "+c.tok {
			t.Errorf("%s: keyToken = %q, %v, %v; want %q, %v, %v", c.reason, tok, b, ok, c.tok, c.b, c.ok)
		}
		if addressable([]byte(c.key)) != c.ok {
			t.Errorf("%s: addressable = %v", c.reason, !c.ok)
		}
		if len(tok) > len("prefix ")+MaxKeyLen {
			t.Errorf("%s: token of %d bytes", c.reason, len(tok)-len("prefix "))
		}
	}
	if tok, _, _ := keyToken(nil, bytes.Repeat([]byte{0xff, 0}, maxB64KeyLen/2)); len(tok) > MaxKeyLen {
		t.Errorf("longest base64 key gives a %d-byte token", len(tok))
	}
}

func TestMetadumpKey(t *testing.T) {
	for line, want := range map[string]string{
		"key=plain exp=-1 la=1 cas=1 fetch=no cls=1 size=71":             "plain",
		"key=%00%01bin%20key%FF%0D%0A exp=1 la=1 cas=3 fetch=no cls=1":   "\x00\x01bin key\xff\r\n",
		"key=a%25b%3Dc%26d+e exp=-1":                                     "a%b=c&d+e",
		"key=%d0%ba%D0%BB exp=-1 la=1 cas=4 fetch=no cls=1 size=68 x=%2": "кл",
		"key=last": "last",
	} {
		got, err := metadumpKey([]byte(line))
		if err != nil || string(got) != want {
			t.Errorf("metadumpKey(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	for _, line := range []string{"cas=1 key=a", "key=%4", "key=%zz"} {
		if _, err := metadumpKey([]byte(line)); err == nil {
			t.Errorf("metadumpKey(%q) succeeded", line)
		}
	}
}

func TestParseVA(t *testing.T) {
	type res struct {
		size  int
		flags uint32
		ttl   time.Duration
	}
	for line, want := range map[string]res{
		"VA 3 f5 t-1":             {3, 5, 0},
		"VA 0 t98 f4294967295":    {0, 4294967295, 98 * time.Second},
		"VA 10 f0 t0":             {10, 0, time.Second}, // expiring this second is not "never"
		"VA 2 f7 t49 b kAAFiaQ==": {2, 7, 49 * time.Second},
	} {
		size, flags, ttl, err := parseVA([]byte(line))
		if err != nil || (res{size, flags, ttl}) != want {
			t.Errorf("parseVA(%q) = %v %v %v, %v; want %+v", line, size, flags, ttl, err, want)
		}
	}
	for _, line := range []string{"EN", "VA", "VA x f1 t1", "VA 1 f1", "VA 1 t1", "VA 1 f4294967296 t1", "VA 1 f1 t-2", "SERVER_ERROR x", "VA 1073741825 f0 t0"} {
		if _, _, _, err := parseVA([]byte(line)); err == nil {
			t.Errorf("parseVA(%q) succeeded", line)
		}
	}
}

func TestExpiry(t *testing.T) {
	c := time.Unix(1_000_000, 0)
	for _, x := range []struct {
		ttl     time.Duration
		now     time.Time
		exp     int64
		live    bool
		comment string
	}{
		{0, c.Add(time.Hour), 0, true, "never expires"},
		{10 * time.Second, c.Add(3 * time.Second), 7, true, "aged"},
		{10 * time.Second, c.Add(10 * time.Second), 0, false, "ran out"},
		{10 * time.Second, c.Add(-time.Hour), 10, true, "clock went back"},
		{31 * 24 * time.Hour, c.Add(time.Second), 1_000_001 + 31*24*3600 - 1, true, "beyond 30 days: absolute"},
		{30*24*time.Hour + time.Second, c.Add(time.Second), 30 * 24 * 3600, true, "down to 30 days: relative"},
	} {
		exp, live := expiry(x.ttl, c, x.now)
		if exp != x.exp || live != x.live {
			t.Errorf("%s: expiry = %d, %v; want %d, %v", x.comment, exp, live, x.exp, x.live)
		}
	}
}

// fakeServer answers lru_crawler metadump and mg like memcached, after
// refusing the first metadumps as script says.
type fakeServer struct {
	mu     sync.Mutex
	script []string // replies to the first metadump requests
	seen   []string // metadump requests received
	items  map[string]string
}

func (s *fakeServer) serve(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.handle(conn)
		}
	}()
	return l.Addr().String()
}

func (s *fakeServer) handle(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		line, err := readLine(br)
		if err != nil {
			return
		}
		f := strings.Fields(string(line))
		var reply string
		switch {
		case len(f) == 3 && f[0] == "lru_crawler" && f[1] == "metadump":
			s.mu.Lock()
			s.seen = append(s.seen, f[2])
			if len(s.script) > 0 {
				reply, s.script = s.script[0]+"\r\n", s.script[1:]
			} else {
				for k := range s.items {
					reply += fmt.Sprintf("key=%s exp=-1 la=1 cas=1 fetch=no cls=1 size=70\n", k)
				}
				reply += "END\r\n"
			}
			s.mu.Unlock()
		case len(f) >= 2 && f[0] == "mg":
			if v, ok := s.items[f[1]]; ok {
				reply = fmt.Sprintf("VA %d t-1 f9\r\n%s\r\n", len(v), v)
			} else {
				reply = "EN\r\n"
			}
		default:
			reply = "ERROR\r\n"
		}
		if _, err := conn.Write([]byte(reply)); err != nil {
			return
		}
	}
}

func TestDumpWaitsForBusyCrawler(t *testing.T) {
	s := &fakeServer{
		script: []string{"BUSY currently processing crawler request", "ERROR locked try again later", "BADCLASS invalid class id"},
		items:  map[string]string{"a": "1", "b": "22"},
	}
	data, st := dumpBytes(t, s.serve(t))
	if st.Items != 2 || st.Bytes != 3 {
		t.Fatalf("Dump stats %+v", st)
	}
	s.mu.Lock()
	got := strings.Join(s.seen, ",")
	s.mu.Unlock()
	if got != "hash,hash,hash,all" {
		t.Errorf("metadump requests %s, want hash,hash,hash,all", got)
	}
	items, _, err := readAll(data)
	if err != nil || len(items) != 2 || items[0].Flags != 9 || items[0].TTL != 0 {
		t.Fatalf("dump holds %+v, %v", items, err)
	}
}

func TestDumpReportsServerError(t *testing.T) {
	s := &fakeServer{script: []string{"ERROR lru crawler disabled"}}
	var buf bytes.Buffer
	_, err := Dump(t.Context(), s.serve(t), &buf)
	if err == nil || !strings.Contains(err.Error(), "lru crawler disabled") {
		t.Fatalf("Dump = %v, want the server's error", err)
	}
	if _, err := Dump(t.Context(), "127.0.0.1:1", &buf); err == nil {
		t.Fatal("Dump of a closed port succeeded")
	}
}
