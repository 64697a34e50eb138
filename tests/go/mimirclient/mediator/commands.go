package mediator

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"
)

// Helpers for every command of §4. Each builds the request exactly as the
// real client does and parses the OK response strictly (exact tags, order
// and sizes). ERR responses come back as *ServerError.

func (c *Client) req(cmd byte, elems ...TLV) ([]byte, error) {
	p, err := Encode(elems...)
	if err != nil {
		return nil, err
	}
	return c.Request(cmd, p)
}

func (c *Client) reqEmpty(name string, cmd byte, elems ...TLV) error {
	p, err := c.req(cmd, elems...)
	if err != nil {
		return err
	}
	if len(p) != 0 {
		return fmt.Errorf("%s: %s response: want empty OK payload, got %d bytes %x", c.Name, name, len(p), head(p))
	}
	return nil
}

// Ping sends PING (0x03) with an empty payload; the answer is OK ∅.
func (c *Client) Ping() error { return c.reqEmpty("PING", CmdPing) }

// GetNonce sends GET_NONCE (0x01) and returns the 32-byte nonce.
func (c *Client) GetNonce(pub ed25519.PublicKey) ([]byte, error) {
	p, err := c.req(CmdGetNonce, Bytes(TagPubkey, pub))
	if err != nil {
		return nil, err
	}
	r := NewReader(c.Name+": GET_NONCE response", p)
	n := r.Fixed(TagNonce, 32)
	r.End()
	return n, r.Err()
}

// AuthRaw sends AUTH (0x02) with the given fields.
func (c *Client) AuthRaw(pub ed25519.PublicKey, nonce, sig []byte) error {
	return c.reqEmpty("AUTH", CmdAuth, Bytes(TagPubkey, pub), Bytes(TagNonce, nonce), Bytes(TagSignature, sig))
}

// Auth runs GET_NONCE then AUTH with Ed25519(nonce), as MediatorClient.start.
func (c *Client) Auth(priv ed25519.PrivateKey) error {
	pub := priv.Public().(ed25519.PublicKey)
	nonce, err := c.GetNonce(pub)
	if err != nil {
		return err
	}
	return c.AuthRaw(pub, nonce, SignAuth(priv, nonce))
}

// CreateChatRaw sends CREATE_CHAT (0x10) with the given fields. avatar nil
// means the tag is omitted.
func (c *Client) CreateChatRaw(pub ed25519.PublicKey, nonce []byte, counter uint32, sig []byte, name, desc string, avatar []byte) (int64, error) {
	elems := []TLV{
		Bytes(TagPubkey, pub), Bytes(TagNonce, nonce), U32(TagCounter, counter), Bytes(TagSignature, sig),
		Str(TagChatName, name), Str(TagChatDesc, desc),
	}
	if avatar != nil {
		elems = append(elems, Bytes(TagChatAvatar, avatar))
	}
	p, err := c.req(CmdCreateChat, elems...)
	if err != nil {
		return 0, err
	}
	r := NewReader(c.Name+": CREATE_CHAT response", p)
	id := r.I64(TagChatID)
	r.End()
	return id, r.Err()
}

// CreateChat runs GET_NONCE, the proof of work and CREATE_CHAT, as
// MediatorManager.createChat does.
func (c *Client) CreateChat(priv ed25519.PrivateKey, name, desc string, avatar []byte) (int64, error) {
	pub := priv.Public().(ed25519.PublicKey)
	nonce, err := c.GetNonce(pub)
	if err != nil {
		return 0, err
	}
	counter, sig, err := SolvePoW(priv, nonce)
	if err != nil {
		return 0, err
	}
	return c.CreateChatRaw(pub, nonce, counter, sig, name, desc, avatar)
}

// DeleteChat sends DELETE_CHAT (0x11). The OK payload must be the single
// raw byte 0x01 (not TLV).
func (c *Client) DeleteChat(chatID int64) error {
	p, err := c.req(CmdDeleteChat, I64(TagChatID, chatID))
	if err != nil {
		return err
	}
	if !bytes.Equal(p, []byte{0x01}) {
		return fmt.Errorf("%s: DELETE_CHAT response: want raw payload 01, got %d bytes %x", c.Name, len(p), head(p))
	}
	return nil
}

