package mediator

// GotMessage is a GOT_MESSAGE push (§6.1); also the record layout of
// GET_MESSAGES_SINCE (without CHAT_ID).
type GotMessage struct {
	ChatID    int64
	MessageID int64
	GUID      int64
	Timestamp int64
	Author    []byte
	Blob      []byte
}

// ParseGotMessage decodes a GOT_MESSAGE push strictly: CHAT_ID, MESSAGE_ID,
// MESSAGE_GUID, TIMESTAMP, PUBKEY, MESSAGE_BLOB, in that order, nothing else.
func ParseGotMessage(p []byte) (GotMessage, error) {
	r := NewReader("GOT_MESSAGE push", p)
	m := GotMessage{
		ChatID:    r.I64(TagChatID),
		MessageID: r.I64(TagMessageID),
		GUID:      r.I64(TagMessageGUID),
		Timestamp: r.I64(TagTimestamp),
		Author:    r.Key(TagPubkey),
		Blob:      r.Bytes(TagMessageBlob),
	}
	r.End()
	return m, r.Err()
}

// GotInvite is a GOT_INVITE push (§6.2).
type GotInvite struct {
	InviteID   int64
	ChatID     int64
	Inviter    []byte
	Timestamp  int64
	ChatName   string
	ChatDesc   string
	HasAvatar  bool
	ChatAvatar []byte
	InviteData []byte
}

// ParseGotInvite decodes a GOT_INVITE push strictly: INVITE_ID, CHAT_ID,
// PUBKEY, TIMESTAMP, CHAT_NAME, CHAT_DESC, [CHAT_AVATAR], INVITE_DATA.
func ParseGotInvite(p []byte) (GotInvite, error) {
	r := NewReader("GOT_INVITE push", p)
	inv := GotInvite{
		InviteID:  r.I64(TagInviteID),
		ChatID:    r.I64(TagChatID),
		Inviter:   r.Key(TagPubkey),
		Timestamp: r.I64(TagTimestamp),
		ChatName:  string(r.Bytes(TagChatName)),
		ChatDesc:  string(r.Bytes(TagChatDesc)),
	}
	if r.Peek(TagChatAvatar) {
		inv.HasAvatar = true
		inv.ChatAvatar = r.Bytes(TagChatAvatar)
	}
	inv.InviteData = r.Bytes(TagInviteData)
	r.End()
	return inv, r.Err()
}

// RequestMemberInfo is a REQUEST_MEMBER_INFO push (§6.3).
type RequestMemberInfo struct {
	ChatID     int64
	LastUpdate uint64
}

// ParseRequestMemberInfo decodes CHAT_ID, LAST_UPDATE strictly.
func ParseRequestMemberInfo(p []byte) (RequestMemberInfo, error) {
	r := NewReader("REQUEST_MEMBER_INFO push", p)
	m := RequestMemberInfo{ChatID: r.I64(TagChatID), LastUpdate: r.U64(TagLastUpdate)}
	r.End()
	return m, r.Err()
}

// GotMemberInfo is a GOT_MEMBER_INFO push (§6.4).
type GotMemberInfo struct {
	ChatID    int64
	Count     uint32
	User      []byte
	Info      []byte
	Timestamp uint64
}

// ParseGotMemberInfo decodes CHAT_ID, COUNT, USER_PUBKEY, MEMBER_INFO,
// TIMESTAMP strictly.
func ParseGotMemberInfo(p []byte) (GotMemberInfo, error) {
	r := NewReader("GOT_MEMBER_INFO push", p)
	m := GotMemberInfo{
		ChatID:    r.I64(TagChatID),
		Count:     r.U32(TagCount),
		User:      r.Key(TagUserPubkey),
		Info:      r.Bytes(TagMemberInfo),
		Timestamp: r.U64(TagTimestamp),
	}
	r.End()
	return m, r.Err()
}
