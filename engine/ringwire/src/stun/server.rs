//! The STUN/TURN server plugin: one per core, owning that core's allocations.
//!
//! An allocation's life (RFC 8656 §7):
//! ```text
//!   Allocate (authenticated) ──► Allocated ──Refresh(LIFETIME>0)──► Allocated (new expiry)
//!                                   │ │
//!        Refresh(LIFETIME=0), expiry │ │ CreatePermission / ChannelBind: permissions (300 s)
//!        TCP close, server stop      │ │ and channels (600 s, then 300 s quarantine)
//!                                   ▼
//!                                Deleted (relay socket closed, quota released)
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ringwire_runtime::slab::{Key, Slab};
use ringwire_runtime::{CloseReason, ConnCtx, ConnId, CoreCtx, Plugin, TimerId, UdpId};
use ringwire_stun::{
    AddressFamily, ChannelData, ChannelNumber, Class, ErrorCode, Limits, LongTermKey,
    MessageBuilder, MessageType, Method, Nonce, PacketKind, RestCredentials, StreamFrame,
    StunError, StunMessage, TransactionId, TransportProtocol, classify, stream_frame,
};

use super::config::{
    AllocationInfo, ClientTransport, DeleteReason, Discard, DiscardReason, StunService,
};
use super::{FxBuild, peer_allowed};

/// The top byte of the core-timer tokens this plugin uses (`'S'`); the low 56 bits carry an
/// allocation key. A router that shares core timers between plugins checks it with
/// [`is_stun_timer`].
const TIMER_TAG: u64 = 0x53 << 56;
/// The token of the timer that purges expired port reservations (`'T'`).
const RESERVATION_TIMER: u64 = 0x54 << 56;
const TAG_MASK: u64 = 0xFF << 56;

/// How long a port reserved by EVEN-PORT's R bit waits for the Allocate that claims it
/// with its RESERVATION-TOKEN (RFC 8656 §7.2: "approximately 30 seconds").
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// Whether a core-timer token belongs to the STUN/TURN plugin.
pub fn is_stun_timer(token: u64) -> bool {
    let tag = token & TAG_MASK;
    tag == TIMER_TAG || tag == RESERVATION_TIMER
}

/// The client side of an allocation's 5-tuple: the server socket and the client address
/// (UDP), or the connection (TCP).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum ClientKey {
    Udp(UdpId, SocketAddr),
    Tcp(ConnId),
}

impl ClientKey {
    fn transport(self) -> ClientTransport {
        match self {
            ClientKey::Udp(..) => ClientTransport::Udp,
            ClientKey::Tcp(_) => ClientTransport::Tcp,
        }
    }
}

/// A permission: a peer IP (the port is ignored, RFC 8656 §9) and when it lapses.
#[derive(Debug)]
struct Permission {
    ip: IpAddr,
    expires: Instant,
}

/// A channel binding and when it lapses (its number and peer stay reserved for the
/// quarantine after that).
#[derive(Debug)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: Instant,
}

/// One allocation: 5-tuple, relay socket, credentials, lifetime, permissions, channels.
#[derive(Debug)]
struct Allocation {
    client: ClientKey,
    client_addr: SocketAddr,
    relay: UdpId,
    relayed: SocketAddr,
    username: Box<str>,
    key: LongTermKey,
    /// The Allocate request's transaction id: its retransmissions get the same answer.
    tid: TransactionId,
    expires: Instant,
    timer: TimerId,
    perms: Vec<Permission>,
    channels: Vec<Channel>,
    /// The token of the port reserved with this allocation (EVEN-PORT with the R bit).
    token: Option<[u8; 8]>,
}

/// A relay port kept for a later Allocate (RFC 8656 §7.2, EVEN-PORT's R bit).
#[derive(Debug)]
struct Reservation {
    sock: UdpId,
    local: SocketAddr,
    expires: Instant,
}

impl Allocation {
    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.perms.iter().any(|p| p.ip == ip && p.expires > now)
    }

    fn info(&self, core: usize, now: Instant) -> AllocationInfo<'_> {
        AllocationInfo {
            core,
            client: self.client_addr,
            transport: self.client.transport(),
            username: &self.username,
            relayed: self.relayed,
            lifetime: self.expires.saturating_duration_since(now),
        }
    }
}

/// A TCP connection's state.
#[derive(Debug)]
pub struct StunConn {
    id: ConnId,
    peer: SocketAddr,
}

/// The authenticated part of a TURN request.
struct Authed<'m> {
    username: &'m str,
    key: LongTermKey,
    sha256: bool,
}

/// Why authentication failed, and so what to answer (RFC 8489 §9.2.4).
enum AuthFail {
    /// 401 with REALM and NONCE: no integrity, unknown user or wrong key.
    Unauthorized,
    /// 400: integrity without USERNAME, REALM or NONCE.
    BadRequest,
    /// 438 with REALM and a fresh NONCE.
    StaleNonce,
    /// 441: authenticated, but not as the allocation's user (answered with integrity).
    WrongCredentials(LongTermKey, bool),
}

/// The STUN/TURN server for one core. Make it with [`StunService::plugin`].
pub struct StunServer {
    svc: StunService,
    core: usize,
    /// This core's slice of the relay port range.
    ports: Option<(u16, u16)>,
    /// Where the next port search starts, as an offset in the slice.
    cursor: u32,
    allocs: Slab<Allocation>,
    by_client: HashMap<ClientKey, Key, FxBuild>,
    by_relay: HashMap<UdpId, Key, FxBuild>,
    /// Reserved ports by token, and their sockets (whose datagrams are dropped).
    reservations: HashMap<[u8; 8], Reservation, FxBuild>,
    reserved: HashMap<UdpId, [u8; 8], FxBuild>,
    /// xorshift state for Data indication transaction ids.
    rng: u64,
    limits: Limits,
}

