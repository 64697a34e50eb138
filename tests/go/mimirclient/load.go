package main

// Load, connection-replacement and benchmark scenarios: "many", "replace"
// and "bench" (see README.md). They share the Scenario's transport and
// failure machinery with "full"; anything run in goroutines reports errors
// back to the scenario's goroutine, which fails the step.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	iwt "github.com/Arceliar/ironwood/types"
	"github.com/quic-go/quic-go"

	m "mediatord/tests/go/mimirclient/mediator"
)

// LoadOptions configures "many", "replace" and "bench".
type LoadOptions struct {
	Sessions       int           // many: sessions (= users) on the one connection
	Duration       time.Duration // many: how long every session sends
	Interval       time.Duration // many: time between two messages of one session
	Size           int           // many, bench: message blob size in bytes (≥ blobHeader)
	MaxPushLatency time.Duration // many: a push later than this after its send fails the run
	WaitGo         bool          // many: after "ready", wait for a line on Stdin before sending
	GoTimeout      time.Duration // many: how long to wait for that line
	Count          int           // bench: sequential round trips
	Window         int           // bench: requests in flight in the closed loop (one per session)
	BenchTime      time.Duration // bench: closed-loop duration
	Label          string        // bench: transport name for the JSON line
	ReplaceWait    time.Duration // replace: how long the server may take to close connection 1
	Stdout         io.Writer     // "ready" and result lines
	Stdin          io.Reader     // the go line for WaitGo
}

// blobHeader is the prefix of every load/bench message blob: sender index,
// sequence number and the send time in Unix nanoseconds (all big-endian).
const blobHeader = 24

func loadBlob(sender, seq int, size int) []byte {
	b := randBytes(size)
	binary.BigEndian.PutUint64(b[0:], uint64(sender))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	binary.BigEndian.PutUint64(b[16:], uint64(time.Now().UnixNano()))
	return b
}

func blobSentAt(b []byte) (time.Time, bool) {
	if len(b) < blobHeader {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[16:]))), true
}

func sum64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b) // nolint:errcheck
	return h.Sum64()
}

// parallel runs f(0..n-1) with at most conc at a time and returns the
// first error.
func parallel(n, conc int, f func(i int) error) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return first
}

// durations summarises latencies.
type durations []time.Duration

func (d durations) sorted() durations {
	c := append(durations(nil), d...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c
}

// pct returns the q-quantile (nearest rank) of sorted durations.
func (d durations) pct(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	if i < 0 {
		i = 0
	}
	return d[i]
}

func (d durations) max() time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)-1]
}

func (d durations) String() string {
	s := d.sorted()
	return fmt.Sprintf("n %d p50 %v p99 %v max %v", len(s), s.pct(0.5).Round(time.Microsecond), s.pct(0.99).Round(time.Microsecond), s.max().Round(time.Microsecond))
}

func us(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }

// inbox records the pushes one session receives (installed as its push
// handler, so nothing is queued in the Client).
type inbox struct {
	chatID    int64
	serverKey []byte

	mu   sync.Mutex
	msgs map[int64]rcvd // user messages by message id
	dups []int64
	sys  int // system messages and REQUEST_MEMBER_INFO
	bad  []string
	lat  durations // send → push, from the blob's send time
}

type rcvd struct {
	guid   int64
	author string
	sum    uint64
}

func newInbox(chatID int64, serverKey []byte) *inbox {
	return &inbox{chatID: chatID, serverKey: serverKey, msgs: map[int64]rcvd{}}
}

func (b *inbox) badf(format string, a ...any) {
	if len(b.bad) < 5 {
		b.bad = append(b.bad, fmt.Sprintf(format, a...))
	}
}

func (b *inbox) handle(p m.Push) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch p.Code {
	case m.PushRequestMemberInfo:
		b.sys++
	case m.PushGotMessage:
		g, err := m.ParseGotMessage(p.Payload)
		if err != nil {
			b.badf("malformed GOT_MESSAGE: %v", err)
			return true
		}
		if g.ChatID != b.chatID {
			b.badf("GOT_MESSAGE for chat %d, want %d", g.ChatID, b.chatID)
			return true
		}
		if bytes.Equal(g.Author, b.serverKey) {
			b.sys++
			return true
		}
		if _, ok := b.msgs[g.MessageID]; ok {
			b.dups = append(b.dups, g.MessageID)
			return true
		}
		b.msgs[g.MessageID] = rcvd{guid: g.GUID, author: string(g.Author), sum: sum64(g.Blob)}
		if t, ok := blobSentAt(g.Blob); ok {
			b.lat = append(b.lat, p.Received.Sub(t))
		}
	default:
		b.badf("unexpected %s", p)
	}
	return true
}

