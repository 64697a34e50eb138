package main

// QUIC over an in-process Yggdrasil node, following yggquic's conventions.
//
// Mimir 2.x clients and the Go mediator carry the mediator protocol over
// Revertron/yggquic. That module is not served by the Go module proxy, so
// this file implements the same conventions itself, directly on quic-go
// v0.52.0 and the yggdrasil-go v0.5.12 core. It is written for this test
// client and is not a general-purpose library.
//
// The conventions (what a peer observes on the wire):
//
//   - The node is a yggdrasil-go core.Core. The core itself is the
//     net.PacketConn under one quic.Transport; its addresses are ironwood
//     types.Addr values, i.e. the raw 32-byte ed25519 node keys. A remote
//     is dialled by its key; its Yggdrasil IPv6 address plays no part.
//   - TLS: the caller's self-signed ed25519 certificate (the client uses
//     the one yggdrasil-go's config.GenerateConfig makes for a fresh random
//     key), ServerName = lower-case hex of the LOCAL node key (64
//     characters), InsecureSkipVerify, no NextProtos (no ALPN), no client
//     certificate requested. One tls.Config serves dialling and listening.
//   - quic.Config: HandshakeIdleTimeout 8 s; MaxIdleTimeout = the caller's
//     timeout (300 s on the mobile messenger path, 120 s in the Go
//     mediator); KeepAlivePeriod 60 s; InitialPacketSize =
//     uint16(core.MTU()) = 65535, which quic-go clamps to 1452;
//     DisablePathMTUDiscovery; Allow0RTT false; MaxStreamReceiveWindow
//     1 MiB; MaxConnectionReceiveWindow 2 MiB; no token store.
//   - At most one QUIC connection per remote key. Opening a session reuses
//     it and opens a new bidirectional stream (OpenStreamSync); only when
//     there is none (or it has died) is a new connection dialled, with a
//     5 s timeout. One failed stream open on a cached connection is retried
//     once on a freshly dialled connection.
//   - Each stream is one session; there is no framing of our own.
//
// Differences from yggquic that do not change what the mediator sees:
//
//   - yggquic makes every node a QUIC server too. The client node here only
//     dials (a mediator never dials its clients, and a listener on the
//     client's transport changes nothing in the packets it sends); the fake
//     mediator in the tests calls serve, which listens with the same
//     configuration.
//   - yggquic also accepts streams the server opens on a dialled
//     connection; the mediator protocol never does that, so the client
//     does not.

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	iwt "github.com/Arceliar/ironwood/types"
	"github.com/quic-go/quic-go"
	"github.com/yggdrasil-network/yggdrasil-go/src/config"
	"github.com/yggdrasil-network/yggdrasil-go/src/core"

	"mediatord/tests/go/mimirclient/mediator"
)

const (
	// yggDialTimeout bounds one QUIC dial (handshake included).
	yggDialTimeout = 5 * time.Second
	// closeGrace is how long close waits after closing connections before
	// stopping the Yggdrasil core, so that CONNECTION_CLOSE gets out.
	closeGrace = 300 * time.Millisecond
	// clientIdleTimeout is the MaxIdleTimeout the mobile messenger uses.
	clientIdleTimeout = 300 * time.Second
)

// quicConfig returns the QUIC settings of the yggquic convention for the
// given initial packet size and idle timeout.
func quicConfig(initialPacketSize uint16, idle time.Duration) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:       8 * time.Second,
		MaxIdleTimeout:             idle,
		KeepAlivePeriod:            60 * time.Second,
		InitialPacketSize:          initialPacketSize,
		DisablePathMTUDiscovery:    true,
		Allow0RTT:                  false,
		MaxStreamReceiveWindow:     1 << 20,
		MaxConnectionReceiveWindow: 2 << 20,
		TokenStore:                 nil,
	}
}