impl std::fmt::Debug for StunServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StunServer")
            .field("core", &self.core)
            .field("ports", &self.ports)
            .field("allocations", &self.allocs.len())
            .finish()
    }
}

/// Desired lifetime, RFC 8656 §7.2 / §7.3: "the minimum of the client's requested lifetime
/// and the server's maximum allowed lifetime. If this computed value is greater than the
/// default lifetime, then the [...] computed value [...] Otherwise, the default lifetime".
/// A requested 0 stays 0 (Refresh deletes).
fn desired_lifetime(requested: Option<u32>, default: Duration, max: Duration) -> Duration {
    match requested {
        Some(0) => Duration::ZERO,
        Some(s) => Duration::from_secs(u64::from(s)).min(max).max(default),
        None => default,
    }
}

fn lifetime_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v) => {
            b[..4].copy_from_slice(&v.octets());
            (b, 4)
        }
        IpAddr::V6(v) => (v.octets(), 16),
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::IPV4,
        IpAddr::V6(_) => AddressFamily::IPV6,
    }
}

impl StunServer {
    pub(crate) fn new(svc: StunService, core: usize, cores: usize) -> Self {
        let ports = svc.inner.cfg.relay_ports.slice(core, cores);
        let mut seed = [0u8; 8];
        super::fill_random(&mut seed);
        Self {
            svc,
            core,
            ports,
            cursor: 0,
            allocs: Slab::new(),
            by_client: HashMap::default(),
            by_relay: HashMap::default(),
            reservations: HashMap::default(),
            reserved: HashMap::default(),
            rng: u64::from_le_bytes(seed) | 1,
            limits: Limits::DEFAULT,
        }
    }

    /// Allocations this core holds.
    pub fn allocation_count(&self) -> usize {
        self.allocs.len()
    }

    /// Whether `sock` is a relay socket of this core's allocations (a router sends datagrams
    /// on sockets it did not bind itself here).
    pub fn owns_socket(&self, sock: UdpId) -> bool {
        self.by_relay.contains_key(&sock)
    }

