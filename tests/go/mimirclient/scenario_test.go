package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// The Go mediator's certificate: self-signed ed25519, serial 1, 24 h.
func serverCert(t *testing.T, priv ed25519.PrivateKey) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mediator"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// runScenario runs a scenario; newTr opens B's own transport. It returns
// the transports newTr opened (closed by Run by then; Dials still works).
func runScenario(t *testing.T, tr Transport, newTr func(context.Context) (Transport, error), key []byte, name string, third bool) []Transport {
	t.Helper()
	var extra []Transport
	s := &Scenario{tr: tr, serverKey: key, pushWait: 5 * time.Second, reqTimeout: 10 * time.Second,
		maxSkew: 5 * time.Second, third: third, logf: t.Logf,
		newTransport: func(ctx context.Context) (Transport, error) {
			x, err := newTr(ctx)
			if err == nil {
				extra = append(extra, x)
			}
			return x, err
		}}
	if err := s.Run(name); err != nil {
		t.Fatal(err)
	}
	return extra
}

func startUDPFake(t *testing.T, fs *fakeServer) *quic.Listener {
	t.Helper()
	cert := serverCert(t, fs.priv)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, yggquicQUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
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

// The scenario against the in-memory fake mediator over plain QUIC/UDP.
func TestScenarioUDP(t *testing.T) {
	fs := newFakeServer()
	ln := startUDPFake(t, fs)
	defer ln.Close()
	for _, tc := range []struct {
		name  string
		third bool
		key   []byte
	}{{"ping", false, nil}, {"full", true, nil}, {"full", false, fs.pub}} {
		dial := func(ctx context.Context) (Transport, error) { return dialUDP(ctx, ln.Addr().String()) }
		tr, err := dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		extra := runScenario(t, tr, dial, tc.key, tc.name, tc.third)
		if tc.name == "full" && (len(extra) != 1 || extra[0].Dials() != 2 || tr.Dials() != 1) {
			t.Fatalf("want 1 dial on the shared transport and 2 on B's own; got %d and %d transports for B", tr.Dials(), len(extra))
		}
		tr.Close()
	}
}

// The scenario over the real stack: an in-process Yggdrasil node for the
// fake mediator (listening on loopback TCP, QUIC idle timeout 120 s as in
// the Go mediator) and the client's own node peered to it, QUIC over
// Yggdrasil with yggquic's conventions (yggtransport.go) on both sides.
func TestScenarioYggdrasil(t *testing.T) {
	if testing.Short() {
		t.Skip("Yggdrasil test takes a few seconds")
	}
	fs := newFakeServer()
	cert := serverCert(t, fs.priv)
	node, err := newYggNode(&cert, 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer node.close()
	l, err := node.core.Listen(&url.URL{Scheme: "tcp", Host: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := node.serve(fs.serve); err != nil {
		t.Fatal(err)
	}
	peer := "tcp://" + l.Addr().(*net.TCPAddr).String()
	dial := func(ctx context.Context) (Transport, error) {
		return dialYgg(ctx, peer, fs.pub, 60*time.Second, t.Logf)
	}
	tr, err := dialYgg(context.Background(), peer, fs.pub, 60*time.Second, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	extra := runScenario(t, tr, dial, fs.pub, "full", true)
	// Every session of X, A and C must have been a stream on the one
	// connection; B, on its own node, dialled once and redialled once
	// (its stream-level reconnect reused its first connection).
	if d := tr.Dials(); d != 1 {
		t.Fatalf("client dialled %d QUIC connections, want 1", d)
	}
	if len(extra) != 1 {
		t.Fatalf("B opened %d transports, want 1", len(extra))
	}
	if d := extra[0].Dials(); d != 2 {
		t.Fatalf("B's node dialled %d QUIC connections, want 2", d)
	}
	if k := extra[0].(*yggTransport).node.publicKey(); k.Equal(tr.node.publicKey()) {
		t.Fatalf("B's node has the shared node's key %x", []byte(k))
	}
}

// Each injected deviation must stop the scenario at the step where it
// first shows.
func TestScenarioDetectsDeviations(t *testing.T) {
	if testing.Short() {
		t.Skip("each case runs the proof of work")
	}
	cases := []struct{ mut, step, contains string }{
		{"echo", "A: SEND_MESSAGE", "unexpected push"},
		{"ms-timestamp", "A: SEND_MESSAGE", "TIMESTAMP"},
		{"id-only-reply", "A: SEND_MESSAGE", "MESSAGE_GUID"},
		{"no-idempotency", "A: SEND_MESSAGE retry with the same guid (idempotent)", "want the original"},
		{"binary-delete-chat", "DELETE_CHAT", "malformed GOT_MESSAGE"},
	}
	for _, tc := range cases {
		t.Run(tc.mut, func(t *testing.T) {
			fs := newFakeServer()
			fs.mut = tc.mut
			ln := startUDPFake(t, fs)
			defer ln.Close()
			tr, err := dialUDP(context.Background(), ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			s := &Scenario{tr: tr, pushWait: 2 * time.Second, reqTimeout: 5 * time.Second, maxSkew: 5 * time.Second, third: true, logf: func(string, ...any) {},
				newTransport: func(ctx context.Context) (Transport, error) { return dialUDP(ctx, ln.Addr().String()) }}
			err = s.Run("full")
			f, ok := err.(*Failure)
			if !ok {
				t.Fatalf("want a scenario failure, got %v", err)
			}
			if f.Step != tc.step || !strings.Contains(f.Msg, tc.contains) {
				t.Fatalf("want failure at step %q containing %q, got %v", tc.step, tc.contains, f)
			}
			t.Log(f)
		})
	}
}
