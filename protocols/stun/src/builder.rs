//! Building: [`MessageBuilder`] appends one message to a caller's `Vec<u8>`.

use std::net::SocketAddr;

use hmac::Mac;

use crate::attr::{
    AlgorithmParams, Attribute, MAX_DOMAIN_LEN, MAX_TEXT_LEN, MAX_USERNAME_LEN, encode_address,
    pad4, valid_sha256_len,
};
use crate::error::StunError;
use crate::integrity::{self, Covered};
use crate::message::StunMessage;
use crate::types::{
    AddressFamily, AttrType, ChannelNumber, Class, ErrorCode, HEADER_LEN, MAGIC_COOKIE,
    MessageType, PasswordAlgorithm, TransactionId, TransportProtocol,
};

/// Where the builder stands relative to the integrity attributes, which fix the order of the
/// tail: RFC 8489 §14.5–14.7 allow only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT after
/// MESSAGE-INTEGRITY, only FINGERPRINT after MESSAGE-INTEGRITY-SHA256, nothing after
/// FINGERPRINT.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Open,
    AfterIntegrity,
    AfterIntegritySha256,
    Done,
}

/// Appends one STUN message to a `Vec<u8>`: the header at [`MessageBuilder::new`], then one
/// attribute per call, keeping the header's length field current so that
/// [`MessageBuilder::message_integrity`] and [`MessageBuilder::fingerprint`] hash the right
/// bytes.
///
/// Errors are sticky: a failing call records the first error and later calls do nothing;
/// [`MessageBuilder::finish`] returns it and truncates the vector back to where the message
/// began. Add MESSAGE-INTEGRITY, then MESSAGE-INTEGRITY-SHA256, then FINGERPRINT last.
///
/// ```
/// use ringwire_stun::{MessageBuilder, MessageType, TransactionId};
/// let mut out = Vec::new();
/// let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_SUCCESS, TransactionId::new([7; 12]));
/// b.xor_mapped_address("192.0.2.1:32853".parse().unwrap()).software("ringwire").fingerprint();
/// let len = b.finish().unwrap();
/// assert_eq!(len, out.len());
/// ```
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    tid: TransactionId,
    stage: Stage,
    padding: u8,
    err: Option<StunError>,
}

impl<'b> MessageBuilder<'b> {
    /// Starts a message of type `msg_type` at the end of `buf`.
    pub fn new(buf: &'b mut Vec<u8>, msg_type: MessageType, tid: TransactionId) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&msg_type.to_u16().to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(tid.as_bytes());
        Self {
            buf,
            start,
            tid,
            stage: Stage::Open,
            padding: 0,
            err: None,
        }
    }

    /// Starts the success response to `request` (same method and transaction id).
    pub fn success_response(buf: &'b mut Vec<u8>, request: &StunMessage<'_>) -> Self {
        let t = MessageType::new(request.method(), Class::SuccessResponse);
        Self::new(buf, t, request.transaction_id())
    }

    /// Starts an error response to `request` with ERROR-CODE `code` and its standard reason
    /// phrase.
    pub fn error_response(
        buf: &'b mut Vec<u8>,
        request: &StunMessage<'_>,
        code: ErrorCode,
    ) -> Self {
        let t = MessageType::new(request.method(), Class::ErrorResponse);
        let mut b = Self::new(buf, t, request.transaction_id());
        b.error_code(code, code.reason_phrase());
        b
    }

    /// The byte used to pad values to 4 bytes (default 0). RFC 8489 §14: padding "MUST be
    /// ignored by the receiver"; RFC 5769 §2.1–2.3 pad with spaces (0x20).
    pub fn padding_byte(&mut self, byte: u8) -> &mut Self {
        self.padding = byte;
        self
    }

    /// The transaction id being written.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Ends the message: `Ok(length in bytes)`, or the first error, in which case the vector
    /// is truncated back to where the message began.
    pub fn finish(self) -> Result<usize, StunError> {
        match self.err {
            Some(e) => {
                self.buf.truncate(self.start);
                Err(e)
            }
            None => Ok(self.buf.len() - self.start),
        }
    }