    fn unix_now(&self) -> u64 {
        match &self.svc.inner.cfg.unix_clock {
            Some(c) => c(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    fn next_tid(&mut self) -> TransactionId {
        let mut id = [0u8; 12];
        for chunk in id.chunks_mut(4) {
            let mut x = self.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng = x;
            chunk.copy_from_slice(&(x as u32).to_le_bytes());
        }
        TransactionId::new(id)
    }

    fn discard(&self, from: SocketAddr, reason: DiscardReason) {
        if let Some(h) = &self.svc.inner.cfg.hooks.discarded {
            h(&Discard {
                core: self.core,
                from,
                reason,
            });
        }
    }

    fn send_client(cx: &mut CoreCtx<'_>, client: ClientKey, bytes: Vec<u8>) {
        match client {
            ClientKey::Udp(sock, addr) => {
                cx.send_datagram(sock, addr, bytes);
            }
            ClientKey::Tcp(id) => {
                // A client that does not read loses relayed data, as over UDP.
                let _ = cx.send_to(id, bytes);
            }
        }
    }

    // ---- responses -------------------------------------------------------------------

    /// SOFTWARE, integrity with `key` (SHA-256 when `sha256`), FINGERPRINT; then finish.
    /// On a build error the buffer is left as it was (nothing is sent).
    fn seal(&self, mut b: MessageBuilder<'_>, key: Option<(&LongTermKey, bool)>) {
        let cfg = &self.svc.inner.cfg;
        if let Some(s) = &cfg.software {
            b.software(s);
        }
        match key {
            Some((k, false)) => {
                b.message_integrity(k.as_bytes());
            }
            Some((k, true)) => {
                b.message_integrity_sha256(k.as_bytes());
            }
            None => {}
        }
        if cfg.fingerprint {
            b.fingerprint();
        }
        let _ = b.finish();
    }

    fn error(
        &self,
        out: &mut Vec<u8>,
        req: &StunMessage<'_>,
        code: ErrorCode,
        key: Option<(&LongTermKey, bool)>,
    ) {
        let b = MessageBuilder::error_response(out, req, code);
        self.seal(b, key);
    }

    /// 401 or 438 with REALM and a fresh NONCE bound to the client's IP.
    fn challenge(&self, out: &mut Vec<u8>, req: &StunMessage<'_>, code: ErrorCode, ip: IpAddr) {
        let cfg = &self.svc.inner.cfg;
        let (bytes, n) = ip_bytes(ip);
        let nonce = Nonce::issue_with(
            &cfg.nonce_key,
            self.unix_now(),
            cfg.nonce_ttl.as_secs(),
            None,
            &bytes[..n],
        );
        let mut b = MessageBuilder::error_response(out, req, code);
        b.realm(&cfg.realm).nonce(nonce.as_str());
        self.seal(b, None);
    }

    /// A request that is STUN but does not parse gets 400 when the error calls for one
    /// (bad attributes, RFC 8489 §6.3.1); a bad header or length is dropped silently.
    fn malformed(
        &self,
        cx: &mut CoreCtx<'_>,
        client: ClientKey,
        from: SocketAddr,
        raw: &[u8],
        err: StunError,
    ) {
        self.discard(from, DiscardReason::Malformed);
        if err.error_code() != Some(ErrorCode::BAD_REQUEST) {
            return;
        }
        let (Some(t), Some(id)) = (raw.get(..2), raw.get(8..20)) else {
            return;
        };
        let Some(mt) = MessageType::from_u16(u16::from_be_bytes([t[0], t[1]])) else {
            return;
        };
        if mt.class != Class::Request {
            return;
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(id);
        let mut out = Vec::new();
        let mut b = MessageBuilder::new(
            &mut out,
            MessageType::new(mt.method, Class::ErrorResponse),
            TransactionId::new(tid),
        );
        b.error_code(
            ErrorCode::BAD_REQUEST,
            ErrorCode::BAD_REQUEST.reason_phrase(),
        );
        self.seal(b, None);
        if !out.is_empty() {
            Self::send_client(cx, client, out);
        }
    }

    // ---- dispatch --------------------------------------------------------------------

    /// A STUN message from a client.
    fn on_stun(
        &mut self,
        cx: &mut CoreCtx<'_>,
        client: ClientKey,
        from: SocketAddr,
        msg: &StunMessage<'_>,
    ) {
        // RFC 8489 §7.3: a message whose FINGERPRINT does not verify is not STUN.
        if msg.has_fingerprint() && msg.verify_fingerprint().is_err() {
            self.discard(from, DiscardReason::Malformed);
            return;
        }
        match (msg.class(), msg.method()) {
            (Class::Request, _) => {}
            (Class::Indication, Method::SEND) => {
                self.send_indication(cx, client, from, msg);
                return;
            }
            // A Binding indication is a keepalive: nothing to do.
            (Class::Indication, Method::BINDING) => return,
            _ => {
                self.discard(from, DiscardReason::Unexpected);
                return;
            }
        }
        let mut out = Vec::with_capacity(160);
        match msg.method() {
            Method::BINDING => self.binding(&mut out, msg, from),
            Method::ALLOCATE
            | Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND => self.turn_request(cx, &mut out, client, from, msg),
            // RFC 8489 §6.3.1 leaves unknown methods to the usage; a 400 tells the client.
            _ => self.error(&mut out, msg, ErrorCode::BAD_REQUEST, None),
        }
        if !out.is_empty() {
            Self::send_client(cx, client, out);
        }
    }

    /// RFC 8489 §6.3.1 / §14.2: reflect the source transport address.
    fn binding(&self, out: &mut Vec<u8>, msg: &StunMessage<'_>, from: SocketAddr) {
        let cfg = &self.svc.inner.cfg;
        if let Some(alt) = cfg.alternate_server {
            // RFC 8489 §10: "300 (Try Alternate) [...] MUST include an ALTERNATE-SERVER".
            let mut b = MessageBuilder::error_response(out, msg, ErrorCode::TRY_ALTERNATE);
            b.alternate_server(alt);
            self.seal(b, None);
            return;
        }
        if msg.unknown_comprehension_required().next().is_some() {
            let mut b = MessageBuilder::error_response(out, msg, ErrorCode::UNKNOWN_ATTRIBUTE);
            b.unknown_attributes(msg.unknown_comprehension_required());
            self.seal(b, None);
            return;
        }
        let mut b = MessageBuilder::success_response(out, msg);
        b.xor_mapped_address(from);
        self.seal(b, None);
    }

    /// RFC 8489 §9.2.4, in its order: integrity present, then USERNAME/REALM/NONCE, then the
    /// nonce, then the user, then the integrity itself.
    fn authenticate<'m>(
        &self,
        msg: &StunMessage<'m>,
        ip: IpAddr,
        alloc: Option<&Allocation>,
        now_unix: u64,
    ) -> Result<Authed<'m>, AuthFail> {
        let cfg = &self.svc.inner.cfg;
        if !msg.has_integrity() && !msg.has_integrity_sha256() {
            return Err(AuthFail::Unauthorized);
        }
        let (Ok(Some(username)), Ok(Some(_realm)), Ok(Some(nonce))) =
            (msg.username(), msg.realm(), msg.nonce())
        else {
            return Err(AuthFail::BadRequest);
        };
        let (bytes, n) = ip_bytes(ip);
        if Nonce::verify_with(&cfg.nonce_key, nonce, now_unix, &bytes[..n]).is_err() {
            return Err(AuthFail::StaleNonce);
        }
        let key = match alloc.filter(|a| &*a.username == username) {
            Some(a) => a.key,
            None => self
                .key_for(username, now_unix)
                .ok_or(AuthFail::Unauthorized)?,
        };
        let sha256 = msg.has_integrity_sha256();
        if msg.verify_any_integrity(key.as_bytes()).is_err() {
            return Err(AuthFail::Unauthorized);
        }
        // RFC 8656 §5: a request on an allocation must come from the user who made it.
        if alloc.is_some_and(|a| &*a.username != username) {
            return Err(AuthFail::WrongCredentials(key, sha256));
        }
        Ok(Authed {
            username,
            key,
            sha256,
        })
    }

    /// The long-term key of `username`: a static user, else a REST credential, else the lookup.
    fn key_for(&self, username: &str, now_unix: u64) -> Option<LongTermKey> {
        let inner = &self.svc.inner;
        let cfg = &inner.cfg;
        if let Some(k) = inner.keys.get(username) {
            return Some(*k);
        }
        if let Some(secret) = &cfg.rest_secret
            && let Ok(pw) = RestCredentials::verify(secret, username, now_unix)
        {
            return LongTermKey::md5(username, &cfg.realm, pw.as_str()).ok();
        }
        if let Some(lookup) = &cfg.lookup
            && let Some(pw) = lookup(username, &cfg.realm)
            && !pw.is_empty()
        {
            return LongTermKey::md5(username, &cfg.realm, &pw).ok();
        }
        None
    }

    fn turn_request(
        &mut self,
        cx: &mut CoreCtx<'_>,
        out: &mut Vec<u8>,
        client: ClientKey,
        from: SocketAddr,
        msg: &StunMessage<'_>,
    ) {
        let now_unix = self.unix_now();
        let existing = self.by_client.get(&client).copied();
        let alloc = existing.and_then(|k| self.allocs.get(k));
        let auth = match self.authenticate(msg, from.ip(), alloc, now_unix) {
            Ok(a) => a,
            Err(AuthFail::Unauthorized) => {
                return self.challenge(out, msg, ErrorCode::UNAUTHORIZED, from.ip());
            }
            Err(AuthFail::StaleNonce) => {
                return self.challenge(out, msg, ErrorCode::STALE_NONCE, from.ip());
            }
            Err(AuthFail::BadRequest) => {
                return self.error(out, msg, ErrorCode::BAD_REQUEST, None);
            }
            Err(AuthFail::WrongCredentials(k, sha)) => {
                return self.error(out, msg, ErrorCode::WRONG_CREDENTIALS, Some((&k, sha)));
            }
        };
        let key = (&auth.key, auth.sha256);
        if msg.unknown_comprehension_required().next().is_some() {
            let mut b = MessageBuilder::error_response(out, msg, ErrorCode::UNKNOWN_ATTRIBUTE);
            b.unknown_attributes(msg.unknown_comprehension_required());
            return self.seal(b, Some(key));
        }
        if msg.method() == Method::ALLOCATE {
            return self.allocate(cx, out, client, from, msg, existing, &auth);
        }
        // RFC 8656 §7.3, §9.2, §12.2: these need an allocation on this 5-tuple, else 437.
        let Some(k) = existing else {
            return self.error(out, msg, ErrorCode::ALLOCATION_MISMATCH, Some(key));
        };
        let code = match msg.method() {
            Method::REFRESH => return self.refresh(cx, out, msg, k, &auth),
            Method::CREATE_PERMISSION => self.create_permission(cx.now(), msg, k),
            _ => self.channel_bind(cx.now(), msg, k),
        };
        match code {
            Ok(()) => {
                let b = MessageBuilder::success_response(out, msg);
                self.seal(b, Some(key));
            }
            Err(code) => self.error(out, msg, code, Some(key)),
        }
    }

    // ---- Allocate ----------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn allocate(
        &mut self,
        cx: &mut CoreCtx<'_>,
        out: &mut Vec<u8>,
        client: ClientKey,
        from: SocketAddr,
        msg: &StunMessage<'_>,
        existing: Option<Key>,
        auth: &Authed<'_>,
    ) {
        let key = (&auth.key, auth.sha256);
        let now = cx.now();
        if let Some(k) = existing {
            match self.allocs.get(k) {
                // RFC 8656 §7.2: a retransmitted Allocate gets the same success response.
                Some(a) if a.tid == msg.transaction_id() => {
                    let (relayed, left) = (a.relayed, a.expires.saturating_duration_since(now));
                    let token = a.token;
                    self.allocate_success(out, msg, (relayed, left, token), from, key);
                }
                // RFC 8656 §7.2: "If the 5-tuple is currently in use by an existing
                // allocation, the server rejects the request with a 437".
                _ => self.error(out, msg, ErrorCode::ALLOCATION_MISMATCH, Some(key)),
            }
            return;
        }
        match self.try_allocate(cx, client, from, msg, auth) {
            Ok(granted) => self.allocate_success(out, msg, granted, from, key),
            Err(AllocFail::Code(code)) => self.error(out, msg, code, Some(key)),
            Err(AllocFail::Redirect(alt)) => {
                let mut b = MessageBuilder::error_response(out, msg, ErrorCode::TRY_ALTERNATE);
                b.alternate_server(alt);
                self.seal(b, Some(key));
            }
        }
    }

    fn allocate_success(
        &self,
        out: &mut Vec<u8>,
        msg: &StunMessage<'_>,
        (relayed, lifetime, token): Granted,
        mapped: SocketAddr,
        key: (&LongTermKey, bool),
    ) {
        let mut b = MessageBuilder::success_response(out, msg);
        b.xor_relayed_address(relayed)
            .lifetime(lifetime_secs(lifetime))
            .xor_mapped_address(mapped);
        if let Some(t) = token {
            b.reservation_token(t);
        }
        self.seal(b, Some(key));
    }

    /// RFC 8656 §7.2's checks, then the relay socket, the hook and the table entry.
    fn try_allocate(
        &mut self,
        cx: &mut CoreCtx<'_>,
        client: ClientKey,
        from: SocketAddr,
        msg: &StunMessage<'_>,
        auth: &Authed<'_>,
    ) -> Result<Granted, AllocFail> {
        let bad = AllocFail::Code(ErrorCode::BAD_REQUEST);
        let cfg = &self.svc.inner.cfg;
        // "If the REQUESTED-TRANSPORT attribute is not included or is malformed, the server
        // rejects the request with a 400 [...] If the attribute is included but specifies a
        // protocol that is not supported by the server, the server rejects the request with
        // a 442".
        match msg.requested_transport() {
            Ok(Some(TransportProtocol::UDP)) => {}
            Ok(Some(_)) => return Err(AllocFail::Code(ErrorCode::UNSUPPORTED_TRANSPORT_PROTOCOL)),
            _ => return Err(bad),
        }
        // DONT-FRAGMENT must be empty; it is accepted (not enforced on the relay socket).
        msg.dont_fragment().map_err(|_| bad)?;
        let even_port = msg.even_port().map_err(|_| bad)?;
        let (even, reserve_next) = (even_port.is_some(), even_port == Some(true));
        let family = msg.requested_address_family().map_err(|_| bad)?;
        let token = msg.reservation_token().map_err(|_| bad)?;
        // "If the request contains both a RESERVATION-TOKEN and an EVEN-PORT [or a
        // REQUESTED-ADDRESS-FAMILY], the server rejects the request with a 400".
        if token.is_some() && (even || family.is_some()) {
            return Err(bad);
        }
        // RFC 6156 / RFC 8656 §7.2: an unsupported family gets 440.
        let want = match family {
            None | Some(AddressFamily::IPV4) => AddressFamily::IPV4,
            Some(AddressFamily::IPV6) => AddressFamily::IPV6,
            Some(_) => return Err(AllocFail::Code(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED)),
        };
        let Some(relay_ip) = cfg
            .relay_ips
            .iter()
            .copied()
            .find(|ip| family_of(*ip) == want)
        else {
            return Err(AllocFail::Code(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED));
        };
        if let Some(alt) = cfg.alternate_server {
            return Err(AllocFail::Redirect(alt));
        }
        let lifetime = desired_lifetime(
            msg.lifetime().ok().flatten(),
            cfg.default_lifetime,
            cfg.max_lifetime,
        );
        // RFC 8656 §7.2: "the server MAY reject [...] 486 (Allocation Quota Reached) if the
        // user has reached their allocation quota".
        if !self.quota_take(auth.username) {
            return Err(AllocFail::Code(ErrorCode::ALLOCATION_QUOTA_REACHED));
        }
        let now = cx.now();
        let bound = match token {
            // "the server checks that the token is valid and refers to a reserved port";
            // otherwise 508. A reservation lives on the core that made it.
            Some(t) => self
                .take_reservation(t, now)
                .map(|r| (r.sock, r.local, None)),
            None => self.bind_relay(cx, relay_ip, even, reserve_next),
        };
        let Some((relay, local, next)) = bound else {
            self.quota_release(auth.username);
            return Err(AllocFail::Code(ErrorCode::INSUFFICIENT_CAPACITY));
        };
        let cfg = &self.svc.inner.cfg;
        let relayed = match cfg.external_ip {
            Some(ext) if family_of(ext) == want => SocketAddr::new(ext, local.port()),
            _ => local,
        };
        let info = AllocationInfo {
            core: self.core,
            client: from,
            transport: client.transport(),
            username: auth.username,
            relayed,
            lifetime,
        };
        if let Some(h) = &cfg.hooks.before_allocate
            && let Err(code) = h(&info)
        {
            cx.udp_close(relay);
            if let Some((sock, _)) = next {
                cx.udp_close(sock);
            }
            self.quota_release(auth.username);
            return Err(AllocFail::Code(code));
        }
        let token = next.map(|(sock, local)| self.reserve(cx, sock, local));
        let slot = self.allocs.vacant_key();
        let timer = cx.set_core_timer(lifetime, TIMER_TAG | slot.to_u64());
        let k = self.allocs.insert(Allocation {
            client,
            client_addr: from,
            relay,
            relayed,
            username: auth.username.into(),
            key: auth.key,
            tid: msg.transaction_id(),
            expires: now + lifetime,
            timer,
            perms: Vec::new(),
            channels: Vec::new(),
            token,
        });
        debug_assert_eq!(k, slot);
        self.by_client.insert(client, k);
        self.by_relay.insert(relay, k);
        if let Some(h) = &self.svc.inner.cfg.hooks.allocation_created {
            h(&info);
        }
        tracing::debug!(core = self.core, %from, %relayed, user = auth.username, "allocation created");
        Ok((relayed, lifetime, token))
    }

    fn quota_take(&self, user: &str) -> bool {
        let quota = self.svc.inner.cfg.user_quota;
        if quota == 0 {
            return true;
        }
        let mut m = self
            .svc
            .inner
            .quota
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = m.entry(user.into()).or_insert(0);
        if *n >= quota {
            return false;
        }
        *n += 1;
        true
    }

    fn quota_release(&self, user: &str) {
        if self.svc.inner.cfg.user_quota == 0 {
            return;
        }
        let mut m = self
            .svc
            .inner
            .quota
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(user);
            }
        }
    }

    /// Bind a relay socket on a free port of this core's slice (an even one if asked, and
    /// then with the next port bound too when `reserve_next`), starting after the last port
    /// handed out so a just-released port is not reused at once.
    fn bind_relay(
        &mut self,
        cx: &mut CoreCtx<'_>,
        ip: IpAddr,
        even: bool,
        reserve_next: bool,
    ) -> Option<Bound> {
        let (lo, hi) = self.ports?;
        let n = u32::from(hi) - u32::from(lo) + 1;
        for i in 0..n {
            let off = (self.cursor + i) % n;
            let port = u32::from(lo) + off;
            if (even && port % 2 == 1) || (reserve_next && port >= u32::from(hi)) {
                continue;
            }
            let port = u16::try_from(port).ok()?;
            let (sock, local) = match cx.udp_bind(SocketAddr::new(ip, port)) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => {
                    tracing::warn!(core = self.core, %ip, port, "relay bind failed: {e}");
                    return None;
                }
            };
            let next = if reserve_next {
                match cx.udp_bind(SocketAddr::new(ip, port + 1)) {
                    Ok(r) => Some(r),
                    Err(_) => {
                        cx.udp_close(sock);
                        continue;
                    }
                }
            } else {
                None
            };
            self.cursor = (off + 1 + u32::from(reserve_next)) % n;
            return Some((sock, local, next));
        }
        None
    }

    /// Keep `sock` for [`RESERVATION_LIFETIME`] under a new random token.
    fn reserve(&mut self, cx: &mut CoreCtx<'_>, sock: UdpId, local: SocketAddr) -> [u8; 8] {
        let mut t = [0u8; 8];
        super::fill_random(&mut t);
        let expires = cx.now() + RESERVATION_LIFETIME;
        self.reservations.insert(
            t,
            Reservation {
                sock,
                local,
                expires,
            },
        );
        self.reserved.insert(sock, t);
        cx.set_core_timer(RESERVATION_LIFETIME, RESERVATION_TIMER);
        t
    }

    fn take_reservation(&mut self, t: [u8; 8], now: Instant) -> Option<Reservation> {
        let r = self.reservations.remove(&t)?;
        self.reserved.remove(&r.sock);
        // An expired one is closed by the purge timer; here it is simply not handed out.
        if r.expires <= now {
            self.reserved.insert(r.sock, t);
            self.reservations.insert(t, r);
            return None;
        }
        Some(r)
    }

    /// Close the reserved ports nobody claimed in time (all of them when `all`).
    fn purge_reservations(&mut self, cx: &mut CoreCtx<'_>, all: bool) {
        let now = cx.now();
        let reserved = &mut self.reserved;
        self.reservations.retain(|_, r| {
            let keep = !all && r.expires > now;
            if !keep {
                reserved.remove(&r.sock);
                cx.udp_close(r.sock);
            }
            keep
        });
    }

    fn delete(&mut self, cx: &mut CoreCtx<'_>, k: Key, reason: DeleteReason) {
        let Some(a) = self.allocs.remove(k) else {
            return;
        };
        self.by_client.remove(&a.client);
        self.by_relay.remove(&a.relay);
        cx.udp_close(a.relay);
        cx.cancel_timer(a.timer);
        self.quota_release(&a.username);
        if let Some(h) = &self.svc.inner.cfg.hooks.allocation_deleted {
            h(&a.info(self.core, cx.now()), reason);
        }
        tracing::debug!(core = self.core, relayed = %a.relayed, ?reason, "allocation deleted");
    }

    // ---- Refresh, CreatePermission, ChannelBind ---------------------------------------

    /// RFC 8656 §7.3.
    fn refresh(
        &mut self,
        cx: &mut CoreCtx<'_>,
        out: &mut Vec<u8>,
        msg: &StunMessage<'_>,
        k: Key,
        auth: &Authed<'_>,
    ) {
        let key = (&auth.key, auth.sha256);
        let cfg = &self.svc.inner.cfg;
        let Some(a) = self.allocs.get(k) else {
            return self.error(out, msg, ErrorCode::ALLOCATION_MISMATCH, Some(key));
        };
        // RFC 8656 §7.3: "If the REQUESTED-ADDRESS-FAMILY [...] does not match the address
        // family of the allocation, the server MUST reply with a 443".
        match msg.requested_address_family() {
            Ok(None) => {}
            Ok(Some(f)) if f == family_of(a.relayed.ip()) => {}
            Ok(Some(_)) => {
                return self.error(out, msg, ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH, Some(key));
            }
            Err(_) => return self.error(out, msg, ErrorCode::BAD_REQUEST, Some(key)),
        }
        let requested = match msg.lifetime() {
            Ok(l) => l,
            Err(_) => return self.error(out, msg, ErrorCode::BAD_REQUEST, Some(key)),
        };
        let d = desired_lifetime(requested, cfg.default_lifetime, cfg.max_lifetime);
        if d.is_zero() {
            // "If the 'desired lifetime' is zero, then the request succeeds and the
            // allocation is deleted."
            self.delete(cx, k, DeleteReason::Refreshed);
        } else {
            let now = cx.now();
            let timer = cx.set_core_timer(d, TIMER_TAG | k.to_u64());
            if let Some(a) = self.allocs.get_mut(k) {
                cx.cancel_timer(a.timer);
                a.timer = timer;
                a.expires = now + d;
            }
        }
        let mut b = MessageBuilder::success_response(out, msg);
        b.lifetime(lifetime_secs(d));
        self.seal(b, Some(key));
    }

    /// 443 for a peer of another family than the relay, 403 for a filtered peer.
    fn check_peer(&self, a: &Allocation, peer: SocketAddr) -> Result<(), ErrorCode> {
        let cfg = &self.svc.inner.cfg;
        if family_of(peer.ip()) != family_of(a.relayed.ip()) {
            return Err(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH);
        }
        if !peer_allowed(peer.ip(), cfg.allow_loopback_peers, cfg.allow_private_peers) {
            return Err(ErrorCode::FORBIDDEN);
        }
        Ok(())
    }

    /// Install or refresh permissions for `ips` (all or nothing: 508 when the table is full).
    fn permit(
        a: &mut Allocation,
        ips: &[IpAddr],
        now: Instant,
        lifetime: Duration,
        max: usize,
    ) -> Result<(), ErrorCode> {
        a.perms.retain(|p| p.expires > now);
        let new = ips
            .iter()
            .filter(|ip| !a.perms.iter().any(|p| p.ip == **ip))
            .count();
        if a.perms.len() + new > max {
            return Err(ErrorCode::INSUFFICIENT_CAPACITY);
        }
        for &ip in ips {
            match a.perms.iter_mut().find(|p| p.ip == ip) {
                Some(p) => p.expires = now + lifetime,
                None => a.perms.push(Permission {
                    ip,
                    expires: now + lifetime,
                }),
            }
        }
        Ok(())
    }

    /// RFC 8656 §9.2: every XOR-PEER-ADDRESS checked, then all installed.
    fn create_permission(
        &mut self,
        now: Instant,
        msg: &StunMessage<'_>,
        k: Key,
    ) -> Result<(), ErrorCode> {
        let cfg = &self.svc.inner.cfg;
        let a = self.allocs.get(k).ok_or(ErrorCode::ALLOCATION_MISMATCH)?;
        let mut count = 0;
        for peer in msg.xor_peer_addresses() {
            let peer = peer.map_err(|_| ErrorCode::BAD_REQUEST)?;
            self.check_peer(a, peer)?;
            count += 1;
        }
        // "The CreatePermission request MUST contain at least one XOR-PEER-ADDRESS".
        if count == 0 {
            return Err(ErrorCode::BAD_REQUEST);
        }
        let (lifetime, max) = (cfg.permission_lifetime, cfg.max_permissions);
        let a = self
            .allocs
            .get_mut(k)
            .ok_or(ErrorCode::ALLOCATION_MISMATCH)?;
        let ips: Vec<IpAddr> = msg
            .xor_peer_addresses()
            .filter_map(Result::ok)
            .map(|p| p.ip())
            .collect();
        Self::permit(a, &ips, now, lifetime, max)
    }

    /// RFC 8656 §11.2.
    fn channel_bind(
        &mut self,
        now: Instant,
        msg: &StunMessage<'_>,
        k: Key,
    ) -> Result<(), ErrorCode> {
        let bad = ErrorCode::BAD_REQUEST;
        let cfg = &self.svc.inner.cfg;
        // "The request contains both a CHANNEL-NUMBER and an XOR-PEER-ADDRESS attribute; the
        // channel number is in the range 0x4000 through 0x4FFF (inclusive)" — else 400.
        let number = match msg.channel_number() {
            Ok(Some(n)) if n.is_rfc8656() || cfg.rfc5766_channels => n.get(),
            other => {
                tracing::debug!(
                    core = self.core,
                    ?other,
                    "ChannelBind with a bad channel number"
                );
                return Err(bad);
            }
        };
        let peer = match msg.xor_peer_address() {
            Ok(Some(p)) => p,
            _ => return Err(bad),
        };
        let a = self.allocs.get(k).ok_or(ErrorCode::ALLOCATION_MISMATCH)?;
        self.check_peer(a, peer)?;
        let (quarantine, lifetime) = (cfg.channel_quarantine, cfg.channel_lifetime);
        let (perm_lifetime, max_perms, max_chans) = (
            cfg.permission_lifetime,
            cfg.max_permissions,
            cfg.max_channels,
        );
        let a = self
            .allocs
            .get_mut(k)
            .ok_or(ErrorCode::ALLOCATION_MISMATCH)?;
        // An expired binding keeps its number and peer for the quarantine (RFC 8656 §12).
        a.channels.retain(|c| c.expires + quarantine > now);
        // "The channel number is not currently bound to a different transport address"; "The
        // transport address is not currently bound to a different channel number."
        let idx = a
            .channels
            .iter()
            .position(|c| c.number == number || c.peer == peer);
        if let Some(i) = idx
            && a.channels
                .get(i)
                .is_some_and(|c| c.number != number || c.peer != peer)
        {
            return Err(bad);
        }
        if idx.is_none() && a.channels.len() >= max_chans {
            return Err(ErrorCode::INSUFFICIENT_CAPACITY);
        }
        // "the server [...] installs or refreshes a permission for the IP address".
        Self::permit(a, &[peer.ip()], now, perm_lifetime, max_perms)?;
        match idx.and_then(|i| a.channels.get_mut(i)) {
            Some(c) => c.expires = now + lifetime,
            None => a.channels.push(Channel {
                number,
                peer,
                expires: now + lifetime,
            }),
        }
        Ok(())
    }

    // ---- data ----------------------------------------------------------------------------

    /// RFC 8656 §11.2: a Send indication is relayed if a permission exists; never answered.
    fn send_indication(
        &mut self,
        cx: &mut CoreCtx<'_>,
        client: ClientKey,
        from: SocketAddr,
        msg: &StunMessage<'_>,
    ) {
        let Some(a) = self
            .by_client
            .get(&client)
            .and_then(|&k| self.allocs.get(k))
        else {
            return self.discard(from, DiscardReason::NoAllocation);
        };
        let (Ok(Some(peer)), Ok(Some(data))) = (msg.xor_peer_address(), msg.data()) else {
            return self.discard(from, DiscardReason::BadIndication);
        };
        if !a.permitted(peer.ip(), cx.now()) {
            return self.discard(peer, DiscardReason::NoPermission);
        }
        cx.send_datagram(a.relay, peer, data.as_bytes().to_vec());
    }

    /// RFC 8656 §12.6: ChannelData from the client goes to the channel's peer.
    fn client_channel_data(
        &mut self,
        cx: &mut CoreCtx<'_>,
        client: ClientKey,
        from: SocketAddr,
        cd: ChannelData<'_>,
    ) {
        let Some(a) = self
            .by_client
            .get(&client)
            .and_then(|&k| self.allocs.get(k))
        else {
            return self.discard(from, DiscardReason::NoAllocation);
        };
        let now = cx.now();
        let n = cd.channel().get();
        let Some(c) = a.channels.iter().find(|c| c.number == n && c.expires > now) else {
            return self.discard(from, DiscardReason::UnboundChannel);
        };
        if !a.permitted(c.peer.ip(), now) {
            return self.discard(c.peer, DiscardReason::NoPermission);
        }
        cx.send_datagram(a.relay, c.peer, cd.data().to_vec());
    }

    /// RFC 8656 §11.3 / §12.7: a datagram from a peer on a relay socket goes to the client,
    /// as ChannelData when a channel is bound to the peer, else as a Data indication; without
    /// a permission for the peer's IP it is dropped.
    fn peer_datagram(&mut self, cx: &mut CoreCtx<'_>, k: Key, from: SocketAddr, data: &[u8]) {
        let now = cx.now();
        let Some(a) = self.allocs.get(k) else {
            return;
        };
        if !a.permitted(from.ip(), now) {
            return self.discard(from, DiscardReason::NoPermission);
        }
        let client = a.client;
        let channel = a
            .channels
            .iter()
            .find(|c| c.peer == from && c.expires > now)
            .and_then(|c| ChannelNumber::new(c.number));
        let mut out;
        match channel {
            Some(ch) => {
                let pad = matches!(client, ClientKey::Tcp(_));
                out = Vec::with_capacity(ChannelData::encoded_len(data.len(), pad));
                if ChannelData::new(ch, data).encode(&mut out, pad).is_err() {
                    return;
                }
            }
            None => {
                out = Vec::with_capacity(data.len() + 48);
                let tid = self.next_tid();
                let mut b = MessageBuilder::new(&mut out, MessageType::DATA_INDICATION, tid);
                b.xor_peer_address(from).data(data);
                if b.finish().is_err() {
                    return;
                }
            }
        }
        Self::send_client(cx, client, out);
    }

    /// A datagram on a server socket (not a relay).
    fn client_datagram(
        &mut self,
        cx: &mut CoreCtx<'_>,
        sock: UdpId,
        from: SocketAddr,
        data: &[u8],
    ) {
        let client = ClientKey::Udp(sock, from);
        match classify(data) {
            PacketKind::Stun => match StunMessage::parse_with(data, &self.limits) {
                Ok(m) => self.on_stun(cx, client, from, &m),
                Err(e) => self.malformed(cx, client, from, data, e),
            },
            PacketKind::ChannelData => match ChannelData::parse_datagram(data) {
                Ok(cd) => self.client_channel_data(cx, client, from, cd),
                Err(_) => self.discard(from, DiscardReason::Malformed),
            },
            PacketKind::Other => self.discard(from, DiscardReason::NotStun),
        }
    }
}

