//! Every DoS bound, at its value and exceeded by one.

use ringwire_stun::{
    ChannelData, ChannelNumber, DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_MESSAGE_SIZE, HEADER_LEN,
    Limits, MAX_USERNAME_LEN, MessageBuilder, MessageType, StreamFrame, StunError, StunMessage,
    TransactionId, stream_frame,
};

fn tid() -> TransactionId {
    TransactionId::new([0x42; 12])
}

/// A Send indication of exactly `total` bytes (a multiple of 4, at least 24).
fn message_of_size(total: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, MessageType::SEND_INDICATION, tid());
    b.data(&vec![0xab; total - HEADER_LEN - 4]);
    b.finish().unwrap();
    assert_eq!(out.len(), total);
    out
}

/// A Binding request with `n` SOFTWARE attributes.
fn message_with_attributes(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, tid());
    for _ in 0..n {
        b.software("x");
    }
    b.finish().unwrap();
    out
}

#[test]
fn max_message_size_default_and_one_over() {
    let at = message_of_size(DEFAULT_MAX_MESSAGE_SIZE);
    StunMessage::parse(&at).unwrap();
    assert!(matches!(
        stream_frame(&at, &Limits::DEFAULT),
        Ok(StreamFrame::Stun {
            len: DEFAULT_MAX_MESSAGE_SIZE
        })
    ));
    // STUN sizes move in steps of 4: the next message size over the default is +4 ...
    let over = message_of_size(DEFAULT_MAX_MESSAGE_SIZE + 4);
    assert_eq!(StunMessage::parse(&over), Err(StunError::MessageTooLarge));
    assert_eq!(
        stream_frame(&over, &Limits::DEFAULT),
        Err(StunError::MessageTooLarge)
    );
    // ... and a limit one byte under a message's size rejects it.
    let limits = Limits {
        max_message_size: at.len() - 1,
        ..Limits::DEFAULT
    };
    assert_eq!(
        StunMessage::parse_with(&at, &limits),
        Err(StunError::MessageTooLarge)
    );
    assert_eq!(stream_frame(&at, &limits), Err(StunError::MessageTooLarge));
    // Configurable upwards to the wire maximum.
    let big = Limits {
        max_message_size: ringwire_stun::MAX_WIRE_MESSAGE_SIZE,
        ..Limits::DEFAULT
    };
    StunMessage::parse_with(&over, &big).unwrap();
}

#[test]
fn max_message_size_applies_to_channel_data_frames() {
    let limits = Limits {
        max_message_size: 12,
        ..Limits::DEFAULT
    };
    let mut out = Vec::new();
    let ch = ChannelNumber::new(0x4000).unwrap();
    ChannelData::new(ch, &[1; 8])
        .encode(&mut out, true)
        .unwrap();
    assert_eq!(
        stream_frame(&out, &limits),
        Ok(StreamFrame::ChannelData { len: 12 })
    );
    out.clear();
    ChannelData::new(ch, &[1; 9])
        .encode(&mut out, true)
        .unwrap(); // 13 bytes, padded to 16
    assert_eq!(stream_frame(&out, &limits), Err(StunError::MessageTooLarge));
}

#[test]
fn max_attributes_default_and_one_over() {
    let at = message_with_attributes(DEFAULT_MAX_ATTRIBUTES);
    assert_eq!(
        StunMessage::parse(&at).unwrap().attribute_count(),
        DEFAULT_MAX_ATTRIBUTES
    );
    let over = message_with_attributes(DEFAULT_MAX_ATTRIBUTES + 1);
    assert_eq!(StunMessage::parse(&over), Err(StunError::TooManyAttributes));
    assert_eq!(
        StunError::TooManyAttributes.error_code(),
        Some(ringwire_stun::ErrorCode::BAD_REQUEST)
    );
    let limits = Limits {
        max_attributes: DEFAULT_MAX_ATTRIBUTES + 1,
        ..Limits::DEFAULT
    };
    StunMessage::parse_with(&over, &limits).unwrap();
}

#[test]
fn value_length_bounds_in_the_builder() {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, tid());
    b.username(&"u".repeat(MAX_USERNAME_LEN));
    assert_eq!(b.finish().map(|n| n > 0), Ok(true));
    out.clear();
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, tid());
    b.username(&"u".repeat(MAX_USERNAME_LEN + 1));
    assert_eq!(
        b.finish(),
        Err(StunError::ValueTooLong(ringwire_stun::AttrType::USERNAME))
    );
    assert!(out.is_empty(), "a failed message is truncated away");

    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, tid());
    b.realm(&"r".repeat(763))
        .nonce(&"n".repeat(763))
        .software(&"s".repeat(763));
    b.finish().unwrap();
    out.clear();
    let mut b = MessageBuilder::new(&mut out, MessageType::BINDING_REQUEST, tid());
    b.realm(&"r".repeat(764));
    assert_eq!(
        b.finish(),
        Err(StunError::ValueTooLong(ringwire_stun::AttrType::REALM))
    );

    // A message body of exactly 65535 - 3 bytes fits; one more attribute overflows.
    let mut b = MessageBuilder::new(&mut out, MessageType::SEND_INDICATION, tid());
    b.data(&vec![0; 0xFFFF - 4 - 3]);
    let n = b.finish().unwrap();
    assert_eq!(n, HEADER_LEN + 0xFFFC);
    out.clear();
    let mut b = MessageBuilder::new(&mut out, MessageType::SEND_INDICATION, tid());
    b.data(&vec![0; 0xFFFF - 4 - 3]).dont_fragment();
    assert_eq!(b.finish(), Err(StunError::MessageLengthOverflow));
    let mut b = MessageBuilder::new(&mut out, MessageType::SEND_INDICATION, tid());
    b.data(&vec![0; 0x10000]);
    assert_eq!(
        b.finish(),
        Err(StunError::ValueTooLong(ringwire_stun::AttrType::DATA))
    );
    let ch = ChannelNumber::new(0x4000).unwrap();
    assert!(
        ChannelData::new(ch, &vec![0; 0x10000])
            .encode(&mut out, false)
            .is_err()
    );
}
