//! Blocking STUN and TURN clients on std sockets, driven by the sans-IO
//! [`ClientTransaction`] (RFC 8489 §6.2 retransmissions over UDP, one send and the Ti
//! timeout over TCP).
//!
//! ```no_run
//! use ringwire::stun::client::{self, TurnClient, TurnConfig};
//! let server = "127.0.0.1:3478".parse().unwrap();
//! println!("mapped-address: {}", client::binding(server).unwrap());
//!
//! let mut turn = TurnClient::allocate(TurnConfig::new(server, "u", "p")).unwrap();
//! let peer = "198.51.100.7:5000".parse().unwrap();
//! turn.create_permission(&[std::net::IpAddr::from([198, 51, 100, 7])]).unwrap();
//! turn.channel_bind(peer).unwrap();
//! turn.send(peer, b"hello").unwrap();
//! if let Some((from, data)) = turn.recv(std::time::Duration::from_secs(1)).unwrap() {
//!     println!("{from} sent {} bytes", data.len());
//! }
//! turn.close().unwrap(); // Refresh with LIFETIME 0
//! ```
//!
//! What they do not do: TCP or TLS to a TURN server, DTLS, ICE. A Binding follows 300 Try
//! Alternate up to [`MAX_REDIRECTS`] times; the TURN client reports 300 as an error.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use ringwire_stun::{
    ChannelData, ChannelNumber, Class, ClientTransaction, ErrorCode, Limits, LongTermKey,
    MessageBuilder, MessageType, Method, PacketKind, RetransmitConfig, StreamFrame, StunError,
    StunMessage, TransactionId, TransactionState, Transport, TransportProtocol, classify,
    stream_frame,
};

/// Most 300 Try Alternate redirects a Binding follows (a loop guard).
pub const MAX_REDIRECTS: usize = 3;

/// Largest datagram the clients receive.
const RECV_BUF: usize = 65536;

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// No response within the retransmission schedule (or Ti over TCP).
    Timeout,
    /// The server answered with this error (after the 401 / 438 retries).
    Rejected(ErrorCode),
    /// The server redirected the request (300) here.
    Redirected(SocketAddr),
    /// The response could not be used (malformed, missing attribute, bad integrity).
    BadResponse(StunError),
    /// The name did not resolve to an address.
    Resolve,
    /// The TLS handshake failed (a certificate not trusted, a wrong name...).
    Tls(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Timeout => f.write_str("no response (timed out)"),
            Self::Rejected(c) => write!(f, "server answered {} {}", c.get(), c.reason_phrase()),
            Self::Redirected(a) => write!(f, "redirected to {a} (300 Try Alternate)"),
            Self::BadResponse(e) => write!(f, "unusable response: {e}"),
            Self::Resolve => f.write_str("address did not resolve"),
            Self::Tls(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<StunError> for ClientError {
    fn from(e: StunError) -> Self {
        Self::BadResponse(e)
    }
}

/// Resolve `HOST:PORT`, preferring IPv4.
pub fn resolve(s: &str) -> Result<SocketAddr, ClientError> {
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|_| ClientError::Resolve)?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or(ClientError::Resolve)
}

/// A random transaction id.
pub fn random_tid() -> TransactionId {
    let mut id = [0u8; 12];
    super::fill_random(&mut id);
    TransactionId::new(id)
}

fn local_for(server: SocketAddr) -> SocketAddr {
    if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    }
}