// UpdateChatInfo sends UPDATE_CHAT_INFO (0x12) with only the given fields
// (nil = not changed). The client ignores the OK payload; it is returned.
func (c *Client) UpdateChatInfo(chatID int64, name, desc *string, avatar []byte) ([]byte, error) {
	elems := []TLV{I64(TagChatID, chatID)}
	if name != nil {
		elems = append(elems, Str(TagChatName, *name))
	}
	if desc != nil {
		elems = append(elems, Str(TagChatDesc, *desc))
	}
	if avatar != nil {
		elems = append(elems, Bytes(TagChatAvatar, avatar))
	}
	return c.req(CmdUpdateChatInfo, elems...)
}

// AddUser sends ADD_USER (0x20) (not used by the real client).
func (c *Client) AddUser(chatID int64, user []byte) error {
	return c.reqEmpty("ADD_USER", CmdAddUser, I64(TagChatID, chatID), Bytes(TagUserPubkey, user))
}

// DeleteUser sends DELETE_USER (0x21), a ban.
func (c *Client) DeleteUser(chatID int64, user []byte) error {
	return c.reqEmpty("DELETE_USER", CmdDeleteUser, I64(TagChatID, chatID), Bytes(TagUserPubkey, user))
}

// LeaveChat sends LEAVE_CHAT (0x22).
func (c *Client) LeaveChat(chatID int64) error {
	return c.reqEmpty("LEAVE_CHAT", CmdLeaveChat, I64(TagChatID, chatID))
}

// GetUserChats sends GET_USER_CHATS (0x23): COUNT, then CHAT_ID repeated.
func (c *Client) GetUserChats() ([]int64, error) {
	p, err := c.req(CmdGetUserChats)
	if err != nil {
		return nil, err
	}
	r := NewReader(c.Name+": GET_USER_CHATS response", p)
	n := r.U32(TagCount)
	var ids []int64
	for r.More() {
		ids = append(ids, r.I64(TagChatID))
	}
	r.End()
	if r.Err() == nil && int(n) != len(ids) {
		return ids, fmt.Errorf("%s: GET_USER_CHATS: COUNT %d but %d chat ids", c.Name, n, len(ids))
	}
	return ids, r.Err()
}

// SendMessage sends SEND_MESSAGE (0x30) with CHAT_ID, MESSAGE_GUID,
// TIMESTAMP (ms, as the real client) and MESSAGE_BLOB. The response is
// MESSAGE_GUID then MESSAGE_ID.
func (c *Client) SendMessage(chatID, guid int64, blob []byte) (gotGUID, id int64, err error) {
	p, err := c.req(CmdSendMessage, I64(TagChatID, chatID), I64(TagMessageGUID, guid),
		I64(TagTimestamp, time.Now().UnixMilli()), Bytes(TagMessageBlob, blob))
	if err != nil {
		return 0, 0, err
	}
	r := NewReader(c.Name+": SEND_MESSAGE response", p)
	gotGUID = r.I64(TagMessageGUID)
	id = r.I64(TagMessageID)
	r.End()
	return gotGUID, id, r.Err()
}

// DeleteMessage sends DELETE_MESSAGE (0x31) by guid.
func (c *Client) DeleteMessage(chatID, guid int64) error {
	return c.reqEmpty("DELETE_MESSAGE", CmdDeleteMessage, I64(TagChatID, chatID), I64(TagMessageGUID, guid))
}

// GetLastMessageID sends GET_LAST_MESSAGE_ID (0x33).
func (c *Client) GetLastMessageID(chatID int64) (int64, error) {
	p, err := c.req(CmdGetLastMessageID, I64(TagChatID, chatID))
	if err != nil {
		return 0, err
	}
	r := NewReader(c.Name+": GET_LAST_MESSAGE_ID response", p)
	id := r.I64(TagMessageID)
	r.End()
	return id, r.Err()
}

// Subscribe sends SUBSCRIBE (0x35) and returns the last message id.
func (c *Client) Subscribe(chatID int64) (int64, error) {
	p, err := c.req(CmdSubscribe, I64(TagChatID, chatID))
	if err != nil {
		return 0, err
	}
	r := NewReader(c.Name+": SUBSCRIBE response", p)
	id := r.I64(TagMessageID)
	r.End()
	return id, r.Err()
}

