package mediator

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// §3.1 varint examples.
func TestVarintExamples(t *testing.T) {
	cases := []struct {
		v   uint32
		enc string
	}{
		{0, "00"}, {127, "7f"}, {128, "80 01"}, {200, "c8 01"}, {204800, "80 c0 0c"},
		{MaxVarint, "ff ff ff 7f"},
	}
	for _, c := range cases {
		got, err := AppendVarint(nil, c.v)
		if err != nil {
			t.Fatalf("%d: %v", c.v, err)
		}
		if want := unhex(t, c.enc); !bytes.Equal(got, want) {
			t.Errorf("encode %d = %x, want %x", c.v, got, want)
		}
		v, n, err := ReadVarint(append(unhex(t, c.enc), 0xAA))
		if err != nil || v != c.v || n != len(unhex(t, c.enc)) {
			t.Errorf("decode %s = %d,%d,%v; want %d", c.enc, v, n, err, c.v)
		}
	}
	if _, err := AppendVarint(nil, MaxVarint+1); err == nil {
		t.Error("encoding 2^28 must fail")
	}
}

func TestVarintReaderRules(t *testing.T) {
	// Non-minimal encodings are accepted.
	if v, n, err := ReadVarint(unhex(t, "80 00")); err != nil || v != 0 || n != 2 {
		t.Errorf("non-minimal 80 00: %d %d %v", v, n, err)
	}
	if v, n, err := ReadVarint(unhex(t, "ff 80 80 00")); err != nil || v != 127 || n != 4 {
		t.Errorf("non-minimal ff808000: %d %d %v", v, n, err)
	}
	// A 5th byte would be needed.
	if _, _, err := ReadVarint(unhex(t, "80 80 80 80 01")); err == nil {
		t.Error("5-byte varint must fail")
	}
	// Truncated.
	for _, s := range []string{"", "80", "80 80", "ff ff ff"} {
		if _, _, err := ReadVarint(unhex(t, s)); err == nil {
			t.Errorf("truncated %q must fail", s)
		}
	}
}

