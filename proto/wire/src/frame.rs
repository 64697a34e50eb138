//! Session framing (`mediator-protocol.md` §1.4, §2).
//!
//! A session starts with the client's two-byte [`PREAMBLE`]. Then the client sends request
//! frames (`cmd u8 | reqId u16 BE | len u32 BE | payload`) and the server answers with response
//! frames (`status u8 | reqId u16 BE | len u32 BE | payload`). Pushes are OK frames whose reqId
//! holds a push code. An ERR payload is `u16 BE length | UTF-8 text`, not TLV.
//! [`FrameWriter`] builds any frame in one buffer so that a writer can emit it in one piece.

use crate::codes::{Command, PushCode};
use crate::tlv;
use thiserror::Error;

/// The bytes a client writes first: protocol version 1, protoType client (§1.4).
pub const PREAMBLE: [u8; 2] = [0x01, 0x00];
/// Size of a request or response header.
pub const HEADER_LEN: usize = 7;
/// Largest request payload the server reads (32 MiB). A bigger announced length gets
/// ERR "payload too large" and the session is closed without reading the payload (§2.3).
pub const MAX_REQUEST_PAYLOAD: u32 = 32 * 1024 * 1024;
/// Largest frame payload the real client accepts (50 MiB); our client uses the same bound.
pub const MAX_RESPONSE_PAYLOAD: u32 = 50 * 1024 * 1024;
/// Largest error text, in bytes: its length travels as a u16.
pub const MAX_ERROR_TEXT: usize = u16::MAX as usize;

/// Why bytes could not be read as a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("need {needed} more bytes")]
    Incomplete { needed: usize },
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: u32, max: u32 },
    #[error("unknown response status {0:#04x}")]
    BadStatus(u8),
    #[error("malformed error payload")]
    BadErrorPayload,
}

/// A request header (client → server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub cmd: u8,
    pub req_id: u16,
    pub len: u32,
}

impl RequestHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = self.cmd;
        h[1..3].copy_from_slice(&self.req_id.to_be_bytes());
        h[3..7].copy_from_slice(&self.len.to_be_bytes());
        h
    }

    pub fn decode(h: &[u8; HEADER_LEN]) -> Self {
        RequestHeader {
            cmd: h[0],
            req_id: u16::from_be_bytes([h[1], h[2]]),
            len: u32::from_be_bytes([h[3], h[4], h[5], h[6]]),
        }
    }

    /// Checks the announced payload length against [`MAX_REQUEST_PAYLOAD`].
    pub fn check_len(&self) -> Result<(), FrameError> {
        if self.len > MAX_REQUEST_PAYLOAD {
            return Err(FrameError::TooLarge {
                len: self.len,
                max: MAX_REQUEST_PAYLOAD,
            });
        }
        Ok(())
    }
}

/// Response status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    Err = 1,
    /// A push to a Mimir 3.x client (`docs/mimir3.md` §2.2): 2.x clients take pushes with
    /// status 0 ([`Status::Ok`] and a push code as reqId), 3.x clients only with status 2.
    Push = 2,
}

/// A response or push header (server → client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    pub status: Status,
    pub req_id: u16,
    pub len: u32,
}

impl ResponseHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = self.status as u8;
        h[1..3].copy_from_slice(&self.req_id.to_be_bytes());
        h[3..7].copy_from_slice(&self.len.to_be_bytes());
        h
    }

    pub fn decode(h: &[u8; HEADER_LEN]) -> Result<Self, FrameError> {
        let status = match h[0] {
            0 => Status::Ok,
            1 => Status::Err,
            2 => Status::Push,
            other => return Err(FrameError::BadStatus(other)),
        };
        let len = u32::from_be_bytes([h[3], h[4], h[5], h[6]]);
        if len > MAX_RESPONSE_PAYLOAD {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_RESPONSE_PAYLOAD,
            });
        }
        Ok(ResponseHeader {
            status,
            req_id: u16::from_be_bytes([h[1], h[2]]),
            len,
        })
    }
}

/// A whole request frame borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFrame<'a> {
    pub header: RequestHeader,
    pub payload: &'a [u8],
}

