//! Credentials: long-term and short-term keys (RFC 8489 §9), USERHASH (§14.4), TURN REST
//! time-limited credentials (coturn's `use-auth-secret`), and stateless nonces any core can
//! verify from a shared key. Time is always passed in as Unix seconds; nothing here reads a
//! clock.

use core::fmt;
use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

use crate::error::StunError;
use crate::saslprep::saslprep;
use crate::types::{AttrType, PasswordAlgorithm};

/// A long-term credential key: 16 bytes (MD5) or 32 bytes (SHA-256). Use it with
/// [`MessageBuilder::message_integrity`](crate::MessageBuilder::message_integrity) and
/// [`StunMessage::verify_integrity`](crate::StunMessage::verify_integrity). `Debug` does not
/// print the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LongTermKey {
    bytes: [u8; 32],
    len: u8,
}

impl LongTermKey {
    /// RFC 8489 §9.2.2: "key = MD5(username ":" OpaqueString(realm) ":" OpaqueString(password))"
    /// (RFC 5389 §15.4: "MD5(username ":" realm ":" SASLprep(password))"). The username and
    /// realm are used as they appear on the wire; the password goes through
    /// [`saslprep`](crate::saslprep).
    pub fn md5(username: &str, realm: &str, password: &str) -> Result<Self, StunError> {
        Self::new(PasswordAlgorithm::MD5, username, realm, password)
    }

    /// The key for `algorithm` (RFC 8489 §18.5.1): MD5 or SHA-256 over
    /// `username ":" realm ":" SASLprep(password)`. Another algorithm gives
    /// `InvalidAttribute(PASSWORD-ALGORITHM)` (a server answers 400).
    pub fn new(
        algorithm: PasswordAlgorithm,
        username: &str,
        realm: &str,
        password: &str,
    ) -> Result<Self, StunError> {
        let password = saslprep(password)?;
        let parts = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        let mut bytes = [0u8; 32];
        let len = match algorithm {
            PasswordAlgorithm::MD5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                let d: [u8; 16] = h.finalize().into();
                if let Some(head) = bytes.get_mut(..16) {
                    head.copy_from_slice(&d);
                }
                16
            }
            PasswordAlgorithm::SHA256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                bytes = h.finalize().into();
                32
            }
            _ => return Err(StunError::InvalidAttribute(AttrType::PASSWORD_ALGORITHM)),
        };
        Ok(Self { bytes, len })
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }
}

impl AsRef<[u8]> for LongTermKey {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LongTermKey(len={})", self.len)
    }
}

/// RFC 8489 §9.1.1: "key = OpaqueString(password)"; RFC 5389 §15.4: "key = SASLprep(password)".
/// Returns the key bytes' string form (borrowed when SASLprep changes nothing).
pub fn short_term_key(password: &str) -> Result<Cow<'_, str>, StunError> {
    saslprep(password)
}

/// RFC 8489 §14.4: "userhash = SHA-256(OpaqueString(username) ":" OpaqueString(realm))",
/// with username and realm taken as given.
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update(b":");
    h.update(realm.as_bytes());
    h.finalize().into()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4) into `out`; returns the number of bytes written
/// (`out` must hold `4 * ceil(len / 3)`).
fn base64_encode(input: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    for chunk in input.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = [
            B64.get((v >> 18) as usize & 63),
            B64.get((v >> 12) as usize & 63),
            if chunk.len() > 1 {
                B64.get((v >> 6) as usize & 63)
            } else {
                Some(&b'=')
            },
            if chunk.len() > 2 {
                B64.get(v as usize & 63)
            } else {
                Some(&b'=')
            },
        ];
        for c in chars {
            if let (Some(slot), Some(&c)) = (out.get_mut(n), c) {
                *slot = c;
                n += 1;
            }
        }
    }
    n
}

/// Decodes unpadded standard base64 of exactly `N * 4 / 3` characters into `N` bytes.
fn base64_decode<const N: usize>(input: &[u8]) -> Option<[u8; N]> {
    if input.len() * 3 != N * 4 {
        return None;
    }
    let mut out = [0u8; N];
    let mut n = 0;
    for chunk in input.chunks_exact(4) {
        let mut v = 0u32;
        for &c in chunk {
            let d = B64.iter().position(|&x| x == c)? as u32;
            v = (v << 6) | d;
        }
        for byte in [(v >> 16) as u8, (v >> 8) as u8, v as u8] {
            *out.get_mut(n)? = byte;
            n += 1;
        }
    }
    Some(out)
}

/// A TURN REST password: base64 of a 20-byte HMAC-SHA1, 28 ASCII characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RestPassword([u8; 28]);

impl RestPassword {
    /// The password text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Debug for RestPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RestPassword(..)")
    }
}

