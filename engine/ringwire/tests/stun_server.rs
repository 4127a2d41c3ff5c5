//! The STUN/TURN server on real sockets, on both drivers: Binding over UDP and TCP, the
//! long-term authentication flow, TURN allocations, permissions, channels, lifetimes, peer
//! filtering, quotas, hooks and hostile input.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringwire::runtime::{DriverChoice, RuntimeConfig, ServerHandle};
use ringwire::stun::client::{self, ClientError, TurnClient, TurnConfig};
use ringwire::stun::{DeleteReason, DiscardReason, PortRange, StunConfig, StunService};
use ringwire_stun::{
    AttrType, ChannelData, ChannelNumber, Class, ErrorCode, Limits, LongTermKey, MessageBuilder,
    MessageType, Method, RestCredentials, StreamFrame, StunMessage, TransactionId,
    TransportProtocol, stream_frame,
};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire::runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    binding_over_udp,
    binding_over_tcp,
    unknown_attribute_420,
    allocate_401_then_authenticated,
    allocate_errors_and_retransmission,
    stale_nonce_438,
    quota_486,
    permission_required,
    channel_bind_and_channel_data_round_trip,
    send_and_data_indications,
    channel_bind_rules,
    refresh_zero_deletes,
    allocation_expires,
    loopback_peer_refused_unless_allowed,
    turn_over_tcp_pads_channel_data,
    hooks_and_rest_credentials,
    alternate_server_redirect,
    even_port_reservation,
    hostile_input_is_dropped,
);

const TIMEOUT: Duration = Duration::from_secs(5);

/// What the hooks saw.
#[derive(Default)]
struct Events {
    created: Mutex<Vec<SocketAddr>>,
    deleted: Mutex<Vec<DeleteReason>>,
    discarded: Mutex<Vec<DiscardReason>>,
}

struct Srv {
    _server: ServerHandle,
    addr: SocketAddr,
    events: Arc<Events>,
}

