//! The base framing protocol (RFC 6455 §5.2): header parse and encode, and a one-shot frame
//! parser that unmasks in place.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```

use std::fmt;
use std::ops::Deref;

use crate::error::WsError;
use crate::mask::apply_mask;

/// The longest frame header: 2 bytes, a 64-bit length and a masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The longest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const OPCODE: u8 = 0x0F;
const MASK: u8 = 0x80;
const LEN7: u8 = 0x7F;
const LEN16: u8 = 0x7E;
const LEN64: u8 = 0x7F;

/// Which end of the connection this is: it decides who masks (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections: requires masked frames, sends unmasked ones.
    Server,
    /// Opens connections: sends masked frames, refuses masked ones.
    Client,
}

/// A frame opcode (RFC 6455 §5.2). Reserved values are refused when parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the low four bits of the first header byte.
    ///
    /// RFC 6455 §5.2: "%x3-7 are reserved for further non-control frames" and "%xB-F are
    /// reserved for further control frames"; "If an unknown opcode is received, the receiving
    /// endpoint MUST _Fail the WebSocket Connection_."
    pub const fn from_u8(v: u8) -> Result<Self, WsError> {
        Ok(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(WsError::ReservedOpcode(other)),
        })
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: "opcodes where the most significant bit of the opcode is 1".
    pub const fn is_control(self) -> bool {
        self.as_u8() & 0x08 != 0
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1: "per-message compressed" under permessage-deflate (RFC 7692 §6).
    pub rsv1: bool,
    /// RSV2: no extension here defines it.
    pub rsv2: bool,
    /// RSV3: no extension here defines it.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length. Non-minimal encodings are accepted when parsing (RFC 6455 §5.2 says
    /// "the minimal number of bytes MUST be used", but refusing them is not required); encoding
    /// always uses the minimal form.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` if `buf` holds only part of a header, or `Ok(Some((header, len)))`
    /// with the header length in bytes. Only syntax is checked here: reserved opcodes and a set
    /// 64-bit length MSB are errors; everything that depends on the role or the negotiated
    /// extensions is [`FrameRules::check`]'s job.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, WsError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & OPCODE)?;
        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let (payload_len, mut pos) = match b1 & LEN7 {
            LEN16 => match buf.get(2..4) {
                Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                _ => return Ok(None),
            },
            LEN64 => match buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) {
                Some(bytes) => {
                    let len = u64::from_be_bytes(bytes);
                    // RFC 6455 §5.2: "the most significant bit MUST be 0".
                    if len & (1 << 63) != 0 {
                        return Err(WsError::LengthMsbSet);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 2),
        };
        let mask = if b1 & MASK != 0 {
            match buf.get(pos..pos + 4) {
                Some(&[a, b, c, d]) => {
                    pos += 4;
                    Some([a, b, c, d])
                }
                _ => return Ok(None),
            }
        } else {
            None
        };
        let header = Self {
            fin: b0 & FIN != 0,
            rsv1: b0 & RSV1 != 0,
            rsv2: b0 & RSV2 != 0,
            rsv3: b0 & RSV3 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// The length of [`encode`](Self::encode)'s output.
    pub const fn encoded_len(&self) -> usize {
        let len = if self.payload_len < 126 {
            2
        } else if self.payload_len <= 0xFFFF {
            4
        } else {
            10
        };
        if self.mask.is_some() { len + 4 } else { len }
    }

    /// Encodes the header (minimal length form) into a small inline buffer, for a vectored
    /// send of header + payload.
    pub fn encode(&self) -> HeaderBytes {
        let mut b = [0u8; MAX_HEADER_LEN];
        let mut b0 = self.opcode.as_u8();
        if self.fin {
            b0 |= FIN;
        }
        if self.rsv1 {
            b0 |= RSV1;
        }
        if self.rsv2 {
            b0 |= RSV2;
        }
        if self.rsv3 {
            b0 |= RSV3;
        }
        let mask_bit = if self.mask.is_some() { MASK } else { 0 };
        b[0] = b0;
        let mut pos = 2;
        if self.payload_len < 126 {
            // Fits in 7 bits.
            b[1] = mask_bit | self.payload_len as u8;
        } else if let Ok(len16) = u16::try_from(self.payload_len) {
            b[1] = mask_bit | LEN16;
            pos = put(&mut b, pos, &len16.to_be_bytes());
        } else {
            b[1] = mask_bit | LEN64;
            pos = put(&mut b, pos, &self.payload_len.to_be_bytes());
        }
        if let Some(key) = self.mask {
            pos = put(&mut b, pos, &key);
        }
        HeaderBytes {
            bytes: b,
            len: pos as u8,
        }
    }

    /// Appends the encoded header to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }
}

fn put(dst: &mut [u8; MAX_HEADER_LEN], at: usize, src: &[u8]) -> usize {
    for (d, s) in dst.iter_mut().skip(at).zip(src) {
        *d = *s;
    }
    at + src.len()
}

/// An encoded frame header, at most [`MAX_HEADER_LEN`] bytes, kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HeaderBytes {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderBytes {
    /// The header bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl Deref for HeaderBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for HeaderBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeaderBytes({:02x?})", self.as_slice())
    }
}

