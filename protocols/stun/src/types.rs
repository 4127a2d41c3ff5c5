//! Wire codes as newtypes with named constants, so values this crate does not name still
//! round-trip: methods, classes, message types, attribute types, error codes, transaction ids,
//! channel numbers, transport protocols, address families, password algorithms.

use core::fmt;

/// The fixed magic cookie (RFC 8489 §5): "The Magic Cookie field MUST contain the fixed value
/// 0x2112A442 in network byte order."
pub const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Size of the STUN header: type, length, magic cookie, transaction id (RFC 8489 §5).
pub const HEADER_LEN: usize = 20;

/// A STUN method: 12 bits (RFC 8489 §5). Values above 0x0FFF cannot be built.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (RFC 8489 §18.2).
    pub const BINDING: Self = Self(0x001);
    /// Allocate (RFC 8656 §17): request/response only.
    pub const ALLOCATE: Self = Self(0x003);
    /// Refresh (RFC 8656 §17): request/response only.
    pub const REFRESH: Self = Self(0x004);
    /// Send (RFC 8656 §17): indication only, message type 0x0016.
    pub const SEND: Self = Self(0x006);
    /// Data (RFC 8656 §17): indication only, message type 0x0017.
    pub const DATA: Self = Self(0x007);
    /// CreatePermission (RFC 8656 §17): request/response only.
    pub const CREATE_PERMISSION: Self = Self(0x008);
    /// ChannelBind (RFC 8656 §17): request/response only.
    pub const CHANNEL_BIND: Self = Self(0x009);
    /// Connect (RFC 6062 §6.1).
    pub const CONNECT: Self = Self(0x00A);
    /// ConnectionBind (RFC 6062 §6.1).
    pub const CONNECTION_BIND: Self = Self(0x00B);
    /// ConnectionAttempt (RFC 6062 §6.1), indication only.
    pub const CONNECTION_ATTEMPT: Self = Self(0x00C);

    /// A method from its 12-bit value; `None` above 0x0FFF.
    pub const fn new(value: u16) -> Option<Self> {
        if value <= 0x0FFF {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The 12-bit value.
    pub const fn get(self) -> u16 {
        self.0
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::BINDING => "BINDING",
            Self::ALLOCATE => "ALLOCATE",
            Self::REFRESH => "REFRESH",
            Self::SEND => "SEND",
            Self::DATA => "DATA",
            Self::CREATE_PERMISSION => "CREATE_PERMISSION",
            Self::CHANNEL_BIND => "CHANNEL_BIND",
            Self::CONNECT => "CONNECT",
            Self::CONNECTION_BIND => "CONNECTION_BIND",
            Self::CONNECTION_ATTEMPT => "CONNECTION_ATTEMPT",
            _ => return None,
        })
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Method({n})"),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

/// The message class, two bits interleaved into the message type (RFC 8489 §5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Class {
    /// 0b00.
    Request,
    /// 0b01.
    Indication,
    /// 0b10.
    SuccessResponse,
    /// 0b11.
    ErrorResponse,
}

impl Class {
    /// The two class bits C1 C0.
    pub const fn bits(self) -> u16 {
        match self {
            Self::Request => 0b00,
            Self::Indication => 0b01,
            Self::SuccessResponse => 0b10,
            Self::ErrorResponse => 0b11,
        }
    }

    /// The class from its two bits (only the low two bits are read).
    pub const fn from_bits(bits: u16) -> Self {
        match bits & 0b11 {
            0b00 => Self::Request,
            0b01 => Self::Indication,
            0b10 => Self::SuccessResponse,
            _ => Self::ErrorResponse,
        }
    }

    /// Success or error response.
    pub const fn is_response(self) -> bool {
        matches!(self, Self::SuccessResponse | Self::ErrorResponse)
    }
}