// sentMsg is an acknowledged message.
type sentMsg struct {
	sender int
	guid   int64
	sum    uint64
}

// openAuthed opens a session per user (streams on the scenario's
// connection) and authenticates them concurrently.
func (s *Scenario) openAuthed(users []*user) {
	for _, u := range users {
		s.open(u)
	}
	err := parallel(len(users), 16, func(i int) error { return users[i].cl.Auth(users[i].priv) })
	s.must(err, "AUTH")
}

// barrier PINGs every session: when a PING is answered, every push the
// server queued for that session before it has been handled.
func (s *Scenario) barrier(users []*user) {
	err := parallel(len(users), 32, func(i int) error {
		select {
		case <-users[i].cl.Done():
			return fmt.Errorf("%s: session closed by the server: %v", users[i].name, users[i].cl.ReadErr())
		default:
		}
		return users[i].cl.Ping()
	})
	s.must(err, "PING barrier")
}

// ---------------------------------------------------------------- many

// RunMany: N sessions on one QUIC connection, each a distinct user, all
// members of one chat created here (user 0 owns it and adds the others
// with ADD_USER) and subscribed to it. Every session sends a message every
// Interval for Duration; every other session must receive each
// acknowledged message exactly once as a push, with the right content.
// Tolerance: none — a single missing, duplicated, unexpected or corrupted
// push, a failed request, a session the server closed, or a push later
// than MaxPushLatency fails the run.
func (s *Scenario) RunMany() {
	o := s.load
	n := o.Sessions
	if n < 2 {
		s.failf("-sessions must be at least 2, got %d", n)
	}
	if o.Size < blobHeader {
		s.failf("-size must be at least %d", blobHeader)
	}
	users := make([]*user, n)
	for i := range users {
		users[i] = newUser(fmt.Sprintf("U%d", i))
	}
	s.users = users
	s.begin(fmt.Sprintf("open %d sessions, AUTH", n))
	s.openAuthed(users)

	s.begin("CREATE_CHAT + ADD_USER")
	owner := users[0]
	chatID, err := owner.cl.CreateChat(owner.priv, "many sessions", fmt.Sprintf("%d sessions", n), nil)
	s.must(err, "CREATE_CHAT")
	s.chatID = chatID
	for _, u := range users[1:] {
		s.must(owner.cl.AddUser(chatID, u.pub), "ADD_USER "+u.name)
	}

	s.begin("SUBSCRIBE")
	boxes := make([]*inbox, n)
	for i, u := range users {
		boxes[i] = newInbox(chatID, s.serverKey)
		u.cl.SetPushHandler(boxes[i].handle)
	}
	err = parallel(n, 16, func(i int) error {
		_, err := users[i].cl.Subscribe(chatID)
		return err
	})
	s.must(err, "SUBSCRIBE")
	s.barrier(users)
	s.checkInboxes(boxes, users)
	fmt.Fprintf(o.Stdout, "ready %d sessions chat %d\n", n, chatID)
	if o.WaitGo {
		s.begin("wait for go on stdin")
		line := make(chan error, 1)
		go func() {
			_, err := bufio.NewReader(o.Stdin).ReadString('\n')
			line <- err
		}()
		select {
		case err := <-line:
			s.must(err, "reading the go line from stdin")
		case <-time.After(o.GoTimeout):
			s.failf("no go line on stdin within %v", o.GoTimeout)
		}
	}

	s.begin(fmt.Sprintf("send for %v, one message per session every %v", o.Duration, o.Interval))
	var (
		mu     sync.Mutex
		acked  = map[int64]sentMsg{}
		ackLat durations
	)
	start := time.Now()
	end := start.Add(o.Duration)
	err = parallel(n, n, func(i int) error {
		u := users[i]
		offset := o.Interval * time.Duration(i) / time.Duration(n)
		for seq := 0; ; seq++ {
			at := start.Add(offset + time.Duration(seq)*o.Interval)
			if !at.Before(end) {
				return nil
			}
			time.Sleep(time.Until(at))
			blob := loadBlob(i, seq, o.Size)
			guid := randGUID()
			t0 := time.Now()
			g, id, err := u.cl.SendMessage(chatID, guid, blob)
			if err != nil {
				return fmt.Errorf("%s: SEND_MESSAGE #%d: %w", u.name, seq, err)
			}
			d := time.Since(t0)
			if g != guid {
				return fmt.Errorf("%s: SEND_MESSAGE #%d returned guid %d, want %d", u.name, seq, g, guid)
			}
			mu.Lock()
			prev, dup := acked[id]
			acked[id] = sentMsg{sender: i, guid: guid, sum: sum64(blob)}
			ackLat = append(ackLat, d)
			mu.Unlock()
			if dup {
				return fmt.Errorf("%s: SEND_MESSAGE #%d got message id %d, already given to %s's guid %d", u.name, seq, id, users[prev.sender].name, prev.guid)
			}
		}
	})
	s.must(err, "sending")
	sendTime := time.Since(start)

	s.begin("check pushes")
	s.barrier(users)
	s.checkInboxes(boxes, users)
	var (
		total, minGot, want int
		allLat              durations
	)
	minGot = math.MaxInt
	for i, b := range boxes {
		b.mu.Lock()
		var missing, unexpected []int64
		expect := 0
		for id, sm := range acked {
			if sm.sender == i {
				continue
			}
			expect++
			r, ok := b.msgs[id]
			if !ok {
				missing = append(missing, id)
				continue
			}
			if r.guid != sm.guid || r.author != string(users[sm.sender].pub) || r.sum != sm.sum {
				b.mu.Unlock()
				s.failf("%s: push of message id %d differs from what %s sent (guid %d vs %d, author %s, blob hash %x vs %x)",
					users[i].name, id, users[sm.sender].name, r.guid, sm.guid, s.userByKey([]byte(r.author)), r.sum, sm.sum)
			}
		}
		for id := range b.msgs {
			if sm, ok := acked[id]; !ok || sm.sender == i {
				unexpected = append(unexpected, id)
			}
		}
		got := len(b.msgs)
		allLat = append(allLat, b.lat...)
		b.mu.Unlock()
		if len(missing) > 0 || len(unexpected) > 0 {
			sort.Slice(missing, func(a, c int) bool { return missing[a] < missing[c] })
			s.failf("%s: %d of %d expected pushes missing (first ids %v), %d unexpected (own or unknown: %v)",
				users[i].name, len(missing), expect, head64(missing, 10), len(unexpected), head64(unexpected, 10))
		}
		total += got
		want += expect
		if got < minGot {
			minGot = got
		}
	}
	pushLat := allLat.sorted()
	if pushLat.max() > o.MaxPushLatency {
		s.failf("slowest push arrived %v after its send, more than -max-push-latency %v (push latency %s)", pushLat.max(), o.MaxPushLatency, allLat)
	}
	fmt.Fprintf(o.Stdout, "many: %d sessions, chat %d, %d messages acknowledged in %v (%.1f/s), pushes %d/%d (min per session %d), send→ack %s, send→push %s\n",
		n, chatID, len(acked), sendTime.Round(time.Millisecond), float64(len(acked))/sendTime.Seconds(), total, want, minGot, ackLat, allLat)

	s.begin("close")
	s.closeAll(users)
}