// GetMessagesSince sends GET_MESSAGES_SINCE (0x36). The response is COUNT,
// then per message MESSAGE_ID, MESSAGE_GUID, TIMESTAMP, PUBKEY, MESSAGE_BLOB.
func (c *Client) GetMessagesSince(chatID, since int64, limit uint32) ([]GotMessage, error) {
	p, err := c.req(CmdGetMessagesSince, I64(TagChatID, chatID), I64(TagSinceID, since), U32(TagLimit, limit))
	if err != nil {
		return nil, err
	}
	r := NewReader(c.Name+": GET_MESSAGES_SINCE response", p)
	n := r.U32(TagCount)
	var out []GotMessage
	for r.More() {
		out = append(out, GotMessage{
			ChatID:    chatID,
			MessageID: r.I64(TagMessageID),
			GUID:      r.I64(TagMessageGUID),
			Timestamp: r.I64(TagTimestamp),
			Author:    r.Key(TagPubkey),
			Blob:      r.Bytes(TagMessageBlob),
		})
	}
	r.End()
	if r.Err() == nil && int(n) != len(out) {
		return out, fmt.Errorf("%s: GET_MESSAGES_SINCE: COUNT %d but %d records", c.Name, n, len(out))
	}
	return out, r.Err()
}

// SendInvite sends SEND_INVITE (0x40).
func (c *Client) SendInvite(chatID int64, to []byte, data []byte) error {
	return c.reqEmpty("SEND_INVITE", CmdSendInvite, I64(TagChatID, chatID), Bytes(TagUserPubkey, to), Bytes(TagInviteData, data))
}

// InviteResponse sends INVITE_RESPONSE (0x42).
func (c *Client) InviteResponse(inviteID int64, accept bool) error {
	var a uint8
	if accept {
		a = 1
	}
	return c.reqEmpty("INVITE_RESPONSE", CmdInviteResponse, I64(TagInviteID, inviteID), U8(TagAccepted, a))
}

// UpdateMemberInfo sends UPDATE_MEMBER_INFO (0x50).
func (c *Client) UpdateMemberInfo(chatID int64, ts uint64, info []byte) error {
	return c.reqEmpty("UPDATE_MEMBER_INFO", CmdUpdateMemberInfo, I64(TagChatID, chatID), U64(TagTimestamp, ts), Bytes(TagMemberInfo, info))
}

// MemberInfo is one GET_MEMBERS_INFO record.
type MemberInfo struct {
	User      []byte
	Info      []byte
	Timestamp uint64
}

// GetMembersInfo sends GET_MEMBERS_INFO (0x52). LAST_UPDATE is omitted when
// lastUpdate is 0, as the real client does.
func (c *Client) GetMembersInfo(chatID int64, lastUpdate uint64) ([]MemberInfo, error) {
	elems := []TLV{I64(TagChatID, chatID)}
	if lastUpdate != 0 {
		elems = append(elems, U64(TagLastUpdate, lastUpdate))
	}
	p, err := c.req(CmdGetMembersInfo, elems...)
	if err != nil {
		return nil, err
	}
	r := NewReader(c.Name+": GET_MEMBERS_INFO response", p)
	n := r.U32(TagCount)
	var out []MemberInfo
	for r.More() {
		out = append(out, MemberInfo{User: r.Key(TagUserPubkey), Info: r.Bytes(TagMemberInfo), Timestamp: r.U64(TagTimestamp)})
	}
	r.End()
	if r.Err() == nil && int(n) != len(out) {
		return out, fmt.Errorf("%s: GET_MEMBERS_INFO: COUNT %d but %d records", c.Name, n, len(out))
	}
	return out, r.Err()
}

// Member is one GET_MEMBERS record.
type Member struct {
	User     []byte
	Perms    byte
	Online   byte
	LastSeen uint64
}

// GetMembers sends GET_MEMBERS (0x53): COUNT, then per member USER_PUBKEY,
// PERMS, ONLINE, LAST_SEEN.
func (c *Client) GetMembers(chatID int64) ([]Member, error) {
	p, err := c.req(CmdGetMembers, I64(TagChatID, chatID))
	if err != nil {
		return nil, err
	}
	r := NewReader(c.Name+": GET_MEMBERS response", p)
	n := r.U32(TagCount)
	var out []Member
	for r.More() {
		out = append(out, Member{User: r.Key(TagUserPubkey), Perms: r.U8(TagPerms), Online: r.U8(TagOnline), LastSeen: r.U64(TagLastSeen)})
	}
	r.End()
	if r.Err() == nil && int(n) != len(out) {
		return out, fmt.Errorf("%s: GET_MEMBERS: COUNT %d but %d records", c.Name, n, len(out))
	}
	return out, r.Err()
}

// ChangeMemberStatus sends CHANGE_MEMBER_STATUS (0x55).
func (c *Client) ChangeMemberStatus(chatID int64, user []byte, perms byte) error {
	return c.reqEmpty("CHANGE_MEMBER_STATUS", CmdChangeMemberStatus, I64(TagChatID, chatID), Bytes(TagUserPubkey, user), U8(TagPerms, perms))
}
