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
		scenario   = flag.String("scenario", "full", "scenario to run: full | ping | many | replace | bench | watch (a listening member driven on stdin, see watch.go)")
		third      = flag.Bool("third", true, "full scenario: add a third user C (receives the CHAT_DELETED push)")
		pushWait   = flag.Duration("push-timeout", 5*time.Second, "how long to wait for each expected push")
		reqTimeout = flag.Duration("request-timeout", 10*time.Second, "per-request timeout (the real client uses 10 s)")
		connectTO  = flag.Duration("connect-timeout", 60*time.Second, "-ygg-peer: how long to keep retrying the first dial")
		maxSkew    = flag.Duration("max-skew", 5*time.Second, "allowed difference between server timestamps and local time")
		verbose    = flag.Bool("v", false, "log every frame and step")

		sessions    = flag.Int("sessions", 50, "many: sessions (= users) on the one QUIC connection")
		duration    = flag.Duration("duration", 60*time.Second, "many: how long every session sends messages")
		interval    = flag.Duration("interval", 2*time.Second, "many: time between two messages of one session")
		size        = flag.Int("size", 200, "many, bench: message blob size in bytes (at least 24)")
		maxPushLat  = flag.Duration("max-push-latency", 10*time.Second, "many: fail if any push arrives later than this after its send")
		waitGo      = flag.Bool("wait-go", false, "many: after printing 'ready', wait for a line on stdin before sending")
		goTimeout   = flag.Duration("go-timeout", 3*time.Minute, "many: how long -wait-go waits")
		count       = flag.Int("count", 1000, "bench: sequential SEND_MESSAGE round trips")
		window      = flag.Int("window", 16, "bench: requests in flight in the closed loop (one per sender session)")
		benchTime   = flag.Duration("bench-time", 10*time.Second, "bench: duration of the closed loop")
		replaceWait = flag.Duration("replace-wait", 5*time.Second, "replace: how long the server may take to close the replaced connection")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: mimirclient (-udp HOST:PORT | -ygg-peer URI -server-key HEX) [-scenario full|ping|many|replace|bench] [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	switch *scenario {
	case "full", "ping", "many", "replace", "bench", "watch":
	default:
		fatalUsage("unknown -scenario " + *scenario)
	}
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

	label := "udp"
	if *yggPeer != "" {
		label = "ygg"
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
		tr:         tr,
		serverKey:  key,
		pushWait:   *pushWait,
		reqTimeout: *reqTimeout,
		maxSkew:    *maxSkew,
		third:      *third,
		load: LoadOptions{
			Sessions: *sessions, Duration: *duration, Interval: *interval, Size: *size,
			MaxPushLatency: *maxPushLat, WaitGo: *waitGo, GoTimeout: *goTimeout,
			Count: *count, Window: *window, BenchTime: *benchTime, Label: label,
			ReplaceWait: *replaceWait, Stdout: os.Stdout, Stdin: os.Stdin,
		},
		logf:         logf,
		newTransport: dial,
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
