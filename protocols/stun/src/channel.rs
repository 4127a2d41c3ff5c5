//! TURN ChannelData (RFC 8656 §12.4), telling STUN from ChannelData by the first two bits,
//! and framing both on a stream (TCP/TLS).

use core::fmt;

use crate::attr::{be16, pad4};
use crate::error::StunError;
use crate::message::{Limits, check_header};
use crate::types::{ChannelNumber, HEADER_LEN};

/// ChannelData header size: channel number (2) + length (2).
pub const CHANNEL_DATA_HEADER_LEN: usize = 4;

/// What a datagram holds, judged from its first bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PacketKind {
    /// First two bits 00, at least 20 bytes, magic cookie present: parse with
    /// [`StunMessage::parse`](crate::StunMessage::parse).
    Stun,
    /// First two bits 01 (channel 0x4000–0x7FFF) and a 4-byte header: parse with
    /// [`ChannelData::parse_datagram`].
    ChannelData,
    /// Anything else (DTLS, RTP, garbage): not for the STUN/TURN codec.
    Other,
}

/// Classifies a datagram. RFC 8656 §12: "the first two bits [...] 0b00 [...] STUN [...] 0b01
/// [...] ChannelData". STUN additionally needs the magic cookie (RFC 7983 puts DTLS records,
/// first byte 20–63, in the same 00 range).
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first().map(|b| b >> 6) {
        Some(0b00)
            if datagram.len() >= HEADER_LEN
                && datagram.get(4..8) == Some(&crate::types::MAGIC_COOKIE.to_be_bytes()[..]) =>
        {
            PacketKind::Stun
        }
        Some(0b01) if datagram.len() >= CHANNEL_DATA_HEADER_LEN => PacketKind::ChannelData,
        _ => PacketKind::Other,
    }
}

/// A borrowed ChannelData message: channel number and application data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    channel: ChannelNumber,
    data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// A ChannelData view (for encoding with [`ChannelData::encode`]).
    pub fn new(channel: ChannelNumber, data: &'a [u8]) -> Self {
        Self { channel, data }
    }

    fn header(buf: &[u8]) -> Result<(ChannelNumber, usize), StunError> {
        let h = buf
            .get(..CHANNEL_DATA_HEADER_LEN)
            .ok_or(StunError::Truncated)?;
        let channel = ChannelNumber::new(be16(h)).ok_or(StunError::NotStun)?;
        Ok((channel, usize::from(be16(h.get(2..).unwrap_or(&[])))))
    }

    /// Parses a ChannelData datagram (UDP). RFC 8656 §12.5: "If the UDP datagram is too short
    /// to contain the claimed length of the ChannelData message [...] then the message is
    /// silently discarded"; padding is optional over UDP and any bytes after the data are
    /// ignored.
    pub fn parse_datagram(datagram: &'a [u8]) -> Result<Self, StunError> {
        let (channel, len) = Self::header(datagram)?;
        let data = datagram
            .get(CHANNEL_DATA_HEADER_LEN..CHANNEL_DATA_HEADER_LEN + len)
            .ok_or(StunError::Truncated)?;
        Ok(Self { channel, data })
    }

    /// Parses a ChannelData frame at the start of a stream buffer and returns it with the
    /// bytes it occupies, padding included. RFC 8656 §12.5: "Over TCP and TLS-over-TCP, the
    /// ChannelData message MUST be padded to a multiple of four bytes".
    pub fn parse_stream(buf: &'a [u8]) -> Result<(Self, usize), StunError> {
        let (channel, len) = Self::header(buf)?;
        let total = CHANNEL_DATA_HEADER_LEN + pad4(len);
        if buf.len() < total {
            return Err(StunError::Truncated);
        }
        let data = buf
            .get(CHANNEL_DATA_HEADER_LEN..CHANNEL_DATA_HEADER_LEN + len)
            .ok_or(StunError::Truncated)?;
        Ok((Self { channel, data }, total))
    }

    /// The channel number.
    pub fn channel(&self) -> ChannelNumber {
        self.channel
    }

    /// The application data.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Bytes [`ChannelData::encode`] writes for `data_len` bytes of data.
    pub const fn encoded_len(data_len: usize, pad: bool) -> usize {
        CHANNEL_DATA_HEADER_LEN + if pad { pad4(data_len) } else { data_len }
    }

    /// Appends the message to `out`: header, data, and zero padding to 4 bytes when `pad`
    /// (required over TCP/TLS, optional over UDP). Returns the bytes written;
    /// `Err(ValueTooLong(DATA))` above 65535 bytes of data.
    pub fn encode(&self, out: &mut Vec<u8>, pad: bool) -> Result<usize, StunError> {
        let len = u16::try_from(self.data.len())
            .map_err(|_| StunError::ValueTooLong(crate::types::AttrType::DATA))?;
        out.extend_from_slice(&self.channel.get().to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.data);
        let n = Self::encoded_len(self.data.len(), pad);
        out.resize(out.len() + n - CHANNEL_DATA_HEADER_LEN - self.data.len(), 0);
        Ok(n)
    }
}

impl fmt::Debug for ChannelData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelData")
            .field("channel", &self.channel)
            .field("len", &self.data.len())
            .finish()
    }
}

/// The next frame on a STUN/TURN stream, from [`stream_frame`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StreamFrame {
    /// Too few bytes to size the next frame: read until at least this many are buffered.
    NeedMore(usize),
    /// A STUN message of `len` bytes (header included) starts the buffer.
    Stun {
        /// Total bytes of the message; it may be more than are buffered yet.
        len: usize,
    },
    /// A ChannelData frame of `len` bytes (header and padding included) starts the buffer.
    ChannelData {
        /// Total bytes of the frame; it may be more than are buffered yet.
        len: usize,
    },
}