/// Run one request over UDP until its response, retransmitting on the RTO schedule.
/// Datagrams that are not the response go to `other`.
fn transact_udp(
    sock: &UdpSocket,
    server: SocketAddr,
    request: Vec<u8>,
    rt: &RetransmitConfig,
    buf: &mut [u8],
    other: &mut dyn FnMut(SocketAddr, &[u8]),
) -> Result<Vec<u8>, ClientError> {
    let mut tx = ClientTransaction::new(Instant::now(), request, Transport::Udp, *rt)?;
    let mut out = Vec::new();
    loop {
        out.clear();
        if tx.poll_transmit(&mut out) {
            sock.send_to(&out, server)?;
        }
        let Some(deadline) = tx.poll_timeout() else {
            return Err(ClientError::Timeout);
        };
        let now = Instant::now();
        if now >= deadline {
            tx.handle_timeout(now);
            if tx.state() == TransactionState::TimedOut {
                return Err(ClientError::Timeout);
            }
            continue;
        }
        sock.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
        match sock.recv_from(buf) {
            Ok((n, from)) => {
                let d = buf.get(..n).unwrap_or_default();
                if from == server
                    && classify(d) == PacketKind::Stun
                    && let Ok(m) = StunMessage::parse(d)
                    && tx.handle_response(&m)
                {
                    return Ok(d.to_vec());
                }
                other(from, d);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // An ICMP error reported on the socket (port unreachable), or a signal: keep
            // retransmitting.
            Err(e) if retry_kind(e.kind()) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Errors a receive loop retries: a signal, or an ICMP port-unreachable reported on the
/// socket (UDP is connectionless; the server may come back).
fn retry_kind(k: io::ErrorKind) -> bool {
    matches!(
        k,
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
    )
}

fn binding_request() -> Vec<u8> {
    let mut req = Vec::new();
    let mut b = MessageBuilder::new(&mut req, MessageType::BINDING_REQUEST, random_tid());
    b.software("ringwire stun-client").fingerprint();
    let _ = b.finish();
    req
}

/// Read the mapped address out of a Binding response (or the redirect / error it carries).
fn binding_result(resp: &[u8]) -> Result<SocketAddr, ClientError> {
    let m = StunMessage::parse(resp)?;
    if m.class() == Class::ErrorResponse {
        let code = m.error_code()?.map_or(ErrorCode::SERVER_ERROR, |e| e.code);
        if code == ErrorCode::TRY_ALTERNATE
            && let Ok(Some(alt)) = m.alternate_server()
        {
            return Err(ClientError::Redirected(alt));
        }
        return Err(ClientError::Rejected(code));
    }
    if let Some(a) = m.xor_mapped_address()? {
        return Ok(a);
    }
    m.mapped_address()?
        .ok_or(ClientError::BadResponse(StunError::MissingAttribute(
            ringwire_stun::AttrType::XOR_MAPPED_ADDRESS,
        )))
}

/// Discover the mapped (server-reflexive) address over UDP with the default RFC 8489
/// schedule (RTO 500 ms, 7 sends, 39.5 s).
pub fn binding(server: SocketAddr) -> Result<SocketAddr, ClientError> {
    let sock = UdpSocket::bind(local_for(server))?;
    binding_with(&sock, server, &RetransmitConfig::DEFAULT)
}

/// [`binding`] on a given socket and schedule, following up to [`MAX_REDIRECTS`] 300s.
pub fn binding_with(
    sock: &UdpSocket,
    server: SocketAddr,
    rt: &RetransmitConfig,
) -> Result<SocketAddr, ClientError> {
    let mut server = server;
    let mut buf = vec![0u8; RECV_BUF];
    for _ in 0..=MAX_REDIRECTS {
        let resp = transact_udp(
            sock,
            server,
            binding_request(),
            rt,
            &mut buf,
            &mut |_, _| {},
        )?;
        match binding_result(&resp) {
            Err(ClientError::Redirected(alt)) => server = alt,
            r => return r,
        }
    }
    Err(ClientError::Rejected(ErrorCode::TRY_ALTERNATE))
}

/// Discover the mapped address over TCP: one send, then wait up to `rt.reliable_timeout`.
pub fn binding_tcp(server: SocketAddr, rt: &RetransmitConfig) -> Result<SocketAddr, ClientError> {
    let mut s = TcpStream::connect_timeout(&server, rt.reliable_timeout)?;
    let ctl = s.try_clone()?;
    binding_stream(&mut s, &ctl, rt)
}

/// Discover the mapped address over TLS (STUN/TURN on port 5349): the certificate is verified
/// for `host` by `tls` (see [`ringwire_runtime::tls::client_config`]).
pub fn binding_tls(
    server: SocketAddr,
    host: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    rt: &RetransmitConfig,
) -> Result<SocketAddr, ClientError> {
    let tcp = TcpStream::connect_timeout(&server, rt.reliable_timeout)?;
    tcp.set_read_timeout(Some(rt.reliable_timeout))?;
    let ctl = tcp.try_clone()?;
    let mut s = ringwire_runtime::tls::connect_blocking(tls, host, tcp)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    binding_stream(&mut s, &ctl, rt)
}

/// One Binding transaction over a reliable stream; `ctl` is the socket, for read timeouts.
fn binding_stream(
    s: &mut (impl Read + Write),
    ctl: &TcpStream,
    rt: &RetransmitConfig,
) -> Result<SocketAddr, ClientError> {
    let req = binding_request();
    let mut tx = ClientTransaction::new(Instant::now(), req, Transport::Reliable, *rt)?;
    let mut out = Vec::new();
    tx.poll_transmit(&mut out);
    s.write_all(&out)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(deadline) = tx.poll_timeout() else {
            return Err(ClientError::Timeout);
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::Timeout);
        }
        ctl.set_read_timeout(Some(deadline - now))?;
        let n = match s.read(&mut chunk) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Timeout);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        while let Ok(StreamFrame::Stun { len } | StreamFrame::ChannelData { len }) =
            stream_frame(&buf, &Limits::DEFAULT)
        {
            if buf.len() < len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..len).collect();
            if let Ok(m) = StunMessage::parse(&frame)
                && tx.handle_response(&m)
            {
                return binding_result(&frame);
            }
        }
    }
}

