package mediator

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// TLV tags (mediator-protocol.md §3.4).
const (
	TagPubkey      byte = 0x01
	TagSignature   byte = 0x02
	TagNonce       byte = 0x03
	TagCounter     byte = 0x04
	TagChatID      byte = 0x10
	TagMessageID   byte = 0x11
	TagMessageGUID byte = 0x12
	TagInviteID    byte = 0x13
	TagSinceID     byte = 0x14
	TagUserPubkey  byte = 0x15
	TagChatName    byte = 0x20
	TagChatDesc    byte = 0x21
	TagChatAvatar  byte = 0x22
	TagMessageBlob byte = 0x23
	TagMemberInfo  byte = 0x24
	TagInviteData  byte = 0x25
	TagLimit       byte = 0x30
	TagCount       byte = 0x31
	TagTimestamp   byte = 0x32
	TagPerms       byte = 0x33
	TagOnline      byte = 0x34
	TagAccepted    byte = 0x35
	TagLastUpdate  byte = 0x36
	TagLastSeen    byte = 0x37
)

// MaxVarint is the largest length a 4-byte TLV varint can carry (2^28 - 1).
const MaxVarint = 1<<28 - 1

var tagNames = map[byte]string{
	TagPubkey: "PUBKEY", TagSignature: "SIGNATURE", TagNonce: "NONCE", TagCounter: "COUNTER",
	TagChatID: "CHAT_ID", TagMessageID: "MESSAGE_ID", TagMessageGUID: "MESSAGE_GUID",
	TagInviteID: "INVITE_ID", TagSinceID: "SINCE_ID", TagUserPubkey: "USER_PUBKEY",
	TagChatName: "CHAT_NAME", TagChatDesc: "CHAT_DESC", TagChatAvatar: "CHAT_AVATAR",
	TagMessageBlob: "MESSAGE_BLOB", TagMemberInfo: "MEMBER_INFO", TagInviteData: "INVITE_DATA",
	TagLimit: "LIMIT", TagCount: "COUNT", TagTimestamp: "TIMESTAMP", TagPerms: "PERMS",
	TagOnline: "ONLINE", TagAccepted: "ACCEPTED", TagLastUpdate: "LAST_UPDATE", TagLastSeen: "LAST_SEEN",
}

// TagName returns the spec name of a tag, or its hex value.
func TagName(t byte) string {
	if n, ok := tagNames[t]; ok {
		return n
	}
	return fmt.Sprintf("tag_0x%02x", t)
}

// AppendVarint appends the minimal little-endian base-128 encoding of v.
// Values above MaxVarint are an error (the wire allows at most 4 bytes).
func AppendVarint(dst []byte, v uint32) ([]byte, error) {
	if v > MaxVarint {
		return dst, fmt.Errorf("varint %d too large (max %d)", v, MaxVarint)
	}
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v)), nil
}

// ReadVarint decodes a varint of at most 4 bytes from b. It accepts
// non-minimal encodings (as the Go server and the Kotlin client do) and
// returns the value and the number of bytes consumed.
func ReadVarint(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("varint: truncated")
		}
		c := b[i]
		v |= uint32(c&0x7f) << (7 * uint(i))
		if c&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("varint: longer than 4 bytes")
}

// TLV is one element.
type TLV struct {
	Tag   byte
	Value []byte
}

func (t TLV) String() string {
	return fmt.Sprintf("%s(%d)", TagName(t.Tag), len(t.Value))
}

// Encode serialises elements in the given order.
func Encode(elems ...TLV) ([]byte, error) {
	var out []byte
	var err error
	for _, e := range elems {
		out = append(out, e.Tag)
		if len(e.Value) > MaxVarint {
			return nil, fmt.Errorf("tlv %s: value too large", TagName(e.Tag))
		}
		if out, err = AppendVarint(out, uint32(len(e.Value))); err != nil {
			return nil, err
		}
		out = append(out, e.Value...)
	}
	return out, nil
}

