package mediator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Command codes (mediator-protocol.md §4).
const (
	CmdGetNonce           byte = 0x01
	CmdAuth               byte = 0x02
	CmdPing               byte = 0x03
	CmdCreateChat         byte = 0x10
	CmdDeleteChat         byte = 0x11
	CmdUpdateChatInfo     byte = 0x12
	CmdAddUser            byte = 0x20
	CmdDeleteUser         byte = 0x21
	CmdLeaveChat          byte = 0x22
	CmdGetUserChats       byte = 0x23
	CmdSendMessage        byte = 0x30
	CmdDeleteMessage      byte = 0x31
	CmdGetLastMessageID   byte = 0x33
	CmdSubscribe          byte = 0x35
	CmdGetMessagesSince   byte = 0x36
	CmdSendInvite         byte = 0x40
	CmdInviteResponse     byte = 0x42
	CmdUpdateMemberInfo   byte = 0x50
	CmdGetMembersInfo     byte = 0x52
	CmdGetMembers         byte = 0x53
	CmdChangeMemberStatus byte = 0x55
)

// Push codes: an OK frame whose reqId equals one of these is a push (§2.4).
const (
	PushGotMessage        uint16 = 0x0032
	PushGotInvite         uint16 = 0x0041
	PushRequestMemberInfo uint16 = 0x0051
	PushGotMemberInfo     uint16 = 0x0054
)

// IsPushCode reports whether reqId is one of the 4 push codes.
func IsPushCode(reqID uint16) bool {
	switch reqID {
	case PushGotMessage, PushGotInvite, PushRequestMemberInfo, PushGotMemberInfo:
		return true
	}
	return false
}

// PushName names a push code.
func PushName(code uint16) string {
	switch code {
	case PushGotMessage:
		return "GOT_MESSAGE"
	case PushGotInvite:
		return "GOT_INVITE"
	case PushRequestMemberInfo:
		return "REQUEST_MEMBER_INFO"
	case PushGotMemberInfo:
		return "GOT_MEMBER_INFO"
	}
	return fmt.Sprintf("0x%04x", code)
}

// Preamble is written once right after opening the stream: version 1,
// protoType 0 (client) (§1.4).
var Preamble = []byte{0x01, 0x00}

// Response status bytes.
const (
	StatusOK  byte = 0x00
	StatusErr byte = 0x01
)

// HeaderSize is the size of both request and response headers.
const HeaderSize = 7

// MaxIncomingFrame is the largest payload accepted from the server (the
// real client accepts up to 50 MiB).
const MaxIncomingFrame = 50 << 20

// EncodeRequest builds a whole request frame: cmd(1) reqId(2 BE) len(4 BE)
// payload.
func EncodeRequest(cmd byte, reqID uint16, payload []byte) []byte {
	b := make([]byte, HeaderSize+len(payload))
	b[0] = cmd
	binary.BigEndian.PutUint16(b[1:3], reqID)
	binary.BigEndian.PutUint32(b[3:7], uint32(len(payload)))
	copy(b[7:], payload)
	return b
}

// Frame is a response or push frame from the server.
type Frame struct {
	Status  byte
	ReqID   uint16
	Payload []byte
}

// IsPush reports whether the client treats this frame as a push: any OK
// frame whose reqId is a push code.
func (f Frame) IsPush() bool { return f.Status == StatusOK && IsPushCode(f.ReqID) }

// EncodeResponse builds a whole response frame (used by tests).
func EncodeResponse(status byte, reqID uint16, payload []byte) []byte {
	b := make([]byte, HeaderSize+len(payload))
	b[0] = status
	binary.BigEndian.PutUint16(b[1:3], reqID)
	binary.BigEndian.PutUint32(b[3:7], uint32(len(payload)))
	copy(b[7:], payload)
	return b
}

// EncodeErrPayload builds an ERR payload: u16 BE length + text.
func EncodeErrPayload(text string) []byte {
	b := make([]byte, 2+len(text))
	binary.BigEndian.PutUint16(b, uint16(len(text)))
	copy(b[2:], text)
	return b
}

// DecodeErrPayload parses an ERR payload strictly: the length prefix must
// match the rest of the payload exactly.
func DecodeErrPayload(p []byte) (string, error) {
	if len(p) < 2 {
		return "", fmt.Errorf("ERR payload too short (%d bytes)", len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	if n != len(p)-2 {
		return "", fmt.Errorf("ERR payload length prefix %d does not match %d bytes of text", n, len(p)-2)
	}
	return string(p[2:]), nil
}

// ReadFrame reads one response/push frame.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Status: h[0], ReqID: binary.BigEndian.Uint16(h[1:3])}
	if f.Status != StatusOK && f.Status != StatusErr {
		return Frame{}, fmt.Errorf("bad status byte 0x%02x (reqId 0x%04x)", f.Status, f.ReqID)
	}
	n := binary.BigEndian.Uint32(h[3:7])
	if n > MaxIncomingFrame {
		return Frame{}, fmt.Errorf("frame too large: %d bytes", n)
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("truncated frame payload: %w", err)
	}
	return f, nil
}