    fn fail(&mut self, e: StunError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    /// Checks the tail order, then writes the header, lets `write` append the value, pads and
    /// updates the message length.
    fn put(&mut self, t: AttrType, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        if self.err.is_some() {
            return self;
        }
        let next = match (self.stage, t) {
            (Stage::Open, AttrType::MESSAGE_INTEGRITY) => Stage::AfterIntegrity,
            (Stage::Open | Stage::AfterIntegrity, AttrType::MESSAGE_INTEGRITY_SHA256) => {
                Stage::AfterIntegritySha256
            }
            (
                Stage::Open | Stage::AfterIntegrity | Stage::AfterIntegritySha256,
                AttrType::FINGERPRINT,
            ) => Stage::Done,
            (Stage::Open, _) => Stage::Open,
            _ => {
                self.fail(StunError::AttributeOrder(t));
                return self;
            }
        };
        let at = self.buf.len();
        self.buf.extend_from_slice(&t.get().to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        write(self.buf);
        let len = self.buf.len() - at - 4;
        let Ok(len16) = u16::try_from(len) else {
            self.buf.truncate(at);
            self.fail(StunError::ValueTooLong(t));
            return self;
        };
        if let Some(l) = self.buf.get_mut(at + 2..at + 4) {
            l.copy_from_slice(&len16.to_be_bytes());
        }
        let padded = at + 4 + pad4(len);
        self.buf.resize(padded, self.padding);
        if self
            .set_length(self.buf.len() - self.start - HEADER_LEN)
            .is_err()
        {
            self.buf.truncate(at);
            self.fail(StunError::MessageLengthOverflow);
            return self;
        }
        self.stage = next;
        self
    }

    fn set_length(&mut self, body: usize) -> Result<(), StunError> {
        let body = u16::try_from(body).map_err(|_| StunError::MessageLengthOverflow)?;
        let at = self.start + 2;
        self.buf
            .get_mut(at..at + 2)
            .ok_or(StunError::MessageLengthOverflow)?
            .copy_from_slice(&body.to_be_bytes());
        Ok(())
    }

    fn text(&mut self, t: AttrType, s: &str, max: usize) -> &mut Self {
        if s.len() > max {
            self.fail(StunError::ValueTooLong(t));
            return self;
        }
        self.put(t, |b| b.extend_from_slice(s.as_bytes()))
    }

    fn address(&mut self, t: AttrType, addr: SocketAddr, xor: bool) -> &mut Self {
        let tid = self.tid;
        self.put(t, |b| encode_address(b, addr, xor.then_some(&tid)))
    }

    /// XOR-MAPPED-ADDRESS: the client's reflexive address (RFC 8489 §14.2).
    ///
    /// Addresses are written with the family of the `SocketAddr` given: an IPv4 client seen
    /// through a dual-stack socket as `::ffff:a.b.c.d` must be passed canonicalised
    /// (`IpAddr::to_canonical`) to be reported as IPv4.
    pub fn xor_mapped_address(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::XOR_MAPPED_ADDRESS, addr, true)
    }

    /// MAPPED-ADDRESS, not XORed (RFC 8489 §14.1; for RFC 3489 clients).
    pub fn mapped_address(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::MAPPED_ADDRESS, addr, false)
    }

    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    pub fn xor_peer_address(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::XOR_PEER_ADDRESS, addr, true)
    }

    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    pub fn xor_relayed_address(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::XOR_RELAYED_ADDRESS, addr, true)
    }

    /// ALTERNATE-SERVER, not XORed (RFC 8489 §14.15), with error 300.
    pub fn alternate_server(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::ALTERNATE_SERVER, addr, false)
    }

    /// RESPONSE-ORIGIN, not XORed (RFC 5780 §7.3).
    pub fn response_origin(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::RESPONSE_ORIGIN, addr, false)
    }

    /// OTHER-ADDRESS, not XORed (RFC 5780 §7.4).
    pub fn other_address(&mut self, addr: SocketAddr) -> &mut Self {
        self.address(AttrType::OTHER_ADDRESS, addr, false)
    }

    /// USERNAME, at most 512 bytes (RFC 5389 §15.3: "less than 513 bytes").
    pub fn username(&mut self, username: &str) -> &mut Self {
        self.text(AttrType::USERNAME, username, MAX_USERNAME_LEN)
    }

    /// USERHASH: see [`userhash`](crate::userhash).
    pub fn userhash(&mut self, hash: &[u8; 32]) -> &mut Self {
        self.put(AttrType::USERHASH, |b| b.extend_from_slice(hash))
    }

    /// REALM, at most 763 bytes.
    pub fn realm(&mut self, realm: &str) -> &mut Self {
        self.text(AttrType::REALM, realm, MAX_TEXT_LEN)
    }

    /// NONCE, at most 763 bytes.
    pub fn nonce(&mut self, nonce: &str) -> &mut Self {
        self.text(AttrType::NONCE, nonce, MAX_TEXT_LEN)
    }

    /// SOFTWARE, at most 763 bytes.
    pub fn software(&mut self, software: &str) -> &mut Self {
        self.text(AttrType::SOFTWARE, software, MAX_TEXT_LEN)
    }

    /// ALTERNATE-DOMAIN, at most 255 bytes (RFC 8489 §14.16).
    pub fn alternate_domain(&mut self, domain: &str) -> &mut Self {
        self.text(AttrType::ALTERNATE_DOMAIN, domain, MAX_DOMAIN_LEN)
    }

    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11): each algorithm with its parameters, padded to
    /// 4 bytes, in order of preference.
    pub fn password_algorithms<'p>(
        &mut self,
        algorithms: impl IntoIterator<Item = AlgorithmParams<'p>>,
    ) -> &mut Self {
        let mut too_long = false;
        let pad = self.padding;
        self.put(AttrType::PASSWORD_ALGORITHMS, |b| {
            let value_start = b.len();
            for a in algorithms {
                too_long |= write_algorithm(b, a);
                let written = b.len() - value_start;
                b.resize(value_start + pad4(written), pad);
            }
        });
        if too_long {
            self.fail(StunError::ValueTooLong(AttrType::PASSWORD_ALGORITHMS));
        }
        self
    }

    /// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm the client chose.
    pub fn password_algorithm(&mut self, algorithm: PasswordAlgorithm, params: &[u8]) -> &mut Self {
        let mut too_long = false;
        let a = AlgorithmParams {
            algorithm,
            params: crate::Payload(params),
        };
        self.put(AttrType::PASSWORD_ALGORITHM, |b| {
            too_long = write_algorithm(b, a)
        });
        if too_long {
            self.fail(StunError::ValueTooLong(AttrType::PASSWORD_ALGORITHM));
        }
        self
    }

    /// ERROR-CODE (RFC 8489 §14.8): class, number and a reason phrase of at most 763 bytes.
    pub fn error_code(&mut self, code: ErrorCode, reason: &str) -> &mut Self {
        if reason.len() > MAX_TEXT_LEN {
            self.fail(StunError::ValueTooLong(AttrType::ERROR_CODE));
            return self;
        }
        self.put(AttrType::ERROR_CODE, |b| {
            b.extend_from_slice(&[0, 0, code.class(), code.number()]);
            b.extend_from_slice(reason.as_bytes());
        })
    }

    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13), for a 420 response.
    pub fn unknown_attributes(&mut self, types: impl IntoIterator<Item = AttrType>) -> &mut Self {
        self.put(AttrType::UNKNOWN_ATTRIBUTES, |b| {
            for t in types {
                b.extend_from_slice(&t.get().to_be_bytes());
            }
        })
    }

    /// LIFETIME in seconds (RFC 8656 §18.2).
    pub fn lifetime(&mut self, seconds: u32) -> &mut Self {
        self.put(AttrType::LIFETIME, |b| {
            b.extend_from_slice(&seconds.to_be_bytes())
        })
    }

    /// CHANNEL-NUMBER (RFC 8656 §18.1): the number then two RFFU bytes.
    pub fn channel_number(&mut self, channel: ChannelNumber) -> &mut Self {
        self.put(AttrType::CHANNEL_NUMBER, |b| {
            b.extend_from_slice(&channel.get().to_be_bytes());
            b.extend_from_slice(&[0, 0]);
        })
    }

    /// DATA (RFC 8656 §18.4).
    pub fn data(&mut self, data: &[u8]) -> &mut Self {
        self.put(AttrType::DATA, |b| b.extend_from_slice(data))
    }

    /// REQUESTED-TRANSPORT (RFC 8656 §18.8): protocol then three RFFU bytes.
    pub fn requested_transport(&mut self, protocol: TransportProtocol) -> &mut Self {
        self.put(AttrType::REQUESTED_TRANSPORT, |b| {
            b.extend_from_slice(&[protocol.get(), 0, 0, 0])
        })
    }

    /// DONT-FRAGMENT (RFC 8656 §18.9), no value.
    pub fn dont_fragment(&mut self) -> &mut Self {
        self.put(AttrType::DONT_FRAGMENT, |_| {})
    }

    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): family then three reserved bytes.
    pub fn requested_address_family(&mut self, family: AddressFamily) -> &mut Self {
        self.put(AttrType::REQUESTED_ADDRESS_FAMILY, |b| {
            b.extend_from_slice(&[family.get(), 0, 0, 0])
        })
    }

    /// ADDITIONAL-ADDRESS-FAMILY (RFC 8656 §18.11): family then three reserved bytes.
    pub fn additional_address_family(&mut self, family: AddressFamily) -> &mut Self {
        self.put(AttrType::ADDITIONAL_ADDRESS_FAMILY, |b| {
            b.extend_from_slice(&[family.get(), 0, 0, 0])
        })
    }

    /// EVEN-PORT (RFC 8656 §18.7): one byte, the R bit first.
    pub fn even_port(&mut self, reserve_next: bool) -> &mut Self {
        self.put(AttrType::EVEN_PORT, |b| {
            b.push(if reserve_next { 0x80 } else { 0 })
        })
    }

    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    pub fn reservation_token(&mut self, token: [u8; 8]) -> &mut Self {
        self.put(AttrType::RESERVATION_TOKEN, |b| b.extend_from_slice(&token))
    }

    /// ADDRESS-ERROR-CODE (RFC 8656 §18.12): family, then ERROR-CODE's layout.
    pub fn address_error_code(
        &mut self,
        family: AddressFamily,
        code: ErrorCode,
        reason: &str,
    ) -> &mut Self {
        if reason.len() > MAX_TEXT_LEN {
            self.fail(StunError::ValueTooLong(AttrType::ADDRESS_ERROR_CODE));
            return self;
        }
        self.put(AttrType::ADDRESS_ERROR_CODE, |b| {
            b.extend_from_slice(&[family.get(), 0, code.class(), code.number()]);
            b.extend_from_slice(reason.as_bytes());
        })
    }

    /// ICMP (RFC 8656 §18.13, Figure 14): 16 reserved bits, a 7-bit type, a 9-bit code, error
    /// data. `Err(InvalidAttribute(ICMP))` for a type above 127 or a code above 511.
    pub fn icmp(&mut self, icmp_type: u8, code: u16, data: u32) -> &mut Self {
        if icmp_type > 0x7F || code > 0x01FF {
            self.fail(StunError::InvalidAttribute(AttrType::ICMP));
            return self;
        }
        let tc = (u16::from(icmp_type) << 9) | code;
        self.put(AttrType::ICMP, |b| {
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&tc.to_be_bytes());
            b.extend_from_slice(&data.to_be_bytes());
        })
    }

    /// CONNECTION-ID (RFC 6062 §6.2.1).
    pub fn connection_id(&mut self, id: u32) -> &mut Self {
        self.put(AttrType::CONNECTION_ID, |b| {
            b.extend_from_slice(&id.to_be_bytes())
        })
    }

    /// PRIORITY (RFC 8445 §16.1).
    pub fn priority(&mut self, priority: u32) -> &mut Self {
        self.put(AttrType::PRIORITY, |b| {
            b.extend_from_slice(&priority.to_be_bytes())
        })
    }

    /// USE-CANDIDATE (RFC 8445 §16.1), no value.
    pub fn use_candidate(&mut self) -> &mut Self {
        self.put(AttrType::USE_CANDIDATE, |_| {})
    }

    /// ICE-CONTROLLED (RFC 8445 §16.1).
    pub fn ice_controlled(&mut self, tie_breaker: u64) -> &mut Self {
        self.put(AttrType::ICE_CONTROLLED, |b| {
            b.extend_from_slice(&tie_breaker.to_be_bytes())
        })
    }

    /// ICE-CONTROLLING (RFC 8445 §16.1).
    pub fn ice_controlling(&mut self, tie_breaker: u64) -> &mut Self {
        self.put(AttrType::ICE_CONTROLLING, |b| {
            b.extend_from_slice(&tie_breaker.to_be_bytes())
        })
    }

    /// Any attribute, value written as given (padding added). MESSAGE-INTEGRITY(-SHA256) and
    /// FINGERPRINT written this way are not computed but still fix the order of the tail.
    pub fn raw_attribute(&mut self, t: AttrType, value: &[u8]) -> &mut Self {
        self.put(t, |b| b.extend_from_slice(value))
    }

    /// Re-encodes a decoded attribute. Integrity and fingerprint values are copied, not
    /// recomputed.
    pub fn attribute(&mut self, a: &Attribute<'_>) -> &mut Self {
        match *a {
            Attribute::MappedAddress(s) => self.mapped_address(s),
            Attribute::XorMappedAddress(s) => self.xor_mapped_address(s),
            Attribute::XorPeerAddress(s) => self.xor_peer_address(s),
            Attribute::XorRelayedAddress(s) => self.xor_relayed_address(s),
            Attribute::AlternateServer(s) => self.alternate_server(s),
            Attribute::ResponseOrigin(s) => self.response_origin(s),
            Attribute::OtherAddress(s) => self.other_address(s),
            Attribute::Username(s) => self.username(s),
            Attribute::Userhash(h) => self.userhash(h),
            Attribute::Realm(s) => self.realm(s),
            Attribute::Nonce(s) => self.nonce(s),
            Attribute::Software(s) => self.software(s),
            Attribute::AlternateDomain(s) => self.alternate_domain(s),
            Attribute::PasswordAlgorithms(list) => self.password_algorithms(list.iter()),
            Attribute::PasswordAlgorithm(p) => {
                self.password_algorithm(p.algorithm, p.params.as_bytes())
            }
            Attribute::ErrorCode(e) => self.error_code(e.code, e.reason),
            Attribute::UnknownAttributes(list) => self.unknown_attributes(list.iter()),
            Attribute::Lifetime(s) => self.lifetime(s),
            Attribute::ChannelNumber(c) => self.channel_number(c),
            Attribute::Data(d) => self.data(d.as_bytes()),
            Attribute::RequestedTransport(p) => self.requested_transport(p),
            Attribute::DontFragment => self.dont_fragment(),
            Attribute::RequestedAddressFamily(f) => self.requested_address_family(f),
            Attribute::AdditionalAddressFamily(f) => self.additional_address_family(f),
            Attribute::EvenPort(r) => self.even_port(r),
            Attribute::ReservationToken(t) => self.reservation_token(t),
            Attribute::AddressErrorCode {
                family,
                code,
                reason,
            } => self.address_error_code(family, code, reason),
            Attribute::Icmp {
                icmp_type,
                code,
                data,
            } => self.icmp(icmp_type, code, data),
            Attribute::ConnectionId(id) => self.connection_id(id),
            Attribute::Priority(p) => self.priority(p),
            Attribute::UseCandidate => self.use_candidate(),
            Attribute::IceControlled(v) => self.ice_controlled(v),
            Attribute::IceControlling(v) => self.ice_controlling(v),
            Attribute::MessageIntegrity(v) => self.raw_attribute(AttrType::MESSAGE_INTEGRITY, v),
            Attribute::MessageIntegritySha256(v) => {
                self.raw_attribute(AttrType::MESSAGE_INTEGRITY_SHA256, v.as_bytes())
            }
            Attribute::Fingerprint(v) => {
                self.raw_attribute(AttrType::FINGERPRINT, &v.to_be_bytes())
            }
            Attribute::Other { attr_type, value } => {
                self.raw_attribute(attr_type, value.as_bytes())
            }
        }
    }

    /// Appends a tail attribute whose `value_len`-byte value is computed over the message so
    /// far, hashed with the header length already counting the new attribute.
    fn put_computed(
        &mut self,
        t: AttrType,
        value_len: usize,
        compute: impl FnOnce(&Covered<'_>) -> Option<[u8; 32]>,
    ) -> &mut Self {
        if self.err.is_some() {
            return self;
        }
        let value = self.buf.get(self.start..).and_then(|prefix| {
            let covered = Covered::new(prefix, prefix.len() - HEADER_LEN + 4 + value_len)?;
            compute(&covered)
        });
        match value.as_ref().and_then(|v| v.get(..value_len)) {
            Some(v) => self.put(t, |b| b.extend_from_slice(v)),
            None => {
                // Only when the message is already too long for its length field.
                self.fail(StunError::MessageLengthOverflow);
                self
            }
        }
    }

    /// MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over the message so far, with the header
    /// length covering this attribute (RFC 8489 §14.5). `key` is a
    /// [`LongTermKey`](crate::LongTermKey) or the SASLprep'd short-term password.
    pub fn message_integrity(&mut self, key: &[u8]) -> &mut Self {
        self.put_computed(AttrType::MESSAGE_INTEGRITY, 20, |c| {
            let mut out = [0u8; 32];
            out.get_mut(..20)?
                .copy_from_slice(&integrity::hmac_sha1(key, c)?.finalize().into_bytes());
            Some(out)
        })
    }

    /// MESSAGE-INTEGRITY-SHA256: HMAC-SHA256 (32 bytes) with `key` (RFC 8489 §14.6).
    pub fn message_integrity_sha256(&mut self, key: &[u8]) -> &mut Self {
        self.message_integrity_sha256_truncated(key, 32)
    }

    /// MESSAGE-INTEGRITY-SHA256 truncated to `len` bytes: 16–32, a multiple of 4
    /// (RFC 8489 §14.6).
    pub fn message_integrity_sha256_truncated(&mut self, key: &[u8], len: usize) -> &mut Self {
        if !valid_sha256_len(len) {
            self.fail(StunError::InvalidAttribute(
                AttrType::MESSAGE_INTEGRITY_SHA256,
            ));
            return self;
        }
        self.put_computed(AttrType::MESSAGE_INTEGRITY_SHA256, len, |c| {
            Some(
                integrity::hmac_sha256(key, c)?
                    .finalize()
                    .into_bytes()
                    .into(),
            )
        })
    }

    /// FINGERPRINT: CRC-32 of the message so far XOR 0x5354554E, with the header length
    /// covering this attribute (RFC 8489 §14.7). Must be the last attribute.
    pub fn fingerprint(&mut self) -> &mut Self {
        self.put_computed(AttrType::FINGERPRINT, 4, |c| {
            let mut out = [0u8; 32];
            out.get_mut(..4)?
                .copy_from_slice(&integrity::fingerprint(c).to_be_bytes());
            Some(out)
        })
    }
}

/// Writes algorithm, parameter length and parameters; returns true if the parameters are too
/// long for the 16-bit length.
fn write_algorithm(b: &mut Vec<u8>, a: AlgorithmParams<'_>) -> bool {
    let Ok(plen) = u16::try_from(a.params.len()) else {
        return true;
    };
    b.extend_from_slice(&a.algorithm.get().to_be_bytes());
    b.extend_from_slice(&plen.to_be_bytes());
    b.extend_from_slice(a.params.as_bytes());
    false
}
