//! Hostile input: every truncation and many random bit flips of the vectors, length fields
//! that lie, attribute lengths that overrun, bad padding, random TLV soup. Each case must give
//! `Err` or `Ok` — never a panic — and everything that parses must pass the `fuzz_check`
//! round-trip oracle.

use ringwire_stun::{
    AttrType, ChannelData, Limits, StreamFrame, StunError, StunMessage, classify, fuzz_check,
    stream_frame,
};

const VECTORS: [&[u8]; 5] = [
    include_bytes!("vectors/rfc5769/2.1-sample-request.bin"),
    include_bytes!("vectors/rfc5769/2.2-sample-ipv4-response.bin"),
    include_bytes!("vectors/rfc5769/2.3-sample-ipv6-response.bin"),
    include_bytes!("vectors/rfc5769/2.4-sample-request-long-term-auth.bin"),
    include_bytes!("vectors/rfc8489/b.1-erratum-6268.bin"),
];

/// Bytes written like the wire, one group per line with a comment.
macro_rules! raw {
    ($($($b:expr),+ $(,)?);* $(;)?) => { vec![$($($b as u8),+),*] };
}

/// Deterministic xorshift64*, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Everything a server would call on untrusted input.
fn probe(data: &[u8]) {
    fuzz_check(data);
    let _ = classify(data);
    let _ = stream_frame(data, &Limits::DEFAULT);
    let _ = ChannelData::parse_stream(data);
    if let Ok(msg) = StunMessage::parse(data) {
        let _ = msg.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt");
        let _ = msg.verify_any_integrity(b"k");
        let _ = msg.verify_fingerprint();
        let _ = msg.check_comprehension();
        let tid = msg.transaction_id();
        for a in msg.raw_attributes() {
            assert!(a.offset() + 4 + a.value().len() <= msg.wire_len());
            let _ = a.decode(&tid);
        }
        let _ = (
            msg.xor_mapped_address(),
            msg.username(),
            msg.error_code(),
            msg.password_algorithms(),
        );
        let _ = (
            msg.xor_peer_addresses().count(),
            msg.dont_fragment(),
            msg.unknown_attributes(),
        );
    }
}

#[test]
fn every_truncation_is_an_error() {
    for v in VECTORS {
        for n in 0..v.len() {
            let cut = &v[..n];
            probe(cut);
            assert!(StunMessage::parse(cut).is_err(), "truncated to {n} parsed");
        }
        probe(v);
        StunMessage::parse(v).unwrap();
    }
}

