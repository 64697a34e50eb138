package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	m "mediatord/tests/go/mimirclient/mediator"
)

// Scenario holds the state of one run. Every failure stops the run with
// an error naming the step (see Run).
type Scenario struct {
	tr         Transport
	serverKey  []byte
	pushWait   time.Duration
	reqTimeout time.Duration
	maxSkew    time.Duration
	third      bool
	load       LoadOptions // many, replace, bench
	logf       func(string, ...any)
	// newTransport opens a second, independent transport (its own node
	// key / UDP socket and QUIC connection) for B, which later drops its
	// connection and redials a fresh one; required by "full".
	newTransport func(ctx context.Context) (Transport, error)
	extra        []Transport // transports opened with newTransport, closed by Run

	step   string
	chatID int64
	users  []*user
	ledger map[int64]m.GotMessage // stored messages by id, as observed
	// tsUnknown marks ledger entries nobody received as a push (sent with
	// no other subscriber): their timestamp is learnt from the first sync.
	tsUnknown map[int64]bool
}

type user struct {
	name       string
	priv       ed25519.PrivateKey
	pub        ed25519.PublicKey
	cl         *m.Client
	subscribed bool
	tr         Transport // nil: the scenario's shared transport
}

// ---------------------------------------------------------------- helpers

func (s *Scenario) begin(step string) {
	s.step = step
	s.logf("=== step: %s", step)
}

// Failure is a scenario check that did not hold.
type Failure struct {
	Step string
	Msg  string
}

func (f *Failure) Error() string { return fmt.Sprintf("FAIL [%s]: %s", f.Step, f.Msg) }

func (s *Scenario) failf(format string, a ...any) {
	panic(&Failure{Step: s.step, Msg: fmt.Sprintf(format, a...)})
}

// Run runs the named scenario ("full", "ping", "many", "replace" or
// "bench") and returns a *Failure for the first check that did not hold.
func (s *Scenario) Run(name string) (err error) {
	defer func() {
		for _, t := range s.extra {
			t.Close()
		}
		s.extra = nil
	}()
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*Failure)
			if !ok {
				panic(r)
			}
			err = f
		}
	}()
	switch name {
	case "ping":
		s.RunPing()
	case "full":
		s.RunFull()
	case "many":
		s.RunMany()
	case "replace":
		s.RunReplace()
	case "bench":
		s.RunBench()
	case "watch":
		s.RunWatch()
	default:
		return fmt.Errorf("unknown scenario %q", name)
	}
	return nil
}

func (s *Scenario) must(err error, what string) {
	if err != nil {
		s.failf("%s: %v", what, err)
	}
}