/// A message type: method and class (RFC 8489 §5, Figure 3).
///
/// ```text
///   0                 1
///   2  3  4 5 6 7 8 9 0 1 2 3 4 5
///  +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
///  |M |M |M|M|M|C|M|M|M|C|M|M|M|M|
///  |11|10|9|8|7|1|6|5|4|0|3|2|1|0|
///  +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MessageType {
    /// The method.
    pub method: Method,
    /// The class.
    pub class: Class,
}

impl MessageType {
    /// Binding request, 0x0001.
    pub const BINDING_REQUEST: Self = Self::new(Method::BINDING, Class::Request);
    /// Binding success response, 0x0101.
    pub const BINDING_SUCCESS: Self = Self::new(Method::BINDING, Class::SuccessResponse);
    /// Binding error response, 0x0111.
    pub const BINDING_ERROR: Self = Self::new(Method::BINDING, Class::ErrorResponse);
    /// Send indication, 0x0016 (not 0x0006).
    pub const SEND_INDICATION: Self = Self::new(Method::SEND, Class::Indication);
    /// Data indication, 0x0017.
    pub const DATA_INDICATION: Self = Self::new(Method::DATA, Class::Indication);

    /// A message type from method and class.
    pub const fn new(method: Method, class: Class) -> Self {
        Self { method, class }
    }

    /// The 14-bit wire value.
    pub const fn to_u16(self) -> u16 {
        let m = self.method.0;
        let c = self.class.bits();
        ((m & 0x0F80) << 2)
            | ((m & 0x0070) << 1)
            | (m & 0x000F)
            | ((c & 0b10) << 7)
            | ((c & 0b01) << 4)
    }

    /// Decodes the 16-bit type field; `None` if either of the two top bits is set
    /// (RFC 8489 §5: "The most significant 2 bits of every STUN message MUST be zeroes").
    pub const fn from_u16(value: u16) -> Option<Self> {
        if value & 0xC000 != 0 {
            return None;
        }
        let method = ((value >> 2) & 0x0F80) | ((value >> 1) & 0x0070) | (value & 0x000F);
        let class = ((value >> 7) & 0b10) | ((value >> 4) & 0b01);
        Some(Self {
            method: Method(method),
            class: Class::from_bits(class),
        })
    }
}

/// A STUN attribute type (RFC 8489 §14). 0x0000–0x7FFF are comprehension-required,
/// 0x8000–0xFFFF comprehension-optional.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(u16);