// MustEncode is Encode for values known to be small.
func MustEncode(elems ...TLV) []byte {
	b, err := Encode(elems...)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode parses a payload into its ordered elements. The elements must fill
// the payload exactly. An empty payload gives an empty list.
func Decode(b []byte) ([]TLV, error) {
	var out []TLV
	for off := 0; off < len(b); {
		tag := b[off]
		off++
		n, used, err := ReadVarint(b[off:])
		if err != nil {
			return nil, fmt.Errorf("tlv at offset %d (%s): %w", off-1, TagName(tag), err)
		}
		off += used
		if uint64(n) > uint64(len(b)-off) {
			return nil, fmt.Errorf("tlv at offset %d (%s): length %d runs past end (%d left)", off-1-used, TagName(tag), n, len(b)-off)
		}
		out = append(out, TLV{Tag: tag, Value: b[off : off+int(n)]})
		off += int(n)
	}
	return out, nil
}

// Constructors for typed values (all integers big-endian).

func Bytes(tag byte, v []byte) TLV { return TLV{tag, v} }
func Str(tag byte, s string) TLV   { return TLV{tag, []byte(s)} }
func U8(tag byte, v uint8) TLV     { return TLV{tag, []byte{v}} }
func U32(tag byte, v uint32) TLV {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return TLV{tag, b}
}
func I64(tag byte, v int64) TLV { return U64(tag, uint64(v)) }
func U64(tag byte, v uint64) TLV {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return TLV{tag, b}
}

// Reader walks a decoded element list strictly in order; every Expect call
// requires the next element to have the given tag (and size, for fixed
// sizes). The first failure is sticky and reported by Err.
type Reader struct {
	elems []TLV
	pos   int
	err   error
	what  string
}

// NewReader decodes payload for strict sequential reading. what names the
// frame in error messages.
func NewReader(what string, payload []byte) *Reader {
	elems, err := Decode(payload)
	r := &Reader{elems: elems, what: what}
	if err != nil {
		r.err = fmt.Errorf("%s: bad TLV payload: %w", what, err)
	}
	return r
}

func (r *Reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %s (elements: %v)", r.what, fmt.Sprintf(format, a...), r.elems)
	}
}

// Next returns the next element, requiring its tag.
func (r *Reader) next(tag byte, size int) []byte {
	if r.err != nil {
		return nil
	}
	if r.pos >= len(r.elems) {
		r.fail("element #%d: expected %s, payload ended", r.pos+1, TagName(tag))
		return nil
	}
	e := r.elems[r.pos]
	if e.Tag != tag {
		r.fail("element #%d: expected %s, got %s", r.pos+1, TagName(tag), TagName(e.Tag))
		return nil
	}
	if size >= 0 && len(e.Value) != size {
		r.fail("element #%d %s: expected %d bytes, got %d", r.pos+1, TagName(tag), size, len(e.Value))
		return nil
	}
	r.pos++
	return e.Value
}

// Peek reports whether the next element has the given tag.
func (r *Reader) Peek(tag byte) bool {
	return r.err == nil && r.pos < len(r.elems) && r.elems[r.pos].Tag == tag
}

// More reports whether elements remain.
func (r *Reader) More() bool { return r.err == nil && r.pos < len(r.elems) }

func (r *Reader) Bytes(tag byte) []byte {
	v := r.next(tag, -1)
	if v == nil && r.err == nil {
		return []byte{}
	}
	return v
}
func (r *Reader) Fixed(tag byte, n int) []byte { return r.next(tag, n) }
func (r *Reader) Key(tag byte) []byte          { return r.next(tag, 32) }
func (r *Reader) U8(tag byte) uint8 {
	v := r.next(tag, 1)
	if v == nil {
		return 0
	}
	return v[0]
}
func (r *Reader) U32(tag byte) uint32 {
	v := r.next(tag, 4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}
func (r *Reader) U64(tag byte) uint64 {
	v := r.next(tag, 8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
func (r *Reader) I64(tag byte) int64 { return int64(r.U64(tag)) }

// End requires that all elements were consumed.
func (r *Reader) End() {
	if r.err == nil && r.pos != len(r.elems) {
		r.fail("unexpected extra element #%d %s", r.pos+1, r.elems[r.pos])
	}
}

// Err returns the first error.
func (r *Reader) Err() error { return r.err }
