package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"io"
	"math/rand"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRDB is a well-formed RDB of n bytes: header, filler, EOF opcode, CRC-64.
func fakeRDB(rng *rand.Rand, n int) []byte {
	b := make([]byte, n-8)
	copy(b, "REDIS0011")
	rng.Read(b[9 : n-9])
	b[n-9] = 0xff
	crc := ^crc64.Update(^uint64(0), crcJones, b)
	return binary.LittleEndian.AppendUint64(b, crc)
}

// TestStreamRDBFraming runs streamRDB against a fake server that sends the
// reply in pieces of every size, so that the EOF mark straddles reads.
func TestStreamRDBFraming(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	mark := "0123456789abcdef0123456789abcdef01234567"
	rdb := fakeRDB(rng, 50000)
	type reply struct {
		name     string
		password string
		replconf string // reply to REPLCONF
		header   string
		body     []byte
		want     string // error substring, "" for success
	}
	noEOF := slices.Clone(rdb)
	noEOF[len(noEOF)-9] = 0xfe
	cases := []reply{
		{name: "eof", header: "$EOF:" + mark, body: append(slices.Clone(rdb), mark...)},
		{name: "length", header: "$" + strconv.Itoa(len(rdb)), body: append(slices.Clone(rdb), "*1\r\n$4\r\nPING\r\n"...)},
		{name: "auth", password: "pw", header: "$EOF:" + mark, body: append(slices.Clone(rdb), mark...)},
		{name: "old server", replconf: "-ERR Unrecognized REPLCONF option: rdb-only", header: "$" + strconv.Itoa(len(rdb)), body: rdb},
		{name: "sync error", header: "-NOPERM this user has no permissions to run the 'sync' command", want: "NOPERM"},
		{name: "not rdb", header: "$EOF:" + mark, body: append([]byte("HELLO WORLD"), mark...), want: "not REDIS"},
		{name: "no eof opcode", header: "$EOF:" + mark, body: append(noEOF, mark...), want: "EOF opcode"},
		{name: "truncated eof", header: "$EOF:" + mark, body: rdb[:1000], want: "closed the connection"},
		{name: "truncated length", header: "$" + strconv.Itoa(len(rdb)), body: rdb[:1000], want: "bytes before the end"},
		{name: "short mark", header: "$EOF:abc", want: "malformed"},
	}
	for _, tc := range cases {
		for _, chunk := range []int{1, 39, 40, 41, 4096, 0} {
			if tc.want != "" && chunk != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				var got []string
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := l.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					r := bufio.NewReader(c)
					for {
						args, err := readRESP(r)
						if err != nil {
							return
						}
						got = append(got, strings.Join(args, " "))
						switch strings.ToUpper(args[0]) {
						case "AUTH":
							io.WriteString(c, "+OK\r\n")
						case "REPLCONF":
							if tc.replconf != "" {
								io.WriteString(c, tc.replconf+"\r\n")
							} else {
								io.WriteString(c, "+OK\r\n")
							}
						case "SYNC":
							io.WriteString(c, "\n\n")
							time.Sleep(5 * time.Millisecond)
							io.WriteString(c, "\n"+tc.header+"\r\n")
							body := tc.body
							for len(body) > 0 {
								n := chunk
								if n == 0 {
									n = 1 + rng.Intn(10000)
								}
								n = min(n, len(body))
								if _, err := c.Write(body[:n]); err != nil {
									return
								}
								body = body[n:]
							}
							if chunk == 1 {
								time.Sleep(time.Millisecond)
							}
							return
						}
					}
				}()
				conn, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				var out bytes.Buffer
				sink := &rdbSink{w: &out}
				err = streamRDB(conn, tc.password, "", sink)
				if err == nil {
					err = sink.finish()
				}
				conn.Close()
				wg.Wait()
				if tc.want != "" {
					if err == nil || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("err %v, want %q", err, tc.want)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out.Bytes(), rdb) || sink.n != int64(len(rdb)) {
					t.Fatalf("got %d bytes, want the %d of the RDB", out.Len(), len(rdb))
				}
				wantCmds := []string{"REPLCONF capa eof", "REPLCONF rdb-only 1", "SYNC"}
				if tc.password != "" {
					wantCmds = append([]string{"AUTH " + tc.password}, wantCmds...)
				}
				if !slices.Equal(got, wantCmds) {
					t.Errorf("commands %q, want %q", got, wantCmds)
				}
			})
		}
	}
}

// readRESP reads one RESP array of bulk strings.
func readRESP(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil {
		return nil, err
	}
	var args []string
	for i := 0; i < n; i++ {
		if _, err := r.ReadString('\n'); err != nil {
			return nil, err
		}
		a, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args = append(args, strings.TrimSuffix(a, "\r\n"))
	}
	return args, nil
}

func TestRDBHeader(t *testing.T) {
	for in, want := range map[string]int{"REDIS0011": 11, "REDIS0006xyz": 6, "VALKEY080": 80} {
		if v, err := rdbHeader([]byte(in)); err != nil || v != want {
			t.Errorf("rdbHeader(%q) = %d, %v", in, v, err)
		}
	}
	for _, in := range []string{"", "REDIS", "REDIS001", "REDIS00a1", "redis0011", "VALKEY08", "MEMCACHED"} {
		if _, err := rdbHeader([]byte(in)); err == nil {
			t.Errorf("rdbHeader(%q) accepted", in)
		}
	}
	// redis's CRC-64 check value.
	if got := ^crc64.Update(^uint64(0), crcJones, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Errorf("crc64 jones = %x", got)
	}
}

// TestLoadTimeout: a node that answers -LOADING is waited for up to
// LoadTimeout, beyond ReadyTimeout.
func TestLoadTimeout(t *testing.T) {
	ctx := context.Background()
	d := newDriver(t, "redis")
	a := startNode(t, d, redisSpec(t, map[string]string{"repl-diskless-sync-delay": "0"}))
	populate(t, testClient(t, a, "", 0), 3000)
	dir := t.TempDir()
	if _, err := d.(Snapshotter).Snapshot(ctx, a, filepath.Join(dir, redisDBFilename)); err != nil {
		t.Fatal(err)
	}
	oldReady, oldLoad := ReadyTimeout, LoadTimeout
	defer func() { ReadyTimeout, LoadTimeout = oldReady, oldLoad }()
	ReadyTimeout = 300 * time.Millisecond
	for _, load := range []time.Duration{100 * time.Millisecond, time.Minute} {
		LoadTimeout = load
		spec := Spec{Dir: dir, Host: "127.0.0.1", Port: freePort(t)}
		// 300 µs per key: the load takes about a second, during which redis
		// answers -LOADING.
		args := []string{"--port", strconv.Itoa(spec.Port), "--bind", spec.Host, "--dir", dir, "--save", "",
			"--dbfilename", redisDBFilename, "--key-load-delay", "300", "--loading-process-events-interval-bytes", "1024"}
		t0 := time.Now()
		h, err := launch(ctx, needBinary(t, "redis-server"), args, spec, redisProbe)
		took := time.Since(t0)
		if load < ReadyTimeout {
			if err == nil || !strings.Contains(err.Error(), "did not become ready within 300ms") {
				t.Errorf("LoadTimeout %s: err %v", load, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("LoadTimeout %s: %v", load, err)
		}
		if took < ReadyTimeout {
			t.Errorf("loaded in %s: the test does not test LoadTimeout", took)
		}
		if n := dbsize(t, testClient(t, h, "", 0)); n != 3000 {
			t.Errorf("%d keys loaded", n)
		}
		if err := d.Stop(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
}