// expectErr requires an ERR response with exactly the given text.
func (s *Scenario) expectErr(err error, text, what string) {
	var se *m.ServerError
	if err == nil {
		s.failf("%s: expected ERR %q, got OK", what, text)
	}
	if !errors.As(err, &se) {
		s.failf("%s: expected ERR %q, got %v", what, text, err)
	}
	if se.Text != text {
		s.failf("%s: expected ERR %q, got ERR %q", what, text, se.Text)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// randGUID returns a random positive guid with room for +1 bumps.
func randGUID() int64 {
	return int64(binary.BigEndian.Uint64(randBytes(8))>>2) + 1
}

func newUser(name string) *user {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &user{name: name, priv: priv, pub: pub}
}

// open starts a new session (a new stream on the shared connection) for u.
func (s *Scenario) open(u *user) {
	ctx, cancel := context.WithTimeout(context.Background(), s.reqTimeout)
	defer cancel()
	tr := s.tr
	if u.tr != nil {
		tr = u.tr
	}
	st, err := tr.OpenSession(ctx)
	s.must(err, u.name+": open stream")
	key, err := tr.PeerKey(st)
	s.must(err, u.name+": server certificate")
	if s.serverKey == nil {
		s.serverKey = key
		s.logf("mediator key (from the server certificate): %x", key)
	} else if !bytes.Equal(key, s.serverKey) {
		s.failf("server certificate key %x differs from the mediator key %x", []byte(key), s.serverKey)
	}
	cl, err := m.NewClient(u.name, st, s.logf)
	s.must(err, u.name+": start session")
	cl.Timeout = s.reqTimeout
	u.cl = cl
	u.subscribed = false
}

func (s *Scenario) checkTS(ts int64, what string) {
	now := time.Now().Unix()
	skew := int64(s.maxSkew / time.Second)
	if ts < now-skew || ts > now+skew {
		s.failf("%s: timestamp %d is %d s away from now (%d); want Unix seconds within %d s", what, ts, ts-now, now, skew)
	}
}

func (s *Scenario) userByKey(k []byte) string {
	for _, u := range s.users {
		if bytes.Equal(u.pub, k) {
			return u.name
		}
	}
	if bytes.Equal(k, s.serverKey) {
		return "mediator"
	}
	return fmt.Sprintf("%x", k)
}

// record adds a stored message to the ledger, or checks that it matches
// what another receiver saw for the same id.
func (s *Scenario) record(msg m.GotMessage, what string) {
	if msg.MessageID <= 0 {
		s.failf("%s: stored message has id %d", what, msg.MessageID)
	}
	if old, ok := s.ledger[msg.MessageID]; ok {
		if old.GUID != msg.GUID || old.Timestamp != msg.Timestamp || !bytes.Equal(old.Author, msg.Author) || !bytes.Equal(old.Blob, msg.Blob) || old.ChatID != msg.ChatID {
			s.failf("%s: message id %d seen with different content: %s vs %s", what, msg.MessageID, describeMsg(old), describeMsg(msg))
		}
		return
	}
	for id, old := range s.ledger {
		if old.GUID == msg.GUID {
			s.failf("%s: guid %d already used by message id %d", what, msg.GUID, id)
		}
	}
	s.ledger[msg.MessageID] = msg
}

func (s *Scenario) maxLedgerID() int64 {
	var mx int64
	for id := range s.ledger {
		if id > mx {
			mx = id
		}
	}
	return mx
}

func describeMsg(g m.GotMessage) string {
	return fmt.Sprintf("{chat %d id %d guid %d ts %d author %x.. blob %d bytes %x..}", g.ChatID, g.MessageID, g.GUID, g.Timestamp, head(g.Author, 4), len(g.Blob), head(g.Blob, 8))
}

func head(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// waitMsg waits for a GOT_MESSAGE push on u selected by sel. Any
// GOT_MESSAGE push that does not parse strictly fails the step.
func (s *Scenario) waitMsg(u *user, what string, sel func(m.GotMessage) bool) m.GotMessage {
	var bad error
	var got m.GotMessage
	_, err := u.cl.WaitPush(m.PushGotMessage, func(p m.Push) bool {
		g, err := m.ParseGotMessage(p.Payload)
		if err != nil {
			bad = fmt.Errorf("%w (payload %x)", err, head(p.Payload, 80))
			return true
		}
		if sel(g) {
			got = g
			return true
		}
		return false
	}, s.pushWait)
	if bad != nil {
		s.failf("%s: %s: malformed GOT_MESSAGE push: %v", u.name, what, bad)
	}
	s.must(err, u.name+": waiting for "+what)
	return got
}

// expectUserMsg waits on each receiver for the user message with the given
// id and checks every field.
func (s *Scenario) expectUserMsg(author *user, guid, id int64, blob []byte, receivers ...*user) {
	for _, r := range receivers {
		what := fmt.Sprintf("GOT_MESSAGE of %s's message id %d", author.name, id)
		g := s.waitMsg(r, what, func(g m.GotMessage) bool { return g.MessageID == id })
		if g.ChatID != s.chatID {
			s.failf("%s: %s: CHAT_ID %d, want %d", r.name, what, g.ChatID, s.chatID)
		}
		if g.GUID != guid {
			s.failf("%s: %s: MESSAGE_GUID %d, want %d", r.name, what, g.GUID, guid)
		}
		s.checkTS(g.Timestamp, r.name+": "+what+" TIMESTAMP")
		if !bytes.Equal(g.Author, author.pub) {
			s.failf("%s: %s: PUBKEY %x (%s), want %s's key", r.name, what, g.Author, s.userByKey(g.Author), author.name)
		}
		if !bytes.Equal(g.Blob, blob) {
			s.failf("%s: %s: MESSAGE_BLOB differs (%d bytes %x.., want %d bytes %x..)", r.name, what, len(g.Blob), head(g.Blob, 8), len(blob), head(blob, 8))
		}
		s.record(g, r.name+": "+what)
	}
}

// expectSys waits on each receiver for a system message with the given
// event code selected by sel, checks the common fields (chat id, author =
// mediator key, guid formula, timestamp, stored or not) and the body, and
// returns the message as seen by the first receiver.
func (s *Scenario) expectSys(code byte, stored bool, sel func(body []byte) bool, check func(body []byte) error, receivers ...*user) m.GotMessage {
	var first m.GotMessage
	for i, r := range receivers {
		what := m.SysName(code) + " system message"
		g := s.waitMsg(r, what, func(g m.GotMessage) bool {
			return g.ChatID == s.chatID && bytes.Equal(g.Author, s.serverKey) && len(g.Blob) > 0 && g.Blob[0] == code && (sel == nil || sel(g.Blob))
		})
		s.checkTS(g.Timestamp, r.name+": "+what+" TIMESTAMP")
		if want := m.SystemGUID(g.Blob, g.Timestamp); g.GUID != want {
			s.failf("%s: %s: MESSAGE_GUID %d, want contentHashCode(body)<<32 ^ ts = %d", r.name, what, g.GUID, want)
		}
		if check != nil {
			if err := check(g.Blob); err != nil {
				s.failf("%s: %s: %v", r.name, what, err)
			}
		}
		if stored {
			s.record(g, r.name+": "+what)
		} else if g.MessageID != 0 {
			s.failf("%s: %s: MESSAGE_ID %d, want 0 (not stored)", r.name, what, g.MessageID)
		}
		if i == 0 {
			first = g
		} else if g.MessageID != first.MessageID || g.GUID != first.GUID || !bytes.Equal(g.Blob, first.Blob) {
			s.failf("%s: %s differs between receivers: %s vs %s", r.name, what, describeMsg(g), describeMsg(first))
		}
	}
	return first
}

// expectOnline waits for MEMBER_ONLINE(subject, online) on each receiver.
func (s *Scenario) expectOnline(subject *user, online byte, receivers ...*user) {
	s.expectSys(m.SysMemberOnline, false,
		func(b []byte) bool {
			mo, err := m.ParseMemberOnline(b)
			return err == nil && bytes.Equal(mo.Pubkey, subject.pub) && mo.Online == online
		},
		func(b []byte) error {
			mo, err := m.ParseMemberOnline(b)
			if err != nil {
				return err
			}
			now, skew := time.Now().Unix(), int64(s.maxSkew/time.Second)
			if int64(mo.TS) < now-skew || int64(mo.TS) > now+skew {
				return fmt.Errorf("MEMBER_ONLINE body ts %d is not within %d s of now (%d)", mo.TS, skew, now)
			}
			return nil
		}, receivers...)
}

// expectRequestMemberInfo waits for REQUEST_MEMBER_INFO on u and checks
// LAST_UPDATE with ok.
func (s *Scenario) expectRequestMemberInfo(u *user, ok func(uint64) bool, want string) {
	p, err := u.cl.WaitPush(m.PushRequestMemberInfo, nil, s.pushWait)
	s.must(err, u.name+": waiting for REQUEST_MEMBER_INFO")
	r, err := m.ParseRequestMemberInfo(p.Payload)
	s.must(err, u.name+": REQUEST_MEMBER_INFO")
	if r.ChatID != s.chatID {
		s.failf("%s: REQUEST_MEMBER_INFO CHAT_ID %d, want %d", u.name, r.ChatID, s.chatID)
	}
	if !ok(r.LastUpdate) {
		s.failf("%s: REQUEST_MEMBER_INFO LAST_UPDATE %d, want %s", u.name, r.LastUpdate, want)
	}
}

// expectMemberInfoPush waits for GOT_MEMBER_INFO about subject on each
// receiver.
func (s *Scenario) expectMemberInfoPush(subject *user, info []byte, ts uint64, receivers ...*user) {
	for _, r := range receivers {
		var bad error
		var got m.GotMemberInfo
		_, err := r.cl.WaitPush(m.PushGotMemberInfo, func(p m.Push) bool {
			g, err := m.ParseGotMemberInfo(p.Payload)
			if err != nil {
				bad = err
				return true
			}
			if bytes.Equal(g.User, subject.pub) {
				got = g
				return true
			}
			return false
		}, s.pushWait)
		if bad != nil {
			s.failf("%s: malformed GOT_MEMBER_INFO: %v", r.name, bad)
		}
		s.must(err, r.name+": waiting for GOT_MEMBER_INFO about "+subject.name)
		if got.ChatID != s.chatID || got.Count != 1 || !bytes.Equal(got.Info, info) || got.Timestamp != ts {
			s.failf("%s: GOT_MEMBER_INFO about %s: chat %d count %d info %x ts %d; want chat %d count 1 info %x ts %d",
				r.name, subject.name, got.ChatID, got.Count, head(got.Info, 16), got.Timestamp, s.chatID, head(info, 16), ts)
		}
	}
}

// settle sends a PING on every live session (so that anything the server
// queued before it has arrived) and then requires that no unconsumed push
// and no stray response is left.
func (s *Scenario) settle(extra ...*user) {
	all := append(append([]*user{}, s.users...), extra...)
	for _, u := range all {
		if u.cl == nil {
			continue
		}
		select {
		case <-u.cl.Done():
			continue
		default:
		}
		s.must(u.cl.Ping(), u.name+": PING")
	}
	for _, u := range all {
		if u.cl == nil {
			continue
		}
		if p := u.cl.Pending(); len(p) > 0 {
			var desc []string
			for _, x := range p {
				desc = append(desc, x.String())
			}
			s.failf("%s: unexpected push(es): %v", u.name, desc)
		}
		if st := u.cl.Stray(); len(st) > 0 {
			s.failf("%s: %d response(s) for no outstanding request, first: status %d reqId 0x%04x", u.name, len(st), st[0].Status, st[0].ReqID)
		}
	}
}

// subscribe runs SUBSCRIBE for u and checks the response, the
// REQUEST_MEMBER_INFO push and the MEMBER_ONLINE events to all subscribers
// (u included).
func (s *Scenario) subscribe(u *user, wantLast int64, lastUpdateOK func(uint64) bool, lastUpdateWant string) {
	last, err := u.cl.Subscribe(s.chatID)
	s.must(err, u.name+": SUBSCRIBE")
	if last != wantLast {
		s.failf("%s: SUBSCRIBE returned MESSAGE_ID %d, want the last message id %d", u.name, last, wantLast)
	}
	u.subscribed = true
	s.expectRequestMemberInfo(u, lastUpdateOK, lastUpdateWant)
	s.expectOnline(u, 1, s.subscribers()...)
}

func (s *Scenario) subscribers(except ...*user) []*user {
	var out []*user
outer:
	for _, u := range s.users {
		if !u.subscribed {
			continue
		}
		for _, e := range except {
			if e == u {
				continue outer
			}
		}
		out = append(out, u)
	}
	return out
}

// alive requires that each user's session is still open and answers PING.
func (s *Scenario) alive(users ...*user) {
	for _, u := range users {
		if u == nil {
			continue
		}
		select {
		case <-u.cl.Done():
			s.failf("%s: session was closed (%v); it must not be affected by another user's connection", u.name, u.cl.ReadErr())
		default:
		}
		s.must(u.cl.Ping(), u.name+": PING (session must be unaffected)")
	}
}

// syncAll pages GET_MESSAGES_SINCE from 0 until an empty batch and checks
// the result against the ledger.
func (s *Scenario) syncAll(u *user, limit uint32) { s.syncSince(u, 0, limit) }

// syncSince pages GET_MESSAGES_SINCE from since0 until an empty batch and
// checks that the result is exactly the ledger's messages above since0, in
// ascending id order with identical content. It returns how many there were.
func (s *Scenario) syncSince(u *user, since0 int64, limit uint32) int {
	since := since0
	var got []m.GotMessage
	for page := 0; ; page++ {
		if page > 10000 {
			s.failf("%s: GET_MESSAGES_SINCE paging does not end", u.name)
		}
		batch, err := u.cl.GetMessagesSince(s.chatID, since, limit)
		s.must(err, fmt.Sprintf("%s: GET_MESSAGES_SINCE(since %d, limit %d)", u.name, since, limit))
		if len(batch) == 0 {
			break
		}
		if len(batch) > int(limit) {
			s.failf("%s: GET_MESSAGES_SINCE(limit %d) returned %d messages", u.name, limit, len(batch))
		}
		for _, g := range batch {
			if g.MessageID <= since {
				s.failf("%s: GET_MESSAGES_SINCE(since %d): message id %d not above since / not ascending", u.name, since, g.MessageID)
			}
			since = g.MessageID
			got = append(got, g)
		}
	}
	var ids []int64
	for id := range s.ledger {
		if id > since0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if len(got) != len(ids) {
		var gotIDs []int64
		for _, g := range got {
			gotIDs = append(gotIDs, g.MessageID)
		}
		s.failf("%s: sync (since %d, limit %d) returned message ids %v, want %v", u.name, since0, limit, gotIDs, ids)
	}
	for i, id := range ids {
		want, g := s.ledger[id], got[i]
		if s.tsUnknown[id] && g.MessageID == id {
			s.checkTS(g.Timestamp, fmt.Sprintf("%s: sync: TIMESTAMP of message id %d", u.name, id))
			want.Timestamp = g.Timestamp
			s.ledger[id] = want
			delete(s.tsUnknown, id)
		}
		if g.MessageID != id || g.GUID != want.GUID || g.Timestamp != want.Timestamp || !bytes.Equal(g.Author, want.Author) || !bytes.Equal(g.Blob, want.Blob) {
			s.failf("%s: sync (since %d, limit %d) record #%d is %s, want %s", u.name, since0, limit, i+1, describeMsg(g), describeMsg(want))
		}
	}
	return len(ids)
}

// ---------------------------------------------------------------- scenarios

// RunPing: preamble + PING on one stream.
func (s *Scenario) RunPing() {
	s.begin("ping")
	u := newUser("P")
	s.open(u)
	s.must(u.cl.Ping(), "PING")
	u.cl.Close()
}

// RunFull runs the whole chat scenario.
func (s *Scenario) RunFull() {
	s.ledger = map[int64]m.GotMessage{}
	s.tsUnknown = map[int64]bool{}
	A, B := newUser("A"), newUser("B")
	s.users = []*user{A, B}
	var C *user
	if s.third {
		C = newUser("C")
		s.users = append(s.users, C)
	}

	// ---- frame-level behaviour on a scratch session
	s.begin("preamble + PING")
	X := newUser("X")
	s.open(X)
	s.must(X.cl.Ping(), "X: PING")

	s.begin("malformed TLV")
	_, err := X.cl.Request(m.CmdGetNonce, []byte{m.TagPubkey, 0x20, 1, 2, 3, 4, 5})
	s.expectErr(err, "bad tlv payload", "GET_NONCE with a truncated element")
	s.must(X.cl.Ping(), "X: PING after bad TLV (session must stay open)")

	s.begin("unauthenticated commands")
	_, err = X.cl.Subscribe(1)
	s.expectErr(err, "auth required", "SUBSCRIBE before AUTH")
	_, err = X.cl.Request(m.CmdCreateChat, nil)
	s.expectErr(err, "not authenticated", "CREATE_CHAT before AUTH")
	_, err = X.cl.GetNonce(X.pub[:31])
	s.expectErr(err, "missing or invalid pubkey", "GET_NONCE with a 31-byte key")

	s.begin("unknown cmd closes the session")
	_, err = X.cl.Request(0x34, nil)
	s.expectErr(err, "unknown cmd", "cmd 0x34")
	select {
	case <-X.cl.Done():
	case <-time.After(s.pushWait):
		s.failf("X: session still open %v after 'unknown cmd'; the server must close it", s.pushWait)
	}
	X.cl.Close()

	// ---- authentication
	s.begin("A: GET_NONCE + AUTH")
	s.open(A)
	nonce, err := A.cl.GetNonce(A.pub)
	s.must(err, "A: GET_NONCE")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	err = A.cl.AuthRaw(A.pub, nonce, m.SignAuth(other, nonce))
	s.expectErr(err, "invalid signature", "AUTH signed by the wrong key")
	err = A.cl.AuthRaw(A.pub, nonce, m.SignAuth(A.priv, nonce)[:63])
	s.expectErr(err, "missing or invalid signature", "AUTH with a 63-byte signature")
	s.must(A.cl.AuthRaw(A.pub, nonce, m.SignAuth(A.priv, nonce)), "A: AUTH with the right signature after a failed one (same nonce)")
	err = A.cl.AuthRaw(A.pub, nonce, m.SignAuth(A.priv, nonce))
	s.expectErr(err, "unknown nonce", "AUTH replaying a consumed nonce")

	s.begin("B: own QUIC connection")
	if s.newTransport == nil {
		s.failf("no second transport for B (Scenario.newTransport is nil)")
	}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		trB, err := s.newTransport(ctx)
		cancel()
		s.must(err, "B: open its own transport")
		s.extra = append(s.extra, trB)
		B.tr = trB
		s.logf("B: %s", trB.Describe())
	}

	s.begin("B: GET_NONCE + AUTH")
	s.open(B)
	s.must(B.cl.Auth(B.priv), "B: AUTH")
	if C != nil {
		s.begin("C: GET_NONCE + AUTH")
		s.open(C)
		s.must(C.cl.Auth(C.priv), "C: AUTH")
	}
	s.settle()

	// ---- chat creation with proof of work
	s.begin("CREATE_CHAT")
	chatName, chatDesc, avatar := "mimirclient test", "scenario full", randBytes(64)
	nonce, err = A.cl.GetNonce(A.pub)
	s.must(err, "A: GET_NONCE")
	counter, badSig := m.FailingPoW(A.priv, nonce)
	_, err = A.cl.CreateChatRaw(A.pub, nonce, counter, badSig, chatName, chatDesc, avatar)
	s.expectErr(err, "signature filter failed", "CREATE_CHAT whose signature lacks the two zero bytes")
	t0 := time.Now()
	counter, sig, err := m.SolvePoW(A.priv, nonce)
	s.must(err, "proof of work")
	s.logf("proof of work: counter %d in %v", counter, time.Since(t0).Round(time.Millisecond))
	s.chatID, err = A.cl.CreateChatRaw(A.pub, nonce, counter, sig, chatName, chatDesc, avatar)
	s.must(err, "A: CREATE_CHAT with a valid proof of work")
	if s.chatID <= 0 {
		s.failf("CREATE_CHAT returned chat id %d, want a positive int63", s.chatID)
	}
	s.logf("chat id %d", s.chatID)

	s.begin("A: SUBSCRIBE")
	zero := func(v uint64) bool { return v == 0 }
	s.subscribe(A, 0, zero, "0 (owner row changed_at)")
	s.settle()

	// ---- invite B
	s.begin("B: SUBSCRIBE before joining")
	_, err = B.cl.Subscribe(s.chatID)
	s.expectErr(err, "not a member or banned", "B: SUBSCRIBE as a non-member")

	invite := func(to *user) int64 {
		data := randBytes(92) // the size of the real client's encrypted shared key
		s.must(A.cl.SendInvite(s.chatID, to.pub, data), "A: SEND_INVITE to "+to.name)
		p, err := to.cl.WaitPush(m.PushGotInvite, nil, s.pushWait)
		s.must(err, to.name+": waiting for GOT_INVITE")
		inv, err := m.ParseGotInvite(p.Payload)
		s.must(err, to.name+": GOT_INVITE")
		switch {
		case inv.InviteID <= 0:
			s.failf("%s: GOT_INVITE INVITE_ID %d, want > 0", to.name, inv.InviteID)
		case inv.ChatID != s.chatID:
			s.failf("%s: GOT_INVITE CHAT_ID %d, want %d", to.name, inv.ChatID, s.chatID)
		case !bytes.Equal(inv.Inviter, A.pub):
			s.failf("%s: GOT_INVITE PUBKEY %x, want A's key", to.name, inv.Inviter)
		case inv.ChatName != chatName:
			s.failf("%s: GOT_INVITE CHAT_NAME %q, want %q", to.name, inv.ChatName, chatName)
		case inv.ChatDesc != chatDesc:
			s.failf("%s: GOT_INVITE CHAT_DESC %q, want %q", to.name, inv.ChatDesc, chatDesc)
		case !inv.HasAvatar || !bytes.Equal(inv.ChatAvatar, avatar):
			s.failf("%s: GOT_INVITE CHAT_AVATAR present=%v %x, want the %d-byte avatar", to.name, inv.HasAvatar, head(inv.ChatAvatar, 8), len(avatar))
		case !bytes.Equal(inv.InviteData, data):
			s.failf("%s: GOT_INVITE INVITE_DATA %x, want %x", to.name, inv.InviteData, data)
		}
		s.checkTS(inv.Timestamp, to.name+": GOT_INVITE TIMESTAMP")
		err = A.cl.SendInvite(s.chatID, to.pub, randBytes(92))
		s.expectErr(err, "invite already exists", "A: second SEND_INVITE to "+to.name)
		return inv.InviteID
	}
	accept := func(to *user, inviteID int64) {
		s.must(to.cl.InviteResponse(inviteID, true), to.name+": INVITE_RESPONSE accept")
		added := s.expectSys(m.SysUserAdded, true, func(b []byte) bool { return len(b) > 33 && bytes.Equal(b[1:33], to.pub) },
			func(b []byte) error { return m.CheckBody(b, m.SysUserAdded, to.pub, A.pub, nil) }, s.subscribers()...)
		s.logf("USER_ADDED(%s) is message id %d", to.name, added.MessageID)
		err := to.cl.InviteResponse(inviteID, true)
		s.expectErr(err, "invite not found", to.name+": answering the same invite again")
	}

	s.begin("SEND_INVITE to B")
	invB := invite(B)
	s.settle()
	s.begin("B: INVITE_RESPONSE accept")
	accept(B, invB)
	s.settle()
	s.begin("B: SUBSCRIBE")
	s.subscribe(B, s.maxLedgerID(), zero, "0 (changed_at after INVITE_RESPONSE)")
	s.settle()

	if C != nil {
		s.begin("SEND_INVITE to C")
		invC := invite(C)
		s.settle()
		s.begin("C: INVITE_RESPONSE accept")
		accept(C, invC)
		s.settle()
		s.begin("C: SUBSCRIBE")
		s.subscribe(C, s.maxLedgerID(), zero, "0 (changed_at after INVITE_RESPONSE)")
		s.settle()
	}

	// ---- messages
	send := func(from *user, guid int64, blob []byte, wantGUID int64) int64 {
		prev := s.maxLedgerID()
		g, id, err := from.cl.SendMessage(s.chatID, guid, blob)
		s.must(err, from.name+": SEND_MESSAGE")
		if g != wantGUID {
			s.failf("%s: SEND_MESSAGE returned MESSAGE_GUID %d, want %d", from.name, g, wantGUID)
		}
		if id <= prev {
			s.failf("%s: SEND_MESSAGE returned MESSAGE_ID %d, want > %d", from.name, id, prev)
		}
		rcv := s.subscribers(from)
		s.expectUserMsg(from, wantGUID, id, blob, rcv...)
		if len(rcv) == 0 {
			s.record(m.GotMessage{ChatID: s.chatID, MessageID: id, GUID: wantGUID, Author: from.pub, Blob: blob}, from.name+": SEND_MESSAGE")
			s.tsUnknown[id] = true
		}
		return id
	}
	s.begin("A: SEND_MESSAGE")
	guidA, blobA := randGUID(), randBytes(200)
	idA := send(A, guidA, blobA, guidA)
	s.settle()

	s.begin("B: SEND_MESSAGE")
	guidB, blobB := randGUID(), randBytes(333)
	send(B, guidB, blobB, guidB)
	s.settle()

	s.begin("A: SEND_MESSAGE retry with the same guid (idempotent)")
	g, id, err := A.cl.SendMessage(s.chatID, guidA, blobA)
	s.must(err, "A: SEND_MESSAGE retry")
	if g != guidA || id != idA {
		s.failf("A: retried SEND_MESSAGE returned (guid %d, id %d), want the original (guid %d, id %d)", g, id, guidA, idA)
	}
	// A re-delivery of the identical message is harmless to the client;
	// accept it, but nothing else.
	for _, r := range s.subscribers(A) {
		s.must(r.cl.Ping(), r.name+": PING")
		for _, p := range r.cl.Remove(func(p m.Push) bool {
			gm, err := m.ParseGotMessage(p.Payload)
			return err == nil && gm.MessageID == idA && gm.GUID == guidA && bytes.Equal(gm.Blob, blobA)
		}) {
			s.logf("%s: retry re-delivered %s", r.name, p)
		}
	}
	s.settle()

	s.begin("B: SEND_MESSAGE with A's guid (collision bump)")
	blobB2 := randBytes(50)
	send(B, guidA, blobB2, guidA+1)
	s.settle()

	// ---- member info
	now := uint64(time.Now().Unix())
	tsA, tsB := now-100, now-50
	infoA, infoB := randBytes(120), randBytes(80)
	s.begin("A: UPDATE_MEMBER_INFO")
	s.must(A.cl.UpdateMemberInfo(s.chatID, tsA, infoA), "A: UPDATE_MEMBER_INFO")
	s.expectMemberInfoPush(A, infoA, tsA, s.subscribers()...)
	s.settle()
	s.begin("B: UPDATE_MEMBER_INFO")
	s.must(B.cl.UpdateMemberInfo(s.chatID, tsB, infoB), "B: UPDATE_MEMBER_INFO")
	s.expectMemberInfoPush(B, infoB, tsB, s.subscribers()...)
	s.settle()

	s.begin("GET_MEMBERS_INFO")
	type mi struct {
		info []byte
		ts   uint64
	}
	checkInfos := func(lastUpdate uint64, want map[*user]mi) {
		list, err := B.cl.GetMembersInfo(s.chatID, lastUpdate)
		s.must(err, fmt.Sprintf("B: GET_MEMBERS_INFO(last_update %d)", lastUpdate))
		if len(list) != len(want) {
			s.failf("GET_MEMBERS_INFO(last_update %d): %d records, want %d", lastUpdate, len(list), len(want))
		}
		seen := map[string]bool{}
		for _, rec := range list {
			name := s.userByKey(rec.User)
			var w mi
			found := false
			for u, x := range want {
				if bytes.Equal(u.pub, rec.User) {
					w, found = x, true
				}
			}
			if !found || seen[name] {
				s.failf("GET_MEMBERS_INFO(last_update %d): unexpected or duplicate member %s", lastUpdate, name)
			}
			seen[name] = true
			if !bytes.Equal(rec.Info, w.info) || rec.Timestamp != w.ts {
				s.failf("GET_MEMBERS_INFO(last_update %d): %s has info %x (%d bytes) ts %d, want info %x (%d bytes) ts %d",
					lastUpdate, name, head(rec.Info, 8), len(rec.Info), rec.Timestamp, head(w.info, 8), len(w.info), w.ts)
			}
		}
	}
	wantInfos := map[*user]mi{A: {infoA, tsA}, B: {infoB, tsB}}
	if C != nil {
		wantInfos[C] = mi{[]byte{}, 0}
	}
	checkInfos(0, wantInfos)
	wantInfos[A] = mi{[]byte{}, tsA} // not changed after tsA: zero-length info
	checkInfos(tsA, wantInfos)
	s.settle()

	checkMembers := func(who *user, want map[*user]m.Member, lastSeenNow map[*user]bool) {
		list, err := who.cl.GetMembers(s.chatID)
		s.must(err, who.name+": GET_MEMBERS")
		if len(list) != len(want) {
			s.failf("GET_MEMBERS: %d records, want %d", len(list), len(want))
		}
		seen := map[string]bool{}
		for _, rec := range list {
			name := s.userByKey(rec.User)
			var w m.Member
			var wu *user
			for u, x := range want {
				if bytes.Equal(u.pub, rec.User) {
					w, wu = x, u
				}
			}
			if wu == nil || seen[name] {
				s.failf("GET_MEMBERS: unexpected or duplicate member %s", name)
			}
			seen[name] = true
			if rec.Perms != w.Perms || rec.Online != w.Online {
				s.failf("GET_MEMBERS: %s has perms 0x%02x online %d, want perms 0x%02x online %d", name, rec.Perms, rec.Online, w.Perms, w.Online)
			}
			if lastSeenNow[wu] {
				s.checkTS(int64(rec.LastSeen), "GET_MEMBERS: "+name+" LAST_SEEN")
			} else if rec.LastSeen != 0 {
				s.failf("GET_MEMBERS: %s LAST_SEEN %d, want 0 (never disconnected)", name, rec.LastSeen)
			}
		}
	}
	s.begin("GET_MEMBERS")
	members := map[*user]m.Member{A: {Perms: 0x90, Online: 1}, B: {Perms: 0x10, Online: 1}}
	if C != nil {
		members[C] = m.Member{Perms: 0x10, Online: 1}
	}
	checkMembers(A, members, nil)
	s.settle()

	// ---- roles
	s.begin("CHANGE_MEMBER_STATUS")
	err = A.cl.ChangeMemberStatus(s.chatID, A.pub, 0x40)
	s.expectErr(err, "cannot modify own permissions", "A: CHANGE_MEMBER_STATUS on itself")
	if C != nil {
		err = C.cl.ChangeMemberStatus(s.chatID, B.pub, 0x20)
		s.expectErr(err, "insufficient perms", "C (user): CHANGE_MEMBER_STATUS on B")
	}
	tRole := time.Now().Unix()
	s.must(A.cl.ChangeMemberStatus(s.chatID, B.pub, 0x20), "A: make B moderator")
	s.expectSys(m.SysPermsChanged, true, nil,
		func(b []byte) error { return m.CheckBody(b, m.SysPermsChanged, B.pub, []byte{0x20}, A.pub, nil) },
		s.subscribers(A)...)
	members[B] = m.Member{Perms: 0x20, Online: 1}
	checkMembers(A, members, nil)
	if C != nil {
		err = B.cl.ChangeMemberStatus(s.chatID, C.pub, 0x40)
		s.expectErr(err, "insufficient perms", "B (moderator): CHANGE_MEMBER_STATUS on C")
	}
	s.settle()

	// ---- chat info
	s.begin("UPDATE_CHAT_INFO")
	newName := "renamed by A"
	if C != nil {
		_, err = C.cl.UpdateChatInfo(s.chatID, &newName, nil, nil)
		s.expectErr(err, "insufficient perms", "C (user): UPDATE_CHAT_INFO")
	}
	_, err = A.cl.UpdateChatInfo(s.chatID, &newName, nil, nil)
	s.must(err, "A: UPDATE_CHAT_INFO(name)")
	wantInfoBody := append([]byte{m.SysChatInfoChange}, m.MustEncode(m.Bytes(m.TagPubkey, A.pub), m.Str(m.TagChatName, newName))...)
	ci := s.expectSys(m.SysChatInfoChange, true, nil, func(b []byte) error {
		if !bytes.Equal(b, wantInfoBody) {
			return fmt.Errorf("body %x, want [06] + TLV(PUBKEY A, CHAT_NAME %q) = %x", b, newName, wantInfoBody)
		}
		return nil
	}, s.subscribers(A)...)
	// Whether the actor's own session gets it too is a recommendation only
	// (§5.24); accept a copy identical to the others'.
	s.must(A.cl.Ping(), "A: PING")
	for _, p := range A.cl.Remove(func(p m.Push) bool {
		g, err := m.ParseGotMessage(p.Payload)
		return err == nil && len(g.Blob) > 0 && g.Blob[0] == m.SysChatInfoChange
	}) {
		g, _ := m.ParseGotMessage(p.Payload)
		if g.MessageID != ci.MessageID || g.GUID != ci.GUID || g.Timestamp != ci.Timestamp || !bytes.Equal(g.Blob, ci.Blob) || !bytes.Equal(g.Author, s.serverKey) || g.ChatID != s.chatID {
			s.failf("A: its copy of CHAT_INFO_CHANGE differs: %s vs %s", describeMsg(g), describeMsg(ci))
		}
	}
	s.settle()

	s.begin("GET_LAST_MESSAGE_ID")
	last, err := A.cl.GetLastMessageID(s.chatID)
	s.must(err, "A: GET_LAST_MESSAGE_ID")
	if last != s.maxLedgerID() {
		s.failf("GET_LAST_MESSAGE_ID = %d, want %d", last, s.maxLedgerID())
	}

	// ---- B reconnects on a new stream of the same connection
	s.begin("B: close stream")
	oldB := B.cl
	s.must(oldB.Close(), "B: close stream")
	B.subscribed = false
	s.expectOnline(B, 0, s.subscribers()...)
	select {
	case <-oldB.Done():
	case <-time.After(s.pushWait):
		cancelRead(oldB.Stream())
		s.failf("B: the server did not close its side of the old stream within %v", s.pushWait)
	}
	s.settle()

	s.begin("B: reopen, AUTH, SUBSCRIBE")
	s.open(B)
	s.must(B.cl.Auth(B.priv), "B: AUTH on the new stream")
	bLastUpdateOK := func(v uint64) bool {
		// changed_at is B's member-info timestamp, or "now" of the role
		// change if the server bumps it there too (the Go server does).
		return v == tsB || (int64(v) >= tRole-1 && int64(v) <= time.Now().Unix()+1)
	}
	bLastUpdateWant := fmt.Sprintf("%d (B's member-info ts) or the time of the role change (~%d)", tsB, tRole)
	s.subscribe(B, s.maxLedgerID(), bLastUpdateOK, bLastUpdateWant)
	s.settle()
	s.begin("GET_MEMBERS after B's reconnect")
	checkMembers(B, members, map[*user]bool{B: true})

	s.begin("B: GET_MESSAGES_SINCE sync")
	_, err = B.cl.GetMessagesSince(s.chatID, 0, 0)
	s.expectErr(err, "limit must be between 1 and 500", "GET_MESSAGES_SINCE limit 0")
	_, err = B.cl.GetMessagesSince(s.chatID, 0, 501)
	s.expectErr(err, "limit must be between 1 and 500", "GET_MESSAGES_SINCE limit 501")
	s.syncAll(B, 100)
	s.syncAll(B, 2)
	s.settle()

	// ---- B drops its QUIC connection and redials a fresh one (the real
	// client's messenger.closeConnection + reconnect). B has its own node
	// key / UDP socket: the mediator keeps one connection per remote, and
	// a fresh one replaces the old, so on a shared one A and C would die.
	s.begin("B: close the QUIC connection")
	lastB := s.maxLedgerID()
	oldB = B.cl
	dialsB := B.tr.Dials()
	s.must(B.tr.CloseConnection(), "B: close the QUIC connection")
	B.subscribed = false
	s.expectOnline(B, 0, s.subscribers()...)
	select {
	case <-oldB.Done():
	case <-time.After(s.pushWait):
		s.failf("B: its session still reads %v after the connection was closed", s.pushWait)
	}
	s.alive(A, C)
	s.settle()

	s.begin("messages while B is disconnected")
	var missed []int64
	for i, from := range []*user{A, C, A} {
		if from == nil {
			from = A
		}
		guid := randGUID()
		missed = append(missed, send(from, guid, randBytes(40+100*i), guid))
	}
	s.settle()

	s.begin("B: redial a fresh QUIC connection, AUTH, SUBSCRIBE")
	{
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := B.tr.Redial(ctx)
		cancel()
		s.must(err, "B: redial")
	}
	if d := B.tr.Dials(); d != dialsB+1 {
		s.failf("B: %d QUIC dials after the redial, want %d (a fresh connection)", d, dialsB+1)
	}
	s.open(B)
	s.must(B.cl.Auth(B.priv), "B: AUTH on the fresh connection")
	s.subscribe(B, s.maxLedgerID(), bLastUpdateOK, bLastUpdateWant)
	s.alive(A, C)
	s.settle()

	s.begin("B: GET_MESSAGES_SINCE after the redial")
	if n := s.syncSince(B, lastB, 100); n != len(missed) {
		s.failf("B: %d messages above id %d, want the %d sent while it was away (%v)", n, lastB, len(missed), missed)
	}
	s.syncSince(B, lastB, 1)
	s.alive(A, C)
	s.settle()

	// ---- delete a message
	s.begin("DELETE_MESSAGE")
	err = A.cl.DeleteMessage(s.chatID, randGUID())
	s.expectErr(err, "message not found", "A: DELETE_MESSAGE of an unknown guid")
	if C != nil {
		err = C.cl.DeleteMessage(s.chatID, guidA)
		s.expectErr(err, "insufficient perms", "C (user): DELETE_MESSAGE of A's message")
	}
	s.must(B.cl.DeleteMessage(s.chatID, guidB), "B: DELETE_MESSAGE of its own message")
	guidBytes := make([]byte, 8)
	binary.BigEndian.PutUint64(guidBytes, uint64(guidB))
	s.expectSys(m.SysMessageDeleted, true, nil,
		func(b []byte) error { return m.CheckBody(b, m.SysMessageDeleted, guidBytes, B.pub) },
		s.subscribers()...)
	for id, msg := range s.ledger {
		if msg.GUID == guidB && bytes.Equal(msg.Author, B.pub) {
			delete(s.ledger, id)
		}
	}
	last, err = A.cl.GetLastMessageID(s.chatID)
	s.must(err, "A: GET_LAST_MESSAGE_ID")
	if last != s.maxLedgerID() {
		s.failf("GET_LAST_MESSAGE_ID after delete = %d, want %d", last, s.maxLedgerID())
	}
	s.syncAll(A, 100)
	s.settle()

	// ---- leave
	s.begin("LEAVE_CHAT")
	err = A.cl.LeaveChat(s.chatID)
	s.expectErr(err, "owner can't leave", "A: LEAVE_CHAT as owner")
	s.must(B.cl.LeaveChat(s.chatID), "B: LEAVE_CHAT")
	B.subscribed = false
	s.expectSys(m.SysUserLeft, true, nil,
		func(b []byte) error { return m.CheckBody(b, m.SysUserLeft, B.pub, nil) },
		s.subscribers()...)
	_, err = B.cl.Subscribe(s.chatID)
	s.expectErr(err, "not a member or banned", "B: SUBSCRIBE after leaving")
	delete(members, B)
	checkMembers(A, members, nil)
	s.settle()

	// ---- delete the chat
	s.begin("DELETE_CHAT")
	if C != nil {
		err = C.cl.DeleteChat(s.chatID)
		s.expectErr(err, "not an owner", "C: DELETE_CHAT as non-owner")
	}
	s.must(A.cl.DeleteChat(s.chatID), "A: DELETE_CHAT")
	A.subscribed = false
	s.expectSys(m.SysChatDeleted, false, nil,
		func(b []byte) error { return m.CheckBody(b, m.SysChatDeleted, A.pub, nil) },
		s.subscribers()...)
	for _, u := range s.users {
		u.subscribed = false
	}
	s.settle()
	err = A.cl.DeleteChat(s.chatID)
	s.expectErr(err, "no such chat", "A: DELETE_CHAT again")
	_, err = A.cl.GetLastMessageID(s.chatID)
	s.expectErr(err, "not a member or banned", "A: GET_LAST_MESSAGE_ID of the deleted chat")
	if C != nil {
		_, err = C.cl.Subscribe(s.chatID)
		s.expectErr(err, "not a member or banned", "C: SUBSCRIBE to the deleted chat")
	}
	s.settle()

	s.begin("close")
	for _, u := range s.users {
		u.cl.Close()
	}
}