// yggNode is an in-process Yggdrasil node with QUIC on top of it.
type yggNode struct {
	core     *core.Core
	qt       *quic.Transport
	tlsConf  *tls.Config
	quicConf *quic.Config

	mu     sync.Mutex // held while looking up or dialling a connection
	conns  map[string]quic.Connection
	ln     *quic.Listener
	closed bool
	dials  int // successful dials, for the tests
	closes closeClock
}

// newYggNode starts a Yggdrasil node whose key is cert's ed25519 key (no
// peers, no listeners yet) and prepares QUIC on it with the given idle
// timeout.
func newYggNode(cert *tls.Certificate, idle time.Duration) (*yggNode, error) {
	c, err := core.New(cert, nil)
	if err != nil {
		return nil, fmt.Errorf("start Yggdrasil node: %w", err)
	}
	return &yggNode{
		core: c,
		qt:   &quic.Transport{Conn: c},
		tlsConf: &tls.Config{
			ServerName:         hex.EncodeToString(c.PublicKey()),
			Certificates:       []tls.Certificate{*cert},
			InsecureSkipVerify: true,
		},
		quicConf: quicConfig(uint16(c.MTU()), idle),
		conns:    map[string]quic.Connection{},
	}, nil
}

// addPeer adds a persistent outbound peering to uri.
func (n *yggNode) addPeer(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("peer URI %q: %w", uri, err)
	}
	return n.core.AddPeer(u, "")
}

// conn returns the live connection to key, dialling one if needed. fresh
// forces a new dial.
func (n *yggNode) conn(ctx context.Context, key []byte, fresh bool) (quic.Connection, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, net.ErrClosed
	}
	id := hex.EncodeToString(key)
	if c, ok := n.conns[id]; ok {
		if !fresh && c.Context().Err() == nil {
			return c, nil
		}
		c.CloseWithError(0, "replaced") // nolint:errcheck
		delete(n.conns, id)
		n.closes.closed()
	}
	n.closes.settle(ctx)
	dctx, cancel := context.WithTimeout(ctx, yggDialTimeout)
	defer cancel()
	c, err := n.qt.Dial(dctx, iwt.Addr(append([]byte(nil), key...)), n.tlsConf, n.quicConf)
	if err != nil {
		return nil, err
	}
	n.conns[id] = c
	n.dials++
	return c, nil
}

// openStream opens a new session stream to the node with the given key.
func (n *yggNode) openStream(ctx context.Context, key []byte) (*yggStream, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("remote key has %d bytes, want %d", len(key), ed25519.PublicKeySize)
	}
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		c, err := n.conn(ctx, key, attempt > 0)
		if err != nil {
			return nil, err
		}
		st, err := c.OpenStreamSync(ctx)
		if err == nil {
			return &yggStream{Stream: st, conn: c}, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// serve listens for QUIC connections on the node and runs handle on every
// stream of every accepted connection, until the node is closed.
func (n *yggNode) serve(handle func(io.ReadWriteCloser)) error {
	ln, err := n.qt.Listen(n.tlsConf, n.quicConf)
	if err != nil {
		return fmt.Errorf("QUIC listen: %w", err)
	}
	n.mu.Lock()
	n.ln = ln
	n.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				for {
					st, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					go handle(st)
				}
			}()
		}
	}()
	return nil
}

// closeConn closes the cached connection to key, if any.
func (n *yggNode) closeConn(key []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := hex.EncodeToString(key)
	c, ok := n.conns[id]
	if !ok {
		return nil
	}
	delete(n.conns, id)
	n.closes.closed()
	return c.CloseWithError(0, "closed")
}

func (n *yggNode) publicKey() ed25519.PublicKey { return n.core.PublicKey() }