// closeAll closes every session's stream (FIN) and waits until the server
// has ended each session and closed its side, so that none outlives the
// run on the server (a lost CONNECTION_CLOSE would otherwise leave them to
// the idle timeout).
func (s *Scenario) closeAll(users []*user) {
	for _, u := range users {
		u.cl.Close()
	}
	deadline := time.After(s.pushWait)
	for _, u := range users {
		select {
		case <-u.cl.Done():
		case <-deadline:
			s.failf("%s: the server did not end the session within %v of its FIN", u.name, s.pushWait)
		}
	}
}

func head64(v []int64, n int) []int64 {
	if len(v) > n {
		return v[:n]
	}
	return v
}

// checkInboxes fails on malformed, unexpected or duplicated pushes;
// owners[i] is the user of boxes[i].
func (s *Scenario) checkInboxes(boxes []*inbox, owners []*user) {
	for i, b := range boxes {
		b.mu.Lock()
		bad, dups := append([]string(nil), b.bad...), append([]int64(nil), b.dups...)
		b.mu.Unlock()
		if len(bad) > 0 {
			s.failf("%s: bad push(es): %s", owners[i].name, strings.Join(bad, "; "))
		}
		if len(dups) > 0 {
			s.failf("%s: %d duplicated push(es), message ids %v", owners[i].name, len(dups), head64(dups, 10))
		}
	}
}

