package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/yggdrasil-network/yggdrasil-go/src/config"

	"mediatord/tests/go/mimirclient/mediator"
)

// Transport opens mediator sessions (one bidirectional QUIC stream each)
// on one QUIC connection to the mediator.
type Transport interface {
	// OpenSession opens a new bidirectional stream on the connection.
	OpenSession(ctx context.Context) (mediator.Stream, error)
	// PeerKey is the ed25519 key of the certificate the server presented
	// on the connection carrying stream s.
	PeerKey(s mediator.Stream) (ed25519.PublicKey, error)
	// CloseConnection closes the QUIC connection to the mediator
	// (CONNECTION_CLOSE) but keeps the local node key and socket, as the
	// real client's messenger.closeConnection(pubkey) does.
	CloseConnection() error
	// Redial dials a fresh QUIC connection to the mediator from the same
	// local node key and socket (closing the old one if it is still
	// open); later sessions are streams on it.
	Redial(ctx context.Context) error
	// Dials is the number of QUIC connections dialled so far.
	Dials() int
	Describe() string
	Close() error
}

// yggquicQUICConfig is the quic.Config of the yggquic convention (see
// yggtransport.go) with the mobile messenger's idle timeout (300 s) and
// InitialPacketSize = uint16(core.MTU()) = 65535, which quic-go clamps to
// 1452. The -udp transport has no Yggdrasil core to ask, so the MTU is
// fixed here.
func yggquicQUICConfig() *quic.Config {
	return quicConfig(65535, clientIdleTimeout)
}

// ---- -udp: plain quic-go over UDP with yggquic's settings ----

type udpTransport struct {
	udp     *net.UDPConn
	tr      *quic.Transport
	raddr   *net.UDPAddr
	tlsConf *tls.Config
	nodeKey ed25519.PublicKey
	remote  string

	mu     sync.Mutex
	conn   quic.Connection
	dials  int
	closes closeClock
}

// closeSettle is how long a quic.Transport is left alone after one of its
// connections was closed before it dials again. quic-go v0.52 (the version
// the yggdrasil-go v0.5.12 core builds with, so it cannot be upgraded here)
// can deadlock when the timer that retires a closed connection's IDs empties
// the transport's handler map while Dial holds the transport lock: the timer
// takes the two locks in the opposite order (fixed upstream by quic-go
// PR #5220, after v0.52). It hung a CI run in Redial. The timer fires three
// PTOs after the close, a few tens of milliseconds on loopback and local
// Yggdrasil links, so waiting this long before the next dial avoids it.
const closeSettle = 2 * time.Second

// closeClock remembers when a transport last closed a connection.
type closeClock struct{ last time.Time }

func (c *closeClock) closed() { c.last = time.Now() }

// settle waits until closeSettle has passed since the last close.
func (c *closeClock) settle(ctx context.Context) {
	wait := time.Until(c.last.Add(closeSettle))
	if wait <= 0 {
		return
	}
	select {
	case <-time.After(wait):
	case <-ctx.Done():
	}
}

func dialUDP(ctx context.Context, hostport string) (*udpTransport, error) {
	raddr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", hostport, err)
	}
	// The node key and certificate are made exactly as the real client's
	// messenger does (config.GenerateConfig: random ed25519 key,
	// self-signed certificate with CN = hex key).
	cfg := config.GenerateConfig()
	cert := *cfg.Certificate
	priv, ok := cert.PrivateKey.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("generated certificate key is not ed25519")
	}
	pub := priv.Public().(ed25519.PublicKey)
	tlsConf := &tls.Config{
		ServerName:         hex.EncodeToString(pub),
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true,
	}
	network := "udp4"
	if raddr.IP.To4() == nil {
		network = "udp6"
	}
	udp, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("listen udp: %w", err)
	}
	t := &udpTransport{udp: udp, tr: &quic.Transport{Conn: udp}, raddr: raddr, tlsConf: tlsConf, nodeKey: pub, remote: hostport}
	if err := t.Redial(ctx); err != nil {
		t.tr.Close()
		udp.Close()
		return nil, err
	}
	return t, nil
}

// Redial dials a new connection on the same UDP socket (so the mediator,
// which names plain-QUIC peers by UDP address, sees the same remote).
func (t *udpTransport) Redial(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		t.conn.CloseWithError(0, "replaced") // nolint:errcheck
		t.conn = nil
		t.closes.closed()
	}
	t.closes.settle(ctx)
	dctx, cancel := context.WithTimeout(ctx, yggDialTimeout)
	defer cancel()
	conn, err := t.tr.Dial(dctx, t.raddr, t.tlsConf, yggquicQUICConfig())
	if err != nil {
		return fmt.Errorf("QUIC dial %s: %w", t.remote, err)
	}
	t.conn = conn
	t.dials++
	return nil
}

func (t *udpTransport) CloseConnection() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return nil
	}
	err := t.conn.CloseWithError(0, "closed")
	t.conn = nil
	t.closes.closed()
	return err
}

func (t *udpTransport) Dials() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dials
}

func (t *udpTransport) OpenSession(ctx context.Context) (mediator.Stream, error) {
	t.mu.Lock()
	conn := t.conn
	t.mu.Unlock()
	if conn == nil {
		return nil, errors.New("no QUIC connection (closed; Redial first)")
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &yggStream{Stream: st, conn: conn}, nil
}

func (t *udpTransport) PeerKey(s mediator.Stream) (ed25519.PublicKey, error) {
	us, ok := s.(*yggStream)
	if !ok {
		return nil, fmt.Errorf("stream %T is not a QUIC stream of this transport", s)
	}
	return certKey(us.conn.ConnectionState().TLS)
}

func (t *udpTransport) Describe() string {
	return fmt.Sprintf("quic-go over UDP to %s (local node key %x, SNI = that key)", t.remote, []byte(t.nodeKey))
}

func (t *udpTransport) Close() error {
	t.CloseConnection() // nolint:errcheck
	t.tr.Close()
	return t.udp.Close()
}

func certKey(st tls.ConnectionState) (ed25519.PublicKey, error) {
	if len(st.PeerCertificates) != 1 {
		return nil, fmt.Errorf("server presented %d certificates, want exactly 1", len(st.PeerCertificates))
	}
	k, ok := st.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("server certificate key is %T, want ed25519", st.PeerCertificates[0].PublicKey)
	}
	if st.NegotiatedProtocol != "" {
		return nil, fmt.Errorf("ALPN %q negotiated, want none", st.NegotiatedProtocol)
	}
	return k, nil
}

// cancelRead stops the receive side of a QUIC stream, if it is one.
func cancelRead(s mediator.Stream) {
	if c, ok := s.(interface{ CancelRead(quic.StreamErrorCode) }); ok {
		c.CancelRead(0)
	}
}
