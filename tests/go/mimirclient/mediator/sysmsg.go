package mediator

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// System message event codes (byte 0 of the body, §7.3).
const (
	SysUserAdded      byte = 0x01
	SysUserEntered    byte = 0x02
	SysUserLeft       byte = 0x03
	SysUserBanned     byte = 0x04
	SysChatDeleted    byte = 0x05
	SysChatInfoChange byte = 0x06
	SysPermsChanged   byte = 0x07
	SysMessageDeleted byte = 0x08
	SysMemberOnline   byte = 0x09
)

// SysName names an event code.
func SysName(code byte) string {
	switch code {
	case SysUserAdded:
		return "USER_ADDED"
	case SysUserEntered:
		return "USER_ENTERED"
	case SysUserLeft:
		return "USER_LEFT"
	case SysUserBanned:
		return "USER_BANNED"
	case SysChatDeleted:
		return "CHAT_DELETED"
	case SysChatInfoChange:
		return "CHAT_INFO_CHANGE"
	case SysPermsChanged:
		return "PERMS_CHANGED"
	case SysMessageDeleted:
		return "MESSAGE_DELETED"
	case SysMemberOnline:
		return "MEMBER_ONLINE"
	}
	return fmt.Sprintf("sys_0x%02x", code)
}

// ContentHashCode is Java's Arrays.hashCode(byte[]) (Kotlin
// ByteArray.contentHashCode()): h = 1; h = 31*h + (signed byte), wrapping
// 32-bit.
func ContentHashCode(body []byte) int32 {
	h := int32(1)
	for _, b := range body {
		h = h*31 + int32(int8(b))
	}
	return h
}

// SystemGUID is the guid of a system message (§7.2):
// ((int64(hash) << 32) ^ ts_seconds).
func SystemGUID(body []byte, tsSeconds int64) int64 {
	return (int64(ContentHashCode(body)) << 32) ^ tsSeconds
}

// MemberOnline is a decoded 0x09 body: [09][pubkey 32][online 1][ts u64 BE].
type MemberOnline struct {
	Pubkey []byte
	Online byte
	TS     uint64
}

// ParseMemberOnline decodes a MEMBER_ONLINE body strictly (42 bytes).
func ParseMemberOnline(b []byte) (MemberOnline, error) {
	if len(b) != 42 || b[0] != SysMemberOnline {
		return MemberOnline{}, fmt.Errorf("MEMBER_ONLINE body: want 42 bytes starting 0x09, got %d bytes %x", len(b), head(b))
	}
	return MemberOnline{Pubkey: b[1:33], Online: b[33], TS: binary.BigEndian.Uint64(b[34:42])}, nil
}

// CheckBody verifies a fixed-layout system body: code, then the listed
// parts in order (nil part = 32 random bytes, any value), and the exact
// total length.
func CheckBody(b []byte, code byte, parts ...[]byte) error {
	want := 1
	for _, p := range parts {
		if p == nil {
			want += 32
		} else {
			want += len(p)
		}
	}
	if len(b) != want {
		return fmt.Errorf("%s body: want %d bytes, got %d (%x)", SysName(code), want, len(b), head(b))
	}
	if b[0] != code {
		return fmt.Errorf("%s body: byte 0 is 0x%02x, want 0x%02x", SysName(code), b[0], code)
	}
	off := 1
	for i, p := range parts {
		if p == nil {
			off += 32
			continue
		}
		if !bytes.Equal(b[off:off+len(p)], p) {
			return fmt.Errorf("%s body: part #%d at offset %d is %x, want %x", SysName(code), i+1, off, b[off:off+len(p)], p)
		}
		off += len(p)
	}
	return nil
}

func head(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}