impl<'a> RequestFrame<'a> {
    /// Decodes one request frame from the front of `buf`: the frame and the bytes it used.
    /// Reports [`FrameError::Incomplete`] when more bytes are needed, and
    /// [`FrameError::TooLarge`] as soon as the header announces an oversize payload.
    pub fn decode(buf: &'a [u8]) -> Result<(RequestFrame<'a>, usize), FrameError> {
        let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Incomplete {
                needed: HEADER_LEN - buf.len(),
            });
        };
        let header = RequestHeader::decode(h);
        header.check_len()?;
        let total = HEADER_LEN + header.len as usize;
        if buf.len() < total {
            return Err(FrameError::Incomplete {
                needed: total - buf.len(),
            });
        }
        Ok((
            RequestFrame {
                header,
                payload: &buf[HEADER_LEN..total],
            },
            total,
        ))
    }
}

/// A whole response frame borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFrame<'a> {
    pub header: ResponseHeader,
    pub payload: &'a [u8],
}

impl<'a> ResponseFrame<'a> {
    /// Decodes one response frame from the front of `buf`, like [`RequestFrame::decode`].
    pub fn decode(buf: &'a [u8]) -> Result<(ResponseFrame<'a>, usize), FrameError> {
        let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Incomplete {
                needed: HEADER_LEN - buf.len(),
            });
        };
        let header = ResponseHeader::decode(h)?;
        let total = HEADER_LEN + header.len as usize;
        if buf.len() < total {
            return Err(FrameError::Incomplete {
                needed: total - buf.len(),
            });
        }
        Ok((
            ResponseFrame {
                header,
                payload: &buf[HEADER_LEN..total],
            },
            total,
        ))
    }

    /// True when the client would route this frame as a push (§2.4).
    pub fn push_code(&self) -> Option<PushCode> {
        match self.header.status {
            Status::Ok | Status::Push => PushCode::from_u16(self.header.req_id),
            Status::Err => None,
        }
    }
}

/// `push` (a whole push frame, status 0 as [`FrameWriter::push`] builds it) as a Mimir 3.x
/// client expects it: the same bytes with status [`Status::Push`].
pub fn push_for_mimir3(push: &[u8]) -> Vec<u8> {
    let mut v = push.to_vec();
    if let Some(s) = v.first_mut() {
        *s = Status::Push as u8;
    }
    v
}