// ---------------------------------------------------------------- replace

// secondConnection dials a new QUIC connection to the mediator from the
// same node key (Yggdrasil) or UDP socket, WITHOUT closing the
// transport's current one, so that only the server can close it.
func (s *Scenario) secondConnection(ctx context.Context) (quic.Connection, error) {
	dctx, cancel := context.WithTimeout(ctx, yggDialTimeout)
	defer cancel()
	switch t := s.tr.(type) {
	case *yggTransport:
		return t.node.qt.Dial(dctx, iwt.Addr(append([]byte(nil), t.serverKey...)), t.node.tlsConf, t.node.quicConf)
	case *udpTransport:
		return t.tr.Dial(dctx, t.raddr, t.tlsConf, yggquicQUICConfig())
	default:
		return nil, fmt.Errorf("transport %T cannot dial a second connection", s.tr)
	}
}

// RunReplace: connection 1 carries a session of user U, who owns a chat
// and is subscribed to it. A second connection from the same node key
// (same UDP socket with -udp) must make the server close connection 1
// (CONNECTION_CLOSE from the server, within ReplaceWait) and end U's old
// session completely (GET_MEMBERS: U offline), while connection 2 keeps
// working.
func (s *Scenario) RunReplace() {
	o := s.load
	U := newUser("U")
	s.users = []*user{U}
	s.begin("connection 1: session, AUTH, CREATE_CHAT, SUBSCRIBE")
	s.open(U)
	ys, ok := U.cl.Stream().(*yggStream)
	if !ok {
		s.failf("session stream is %T, want a QUIC stream", U.cl.Stream())
	}
	conn1 := ys.conn
	s.must(U.cl.Auth(U.priv), "U: AUTH on connection 1")
	chatID, err := U.cl.CreateChat(U.priv, "replace", "", nil)
	s.must(err, "U: CREATE_CHAT")
	s.chatID = chatID
	_, err = U.cl.Subscribe(chatID)
	s.must(err, "U: SUBSCRIBE on connection 1")
	s.must(U.cl.Ping(), "U: PING on connection 1")
	old := U.cl
	online := func(cl *m.Client) byte {
		list, err := cl.GetMembers(chatID)
		s.must(err, "GET_MEMBERS")
		if len(list) != 1 || !bytes.Equal(list[0].User, U.pub) {
			s.failf("GET_MEMBERS: %d records, want exactly U", len(list))
		}
		return list[0].Online
	}
	if on := online(old); on != 1 {
		s.failf("GET_MEMBERS on connection 1: U online %d, want 1 (subscribed)", on)
	}

	s.begin("connection 2 from the same node")
	ctx, cancel := context.WithTimeout(context.Background(), o.ReplaceWait+yggDialTimeout)
	defer cancel()
	conn2, err := s.secondConnection(ctx)
	s.must(err, "dial connection 2")
	defer conn2.CloseWithError(0, "done") // nolint:errcheck
	t0 := time.Now()
	if conn1 == conn2 {
		s.failf("connection 2 is connection 1")
	}

	s.begin("the server closes connection 1")
	select {
	case <-conn1.Context().Done():
	case <-time.After(o.ReplaceWait):
		s.failf("connection 1 still open %v after connection 2 was established", o.ReplaceWait)
	}
	closedAfter := time.Since(t0)
	cause := context.Cause(conn1.Context())
	var ae *quic.ApplicationError
	if !errors.As(cause, &ae) || !ae.Remote {
		s.failf("connection 1 ended with %v (%T), want a CONNECTION_CLOSE from the server (remote application error)", cause, cause)
	}
	select {
	case <-old.Done():
	case <-time.After(o.ReplaceWait):
		s.failf("the session on connection 1 still reads %v after its connection closed", o.ReplaceWait)
	}
	if err := old.Ping(); err == nil {
		s.failf("PING on connection 1 succeeded after it was closed")
	}
	s.logf("connection 1 closed by the server after %v: %v; session read error: %v", closedAfter, cause, old.ReadErr())

	s.begin("connection 2 works")
	if err := conn2.Context().Err(); err != nil {
		s.failf("connection 2 closed: %v", context.Cause(conn2.Context()))
	}
	st, err := conn2.OpenStreamSync(ctx)
	s.must(err, "open a stream on connection 2")
	cl, err := m.NewClient("U2", &yggStream{Stream: st, conn: conn2}, s.logf)
	s.must(err, "start a session on connection 2")
	cl.Timeout = s.reqTimeout
	U.cl = cl
	s.must(cl.Auth(U.priv), "U: AUTH on connection 2")
	// The replaced session must be gone completely: U's subscription on
	// connection 1 no longer counts as online.
	deadline := time.Now().Add(o.ReplaceWait)
	for online(cl) != 0 {
		if time.Now().After(deadline) {
			s.failf("GET_MEMBERS on connection 2: U still online %v after connection 1 was replaced (its session did not end)", o.ReplaceWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err = cl.Subscribe(chatID)
	s.must(err, "U: SUBSCRIBE on connection 2")
	guid := randGUID()
	g, _, err := cl.SendMessage(chatID, guid, randBytes(64))
	s.must(err, "U: SEND_MESSAGE on connection 2")
	if g != guid {
		s.failf("SEND_MESSAGE on connection 2 returned guid %d, want %d", g, guid)
	}
	time.Sleep(time.Second)
	if err := conn2.Context().Err(); err != nil {
		s.failf("connection 2 closed a second later: %v", context.Cause(conn2.Context()))
	}
	s.must(cl.Ping(), "U: PING on connection 2 a second later")
	if on := online(cl); on != 1 {
		s.failf("GET_MEMBERS on connection 2: U online %d, want 1", on)
	}
	fmt.Fprintf(o.Stdout, "replace: connection 1 closed by the server %v after connection 2 (%v); connection 2 works\n", closedAfter.Round(time.Millisecond), cause)
	s.closeAll([]*user{U})
}

// ---------------------------------------------------------------- bench

// benchResult is the JSON line printed by "bench".
type benchResult struct {
	Scenario  string    `json:"scenario"`
	Transport string    `json:"transport"`
	Size      int       `json:"size"`
	Seq       benchSeq  `json:"seq"`
	Loop      benchLoop `json:"loop"`
}

type benchSeq struct {
	N         int     `json:"n"`
	AckP50us  float64 `json:"ack_p50_us"`
	AckP99us  float64 `json:"ack_p99_us"`
	AckMaxus  float64 `json:"ack_max_us"`
	PushN     int     `json:"push_n"`
	PushP50us float64 `json:"push_p50_us"`
	PushP99us float64 `json:"push_p99_us"`
	PushMaxus float64 `json:"push_max_us"`
}

type benchLoop struct {
	Window    int     `json:"window"`
	Seconds   float64 `json:"seconds"`
	Acked     int     `json:"acked"`
	MsgsPerS  float64 `json:"msgs_per_s"`
	AckP50us  float64 `json:"ack_p50_us"`
	AckP99us  float64 `json:"ack_p99_us"`
	AckMaxus  float64 `json:"ack_max_us"`
	PushN     int     `json:"push_n"`
	PushP50us float64 `json:"push_p50_us"`
	PushP99us float64 `json:"push_p99_us"`
	PushMaxus float64 `json:"push_max_us"`
}

// RunBench measures, after setup (A owns a chat; B is subscribed to it;
// W sender sessions are members): (a) Count sequential SEND_MESSAGE round
// trips by A, with the send → push latency to B; (b) a closed loop of W
// requests in flight, one per sender session (the server handles one
// request of a session at a time), for BenchTime: acknowledged messages/s,
// send → ack and send → push to B. Every acknowledged message must reach
// B exactly once. Prints one JSON line.
func (s *Scenario) RunBench() {
	o := s.load
	if o.Size < blobHeader {
		s.failf("-size must be at least %d", blobHeader)
	}
	if o.Window < 1 || o.Count < 1 {
		s.failf("-window and -count must be positive")
	}
	A, B := newUser("A"), newUser("B")
	senders := make([]*user, o.Window)
	for i := range senders {
		senders[i] = newUser(fmt.Sprintf("S%d", i))
	}
	s.users = append([]*user{A, B}, senders...)
	s.begin("setup")
	s.openAuthed(s.users)
	chatID, err := A.cl.CreateChat(A.priv, "bench", "", nil)
	s.must(err, "CREATE_CHAT")
	s.chatID = chatID
	for _, u := range s.users[1:] {
		s.must(A.cl.AddUser(chatID, u.pub), "ADD_USER")
	}
	box := newInbox(chatID, s.serverKey)
	B.cl.SetPushHandler(box.handle)
	_, err = B.cl.Subscribe(chatID)
	s.must(err, "B: SUBSCRIBE")
	s.barrier(s.users)
	s.checkInboxes([]*inbox{box}, []*user{B})

	takeLat := func() (durations, int) {
		box.mu.Lock()
		defer box.mu.Unlock()
		l, n := box.lat, len(box.msgs)
		box.lat, box.msgs = nil, map[int64]rcvd{}
		return l.sorted(), n
	}
	res := benchResult{Scenario: "bench", Transport: o.Label, Size: o.Size}

	s.begin("sequential round trips")
	for i := 0; i < 20; i++ { // warm-up, not measured
		_, _, err := A.cl.SendMessage(chatID, randGUID(), loadBlob(0, i, o.Size))
		s.must(err, "A: SEND_MESSAGE (warm-up)")
	}
	s.barrier([]*user{B})
	takeLat()
	var seq durations
	for i := 0; i < o.Count; i++ {
		t0 := time.Now()
		_, _, err := A.cl.SendMessage(chatID, randGUID(), loadBlob(0, i, o.Size))
		s.must(err, "A: SEND_MESSAGE")
		seq = append(seq, time.Since(t0))
	}
	s.barrier([]*user{B})
	s.checkInboxes([]*inbox{box}, []*user{B})
	pl, pn := takeLat()
	if pn != o.Count {
		s.failf("B received %d pushes of A's %d sequential messages", pn, o.Count)
	}
	seq = seq.sorted()
	res.Seq = benchSeq{N: len(seq), AckP50us: us(seq.pct(0.5)), AckP99us: us(seq.pct(0.99)), AckMaxus: us(seq.max()),
		PushN: pn, PushP50us: us(pl.pct(0.5)), PushP99us: us(pl.pct(0.99)), PushMaxus: us(pl.max())}

	s.begin(fmt.Sprintf("closed loop, %d in flight for %v", o.Window, o.BenchTime))
	var (
		mu   sync.Mutex
		loop durations
	)
	start := time.Now()
	end := start.Add(o.BenchTime)
	err = parallel(len(senders), len(senders), func(i int) error {
		var mine durations
		for seqNo := 0; time.Now().Before(end); seqNo++ {
			t0 := time.Now()
			if _, _, err := senders[i].cl.SendMessage(chatID, randGUID(), loadBlob(i+1, seqNo, o.Size)); err != nil {
				return fmt.Errorf("%s: SEND_MESSAGE: %w", senders[i].name, err)
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		loop = append(loop, mine...)
		mu.Unlock()
		return nil
	})
	elapsed := time.Since(start)
	s.must(err, "closed loop")
	s.barrier([]*user{B})
	s.checkInboxes([]*inbox{box}, []*user{B})
	pl, pn = takeLat()
	if pn != len(loop) {
		s.failf("B received %d pushes of the %d messages acknowledged in the closed loop", pn, len(loop))
	}
	loop = loop.sorted()
	res.Loop = benchLoop{Window: o.Window, Seconds: math.Round(elapsed.Seconds()*1000) / 1000, Acked: len(loop),
		MsgsPerS: math.Round(float64(len(loop))/elapsed.Seconds()*10) / 10,
		AckP50us: us(loop.pct(0.5)), AckP99us: us(loop.pct(0.99)), AckMaxus: us(loop.max()),
		PushN: pn, PushP50us: us(pl.pct(0.5)), PushP99us: us(pl.pct(0.99)), PushMaxus: us(pl.max())}

	line, err := json.Marshal(res)
	s.must(err, "JSON")
	fmt.Fprintln(o.Stdout, string(line))
	s.closeAll(s.users)
}
