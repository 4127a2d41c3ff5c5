//! Typed attribute values, decoded from borrowed bytes: [`Attribute`] and the small views it
//! holds. Decoding is strict about sizes (RFC 8489 §14 gives fixed sizes) and lenient about
//! reserved bits and padding contents, which RFC 8489 §14 says receivers ignore.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::error::StunError;
use crate::types::{
    AddressFamily, AttrType, ChannelNumber, ErrorCode, MAGIC_COOKIE, PasswordAlgorithm,
    TransactionId, TransportProtocol,
};

/// RFC 5389 §15.3 / RFC 8489 §14.3: USERNAME "MUST contain a UTF-8 encoded sequence of less
/// than 513 bytes" (RFC 8489 lowered it to 509; we accept the older, larger bound).
pub const MAX_USERNAME_LEN: usize = 512;
/// RFC 8489 §14.9/§14.10/§14.14/§14.8: REALM, NONCE, SOFTWARE and reason phrases "can be as
/// long as 763 bytes".
pub const MAX_TEXT_LEN: usize = 763;
/// RFC 8489 §14.16: ALTERNATE-DOMAIN "MUST NOT be longer than 255 bytes".
pub const MAX_DOMAIN_LEN: usize = 255;

/// Borrowed bytes whose `Debug` prints only their length (payloads can be large or private).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Payload<'a>(pub &'a [u8]);

impl<'a> Payload<'a> {
    /// The bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload(len={})", self.0.len())
    }
}

impl core::ops::Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

/// ERROR-CODE value (RFC 8489 §14.8): the code and its UTF-8 reason phrase.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ErrorCodeAttr<'a> {
    /// The code, 300–699.
    pub code: ErrorCode,
    /// The reason phrase (at most 763 bytes).
    pub reason: &'a str,
}

/// UNKNOWN-ATTRIBUTES value (RFC 8489 §14.13): a list of 16-bit attribute types.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AttrTypeList<'a>(&'a [u8]);

impl<'a> AttrTypeList<'a> {
    /// The listed attribute types.
    pub fn iter(&self) -> impl Iterator<Item = AttrType> + 'a {
        self.0.chunks_exact(2).map(|c| AttrType::new(be16(c)))
    }

    /// How many types are listed.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for AttrTypeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// PASSWORD-ALGORITHM value, or one entry of PASSWORD-ALGORITHMS (RFC 8489 §14.11–14.12).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AlgorithmParams<'a> {
    /// The algorithm.
    pub algorithm: PasswordAlgorithm,
    /// Its parameters (empty for MD5 and SHA-256).
    pub params: Payload<'a>,
}

/// PASSWORD-ALGORITHMS value (RFC 8489 §14.11): validated entries, each algorithm with its
/// parameters padded to 4 bytes.
#[derive(Clone, Copy)]
pub struct PasswordAlgorithms<'a>(&'a [u8]);

impl<'a> PasswordAlgorithms<'a> {
    fn validate(v: &'a [u8]) -> Result<Self, StunError> {
        let mut rest = v;
        while !rest.is_empty() {
            rest = split_algorithm(rest)
                .ok_or(StunError::InvalidAttribute(AttrType::PASSWORD_ALGORITHMS))?
                .1;
        }
        Ok(Self(v))
    }

    /// The entries in order of preference.
    pub fn iter(&self) -> impl Iterator<Item = AlgorithmParams<'a>> + 'a {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (entry, next) = split_algorithm(rest)?;
            rest = next;
            Some(entry)
        })
    }

    /// Whether `entry` is listed (RFC 8489 §9.2.4 compares PASSWORD-ALGORITHM against this).
    pub fn contains(&self, entry: &AlgorithmParams<'_>) -> bool {
        self.iter().any(|e| e == *entry)
    }
}

impl PartialEq for PasswordAlgorithms<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for PasswordAlgorithms<'_> {}

