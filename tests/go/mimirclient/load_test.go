package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// startReplacingUDPFake is startUDPFake with mediatord's rule of one
// connection per remote: a new connection from the same UDP address
// closes the previous one.
func startReplacingUDPFake(t *testing.T, fs *fakeServer) *quic.Listener {
	t.Helper()
	cert := serverCert(t, fs.priv)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, yggquicQUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	current := map[string]quic.Connection{}
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			mu.Lock()
			if old, ok := current[conn.RemoteAddr().String()]; ok {
				old.CloseWithError(0, "Timed out") // nolint:errcheck
			}
			current[conn.RemoteAddr().String()] = conn
			mu.Unlock()
			go func() {
				for {
					st, err := conn.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go fs.serve(st)
				}
			}()
		}
	}()
	return ln
}

func loadScenario(t *testing.T, addr string, o LoadOptions) (*Scenario, *bytes.Buffer) {
	t.Helper()
	tr, err := dialUDP(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	out := &bytes.Buffer{}
	o.Stdout = out
	return &Scenario{tr: tr, pushWait: 5 * time.Second, reqTimeout: 10 * time.Second, maxSkew: 5 * time.Second,
		logf: func(string, ...any) {}, load: o}, out
}

func manyOptions() LoadOptions {
	return LoadOptions{Sessions: 6, Duration: 2 * time.Second, Interval: 200 * time.Millisecond, Size: 64,
		MaxPushLatency: 5 * time.Second}
}

// "many" passes against a correct server and counts every push.
func TestManySessions(t *testing.T) {
	fs := newFakeServer()
	ln := startUDPFake(t, fs)
	defer ln.Close()
	s, out := loadScenario(t, ln.Addr().String(), manyOptions())
	if err := s.Run("many"); err != nil {
		t.Fatal(err)
	}
	// 6 sessions × 10 messages, each pushed to the 5 others.
	if !strings.Contains(out.String(), "ready 6 sessions") || !strings.Contains(out.String(), "pushes 300/300") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

// With WaitGo, "many" sends only after a line on stdin, and gives up after
// GoTimeout.
func TestManySessionsWaitsForGo(t *testing.T) {
	fs := newFakeServer()
	ln := startUDPFake(t, fs)
	defer ln.Close()
	o := manyOptions()
	o.Duration = 500 * time.Millisecond
	o.WaitGo, o.GoTimeout = true, time.Second
	blocked, w := io.Pipe()
	defer w.Close()
	o.Stdin = blocked
	s, out := loadScenario(t, ln.Addr().String(), o)
	err := s.Run("many")
	if f, ok := err.(*Failure); !ok || f.Step != "wait for go on stdin" || !strings.Contains(out.String(), "ready 6 sessions") {
		t.Fatalf("want a failure while waiting for go after the ready line, got %v\n%s", err, out)
	}
	o.Stdin = strings.NewReader("go\n")
	s, out = loadScenario(t, ln.Addr().String(), o)
	if err := s.Run("many"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "many: 6 sessions") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

// A server that loses one push in five must fail "many" when the pushes are
// counted.
func TestManySessionsDetectsLostPushes(t *testing.T) {
	fs := newFakeServer()
	fs.mut = "drop-push"
	ln := startUDPFake(t, fs)
	defer ln.Close()
	s, _ := loadScenario(t, ln.Addr().String(), manyOptions())
	err := s.Run("many")
	f, ok := err.(*Failure)
	if !ok || f.Step != "check pushes" || !strings.Contains(f.Msg, "expected pushes missing") {
		t.Fatalf("want a missing-push failure at the push check, got %v", err)
	}
	t.Log(f)
}

// "replace" passes when the server replaces the connection, and fails when
// it keeps both.
func TestReplace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the proof of work twice")
	}
	o := LoadOptions{ReplaceWait: time.Second}
	fs := newFakeServer()
	ln := startReplacingUDPFake(t, fs)
	defer ln.Close()
	s, out := loadScenario(t, ln.Addr().String(), o)
	if err := s.Run("replace"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "connection 2 works") {
		t.Fatalf("unexpected output:\n%s", out)
	}

	fs2 := newFakeServer()
	ln2 := startUDPFake(t, fs2)
	defer ln2.Close()
	s, _ = loadScenario(t, ln2.Addr().String(), o)
	err := s.Run("replace")
	if f, ok := err.(*Failure); !ok || f.Step != "the server closes connection 1" {
		t.Fatalf("want a failure when the server keeps connection 1, got %v", err)
	}
}

// "bench" prints one JSON line whose counts add up.
func TestBench(t *testing.T) {
	fs := newFakeServer()
	ln := startUDPFake(t, fs)
	defer ln.Close()
	s, out := loadScenario(t, ln.Addr().String(), LoadOptions{Count: 30, Window: 3, BenchTime: 500 * time.Millisecond, Size: 100, Label: "udp"})
	if err := s.Run("bench"); err != nil {
		t.Fatal(err)
	}
	var r benchResult
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); err != nil {
		t.Fatalf("output is not one JSON line: %v\n%s", err, out)
	}
	if r.Transport != "udp" || r.Seq.N != 30 || r.Seq.PushN != 30 || r.Loop.Window != 3 || r.Loop.Acked == 0 ||
		r.Loop.PushN != r.Loop.Acked || r.Loop.MsgsPerS <= 0 || r.Seq.AckP50us <= 0 || r.Seq.AckMaxus < r.Seq.AckP99us {
		t.Fatalf("inconsistent result: %+v", r)
	}
}
