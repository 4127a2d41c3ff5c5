//! Builder behaviour and end-to-end flows a server and client run on top of the codec:
//! 420 with UNKNOWN-ATTRIBUTES, the 401 → authenticated retry → 438 flow with stateless
//! nonces, TURN REST credentials, integrity tails in every combination.

use ringwire_stun::{
    AttrType, Attribute, ChannelNumber, Class, ErrorCode, LongTermKey, MessageBuilder, MessageType,
    Method, Nonce, Payload, RestCredentials, StunError, StunMessage, TransactionId,
    TransportProtocol,
};

const TID: TransactionId = TransactionId::new([9; 12]);
const REALM: &str = "example.org";

#[test]
fn tail_order_is_enforced() {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, TID);
    b.message_integrity(b"k").software("late");
    assert_eq!(
        b.finish(),
        Err(StunError::AttributeOrder(AttrType::SOFTWARE))
    );
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, TID);
    b.fingerprint().fingerprint();
    assert_eq!(
        b.finish(),
        Err(StunError::AttributeOrder(AttrType::FINGERPRINT))
    );
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, TID);
    b.message_integrity_sha256(b"k").message_integrity(b"k");
    assert_eq!(
        b.finish(),
        Err(StunError::AttributeOrder(AttrType::MESSAGE_INTEGRITY))
    );
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, TID);
    b.fingerprint().raw_attribute(AttrType::new(0x7777), b"x");
    assert_eq!(
        b.finish(),
        Err(StunError::AttributeOrder(AttrType::new(0x7777)))
    );
    assert!(out.is_empty());
}

#[test]
fn every_integrity_tail_verifies_even_after_a_prefix() {
    let key = LongTermKey::md5("user", REALM, "pass").unwrap();
    for prefix in 0..4 {
        let mut out = vec![0xEE; prefix]; // e.g. bytes of the previous frame in a stream buffer
        let mut b = MessageBuilder::new(
            &mut out,
            MessageType::new(Method::REFRESH, Class::Request),
            TID,
        );
        b.lifetime(0)
            .username("user")
            .realm(REALM)
            .nonce("abc")
            .message_integrity(key.as_bytes())
            .message_integrity_sha256_truncated(key.as_bytes(), 16)
            .fingerprint();
        let n = b.finish().unwrap();
        assert_eq!(n, out.len() - prefix);
        let msg = StunMessage::parse(&out[prefix..]).unwrap();
        msg.verify_integrity(key.as_bytes()).unwrap();
        msg.verify_integrity_sha256(key.as_bytes()).unwrap();
        msg.verify_fingerprint().unwrap();
        assert_eq!(msg.message_integrity_sha256().unwrap().len(), 16);
        assert_eq!(msg.lifetime().unwrap(), Some(0));

        // Any change to a covered byte breaks all three.
        let mut bad = out[prefix..].to_vec();
        bad[27] ^= 1; // inside LIFETIME
        let msg = StunMessage::parse(&bad).unwrap();
        assert_eq!(
            msg.verify_integrity(key.as_bytes()),
            Err(StunError::IntegrityMismatch)
        );
        assert_eq!(
            msg.verify_integrity_sha256(key.as_bytes()),
            Err(StunError::IntegrityMismatch)
        );
        assert_eq!(
            msg.verify_fingerprint(),
            Err(StunError::FingerprintMismatch)
        );
    }
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, TID);
    b.message_integrity_sha256_truncated(b"k", 18);
    assert_eq!(
        b.finish(),
        Err(StunError::InvalidAttribute(
            AttrType::MESSAGE_INTEGRITY_SHA256
        ))
    );
}