impl AttrType {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    pub const MAPPED_ADDRESS: Self = Self(0x0001);
    /// CHANGE-REQUEST (RFC 5780 §7.2); named only, not implemented (so it is "unknown": 420).
    pub const CHANGE_REQUEST: Self = Self(0x0003);
    /// USERNAME (RFC 8489 §14.3).
    pub const USERNAME: Self = Self(0x0006);
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    pub const MESSAGE_INTEGRITY: Self = Self(0x0008);
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: Self = Self(0x0009);
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    pub const UNKNOWN_ATTRIBUTES: Self = Self(0x000A);
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    pub const CHANNEL_NUMBER: Self = Self(0x000C);
    /// LIFETIME (RFC 8656 §18.2).
    pub const LIFETIME: Self = Self(0x000D);
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    pub const XOR_PEER_ADDRESS: Self = Self(0x0012);
    /// DATA (RFC 8656 §18.4).
    pub const DATA: Self = Self(0x0013);
    /// REALM (RFC 8489 §14.9).
    pub const REALM: Self = Self(0x0014);
    /// NONCE (RFC 8489 §14.10).
    pub const NONCE: Self = Self(0x0015);
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    pub const XOR_RELAYED_ADDRESS: Self = Self(0x0016);
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    pub const REQUESTED_ADDRESS_FAMILY: Self = Self(0x0017);
    /// EVEN-PORT (RFC 8656 §18.7).
    pub const EVEN_PORT: Self = Self(0x0018);
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8).
    pub const REQUESTED_TRANSPORT: Self = Self(0x0019);
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    pub const DONT_FRAGMENT: Self = Self(0x001A);
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: Self = Self(0x001C);
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    pub const PASSWORD_ALGORITHM: Self = Self(0x001D);
    /// USERHASH (RFC 8489 §14.4).
    pub const USERHASH: Self = Self(0x001E);
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: Self = Self(0x0020);
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    pub const RESERVATION_TOKEN: Self = Self(0x0022);
    /// PRIORITY (RFC 8445 §16.1).
    pub const PRIORITY: Self = Self(0x0024);
    /// USE-CANDIDATE (RFC 8445 §16.1).
    pub const USE_CANDIDATE: Self = Self(0x0025);
    /// PADDING (RFC 5780 §7.6); named only, not implemented.
    pub const PADDING: Self = Self(0x0026);
    /// RESPONSE-PORT (RFC 5780 §7.5); named only, not implemented.
    pub const RESPONSE_PORT: Self = Self(0x0027);
    /// CONNECTION-ID (RFC 6062 §6.2.1).
    pub const CONNECTION_ID: Self = Self(0x002A);
    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11).
    pub const ADDITIONAL_ADDRESS_FAMILY: Self = Self(0x8000);
    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12).
    pub const ADDRESS_ERROR_CODE: Self = Self(0x8001);
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11).
    pub const PASSWORD_ALGORITHMS: Self = Self(0x8002);
    /// ALTERNATE-DOMAIN (RFC 8489 §14.16).
    pub const ALTERNATE_DOMAIN: Self = Self(0x8003);
    /// ICMP (RFC 8656 §18.13).
    pub const ICMP: Self = Self(0x8004);
    /// SOFTWARE (RFC 8489 §14.14).
    pub const SOFTWARE: Self = Self(0x8022);
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    pub const ALTERNATE_SERVER: Self = Self(0x8023);
    /// FINGERPRINT (RFC 8489 §14.7).
    pub const FINGERPRINT: Self = Self(0x8028);
    /// ICE-CONTROLLED (RFC 8445 §16.1).
    pub const ICE_CONTROLLED: Self = Self(0x8029);
    /// ICE-CONTROLLING (RFC 8445 §16.1).
    pub const ICE_CONTROLLING: Self = Self(0x802A);
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub const RESPONSE_ORIGIN: Self = Self(0x802B);
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub const OTHER_ADDRESS: Self = Self(0x802C);

    /// An attribute type from its value.
    pub const fn new(value: u16) -> Self {
        Self(value)
    }

    /// The 16-bit value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// RFC 8489 §14: "Attributes with type values between 0x0000 and 0x7FFF are
    /// comprehension-required attributes".
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// Whether this crate decodes the attribute into a typed [`Attribute`](crate::Attribute)
    /// variant. The default notion of "known" for 420 (Unknown Attribute) answers; the
    /// RFC 5780 attributes are named but not known, so a server without RFC 5780 behaviour
    /// answers them with 420 as RFC 5780 §7.2 expects.
    pub const fn is_known(self) -> bool {
        matches!(
            self,
            Self::MAPPED_ADDRESS
                | Self::USERNAME
                | Self::MESSAGE_INTEGRITY
                | Self::ERROR_CODE
                | Self::UNKNOWN_ATTRIBUTES
                | Self::CHANNEL_NUMBER
                | Self::LIFETIME
                | Self::XOR_PEER_ADDRESS
                | Self::DATA
                | Self::REALM
                | Self::NONCE
                | Self::XOR_RELAYED_ADDRESS
                | Self::REQUESTED_ADDRESS_FAMILY
                | Self::EVEN_PORT
                | Self::REQUESTED_TRANSPORT
                | Self::DONT_FRAGMENT
                | Self::MESSAGE_INTEGRITY_SHA256
                | Self::PASSWORD_ALGORITHM
                | Self::USERHASH
                | Self::XOR_MAPPED_ADDRESS
                | Self::RESERVATION_TOKEN
                | Self::PRIORITY
                | Self::USE_CANDIDATE
                | Self::CONNECTION_ID
                | Self::ADDITIONAL_ADDRESS_FAMILY
                | Self::ADDRESS_ERROR_CODE
                | Self::PASSWORD_ALGORITHMS
                | Self::ALTERNATE_DOMAIN
                | Self::ICMP
                | Self::SOFTWARE
                | Self::ALTERNATE_SERVER
                | Self::FINGERPRINT
                | Self::ICE_CONTROLLED
                | Self::ICE_CONTROLLING
                | Self::RESPONSE_ORIGIN
                | Self::OTHER_ADDRESS
        )
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::MAPPED_ADDRESS => "MAPPED-ADDRESS",
            Self::CHANGE_REQUEST => "CHANGE-REQUEST",
            Self::USERNAME => "USERNAME",
            Self::MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
            Self::ERROR_CODE => "ERROR-CODE",
            Self::UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
            Self::CHANNEL_NUMBER => "CHANNEL-NUMBER",
            Self::LIFETIME => "LIFETIME",
            Self::XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
            Self::DATA => "DATA",
            Self::REALM => "REALM",
            Self::NONCE => "NONCE",
            Self::XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
            Self::REQUESTED_ADDRESS_FAMILY => "REQUESTED-ADDRESS-FAMILY",
            Self::EVEN_PORT => "EVEN-PORT",
            Self::REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
            Self::DONT_FRAGMENT => "DONT-FRAGMENT",
            Self::MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
            Self::PASSWORD_ALGORITHM => "PASSWORD-ALGORITHM",
            Self::USERHASH => "USERHASH",
            Self::XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
            Self::RESERVATION_TOKEN => "RESERVATION-TOKEN",
            Self::PRIORITY => "PRIORITY",
            Self::USE_CANDIDATE => "USE-CANDIDATE",
            Self::PADDING => "PADDING",
            Self::RESPONSE_PORT => "RESPONSE-PORT",
            Self::CONNECTION_ID => "CONNECTION-ID",
            Self::ADDITIONAL_ADDRESS_FAMILY => "ADDITIONAL-ADDRESS-FAMILY",
            Self::ADDRESS_ERROR_CODE => "ADDRESS-ERROR-CODE",
            Self::PASSWORD_ALGORITHMS => "PASSWORD-ALGORITHMS",
            Self::ALTERNATE_DOMAIN => "ALTERNATE-DOMAIN",
            Self::ICMP => "ICMP",
            Self::SOFTWARE => "SOFTWARE",
            Self::ALTERNATE_SERVER => "ALTERNATE-SERVER",
            Self::FINGERPRINT => "FINGERPRINT",
            Self::ICE_CONTROLLED => "ICE-CONTROLLED",
            Self::ICE_CONTROLLING => "ICE-CONTROLLING",
            Self::RESPONSE_ORIGIN => "RESPONSE-ORIGIN",
            Self::OTHER_ADDRESS => "OTHER-ADDRESS",
            _ => return None,
        })
    }
}

