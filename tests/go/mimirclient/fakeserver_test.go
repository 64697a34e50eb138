package main

// A small in-memory mediator written from mediator-protocol.md (with the
// §11 fixes the real server applies), used only to self-test this client:
// the scenario logic, the UDP transport and the Yggdrasil transport. It is not a reference for the server.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	m "mediatord/tests/go/mimirclient/mediator"
)

type fakeServer struct {
	mu         sync.Mutex
	priv       ed25519.PrivateKey
	pub        ed25519.PublicKey
	nonces     map[string][][]byte
	chats      map[int64]*fchat
	invites    map[int64]*finvite
	nextInvite int64
	byPub      map[string]map[*fsess]bool
	// mut injects one deviation (a Go-server defect or a plain bug) to
	// check that the scenario notices it.
	mut string
}

type fchat struct {
	id      int64
	owner   []byte
	name    string
	desc    string
	avatar  []byte
	members []*fmember
	msgs    []*fmsg
	nextID  int64
	subs    map[*fsess]bool
}

type fmember struct {
	pub       []byte
	perms     byte
	changedAt uint64
	info      []byte
	lastSeen  uint64
}

type fmsg struct {
	id, guid, ts int64
	author, blob []byte
}

type finvite struct {
	id, chat, ts int64
	from, to     []byte
	data         []byte
}

type fsess struct {
	s      *fakeServer
	out    chan []byte
	authed bool
	pub    []byte
	chats  map[int64]bool
}

func newFakeServer() *fakeServer {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return &fakeServer{priv: priv, pub: pub, nonces: map[string][][]byte{}, chats: map[int64]*fchat{},
		invites: map[int64]*finvite{}, byPub: map[string]map[*fsess]bool{}}
}

func (c *fchat) member(pub []byte) *fmember {
	for _, mb := range c.members {
		if bytes.Equal(mb.pub, pub) {
			return mb
		}
	}
	return nil
}

func okFrame(reqID uint16, elems ...m.TLV) []byte {
	return m.EncodeResponse(m.StatusOK, reqID, m.MustEncode(elems...))
}

// serve runs one session on one stream.
func (s *fakeServer) serve(st io.ReadWriteCloser) {
	ss := &fsess{s: s, out: make(chan []byte, 256), chats: map[int64]bool{}}
	done := make(chan struct{})
	go func() {
		for f := range ss.out {
			if _, err := st.Write(f); err != nil {
				break
			}
		}
		st.Close()
		close(done)
	}()
	defer func() {
		s.mu.Lock()
		s.endSession(ss)
		close(ss.out)
		s.mu.Unlock()
		<-done
	}()
	pre := make([]byte, 2)
	if _, err := io.ReadFull(st, pre); err != nil || !bytes.Equal(pre, m.Preamble) {
		return
	}
	for {
		var h [7]byte
		if _, err := io.ReadFull(st, h[:]); err != nil {
			return
		}
		cmd, reqID, n := h[0], binary.BigEndian.Uint16(h[1:3]), binary.BigEndian.Uint32(h[3:7])
		if n > 32<<20 {
			ss.out <- m.EncodeResponse(m.StatusErr, reqID, m.EncodeErrPayload("payload too large"))
			return
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(st, p); err != nil {
			return
		}
		s.mu.Lock()
		resp, closeAfter := s.handle(ss, cmd, reqID, p)
		if resp != nil {
			ss.out <- resp
		}
		s.mu.Unlock()
		if closeAfter {
			return
		}
	}
}

func (s *fakeServer) endSession(ss *fsess) {
	if !ss.authed {
		return
	}
	delete(s.byPub[string(ss.pub)], ss)
	now := uint64(time.Now().Unix())
	for id := range ss.chats {
		c := s.chats[id]
		if c == nil {
			continue
		}
		delete(c.subs, ss)
		if mb := c.member(ss.pub); mb != nil {
			mb.lastSeen = now
		}
		still := false
		for o := range c.subs {
			if bytes.Equal(o.pub, ss.pub) {
				still = true
			}
		}
		if !still {
			s.online(c, ss.pub, 0)
		}
	}
}

func (s *fakeServer) push(c *fchat, except *fsess, frame []byte) {
	for o := range c.subs {
		if o != except {
			o.out <- frame
		}
	}
}

func (s *fakeServer) sysMsg(c *fchat, body []byte, store bool, except *fsess) {
	ts := time.Now().Unix()
	guid := m.SystemGUID(body, ts)
	var id int64
	if store {
		c.nextID++
		id = c.nextID
		c.msgs = append(c.msgs, &fmsg{id: id, guid: guid, ts: ts, author: s.pub, blob: body})
	}
	s.push(c, except, okFrame(m.PushGotMessage, m.I64(m.TagChatID, c.id), m.I64(m.TagMessageID, id), m.I64(m.TagMessageGUID, guid),
		m.I64(m.TagTimestamp, ts), m.Bytes(m.TagPubkey, s.pub), m.Bytes(m.TagMessageBlob, body)))
}

func (s *fakeServer) online(c *fchat, pub []byte, on byte) {
	b := append([]byte{m.SysMemberOnline}, pub...)
	b = append(b, on)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().Unix()))
	s.sysMsg(c, b, false, nil)
}