#[test]
fn unknown_comprehension_required_attributes_get_420() {
    let mut req = Vec::new();
    let mut b = MessageBuilder::new(
        &mut req,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TID,
    );
    b.requested_transport(TransportProtocol::UDP)
        .raw_attribute(AttrType::new(0x7777), b"a")
        .raw_attribute(AttrType::CHANGE_REQUEST, &[0, 0, 0, 6]) // RFC 5780: not implemented here
        .raw_attribute(AttrType::new(0x7777), b"b")
        .raw_attribute(AttrType::new(0x8999), b"optional, ignored");
    b.finish().unwrap();
    let msg = StunMessage::parse(&req).unwrap();
    let unknown: Vec<_> = msg.unknown_comprehension_required().collect();
    assert_eq!(unknown, [AttrType::new(0x7777), AttrType::CHANGE_REQUEST]);
    assert_eq!(
        msg.check_comprehension(),
        Err(StunError::UnknownComprehensionRequired)
    );
    assert_eq!(
        StunError::UnknownComprehensionRequired.error_code(),
        Some(ErrorCode::UNKNOWN_ATTRIBUTE)
    );
    // A caller that implements RFC 5780 passes its own notion of known.
    let custom: Vec<_> = msg
        .unknown_comprehension_required_by(|t| t.is_known() || t == AttrType::CHANGE_REQUEST)
        .collect();
    assert_eq!(custom, [AttrType::new(0x7777)]);

    let mut resp = Vec::new();
    let mut b = MessageBuilder::error_response(&mut resp, &msg, ErrorCode::UNKNOWN_ATTRIBUTE);
    b.unknown_attributes(msg.unknown_comprehension_required())
        .fingerprint();
    b.finish().unwrap();
    let r = StunMessage::parse(&resp).unwrap();
    assert_eq!(
        r.message_type(),
        MessageType::new(Method::ALLOCATE, Class::ErrorResponse)
    );
    assert_eq!(r.transaction_id(), TID);
    let e = r.error_code().unwrap().unwrap();
    assert_eq!(
        (e.code, e.reason),
        (ErrorCode::UNKNOWN_ATTRIBUTE, "Unknown Attribute")
    );
    assert_eq!(
        r.unknown_attributes()
            .unwrap()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        unknown
    );
}

#[test]
fn long_term_flow_with_stateless_nonces() {
    let server_key = b"per-deployment nonce key";
    let (user, password) = ("alice", "s3cret");
    let now = 1_700_000_000;

    // 1. Unauthenticated request → 401 with REALM and a fresh NONCE, no MESSAGE-INTEGRITY.
    let mut req = Vec::new();
    let mut b = MessageBuilder::new(
        &mut req,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TID,
    );
    b.requested_transport(TransportProtocol::UDP);
    b.finish().unwrap();
    let msg = StunMessage::parse(&req).unwrap();
    assert_eq!(
        msg.verify_integrity(b"any"),
        Err(StunError::MissingIntegrity)
    );
    assert_eq!(
        StunError::MissingIntegrity.error_code(),
        Some(ErrorCode::UNAUTHORIZED)
    );
    let nonce = Nonce::issue(server_key, now, 600);
    let mut resp = Vec::new();
    let mut b = MessageBuilder::error_response(&mut resp, &msg, ErrorCode::UNAUTHORIZED);
    b.realm(REALM).nonce(nonce.as_str());
    b.finish().unwrap();

    // 2. The client retries with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
    let challenge = StunMessage::parse(&resp).unwrap();
    let realm = challenge.realm().unwrap().unwrap();
    let nonce_text = challenge.nonce().unwrap().unwrap();
    let key = LongTermKey::md5(user, realm, password).unwrap();
    let tid2 = TransactionId::new([10; 12]);
    let mut req = Vec::new();
    let mut b = MessageBuilder::new(
        &mut req,
        MessageType::new(Method::ALLOCATE, Class::Request),
        tid2,
    );
    b.requested_transport(TransportProtocol::UDP)
        .username(user)
        .realm(realm)
        .nonce(nonce_text)
        .message_integrity(key.as_bytes())
        .fingerprint();
    b.finish().unwrap();

    // 3. Any core verifies: nonce from the shared key, then the key from the user's password.
    let msg = StunMessage::parse(&req).unwrap();
    Nonce::verify(server_key, msg.nonce().unwrap().unwrap(), now + 10).unwrap();
    let server_side = LongTermKey::md5(
        msg.username().unwrap().unwrap(),
        msg.realm().unwrap().unwrap(),
        password,
    )
    .unwrap();
    msg.verify_integrity(server_side.as_bytes()).unwrap();
    let wrong = LongTermKey::md5(user, REALM, "guess").unwrap();
    assert_eq!(
        msg.verify_integrity(wrong.as_bytes())
            .unwrap_err()
            .error_code(),
        Some(ErrorCode::UNAUTHORIZED)
    );

    // 4. Ten minutes later the nonce is stale: 438.
    let stale = Nonce::verify(server_key, msg.nonce().unwrap().unwrap(), now + 600).unwrap_err();
    assert_eq!(stale.error_code(), Some(ErrorCode::STALE_NONCE));
}