impl fmt::Debug for PasswordAlgorithms<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One entry: algorithm (2), parameter length (2), parameters, padding to 4 (the padding of
/// the last entry may be left to the attribute's own padding).
fn split_algorithm(v: &[u8]) -> Option<(AlgorithmParams<'_>, &[u8])> {
    let head = v.get(..4)?;
    let algorithm = PasswordAlgorithm::new(be16(head));
    let plen = usize::from(be16(head.get(2..)?));
    let params = v.get(4..4 + plen)?;
    let end = (4 + pad4(plen)).min(v.len());
    Some((
        AlgorithmParams {
            algorithm,
            params: Payload(params),
        },
        v.get(end..)?,
    ))
}

/// A decoded attribute. Unknown types, and types this crate only names, come back as
/// [`Attribute::Other`] with their raw value.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS (not XORed; for RFC 3489 clients).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS: the reflexive transport address.
    XorMappedAddress(SocketAddr),
    /// XOR-PEER-ADDRESS (TURN).
    XorPeerAddress(SocketAddr),
    /// XOR-RELAYED-ADDRESS (TURN).
    XorRelayedAddress(SocketAddr),
    /// ALTERNATE-SERVER (not XORed).
    AlternateServer(SocketAddr),
    /// RESPONSE-ORIGIN (RFC 5780, not XORed).
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS (RFC 5780, not XORed).
    OtherAddress(SocketAddr),
    /// USERNAME.
    Username(&'a str),
    /// USERHASH: SHA-256(username ":" realm).
    Userhash(&'a [u8; 32]),
    /// REALM.
    Realm(&'a str),
    /// NONCE.
    Nonce(&'a str),
    /// SOFTWARE.
    Software(&'a str),
    /// ALTERNATE-DOMAIN.
    AlternateDomain(&'a str),
    /// PASSWORD-ALGORITHMS.
    PasswordAlgorithms(PasswordAlgorithms<'a>),
    /// PASSWORD-ALGORITHM.
    PasswordAlgorithm(AlgorithmParams<'a>),
    /// ERROR-CODE.
    ErrorCode(ErrorCodeAttr<'a>),
    /// UNKNOWN-ATTRIBUTES.
    UnknownAttributes(AttrTypeList<'a>),
    /// LIFETIME in seconds (TURN).
    Lifetime(u32),
    /// CHANNEL-NUMBER (TURN).
    ChannelNumber(ChannelNumber),
    /// DATA (TURN).
    Data(Payload<'a>),
    /// REQUESTED-TRANSPORT (TURN).
    RequestedTransport(TransportProtocol),
    /// DONT-FRAGMENT (TURN), no value.
    DontFragment,
    /// REQUESTED-ADDRESS-FAMILY (TURN).
    RequestedAddressFamily(AddressFamily),
    /// ADDITIONAL-ADDRESS-FAMILY (TURN, RFC 8656).
    AdditionalAddressFamily(AddressFamily),
    /// EVEN-PORT (TURN): the R bit, "reserve the next-higher port too".
    EvenPort(bool),
    /// RESERVATION-TOKEN (TURN).
    ReservationToken([u8; 8]),
    /// ADDRESS-ERROR-CODE (TURN, RFC 8656 §18.12).
    AddressErrorCode {
        /// The family that could not be allocated.
        family: AddressFamily,
        /// Why.
        code: ErrorCode,
        /// Reason phrase.
        reason: &'a str,
    },
    /// ICMP (TURN, RFC 8656 §18.13).
    Icmp {
        /// ICMP type (7 bits in RFC 8656's figure).
        icmp_type: u8,
        /// ICMP code (9 bits in RFC 8656's figure).
        code: u16,
        /// Error data (e.g. the MTU for "fragmentation needed").
        data: u32,
    },
    /// CONNECTION-ID (RFC 6062).
    ConnectionId(u32),
    /// PRIORITY (ICE).
    Priority(u32),
    /// USE-CANDIDATE (ICE), no value.
    UseCandidate,
    /// ICE-CONTROLLED tie-breaker.
    IceControlled(u64),
    /// ICE-CONTROLLING tie-breaker.
    IceControlling(u64),
    /// MESSAGE-INTEGRITY: the HMAC-SHA1 as carried.
    MessageIntegrity(&'a [u8; 20]),
    /// MESSAGE-INTEGRITY-SHA256: the HMAC-SHA256 (16–32 bytes) as carried.
    MessageIntegritySha256(Payload<'a>),
    /// FINGERPRINT: the CRC-32 XOR 0x5354554E as carried.
    Fingerprint(u32),
    /// Any other attribute, raw.
    Other {
        /// Its type.
        attr_type: AttrType,
        /// Its value, without padding.
        value: Payload<'a>,
    },
}

impl<'a> Attribute<'a> {
    /// The attribute's type.
    pub const fn attr_type(&self) -> AttrType {
        match self {
            Self::MappedAddress(_) => AttrType::MAPPED_ADDRESS,
            Self::XorMappedAddress(_) => AttrType::XOR_MAPPED_ADDRESS,
            Self::XorPeerAddress(_) => AttrType::XOR_PEER_ADDRESS,
            Self::XorRelayedAddress(_) => AttrType::XOR_RELAYED_ADDRESS,
            Self::AlternateServer(_) => AttrType::ALTERNATE_SERVER,
            Self::ResponseOrigin(_) => AttrType::RESPONSE_ORIGIN,
            Self::OtherAddress(_) => AttrType::OTHER_ADDRESS,
            Self::Username(_) => AttrType::USERNAME,
            Self::Userhash(_) => AttrType::USERHASH,
            Self::Realm(_) => AttrType::REALM,
            Self::Nonce(_) => AttrType::NONCE,
            Self::Software(_) => AttrType::SOFTWARE,
            Self::AlternateDomain(_) => AttrType::ALTERNATE_DOMAIN,
            Self::PasswordAlgorithms(_) => AttrType::PASSWORD_ALGORITHMS,
            Self::PasswordAlgorithm(_) => AttrType::PASSWORD_ALGORITHM,
            Self::ErrorCode(_) => AttrType::ERROR_CODE,
            Self::UnknownAttributes(_) => AttrType::UNKNOWN_ATTRIBUTES,
            Self::Lifetime(_) => AttrType::LIFETIME,
            Self::ChannelNumber(_) => AttrType::CHANNEL_NUMBER,
            Self::Data(_) => AttrType::DATA,
            Self::RequestedTransport(_) => AttrType::REQUESTED_TRANSPORT,
            Self::DontFragment => AttrType::DONT_FRAGMENT,
            Self::RequestedAddressFamily(_) => AttrType::REQUESTED_ADDRESS_FAMILY,
            Self::AdditionalAddressFamily(_) => AttrType::ADDITIONAL_ADDRESS_FAMILY,
            Self::EvenPort(_) => AttrType::EVEN_PORT,
            Self::ReservationToken(_) => AttrType::RESERVATION_TOKEN,
            Self::AddressErrorCode { .. } => AttrType::ADDRESS_ERROR_CODE,
            Self::Icmp { .. } => AttrType::ICMP,
            Self::ConnectionId(_) => AttrType::CONNECTION_ID,
            Self::Priority(_) => AttrType::PRIORITY,
            Self::UseCandidate => AttrType::USE_CANDIDATE,
            Self::IceControlled(_) => AttrType::ICE_CONTROLLED,
            Self::IceControlling(_) => AttrType::ICE_CONTROLLING,
            Self::MessageIntegrity(_) => AttrType::MESSAGE_INTEGRITY,
            Self::MessageIntegritySha256(_) => AttrType::MESSAGE_INTEGRITY_SHA256,
            Self::Fingerprint(_) => AttrType::FINGERPRINT,
            Self::Other { attr_type, .. } => *attr_type,
        }
    }

    /// Decodes `value` (without padding) as an attribute of type `t`; XOR-ed addresses use
    /// `tid`. A malformed value gives [`StunError::InvalidAttribute`].
    pub fn decode(t: AttrType, value: &'a [u8], tid: &TransactionId) -> Result<Self, StunError> {
        let bad = StunError::InvalidAttribute(t);
        Ok(match t {
            AttrType::MAPPED_ADDRESS => Self::MappedAddress(decode_address(t, value, None)?),
            AttrType::XOR_MAPPED_ADDRESS => {
                Self::XorMappedAddress(decode_address(t, value, Some(tid))?)
            }
            AttrType::XOR_PEER_ADDRESS => {
                Self::XorPeerAddress(decode_address(t, value, Some(tid))?)
            }
            AttrType::XOR_RELAYED_ADDRESS => {
                Self::XorRelayedAddress(decode_address(t, value, Some(tid))?)
            }
            AttrType::ALTERNATE_SERVER => Self::AlternateServer(decode_address(t, value, None)?),
            AttrType::RESPONSE_ORIGIN => Self::ResponseOrigin(decode_address(t, value, None)?),
            AttrType::OTHER_ADDRESS => Self::OtherAddress(decode_address(t, value, None)?),
            AttrType::USERNAME => Self::Username(decode_text(t, value, MAX_USERNAME_LEN)?),
            AttrType::USERHASH => Self::Userhash(value.try_into().map_err(|_| bad)?),
            AttrType::REALM => Self::Realm(decode_text(t, value, MAX_TEXT_LEN)?),
            AttrType::NONCE => Self::Nonce(decode_text(t, value, MAX_TEXT_LEN)?),
            AttrType::SOFTWARE => Self::Software(decode_text(t, value, MAX_TEXT_LEN)?),
            AttrType::ALTERNATE_DOMAIN => {
                Self::AlternateDomain(decode_text(t, value, MAX_DOMAIN_LEN)?)
            }
            AttrType::PASSWORD_ALGORITHMS => {
                Self::PasswordAlgorithms(PasswordAlgorithms::validate(value)?)
            }
            AttrType::PASSWORD_ALGORITHM => {
                let (entry, rest) = split_algorithm(value).ok_or(bad)?;
                if !rest.is_empty() {
                    return Err(bad);
                }
                Self::PasswordAlgorithm(entry)
            }
            AttrType::ERROR_CODE => {
                let (code, reason) = decode_error_code(t, value)?;
                Self::ErrorCode(ErrorCodeAttr { code, reason })
            }
            AttrType::UNKNOWN_ATTRIBUTES => {
                if !value.len().is_multiple_of(2) {
                    return Err(bad);
                }
                Self::UnknownAttributes(AttrTypeList(value))
            }
            AttrType::LIFETIME => Self::Lifetime(be32(fixed::<4>(t, value)?)),
            AttrType::CHANNEL_NUMBER => {
                // RFC 8656 §18.1: "a 16-bit unsigned integer followed by a two-octet RFFU
                // (Reserved For Future Use) field".
                let v = fixed::<4>(t, value)?;
                Self::ChannelNumber(ChannelNumber::new(be16(v)).ok_or(bad)?)
            }
            AttrType::DATA => Self::Data(Payload(value)),
            AttrType::REQUESTED_TRANSPORT => {
                let [proto, ..] = *fixed::<4>(t, value)?;
                Self::RequestedTransport(TransportProtocol::new(proto))
            }
            AttrType::DONT_FRAGMENT => {
                fixed::<0>(t, value)?;
                Self::DontFragment
            }
            AttrType::REQUESTED_ADDRESS_FAMILY => {
                let [family, ..] = *fixed::<4>(t, value)?;
                Self::RequestedAddressFamily(AddressFamily::new(family))
            }
            AttrType::ADDITIONAL_ADDRESS_FAMILY => {
                let [family, ..] = *fixed::<4>(t, value)?;
                Self::AdditionalAddressFamily(AddressFamily::new(family))
            }
            AttrType::EVEN_PORT => {
                let [flags] = *fixed::<1>(t, value)?;
                Self::EvenPort(flags & 0x80 != 0)
            }
            AttrType::RESERVATION_TOKEN => Self::ReservationToken(*fixed::<8>(t, value)?),
            AttrType::ADDRESS_ERROR_CODE => {
                let family = AddressFamily::new(*value.first().ok_or(bad)?);
                let (code, reason) = decode_error_code(t, value)?;
                Self::AddressErrorCode {
                    family,
                    code,
                    reason,
                }
            }
            AttrType::ICMP => {
                // RFC 8656 §18.13, Figure 14: Reserved (16 bits), ICMP Type (7 bits),
                // ICMP Code (9 bits), Error Data (32 bits).
                let [_, _, t0, t1, d0, d1, d2, d3] = *fixed::<8>(t, value)?;
                let tc = u16::from_be_bytes([t0, t1]);
                Self::Icmp {
                    icmp_type: (tc >> 9) as u8,
                    code: tc & 0x01FF,
                    data: u32::from_be_bytes([d0, d1, d2, d3]),
                }
            }
            AttrType::CONNECTION_ID => Self::ConnectionId(be32(fixed::<4>(t, value)?)),
            AttrType::PRIORITY => Self::Priority(be32(fixed::<4>(t, value)?)),
            AttrType::USE_CANDIDATE => {
                fixed::<0>(t, value)?;
                Self::UseCandidate
            }
            AttrType::ICE_CONTROLLED => {
                Self::IceControlled(u64::from_be_bytes(*fixed::<8>(t, value)?))
            }
            AttrType::ICE_CONTROLLING => {
                Self::IceControlling(u64::from_be_bytes(*fixed::<8>(t, value)?))
            }
            AttrType::MESSAGE_INTEGRITY => Self::MessageIntegrity(fixed::<20>(t, value)?),
            AttrType::MESSAGE_INTEGRITY_SHA256 => {
                if !valid_sha256_len(value.len()) {
                    return Err(bad);
                }
                Self::MessageIntegritySha256(Payload(value))
            }
            AttrType::FINGERPRINT => Self::Fingerprint(be32(fixed::<4>(t, value)?)),
            attr_type => Self::Other {
                attr_type,
                value: Payload(value),
            },
        })
    }
}

/// RFC 8489 §14.6: MESSAGE-INTEGRITY-SHA256 "MUST be at least 16 bytes and at most 32 bytes"
/// and a multiple of 4 (attribute values are).
pub(crate) const fn valid_sha256_len(len: usize) -> bool {
    len >= 16 && len <= 32 && len.is_multiple_of(4)
}

pub(crate) const fn pad4(len: usize) -> usize {
    (len + 3) & !3
}

pub(crate) fn be16(b: &[u8]) -> u16 {
    match b {
        [a, c, ..] => u16::from_be_bytes([*a, *c]),
        _ => 0,
    }
}

fn be32(b: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*b)
}

fn fixed<const N: usize>(t: AttrType, v: &[u8]) -> Result<&[u8; N], StunError> {
    v.try_into().map_err(|_| StunError::InvalidAttribute(t))
}

fn decode_text(t: AttrType, v: &[u8], max: usize) -> Result<&str, StunError> {
    if v.len() > max {
        return Err(StunError::InvalidAttribute(t));
    }
    core::str::from_utf8(v).map_err(|_| StunError::InvalidAttribute(t))
}

/// ERROR-CODE (RFC 8489 §14.8): "Reserved, should be 0" (21 bits), Class (3 bits), Number
/// (8 bits), reason phrase. "The Class represents the hundreds digit of the error code. The
/// value MUST be between 3 and 6. The Number represents the binary encoding of the error code
/// modulo 100, and its value MUST be between 0 and 99." ADDRESS-ERROR-CODE shares the layout
/// with a family in the first byte.
fn decode_error_code(t: AttrType, v: &[u8]) -> Result<(ErrorCode, &str), StunError> {
    let bad = StunError::InvalidAttribute(t);
    let (&[_, _, class, number], reason) = v.split_first_chunk::<4>().ok_or(bad)?;
    let class = u16::from(class & 0x07);
    let number = u16::from(number);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(bad);
    }
    let code = ErrorCode::new(class * 100 + number).ok_or(bad)?;
    Ok((code, decode_text(t, reason, MAX_TEXT_LEN)?))
}

/// MAPPED-ADDRESS layout (RFC 8489 §14.1): a zero byte, family (0x01 IPv4, 0x02 IPv6), port,
/// then a 32-bit or 128-bit address. XOR-MAPPED-ADDRESS (§14.2): "X-Port is computed by XOR'ing
/// the mapped port with the most significant 16 bits of the magic cookie. If the IP address
/// family is IPv4, X-Address is computed by XOR'ing the mapped IP address with the magic
/// cookie. If the IP address family is IPv6, X-Address is computed by XOR'ing the mapped IP
/// address with the concatenation of the magic cookie and the 96-bit transaction ID."
pub(crate) fn decode_address(
    t: AttrType,
    v: &[u8],
    xor: Option<&TransactionId>,
) -> Result<SocketAddr, StunError> {
    let bad = StunError::InvalidAttribute(t);
    let (&[_, family, p0, p1], addr) = v.split_first_chunk::<4>().ok_or(bad)?;
    let mut port = u16::from_be_bytes([p0, p1]);
    let mask = xor_mask(xor);
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    match (family, addr.len()) {
        (0x01, 4) => {
            let mut a = [0u8; 4];
            for ((o, b), m) in a.iter_mut().zip(addr).zip(mask) {
                *o = b ^ m;
            }
            Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a), port)))
        }
        (0x02, 16) => {
            let mut a = [0u8; 16];
            for ((o, b), m) in a.iter_mut().zip(addr).zip(mask) {
                *o = b ^ m;
            }
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a),
                port,
                0,
                0,
            )))
        }
        _ => Err(bad),
    }
}

/// Appends the address value (8 or 20 bytes), XORed when `xor` is given.
pub(crate) fn encode_address(out: &mut Vec<u8>, addr: SocketAddr, xor: Option<&TransactionId>) {
    let mask = xor_mask(xor);
    let port = if xor.is_some() {
        addr.port() ^ (MAGIC_COOKIE >> 16) as u16
    } else {
        addr.port()
    };
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&[0, 0x01]);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend(ip.octets().iter().zip(mask).map(|(b, m)| b ^ m));
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&[0, 0x02]);
            out.extend_from_slice(&port.to_be_bytes());
            out.extend(ip.octets().iter().zip(mask).map(|(b, m)| b ^ m));
        }
    }
}