fn start(d: DriverChoice, threads: usize, tune: impl FnOnce(&mut StunConfig)) -> Srv {
    let events = Arc::new(Events::default());
    let mut c = StunConfig::default();
    c.add_user("u:p").unwrap();
    c.realm = "r".into();
    c.allow_loopback_peers = true;
    c.relay_ports = PortRange {
        min: 40000,
        max: 44999,
    };
    let e = events.clone();
    c.hooks.allocation_created = Some(Arc::new(move |i| e.created.lock().unwrap().push(i.relayed)));
    let e = events.clone();
    c.hooks.allocation_deleted = Some(Arc::new(move |_, r| e.deleted.lock().unwrap().push(r)));
    let e = events.clone();
    c.hooks.discarded = Some(Arc::new(move |x| {
        e.discarded.lock().unwrap().push(x.reason)
    }));
    tune(&mut c);
    let rt = RuntimeConfig {
        driver: d,
        threads,
        shutdown_timeout: TIMEOUT,
        ..Default::default()
    };
    let (server, addr) = StunService::start(c, rt, "127.0.0.1:0".parse().unwrap()).unwrap();
    Srv {
        _server: server,
        addr,
        events,
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// A blocking receive that retries EINTR (a socket with a timeout is not restarted by the
/// kernel after a stop/continue); any other error fails the test.
fn recv_retry(s: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    loop {
        match s.recv_from(buf) {
            Ok(r) => return r,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

fn read_retry(t: &mut TcpStream, buf: &mut [u8]) -> usize {
    loop {
        match t.read(buf) {
            Ok(n) => return n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn tid(n: u8) -> TransactionId {
    let mut id = [n; 12];
    id[0] = 0x52;
    TransactionId::new(id)
}

/// Long-term credentials learned from a 401.
struct Creds {
    user: String,
    realm: String,
    nonce: String,
    key: LongTermKey,
}

fn request(
    method: Method,
    id: TransactionId,
    creds: Option<&Creds>,
    add: impl FnOnce(&mut MessageBuilder<'_>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = MessageBuilder::new(&mut out, MessageType::new(method, Class::Request), id);
    add(&mut b);
    if let Some(c) = creds {
        b.username(&c.user)
            .realm(&c.realm)
            .nonce(&c.nonce)
            .message_integrity(c.key.as_bytes());
    }
    b.fingerprint();
    b.finish().unwrap();
    out
}

fn ask(s: &UdpSocket, to: SocketAddr, req: &[u8]) -> Vec<u8> {
    s.send_to(req, to).unwrap();
    let mut buf = vec![0u8; 4096];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) if from == to => return buf[..n].to_vec(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("no response: {e}"),
        }
    }
}

fn error_code(resp: &[u8]) -> Option<u16> {
    let m = StunMessage::parse(resp).unwrap();
    m.error_code().unwrap().map(|e| e.code.get())
}

fn allocate_req(id: TransactionId, creds: Option<&Creds>) -> Vec<u8> {
    request(Method::ALLOCATE, id, creds, |b| {
        b.requested_transport(TransportProtocol::UDP);
    })
}

/// Allocate without credentials, expect 401 with REALM and NONCE, derive the key.
fn challenge(s: &UdpSocket, srv: SocketAddr, user: &str, pass: &str) -> Creds {
    let r = ask(s, srv, &allocate_req(tid(1), None));
    let m = StunMessage::parse(&r).unwrap();
    assert_eq!(m.class(), Class::ErrorResponse);
    assert_eq!(error_code(&r), Some(401));
    assert!(!m.has_integrity(), "a 401 carries no MESSAGE-INTEGRITY");
    let realm = m.realm().unwrap().unwrap().to_owned();
    let nonce = m.nonce().unwrap().unwrap().to_owned();
    Creds {
        user: user.into(),
        key: LongTermKey::md5(user, &realm, pass).unwrap(),
        realm,
        nonce,
    }
}

/// An echo peer on loopback; stops when dropped.
struct Peer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Peer {
    fn echo() -> Self {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = s.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let join = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(&buf[..n], from);
                }
            }
        });
        Peer {
            addr,
            stop,
            join: Some(join),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

fn turn(srv: &Srv) -> TurnClient {
    let mut cfg = TurnConfig::new(srv.addr, "u", "p");
    cfg.realm = Some("r".into());
    TurnClient::allocate(cfg).unwrap()
}

fn rejected(r: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match r {
        Err(ClientError::Rejected(c)) => c.get(),
        other => panic!("expected an error response, got {other:?}"),
    }
}

// ---- STUN ---------------------------------------------------------------------------------

fn binding_over_udp(d: DriverChoice) {
    let srv = start(d, 2, |_| {});
    let s = udp();
    let r = ask(
        &s,
        srv.addr,
        &request(Method::BINDING, tid(9), None, |_| {}),
    );
    let m = StunMessage::parse(&r).unwrap();
    assert_eq!(m.message_type(), MessageType::BINDING_SUCCESS);
    assert_eq!(m.transaction_id(), tid(9));
    assert_eq!(
        m.xor_mapped_address().unwrap(),
        Some(s.local_addr().unwrap())
    );
    assert_eq!(m.software().unwrap(), Some("ringwire"));
    m.verify_fingerprint().unwrap();
    // The blocking client, with its retransmission schedule.
    assert_eq!(
        client::binding_with(&s, srv.addr, &Default::default()).unwrap(),
        s.local_addr().unwrap()
    );
}

fn binding_over_tcp(d: DriverChoice) {
    let srv = start(d, 2, |_| {});
    let mut t = TcpStream::connect(srv.addr).unwrap();
    t.set_read_timeout(Some(TIMEOUT)).unwrap();
    let local = t.local_addr().unwrap();
    // Two requests in one write, then one split across writes.
    let mut both = request(Method::BINDING, tid(1), None, |_| {});
    both.extend(request(Method::BINDING, tid(2), None, |_| {}));
    t.write_all(&both).unwrap();
    let third = request(Method::BINDING, tid(3), None, |_| {});
    t.write_all(&third[..7]).unwrap();
    t.flush().unwrap();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    let mut sent_rest = false;
    while got.len() < 3 {
        let mut chunk = [0u8; 1024];
        let n = read_retry(&mut t, &mut chunk);
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(StreamFrame::Stun { len }) = stream_frame(&buf, &Limits::DEFAULT) {
            if buf.len() < len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..len).collect();
            let m = StunMessage::parse(&frame).unwrap();
            assert_eq!(m.xor_mapped_address().unwrap(), Some(local));
            got.push(m.transaction_id());
        }
        if got.len() == 2 && !sent_rest {
            t.write_all(&third[7..]).unwrap();
            sent_rest = true;
        }
    }
    assert_eq!(got, vec![tid(1), tid(2), tid(3)]);
    let rt = ringwire_stun::RetransmitConfig {
        reliable_timeout: TIMEOUT,
        ..Default::default()
    };
    assert!(client::binding_tcp(srv.addr, &rt).is_ok());
}

fn unknown_attribute_420(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let s = udp();
    let req = request(Method::BINDING, tid(4), None, |b| {
        b.raw_attribute(AttrType::new(0x7F01), b"?");
    });
    let r = ask(&s, srv.addr, &req);
    assert_eq!(error_code(&r), Some(420));
    let m = StunMessage::parse(&r).unwrap();
    let list: Vec<_> = m.unknown_attributes().unwrap().unwrap().iter().collect();
    assert_eq!(list, vec![AttrType::new(0x7F01)]);
    // Unknown optional attributes are ignored.
    let req = request(Method::BINDING, tid(5), None, |b| {
        b.raw_attribute(AttrType::new(0xC001), b"ok");
    });
    assert_eq!(error_code(&ask(&s, srv.addr, &req)), None);
}

// ---- authentication -------------------------------------------------------------------------

fn allocate_401_then_authenticated(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let s = udp();
    let creds = challenge(&s, srv.addr, "u", "p");
    assert_eq!(creds.realm, "r");
    let r = ask(&s, srv.addr, &allocate_req(tid(2), Some(&creds)));
    let m = StunMessage::parse(&r).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", error_code(&r));
    m.verify_integrity(creds.key.as_bytes()).unwrap();
    m.verify_fingerprint().unwrap();
    let relayed = m.xor_relayed_address().unwrap().unwrap();
    assert_eq!(relayed.ip(), IpAddr::from([127, 0, 0, 1]));
    assert!((40000..=44999).contains(&relayed.port()), "{relayed}");
    assert_eq!(m.lifetime().unwrap(), Some(600));
    assert_eq!(
        m.xor_mapped_address().unwrap(),
        Some(s.local_addr().unwrap())
    );
    assert_eq!(srv.events.created.lock().unwrap().as_slice(), &[relayed]);

    // Wrong password: 401 again (with a fresh nonce, no integrity).
    let s2 = udp();
    let bad = challenge(&s2, srv.addr, "u", "wrong");
    let r = ask(&s2, srv.addr, &allocate_req(tid(3), Some(&bad)));
    assert_eq!(error_code(&r), Some(401));
    // Unknown user: 401.
    let nobody = challenge(&s2, srv.addr, "nobody", "p");
    assert_eq!(
        error_code(&ask(&s2, srv.addr, &allocate_req(tid(4), Some(&nobody)))),
        Some(401)
    );
    // Integrity without USERNAME/REALM/NONCE: 400.
    let req = request(Method::ALLOCATE, tid(5), None, |b| {
        b.requested_transport(TransportProtocol::UDP)
            .message_integrity(creds.key.as_bytes());
    });
    assert_eq!(error_code(&ask(&s2, srv.addr, &req)), Some(400));
    // A nonce bound to another client's IP is as good as stale... on loopback the IP is the
    // same, so a garbled nonce stands in: 438.
    let garbled = Creds {
        nonce: "AAAA".into(),
        ..challenge(&s2, srv.addr, "u", "p")
    };
    assert_eq!(
        error_code(&ask(&s2, srv.addr, &allocate_req(tid(6), Some(&garbled)))),
        Some(438)
    );
    // The library client does the same dance.
    let c = turn(&srv);
    assert_eq!(c.realm(), "r");
    assert_ne!(c.relayed_addr(), relayed);
}

fn allocate_errors_and_retransmission(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let s = udp();
    let creds = challenge(&s, srv.addr, "u", "p");
    // No REQUESTED-TRANSPORT: 400; TCP: 442; bad family: 440.
    let r = ask(
        &s,
        srv.addr,
        &request(Method::ALLOCATE, tid(10), Some(&creds), |_| {}),
    );
    assert_eq!(error_code(&r), Some(400));
    let req = request(Method::ALLOCATE, tid(11), Some(&creds), |b| {
        b.requested_transport(TransportProtocol::TCP);
    });
    assert_eq!(error_code(&ask(&s, srv.addr, &req)), Some(442));
    let req = request(Method::ALLOCATE, tid(12), Some(&creds), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .requested_address_family(ringwire_stun::AddressFamily::IPV6);
    });
    let r = ask(&s, srv.addr, &req);
    assert_eq!(error_code(&r), Some(440));
    // Errors after authentication carry integrity.
    StunMessage::parse(&r)
        .unwrap()
        .verify_integrity(creds.key.as_bytes())
        .unwrap();
    // Refresh before any allocation: 437.
    let req = request(Method::REFRESH, tid(13), Some(&creds), |_| {});
    assert_eq!(error_code(&ask(&s, srv.addr, &req)), Some(437));

    // DONT-FRAGMENT and an explicit IPv4 family are accepted.
    let req = request(Method::ALLOCATE, tid(14), Some(&creds), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .dont_fragment()
            .requested_address_family(ringwire_stun::AddressFamily::IPV4)
            .lifetime(1200);
    });
    let first = ask(&s, srv.addr, &req);
    let m = StunMessage::parse(&first).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse);
    assert_eq!(m.lifetime().unwrap(), Some(1200));
    let relayed = m.xor_relayed_address().unwrap();
    // A retransmission (same transaction id) gets the same relayed address...
    let again = ask(&s, srv.addr, &req);
    let m2 = StunMessage::parse(&again).unwrap();
    assert_eq!(m2.class(), Class::SuccessResponse);
    assert_eq!(m2.xor_relayed_address().unwrap(), relayed);
    assert_eq!(srv.events.created.lock().unwrap().len(), 1);
    // ...a new Allocate on the same 5-tuple gets 437.
    let r = ask(&s, srv.addr, &allocate_req(tid(15), Some(&creds)));
    assert_eq!(error_code(&r), Some(437));
    // Another user on this allocation's 5-tuple: 441 (user "v" exists).
    drop(srv);
    let srv = start(d, 1, |c| c.add_user("v:w").unwrap());
    let s = udp();
    let cu = challenge(&s, srv.addr, "u", "p");
    let r = ask(&s, srv.addr, &allocate_req(tid(16), Some(&cu)));
    assert_eq!(error_code(&r), None);
    let cv = Creds {
        user: "v".into(),
        key: LongTermKey::md5("v", "r", "w").unwrap(),
        realm: cu.realm.clone(),
        nonce: cu.nonce.clone(),
    };
    let req = request(Method::REFRESH, tid(17), Some(&cv), |_| {});
    assert_eq!(error_code(&ask(&s, srv.addr, &req)), Some(441));
}

fn stale_nonce_438(d: DriverChoice) {
    let clock = Arc::new(AtomicU64::new(1_000_000));
    let c2 = clock.clone();
    let srv = start(d, 1, move |c| {
        c.nonce_ttl = Duration::from_secs(60);
        c.unix_clock = Some(Arc::new(move || c2.load(Ordering::Relaxed)));
    });
    let s = udp();
    let creds = challenge(&s, srv.addr, "u", "p");
    clock.fetch_add(61, Ordering::Relaxed);
    let r = ask(&s, srv.addr, &allocate_req(tid(2), Some(&creds)));
    assert_eq!(error_code(&r), Some(438));
    let m = StunMessage::parse(&r).unwrap();
    let fresh = m.nonce().unwrap().unwrap().to_owned();
    assert_ne!(fresh, creds.nonce);
    assert_eq!(m.realm().unwrap(), Some("r"));
    let creds = Creds {
        nonce: fresh,
        ..creds
    };
    let r = ask(&s, srv.addr, &allocate_req(tid(3), Some(&creds)));
    assert_eq!(error_code(&r), None);

    // The library client retries a 438 by itself.
    let mut c = turn(&srv);
    clock.fetch_add(61, Ordering::Relaxed);
    c.create_permission(&[IpAddr::from([127, 0, 0, 1])])
        .unwrap();
}

fn quota_486(d: DriverChoice) {
    let srv = start(d, 2, |c| c.user_quota = 1);
    let a = turn(&srv);
    let cfg = TurnConfig::new(srv.addr, "u", "p");
    assert_eq!(rejected(TurnClient::allocate(cfg.clone())), 486);
    a.close().unwrap();
    let b = TurnClient::allocate(cfg).unwrap();
    b.close().unwrap();
    wait_for("two deletions", || {
        srv.events.deleted.lock().unwrap().len() == 2
    });
}

// ---- relaying -------------------------------------------------------------------------------

fn permission_required(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let mut c = turn(&srv);
    let peer = udp();
    peer.send_to(b"too early", c.relayed_addr()).unwrap();
    wait_for("the discard", || {
        srv.events
            .discarded
            .lock()
            .unwrap()
            .contains(&DiscardReason::NoPermission)
    });
    // Sending to a peer without permission is dropped too.
    c.send(peer.local_addr().unwrap(), b"dropped").unwrap();
    wait_for("the second discard", || {
        srv.events
            .discarded
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == DiscardReason::NoPermission)
            .count()
            == 2
    });
    c.create_permission(&[IpAddr::from([127, 0, 0, 1])])
        .unwrap();
    peer.send_to(b"now", c.relayed_addr()).unwrap();
    let (from, data) = c.recv(TIMEOUT).unwrap().expect("relayed data");
    assert_eq!(from, peer.local_addr().unwrap());
    assert_eq!(
        data, b"now",
        "the datagram sent without permission was relayed"
    );
    // And the other way round, now permitted (a Send indication).
    c.send(peer.local_addr().unwrap(), b"out").unwrap();
    let mut buf = [0u8; 64];
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (n, from) = recv_retry(&peer, &mut buf);
    assert_eq!(&buf[..n], b"out");
    assert_eq!(from, c.relayed_addr());
}

fn channel_bind_and_channel_data_round_trip(d: DriverChoice) {
    let srv = start(d, 2, |_| {});
    let peer = Peer::echo();
    let mut c = turn(&srv);
    c.create_permission(&[peer.addr.ip()]).unwrap();
    let ch = c.channel_bind(peer.addr).unwrap();
    assert_eq!(ch, ChannelNumber::MIN);
    let n = 200;
    for i in 0..n {
        let msg = format!("datagram {i:04}").repeat(1 + i % 7);
        c.send(peer.addr, msg.as_bytes()).unwrap();
        let (from, data) = c.recv(TIMEOUT).unwrap().expect("echo");
        assert_eq!(from, peer.addr);
        assert_eq!(data, msg.as_bytes());
    }
    // What arrived was ChannelData, not Data indications: check one on a raw socket.
    let raw = c.socket().try_clone().unwrap();
    c.send(peer.addr, b"raw").unwrap();
    let mut buf = [0u8; 64];
    let (k, _) = recv_retry(&raw, &mut buf);
    let cd = ChannelData::parse_datagram(&buf[..k]).unwrap();
    assert_eq!((cd.channel(), cd.data()), (ch, &b"raw"[..]));
}

fn send_and_data_indications(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let peer = Peer::echo();
    let mut c = turn(&srv);
    c.create_permission(&[peer.addr.ip()]).unwrap();
    for i in 0..20u8 {
        let msg = vec![i; 1 + usize::from(i) * 50];
        c.send(peer.addr, &msg).unwrap();
        let (from, data) = c.recv(TIMEOUT).unwrap().expect("echo");
        assert_eq!((from, data), (peer.addr, msg));
    }
    let raw = c.socket().try_clone().unwrap();
    c.send(peer.addr, b"ind").unwrap();
    let mut buf = [0u8; 128];
    let (k, _) = recv_retry(&raw, &mut buf);
    let m = StunMessage::parse(&buf[..k]).unwrap();
    assert_eq!(m.message_type(), MessageType::DATA_INDICATION);
    assert_eq!(m.xor_peer_address().unwrap(), Some(peer.addr));
    assert_eq!(m.data().unwrap().unwrap().as_bytes(), b"ind");
}

fn channel_bind_rules(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let s = udp();
    let creds = challenge(&s, srv.addr, "u", "p");
    assert_eq!(
        error_code(&ask(&s, srv.addr, &allocate_req(tid(2), Some(&creds)))),
        None
    );
    let (pa, pb): (SocketAddr, SocketAddr) = (
        "127.0.0.1:5001".parse().unwrap(),
        "127.0.0.1:5002".parse().unwrap(),
    );
    let mut n = 10u8;
    let mut bind = |ch: u16, peer: Option<SocketAddr>| {
        n += 1;
        let req = request(Method::CHANNEL_BIND, tid(n), Some(&creds), |b| {
            b.raw_attribute(AttrType::CHANNEL_NUMBER, &[(ch >> 8) as u8, ch as u8, 0, 0]);
            if let Some(p) = peer {
                b.xor_peer_address(p);
            }
        });
        error_code(&ask(&s, srv.addr, &req))
    };
    assert_eq!(bind(0x3FFF, Some(pa)), Some(400), "below the range");
    assert_eq!(bind(0x5000, Some(pa)), Some(400), "above RFC 8656's range");
    assert_eq!(bind(0x4000, None), Some(400), "no peer");
    assert_eq!(bind(0x4000, Some(pa)), None);
    assert_eq!(
        bind(0x4000, Some(pb)),
        Some(400),
        "number bound to another peer"
    );
    assert_eq!(
        bind(0x4001, Some(pa)),
        Some(400),
        "peer bound to another number"
    );
    assert_eq!(
        bind(0x4000, Some(pa)),
        None,
        "rebinding the same pair refreshes"
    );
    assert_eq!(bind(0x4FFF, Some(pb)), None);
    // CreatePermission without a peer: 400.
    let req = request(Method::CREATE_PERMISSION, tid(99), Some(&creds), |_| {});
    assert_eq!(error_code(&ask(&s, srv.addr, &req)), Some(400));
}

fn refresh_zero_deletes(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let mut c = turn(&srv);
    let relayed = c.relayed_addr();
    assert_eq!(c.refresh(Some(1800)).unwrap(), Duration::from_secs(1800));
    assert_eq!(c.refresh(Some(0)).unwrap(), Duration::ZERO);
    assert_eq!(
        srv.events.deleted.lock().unwrap().as_slice(),
        &[DeleteReason::Refreshed]
    );
    assert_eq!(rejected(c.create_permission(&[relayed.ip()])), 437);
    // The relay socket is closed: its port can be bound again.
    wait_for("the relay port's release", || {
        UdpSocket::bind(relayed).is_ok()
    });
}

fn allocation_expires(d: DriverChoice) {
    let srv = start(d, 1, |c| {
        c.default_lifetime = Duration::from_secs(1);
        c.max_lifetime = Duration::from_secs(1);
    });
    let mut c = turn(&srv);
    assert_eq!(c.lifetime(), Duration::from_secs(1));
    let t0 = Instant::now();
    wait_for("expiry", || !srv.events.deleted.lock().unwrap().is_empty());
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        srv.events.deleted.lock().unwrap().as_slice(),
        &[DeleteReason::Expired]
    );
    assert_eq!(
        rejected(c.create_permission(&[IpAddr::from([127, 0, 0, 1])])),
        437
    );
    // The client refreshes by itself (half-way through short lifetimes) while it receives,
    // so this allocation outlives its first lifetime twice over.
    let mut c = turn(&srv);
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert!(c.recv(Duration::from_millis(100)).unwrap().is_none());
    }
    assert_eq!(srv.events.deleted.lock().unwrap().len(), 1);
    c.create_permission(&[IpAddr::from([127, 0, 0, 1])])
        .unwrap();
}

