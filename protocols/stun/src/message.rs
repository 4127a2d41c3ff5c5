//! Parsing: [`StunMessage`], a validated borrowed view of one message, its attribute
//! iterators, typed getters and integrity / fingerprint verification.

use core::fmt;
use std::net::SocketAddr;

use hmac::Mac;

use crate::attr::{
    AlgorithmParams, AttrTypeList, Attribute, ErrorCodeAttr, PasswordAlgorithms, Payload, be16,
    pad4, valid_sha256_len,
};
use crate::error::StunError;
use crate::integrity::{self, Covered};
use crate::types::{
    AddressFamily, AttrType, ChannelNumber, Class, HEADER_LEN, MAGIC_COOKIE, MessageType, Method,
    TransactionId, TransportProtocol,
};

/// Default for [`Limits::max_message_size`]: 16 KiB, header included. Generous for
/// MTU-sized (even jumbo-frame) TURN relaying, and the most a stream connection buffers for
/// one frame. The wire format allows up to [`MAX_WIRE_MESSAGE_SIZE`]; raise the limit to
/// relay larger UDP datagrams in Send/Data indications.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024;

/// Default for [`Limits::max_attributes`]: 64 attributes per message. RFC 8489 sets no bound;
/// real messages carry fewer than 16.
pub const DEFAULT_MAX_ATTRIBUTES: usize = 64;

/// The largest STUN message the 16-bit length field can describe: 20 + 65535 bytes.
pub const MAX_WIRE_MESSAGE_SIZE: usize = HEADER_LEN + 0xFFFF;

/// Denial-of-service bounds applied while parsing and framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (header included) or stream frame accepted, in bytes.
    pub max_message_size: usize,
    /// Most attributes accepted in one message (ignored ones after MESSAGE-INTEGRITY count).
    pub max_attributes: usize,
}

impl Limits {
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] and [`DEFAULT_MAX_ATTRIBUTES`].
    pub const DEFAULT: Self = Self {
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        max_attributes: DEFAULT_MAX_ATTRIBUTES,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Checks the 20-byte header (RFC 8489 §5, §6.3) and returns the message type and total
/// message length. Shared by the parser and the stream framer.
pub(crate) fn check_header(
    header: &[u8],
    limits: &Limits,
) -> Result<(MessageType, usize), StunError> {
    let Some(&[t0, t1, l0, l1, c0, c1, c2, c3]) = header.first_chunk::<8>() else {
        return Err(StunError::Truncated);
    };
    // RFC 8489 §5: "The most significant 2 bits of every STUN message MUST be zeroes."
    let msg_type = MessageType::from_u16(u16::from_be_bytes([t0, t1])).ok_or(StunError::NotStun)?;
    // RFC 8489 §5: "The magic cookie field MUST contain the fixed value 0x2112A442".
    if u32::from_be_bytes([c0, c1, c2, c3]) != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    // RFC 8489 §5: "Since all STUN attributes are padded to a multiple of 4 bytes, the last
    // 2 bits of this field are always zero."
    let body = usize::from(u16::from_be_bytes([l0, l1]));
    if body % 4 != 0 {
        return Err(StunError::BadLength);
    }
    let total = HEADER_LEN + body;
    if total > limits.max_message_size {
        return Err(StunError::MessageTooLarge);
    }
    Ok((msg_type, total))
}

/// A parsed STUN message borrowing the bytes it came from.
///
/// Parsing validates the header and the whole attribute list (lengths, padding, count,
/// FINGERPRINT last) once, so iteration cannot fail afterwards; attribute *values* are decoded
/// on demand by the typed getters. Attributes after MESSAGE-INTEGRITY other than
/// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are skipped by [`StunMessage::attributes`] and every
/// getter (RFC 8489 §14.5: "agents MUST ignore all other attributes that follow
/// MESSAGE-INTEGRITY"); [`StunMessage::raw_attributes`] still shows them.
#[derive(Clone, Copy)]
pub struct StunMessage<'a> {
    raw: &'a [u8],
    msg_type: MessageType,
    attr_count: usize,
    /// Offset of the first integrity attribute; later ones are ignored unless recorded below.
    ignore_from: usize,
    integrity: Option<usize>,
    integrity_sha256: Option<usize>,
    fingerprint: Option<usize>,
}