/// A bound relay socket and its address, with the reserved next port if one was asked for.
type Bound = (UdpId, SocketAddr, Option<(UdpId, SocketAddr)>);

/// What an Allocate was granted: relayed address, lifetime, reservation token.
type Granted = (SocketAddr, Duration, Option<[u8; 8]>);

#[derive(Clone, Copy)]
enum AllocFail {
    Code(ErrorCode),
    Redirect(SocketAddr),
}

impl Plugin for StunServer {
    type Conn = StunConn;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<StunConn> {
        Some(StunConn {
            id: cx.id(),
            peer: cx.peer_addr(),
        })
    }

    /// RFC 8656 §12.5 / RFC 6062: STUN messages and ChannelData (padded) back to back on the
    /// stream, sized by their headers. A frame that cannot be sized closes the connection.
    fn on_data(&mut self, conn: &mut StunConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let client = ClientKey::Tcp(conn.id);
        let mut done = 0;
        while let Some(buf) = data.get(done..) {
            let len = match stream_frame(buf, &self.limits) {
                Ok(StreamFrame::NeedMore(_)) => break,
                Ok(StreamFrame::Stun { len }) | Ok(StreamFrame::ChannelData { len })
                    if buf.len() < len =>
                {
                    break;
                }
                Ok(StreamFrame::Stun { len }) => {
                    match StunMessage::parse_prefix(buf, &self.limits) {
                        Ok(m) => self.on_stun(cx, client, conn.peer, &m),
                        Err(e) => {
                            self.malformed(cx, client, conn.peer, buf.get(..len).unwrap_or(buf), e)
                        }
                    }
                    len
                }
                Ok(StreamFrame::ChannelData { len }) => {
                    if let Ok((cd, _)) = ChannelData::parse_stream(buf) {
                        self.client_channel_data(cx, client, conn.peer, cd);
                    }
                    len
                }
                Err(_) => {
                    // Desynchronised or hostile: nothing after this can be framed.
                    self.discard(conn.peer, DiscardReason::NotStun);
                    cx.abort();
                    return data.len();
                }
            };
            done += len;
        }
        done
    }