fn loopback_peer_refused_unless_allowed(d: DriverChoice) {
    let srv = start(d, 1, |c| c.allow_loopback_peers = false);
    let mut c = turn(&srv);
    let lo = IpAddr::from([127, 0, 0, 1]);
    assert_eq!(rejected(c.create_permission(&[lo])), 403);
    assert_eq!(rejected(c.channel_bind(SocketAddr::new(lo, 9))), 403);
    assert_eq!(
        rejected(c.create_permission(&[IpAddr::from([10, 0, 0, 1])])),
        403
    );
    assert_eq!(
        rejected(c.create_permission(&[IpAddr::from([224, 0, 0, 1])])),
        403
    );
    // A peer of the other family: 443.
    assert_eq!(
        rejected(c.create_permission(&["2001:db8::1".parse().unwrap()])),
        443
    );
    // A public address is fine (nothing is sent to it).
    c.create_permission(&[IpAddr::from([198, 51, 100, 7])])
        .unwrap();
}

fn turn_over_tcp_pads_channel_data(d: DriverChoice) {
    let srv = start(d, 2, |_| {});
    let peer = Peer::echo();
    let mut t = TcpStream::connect(srv.addr).unwrap();
    t.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut inbuf = Vec::new();
    let mut next_frame = |t: &mut TcpStream| -> Vec<u8> {
        loop {
            match stream_frame(&inbuf, &Limits::DEFAULT).unwrap() {
                StreamFrame::Stun { len } | StreamFrame::ChannelData { len }
                    if inbuf.len() >= len =>
                {
                    return inbuf.drain(..len).collect();
                }
                _ => {}
            }
            let mut chunk = [0u8; 2048];
            let n = read_retry(t, &mut chunk);
            assert!(n > 0);
            inbuf.extend_from_slice(&chunk[..n]);
        }
    };
    t.write_all(&allocate_req(tid(1), None)).unwrap();
    let r = next_frame(&mut t);
    let m = StunMessage::parse(&r).unwrap();
    let creds = Creds {
        user: "u".into(),
        realm: m.realm().unwrap().unwrap().into(),
        nonce: m.nonce().unwrap().unwrap().into(),
        key: LongTermKey::md5("u", "r", "p").unwrap(),
    };
    t.write_all(&allocate_req(tid(2), Some(&creds))).unwrap();
    let r = next_frame(&mut t);
    assert_eq!(error_code(&r), None);
    let req = request(Method::CHANNEL_BIND, tid(3), Some(&creds), |b| {
        b.channel_number(ChannelNumber::MIN)
            .xor_peer_address(peer.addr);
    });
    t.write_all(&req).unwrap();
    assert_eq!(error_code(&next_frame(&mut t)), None);
    for len in [1usize, 2, 3, 4, 5, 7, 100, 1001] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut out = Vec::new();
        ChannelData::new(ChannelNumber::MIN, &data)
            .encode(&mut out, true)
            .unwrap();
        assert_eq!(out.len() % 4, 0);
        t.write_all(&out).unwrap();
        let f = next_frame(&mut t);
        assert_eq!(f.len() % 4, 0, "ChannelData over TCP is padded");
        let (cd, n) = ChannelData::parse_stream(&f).unwrap();
        assert_eq!((cd.data(), n), (&data[..], f.len()));
    }
    drop(t);
    wait_for("the TCP allocation's deletion", || {
        srv.events.deleted.lock().unwrap().as_slice() == [DeleteReason::ConnectionClosed]
    });
}