impl<'a> StunMessage<'a> {
    /// Parses one datagram holding exactly one message, with [`Limits::DEFAULT`].
    pub fn parse(datagram: &'a [u8]) -> Result<Self, StunError> {
        Self::parse_with(datagram, &Limits::DEFAULT)
    }

    /// Parses one datagram holding exactly one message: bytes beyond the length field's
    /// count give [`StunError::BadLength`].
    pub fn parse_with(datagram: &'a [u8], limits: &Limits) -> Result<Self, StunError> {
        let (msg_type, total) = check_header(
            datagram.get(..HEADER_LEN).ok_or(StunError::Truncated)?,
            limits,
        )?;
        // RFC 8489 §6.3: the agent "checks that the Message Length field is sensible": over a
        // datagram it must account for every byte.
        if datagram.len() > total {
            return Err(StunError::BadLength);
        }
        Self::walk(
            datagram.get(..total).ok_or(StunError::Truncated)?,
            msg_type,
            limits,
        )
    }

    /// Parses the message at the start of `buf` (a stream buffer); the bytes after
    /// [`StunMessage::wire_len`] are left for the next frame.
    pub fn parse_prefix(buf: &'a [u8], limits: &Limits) -> Result<Self, StunError> {
        let (msg_type, total) =
            check_header(buf.get(..HEADER_LEN).ok_or(StunError::Truncated)?, limits)?;
        Self::walk(
            buf.get(..total).ok_or(StunError::Truncated)?,
            msg_type,
            limits,
        )
    }

    /// Validates the attribute list of the complete message `raw`.
    fn walk(raw: &'a [u8], msg_type: MessageType, limits: &Limits) -> Result<Self, StunError> {
        let total = raw.len();
        let mut msg = Self {
            raw,
            msg_type,
            attr_count: 0,
            ignore_from: total,
            integrity: None,
            integrity_sha256: None,
            fingerprint: None,
        };
        let mut pos = HEADER_LEN;
        while pos < total {
            if msg.attr_count >= limits.max_attributes {
                return Err(StunError::TooManyAttributes);
            }
            let (t, len) = attr_header(raw, pos).ok_or(StunError::AttributeOverrun)?;
            // RFC 8489 §14: "the value [...] is padded to a multiple of 4 bytes"; the padding
            // must lie inside the message.
            let next = pos + 4 + pad4(len);
            if next > total {
                return Err(StunError::AttributeOverrun);
            }
            // RFC 8489 §14.7: "When present, the FINGERPRINT attribute MUST be the last
            // attribute in the message".
            if msg.fingerprint.is_some() {
                return Err(StunError::FingerprintNotLast);
            }
            match t {
                // RFC 8489 §14.5: "With the exception of the MESSAGE-INTEGRITY-SHA256 and
                // FINGERPRINT attributes, which appear after MESSAGE-INTEGRITY, agents MUST
                // ignore all other attributes that follow MESSAGE-INTEGRITY."
                AttrType::MESSAGE_INTEGRITY if msg.ignore_from == total => {
                    msg.integrity = Some(pos);
                    msg.ignore_from = pos;
                }
                // RFC 8489 §14.6: "agents MUST ignore all other attributes that follow
                // MESSAGE-INTEGRITY-SHA256, with the exception of the FINGERPRINT attribute".
                AttrType::MESSAGE_INTEGRITY_SHA256 if msg.integrity_sha256.is_none() => {
                    msg.integrity_sha256 = Some(pos);
                    msg.ignore_from = msg.ignore_from.min(pos);
                }
                AttrType::FINGERPRINT => msg.fingerprint = Some(pos),
                _ => {}
            }
            msg.attr_count += 1;
            pos = next;
        }
        Ok(msg)
    }

