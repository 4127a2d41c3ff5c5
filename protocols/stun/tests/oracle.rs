//! stun-rs (research/crates.md §10) as a differential oracle: messages we build decode there
//! with the same attribute values and valid integrity/fingerprint, and messages stun-rs builds
//! parse here with the same values and verify here.

use std::net::SocketAddr;

use ringwire_stun::{
    AddressFamily, AlgorithmParams, Attribute, ChannelNumber, ErrorCode, LongTermKey,
    MessageBuilder, MessageType, Method, Nonce, PasswordAlgorithm, Payload, SecurityFeatures,
    StunMessage, TransactionId, TransportProtocol, short_term_key, userhash,
};
use stun_rs::attributes::StunAttribute as Theirs;

const SHORT_PW: &str = "VOkJxbRl1RmTxUk/WvJxBt";
const USER: &str = "user";
const REALM: &str = "example.org";
const PW: &str = "pass";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tid(n: u8) -> TransactionId {
    TransactionId::new([n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, n])
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Our attribute as (type, value text); integrity and fingerprint are checked separately.
fn norm_ours(a: &Attribute<'_>) -> Option<(u16, String)> {
    let v = match *a {
        Attribute::MappedAddress(s)
        | Attribute::XorMappedAddress(s)
        | Attribute::XorPeerAddress(s)
        | Attribute::XorRelayedAddress(s)
        | Attribute::AlternateServer(s)
        | Attribute::ResponseOrigin(s)
        | Attribute::OtherAddress(s) => s.to_string(),
        Attribute::Username(s)
        | Attribute::Realm(s)
        | Attribute::Nonce(s)
        | Attribute::Software(s) => s.to_owned(),
        Attribute::Userhash(h) => hex(h),
        Attribute::PasswordAlgorithms(l) => l
            .iter()
            .map(|p| format!("{}:{},", p.algorithm.get(), hex(p.params.as_bytes())))
            .collect(),
        Attribute::PasswordAlgorithm(p) => {
            format!("{}:{},", p.algorithm.get(), hex(p.params.as_bytes()))
        }
        Attribute::ErrorCode(e) => format!("{} {}", e.code.get(), e.reason),
        Attribute::UnknownAttributes(l) => l.iter().map(|t| format!("{:04x},", t.get())).collect(),
        Attribute::Lifetime(s) => s.to_string(),
        Attribute::ChannelNumber(c) => c.get().to_string(),
        Attribute::Data(d) => hex(d.as_bytes()),
        Attribute::RequestedTransport(p) => p.get().to_string(),
        Attribute::DontFragment | Attribute::UseCandidate => String::new(),
        Attribute::RequestedAddressFamily(f) | Attribute::AdditionalAddressFamily(f) => {
            f.get().to_string()
        }
        Attribute::EvenPort(r) => r.to_string(),
        Attribute::ReservationToken(t) => hex(&t),
        Attribute::AddressErrorCode {
            family,
            code,
            reason,
        } => format!("{} {} {}", family.get(), code.get(), reason),
        Attribute::Icmp {
            icmp_type,
            code,
            data,
        } => format!("{icmp_type} {code} {}", hex(&data.to_be_bytes())),
        Attribute::Priority(p) => p.to_string(),
        Attribute::IceControlled(v) | Attribute::IceControlling(v) => v.to_string(),
        _ => return None,
    };
    Some((a.attr_type().get(), v))
}

fn family(f: stun_rs::AddressFamily) -> u8 {
    match f {
        stun_rs::AddressFamily::IPv4 => 1,
        stun_rs::AddressFamily::IPv6 => 2,
    }
}

fn algorithm(a: &stun_rs::attributes::stun::PasswordAlgorithm) -> String {
    format!(
        "{}:{},",
        u16::from(a.algorithm()),
        hex(a.parameters().unwrap_or(&[]))
    )
}

/// stun-rs's attribute in the same form.
fn norm_theirs(a: &Theirs) -> Option<(u16, String)> {
    let v = match a {
        Theirs::AlternateServer(x) => x.socket_address().to_string(),
        Theirs::MappedAddress(x) => x.socket_address().to_string(),
        Theirs::XorMappedAddress(x) => x.socket_address().to_string(),
        Theirs::XorPeerAddress(x) => x.socket_address().to_string(),
        Theirs::XorRelayedAddress(x) => x.socket_address().to_string(),
        Theirs::ResponseOrigin(x) => x.socket_address().to_string(),
        Theirs::OtherAddress(x) => x.socket_address().to_string(),
        Theirs::UserName(x) => x.as_str().to_owned(),
        Theirs::Realm(x) => x.as_str().to_owned(),
        Theirs::Nonce(x) => x.as_str().to_owned(),
        Theirs::Software(x) => x.as_str().to_owned(),
        Theirs::UserHash(x) => hex(x.hash()),
        Theirs::PasswordAlgorithms(x) => x.iter().map(algorithm).collect(),
        Theirs::PasswordAlgorithm(x) => algorithm(x),
        Theirs::ErrorCode(x) => format!(
            "{} {}",
            x.error_code().error_code(),
            x.error_code().reason()
        ),
        Theirs::UnknownAttributes(x) => x.iter().map(|t| format!("{t:04x},")).collect(),
        Theirs::LifeTime(x) => x.as_u32().to_string(),
        Theirs::ChannelNumber(x) => x.number().to_string(),
        Theirs::Data(x) => hex(x.as_bytes()),
        Theirs::RequestedTrasport(x) => x.protocol().as_u8().to_string(),
        Theirs::DontFragment(_) | Theirs::UseCandidate(_) => String::new(),
        Theirs::RequestedAddressFamily(x) => family(x.family()).to_string(),
        Theirs::AdditionalAddressFamily(x) => family(x.family()).to_string(),
        Theirs::EvenPort(x) => x.reserve().to_string(),
        Theirs::ReservationToken(x) => hex(x.token()),
        Theirs::AddressErrorCode(x) => {
            format!(
                "{} {} {}",
                family(x.family()),
                x.error_code().error_code(),
                x.error_code().reason()
            )
        }
        Theirs::Icmp(x) => format!(
            "{} {} {}",
            x.icmp_type().get(),
            x.icmp_code().get(),
            hex(x.error_data())
        ),
        Theirs::Priority(x) => x.as_u32().to_string(),
        Theirs::IceControlled(x) => x.as_u64().to_string(),
        Theirs::IceControlling(x) => x.as_u64().to_string(),
        _ => return None,
    };
    Some((a.attribute_type().as_u16(), v))
}

fn ours(bytes: &[u8]) -> Vec<(u16, String)> {
    let msg = StunMessage::parse(bytes).unwrap();
    let tid = msg.transaction_id();
    msg.attributes()
        .filter_map(|a| norm_ours(&a.decode(&tid).unwrap()))
        .collect()
}

/// Decodes with stun-rs, validating MESSAGE-INTEGRITY(-SHA256) with `key` and FINGERPRINT.
fn theirs(
    bytes: &[u8],
    key: Option<stun_rs::HMACKey>,
) -> (stun_rs::StunMessage, Vec<(u16, String)>) {
    let mut ctx = stun_rs::DecoderContextBuilder::default().with_validation();
    if let Some(k) = key {
        ctx = ctx.with_key(k);
    }
    let decoder = stun_rs::MessageDecoderBuilder::default()
        .with_context(ctx.build())
        .build();
    let (msg, size) = decoder
        .decode(bytes)
        .unwrap_or_else(|e| panic!("stun-rs rejects {}: {e:?}", hex(bytes)));
    assert_eq!(size, bytes.len());
    let attrs = msg.attributes().iter().filter_map(norm_theirs).collect();
    (msg, attrs)
}

fn short_key() -> stun_rs::HMACKey {
    stun_rs::HMACKey::new_short_term(SHORT_PW).unwrap()
}

fn long_key(alg: stun_rs::AlgorithmId) -> stun_rs::HMACKey {
    stun_rs::HMACKey::new_long_term(USER, REALM, PW, stun_rs::Algorithm::from(alg)).unwrap()
}

/// Builds a message with our builder.
fn build(t: MessageType, id: TransactionId, f: impl FnOnce(&mut MessageBuilder<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, t, id);
    f(&mut b);
    b.finish().unwrap();
    out
}

fn check_ours_in_theirs(bytes: &[u8], key: Option<stun_rs::HMACKey>, expect_len: usize) {
    let mine = ours(bytes);
    assert_eq!(mine.len(), expect_len, "{mine:?}");
    let (msg, theirs) = theirs(bytes, key);
    assert_eq!(mine, theirs);
    let parsed = StunMessage::parse(bytes).unwrap();
    assert_eq!(
        msg.transaction_id().as_bytes(),
        parsed.transaction_id().as_bytes()
    );
    assert_eq!(msg.method().as_u16(), parsed.method().get());
}

#[test]
fn our_messages_decode_in_stun_rs() {
    let short = short_term_key(SHORT_PW).unwrap().into_owned();
    let md5 = LongTermKey::md5(USER, REALM, PW).unwrap();
    let sha = LongTermKey::new(PasswordAlgorithm::SHA256, USER, REALM, PW).unwrap();
    let nonce = Nonce::issue_with(
        b"k",
        1000,
        600,
        Some(SecurityFeatures::PASSWORD_ALGORITHMS),
        b"",
    );
    let both = [
        AlgorithmParams {
            algorithm: PasswordAlgorithm::SHA256,
            params: Payload(&[]),
        },
        AlgorithmParams {
            algorithm: PasswordAlgorithm::MD5,
            params: Payload(&[]),
        },
    ];

    let m = build(MessageType::BINDING_SUCCESS, tid(1), |b| {
        b.xor_mapped_address(addr("203.0.113.5:40000"))
            .mapped_address(addr("[2001:db8::7]:3478"))
            .response_origin(addr("192.0.2.10:3478"))
            .other_address(addr("192.0.2.11:3479"))
            .software("ringwire 0.1")
            .message_integrity(short.as_bytes())
            .fingerprint();
    });
    check_ours_in_theirs(&m, Some(short_key()), 5);

    let m = build(MessageType::BINDING_REQUEST, tid(2), |b| {
        b.username("evtj:h6vY")
            .priority(0x6e00_01ff)
            .ice_controlling(0x0102_0304_0506_0708)
            .use_candidate()
            .message_integrity(short.as_bytes())
            .fingerprint();
    });
    check_ours_in_theirs(&m, Some(short_key()), 4);

    let m = build(MessageType::BINDING_ERROR, tid(3), |b| {
        b.error_code(ErrorCode::UNKNOWN_ATTRIBUTE, "Unknown Attribute")
            .unknown_attributes([0x7777, 0x0003, 0x0027].map(ringwire_stun::AttrType::new))
            .software("ringwire")
            .fingerprint();
    });
    check_ours_in_theirs(&m, None, 3);

    let m = build(
        MessageType::new(Method::ALLOCATE, ringwire_stun::Class::ErrorResponse),
        tid(4),
        |b| {
            b.error_code(ErrorCode::UNAUTHORIZED, "Unauthorized")
                .realm(REALM)
                .nonce(nonce.as_str())
                .password_algorithms(both)
                .fingerprint();
        },
    );
    check_ours_in_theirs(&m, None, 4);

    let m = build(MessageType::BINDING_ERROR, tid(5), |b| {
        b.error_code(ErrorCode::TRY_ALTERNATE, "Try Alternate")
            .alternate_server(addr("[2001:db8::1]:3478"))
            .fingerprint();
    });
    check_ours_in_theirs(&m, None, 2);

    let m = build(
        MessageType::new(Method::ALLOCATE, ringwire_stun::Class::Request),
        tid(6),
        |b| {
            b.requested_transport(TransportProtocol::UDP)
                .lifetime(600)
                .dont_fragment()
                .even_port(true)
                .requested_address_family(AddressFamily::IPV6)
                .username(USER)
                .realm(REALM)
                .nonce(nonce.as_str())
                .message_integrity(md5.as_bytes())
                .fingerprint();
        },
    );
    check_ours_in_theirs(&m, Some(long_key(stun_rs::AlgorithmId::MD5)), 8);

    let m = build(
        MessageType::new(Method::ALLOCATE, ringwire_stun::Class::Request),
        tid(7),
        |b| {
            b.requested_transport(TransportProtocol::UDP)
                .additional_address_family(AddressFamily::IPV6)
                .reservation_token([1, 2, 3, 4, 5, 6, 7, 8])
                .fingerprint();
        },
    );
    check_ours_in_theirs(&m, None, 3);

    let m = build(
        MessageType::new(Method::ALLOCATE, ringwire_stun::Class::SuccessResponse),
        tid(8),
        |b| {
            b.xor_relayed_address(addr("198.51.100.20:49152"))
                .xor_relayed_address(addr("[2001:db8:1::20]:49153"))
                .xor_mapped_address(addr("[2001:db8:2::5]:61000"))
                .lifetime(600)
                .reservation_token([9; 8])
                .address_error_code(
                    AddressFamily::IPV6,
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Insufficient Capacity",
                )
                .message_integrity(md5.as_bytes())
                .fingerprint();
        },
    );
    check_ours_in_theirs(&m, Some(long_key(stun_rs::AlgorithmId::MD5)), 6);

    let hash = userhash(USER, REALM);
    let m = build(
        MessageType::new(Method::CHANNEL_BIND, ringwire_stun::Class::Request),
        tid(9),
        |b| {
            b.channel_number(ChannelNumber::new(0x4001).unwrap())
                .xor_peer_address(addr("[2001:db8:3::9]:5000"))
                .userhash(&hash)
                .realm(REALM)
                .nonce(nonce.as_str())
                .password_algorithms(both)
                .password_algorithm(PasswordAlgorithm::SHA256, &[])
                .message_integrity_sha256(sha.as_bytes())
                .fingerprint();
        },
    );
    check_ours_in_theirs(&m, Some(long_key(stun_rs::AlgorithmId::SHA256)), 7);

    let m = build(MessageType::SEND_INDICATION, tid(10), |b| {
        b.xor_peer_address(addr("192.0.2.50:7000"))
            .data(b"hello")
            .dont_fragment()
            .fingerprint();
    });
    check_ours_in_theirs(&m, None, 3);

    let m = build(MessageType::DATA_INDICATION, tid(11), |b| {
        b.xor_peer_address(addr("192.0.2.50:7000"))
            .icmp(3, 4, 1400)
            .data(&[])
            .fingerprint();
    });
    check_ours_in_theirs(&m, None, 3);

    let m = build(
        MessageType::new(Method::CREATE_PERMISSION, ringwire_stun::Class::Request),
        tid(12),
        |b| {
            b.xor_peer_address(addr("192.0.2.1:1"))
                .xor_peer_address(addr("192.0.2.2:2"))
                .xor_peer_address(addr("[::ffff:192.0.2.3]:3"))
                .username(USER)
                .realm(REALM)
                .nonce(nonce.as_str())
                .message_integrity(md5.as_bytes());
        },
    );
    check_ours_in_theirs(&m, Some(long_key(stun_rs::AlgorithmId::MD5)), 6);
}

/// Encodes a stun-rs message.
fn encode_theirs(msg: &stun_rs::StunMessage) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = stun_rs::MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, msg)
        .unwrap();
    buf.truncate(n);
    buf
}