// ---- configuration --------------------------------------------------------------------------

fn hooks_and_rest_credentials(d: DriverChoice) {
    let now = 2_000_000_000u64;
    let srv = start(d, 1, |c| {
        c.rest_secret = Some(b"north".to_vec());
        c.unix_clock = Some(Arc::new(move || now));
        c.hooks.before_allocate = Some(Arc::new(|i| {
            if i.username.ends_with(":banned") {
                Err(ErrorCode::FORBIDDEN)
            } else {
                Ok(())
            }
        }));
        c.lookup = Some(Arc::new(|u, realm| {
            (u == "looked-up" && realm == "r").then(|| "secret".to_string())
        }));
    });
    let user = RestCredentials::username(now + 60, "alice");
    let pw = RestCredentials::password(b"north", &user);
    let c = TurnClient::allocate(TurnConfig::new(srv.addr, &user, pw.as_str())).unwrap();
    c.close().unwrap();
    // Expired REST credentials: 401.
    let old = RestCredentials::username(now - 1, "alice");
    let pw = RestCredentials::password(b"north", &old);
    assert_eq!(
        rejected(TurnClient::allocate(TurnConfig::new(
            srv.addr,
            &old,
            pw.as_str()
        ))),
        401
    );
    // The lookup callback.
    TurnClient::allocate(TurnConfig::new(srv.addr, "looked-up", "secret"))
        .unwrap()
        .close()
        .unwrap();
    // The before-allocate hook rejects, and nothing is created.
    let banned = RestCredentials::username(now + 60, "banned");
    let pw = RestCredentials::password(b"north", &banned);
    let created = srv.events.created.lock().unwrap().len();
    assert_eq!(
        rejected(TurnClient::allocate(TurnConfig::new(
            srv.addr,
            &banned,
            pw.as_str()
        ))),
        403
    );
    assert_eq!(srv.events.created.lock().unwrap().len(), created);
}