func TestTLVRoundTripAndOrder(t *testing.T) {
	big := bytes.Repeat([]byte{0x5a}, 204800)
	elems := []TLV{I64(TagChatID, 0x0102030405060708), Str(TagChatName, "name"), Bytes(TagChatAvatar, big), Bytes(TagChatDesc, nil), U8(TagPerms, 0x90), U32(TagLimit, 100)}
	b, err := Encode(elems...)
	if err != nil {
		t.Fatal(err)
	}
	// CHAT_ID element bytes.
	if want := unhex(t, "10 08 0102030405060708"); !bytes.Equal(b[:10], want) {
		t.Errorf("CHAT_ID element = %x, want %x", b[:10], want)
	}
	// Avatar length uses the 3-byte varint 80 c0 0c.
	off := 10 + 6
	if want := unhex(t, "22 80 c0 0c"); !bytes.Equal(b[off:off+4], want) {
		t.Errorf("avatar header = %x, want %x", b[off:off+4], want)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(elems) {
		t.Fatalf("decoded %d elements, want %d", len(got), len(elems))
	}
	for i := range elems {
		if got[i].Tag != elems[i].Tag || !bytes.Equal(got[i].Value, elems[i].Value) {
			t.Errorf("element %d mismatch: %v vs %v", i, got[i], elems[i])
		}
	}
	if e, err := Decode(nil); err != nil || len(e) != 0 {
		t.Errorf("empty payload: %v %v", e, err)
	}
	// Element running past the end.
	if _, err := Decode(unhex(t, "10 08 01020304")); err == nil {
		t.Error("overlong element must fail")
	}
	if _, err := Decode(unhex(t, "10")); err == nil {
		t.Error("missing length must fail")
	}
}

func TestStrictReader(t *testing.T) {
	p := MustEncode(I64(TagMessageGUID, -5), I64(TagMessageID, 7))
	r := NewReader("x", p)
	if g, id := r.I64(TagMessageGUID), r.I64(TagMessageID); g != -5 || id != 7 {
		t.Errorf("got %d %d", g, id)
	}
	r.End()
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	// Wrong order fails.
	r = NewReader("x", p)
	r.I64(TagMessageID)
	if r.Err() == nil {
		t.Error("out-of-order read must fail")
	}
	// Wrong size fails.
	r = NewReader("x", MustEncode(Bytes(TagMessageID, []byte{1, 2, 3})))
	r.I64(TagMessageID)
	if r.Err() == nil {
		t.Error("wrong-size read must fail")
	}
	// Extra elements fail End.
	r = NewReader("x", p)
	r.I64(TagMessageGUID)
	r.End()
	if r.Err() == nil {
		t.Error("leftover element must fail End")
	}
}

// §2.2 worked example: ERR "unknown nonce" for reqId 2.
func TestErrFrameExample(t *testing.T) {
	want := unhex(t, "01 0002 0000000f 000d 756e6b6e6f776e206e6f6e6365")
	got := EncodeResponse(StatusErr, 2, EncodeErrPayload("unknown nonce"))
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded %x, want %x", got, want)
	}
	f, err := ReadFrame(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != StatusErr || f.ReqID != 2 || f.IsPush() {
		t.Fatalf("frame %+v", f)
	}
	text, err := DecodeErrPayload(f.Payload)
	if err != nil || text != "unknown nonce" {
		t.Fatalf("text %q err %v", text, err)
	}
	if _, err := DecodeErrPayload(unhex(t, "000e 756e6b")); err == nil {
		t.Error("inconsistent ERR length must fail")
	}
}

// §5.1 / §5.2 request examples.
func TestRequestExamples(t *testing.T) {
	pk := bytes.Repeat([]byte{0xAB}, 32)
	req := EncodeRequest(CmdGetNonce, 0x1234, MustEncode(Bytes(TagPubkey, pk)))
	want := append(unhex(t, "01 1234 00000022 01 20"), pk...)
	if !bytes.Equal(req, want) {
		t.Errorf("GET_NONCE = %x\nwant       %x", req, want)
	}
	nonce := bytes.Repeat([]byte{0x11}, 32)
	sig := bytes.Repeat([]byte{0x22}, 64)
	auth := EncodeRequest(CmdAuth, 0x0001, MustEncode(Bytes(TagPubkey, pk), Bytes(TagNonce, nonce), Bytes(TagSignature, sig)))
	hdr := unhex(t, "02 0001 00000086 01 20")
	if !bytes.Equal(auth[:len(hdr)], hdr) || len(auth) != 7+0x86 {
		t.Errorf("AUTH header %x len %d", auth[:len(hdr)], len(auth))
	}
	if !bytes.Equal(auth[7+34:7+36], unhex(t, "03 20")) || !bytes.Equal(auth[7+68:7+70], unhex(t, "02 40")) {
		t.Error("AUTH element headers wrong")
	}
	// OK ∅ response: header only.
	if got := EncodeResponse(StatusOK, 0xbeef, nil); !bytes.Equal(got, unhex(t, "00 beef 00000000")) {
		t.Errorf("empty OK = %x", got)
	}
}

func TestPushClassification(t *testing.T) {
	for _, id := range []uint16{0x32, 0x41, 0x51, 0x54} {
		if !(Frame{Status: StatusOK, ReqID: id}).IsPush() {
			t.Errorf("OK 0x%x must be a push", id)
		}
		if (Frame{Status: StatusErr, ReqID: id}).IsPush() {
			t.Errorf("ERR 0x%x must not be a push", id)
		}
	}
	for _, id := range []uint16{0, 1, 0x33, 0x42, 0x55, 0xffff} {
		if (Frame{Status: StatusOK, ReqID: id}).IsPush() {
			t.Errorf("0x%x is not a push", id)
		}
	}
	busy := map[uint16]chan Frame{}
	for i := 0; i < 20000; i++ {
		id := randomReqID(busy)
		if id == 0 || IsPushCode(id) {
			t.Fatalf("bad reqId 0x%x", id)
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	if _, err := ReadFrame(bytes.NewReader(unhex(t, "02 0001 00000000"))); err == nil {
		t.Error("bad status must fail")
	}
	if _, err := ReadFrame(bytes.NewReader(unhex(t, "00 0001 00000004 0102"))); err == nil {
		t.Error("truncated payload must fail")
	}
	if _, err := ReadFrame(bytes.NewReader(nil)); !errors.Is(err, io.EOF) {
		t.Errorf("clean EOF expected, got %v", err)
	}
}

// §7.2: Kotlin ByteArray.contentHashCode() == Java Arrays.hashCode(byte[]).
func TestSystemGUID(t *testing.T) {
	// Reference values computed with Java's Arrays.hashCode semantics:
	// empty -> 1; {0} -> 31; {1,2,3} -> 30817; {0xff} -> 30 (31*1 + -1);
	// {0x80} -> 31 - 128 = -97.
	cases := []struct {
		body []byte
		h    int32
	}{
		{nil, 1}, {[]byte{0}, 31}, {[]byte{1, 2, 3}, 30817}, {[]byte{0xff}, 30}, {[]byte{0x80}, -97},
	}
	for _, c := range cases {
		if h := ContentHashCode(c.body); h != c.h {
			t.Errorf("hash(%x) = %d, want %d", c.body, h, c.h)
		}
	}
	// Wrapping: 32 bytes of 0x7f overflow int32 many times; compare with a
	// straightforward int64 computation reduced mod 2^32.
	body := bytes.Repeat([]byte{0x7f, 0x80, 0x05}, 30)
	var h64 int64 = 1
	for _, b := range body {
		h64 = (h64*31 + int64(int8(b))) & 0xffffffff
	}
	if got := ContentHashCode(body); uint32(got) != uint32(h64) {
		t.Errorf("wrapping hash %d, want %d", uint32(got), uint32(h64))
	}
	// guid = (h << 32) ^ ts.
	ts := int64(1_760_000_000)
	if g := SystemGUID([]byte{1, 2, 3}, ts); g != (int64(30817)<<32)^ts {
		t.Errorf("guid = %d", g)
	}
	if g := SystemGUID([]byte{0x80}, ts); g != (int64(-97)<<32)^ts || g >= 0 {
		t.Errorf("negative-hash guid = %d", g)
	}
	// A MEMBER_ONLINE body.
	pk := bytes.Repeat([]byte{0x42}, 32)
	mo := append(append([]byte{SysMemberOnline}, pk...), 1, 0, 0, 0, 0, 0x68, 0xe8, 0xd0, 0x00)
	m, err := ParseMemberOnline(mo)
	if err != nil || m.Online != 1 || m.TS != 0x68e8d000 || !bytes.Equal(m.Pubkey, pk) {
		t.Errorf("MEMBER_ONLINE parse: %+v %v", m, err)
	}
	if err := CheckBody(append(append([]byte{SysUserLeft}, pk...), make([]byte, 32)...), SysUserLeft, pk, nil); err != nil {
		t.Error(err)
	}
	if err := CheckBody(append([]byte{SysUserLeft}, pk...), SysUserLeft, pk, nil); err == nil {
		t.Error("short body must fail")
	}
}

func TestPoW(t *testing.T) {
	if testing.Short() {
		t.Skip("proof of work takes a few seconds")
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	nonce := bytes.Repeat([]byte{7}, 32)
	counter, sig, err := SolvePoW(priv, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !PoWOK(sig) || !ed25519.Verify(priv.Public().(ed25519.PublicKey), PoWMessage(nonce, counter), sig) {
		t.Fatal("bad PoW solution")
	}
	if m := PoWMessage(nonce, 0x01020304); !bytes.Equal(m[32:], []byte{1, 2, 3, 4}) || len(m) != 36 {
		t.Errorf("PoW message tail %x", m[32:])
	}
	c2, sig2 := FailingPoW(priv, nonce)
	if PoWOK(sig2) || !ed25519.Verify(priv.Public().(ed25519.PublicKey), PoWMessage(nonce, c2), sig2) {
		t.Fatal("bad failing PoW")
	}
}

func TestPushParsers(t *testing.T) {
	pk := bytes.Repeat([]byte{1}, 32)
	p := MustEncode(I64(TagChatID, 5), I64(TagMessageID, 6), I64(TagMessageGUID, 7), I64(TagTimestamp, 8), Bytes(TagPubkey, pk), Bytes(TagMessageBlob, []byte("hi")))
	m, err := ParseGotMessage(p)
	if err != nil || m.ChatID != 5 || m.MessageID != 6 || m.GUID != 7 || m.Timestamp != 8 || string(m.Blob) != "hi" {
		t.Fatalf("%+v %v", m, err)
	}
	// DELETE_CHAT binary layout of the Go server (bug B1) must be rejected.
	bin := append(append(make([]byte, 24), pk...), 0, 0, 0, 1, 5)
	if _, err := ParseGotMessage(bin); err == nil {
		t.Error("binary GOT_MESSAGE must fail")
	}
	inv := MustEncode(I64(TagInviteID, 1), I64(TagChatID, 2), Bytes(TagPubkey, pk), I64(TagTimestamp, 3), Str(TagChatName, "n"), Str(TagChatDesc, ""), Bytes(TagInviteData, []byte{9}))
	gi, err := ParseGotInvite(inv)
	if err != nil || gi.HasAvatar || gi.ChatDesc != "" || !bytes.Equal(gi.InviteData, []byte{9}) {
		t.Fatalf("%+v %v", gi, err)
	}
}

// A client talking to a fake server over a pipe: routing by reqId, pushes
// with push codes as reqIds, ERR parsing, preamble.
func TestClientRouting(t *testing.T) {
	cs, ss := net.Pipe()
	defer cs.Close()
	defer ss.Close()
	go func() {
		pre := make([]byte, 2)
		if _, err := io.ReadFull(ss, pre); err != nil || !bytes.Equal(pre, Preamble) {
			return
		}
		for {
			var h [7]byte
			if _, err := io.ReadFull(ss, h[:]); err != nil {
				return
			}
			n := int(h[3])<<24 | int(h[4])<<16 | int(h[5])<<8 | int(h[6])
			payload := make([]byte, n)
			if _, err := io.ReadFull(ss, payload); err != nil {
				return
			}
			reqID := uint16(h[1])<<8 | uint16(h[2])
			// A push before every response.
			ss.Write(EncodeResponse(StatusOK, PushRequestMemberInfo, MustEncode(I64(TagChatID, 1), U64(TagLastUpdate, 0))))
			switch h[0] {
			case CmdPing:
				ss.Write(EncodeResponse(StatusOK, reqID, nil))
			default:
				ss.Write(EncodeResponse(StatusErr, reqID, EncodeErrPayload("unknown cmd")))
			}
		}
	}()
	c, err := NewClient("t", cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Request(0x77, nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Text != "unknown cmd" {
		t.Fatalf("want ServerError unknown cmd, got %v", err)
	}
	for i := 0; i < 2; i++ {
		p, err := c.WaitPush(PushRequestMemberInfo, nil, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := ParseRequestMemberInfo(p.Payload); err != nil || r.ChatID != 1 {
			t.Fatalf("%+v %v", r, err)
		}
	}
	if _, err := c.WaitPush(PushGotMessage, nil, 50*time.Millisecond); err == nil {
		t.Fatal("no GOT_MESSAGE expected")
	}
}