    /// The message's bytes (header included).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The message's size on the wire: what a stream reader consumes.
    pub fn wire_len(&self) -> usize {
        self.raw.len()
    }

    /// Method and class.
    pub fn message_type(&self) -> MessageType {
        self.msg_type
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.msg_type.method
    }

    /// The class.
    pub fn class(&self) -> Class {
        self.msg_type.class
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        let mut id = [0u8; 12];
        if let Some(src) = self.raw.get(8..HEADER_LEN) {
            id.copy_from_slice(src);
        }
        TransactionId::new(id)
    }

    /// The attributes a receiver processes, in order: everything up to MESSAGE-INTEGRITY
    /// (or MESSAGE-INTEGRITY-SHA256), then those, then FINGERPRINT.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            msg: *self,
            pos: HEADER_LEN,
            all: false,
        }
    }

    /// Every attribute on the wire, including ones RFC 8489 says to ignore.
    pub fn raw_attributes(&self) -> Attributes<'a> {
        Attributes {
            msg: *self,
            pos: HEADER_LEN,
            all: true,
        }
    }

    /// Number of attributes on the wire.
    pub fn attribute_count(&self) -> usize {
        self.attr_count
    }

    /// The first processed attribute of type `t` (RFC 8489 §14: "only the first occurrence
    /// needs to be processed by a receiver").
    pub fn get(&self, t: AttrType) -> Option<RawAttribute<'a>> {
        self.attributes().find(|a| a.attr_type == t)
    }

    /// Every processed attribute of type `t` (e.g. several XOR-PEER-ADDRESS in a
    /// CreatePermission).
    pub fn get_all(&self, t: AttrType) -> impl Iterator<Item = RawAttribute<'a>> + 'a {
        self.attributes().filter(move |a| a.attr_type == t)
    }

    /// The first processed attribute of type `t`, decoded.
    pub fn decode(&self, t: AttrType) -> Result<Option<Attribute<'a>>, StunError> {
        let tid = self.transaction_id();
        self.get(t).map(|a| a.decode(&tid)).transpose()
    }

    /// Comprehension-required attributes (0x0000–0x7FFF) this crate does not know
    /// ([`AttrType::is_known`]), each once, for a 420 answer's UNKNOWN-ATTRIBUTES.
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttrType> + 'a {
        self.unknown_comprehension_required_by(AttrType::is_known)
    }

    /// Like [`StunMessage::unknown_comprehension_required`] with the caller's notion of known.
    pub fn unknown_comprehension_required_by(
        &self,
        known: impl Fn(AttrType) -> bool + 'a,
    ) -> impl Iterator<Item = AttrType> + 'a {
        let msg = *self;
        self.attributes()
            .filter(move |a| a.attr_type.is_comprehension_required() && !known(a.attr_type))
            .filter(move |a| {
                // Each type once: skip it if it appeared earlier.
                !msg.attributes()
                    .take_while(|b| b.offset < a.offset)
                    .any(|b| b.attr_type == a.attr_type)
            })
            .map(|a| a.attr_type)
    }

    /// RFC 8489 §6.3.1: "If the request contains one or more unknown comprehension-required
    /// attributes, the server replies with an error response with an error code of 420".
    /// `Err(UnknownComprehensionRequired)` when any are present.
    pub fn check_comprehension(&self) -> Result<(), StunError> {
        match self.unknown_comprehension_required().next() {
            Some(_) => Err(StunError::UnknownComprehensionRequired),
            None => Ok(()),
        }
    }

    /// Whether a processed MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Whether a processed MESSAGE-INTEGRITY-SHA256 is present.
    pub fn has_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// Verifies MESSAGE-INTEGRITY (HMAC-SHA1) with `key` (a long-term key from
    /// [`LongTermKey`](crate::LongTermKey), or the SASLprep'd short-term password), in
    /// constant time. Attributes after it are not covered, as RFC 8489 §14.5 prescribes.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        let t = AttrType::MESSAGE_INTEGRITY;
        let pos = self.integrity.ok_or(StunError::MissingIntegrity)?;
        let value = self.value_at(pos, t)?;
        if value.len() != 20 {
            return Err(StunError::InvalidAttribute(t));
        }
        // RFC 8489 §14.5: "the length field in the STUN header [...] MUST be adjusted to point
        // to the end of the MESSAGE-INTEGRITY attribute".
        let covered = self.covered(pos, 4 + 20)?;
        let mac = integrity::hmac_sha1(key, &covered).ok_or(StunError::IntegrityMismatch)?;
        mac.verify_slice(value)
            .map_err(|_| StunError::IntegrityMismatch)
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, possibly truncated to 16–32 bytes as
    /// RFC 8489 §14.6 allows) with `key`, in constant time.
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> Result<(), StunError> {
        let t = AttrType::MESSAGE_INTEGRITY_SHA256;
        let pos = self.integrity_sha256.ok_or(StunError::MissingIntegrity)?;
        let value = self.value_at(pos, t)?;
        if !valid_sha256_len(value.len()) {
            return Err(StunError::InvalidAttribute(t));
        }
        let covered = self.covered(pos, 4 + value.len())?;
        let mac = integrity::hmac_sha256(key, &covered).ok_or(StunError::IntegrityMismatch)?;
        mac.verify_truncated_left(value)
            .map_err(|_| StunError::IntegrityMismatch)
    }

    /// Verifies whichever integrity attribute is present, preferring MESSAGE-INTEGRITY-SHA256
    /// (RFC 8489 §9.2.4 lets a server that supports it check that one).
    pub fn verify_any_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        if self.integrity_sha256.is_some() {
            self.verify_integrity_sha256(key)
        } else {
            self.verify_integrity(key)
        }
    }

    /// Verifies FINGERPRINT: `Err(MissingAttribute(FINGERPRINT))` when absent,
    /// `Err(FingerprintMismatch)` when wrong.
    pub fn verify_fingerprint(&self) -> Result<(), StunError> {
        let t = AttrType::FINGERPRINT;
        let pos = self.fingerprint.ok_or(StunError::MissingAttribute(t))?;
        let value: [u8; 4] = self
            .value_at(pos, t)?
            .try_into()
            .map_err(|_| StunError::InvalidAttribute(t))?;
        let covered = self.covered(pos, 4 + 4)?;
        if integrity::fingerprint(&covered) == u32::from_be_bytes(value) {
            Ok(())
        } else {
            Err(StunError::FingerprintMismatch)
        }
    }

    fn value_at(&self, pos: usize, t: AttrType) -> Result<&'a [u8], StunError> {
        let (_, len) = attr_header(self.raw, pos).ok_or(StunError::InvalidAttribute(t))?;
        self.raw
            .get(pos + 4..pos + 4 + len)
            .ok_or(StunError::InvalidAttribute(t))
    }

    /// The bytes before the attribute at `pos`, with the length field set to end after an
    /// attribute of `attr_len` bytes (header included) there.
    fn covered(&self, pos: usize, attr_len: usize) -> Result<Covered<'a>, StunError> {
        let prefix = self.raw.get(..pos).ok_or(StunError::Truncated)?;
        Covered::new(prefix, pos - HEADER_LEN + attr_len).ok_or(StunError::BadLength)
    }
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $t:ident => $variant:ident($out:ty);)*) => {
        impl<'a> StunMessage<'a> {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Result<Option<$out>, StunError> {
                    match self.decode(AttrType::$t)? {
                        Some(Attribute::$variant(v)) => Ok(Some(v)),
                        Some(_) => Err(StunError::InvalidAttribute(AttrType::$t)),
                        None => Ok(None),
                    }
                }
            )*
        }
    };
}