/// The context-dependent frame rules of RFC 6455 §5 that need no message state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRules {
    /// Who is receiving: a server requires masked frames, a client refuses them.
    pub role: Role,
    /// Whether RSV1 may be set (permessage-deflate negotiated). Even then it is refused on
    /// control frames and continuation frames.
    pub allow_rsv1: bool,
    /// The largest data-frame payload accepted; longer is [`WsError::FrameTooLarge`] (1009).
    pub max_payload: u64,
}

impl FrameRules {
    /// Checks a received header against these rules.
    pub fn check(&self, h: &FrameHeader) -> Result<(), WsError> {
        // RFC 6455 §5.2: "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is
        // negotiated that defines meanings for non-zero values."
        // RFC 7692 §6: RSV1 is the "Per-Message Compressed" bit, set only "on the first frame of
        // a message"; "An endpoint MUST NOT set the 'Per-Message Compressed' bit of control
        // frames and non-first fragments of a data message."
        if h.rsv2
            || h.rsv3
            || (h.rsv1
                && (!self.allow_rsv1 || h.opcode.is_control() || h.opcode == OpCode::Continuation))
        {
            return Err(WsError::ReservedBits);
        }
        // RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less
        // and MUST NOT be fragmented."
        if h.opcode.is_control() {
            if !h.fin {
                return Err(WsError::FragmentedControlFrame);
            }
            if h.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(WsError::ControlFrameTooLong);
            }
        }
        // RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is
        // not masked." and "A client MUST close a connection if it detects a masked frame."
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(WsError::UnmaskedFrame),
            (Role::Client, true) => return Err(WsError::MaskedFrame),
            _ => {}
        }
        if !h.opcode.is_control() && h.payload_len > self.max_payload {
            return Err(WsError::FrameTooLarge);
        }
        Ok(())
    }
}