    fn on_close(&mut self, conn: StunConn, cx: &mut CoreCtx<'_>, _reason: CloseReason) {
        if let Some(k) = self.by_client.get(&ClientKey::Tcp(conn.id)).copied() {
            self.delete(cx, k, DeleteReason::ConnectionClosed);
        }
    }

    fn on_core_timer(&mut self, cx: &mut CoreCtx<'_>, token: u64) {
        if token == RESERVATION_TIMER {
            return self.purge_reservations(cx, false);
        }
        if !is_stun_timer(token) {
            return;
        }
        let k = Key::from_u64(token & !TAG_MASK);
        let now = cx.now();
        match self.allocs.get(k) {
            Some(a) if a.expires <= now => self.delete(cx, k, DeleteReason::Expired),
            // Fired early (the wheel rounds): wait for the rest.
            Some(a) => {
                let left = a.expires - now;
                let timer = cx.set_core_timer(left, token);
                if let Some(a) = self.allocs.get_mut(k) {
                    a.timer = timer;
                }
            }
            None => {}
        }
    }

    fn on_datagram(
        &mut self,
        cx: &mut CoreCtx<'_>,
        sock: UdpId,
        from: SocketAddr,
        data: &mut [u8],
    ) {
        match self.by_relay.get(&sock) {
            Some(&k) => self.peer_datagram(cx, k, from, data),
            // A reserved port relays nothing until an allocation claims it.
            None if !self.reserved.is_empty() && self.reserved.contains_key(&sock) => {
                self.discard(from, DiscardReason::NoAllocation)
            }
            None => self.client_datagram(cx, sock, from, data),
        }
    }