#[test]
fn random_bit_flips_never_panic() {
    let mut rng = Rng(0x005E_ED0F_5747);
    let mut parsed = 0;
    for round in 0..60_000 {
        let mut v = VECTORS[round % VECTORS.len()].to_vec();
        for _ in 0..=rng.below(4) {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        probe(&v);
        if let Ok(m) = StunMessage::parse(&v) {
            parsed += 1;
            // A flip past the header is caught by FINGERPRINT or MESSAGE-INTEGRITY, unless it
            // only touched padding or an ignored attribute.
            let _ = m.verify_fingerprint();
        }
    }
    assert!(
        parsed > 1000,
        "the mutations should still exercise the attribute decoders ({parsed})"
    );
}

#[test]
fn random_tlv_soup_and_random_bytes_never_panic() {
    let mut rng = Rng(0xC0FF_EE00_1234);
    for round in 0..40_000 {
        let mut v = if round % 2 == 0 {
            // A valid header over random attributes.
            let body = 4 * rng.below(40);
            let mut v = raw!(0x00, 0x01; (body >> 8), (body & 0xff); 0x21, 0x12, 0xa4, 0x42);
            v.extend((0..12 + body).map(|_| rng.next() as u8));
            v
        } else {
            (0..rng.below(120)).map(|_| rng.next() as u8).collect()
        };
        // Make attribute types land on the known ones now and then.
        if v.len() > 24 && round % 4 == 0 {
            let known = [
                0x0001, 0x0006, 0x0008, 0x0009, 0x000A, 0x000C, 0x0012, 0x0016, 0x001C, 0x001D,
                0x0020, 0x8002, 0x8004, 0x8028,
            ];
            let t: u16 = known[rng.below(known.len())];
            v[20..22].copy_from_slice(&t.to_be_bytes());
            let l = (rng.below(40) as u16).min((v.len() - 24) as u16);
            v[22..24].copy_from_slice(&l.to_be_bytes());
        }
        probe(&v);
        if round % 3 == 0 && !v.is_empty() {
            v[0] = 0x40 | (v.first().copied().unwrap_or(0) & 0x3f);
            probe(&v);
        }
    }
}

#[test]
fn length_field_lies() {
    let v = VECTORS[0];
    let real = u16::from_be_bytes([v[2], v[3]]);
    for lie in (0..=0xFFFFu16).step_by(1).filter(|&l| l != real) {
        let mut m = v.to_vec();
        m[2..4].copy_from_slice(&lie.to_be_bytes());
        let e = StunMessage::parse(&m).unwrap_err();
        let expected = if lie % 4 != 0 {
            StunError::BadLength
        } else if usize::from(lie) + 20 > Limits::DEFAULT.max_message_size {
            StunError::MessageTooLarge
        } else if lie > real {
            StunError::Truncated
        } else {
            StunError::BadLength // shorter than the datagram
        };
        assert_eq!(e, expected, "length {lie}");
        // On a stream, a shorter length frames a shorter message whose last attribute is cut.
        if lie < real && lie % 4 == 0 {
            let r = StunMessage::parse_prefix(&m, &Limits::DEFAULT);
            assert!(
                matches!(r, Err(StunError::AttributeOverrun)) || r.is_ok(),
                "{lie}: {r:?}"
            );
        }
    }
}

#[test]
fn attribute_length_overruns_the_message() {
    let m = raw!(
        0x00, 0x01, 0x00, 0x08;                          // Binding request, length 8
        0x21, 0x12, 0xa4, 0x42;                          // magic cookie
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;           // transaction id
        0x80, 0x22, 0x00, 0x05;                          // SOFTWARE, length 5 ...
        b'a', b'b', b'c', b'd';                          // ... but only 4 bytes left
    );
    assert_eq!(StunMessage::parse(&m), Err(StunError::AttributeOverrun));
    let m = raw!(
        0x00, 0x01, 0x00, 0x08;                          // length 8
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x80, 0x22, 0xff, 0xff;                          // SOFTWARE, length 65535
        b'a', b'b', b'c', b'd';
    );
    assert_eq!(StunMessage::parse(&m), Err(StunError::AttributeOverrun));
    let m = raw!(
        0x00, 0x01, 0x00, 0x04;                          // length 4: room for a header only
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x00, 0x06, 0x00, 0x01;                          // USERNAME, length 1, no value
    );
    assert_eq!(StunMessage::parse(&m), Err(StunError::AttributeOverrun));
}

#[test]
fn bad_padding() {
    // A sender that forgets the padding desynchronises the attribute walk.
    let m = raw!(
        0x00, 0x01, 0x00, 0x10;                          // length 16
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x00, 0x06, 0x00, 0x05;                          // USERNAME, length 5
        b'a', b'l', b'i', b'c', b'e';                    // value, no padding,
        0x80, 0x22, 0x00, 0x03;                          // SOFTWARE right after it
        b'x', b'y', b'z';                                // (read as 0x0378, length 0x797a)
    );
    assert_eq!(StunMessage::parse(&m), Err(StunError::AttributeOverrun));
    // The same without padding on the last value: the length is not a multiple of 4.
    let m = raw!(
        0x00, 0x01, 0x00, 0x09;                          // length 9
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x00, 0x06, 0x00, 0x05;                          // USERNAME, length 5
        b'a', b'l', b'i', b'c', b'e';                    // value, no padding
    );
    assert_eq!(StunMessage::parse(&m), Err(StunError::BadLength));
    // A padded length over an unpadded datagram is a truncation.
    let mut short = m.clone();
    short[3] = 0x0c;
    assert_eq!(StunMessage::parse(&short), Err(StunError::Truncated));
    // Padding contents are ignored (RFC 8489 §14: "MUST be ignored by the receiver").
    let m = raw!(
        0x00, 0x01, 0x00, 0x08;
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x00, 0x06, 0x00, 0x01;                          // USERNAME, length 1
        b'a', 0xde, 0xad, 0xff;                          // value and junk padding
    );
    assert_eq!(
        StunMessage::parse(&m).unwrap().username().unwrap(),
        Some("a")
    );
}

#[test]
fn header_rejections() {
    let ok =
        raw!(0x00, 0x01, 0x00, 0x00; 0x21, 0x12, 0xa4, 0x42; 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    StunMessage::parse(&ok).unwrap();
    for (i, bits, err) in [
        (0, 0x80, StunError::NotStun),   // first bit set
        (0, 0x40, StunError::NotStun),   // second bit set (ChannelData)
        (4, 0x01, StunError::NotStun),   // magic cookie
        (7, 0x80, StunError::NotStun),   // magic cookie
        (3, 0x01, StunError::BadLength), // length not a multiple of 4
        (3, 0x02, StunError::BadLength),
    ] {
        let mut m = ok.clone();
        m[i] ^= bits;
        assert_eq!(StunMessage::parse(&m), Err(err), "byte {i} ^ {bits:#x}");
    }
    // Trailing bytes in a datagram.
    let mut m = ok.clone();
    m.push(0);
    assert_eq!(StunMessage::parse(&m), Err(StunError::BadLength));
    assert_eq!(
        StunMessage::parse_prefix(&m, &Limits::DEFAULT)
            .unwrap()
            .wire_len(),
        20
    );
}

#[test]
fn attributes_after_fingerprint_are_rejected_and_after_integrity_ignored() {
    let m = raw!(
        0x00, 0x01, 0x00, 0x10;
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x80, 0x28, 0x00, 0x04; 0, 0, 0, 0;              // FINGERPRINT
        0x00, 0x06, 0x00, 0x01; b'a', 0, 0, 0;           // USERNAME after it
    );
    assert_eq!(StunMessage::parse(&m), Err(StunError::FingerprintNotLast));
    let m = raw!(
        0x00, 0x01, 0x00, 0x24;
        0x21, 0x12, 0xa4, 0x42;
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
        0x00, 0x08, 0x00, 0x14;                          // MESSAGE-INTEGRITY
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0;
        0x00, 0x06, 0x00, 0x01; b'a', 0, 0, 0;           // USERNAME after it: ignored
        0x7f, 0xff, 0x00, 0x00;                          // unknown required after it: ignored
    );
    let msg = StunMessage::parse(&m).unwrap();
    assert_eq!(msg.username().unwrap(), None);
    assert_eq!(msg.attributes().count(), 1);
    assert_eq!(msg.raw_attributes().count(), 3);
    assert_eq!(msg.unknown_comprehension_required().count(), 0);
    assert!(msg.get(AttrType::USERNAME).is_none());
}

#[test]
fn stream_framer_on_garbage() {
    assert_eq!(
        stream_frame(&[0xff, 0xff, 0xff, 0xff], &Limits::DEFAULT),
        Err(StunError::NotStun)
    );
    assert_eq!(
        stream_frame(&[0x7f, 0xff, 0xff, 0xff], &Limits::DEFAULT),
        Err(StunError::MessageTooLarge)
    );
    let big = Limits {
        max_message_size: 70_000,
        max_attributes: 64,
    };
    assert_eq!(
        stream_frame(&[0x7f, 0xff, 0xff, 0xfd], &big),
        Ok(StreamFrame::ChannelData { len: 65_540 })
    );
}

#[test]
fn structured_attribute_soup_round_trips() {
    // Well-framed messages of known and unknown attribute types with plausible lengths, so
    // most parse and every value decoder and the builder's re-encoding get exercised.
    let types: [u16; 40] = [
        0x0001, 0x0003, 0x0006, 0x0008, 0x0009, 0x000A, 0x000C, 0x000D, 0x0012, 0x0013, 0x0014,
        0x0015, 0x0016, 0x0017, 0x0018, 0x0019, 0x001A, 0x001C, 0x001D, 0x001E, 0x0020, 0x0022,
        0x0024, 0x0025, 0x002A, 0x8000, 0x8001, 0x8002, 0x8003, 0x8004, 0x8022, 0x8023, 0x8028,
        0x8029, 0x802A, 0x802B, 0x802C, 0x7777, 0x8888, 0x0000,
    ];
    let mut rng = Rng(0x0BAD_5EED);
    let mut parsed = 0;
    for _ in 0..50_000 {
        let mut body = Vec::new();
        for _ in 0..rng.below(8) {
            let t = types[rng.below(types.len())];
            let len = match rng.below(4) {
                0 => [0, 1, 4, 8, 12, 16, 20, 32][rng.below(8)],
                1 => rng.below(40),
                _ => [4, 8, 20, 32][rng.below(4)],
            };
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(len as u16).to_be_bytes());
            for _ in 0..len {
                body.push(match rng.below(3) {
                    0 => 0,
                    1 => rng.next() as u8,
                    _ => [1, 2, 3, 4, 0x20, 0x41, 0x7f, 0x80, 0xff][rng.below(9)],
                });
            }
            while body.len() % 4 != 0 {
                body.push(rng.next() as u8);
            }
        }
        let mut m =
            raw!(rng.below(0x40), rng.next(); body.len() >> 8, body.len(); 0x21, 0x12, 0xa4, 0x42);
        m.extend((0..12).map(|_| rng.next() as u8));
        m.extend_from_slice(&body);
        if rng.below(4) == 0 {
            let i = rng.below(m.len());
            m[i] ^= 1 << rng.below(8);
        }
        probe(&m);
        parsed += usize::from(StunMessage::parse(&m).is_ok());
    }
    assert!(parsed > 40_000, "{parsed}");
}