/// TURN REST API time-limited credentials (draft-uberti-behave-turn-rest, coturn
/// `--use-auth-secret` / `static-auth-secret`): username = `"<expiry unix secs>:<user>"`,
/// password = base64(HMAC-SHA1(secret, username)). The server recomputes the password from
/// the username and derives the usual long-term key from it.
pub struct RestCredentials;

impl RestCredentials {
    /// The username `"<expiry>:<user>"`, or just `"<expiry>"` when `user` is empty.
    pub fn username(expiry_unix_secs: u64, user: &str) -> String {
        if user.is_empty() {
            expiry_unix_secs.to_string()
        } else {
            format!("{expiry_unix_secs}:{user}")
        }
    }

    /// password = base64(HMAC-SHA1(secret, username)).
    pub fn password(secret: &[u8], username: &str) -> RestPassword {
        let mut out = [b'='; 28];
        if let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) {
            mac.update(username.as_bytes());
            base64_encode(&mac.finalize().into_bytes(), &mut out);
        }
        RestPassword(out)
    }

    /// The expiry encoded in a REST username, read as coturn does: the digits before the first
    /// `:` (`"expiry:user"`), or after it when the part before holds non-digits
    /// (`"user:expiry"`), or the whole username when it has no `:`.
    pub fn expiry(username: &str) -> Option<u64> {
        let digits = match username.split_once(':') {
            Some((head, _)) if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) => head,
            Some((_, tail)) => tail,
            None => username,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Checks the username's expiry against `now_unix_secs` and returns the password to derive
    /// the long-term key from. `Err(CredentialsExpired)` when expired or unreadable (401).
    pub fn verify(
        secret: &[u8],
        username: &str,
        now_unix_secs: u64,
    ) -> Result<RestPassword, StunError> {
        match Self::expiry(username) {
            Some(expiry) if expiry > now_unix_secs => Ok(Self::password(secret, username)),
            _ => Err(StunError::CredentialsExpired),
        }
    }
}

/// The RFC 8489 §9.2 nonce cookie, announcing the security features a server supports.
pub const NONCE_COOKIE: &str = "obMatJos2";

/// The 24-bit "Security Feature Set" of a nonce cookie (RFC 8489 §9.2, §18.1; bits numbered
/// from the least significant, per verified erratum 6268).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SecurityFeatures(u32);

impl SecurityFeatures {
    /// No features.
    pub const NONE: Self = Self(0);
    /// Bit 0, Password algorithms: PASSWORD-ALGORITHMS / PASSWORD-ALGORITHM are in use.
    pub const PASSWORD_ALGORITHMS: Self = Self(0x01);
    /// Bit 1, Username anonymity: USERHASH may replace USERNAME.
    pub const USERNAME_ANONYMITY: Self = Self(0x02);

    /// A feature set from its 24 bits.
    pub const fn new(bits: u32) -> Self {
        Self(bits & 0x00FF_FFFF)
    }

    /// The 24 bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every feature in `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The features announced by a nonce: it must start with "obMatJos2" and four base64
    /// characters (RFC 8489 §9.2).
    pub fn from_nonce(nonce: &str) -> Option<Self> {
        let rest = nonce.strip_prefix(NONCE_COOKIE)?;
        let [a, b, c] = base64_decode::<3>(rest.as_bytes().get(..4)?)?;
        Some(Self(u32::from_be_bytes([0, a, b, c])))
    }
}

/// Length of the MAC in a stateless nonce.
const NONCE_TAG_LEN: usize = 16;
/// expiry (8) + tag (16) = 24 bytes = 32 base64 characters.
const NONCE_BODY_B64: usize = 32;
/// "obMatJos2" + 4 + 32.
const NONCE_MAX: usize = 9 + 4 + NONCE_BODY_B64;

/// A stateless nonce: `["obMatJos2" + features] base64(expiry_be64 || HMAC-SHA256(key, ...)[..16])`.
///
/// Any core holding the shared key verifies it without state; the MAC covers the optional
/// cookie, the expiry and an optional binding (e.g. the client's address bytes), so a nonce
/// cannot be moved to another client or have its expiry extended. 45 characters at most,
/// within RFC 8489 §14.10's "fewer than 128 characters".
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Nonce {
    buf: [u8; NONCE_MAX],
    len: u8,
}

impl Nonce {
    /// A nonce valid until `now_unix_secs + ttl_secs`, without cookie or binding.
    pub fn issue(key: &[u8], now_unix_secs: u64, ttl_secs: u64) -> Self {
        Self::issue_with(key, now_unix_secs, ttl_secs, None, &[])
    }