/// A parsed frame whose payload is already unmasked, borrowed from the input buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header as it was on the wire (`mask` still says whether and how it was masked).
    pub header: FrameHeader,
    /// The unmasked payload.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses one whole frame from the start of `buf`, checks it against `rules` and unmasks the
    /// payload in place.
    ///
    /// Returns `Ok(None)` if the frame is not complete yet (nothing is modified; the caller keeps
    /// the partial tail and calls again with more bytes), or the frame and the number of bytes
    /// it took. Message-level rules (continuations, UTF-8, close payloads) are
    /// [`WebSocket`](crate::WebSocket)'s job.
    pub fn parse(
        buf: &'a mut [u8],
        rules: &FrameRules,
    ) -> Result<Option<(Frame<'a>, usize)>, WsError> {
        let Some((header, header_len)) = FrameHeader::parse(buf)? else {
            return Ok(None);
        };
        rules.check(&header)?;
        let Ok(payload_len) = usize::try_from(header.payload_len) else {
            return Err(WsError::FrameTooLarge);
        };
        let Some(total) = header_len.checked_add(payload_len) else {
            return Err(WsError::FrameTooLarge);
        };
        let Some(frame) = buf.get_mut(..total) else {
            return Ok(None);
        };
        let payload = frame.get_mut(header_len..).unwrap_or_default();
        if let Some(key) = header.mask {
            apply_mask(payload, key);
        }
        Ok(Some((Frame { header, payload }, total)))
    }
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: FrameRules = FrameRules {
        role: Role::Server,
        allow_rsv1: false,
        max_payload: 1 << 20,
    };
    const CLIENT: FrameRules = FrameRules {
        role: Role::Client,
        allow_rsv1: false,
        max_payload: 1 << 20,
    };

    #[test]
    fn header_partial_is_none() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for n in 0..full.len() {
            assert_eq!(FrameHeader::parse(&full[..n]), Ok(None), "n={n}");
        }
        let (h, len) = FrameHeader::parse(&full).unwrap().unwrap();
        assert_eq!(len, 14);
        assert_eq!(h.payload_len, 0x1_0000);
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
    }

    #[test]
    fn rfc6455_5_2_reserved_opcodes() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op]),
                Err(WsError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rfc6455_5_2_length_msb() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&buf), Err(WsError::LengthMsbSet));
    }

    #[test]
    fn rfc6455_5_2_non_minimal_length_accepted() {
        // 5 encoded in the 16-bit and the 64-bit form.
        let (h, n) = FrameHeader::parse(&[0x81, 0x7E, 0, 5]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
        let (h, n) = FrameHeader::parse(&[0x81, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn encode_roundtrip_lengths() {
        for len in [0u64, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv1: true,
                    rsv2: false,
                    rsv3: true,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                };
                let enc = h.encode();
                assert_eq!(enc.len(), h.encoded_len());
                assert_eq!(FrameHeader::parse(&enc), Ok(Some((h, enc.len()))));
            }
        }
    }

    #[test]
    fn rules_mask_direction() {
        let mut unmasked = [0x81, 0x00];
        assert_eq!(
            Frame::parse(&mut unmasked, &SERVER),
            Err(WsError::UnmaskedFrame)
        );
        let mut masked = [0x81, 0x80, 1, 2, 3, 4];
        assert_eq!(
            Frame::parse(&mut masked, &CLIENT),
            Err(WsError::MaskedFrame)
        );
    }

    #[test]
    fn rules_control_frames() {
        // RFC 6455 §5.5: ping with FIN clear, ping with 126 bytes.
        let mut frag = [0x09, 0x00];
        assert_eq!(
            Frame::parse(&mut frag, &CLIENT),
            Err(WsError::FragmentedControlFrame)
        );
        let mut long = [0x89, 0x7E, 0x00, 0x7E];
        assert_eq!(
            Frame::parse(&mut long, &CLIENT),
            Err(WsError::ControlFrameTooLong)
        );
    }

    #[test]
    fn rules_rsv() {
        let mut rsv1 = [0xC1, 0x00];
        assert_eq!(Frame::parse(&mut rsv1, &CLIENT), Err(WsError::ReservedBits));
        let deflate = FrameRules {
            allow_rsv1: true,
            ..CLIENT
        };
        assert!(Frame::parse(&mut rsv1, &deflate).unwrap().is_some());
        let mut rsv1_ping = [0xC9, 0x00];
        assert_eq!(
            Frame::parse(&mut rsv1_ping, &deflate),
            Err(WsError::ReservedBits)
        );
        let mut rsv1_cont = [0xC0, 0x00];
        assert_eq!(
            Frame::parse(&mut rsv1_cont, &deflate),
            Err(WsError::ReservedBits)
        );
        let mut rsv2 = [0xA1, 0x00];
        assert_eq!(
            Frame::parse(&mut rsv2, &deflate),
            Err(WsError::ReservedBits)
        );
    }

    #[test]
    fn frame_too_large_limit_plus_one() {
        let rules = FrameRules {
            max_payload: 5,
            ..CLIENT
        };
        let mut ok = [0x82, 0x05, 1, 2, 3, 4, 5];
        assert!(Frame::parse(&mut ok, &rules).unwrap().is_some());
        let mut big = [0x82, 0x06, 1, 2, 3, 4, 5, 6];
        assert_eq!(Frame::parse(&mut big, &rules), Err(WsError::FrameTooLarge));
    }
}
