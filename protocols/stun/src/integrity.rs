//! MESSAGE-INTEGRITY (HMAC-SHA1), MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (CRC-32) over a
//! message prefix whose length field is rewritten, shared by the builder and the verifier.
//!
//! RFC 8489 §14.5: "the length field in the STUN header [...] MUST be adjusted to point to the
//! end of the MESSAGE-INTEGRITY attribute" before computing the HMAC, which covers "the STUN
//! message, up to (but excluding) the MESSAGE-INTEGRITY attribute itself". FINGERPRINT
//! (§14.7) is "the CRC-32 of the STUN message up to (but excluding) the FINGERPRINT attribute
//! itself, XOR'ed with the 32-bit value 0x5354554e", with the length likewise covering it.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// RFC 8489 §14.7: the FINGERPRINT XOR constant, ASCII "STUN".
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The three pieces a MAC or CRC runs over: type (2 bytes), the adjusted length, and the rest
/// of the header plus attributes before the covered attribute.
pub(crate) struct Covered<'a> {
    pub(crate) msg_type: &'a [u8],
    pub(crate) length: [u8; 2],
    pub(crate) rest: &'a [u8],
}

impl<'a> Covered<'a> {
    /// `prefix` is the message from its first byte up to the covered attribute's header;
    /// `body_len` is the length field value to hash in.
    pub(crate) fn new(prefix: &'a [u8], body_len: usize) -> Option<Self> {
        Some(Self {
            msg_type: prefix.get(..2)?,
            length: u16::try_from(body_len).ok()?.to_be_bytes(),
            rest: prefix.get(4..)?,
        })
    }

    fn feed(&self, mut f: impl FnMut(&[u8])) {
        f(self.msg_type);
        f(&self.length);
        f(self.rest);
    }
}

/// HMAC-SHA1 with `key` over the covered bytes.
pub(crate) fn hmac_sha1(key: &[u8], covered: &Covered<'_>) -> Option<Hmac<Sha1>> {
    // HMAC accepts keys of any length (longer ones are hashed), so this never fails.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).ok()?;
    covered.feed(|b| mac.update(b));
    Some(mac)
}

/// HMAC-SHA256 with `key` over the covered bytes.
pub(crate) fn hmac_sha256(key: &[u8], covered: &Covered<'_>) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    covered.feed(|b| mac.update(b));
    Some(mac)
}

/// The FINGERPRINT value of the covered bytes.
pub(crate) fn fingerprint(covered: &Covered<'_>) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    covered.feed(|b| crc.update(b));
    crc.finalize() ^ FINGERPRINT_XOR
}