    fn on_stop(&mut self, cx: &mut CoreCtx<'_>) {
        for k in self.allocs.keys() {
            self.delete(cx, k, DeleteReason::Shutdown);
        }
        self.purge_reservations(cx, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_follow_rfc8656_7_2() {
        let (d, m) = (Duration::from_secs(600), Duration::from_secs(3600));
        assert_eq!(desired_lifetime(None, d, m), d);
        assert_eq!(desired_lifetime(Some(0), d, m), Duration::ZERO);
        assert_eq!(desired_lifetime(Some(30), d, m), d);
        assert_eq!(
            desired_lifetime(Some(1200), d, m),
            Duration::from_secs(1200)
        );
        assert_eq!(desired_lifetime(Some(u32::MAX), d, m), m);
    }

    #[test]
    fn allocation_state_stays_compact() {
        // 5-tuple, relay, credentials, lifetime and two empty lists; permissions (40 B) and
        // channels (56 B) are heap entries only when used.
        let size = std::mem::size_of::<Allocation>();
        assert!(size <= 256, "Allocation is {size} bytes");
        assert!(std::mem::size_of::<Permission>() <= 40);
        assert!(std::mem::size_of::<Channel>() <= 56);
    }

    #[test]
    fn timer_tokens_are_tagged() {
        let k = Key::from_u64(0x0000_00ff_0000_1234);
        let t = TIMER_TAG | k.to_u64();
        assert!(is_stun_timer(t));
        assert_eq!(Key::from_u64(t & !TAG_MASK), k);
        assert!(!is_stun_timer(k.to_u64()));
        assert!(is_stun_timer(RESERVATION_TIMER));
    }
}