fn alternate_server_redirect(d: DriverChoice) {
    let target = start(d, 1, |_| {});
    let to = target.addr;
    let srv = start(d, 1, move |c| c.alternate_server = Some(to));
    let s = udp();
    let r = ask(
        &s,
        srv.addr,
        &request(Method::BINDING, tid(1), None, |_| {}),
    );
    assert_eq!(error_code(&r), Some(300));
    assert_eq!(
        StunMessage::parse(&r).unwrap().alternate_server().unwrap(),
        Some(to)
    );
    // The client follows it and ends at the target.
    assert_eq!(
        client::binding_with(&s, srv.addr, &Default::default()).unwrap(),
        s.local_addr().unwrap()
    );
    // Allocate is redirected after authentication.
    let cfg = TurnConfig::new(srv.addr, "u", "p");
    match TurnClient::allocate(cfg) {
        Err(ClientError::Redirected(a)) => assert_eq!(a, to),
        other => panic!("{other:?}"),
    }
}

fn even_port_reservation(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let s = udp();
    let creds = challenge(&s, srv.addr, "u", "p");
    let req = request(Method::ALLOCATE, tid(2), Some(&creds), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .even_port(true);
    });
    let r = ask(&s, srv.addr, &req);
    let m = StunMessage::parse(&r).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", error_code(&r));
    let relayed = m.xor_relayed_address().unwrap().unwrap();
    assert_eq!(relayed.port() % 2, 0, "{relayed}");
    let token = m.reservation_token().unwrap().expect("a RESERVATION-TOKEN");
    // The reserved port is bound (so nobody else gets it) and relays nothing yet.
    assert!(UdpSocket::bind(SocketAddr::new(relayed.ip(), relayed.port() + 1)).is_err());
    // Token and EVEN-PORT together: 400; an unknown token: 508.
    let s2 = udp();
    let c2 = challenge(&s2, srv.addr, "u", "p");
    let req = request(Method::ALLOCATE, tid(3), Some(&c2), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .even_port(false)
            .reservation_token(token);
    });
    assert_eq!(error_code(&ask(&s2, srv.addr, &req)), Some(400));
    let req = request(Method::ALLOCATE, tid(4), Some(&c2), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .reservation_token([9; 8]);
    });
    assert_eq!(error_code(&ask(&s2, srv.addr, &req)), Some(508));
    // The token claims the next port, once.
    let req = request(Method::ALLOCATE, tid(5), Some(&c2), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .reservation_token(token);
    });
    let r = ask(&s2, srv.addr, &req);
    let m = StunMessage::parse(&r).unwrap();
    assert_eq!(m.class(), Class::SuccessResponse, "{:?}", error_code(&r));
    assert_eq!(
        m.xor_relayed_address().unwrap().unwrap().port(),
        relayed.port() + 1
    );
    let s3 = udp();
    let c3 = challenge(&s3, srv.addr, "u", "p");
    let req = request(Method::ALLOCATE, tid(6), Some(&c3), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .reservation_token(token);
    });
    assert_eq!(error_code(&ask(&s3, srv.addr, &req)), Some(508));
    // EVEN-PORT without R: an even port, no token.
    let req = request(Method::ALLOCATE, tid(7), Some(&c3), |b| {
        b.requested_transport(TransportProtocol::UDP)
            .even_port(false);
    });
    let m = ask(&s3, srv.addr, &req);
    let m = StunMessage::parse(&m).unwrap();
    assert_eq!(m.xor_relayed_address().unwrap().unwrap().port() % 2, 0);
    assert_eq!(m.reservation_token().unwrap(), None);
}