func rnd32() []byte { b := make([]byte, 32); rand.Read(b); return b }

func (s *fakeServer) inviteFrame(inv *finvite) []byte {
	c := s.chats[inv.chat]
	el := []m.TLV{m.I64(m.TagInviteID, inv.id), m.I64(m.TagChatID, inv.chat), m.Bytes(m.TagPubkey, inv.from),
		m.I64(m.TagTimestamp, inv.ts), m.Str(m.TagChatName, c.name), m.Str(m.TagChatDesc, c.desc)}
	if c.avatar != nil {
		el = append(el, m.Bytes(m.TagChatAvatar, c.avatar))
	}
	el = append(el, m.Bytes(m.TagInviteData, inv.data))
	return okFrame(m.PushGotInvite, el...)
}

type targs map[byte][]byte

func (a targs) fixed(tag byte, n int) ([]byte, bool) {
	v, ok := a[tag]
	return v, ok && len(v) == n
}
func (a targs) i64(tag byte) (int64, bool) {
	v, ok := a.fixed(tag, 8)
	if !ok {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

func (s *fakeServer) handle(ss *fsess, cmd byte, reqID uint16, p []byte) ([]byte, bool) {
	fail := func(text string) ([]byte, bool) {
		return m.EncodeResponse(m.StatusErr, reqID, m.EncodeErrPayload(text)), false
	}
	ok := func(el ...m.TLV) ([]byte, bool) { return okFrame(reqID, el...), false }
	if cmd == m.CmdPing {
		return ok()
	}
	known := map[byte]bool{m.CmdGetNonce: true, m.CmdAuth: true, m.CmdCreateChat: true, m.CmdDeleteChat: true, m.CmdUpdateChatInfo: true,
		m.CmdLeaveChat: true, m.CmdSendMessage: true, m.CmdDeleteMessage: true, m.CmdGetLastMessageID: true, m.CmdSubscribe: true,
		m.CmdGetMessagesSince: true, m.CmdSendInvite: true, m.CmdInviteResponse: true, m.CmdUpdateMemberInfo: true,
		m.CmdGetMembersInfo: true, m.CmdGetMembers: true, m.CmdChangeMemberStatus: true, m.CmdAddUser: true}
	if !known[cmd] {
		r, _ := fail("unknown cmd")
		return r, true
	}
	if !ss.authed && cmd != m.CmdGetNonce && cmd != m.CmdAuth {
		if cmd == m.CmdCreateChat {
			return fail("not authenticated")
		}
		return fail("auth required")
	}
	elems, err := m.Decode(p)
	if err != nil {
		return fail("bad tlv payload")
	}
	a := targs{}
	for _, e := range elems {
		a[e.Tag] = e.Value
	}
	now := time.Now().Unix()
	if cmd == m.CmdGetNonce {
		pk, good := a.fixed(m.TagPubkey, 32)
		if !good {
			return fail("missing or invalid pubkey")
		}
		n := rnd32()
		s.nonces[string(pk)] = append(s.nonces[string(pk)], n)
		return ok(m.Bytes(m.TagNonce, n))
	}
	takeNonce := func(pk, n []byte, consume bool) bool {
		list := s.nonces[string(pk)]
		for i, x := range list {
			if bytes.Equal(x, n) {
				if consume {
					s.nonces[string(pk)] = append(list[:i:i], list[i+1:]...)
				}
				return true
			}
		}
		return false
	}
	if cmd == m.CmdAuth {
		pk, g1 := a.fixed(m.TagPubkey, 32)
		n, g2 := a.fixed(m.TagNonce, 32)
		sig, g3 := a.fixed(m.TagSignature, 64)
		switch {
		case !g1:
			return fail("missing or invalid pubkey")
		case !g2:
			return fail("missing or invalid nonce")
		case !g3:
			return fail("missing or invalid signature")
		case !takeNonce(pk, n, false):
			return fail("unknown nonce")
		case !ed25519.Verify(pk, n, sig):
			return fail("invalid signature")
		}
		takeNonce(pk, n, true)
		ss.authed, ss.pub = true, pk
		if s.byPub[string(pk)] == nil {
			s.byPub[string(pk)] = map[*fsess]bool{}
		}
		s.byPub[string(pk)][ss] = true
		r, _ := ok()
		ss.out <- r
		for _, inv := range s.invites {
			if bytes.Equal(inv.to, pk) {
				ss.out <- s.inviteFrame(inv)
			}
		}
		return nil, false
	}
	if cmd == m.CmdCreateChat {
		pk, _ := a.fixed(m.TagPubkey, 32)
		n, _ := a.fixed(m.TagNonce, 32)
		ctr, _ := a.fixed(m.TagCounter, 4)
		sig, _ := a.fixed(m.TagSignature, 64)
		name, hasName := a[m.TagChatName]
		desc, hasDesc := a[m.TagChatDesc]
		switch {
		case pk == nil || sig == nil || n == nil || ctr == nil || !hasName || !hasDesc:
			return fail("missing field")
		case !bytes.Equal(pk, ss.pub):
			return fail("keys mismatch")
		case utf8.RuneCount(name) > 25 || utf8.RuneCount(desc) > 200:
			return fail("field too large")
		case !takeNonce(pk, n, false):
			return fail("unknown nonce")
		case !m.PoWOK(sig):
			return fail("signature filter failed")
		case !ed25519.Verify(pk, append(append([]byte{}, n...), ctr...), sig):
			return fail("invalid signature")
		}
		takeNonce(pk, n, true)
		id := int64(binary.BigEndian.Uint64(rnd32()) & 0x7fffffffffffffff)
		c := &fchat{id: id, owner: pk, name: string(name), desc: string(desc), avatar: a[m.TagChatAvatar], subs: map[*fsess]bool{},
			members: []*fmember{{pub: pk, perms: 0x90}}}
		s.chats[id] = c
		return ok(m.I64(m.TagChatID, id))
	}
	if cmd == m.CmdInviteResponse {
		id, g1 := a.i64(m.TagInviteID)
		acc, g2 := a.fixed(m.TagAccepted, 1)
		inv := s.invites[id]
		switch {
		case !g1:
			return fail("missing or invalid invite id")
		case !g2:
			return fail("missing or invalid accepted flag")
		case inv == nil:
			return fail("invite not found")
		case !bytes.Equal(inv.to, ss.pub):
			return fail("not recipient of this invite")
		}
		delete(s.invites, id)
		if acc[0] == 1 {
			c := s.chats[inv.chat]
			c.members = append(c.members, &fmember{pub: ss.pub, perms: 0x10})
			s.sysMsg(c, append(append(append([]byte{m.SysUserAdded}, ss.pub...), inv.from...), rnd32()...), true, nil)
		}
		return ok()
	}
	chatID, good := a.i64(m.TagChatID)
	if !good {
		return fail("missing or invalid chat id")
	}
	c := s.chats[chatID]
	if cmd == m.CmdDeleteChat {
		switch {
		case c == nil:
			return fail("no such chat")
		case !bytes.Equal(c.owner, ss.pub):
			return fail("not an owner")
		}
		body := append(append([]byte{m.SysChatDeleted}, ss.pub...), rnd32()...)
		if s.mut == "binary-delete-chat" { // Go server bug B1
			p := binary.BigEndian.AppendUint64(nil, uint64(chatID))
			p = binary.BigEndian.AppendUint64(p, 0)
			p = binary.BigEndian.AppendUint64(p, uint64(m.SystemGUID(body, now)))
			p = append(p, s.pub...)
			p = binary.BigEndian.AppendUint32(p, uint32(len(body)))
			s.push(c, ss, m.EncodeResponse(m.StatusOK, m.PushGotMessage, append(p, body...)))
		} else {
			s.sysMsg(c, body, false, ss)
		}
		delete(s.chats, chatID)
		for o := range c.subs {
			delete(o.chats, chatID)
		}
		return m.EncodeResponse(m.StatusOK, reqID, []byte{1}), false
	}
	if cmd == m.CmdDeleteMessage {
		guid, g := a.i64(m.TagMessageGUID)
		if !g {
			return fail("missing or invalid message guid")
		}
		var msg *fmsg
		idx := -1
		if c != nil {
			for i, x := range c.msgs {
				if x.guid == guid {
					msg, idx = x, i
				}
			}
		}
		if msg == nil {
			return fail("message not found")
		}
		mb := c.member(ss.pub)
		if mb == nil {
			return fail("not a member or banned")
		}
		if !bytes.Equal(msg.author, ss.pub) && mb.perms&0xE0 == 0 {
			return fail("insufficient perms")
		}
		c.msgs = append(c.msgs[:idx:idx], c.msgs[idx+1:]...)
		s.sysMsg(c, append(binary.BigEndian.AppendUint64([]byte{m.SysMessageDeleted}, uint64(guid)), ss.pub...), true, nil)
		return ok()
	}
	var mb *fmember
	if c != nil {
		mb = c.member(ss.pub)
	}
	if cmd == m.CmdLeaveChat {
		switch {
		case mb == nil:
			return fail("not a member")
		case mb.perms&0x80 != 0:
			return fail("owner can't leave")
		}
		delete(c.subs, ss)
		delete(ss.chats, chatID)
		for i, x := range c.members {
			if x == mb {
				c.members = append(c.members[:i:i], c.members[i+1:]...)
			}
		}
		s.sysMsg(c, append(append([]byte{m.SysUserLeft}, ss.pub...), rnd32()...), true, ss)
		return ok()
	}
	if mb == nil {
		return fail("not a member or banned")
	}
	switch cmd {
	case m.CmdSubscribe:
		c.subs[ss] = true
		ss.chats[chatID] = true
		s.online(c, ss.pub, 1)
		r, _ := ok(m.I64(m.TagMessageID, c.nextID))
		ss.out <- r
		ss.out <- okFrame(m.PushRequestMemberInfo, m.I64(m.TagChatID, chatID), m.U64(m.TagLastUpdate, mb.changedAt))
		return nil, false
	case m.CmdGetLastMessageID:
		var last int64
		for _, x := range c.msgs {
			last = x.id
		}
		return ok(m.I64(m.TagMessageID, last))
	case m.CmdSendMessage:
		guid, g := a.i64(m.TagMessageGUID)
		if !g {
			return fail("missing or invalid guid")
		}
		blob := a[m.TagMessageBlob]
		for _, x := range c.msgs {
			if x.guid == guid && bytes.Equal(x.author, ss.pub) && s.mut != "no-idempotency" {
				return ok(m.I64(m.TagMessageGUID, x.guid), m.I64(m.TagMessageID, x.id))
			}
		}
		for used := true; used; {
			used = false
			for _, x := range c.msgs {
				if x.guid == guid {
					used = true
					guid++
				}
			}
		}
		c.nextID++
		msg := &fmsg{id: c.nextID, guid: guid, ts: now, author: ss.pub, blob: append([]byte{}, blob...)}
		c.msgs = append(c.msgs, msg)
		ts, except := now, ss
		if s.mut == "ms-timestamp" {
			ts = time.Now().UnixMilli()
		}
		if s.mut == "echo" {
			except = nil
		}
		frame := okFrame(m.PushGotMessage, m.I64(m.TagChatID, chatID), m.I64(m.TagMessageID, msg.id), m.I64(m.TagMessageGUID, guid),
			m.I64(m.TagTimestamp, ts), m.Bytes(m.TagPubkey, ss.pub), m.Bytes(m.TagMessageBlob, msg.blob))
		if s.mut == "drop-push" && msg.id%5 == 0 {
			// Lose this message's push to one other subscriber.
			dropped := false
			for o := range c.subs {
				if o == ss {
					continue
				}
				if !dropped {
					dropped = true
					continue
				}
				o.out <- frame
			}
		} else {
			s.push(c, except, frame)
		}
		if s.mut == "id-only-reply" { // servers up to 92e89bd (B6)
			return ok(m.I64(m.TagMessageID, msg.id))
		}
		return ok(m.I64(m.TagMessageGUID, guid), m.I64(m.TagMessageID, msg.id))
	case m.CmdGetMessagesSince:
		since, g1 := a.i64(m.TagSinceID)
		lim, g2 := a.fixed(m.TagLimit, 4)
		if !g1 {
			return fail("missing or invalid since message id")
		}
		if !g2 {
			return fail("missing or invalid limit")
		}
		limit := binary.BigEndian.Uint32(lim)
		if limit < 1 || limit > 500 {
			return fail("limit must be between 1 and 500")
		}
		var el []m.TLV
		var count uint32
		for _, x := range c.msgs {
			if x.id > since && count < limit {
				count++
				el = append(el, m.I64(m.TagMessageID, x.id), m.I64(m.TagMessageGUID, x.guid), m.I64(m.TagTimestamp, x.ts),
					m.Bytes(m.TagPubkey, x.author), m.Bytes(m.TagMessageBlob, x.blob))
			}
		}
		return ok(append([]m.TLV{m.U32(m.TagCount, count)}, el...)...)
	case m.CmdSendInvite:
		to, g := a.fixed(m.TagUserPubkey, 32)
		if !g {
			return fail("missing or invalid to_pubkey")
		}
		if mb.perms&0xE0 == 0 {
			return fail("insufficient perms")
		}
		for _, inv := range s.invites {
			if inv.chat == chatID && bytes.Equal(inv.to, to) {
				return fail("invite already exists")
			}
		}
		s.nextInvite++
		inv := &finvite{id: s.nextInvite, chat: chatID, ts: now, from: ss.pub, to: to, data: a[m.TagInviteData]}
		s.invites[inv.id] = inv
		for o := range s.byPub[string(to)] {
			o.out <- s.inviteFrame(inv)
		}
		return ok()
	case m.CmdUpdateMemberInfo:
		ts, g := a.fixed(m.TagTimestamp, 8)
		if !g {
			return fail("missing or invalid timestamp")
		}
		mb.info = append([]byte{}, a[m.TagMemberInfo]...)
		mb.changedAt = binary.BigEndian.Uint64(ts)
		s.push(c, nil, okFrame(m.PushGotMemberInfo, m.I64(m.TagChatID, chatID), m.U32(m.TagCount, 1), m.Bytes(m.TagUserPubkey, ss.pub),
			m.Bytes(m.TagMemberInfo, mb.info), m.U64(m.TagTimestamp, mb.changedAt)))
		return ok()
	case m.CmdGetMembersInfo:
		var lu uint64
		if v, g := a.fixed(m.TagLastUpdate, 8); g {
			lu = binary.BigEndian.Uint64(v)
		}
		el := []m.TLV{m.U32(m.TagCount, uint32(len(c.members)))}
		for _, x := range c.members {
			info := []byte{}
			if x.info != nil && (lu == 0 || x.changedAt > lu) {
				info = x.info
			}
			el = append(el, m.Bytes(m.TagUserPubkey, x.pub), m.Bytes(m.TagMemberInfo, info), m.U64(m.TagTimestamp, x.changedAt))
		}
		return ok(el...)
	case m.CmdAddUser:
		user, g := a.fixed(m.TagUserPubkey, 32)
		if !g {
			return fail("missing or invalid user pubkey")
		}
		if mb.perms&0xE0 == 0 {
			return fail("insufficient perms")
		}
		if c.member(user) == nil {
			c.members = append(c.members, &fmember{pub: user, perms: 0x10})
			s.sysMsg(c, append(append(append([]byte{m.SysUserAdded}, user...), ss.pub...), rnd32()...), true, ss)
		}
		return ok()
	case m.CmdGetMembers:
		el := []m.TLV{m.U32(m.TagCount, uint32(len(c.members)))}
		for _, x := range c.members {
			var on byte
			for o := range c.subs {
				if bytes.Equal(o.pub, x.pub) {
					on = 1
				}
			}
			el = append(el, m.Bytes(m.TagUserPubkey, x.pub), m.U8(m.TagPerms, x.perms), m.U8(m.TagOnline, on), m.U64(m.TagLastSeen, x.lastSeen))
		}
		return ok(el...)
	case m.CmdChangeMemberStatus:
		target, g1 := a.fixed(m.TagUserPubkey, 32)
		perms, g2 := a.fixed(m.TagPerms, 1)
		switch {
		case !g1:
			return fail("missing or invalid user pubkey")
		case !g2:
			return fail("missing or invalid perms")
		case bytes.Equal(target, ss.pub):
			return fail("cannot modify own permissions")
		case c.member(target) == nil:
			return fail("target user not a member")
		case mb.perms&0xC0 == 0:
			return fail("insufficient perms")
		}
		t := c.member(target)
		t.perms, t.changedAt = perms[0], uint64(now)
		body := append(append([]byte{m.SysPermsChanged}, target...), perms[0])
		s.sysMsg(c, append(append(body, ss.pub...), rnd32()...), true, ss)
		return ok()
	case m.CmdUpdateChatInfo:
		if mb.perms&0xC0 == 0 {
			return fail("insufficient perms")
		}
		el := []m.TLV{m.Bytes(m.TagPubkey, ss.pub)}
		if v, g := a[m.TagChatName]; g {
			c.name = string(v)
			el = append(el, m.Bytes(m.TagChatName, v))
		}
		if v, g := a[m.TagChatDesc]; g {
			c.desc = string(v)
			el = append(el, m.Bytes(m.TagChatDesc, v))
		}
		if v, g := a[m.TagChatAvatar]; g {
			c.avatar = v
			el = append(el, m.Bytes(m.TagChatAvatar, v))
		}
		s.sysMsg(c, append([]byte{m.SysChatInfoChange}, m.MustEncode(el...)...), true, nil)
		return ok()
	}
	return fail("unknown cmd")
}

func (s *fakeServer) keyHex() string { return hex.EncodeToString(s.pub) }
