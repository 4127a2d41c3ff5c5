//! STUN and TURN on the engine: the [`StunServer`] plugin and blocking clients.
//!
//! # Server
//! [`StunServer`] answers on the UDP and TCP sockets it is given (one `SO_REUSEPORT` socket
//! per core for each, usually on the same port):
//! - **STUN Binding** (RFC 8489) without authentication: XOR-MAPPED-ADDRESS, SOFTWARE,
//!   FINGERPRINT; 420 for unknown comprehension-required attributes; 300 Try Alternate when
//!   an alternate server is configured.
//! - **TURN** (RFC 8656, RFC 6156 address families) with UDP relays and long-term
//!   credentials (static users, a REST shared secret as coturn's `use-auth-secret`, or a
//!   lookup callback), over UDP or TCP to the client: Allocate, Refresh, CreatePermission,
//!   ChannelBind, Send and Data indications, ChannelData both ways (padded over TCP).
//!   Nonces are stateless HMACs bound to the client's IP, so any core verifies any nonce.
//!
//! Each core owns the allocations whose client 5-tuple its sockets received (the kernel's
//! `SO_REUSEPORT` hash keeps a client's flow on one core while the socket count is stable),
//! and binds their relay sockets itself, from its own slice of the relay port range, so peer
//! traffic arrives on the same core and the data path never crosses cores or takes a lock.
//! Lifetimes run on the core's timer wheel; permissions and channels expire lazily (checked
//! on use, purged when their lists are touched). The per-user quota is the only shared
//! mutable state, locked when an allocation is created or deleted.
//!
//! EVEN-PORT gives an even relay port; with its R bit the next port is reserved for
//! [`RESERVATION_LIFETIME`] under a RESERVATION-TOKEN that a later Allocate claims.
//! A reservation lives on the core that made it: an Allocate with the token that lands on
//! another core (another client port, hashed elsewhere by `SO_REUSEPORT`) gets 508.
//!
//! What it does not do: TCP relays (RFC 6062; REQUESTED-TRANSPORT other than UDP gets 442),
//! DONT-FRAGMENT enforcement (accepted, not applied to the relay socket), dual-stack
//! allocations (ADDITIONAL-ADDRESS-FAMILY is ignored), DTLS/TLS, RFC 5780 NAT behaviour
//! discovery, short-term credentials on Binding, and relaying datagrams larger than the
//! runtime's `udp_max_datagram` (2048 bytes by default).
//!
//! # Clients
//! [`client::binding`] discovers the mapped address with RFC 8489 retransmissions;
//! [`client::TurnClient`] allocates (401 and 438 handled), creates permissions, binds
//! channels, sends and receives, and refreshes before expiry. Both are blocking, on a std
//! `UdpSocket`, driven by the sans-IO [`ringwire_stun::ClientTransaction`].

pub mod cli;
pub mod client;
mod config;
mod server;

pub use config::{
    AllocationHook, AllocationInfo, BeforeAllocateHook, ClientTransport, DeleteReason, DeletedHook,
    Discard, DiscardHook, DiscardReason, PasswordLookup, PortRange, StunConfig, StunConfigError,
    StunHooks, StunService, UnixClock,
};
pub use server::{RESERVATION_LIFETIME, StunConn, StunServer, is_stun_timer};

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

/// Whether TURN may relay to `ip`. Unspecified, broadcast, multicast and reserved addresses
/// never; loopback only with `allow_loopback`; private, link-local, shared (CGNAT) and
/// unique-local ones only with `allow_private`. IPv4-mapped IPv6 addresses are judged as
/// IPv4.
pub fn peer_allowed(ip: IpAddr, allow_loopback: bool, allow_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback, allow_private),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_allowed(v4, allow_loopback, allow_private),
            None => v6_allowed(v6, allow_loopback, allow_private),
        },
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool, allow_private: bool) -> bool {
    let [a, b, ..] = ip.octets();
    if a == 0 || ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        return false;
    }
    if ip.is_loopback() {
        return allow_loopback;
    }
    // 100.64.0.0/10, shared address space (RFC 6598).
    let shared = a == 100 && (b & 0xC0) == 64;
    if ip.is_private() || ip.is_link_local() || shared {
        return allow_private;
    }
    true
}

fn v6_allowed(ip: Ipv6Addr, allow_loopback: bool, allow_private: bool) -> bool {
    let first = ip.segments()[0];
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    if ip.is_loopback() {
        return allow_loopback;
    }
    // fc00::/7 unique local, fe80::/10 link-local.
    if (first & 0xFE00) == 0xFC00 || (first & 0xFFC0) == 0xFE80 {
        return allow_private;
    }
    true
}

/// Fill `buf` from the kernel's random source, falling back to the std hasher's per-process
/// random keys mixed with the time (only if /dev/urandom cannot be read).
pub(crate) fn fill_random(buf: &mut [u8]) {
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
    {
        return;
    }
    let rs = std::collections::hash_map::RandomState::new();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = rs.build_hasher();
        h.write_usize(i);
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        let v = h.finish().to_le_bytes();
        let n = chunk.len();
        chunk.copy_from_slice(&v[..n]);
    }
}

/// A random 32-byte key (the default nonce key).
pub(crate) fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    fill_random(&mut k);
    k
}

/// `addr` itself, or for port 0 the same address with a port free for both UDP and TCP.
pub fn same_port_for_udp_and_tcp(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let mut last = None;
    for _ in 0..64 {
        let t = TcpListener::bind(addr)?;
        let a = t.local_addr()?;
        match UdpSocket::bind(a) {
            Ok(_) => return Ok(a),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for UDP and TCP")))
}

/// The FxHash function (rustc's): a multiply and a rotate per word, for the small keys of
/// the per-core allocation maps. Those keys come from the kernel (socket ids, addresses the
/// kernel reports), and each map holds one core's allocations.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_filter() {
        let p = |s: &str| s.parse::<IpAddr>().unwrap();
        for ip in ["8.8.8.8", "2001:4860::8888", "198.51.100.7"] {
            assert!(peer_allowed(p(ip), false, false), "{ip}");
        }
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!peer_allowed(p(ip), false, false), "{ip}");
            assert!(peer_allowed(p(ip), true, false), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(!peer_allowed(p(ip), true, false), "{ip}");
            assert!(peer_allowed(p(ip), false, true), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "224.0.0.1",
            "239.1.1.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "ff02::1",
        ] {
            assert!(!peer_allowed(p(ip), true, true), "{ip}");
        }
        assert!(peer_allowed(p("172.32.0.1"), false, false));
        assert!(peer_allowed(p("100.128.0.1"), false, false));
    }

    #[test]
    fn random_differs() {
        assert_ne!(random_key(), random_key());
    }
}
