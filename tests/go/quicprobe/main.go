// Command quicprobe dials a QUIC server the way a Mimir 2.x client does
// through yggquic (Revertron/yggquic at ce0eaa5, quic-go v0.52.0) and checks
// that one bidirectional stream echoes a payload.
//
// What makes it a faithful stand-in for a real client is the TLS and QUIC
// configuration, not the transport: it speaks plain UDP instead of running
// over an Yggdrasil PacketConn. The TLS configuration is the one yggquic
// builds:
//
//   - ServerName is the lowercase hex of the probe's own ed25519 public key,
//     i.e. one 64-character DNS label in the ClientHello's SNI;
//   - InsecureSkipVerify is set, so the server certificate is not verified;
//   - NextProtos is empty, so no ALPN extension is sent;
//   - a self-signed ed25519 client certificate is configured (the server is
//     not expected to ask for it).
//
// The QUIC configuration copies yggquic's defaults (handshake idle timeout
// 8 s, idle timeout 120 s, keep-alive 60 s, initial packet size 1452, path
// MTU discovery off, 0-RTT off, 1 MiB stream / 2 MiB connection windows).
//
// go.mod pins quic-go v0.52.0 (the version the Go mediator's yggquic fork
// uses) and declares go 1.25.1 like that fork, which selects the same
// crypto/tls defaults (notably the X25519MLKEM768 key share, which makes the
// ClientHello span more than one QUIC packet).
//
// Usage:
//
//	quicprobe [-payload TEXT] [-timeout DURATION] HOST:PORT
//
// On success it prints one line of key=value facts about the connection to
// stdout and exits 0. Any failure (handshake, stream, mismatched echo) is
// reported on stderr with exit status 1; bad usage exits with status 2.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

// The same values as yggquic's New() defaults (the mediator passes a 120 s timeout).
const (
	handshakeIdleTimeout       = 8 * time.Second
	maxIdleTimeout             = 120 * time.Second
	keepAlivePeriod            = 60 * time.Second
	initialPacketSize          = 1452 // quic-go clamps yggquic's 65535 to this
	maxStreamReceiveWindow     = 1 << 20
	maxConnectionReceiveWindow = 2 << 20
)

// defaultTimeout bounds the whole probe: dial, echo and close.
const defaultTimeout = 20 * time.Second

func main() {
	payload := flag.String("payload", "hello from quicprobe", "bytes to send on the stream (echo expected)")
	timeout := flag.Duration("timeout", defaultTimeout, "overall deadline for the probe")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] HOST:PORT\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *payload == "" {
		flag.Usage()
		os.Exit(2)
	}

	facts, err := probe(flag.Arg(0), []byte(*payload), *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "quicprobe: FAIL: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(facts)
}

// nodeIdentity returns a fresh ed25519 key and a self-signed certificate for
// it, shaped like the one a Mimir 2.x client uses (CN = hex key, valid until
// the year 9999).
func nodeIdentity() (ed25519.PublicKey, tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: hex.EncodeToString(pub)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, pub, priv)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pub, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

func probe(addr string, payload []byte, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	pub, cert, err := nodeIdentity()
	if err != nil {
		return "", fmt.Errorf("generating identity: %w", err)
	}
	sni := hex.EncodeToString(pub)
	tlsConf := &tls.Config{
		ServerName:         sni,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true,
	}
	quicConf := &quic.Config{
		HandshakeIdleTimeout:       handshakeIdleTimeout,
		MaxIdleTimeout:             maxIdleTimeout,
		KeepAlivePeriod:            keepAlivePeriod,
		InitialPacketSize:          initialPacketSize,
		DisablePathMTUDiscovery:    true,
		Allow0RTT:                  false,
		MaxStreamReceiveWindow:     maxStreamReceiveWindow,
		MaxConnectionReceiveWindow: maxConnectionReceiveWindow,
	}

	conn, err := quic.DialAddr(ctx, addr, tlsConf, quicConf)
	if err != nil {
		return "", fmt.Errorf("handshake with %s (SNI %d chars) failed: %w", addr, len(sni), err)
	}
	defer conn.CloseWithError(0, "probe done")

	state := conn.ConnectionState()
	peerCerts := state.TLS.PeerCertificates
	if len(peerCerts) == 0 {
		return "", errors.New("server presented no certificate")
	}
	serverKey, ok := peerCerts[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("server certificate key is %T, want ed25519", peerCerts[0].PublicKey)
	}

	stream, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return "", fmt.Errorf("opening stream: %w", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = stream.SetDeadline(deadline)
	}
	if _, err := stream.Write(payload); err != nil {
		return "", fmt.Errorf("writing payload: %w", err)
	}
	// Close only the send direction (FIN); the echo server answers and
	// finishes its side, which ends the read below.
	if err := stream.Close(); err != nil {
		return "", fmt.Errorf("finishing stream: %w", err)
	}
	echo, err := io.ReadAll(stream)
	if err != nil {
		return "", fmt.Errorf("reading echo: %w", err)
	}
	if string(echo) != string(payload) {
		return "", fmt.Errorf("echo mismatch: sent %d bytes %q, got %d bytes %q",
			len(payload), payload, len(echo), echo)
	}

	return fmt.Sprintf("OK sni_len=%d alpn=%q tls_version=%#04x server_certs=%d server_key=%s echoed=%d",
		len(sni), state.TLS.NegotiatedProtocol, state.TLS.Version, len(peerCerts),
		hex.EncodeToString(serverKey), len(echo)), nil
}