/// Sizes the next frame on a TCP/TLS stream carrying STUN and ChannelData (RFC 8656 §12.5,
/// RFC 6062): the first two bits pick the kind, the length field the size. Errors mean the
/// stream is desynchronised or hostile: close it. `Err(NotStun)` for first bits 10/11 or a bad
/// magic cookie, `Err(BadLength)` for a STUN length that is not a multiple of 4,
/// `Err(MessageTooLarge)` above `limits.max_message_size`.
pub fn stream_frame(buf: &[u8], limits: &Limits) -> Result<StreamFrame, StunError> {
    match buf.first().map(|b| b >> 6) {
        None => Ok(StreamFrame::NeedMore(CHANNEL_DATA_HEADER_LEN)),
        Some(0b00) => match buf.get(..HEADER_LEN) {
            None => Ok(StreamFrame::NeedMore(HEADER_LEN)),
            Some(h) => check_header(h, limits).map(|(_, len)| StreamFrame::Stun { len }),
        },
        Some(0b01) => match ChannelData::header(buf) {
            Err(_) => Ok(StreamFrame::NeedMore(CHANNEL_DATA_HEADER_LEN)),
            Ok((_, len)) => {
                let len = CHANNEL_DATA_HEADER_LEN + pad4(len);
                if len > limits.max_message_size {
                    return Err(StunError::MessageTooLarge);
                }
                Ok(StreamFrame::ChannelData { len })
            }
        },
        _ => Err(StunError::NotStun),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_udp_and_stream() {
        let ch = ChannelNumber::new(0x4001).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            ChannelData::new(ch, b"hello")
                .encode(&mut out, false)
                .unwrap(),
            9
        );
        assert_eq!(out, b"\x40\x01\x00\x05hello");
        assert_eq!(classify(&out), PacketKind::ChannelData);
        let cd = ChannelData::parse_datagram(&out).unwrap();
        assert_eq!((cd.channel(), cd.data()), (ch, &b"hello"[..]));
        // Unpadded frames are not complete on a stream.
        assert_eq!(ChannelData::parse_stream(&out), Err(StunError::Truncated));
        out.clear();
        assert_eq!(
            ChannelData::new(ch, b"hello")
                .encode(&mut out, true)
                .unwrap(),
            12
        );
        assert_eq!(out, b"\x40\x01\x00\x05hello\x00\x00\x00");
        let (cd, n) = ChannelData::parse_stream(&out).unwrap();
        assert_eq!((cd.data(), n), (&b"hello"[..], 12));
        // Padded datagrams parse too (coturn -D).
        assert_eq!(ChannelData::parse_datagram(&out).unwrap().data(), b"hello");
        assert_eq!(
            ChannelData::parse_datagram(&out[..8]),
            Err(StunError::Truncated)
        );
        assert_eq!(
            ChannelData::parse_datagram(b"\x80\x00\x00\x00"),
            Err(StunError::NotStun)
        );
        assert_eq!(
            format!("{cd:?}"),
            "ChannelData { channel: ChannelNumber(16385), len: 5 }"
        );
    }

    #[test]
    fn classify_kinds() {
        assert_eq!(classify(&[]), PacketKind::Other);
        assert_eq!(classify(&[0x16, 0xfe, 0xfd]), PacketKind::Other); // DTLS
        assert_eq!(classify(&[0x80; 20]), PacketKind::Other); // RTP
        let mut stun = [0u8; 20];
        stun[1] = 1;
        stun[4..8].copy_from_slice(&crate::types::MAGIC_COOKIE.to_be_bytes());
        assert_eq!(classify(&stun), PacketKind::Stun);
        stun[4] = 0;
        assert_eq!(classify(&stun), PacketKind::Other);
    }

    #[test]
    fn stream_framing() {
        let l = Limits::DEFAULT;
        assert_eq!(stream_frame(&[], &l), Ok(StreamFrame::NeedMore(4)));
        assert_eq!(
            stream_frame(&[0x40, 0x00], &l),
            Ok(StreamFrame::NeedMore(4))
        );
        assert_eq!(
            stream_frame(&[0x40, 0x00, 0x00, 0x05, 1], &l),
            Ok(StreamFrame::ChannelData { len: 12 })
        );
        assert_eq!(
            stream_frame(&[0x40, 0x00, 0x00, 0x00], &l),
            Ok(StreamFrame::ChannelData { len: 4 })
        );
        assert_eq!(
            stream_frame(&[0x00, 0x01], &l),
            Ok(StreamFrame::NeedMore(20))
        );
        assert_eq!(stream_frame(&[0x80, 0, 0, 0], &l), Err(StunError::NotStun));
        assert_eq!(stream_frame(&[0xC0, 0, 0, 0], &l), Err(StunError::NotStun));
        let mut h = [0u8; 20];
        h[1] = 1;
        h[3] = 8;
        h[4..8].copy_from_slice(&crate::types::MAGIC_COOKIE.to_be_bytes());
        assert_eq!(stream_frame(&h, &l), Ok(StreamFrame::Stun { len: 28 }));
        h[3] = 2;
        assert_eq!(stream_frame(&h, &l), Err(StunError::BadLength));
        h[3] = 8;
        h[5] = 0;
        assert_eq!(stream_frame(&h, &l), Err(StunError::NotStun));
    }
}