/// Decodes an ERR payload into its text (invalid UTF-8 is replaced, never rejected).
pub fn decode_error_text(payload: &[u8]) -> Result<String, FrameError> {
    let Some(n) = payload.first_chunk::<2>() else {
        return Err(FrameError::BadErrorPayload);
    };
    let n = u16::from_be_bytes(*n) as usize;
    let text = payload.get(2..2 + n).ok_or(FrameError::BadErrorPayload)?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// Builds one frame in a single buffer: header first, payload appended, length filled in
/// by [`FrameWriter::finish`].
#[derive(Debug, Clone)]
pub struct FrameWriter {
    buf: Vec<u8>,
}

impl FrameWriter {
    fn with_header(first: u8, req_id: u16, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN + capacity);
        buf.push(first);
        buf.extend_from_slice(&req_id.to_be_bytes());
        buf.extend_from_slice(&[0; 4]);
        FrameWriter { buf }
    }

    /// An OK response to `req_id`.
    pub fn ok(req_id: u16) -> Self {
        Self::with_header(Status::Ok as u8, req_id, 64)
    }

    /// An OK response with room for `capacity` payload bytes.
    pub fn ok_with_capacity(req_id: u16, capacity: usize) -> Self {
        Self::with_header(Status::Ok as u8, req_id, capacity)
    }

    /// A push frame (an OK frame whose reqId is the push code).
    pub fn push(code: PushCode, capacity: usize) -> Self {
        Self::with_header(Status::Ok as u8, code as u16, capacity)
    }

    /// A request frame (client side).
    pub fn request(cmd: Command, req_id: u16) -> Self {
        Self::with_header(cmd as u8, req_id, 64)
    }

    /// A request frame with an arbitrary command byte (tests of unknown commands).
    pub fn raw_request(cmd: u8, req_id: u16) -> Self {
        Self::with_header(cmd, req_id, 64)
    }

    /// Appends one TLV element.
    pub fn tlv(&mut self, tag: u8, value: &[u8]) -> &mut Self {
        tlv::put(&mut self.buf, tag, value);
        self
    }

    /// Appends raw payload bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The payload length so far.
    pub fn payload_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// Overwrites payload bytes already written, from payload offset `at` (a fixed-size
    /// value whose content is known only later, such as a count).
    pub(crate) fn overwrite(&mut self, at: usize, bytes: &[u8]) {
        self.buf[HEADER_LEN + at..HEADER_LEN + at + bytes.len()].copy_from_slice(bytes);
    }

    /// Fills in the length and returns the frame bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - HEADER_LEN) as u32;
        self.buf[3..7].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// An ERR frame for `req_id` with `text` (truncated to [`MAX_ERROR_TEXT`] bytes at a
/// character boundary).
pub fn error_frame(req_id: u16, text: &str) -> Vec<u8> {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    let mut w = FrameWriter::with_header(Status::Err as u8, req_id, 2 + text.len());
    w.raw(&(text.len() as u16).to_be_bytes()).raw(text);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_error_frame_from_spec() {
        // §2.2: the AUTH error "unknown nonce" for reqId 2.
        assert_eq!(
            hex::encode(error_frame(2, "unknown nonce")),
            "0100020000000f000d756e6b6e6f776e206e6f6e6365"
        );
    }

    /// A GOT_MESSAGE push header for 2.x (status 0) and for 3.x (status 2, mimir3.md §2.4),
    /// and both decode as pushes.
    #[test]
    fn golden_push_for_each_generation() {
        let mut w = FrameWriter::push(PushCode::GotMessage, 3);
        w.raw(b"abc");
        let two = w.finish();
        assert_eq!(hex::encode(&two), "00003200000003616263");
        let three = push_for_mimir3(&two);
        assert_eq!(hex::encode(&three), "02003200000003616263");
        for (frame, status) in [(&two, Status::Ok), (&three, Status::Push)] {
            let h = ResponseHeader::decode(frame[..HEADER_LEN].try_into().unwrap()).unwrap();
            assert_eq!((h.status, h.req_id, h.len), (status, 0x32, 3));
        }
        assert_eq!(
            ResponseHeader::decode(&[3, 0, 0, 0, 0, 0, 0]),
            Err(FrameError::BadStatus(3))
        );
    }

    #[test]
    fn golden_empty_ok() {
        assert_eq!(
            hex::encode(FrameWriter::ok(0xabcd).finish()),
            "00abcd00000000"
        );
    }

    #[test]
    fn request_decode_incomplete_and_too_large() {
        let frame = {
            let mut w = FrameWriter::request(Command::Ping, 7);
            w.raw(b"xy");
            w.finish()
        };
        assert_eq!(hex::encode(&frame), "030007000000027879");
        for cut in 0..frame.len() {
            assert!(matches!(
                RequestFrame::decode(&frame[..cut]),
                Err(FrameError::Incomplete { .. })
            ));
        }
        let (f, used) = RequestFrame::decode(&frame).unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(f.header.cmd, 3);
        assert_eq!(f.payload, b"xy");
        let big = RequestHeader {
            cmd: 0x30,
            req_id: 1,
            len: MAX_REQUEST_PAYLOAD + 1,
        }
        .encode();
        assert!(matches!(
            RequestFrame::decode(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn error_text_round_trip_and_truncation() {
        let f = error_frame(9, "db error");
        let (r, _) = ResponseFrame::decode(&f).unwrap();
        assert_eq!(r.header.status, Status::Err);
        assert_eq!(decode_error_text(r.payload).unwrap(), "db error");
        let long = "é".repeat(40_000);
        let f = error_frame(9, &long);
        let (r, _) = ResponseFrame::decode(&f).unwrap();
        let text = decode_error_text(r.payload).unwrap();
        assert!(text.len() <= MAX_ERROR_TEXT && text.chars().all(|c| c == 'é'));
    }
}
