//! RFC 8489 §6.2 client transactions on a virtual clock: no sleeps, no real time.

use std::time::{Duration, Instant};

use ringwire_stun::{
    Class, ClientTransaction, MessageBuilder, MessageType, Method, RetransmitConfig, StunError,
    StunMessage, TransactionId, TransactionState, Transport,
};

fn request(id: u8) -> Vec<u8> {
    let mut out = Vec::new();
    MessageBuilder::new(
        &mut out,
        MessageType::BINDING_REQUEST,
        TransactionId::new([id; 12]),
    )
    .finish()
    .unwrap();
    out
}

fn response(id: u8, t: MessageType) -> Vec<u8> {
    let mut out = Vec::new();
    MessageBuilder::new(&mut out, t, TransactionId::new([id; 12]))
        .finish()
        .unwrap();
    out
}

/// Runs a transaction that never gets an answer; returns the send times and the failure time
/// in ms after the start.
fn run_unanswered(transport: Transport, config: RetransmitConfig) -> (Vec<u64>, u64) {
    #[allow(clippy::disallowed_methods)] // the virtual clock's origin; only offsets matter
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, request(1), transport, config).unwrap();
    let mut sends = Vec::new();
    let mut now = t0;
    let ms = |t: Instant| (t - t0).as_millis() as u64;
    loop {
        let mut out = Vec::new();
        while tx.poll_transmit(&mut out) {
            assert_eq!(out, tx.request());
            sends.push(ms(now));
            out.clear();
        }
        match tx.poll_timeout() {
            Some(t) => {
                assert!(t >= now, "time never runs backwards");
                now = t;
                tx.handle_timeout(now);
            }
            None => break,
        }
    }
    assert_eq!(tx.state(), TransactionState::TimedOut);
    (sends, ms(now))
}

#[test]
fn rfc8489_6_2_1_udp_retransmission_schedule() {
    // RFC 8489 §6.2.1: "with an RTO of 500 ms, requests would be sent at times 0 ms, 500 ms,
    // 1500 ms, 3500 ms, 7500 ms, 15500 ms, and 31500 ms. If the client has not received a
    // response after 39500 ms, the client will consider the transaction to have timed out."
    let (sends, failed) = run_unanswered(Transport::Udp, RetransmitConfig::DEFAULT);
    assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(failed, 39_500);
}

#[test]
fn rfc8489_6_2_2_no_retransmission_over_tcp() {
    let (sends, failed) = run_unanswered(Transport::Reliable, RetransmitConfig::DEFAULT);
    assert_eq!(sends, [0]);
    assert_eq!(failed, 39_500);
}

#[test]
fn configurable_rto_and_counts() {
    let config = RetransmitConfig {
        rto: Duration::from_millis(100),
        max_transmissions: 3,
        final_wait_multiplier: 4,
        ..RetransmitConfig::DEFAULT
    };
    let (sends, failed) = run_unanswered(Transport::Udp, config);
    assert_eq!(sends, [0, 100, 300]);
    assert_eq!(failed, 700);
    let single = RetransmitConfig {
        max_transmissions: 1,
        ..RetransmitConfig::DEFAULT
    };
    assert_eq!(run_unanswered(Transport::Udp, single), (vec![0], 8000));
}

#[test]
fn matching_response_completes_the_transaction() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut tx =
        ClientTransaction::new(t0, request(7), Transport::Udp, RetransmitConfig::DEFAULT).unwrap();
    let mut out = Vec::new();
    assert!(tx.poll_transmit(&mut out));
    assert!(!tx.poll_transmit(&mut out), "one transmission per due time");
    tx.handle_timeout(t0 + Duration::from_millis(499));
    assert!(!tx.poll_transmit(&mut out));
    tx.handle_timeout(t0 + Duration::from_millis(500));
    assert!(tx.poll_transmit(&mut out));
    assert_eq!(tx.transmissions(), 2);

    // Not ours: another transaction id, an indication, another method.
    let other = response(8, MessageType::BINDING_SUCCESS);
    assert!(!tx.handle_response(&StunMessage::parse(&other).unwrap()));
    let ind = response(7, MessageType::new(Method::BINDING, Class::Indication));
    assert!(!tx.handle_response(&StunMessage::parse(&ind).unwrap()));
    let alloc = response(
        7,
        MessageType::new(Method::ALLOCATE, Class::SuccessResponse),
    );
    assert!(!tx.handle_response(&StunMessage::parse(&alloc).unwrap()));
    assert_eq!(tx.state(), TransactionState::Pending);

    let err = response(7, MessageType::BINDING_ERROR);
    assert!(tx.handle_response(&StunMessage::parse(&err).unwrap()));
    assert_eq!(
        tx.state(),
        TransactionState::Completed(Class::ErrorResponse)
    );
    assert_eq!(tx.poll_timeout(), None);
    tx.handle_timeout(t0 + Duration::from_secs(100));
    assert!(!tx.poll_transmit(&mut out));
    // A retransmitted response is not matched twice.
    assert!(!tx.handle_response(&StunMessage::parse(&err).unwrap()));
}

#[test]
fn only_requests_start_transactions() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let ind = response(1, MessageType::SEND_INDICATION);
    assert_eq!(
        ClientTransaction::new(t0, ind, Transport::Udp, RetransmitConfig::DEFAULT).unwrap_err(),
        StunError::NotRequest
    );
    assert_eq!(
        ClientTransaction::new(t0, vec![1, 2, 3], Transport::Udp, RetransmitConfig::DEFAULT)
            .unwrap_err(),
        StunError::Truncated
    );
}

#[test]
fn late_timer_does_not_shift_the_schedule() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut tx =
        ClientTransaction::new(t0, request(3), Transport::Udp, RetransmitConfig::DEFAULT).unwrap();
    let mut out = Vec::new();
    tx.poll_transmit(&mut out);
    tx.handle_timeout(t0 + Duration::from_millis(700)); // 200 ms late
    assert!(tx.poll_transmit(&mut out));
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
}