getters! {
    /// XOR-MAPPED-ADDRESS, un-XORed.
    xor_mapped_address: XOR_MAPPED_ADDRESS => XorMappedAddress(SocketAddr);
    /// MAPPED-ADDRESS.
    mapped_address: MAPPED_ADDRESS => MappedAddress(SocketAddr);
    /// The first XOR-PEER-ADDRESS, un-XORed (see [`StunMessage::xor_peer_addresses`]).
    xor_peer_address: XOR_PEER_ADDRESS => XorPeerAddress(SocketAddr);
    /// The first XOR-RELAYED-ADDRESS, un-XORed (RFC 8656 allows one per family).
    xor_relayed_address: XOR_RELAYED_ADDRESS => XorRelayedAddress(SocketAddr);
    /// ALTERNATE-SERVER.
    alternate_server: ALTERNATE_SERVER => AlternateServer(SocketAddr);
    /// RESPONSE-ORIGIN.
    response_origin: RESPONSE_ORIGIN => ResponseOrigin(SocketAddr);
    /// OTHER-ADDRESS.
    other_address: OTHER_ADDRESS => OtherAddress(SocketAddr);
    /// USERNAME.
    username: USERNAME => Username(&'a str);
    /// USERHASH.
    userhash: USERHASH => Userhash(&'a [u8; 32]);
    /// REALM.
    realm: REALM => Realm(&'a str);
    /// NONCE.
    nonce: NONCE => Nonce(&'a str);
    /// SOFTWARE.
    software: SOFTWARE => Software(&'a str);
    /// ALTERNATE-DOMAIN.
    alternate_domain: ALTERNATE_DOMAIN => AlternateDomain(&'a str);
    /// PASSWORD-ALGORITHMS.
    password_algorithms: PASSWORD_ALGORITHMS => PasswordAlgorithms(PasswordAlgorithms<'a>);
    /// PASSWORD-ALGORITHM.
    password_algorithm: PASSWORD_ALGORITHM => PasswordAlgorithm(AlgorithmParams<'a>);
    /// ERROR-CODE.
    error_code: ERROR_CODE => ErrorCode(ErrorCodeAttr<'a>);
    /// UNKNOWN-ATTRIBUTES.
    unknown_attributes: UNKNOWN_ATTRIBUTES => UnknownAttributes(AttrTypeList<'a>);
    /// LIFETIME in seconds.
    lifetime: LIFETIME => Lifetime(u32);
    /// CHANNEL-NUMBER.
    channel_number: CHANNEL_NUMBER => ChannelNumber(ChannelNumber);
    /// DATA.
    data: DATA => Data(Payload<'a>);
    /// REQUESTED-TRANSPORT.
    requested_transport: REQUESTED_TRANSPORT => RequestedTransport(TransportProtocol);
    /// REQUESTED-ADDRESS-FAMILY.
    requested_address_family: REQUESTED_ADDRESS_FAMILY => RequestedAddressFamily(AddressFamily);
    /// ADDITIONAL-ADDRESS-FAMILY.
    additional_address_family: ADDITIONAL_ADDRESS_FAMILY => AdditionalAddressFamily(AddressFamily);
    /// EVEN-PORT's R bit.
    even_port: EVEN_PORT => EvenPort(bool);
    /// RESERVATION-TOKEN.
    reservation_token: RESERVATION_TOKEN => ReservationToken([u8; 8]);
    /// CONNECTION-ID (RFC 6062).
    connection_id: CONNECTION_ID => ConnectionId(u32);
    /// PRIORITY (ICE).
    priority: PRIORITY => Priority(u32);
    /// ICE-CONTROLLED.
    ice_controlled: ICE_CONTROLLED => IceControlled(u64);
    /// ICE-CONTROLLING.
    ice_controlling: ICE_CONTROLLING => IceControlling(u64);
    /// FINGERPRINT's carried value (see [`StunMessage::verify_fingerprint`]).
    fingerprint: FINGERPRINT => Fingerprint(u32);
}

impl<'a> StunMessage<'a> {
    /// Every XOR-PEER-ADDRESS, un-XORed, in order.
    pub fn xor_peer_addresses(&self) -> impl Iterator<Item = Result<SocketAddr, StunError>> + 'a {
        self.addresses(AttrType::XOR_PEER_ADDRESS)
    }

    /// Every XOR-RELAYED-ADDRESS, un-XORed, in order.
    pub fn xor_relayed_addresses(
        &self,
    ) -> impl Iterator<Item = Result<SocketAddr, StunError>> + 'a {
        self.addresses(AttrType::XOR_RELAYED_ADDRESS)
    }

    fn addresses(&self, t: AttrType) -> impl Iterator<Item = Result<SocketAddr, StunError>> + 'a {
        let tid = self.transaction_id();
        self.get_all(t).map(move |a| match a.decode(&tid)? {
            Attribute::XorPeerAddress(s) | Attribute::XorRelayedAddress(s) => Ok(s),
            _ => Err(StunError::InvalidAttribute(t)),
        })
    }

    /// Whether DONT-FRAGMENT is present (its value must be empty).
    pub fn dont_fragment(&self) -> Result<bool, StunError> {
        self.flag(AttrType::DONT_FRAGMENT)
    }

    /// Whether USE-CANDIDATE is present (its value must be empty).
    pub fn use_candidate(&self) -> Result<bool, StunError> {
        self.flag(AttrType::USE_CANDIDATE)
    }

    fn flag(&self, t: AttrType) -> Result<bool, StunError> {
        match self.get(t) {
            Some(a) if !a.value.is_empty() => Err(StunError::InvalidAttribute(t)),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// MESSAGE-INTEGRITY's carried HMAC.
    pub fn message_integrity(&self) -> Option<&'a [u8]> {
        self.integrity
            .and_then(|p| self.value_at(p, AttrType::MESSAGE_INTEGRITY).ok())
    }

    /// MESSAGE-INTEGRITY-SHA256's carried HMAC.
    pub fn message_integrity_sha256(&self) -> Option<&'a [u8]> {
        self.integrity_sha256
            .and_then(|p| self.value_at(p, AttrType::MESSAGE_INTEGRITY_SHA256).ok())
    }
}

/// Messages are equal when their bytes are.
impl PartialEq for StunMessage<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for StunMessage<'_> {}

impl fmt::Debug for StunMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StunMessage")
            .field("type", &self.msg_type)
            .field("transaction_id", &self.transaction_id())
            .field("len", &self.raw.len())
            .field("attributes", &self.attributes())
            .finish()
    }
}

/// Reads an attribute header at `pos`: type and value length.
fn attr_header(raw: &[u8], pos: usize) -> Option<(AttrType, usize)> {
    let h = raw.get(pos..pos + 4)?;
    Some((AttrType::new(be16(h)), usize::from(be16(h.get(2..)?))))
}

/// One attribute on the wire: type, value (padding excluded) and where it starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    attr_type: AttrType,
    value: &'a [u8],
    offset: usize,
}

impl<'a> RawAttribute<'a> {
    /// The type.
    pub fn attr_type(&self) -> AttrType {
        self.attr_type
    }

    /// The value, without padding.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Offset of the attribute header from the start of the message.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Decodes the value (`tid` un-XORs addresses).
    pub fn decode(&self, tid: &TransactionId) -> Result<Attribute<'a>, StunError> {
        Attribute::decode(self.attr_type, self.value, tid)
    }
}

impl fmt::Debug for RawAttribute<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}(len={})", self.attr_type, self.value.len())
    }
}

/// Iterator over a message's attributes; see [`StunMessage::attributes`].
#[derive(Clone)]
pub struct Attributes<'a> {
    msg: StunMessage<'a>,
    pos: usize,
    all: bool,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<RawAttribute<'a>> {
        loop {
            let pos = self.pos;
            let (attr_type, len) = attr_header(self.msg.raw, pos)?;
            let value = self.msg.raw.get(pos + 4..pos + 4 + len)?;
            self.pos = pos + 4 + pad4(len);
            let m = &self.msg;
            let processed = pos < m.ignore_from
                || Some(pos) == m.integrity
                || Some(pos) == m.integrity_sha256
                || Some(pos) == m.fingerprint;
            if self.all || processed {
                return Some(RawAttribute {
                    attr_type,
                    value,
                    offset: pos,
                });
            }
        }
    }
}

impl fmt::Debug for Attributes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}