/// What [`binding_load`] measured.
#[derive(Clone, Copy, Debug)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: u64,
    /// Matching responses received.
    pub received: u64,
    /// From the first send to the last response (or the idle timeout).
    pub elapsed: Duration,
}

/// A closed-loop Binding load: keep `window` requests in flight on one UDP socket, send a
/// new one for each response, until `count` were sent and answered (or nothing arrived for
/// `idle`). No retransmissions: a lost request just shrinks the window until the idle
/// timeout, and shows as `received < sent`.
pub fn binding_load(
    server: SocketAddr,
    count: u64,
    window: u64,
    idle: Duration,
) -> Result<LoadReport, ClientError> {
    let sock = UdpSocket::bind(local_for(server))?;
    sock.set_read_timeout(Some(idle))?;
    // A bare 20-byte Binding request; each gets a fresh transaction id (a counter).
    let mut req = Vec::new();
    MessageBuilder::new(&mut req, MessageType::BINDING_REQUEST, random_tid()).finish()?;
    let mut buf = vec![0u8; 2048];
    let (mut sent, mut received) = (0u64, 0u64);
    let t0 = Instant::now();
    let send_one = |sent: &mut u64, req: &mut Vec<u8>| -> io::Result<()> {
        if let Some(id) = req.get_mut(8..16) {
            id.copy_from_slice(&sent.to_be_bytes());
        }
        sock.send_to(req, server)?;
        *sent += 1;
        Ok(())
    };
    while sent < count.min(window.max(1)) {
        send_one(&mut sent, &mut req)?;
    }
    while received < sent {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let ok = StunMessage::parse(buf.get(..n).unwrap_or_default())
                    .is_ok_and(|m| m.class() == Class::SuccessResponse);
                if ok {
                    received += 1;
                    if sent < count {
                        send_one(&mut sent, &mut req)?;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) if retry_kind(e.kind()) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(LoadReport {
        sent,
        received,
        elapsed: t0.elapsed(),
    })
}

/// What a [`TurnClient`] needs.
#[derive(Clone, Debug)]
pub struct TurnConfig {
    /// The TURN server (UDP).
    pub server: SocketAddr,
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// The realm to expect; the client uses the REALM the server sends in its 401.
    pub realm: Option<String>,
    /// LIFETIME to ask for in Allocate and Refresh (`None`: the server's default).
    pub lifetime: Option<u32>,
    /// Retransmission schedule.
    pub retransmit: RetransmitConfig,
    /// Refresh permissions this often (RFC 8656 lifetime 300 s). Default 240 s.
    pub permission_refresh: Duration,
    /// Refresh channel bindings this often (RFC 8656 lifetime 600 s). Default 540 s.
    pub channel_refresh: Duration,
}

impl TurnConfig {
    /// A configuration with the defaults: server's lifetime, RFC retransmissions, refreshes
    /// at 240 s (permissions) and 540 s (channels).
    pub fn new(server: SocketAddr, username: &str, password: &str) -> Self {
        Self {
            server,
            username: username.into(),
            password: password.into(),
            realm: None,
            lifetime: None,
            retransmit: RetransmitConfig::DEFAULT,
            permission_refresh: Duration::from_secs(240),
            channel_refresh: Duration::from_secs(540),
        }
    }
}

/// When to refresh an allocation of `lifetime`: a minute before it expires, or at half of
/// it when it is two minutes or shorter.
fn refresh_after(lifetime: Duration) -> Duration {
    if lifetime > Duration::from_secs(120) {
        lifetime - Duration::from_secs(60)
    } else {
        lifetime / 2
    }
}

/// A TURN client over UDP with one allocation.
#[derive(Debug)]
pub struct TurnClient {
    sock: UdpSocket,
    cfg: TurnConfig,
    realm: String,
    nonce: String,
    key: Option<LongTermKey>,
    relayed: SocketAddr,
    mapped: SocketAddr,
    lifetime: Duration,
    refresh_at: Instant,
    /// Peer IPs with a permission, and when it was last refreshed.
    perms: HashMap<IpAddr, Instant>,
    /// Peers with a channel: number and when it was last bound.
    channels: HashMap<SocketAddr, (ChannelNumber, Instant)>,
    by_channel: HashMap<u16, SocketAddr>,
    next_channel: u16,
    /// Data received while a transaction was running.
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
}

/// Turn a datagram from the server into (peer, data) if it is relayed data.
fn relayed_data(
    server: SocketAddr,
    by_channel: &HashMap<u16, SocketAddr>,
    from: SocketAddr,
    d: &[u8],
) -> Option<(SocketAddr, Vec<u8>)> {
    if from != server {
        return None;
    }
    match classify(d) {
        PacketKind::ChannelData => {
            let cd = ChannelData::parse_datagram(d).ok()?;
            let peer = by_channel.get(&cd.channel().get())?;
            Some((*peer, cd.data().to_vec()))
        }
        PacketKind::Stun => {
            let m = StunMessage::parse(d).ok()?;
            if m.message_type() != MessageType::DATA_INDICATION {
                return None;
            }
            let peer = m.xor_peer_address().ok()??;
            let data = m.data().ok()??;
            Some((peer, data.as_bytes().to_vec()))
        }
        PacketKind::Other => None,
    }
}

impl TurnClient {
    /// Allocate a UDP relay: a first Allocate, the server's 401 with REALM and NONCE, the
    /// authenticated Allocate (and one more on 438 Stale Nonce).
    pub fn allocate(cfg: TurnConfig) -> Result<Self, ClientError> {
        let sock = UdpSocket::bind(local_for(cfg.server))?;
        Self::allocate_on(sock, cfg)
    }

    /// [`TurnClient::allocate`] from a given socket.
    pub fn allocate_on(sock: UdpSocket, cfg: TurnConfig) -> Result<Self, ClientError> {
        let unset = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut c = Self {
            sock,
            realm: cfg.realm.clone().unwrap_or_default(),
            cfg,
            nonce: String::new(),
            key: None,
            relayed: unset,
            mapped: unset,
            lifetime: Duration::ZERO,
            refresh_at: Instant::now(),
            perms: HashMap::new(),
            channels: HashMap::new(),
            by_channel: HashMap::new(),
            next_channel: ChannelNumber::MIN.get(),
            inbox: VecDeque::new(),
            buf: vec![0u8; RECV_BUF],
        };
        let lifetime = c.cfg.lifetime;
        let resp = c.request(Method::ALLOCATE, &|b| {
            b.requested_transport(TransportProtocol::UDP);
            if let Some(l) = lifetime {
                b.lifetime(l);
            }
        })?;
        let m = StunMessage::parse(&resp)?;
        let missing = |t| ClientError::BadResponse(StunError::MissingAttribute(t));
        c.relayed = m
            .xor_relayed_address()?
            .ok_or(missing(ringwire_stun::AttrType::XOR_RELAYED_ADDRESS))?;
        c.mapped = m.xor_mapped_address()?.unwrap_or(unset);
        let secs = m
            .lifetime()?
            .ok_or(missing(ringwire_stun::AttrType::LIFETIME))?;
        c.set_lifetime(secs);
        Ok(c)
    }

    fn set_lifetime(&mut self, secs: u32) {
        self.lifetime = Duration::from_secs(u64::from(secs));
        self.refresh_at = Instant::now() + refresh_after(self.lifetime);
    }

    /// The relayed transport address.
    pub fn relayed_addr(&self) -> SocketAddr {
        self.relayed
    }

    /// The client's address as the server saw it (XOR-MAPPED-ADDRESS of the Allocate).
    pub fn mapped_addr(&self) -> SocketAddr {
        self.mapped
    }

    /// The lifetime the server granted last.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The realm the server asked for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The local socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Send an authenticated request (handling the first 401 and a 438) and return the
    /// success response.
    fn request(
        &mut self,
        method: Method,
        add: &dyn Fn(&mut MessageBuilder<'_>),
    ) -> Result<Vec<u8>, ClientError> {
        let mut stale_retries = 0;
        loop {
            let mut req = Vec::new();
            let mut b = MessageBuilder::new(
                &mut req,
                MessageType::new(method, Class::Request),
                random_tid(),
            );
            add(&mut b);
            let had_key = self.key;
            if let Some(key) = &self.key {
                b.username(&self.cfg.username)
                    .realm(&self.realm)
                    .nonce(&self.nonce)
                    .message_integrity(key.as_bytes());
            }
            b.fingerprint();
            b.finish()?;
            let (server, by_channel) = (self.cfg.server, &self.by_channel);
            let inbox = &mut self.inbox;
            let resp = transact_udp(
                &self.sock,
                server,
                req,
                &self.cfg.retransmit,
                &mut self.buf,
                &mut |from, d| {
                    if let Some(x) = relayed_data(server, by_channel, from, d) {
                        inbox.push_back(x);
                    }
                },
            )?;
            let m = StunMessage::parse(&resp)?;
            if m.class() == Class::SuccessResponse {
                // RFC 8489 §9.2.5: a response whose integrity does not verify is discarded.
                if let Some(k) = &had_key
                    && (m.has_integrity() || m.has_integrity_sha256())
                {
                    m.verify_any_integrity(k.as_bytes())?;
                }
                return Ok(resp);
            }
            let code = m.error_code()?.map_or(ErrorCode::SERVER_ERROR, |e| e.code);
            let realm = m.realm().ok().flatten();
            let nonce = m.nonce().ok().flatten();
            match (code, nonce) {
                // The challenge: learn realm and nonce, derive the key, retry once.
                (ErrorCode::UNAUTHORIZED, Some(n)) if had_key.is_none() => {
                    if let Some(r) = realm {
                        if self.cfg.realm.as_deref().is_some_and(|want| want != r) {
                            tracing::warn!(expected = ?self.cfg.realm, got = r, "server realm differs");
                        }
                        self.realm = r.to_owned();
                    }
                    self.nonce = n.to_owned();
                    self.key = Some(LongTermKey::md5(
                        &self.cfg.username,
                        &self.realm,
                        &self.cfg.password,
                    )?);
                }
                // RFC 8489 §9.2.5: on 438 retry with the new NONCE (bounded).
                (ErrorCode::STALE_NONCE, Some(n)) if stale_retries < 2 => {
                    stale_retries += 1;
                    if let Some(r) = realm {
                        self.realm = r.to_owned();
                    }
                    self.nonce = n.to_owned();
                    if self.key.is_none() {
                        self.key = Some(LongTermKey::md5(
                            &self.cfg.username,
                            &self.realm,
                            &self.cfg.password,
                        )?);
                    }
                }
                (ErrorCode::TRY_ALTERNATE, _) => {
                    return Err(match m.alternate_server() {
                        Ok(Some(a)) => ClientError::Redirected(a),
                        _ => ClientError::Rejected(code),
                    });
                }
                _ => return Err(ClientError::Rejected(code)),
            }
        }
    }

    /// CreatePermission for these peer IPs (RFC 8656 §9).
    pub fn create_permission(&mut self, ips: &[IpAddr]) -> Result<(), ClientError> {
        let peers: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
        self.request(Method::CREATE_PERMISSION, &|b| {
            for p in &peers {
                b.xor_peer_address(*p);
            }
        })?;
        let now = Instant::now();
        for ip in ips {
            self.perms.insert(*ip, now);
        }
        Ok(())
    }

    /// Bind the next free channel number (from 0x4000) to `peer`, or refresh its binding
    /// (RFC 8656 §11). The permission for the peer's IP is installed too.
    pub fn channel_bind(&mut self, peer: SocketAddr) -> Result<ChannelNumber, ClientError> {
        let ch = match self.channels.get(&peer) {
            Some((ch, _)) => *ch,
            None => {
                if self.next_channel > ChannelNumber::MAX_RFC8656.get() {
                    return Err(ClientError::Rejected(ErrorCode::INSUFFICIENT_CAPACITY));
                }
                ChannelNumber::new(self.next_channel)
                    .ok_or(ClientError::Rejected(ErrorCode::BAD_REQUEST))?
            }
        };
        self.request(Method::CHANNEL_BIND, &|b| {
            b.channel_number(ch).xor_peer_address(peer);
        })?;
        let now = Instant::now();
        if !self.channels.contains_key(&peer) {
            self.next_channel += 1;
        }
        self.channels.insert(peer, (ch, now));
        self.by_channel.insert(ch.get(), peer);
        self.perms.insert(peer.ip(), now);
        Ok(ch)
    }

    /// Send `data` to `peer`: ChannelData when a channel is bound, else a Send indication.
    /// The server drops it unless a permission for the peer exists.
    pub fn send(&mut self, peer: SocketAddr, data: &[u8]) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(data.len() + 40);
        match self.channels.get(&peer) {
            Some((ch, _)) => {
                ChannelData::new(*ch, data).encode(&mut out, false)?;
            }
            None => {
                let mut b =
                    MessageBuilder::new(&mut out, MessageType::SEND_INDICATION, random_tid());
                b.xor_peer_address(peer).data(data);
                b.finish()?;
            }
        }
        self.sock.send_to(&out, self.cfg.server)?;
        Ok(())
    }

    /// Wait up to `timeout` for relayed data (refreshing what is due first). `None` when
    /// nothing arrived in time.
    pub fn recv(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(SocketAddr, Vec<u8>)>, ClientError> {
        self.keep_alive()?;
        if let Some(x) = self.inbox.pop_front() {
            return Ok(Some(x));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let d = self.buf.get(..n).unwrap_or_default();
                    if let Some(x) = relayed_data(self.cfg.server, &self.by_channel, from, d) {
                        return Ok(Some(x));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if retry_kind(e.kind()) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Refresh the allocation with this LIFETIME (`None`: the configured one); returns the
    /// lifetime granted. `Some(0)` deletes the allocation.
    pub fn refresh(&mut self, lifetime: Option<u32>) -> Result<Duration, ClientError> {
        let want = lifetime.or(self.cfg.lifetime);
        let resp = self.request(Method::REFRESH, &|b| {
            if let Some(l) = want {
                b.lifetime(l);
            }
        })?;
        let m = StunMessage::parse(&resp)?;
        let secs = m.lifetime()?.unwrap_or(0);
        self.set_lifetime(secs);
        Ok(self.lifetime)
    }

    /// Refresh the allocation, permissions and channels whose refresh time has come:
    /// the allocation a minute before expiry (half-way for short lifetimes), permissions
    /// and channels on the configured periods.
    pub fn keep_alive(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if !self.lifetime.is_zero() && now >= self.refresh_at {
            self.refresh(None)?;
        }
        let due: Vec<SocketAddr> = self
            .channels
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= self.cfg.channel_refresh)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.channel_bind(peer)?;
        }
        let due: Vec<IpAddr> = self
            .perms
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= self.cfg.permission_refresh)
            .map(|(ip, _)| *ip)
            .collect();
        if !due.is_empty() {
            self.create_permission(&due)?;
        }
        Ok(())
    }

    /// Delete the allocation (Refresh with LIFETIME 0).
    pub fn close(mut self) -> Result<(), ClientError> {
        self.refresh(Some(0)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_schedule() {
        assert_eq!(
            refresh_after(Duration::from_secs(600)),
            Duration::from_secs(540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }
}