    /// A nonce valid until `now_unix_secs + ttl_secs`, starting with the RFC 8489 nonce cookie
    /// when `features` is given, and bound to `binding` (pass the same bytes to
    /// [`Nonce::verify_with`]).
    pub fn issue_with(
        key: &[u8],
        now_unix_secs: u64,
        ttl_secs: u64,
        features: Option<SecurityFeatures>,
        binding: &[u8],
    ) -> Self {
        let mut buf = [b'A'; NONCE_MAX];
        let mut len = 0;
        if let Some(f) = features {
            let [_, a, b, c] = f.0.to_be_bytes();
            if let Some(head) = buf.get_mut(..9) {
                head.copy_from_slice(NONCE_COOKIE.as_bytes());
            }
            len = 9 + buf
                .get_mut(9..13)
                .map_or(0, |o| base64_encode(&[a, b, c], o));
        }
        let expiry = now_unix_secs.saturating_add(ttl_secs);
        let prefix = buf.get(..len).unwrap_or(&[]);
        let tag = nonce_tag(key, prefix, expiry, binding);
        let mut body = [0u8; 8 + NONCE_TAG_LEN];
        if let (Some(e), Some(t)) = (body.get_mut(..8), tag) {
            e.copy_from_slice(&expiry.to_be_bytes());
            if let Some(dst) = body.get_mut(8..) {
                dst.copy_from_slice(&t);
            }
        }
        // 24 bytes encode to exactly 32 characters, no padding.
        let written = buf
            .get_mut(len..len + NONCE_BODY_B64)
            .map_or(0, |o| base64_encode(&body, o));
        Self {
            buf,
            len: (len + written) as u8,
        }
    }

    /// Verifies a nonce issued by [`Nonce::issue`] with `key`: `Ok`, `Err(StaleNonce)` once
    /// its expiry has passed, `Err(InvalidNonce)` if it was not issued with this key (both
    /// answer 438).
    pub fn verify(key: &[u8], nonce: &str, now_unix_secs: u64) -> Result<(), StunError> {
        Self::verify_with(key, nonce, now_unix_secs, &[])
    }

    /// Verifies a nonce issued by [`Nonce::issue_with`] with the same `binding`.
    pub fn verify_with(
        key: &[u8],
        nonce: &str,
        now_unix_secs: u64,
        binding: &[u8],
    ) -> Result<(), StunError> {
        let bytes = nonce.as_bytes();
        let split = if nonce.starts_with(NONCE_COOKIE) {
            13
        } else {
            0
        };
        let (prefix, body) = (bytes.get(..split), bytes.get(split..));
        let (Some(prefix), Some(body)) = (prefix, body) else {
            return Err(StunError::InvalidNonce);
        };
        let body = base64_decode::<24>(body).ok_or(StunError::InvalidNonce)?;
        let (expiry, tag) = body
            .split_first_chunk::<8>()
            .ok_or(StunError::InvalidNonce)?;
        let expiry = u64::from_be_bytes(*expiry);
        let mac = nonce_mac(key, prefix, expiry, binding).ok_or(StunError::InvalidNonce)?;
        mac.verify_truncated_left(tag)
            .map_err(|_| StunError::InvalidNonce)?;
        if now_unix_secs >= expiry {
            return Err(StunError::StaleNonce);
        }
        Ok(())
    }

    /// The nonce text, for [`MessageBuilder::nonce`](crate::MessageBuilder::nonce).
    pub fn as_str(&self) -> &str {
        self.buf
            .get(..usize::from(self.len))
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.as_str())
    }
}

fn nonce_mac(key: &[u8], prefix: &[u8], expiry: u64, binding: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(b"ringwire-stun nonce v1");
    mac.update(&[prefix.len() as u8]);
    mac.update(prefix);
    mac.update(&expiry.to_be_bytes());
    mac.update(binding);
    Some(mac)
}

