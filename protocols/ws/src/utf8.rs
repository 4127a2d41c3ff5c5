//! Incremental UTF-8 validation across fragments and partial frames.
//!
//! RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
//! byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_." Autobahn 6.x wants that failure at the first chunk that contains an invalid
//! byte, not at the end of the message. A chunk may end inside a code point: up to 3 bytes of
//! an incomplete but so-far-valid sequence are carried to the next chunk.

/// Streaming validator: feed chunks, then `finish` at the end of the message.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// The chunk (or the message end) is not valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

/// Sequence length announced by a lead byte that `from_utf8` reported as a valid prefix.
fn seq_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

impl Utf8Validator {
    /// Validates the next chunk. Fails as soon as the bytes so far cannot be a prefix of valid
    /// UTF-8 (std's `error_len() == Some(_)` semantics: overlongs, surrogates and code points
    /// above U+10FFFF are caught at their second byte).
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), Invalid> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let need = seq_width(self.carry[0]).saturating_sub(have);
            let take = need.min(data.len());
            let mut tmp = self.carry;
            for (d, s) in tmp.iter_mut().skip(have).zip(data.iter().take(take)) {
                *d = *s;
            }
            let seq = tmp.get(..have + take).ok_or(Invalid)?;
            match simdutf8::compat::from_utf8(seq) {
                Ok(_) => self.carry_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid, incomplete prefix: `take == data.len()` here.
                    self.carry = tmp;
                    self.carry_len = seq.len() as u8;
                    return Ok(());
                }
                Err(_) => return Err(Invalid),
            }
            data = data.get(take..).unwrap_or_default();
        }
        // Fast path: the whole chunk is valid.
        if simdutf8::basic::from_utf8(data).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = data.get(e.valid_up_to()..).ok_or(Invalid)?;
                if tail.len() > 3 {
                    return Err(Invalid);
                }
                for (d, s) in self.carry.iter_mut().zip(tail) {
                    *d = *s;
                }
                self.carry_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Invalid),
        }
    }

    /// Ends the message: fails if it ended inside a code point. Resets the validator.
    pub(crate) fn finish(&mut self) -> Result<(), Invalid> {
        let incomplete = self.carry_len != 0;
        *self = Self::default();
        if incomplete { Err(Invalid) } else { Ok(()) }
    }

    /// Forgets any carried bytes.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(bytes: &[u8]) {
        let valid = std::str::from_utf8(bytes).is_ok();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut v = Utf8Validator::default();
                let r = v
                    .feed(&bytes[..i])
                    .and_then(|()| v.feed(&bytes[i..j]))
                    .and_then(|()| v.feed(&bytes[j..]))
                    .and_then(|()| v.finish());
                assert_eq!(r.is_ok(), valid, "{bytes:02x?} split {i} {j}");
            }
        }
    }

    #[test]
    fn splits_agree_with_std() {
        let cases: &[&[u8]] = &[
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "κόσμε".as_bytes(),
            "\u{10FFFF}\u{FFFF}\u{800}\u{80}".as_bytes(),
            &[0xF4, 0x90, 0x80, 0x80], // > U+10FFFF
            &[0xED, 0xA0, 0x80],       // surrogate
            &[0xE0, 0x80, 0xAF],       // overlong
            &[0xC0, 0xAF],             // overlong
            &[0xCE, 0xBA, 0xE1],       // truncated at the end
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
            ],
            &[0xF0, 0x9F, 0x98, 0x80, 0x41],
            &[0x80],
            &[0xFF],
        ];
        for c in cases {
            check_all_splits(c);
        }
    }

    #[test]
    fn fails_fast_at_first_bad_chunk() {
        // Autobahn 6.4.1: the second fragment holds the invalid sequence.
        let mut v = Utf8Validator::default();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert!(v.feed(&[0xF4, 0x90, 0x80, 0x80]).is_err());
        // Invalid continuation of a carried lead byte is caught at its byte.
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xF4]).is_ok());
        assert!(v.feed(&[0x90]).is_err());
    }
}