impl fmt::Debug for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "AttrType({n})"),
            None => write!(f, "AttrType({:#06x})", self.0),
        }
    }
}

/// A STUN error code, 300–699 (RFC 8489 §14.8: class 3–6 hundreds, number 0–99).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ErrorCode(u16);

impl ErrorCode {
    /// 300 Try Alternate (RFC 8489 §15): use the ALTERNATE-SERVER.
    pub const TRY_ALTERNATE: Self = Self(300);
    /// 400 Bad Request: malformed request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthenticated (RFC 5389 "Unauthorized"): missing or wrong credentials.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 403 Forbidden (RFC 8656 §19): refused by policy.
    pub const FORBIDDEN: Self = Self(403);
    /// 405 Mobility Forbidden (RFC 8016).
    pub const MOBILITY_FORBIDDEN: Self = Self(405);
    /// 420 Unknown Attribute: with UNKNOWN-ATTRIBUTES listing them.
    pub const UNKNOWN_ATTRIBUTE: Self = Self(420);
    /// 437 Allocation Mismatch (RFC 8656 §19).
    pub const ALLOCATION_MISMATCH: Self = Self(437);
    /// 438 Stale Nonce: retry with the NONCE in this response.
    pub const STALE_NONCE: Self = Self(438);
    /// 440 Address Family not Supported (RFC 8656 §19).
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: Self = Self(440);
    /// 441 Wrong Credentials (RFC 8656 §19).
    pub const WRONG_CREDENTIALS: Self = Self(441);
    /// 442 Unsupported Transport Protocol (RFC 8656 §19).
    pub const UNSUPPORTED_TRANSPORT_PROTOCOL: Self = Self(442);
    /// 443 Peer Address Family Mismatch (RFC 8656 §19).
    pub const PEER_ADDRESS_FAMILY_MISMATCH: Self = Self(443);
    /// 446 Connection Already Exists (RFC 6062 §6.3).
    pub const CONNECTION_ALREADY_EXISTS: Self = Self(446);
    /// 447 Connection Timeout or Failure (RFC 6062 §6.3).
    pub const CONNECTION_TIMEOUT_OR_FAILURE: Self = Self(447);
    /// 486 Allocation Quota Reached (RFC 8656 §19).
    pub const ALLOCATION_QUOTA_REACHED: Self = Self(486);
    /// 487 Role Conflict (RFC 8445 §7.3.1.1).
    pub const ROLE_CONFLICT: Self = Self(487);
    /// 500 Server Error.
    pub const SERVER_ERROR: Self = Self(500);
    /// 508 Insufficient Capacity (RFC 8656 §19).
    pub const INSUFFICIENT_CAPACITY: Self = Self(508);