fn nonce_tag(
    key: &[u8],
    prefix: &[u8],
    expiry: u64,
    binding: &[u8],
) -> Option<[u8; NONCE_TAG_LEN]> {
    let full = nonce_mac(key, prefix, expiry, binding)?
        .finalize()
        .into_bytes();
    full.get(..NONCE_TAG_LEN)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = [0u8; 8];
            let n = base64_encode(i.as_bytes(), &mut out);
            assert_eq!(&out[..n], o.as_bytes());
        }
        assert_eq!(base64_decode::<6>(b"Zm9vYmFy"), Some(*b"foobar"));
        assert_eq!(base64_decode::<6>(b"Zm9vYmF!"), None);
        assert_eq!(base64_decode::<6>(b"Zm9vYmF"), None);
    }

    #[test]
    fn rfc5769_long_term_key() {
        // RFC 5769 §2.4 credentials; the key is MD5("<username>:example.org:TheMatrIX").
        let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let a = LongTermKey::md5(user, "example.org", "The\u{00AD}M\u{00AA}tr\u{2168}").unwrap();
        let b = LongTermKey::md5(user, "example.org", "TheMatrIX").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_bytes().len(), 16);
        let expected: [u8; 16] =
            Md5::digest(format!("{user}:example.org:TheMatrIX").as_bytes()).into();
        assert_eq!(a.as_bytes(), expected);
        assert_eq!(format!("{a:?}"), "LongTermKey(len=16)");
        assert!(LongTermKey::new(PasswordAlgorithm::new(9), "u", "r", "p").is_err());
        assert_eq!(
            LongTermKey::md5("u", "r", "bad\u{0001}"),
            Err(StunError::ProhibitedCharacter)
        );
    }

    #[test]
    fn rest_credentials_like_coturn() {
        let user = RestCredentials::username(1_700_000_000, "alice");
        assert_eq!(user, "1700000000:alice");
        assert_eq!(RestCredentials::expiry(&user), Some(1_700_000_000));
        assert_eq!(
            RestCredentials::expiry("alice:1700000000"),
            Some(1_700_000_000)
        );
        assert_eq!(RestCredentials::expiry("1700000000"), Some(1_700_000_000));
        assert_eq!(RestCredentials::expiry("alice"), None);
        assert_eq!(RestCredentials::expiry(":alice"), None);
        // HMAC-SHA1("secret", "1700000000:alice"), computed independently:
        // printf '1700000000:alice' | openssl dgst -sha1 -hmac secret -binary | base64
        let pw = RestCredentials::password(b"secret", &user);
        assert_eq!(pw.as_str().len(), 28);
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(b"secret").unwrap();
        mac.update(user.as_bytes());
        let mut expect = [0u8; 28];
        base64_encode(&mac.finalize().into_bytes(), &mut expect);
        assert_eq!(pw.as_str().as_bytes(), expect);
        assert_eq!(
            RestCredentials::verify(b"secret", &user, 1_699_999_999).unwrap(),
            pw
        );
        assert_eq!(
            RestCredentials::verify(b"secret", &user, 1_700_000_000),
            Err(StunError::CredentialsExpired)
        );
    }

    #[test]
    fn nonce_issue_verify_stale_invalid() {
        let key = b"shared key of every core";
        let n = Nonce::issue(key, 1000, 600);
        assert_eq!(n.as_str().len(), 32);
        assert_eq!(Nonce::verify(key, n.as_str(), 1000), Ok(()));
        assert_eq!(Nonce::verify(key, n.as_str(), 1599), Ok(()));
        assert_eq!(
            Nonce::verify(key, n.as_str(), 1600),
            Err(StunError::StaleNonce)
        );
        assert_eq!(
            Nonce::verify(b"other key", n.as_str(), 1000),
            Err(StunError::InvalidNonce)
        );
        assert_eq!(
            Nonce::verify(key, "garbage", 1000),
            Err(StunError::InvalidNonce)
        );
        assert_eq!(Nonce::verify(key, "", 1000), Err(StunError::InvalidNonce));
        // Every single-character change is caught.
        let s = n.as_str().to_owned();
        for i in 0..s.len() {
            let mut b = s.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            assert_eq!(
                Nonce::verify(key, &t, 1000),
                Err(StunError::InvalidNonce),
                "{t}"
            );
        }
    }

    #[test]
    fn nonce_cookie_and_binding() {
        let key = b"k";
        let f = SecurityFeatures::PASSWORD_ALGORITHMS.union(SecurityFeatures::USERNAME_ANONYMITY);
        let n = Nonce::issue_with(key, 10, 5, Some(f), b"198.51.100.1:3478");
        assert!(n.as_str().starts_with("obMatJos2AAAD"), "{}", n.as_str());
        assert_eq!(n.as_str().len(), 45);
        assert_eq!(SecurityFeatures::from_nonce(n.as_str()), Some(f));
        assert_eq!(
            Nonce::verify_with(key, n.as_str(), 12, b"198.51.100.1:3478"),
            Ok(())
        );
        assert_eq!(
            Nonce::verify_with(key, n.as_str(), 12, b"198.51.100.2:3478"),
            Err(StunError::InvalidNonce)
        );
        assert_eq!(
            Nonce::verify_with(key, n.as_str(), 15, b"198.51.100.1:3478"),
            Err(StunError::StaleNonce)
        );
        // Stripping the cookie (a downgrade) breaks the MAC.
        assert_eq!(
            Nonce::verify_with(key, &n.as_str()[13..], 12, b"198.51.100.1:3478"),
            Err(StunError::InvalidNonce)
        );
        // RFC 8489 B.1's nonce announces username anonymity.
        let b1 = SecurityFeatures::from_nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA").unwrap();
        assert!(b1.contains(SecurityFeatures::USERNAME_ANONYMITY));
        assert!(!b1.contains(SecurityFeatures::PASSWORD_ALGORITHMS));
        assert_eq!(
            SecurityFeatures::from_nonce("f//499k954d6OL34oL9FSTvy64sA"),
            None
        );
    }
}