fn check_theirs_in_ours(
    bytes: &[u8],
    key: Option<&[u8]>,
    their_key: Option<stun_rs::HMACKey>,
    expect_len: usize,
) {
    let msg = StunMessage::parse(bytes).unwrap();
    if msg.has_integrity() {
        msg.verify_integrity(key.unwrap()).unwrap();
    }
    if msg.has_integrity_sha256() {
        msg.verify_integrity_sha256(key.unwrap()).unwrap();
    }
    if msg.has_fingerprint() {
        msg.verify_fingerprint().unwrap();
    }
    let mine = ours(bytes);
    assert_eq!(mine.len(), expect_len, "{mine:?}");
    let (_, theirs) = theirs(bytes, their_key);
    assert_eq!(mine, theirs);
}

#[test]
fn stun_rs_messages_parse_here() {
    use stun_rs::attributes::{ice, stun, turn};
    use stun_rs::{MessageClass, StunMessageBuilder, methods};

    let id = stun_rs::TransactionId::from([7u8; 12]);
    let m = StunMessageBuilder::new(methods::BINDING, MessageClass::SuccessResponse)
        .with_transaction_id(id)
        .with_attribute(stun::XorMappedAddress::from(addr(
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        )))
        .with_attribute(stun::MappedAddress::from(addr("192.0.2.1:32853")))
        .with_attribute(stun::Software::new("test vector").unwrap())
        .with_attribute(stun::MessageIntegrity::new(short_key()))
        .with_attribute(stun::Fingerprint::default())
        .build();
    let bytes = encode_theirs(&m);
    let short = short_term_key(SHORT_PW).unwrap().into_owned();
    check_theirs_in_ours(&bytes, Some(short.as_bytes()), Some(short_key()), 3);

    let mut unknown = stun::UnknownAttributes::default();
    unknown.add(0x7777);
    unknown.add(0x0003);
    let m = StunMessageBuilder::new(methods::BINDING, MessageClass::ErrorResponse)
        .with_transaction_id(id)
        .with_attribute(stun::ErrorCode::from(
            stun_rs::ErrorCode::new(420, "Unknown Attribute").unwrap(),
        ))
        .with_attribute(unknown)
        .with_attribute(stun::Fingerprint::default())
        .build();
    check_theirs_in_ours(&encode_theirs(&m), None, None, 2);

    let md5 = LongTermKey::md5(USER, REALM, PW).unwrap();
    let m = StunMessageBuilder::new(methods::ALLOCATE, MessageClass::Request)
        .with_transaction_id(id)
        .with_attribute(turn::RequestedTrasport::new(stun_rs::protocols::UDP))
        .with_attribute(turn::LifeTime::new(3600))
        .with_attribute(turn::DontFragment::default())
        .with_attribute(turn::EvenPort::new(false))
        .with_attribute(turn::RequestedAddressFamily::new(
            stun_rs::AddressFamily::IPv4,
        ))
        .with_attribute(stun::UserName::new(USER).unwrap())
        .with_attribute(stun::Realm::new(REALM).unwrap())
        .with_attribute(stun::Nonce::new("f//499k954d6OL34oL9FSTvy64sA").unwrap())
        .with_attribute(stun::MessageIntegrity::new(long_key(
            stun_rs::AlgorithmId::MD5,
        )))
        .with_attribute(stun::Fingerprint::default())
        .build();
    check_theirs_in_ours(
        &encode_theirs(&m),
        Some(md5.as_bytes()),
        Some(long_key(stun_rs::AlgorithmId::MD5)),
        8,
    );

    let sha = LongTermKey::new(PasswordAlgorithm::SHA256, USER, REALM, PW).unwrap();
    let m = StunMessageBuilder::new(methods::CHANNEL_BIND, MessageClass::Request)
        .with_transaction_id(id)
        .with_attribute(turn::ChannelNumber::new(0x4fff))
        .with_attribute(turn::XorPeerAddress::from(addr("[2001:db8::9]:9")))
        .with_attribute(stun::UserHash::new(USER, REALM).unwrap())
        .with_attribute(stun::PasswordAlgorithm::new(stun_rs::Algorithm::from(
            stun_rs::AlgorithmId::SHA256,
        )))
        .with_attribute(stun::MessageIntegritySha256::new(long_key(
            stun_rs::AlgorithmId::SHA256,
        )))
        .with_attribute(stun::Fingerprint::default())
        .build();
    let bytes = encode_theirs(&m);
    check_theirs_in_ours(
        &bytes,
        Some(sha.as_bytes()),
        Some(long_key(stun_rs::AlgorithmId::SHA256)),
        4,
    );
    assert_eq!(
        StunMessage::parse(&bytes).unwrap().userhash().unwrap(),
        Some(&userhash(USER, REALM))
    );

    let m = StunMessageBuilder::new(methods::SEND, MessageClass::Indication)
        .with_transaction_id(id)
        .with_attribute(turn::XorPeerAddress::from(addr("192.0.2.50:7000")))
        .with_attribute(turn::Data::new(vec![1, 2, 3, 4, 5, 6, 7]))
        .with_attribute(turn::ReservationToken::from([3u8; 8]))
        .with_attribute(turn::AdditionalAddressFamily::new(
            stun_rs::AddressFamily::IPv6,
        ))
        .build();
    let bytes = encode_theirs(&m);
    check_theirs_in_ours(&bytes, None, None, 4);
    assert_eq!(
        StunMessage::parse(&bytes).unwrap().message_type(),
        MessageType::SEND_INDICATION
    );

    let m = StunMessageBuilder::new(methods::BINDING, MessageClass::Request)
        .with_transaction_id(id)
        .with_attribute(ice::Priority::new(0x6e00_01ff))
        .with_attribute(ice::IceControlled::new(42))
        .with_attribute(ice::UseCandidate::default())
        .with_attribute(stun::AlternateServer::from(addr("192.0.2.99:3478")))
        .build();
    check_theirs_in_ours(&encode_theirs(&m), None, None, 4);
}