// close ends all connections, the listener and the node.
func (n *yggNode) close() error {
	n.mu.Lock()
	n.closed = true
	hadConns := len(n.conns) > 0
	for id, c := range n.conns {
		c.CloseWithError(0, "bye") // nolint:errcheck
		delete(n.conns, id)
	}
	ln := n.ln
	n.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	if hadConns {
		// The CONNECTION_CLOSE packets are handed to the core
		// asynchronously; stopping it at once drops them and leaves the
		// remote's connection to its idle timeout.
		time.Sleep(closeGrace)
	}
	err := n.qt.Close()
	n.core.Stop()
	return err
}

// yggStream is one session: a bidirectional stream plus its connection.
type yggStream struct {
	quic.Stream
	conn quic.Connection
}

// ---- -ygg-peer: the client side ----

type yggTransport struct {
	node           *yggNode
	serverKey      []byte
	peer           string
	connectTimeout time.Duration
	logf           func(string, ...any)
}

// dialYgg starts a Yggdrasil node with a fresh random key (and the
// certificate yggdrasil-go generates for it), peers it to peerURI and
// opens the QUIC connection to serverKey, retrying until connectTimeout
// while the node joins the network and finds a path. Sessions are opened
// later, as streams on that connection.
func dialYgg(ctx context.Context, peerURI string, serverKey []byte, connectTimeout time.Duration, logf func(string, ...any)) (*yggTransport, error) {
	cfg := config.GenerateConfig()
	node, err := newYggNode(cfg.Certificate, clientIdleTimeout)
	if err != nil {
		return nil, err
	}
	if err := node.addPeer(peerURI); err != nil {
		node.close()
		return nil, err
	}
	t := &yggTransport{node: node, serverKey: serverKey, peer: peerURI, connectTimeout: connectTimeout, logf: logf}
	if err := t.dial(ctx, false); err != nil {
		node.close()
		return nil, err
	}
	return t, nil
}

// dial (re)dials the connection to the server, retrying every second
// until connectTimeout. fresh replaces a live cached connection.
func (t *yggTransport) dial(ctx context.Context, fresh bool) error {
	deadline := time.Now().Add(t.connectTimeout)
	for attempt := 1; ; attempt++ {
		_, err := t.node.conn(ctx, t.serverKey, fresh)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("QUIC over Yggdrasil to %x via %s: %w (after %d attempts)", t.serverKey, t.peer, err, attempt)
		}
		t.logf("connect attempt %d failed: %v; retrying", attempt, err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

// Redial dials a fresh connection from the same node (same key); the
// mediator keeps one connection per node key, so it replaces any old one.
func (t *yggTransport) Redial(ctx context.Context) error { return t.dial(ctx, true) }

// CloseConnection closes the connection to the server; the node stays up.
func (t *yggTransport) CloseConnection() error { return t.node.closeConn(t.serverKey) }

func (t *yggTransport) Dials() int {
	t.node.mu.Lock()
	defer t.node.mu.Unlock()
	return t.node.dials
}

// OpenSession opens a new stream on the cached connection to the server,
// as the real client does for every (re)connect.
func (t *yggTransport) OpenSession(ctx context.Context) (mediator.Stream, error) {
	return t.node.openStream(ctx, t.serverKey)
}

func (t *yggTransport) PeerKey(s mediator.Stream) (ed25519.PublicKey, error) {
	ys, ok := s.(*yggStream)
	if !ok {
		return nil, fmt.Errorf("stream %T is not a Yggdrasil QUIC stream", s)
	}
	if ra := ys.conn.RemoteAddr().String(); ra != hex.EncodeToString(t.serverKey) {
		return nil, fmt.Errorf("stream remote address %s, want the server key %x", ra, t.serverKey)
	}
	return certKey(ys.conn.ConnectionState().TLS)
}

func (t *yggTransport) Describe() string {
	return fmt.Sprintf("Yggdrasil node (local key %x, SNI = that key) peered to %s, QUIC to %x",
		[]byte(t.node.publicKey()), t.peer, t.serverKey)
}

func (t *yggTransport) Close() error { return t.node.close() }