/// The XOR mask: magic cookie then transaction id, or zeros.
fn xor_mask(xor: Option<&TransactionId>) -> [u8; 16] {
    let mut mask = [0u8; 16];
    if let Some(tid) = xor {
        let (cookie, id) = mask.split_at_mut(4);
        cookie.copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        id.copy_from_slice(tid.as_bytes());
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: TransactionId = TransactionId::new([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    #[test]
    fn xor_address_round_trips_v4_and_v6() {
        for a in [
            "192.0.2.1:32853",
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            "[::ffff:192.0.2.9]:9",
            "0.0.0.0:0",
            "[::]:65535",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            for xor in [None, Some(&TID)] {
                let mut v = Vec::new();
                encode_address(&mut v, addr, xor);
                assert_eq!(
                    decode_address(AttrType::XOR_MAPPED_ADDRESS, &v, xor).unwrap(),
                    addr
                );
            }
        }
    }

    #[test]
    fn address_rejects_wrong_sizes_and_families() {
        let t = AttrType::MAPPED_ADDRESS;
        assert!(decode_address(t, &[0, 1, 0, 0, 1, 2, 3], None).is_err());
        assert!(decode_address(t, &[0, 3, 0, 0, 1, 2, 3, 4], None).is_err());
        assert!(decode_address(t, &[0, 2, 0, 0, 1, 2, 3, 4], None).is_err());
        assert!(decode_address(t, &[0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], None).is_err());
        assert!(decode_address(t, &[], None).is_err());
    }

    #[test]
    fn error_code_ranges() {
        let t = AttrType::ERROR_CODE;
        let ok = Attribute::decode(t, b"\x00\x00\x04\x26Stale Nonce", &TID).unwrap();
        assert_eq!(
            ok,
            Attribute::ErrorCode(ErrorCodeAttr {
                code: ErrorCode::STALE_NONCE,
                reason: "Stale Nonce"
            })
        );
        // Reserved bits are ignored.
        assert!(Attribute::decode(t, b"\xff\xff\xfc\x00", &TID).is_ok());
        assert!(Attribute::decode(t, b"\x00\x00\x02\x00", &TID).is_err()); // class 2
        assert!(Attribute::decode(t, b"\x00\x00\x07\x00", &TID).is_err()); // class 7
        assert!(Attribute::decode(t, b"\x00\x00\x04\x64", &TID).is_err()); // number 100
        assert!(Attribute::decode(t, b"\x00\x00\x04", &TID).is_err());
        assert!(Attribute::decode(t, b"\x00\x00\x04\x00\xff", &TID).is_err()); // not UTF-8
    }

    #[test]
    fn password_algorithms_entries() {
        let v = [
            0x7f, 0xff, 0x00, 0x03, 0xaa, 0xbb, 0xcc, 0x00, 0x00, 0x02, 0x00, 0x00,
        ];
        let Attribute::PasswordAlgorithms(list) =
            Attribute::decode(AttrType::PASSWORD_ALGORITHMS, &v, &TID).unwrap()
        else {
            panic!("wrong variant")
        };
        let entries: Vec<_> = list.iter().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].params.as_bytes(), &[0xaa, 0xbb, 0xcc]);
        assert_eq!(entries[1].algorithm, PasswordAlgorithm::SHA256);
        assert!(
            Attribute::decode(
                AttrType::PASSWORD_ALGORITHMS,
                &[0, 2, 0xff, 0xff, 0, 0],
                &TID
            )
            .is_err()
        );
        assert!(Attribute::decode(AttrType::PASSWORD_ALGORITHMS, &[0, 2, 0], &TID).is_err());
    }

    #[test]
    fn payload_debug_prints_length() {
        assert_eq!(format!("{:?}", Payload(&[1, 2, 3])), "Payload(len=3)");
    }
}