/// Garbage, truncations and bit flips over UDP and TCP: no answer that is not STUN, no
/// crash; the server still answers afterwards.
fn hostile_input_is_dropped(d: DriverChoice) {
    let srv = start(d, 1, |_| {});
    let s = udp();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let creds = challenge_quiet(&s, srv.addr);
    let valid = allocate_req(tid(7), Some(&creds));
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut rand = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut sink = [0u8; 4096];
    for i in 0..2000 {
        let mut m = valid.clone();
        match i % 4 {
            0 => m.truncate((rand() as usize) % m.len()),
            1 => {
                let at = (rand() as usize) % m.len();
                m[at] ^= 1 << (rand() % 8);
            }
            2 => m = (0..(rand() % 64)).map(|_| rand() as u8).collect(),
            _ => {
                m = vec![0x40, 0x00, 0xFF, 0xFF];
                m.extend((0..(rand() % 8)).map(|_| rand() as u8));
            }
        }
        let _ = s.send_to(&m, srv.addr);
        while s.recv_from(&mut sink).is_ok() {}
    }
    for _ in 0..50 {
        let mut t = TcpStream::connect(srv.addr).unwrap();
        let junk: Vec<u8> = (0..(rand() % 200)).map(|_| rand() as u8).collect();
        let _ = t.write_all(&junk);
    }
    let s = udp();
    assert_eq!(
        client::binding_with(&s, srv.addr, &Default::default()).unwrap(),
        s.local_addr().unwrap()
    );
    assert!(!srv.events.discarded.lock().unwrap().is_empty());
}

fn challenge_quiet(s: &UdpSocket, srv: SocketAddr) -> Creds {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let c = challenge(s, srv, "u", "p");
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    c
}
