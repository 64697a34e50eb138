// Command mimirclient is a test client for the Mimir 2.x mediator protocol.
// It speaks the protocol as the real Mimir 2.x Android client does, over
// the same QUIC stack (quic-go v0.52.0 with yggquic's settings, over UDP or
// over a real in-process yggdrasil-go v0.5.12 node), and runs scripted
// scenarios against a mediator, failing loudly on any deviation.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var (
		udpAddr    = flag.String("udp", "", "HOST:PORT of a mediator's plain QUIC/UDP listener (quic-go with yggquic's settings)")
		yggPeer    = flag.String("ygg-peer", "", "Yggdrasil peer URI (e.g. tcp://127.0.0.1:7743) for an in-process Yggdrasil node (QUIC with yggquic's conventions)")
		serverKey  = flag.String("server-key", "", "mediator ed25519 public key, 64 hex chars (required with -ygg-peer; with -udp, checked against the server certificate)")
		scenario   = flag.String("scenario", "full", "scenario to run: full | ping")
		third      = flag.Bool("third", true, "full scenario: add a third user C (receives the CHAT_DELETED push)")
		pushWait   = flag.Duration("push-timeout", 5*time.Second, "how long to wait for each expected push")
		reqTimeout = flag.Duration("request-timeout", 10*time.Second, "per-request timeout (the real client uses 10 s)")
		connectTO  = flag.Duration("connect-timeout", 60*time.Second, "-ygg-peer: how long to keep retrying the first dial")
		maxSkew    = flag.Duration("max-skew", 5*time.Second, "allowed difference between server timestamps and local time")
		verbose    = flag.Bool("v", false, "log every frame and step")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: mimirclient (-udp HOST:PORT | -ygg-peer URI -server-key HEX) [-scenario full|ping] [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	if (*udpAddr == "") == (*yggPeer == "") {
		fatalUsage("exactly one of -udp and -ygg-peer is required")
	}
	var key []byte
	if *serverKey != "" {
		k, err := hex.DecodeString(*serverKey)
		if err != nil || len(k) != 32 {
			fatalUsage("-server-key must be 64 hex characters")
		}
		key = k
	}
	if *yggPeer != "" && key == nil {
		fatalUsage("-ygg-peer requires -server-key")
	}

	logf := func(string, ...any) {}
	if *verbose {
		logf = func(format string, a ...any) {
			fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
		}
	}

	ctx := context.Background()
	// dial opens an independent transport: its own node key and UDP
	// socket (-udp) or in-process Yggdrasil node (-ygg-peer).
	dial := func(ctx context.Context) (Transport, error) {
		if *udpAddr != "" {
			return dialUDP(ctx, *udpAddr)
		}
		return dialYgg(ctx, *yggPeer, key, *connectTO, logf)
	}
	tr, err := dial(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL [connect]: %v\n", err)
		os.Exit(1)
	}
	defer tr.Close()
	logf("connected: %s", tr.Describe())

	s := &Scenario{
		tr:           tr,
		serverKey:    key,
		pushWait:     *pushWait,
		reqTimeout:   *reqTimeout,
		maxSkew:      *maxSkew,
		third:        *third,
		logf:         logf,
		newTransport: dial,
	}
	if *scenario != "full" && *scenario != "ping" {
		fatalUsage("unknown -scenario " + *scenario)
	}
	if err := s.Run(*scenario); err != nil {
		fmt.Fprintln(os.Stderr, err)
		tr.Close()
		os.Exit(1)
	}
	fmt.Printf("scenario %s: OK\n", *scenario)
}

func fatalUsage(msg string) {
	fmt.Fprintf(os.Stderr, "mimirclient: %s\n", msg)
	flag.Usage()
	os.Exit(2)
}