#[test]
fn turn_rest_credentials_end_to_end() {
    let secret = b"static-auth-secret";
    let now = 1_700_000_000;
    let username = RestCredentials::username(now + 86_400, "bob");
    let password = RestCredentials::password(secret, &username);
    let client_key = LongTermKey::md5(&username, REALM, password.as_str()).unwrap();
    let mut req = Vec::new();
    let mut b = MessageBuilder::new(
        &mut req,
        MessageType::new(Method::ALLOCATE, Class::Request),
        TID,
    );
    b.requested_transport(TransportProtocol::UDP)
        .username(&username)
        .realm(REALM)
        .nonce("n")
        .message_integrity(client_key.as_bytes());
    b.finish().unwrap();
    let msg = StunMessage::parse(&req).unwrap();
    let user = msg.username().unwrap().unwrap();
    let pw = RestCredentials::verify(secret, user, now).unwrap();
    msg.verify_integrity(
        LongTermKey::md5(user, REALM, pw.as_str())
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        RestCredentials::verify(secret, user, now + 86_400),
        Err(StunError::CredentialsExpired)
    );
}

#[test]
fn typed_attributes_round_trip_through_the_builder() {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(
        &mut out,
        MessageType::new(Method::CHANNEL_BIND, Class::Request),
        TID,
    );
    let ch = ChannelNumber::new(0x4abc).unwrap();
    b.channel_number(ch)
        .xor_peer_address("[2001:db8::1]:9".parse().unwrap())
        .data(&[1, 2, 3])
        .alternate_domain("turn.example.org");
    b.finish().unwrap();
    let msg = StunMessage::parse(&out).unwrap();
    assert_eq!(msg.channel_number().unwrap(), Some(ch));
    assert_eq!(msg.data().unwrap(), Some(Payload(&[1, 2, 3])));
    assert_eq!(msg.alternate_domain().unwrap(), Some("turn.example.org"));
    let data = msg.decode(AttrType::DATA).unwrap().unwrap();
    assert_eq!(
        format!("{data:?}"),
        "Data(Payload(len=3))",
        "payload Debug prints the length"
    );
    assert!(matches!(
        msg.decode(AttrType::XOR_PEER_ADDRESS).unwrap(),
        Some(Attribute::XorPeerAddress(_))
    ));
    assert!(format!("{msg:?}").contains("DATA)(len=3)"));
    // A CHANNEL-NUMBER outside 0x4000–0x7FFF is malformed (400).
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(
        &mut out,
        MessageType::new(Method::CHANNEL_BIND, Class::Request),
        TID,
    );
    b.raw_attribute(AttrType::CHANNEL_NUMBER, &[0x3f, 0xff, 0, 0]);
    b.finish().unwrap();
    let e = StunMessage::parse(&out)
        .unwrap()
        .channel_number()
        .unwrap_err();
    assert_eq!(e, StunError::InvalidAttribute(AttrType::CHANNEL_NUMBER));
    assert_eq!(e.error_code(), Some(ErrorCode::BAD_REQUEST));
}