    /// An error code; `None` outside 300–699.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 300 && code <= 699 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric code, e.g. 438.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The hundreds digit (the 3-bit Class field).
    pub const fn class(self) -> u8 {
        (self.0 / 100) as u8
    }

    /// The code modulo 100 (the 8-bit Number field).
    pub const fn number(self) -> u8 {
        (self.0 % 100) as u8
    }

    /// The RFC's recommended reason phrase, or "Error" for codes it does not name.
    pub const fn reason_phrase(self) -> &'static str {
        match self.0 {
            300 => "Try Alternate",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            405 => "Mobility Forbidden",
            420 => "Unknown Attribute",
            437 => "Allocation Mismatch",
            438 => "Stale Nonce",
            440 => "Address Family not Supported",
            441 => "Wrong Credentials",
            442 => "Unsupported Transport Protocol",
            443 => "Peer Address Family Mismatch",
            446 => "Connection Already Exists",
            447 => "Connection Timeout or Failure",
            486 => "Allocation Quota Reached",
            487 => "Role Conflict",
            500 => "Server Error",
            508 => "Insufficient Capacity",
            _ => "Error",
        }
    }
}

/// The 96-bit transaction id (RFC 8489 §5). The caller supplies randomness: this crate
/// has no random source.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// A transaction id from 12 bytes (which should come from a CSPRNG, RFC 8489 §5).
    pub const fn new(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    /// The 12 bytes.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransactionId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A TURN channel number, 0x4000–0x7FFF: the numbers whose first two bits (01) mark a
/// ChannelData message (RFC 5766 §11). RFC 8656 §12 narrows the numbers a client may bind
/// to 0x4000–0x4FFF; [`ChannelNumber::is_rfc8656`] checks that.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ChannelNumber(u16);

impl ChannelNumber {
    /// The first channel number, 0x4000.
    pub const MIN: Self = Self(0x4000);
    /// The last number RFC 8656 allows, 0x4FFF.
    pub const MAX_RFC8656: Self = Self(0x4FFF);
    /// The last number RFC 5766 allowed, 0x7FFF.
    pub const MAX_RFC5766: Self = Self(0x7FFF);

    /// A channel number; `None` outside 0x4000–0x7FFF.
    pub const fn new(value: u16) -> Option<Self> {
        if value >= 0x4000 && value <= 0x7FFF {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The 16-bit value.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// RFC 8656 §12: "0x4000 through 0x4FFF: These values are the allowed channel numbers".
    pub const fn is_rfc8656(self) -> bool {
        self.0 <= 0x4FFF
    }
}

/// The IANA protocol number in REQUESTED-TRANSPORT (RFC 8656 §18.8).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TransportProtocol(u8);

impl TransportProtocol {
    /// TCP, 6 (RFC 6062).
    pub const TCP: Self = Self(6);
    /// UDP, 17.
    pub const UDP: Self = Self(17);

    /// A protocol number.
    pub const fn new(value: u8) -> Self {
        Self(value)
    }

    /// The protocol number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// An address family in REQUESTED-ADDRESS-FAMILY, ADDITIONAL-ADDRESS-FAMILY and
/// ADDRESS-ERROR-CODE (RFC 8656 §18.6); the same codes as in address attributes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AddressFamily(u8);

impl AddressFamily {
    /// IPv4, 0x01.
    pub const IPV4: Self = Self(0x01);
    /// IPv6, 0x02.
    pub const IPV6: Self = Self(0x02);

    /// A family code.
    pub const fn new(value: u8) -> Self {
        Self(value)
    }

    /// The family code.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A password algorithm (RFC 8489 §18.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PasswordAlgorithm(u16);

impl PasswordAlgorithm {
    /// MD5, 0x0001: key = MD5(username ":" realm ":" password), 16 bytes.
    pub const MD5: Self = Self(0x0001);
    /// SHA-256, 0x0002: key = SHA-256(username ":" realm ":" password), 32 bytes.
    pub const SHA256: Self = Self(0x0002);

    /// An algorithm number.
    pub const fn new(value: u16) -> Self {
        Self(value)
    }

    /// The algorithm number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_bits_match_rfc_examples() {
        // RFC 8489 §5: "a Binding request has class=0b00 (request) and method=0b000000000001
        // (Binding) and is encoded into the first 16 bits as 0x0001. A Binding response has
        // class=0b10 (success response) and method=0b000000000001, and is encoded into the
        // first 16 bits as 0x0101."
        assert_eq!(MessageType::BINDING_REQUEST.to_u16(), 0x0001);
        assert_eq!(MessageType::BINDING_SUCCESS.to_u16(), 0x0101);
        assert_eq!(MessageType::BINDING_ERROR.to_u16(), 0x0111);
        assert_eq!(
            MessageType::new(Method::BINDING, Class::Indication).to_u16(),
            0x0011
        );
        assert_eq!(MessageType::SEND_INDICATION.to_u16(), 0x0016);
        assert_eq!(MessageType::DATA_INDICATION.to_u16(), 0x0017);
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::SuccessResponse).to_u16(),
            0x0103
        );
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::ErrorResponse).to_u16(),
            0x0113
        );
        assert_eq!(
            MessageType::new(Method::CHANNEL_BIND, Class::ErrorResponse).to_u16(),
            0x0119
        );
        for v in 0..=0x3FFFu16 {
            let t = MessageType::from_u16(v).unwrap();
            assert_eq!(t.to_u16(), v);
        }
        assert!(MessageType::from_u16(0x4001).is_none());
        assert!(MessageType::from_u16(0x8001).is_none());
        assert_eq!(Method::new(0x1000), None);
    }

    #[test]
    fn error_code_class_and_number() {
        let c = ErrorCode::STALE_NONCE;
        assert_eq!((c.class(), c.number()), (4, 38));
        assert_eq!(ErrorCode::new(299), None);
        assert_eq!(ErrorCode::new(700), None);
        assert_eq!(ErrorCode::new(699).map(ErrorCode::get), Some(699));
        assert_eq!(
            ErrorCode::INSUFFICIENT_CAPACITY.reason_phrase(),
            "Insufficient Capacity"
        );
    }

    #[test]
    fn channel_number_range() {
        assert_eq!(ChannelNumber::new(0x3FFF), None);
        assert_eq!(ChannelNumber::new(0x8000), None);
        assert!(ChannelNumber::new(0x4FFF).unwrap().is_rfc8656());
        assert!(!ChannelNumber::new(0x5000).unwrap().is_rfc8656());
    }
}
