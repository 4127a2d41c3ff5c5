//! The STUN/TURN server's configuration, its hooks, and the state every core shares
//! ([`StunService`]: the configuration, precomputed keys, the nonce key and the per-user
//! allocation counts).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringwire_stun::{ErrorCode, LongTermKey, MAX_TEXT_LEN};

/// Looks a password up: `(username, realm) -> password`. `None` (or an empty password)
/// rejects the user with 401. It runs on the core that received the request, for every
/// authenticated TURN request whose user has no allocation there yet: keep it fast and
/// never block.
pub type PasswordLookup = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// Runs before an allocation is created, with its relayed address already chosen (as the
/// seed's `OnTURNBeforeAllocate`). `Err(code)` rejects it with that STUN error (403, 486...).
pub type BeforeAllocateHook =
    Arc<dyn Fn(&AllocationInfo<'_>) -> Result<(), ErrorCode> + Send + Sync>;

/// Runs after an allocation was created.
pub type AllocationHook = Arc<dyn Fn(&AllocationInfo<'_>) + Send + Sync>;

/// Runs after an allocation was deleted, with the reason.
pub type DeletedHook = Arc<dyn Fn(&AllocationInfo<'_>, DeleteReason) + Send + Sync>;

/// Runs when a message or a relayed datagram is discarded.
pub type DiscardHook = Arc<dyn Fn(&Discard) + Send + Sync>;

/// A clock in Unix seconds, for nonces and REST credentials (tests replace it).
pub type UnixClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How a client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientTransport {
    /// UDP.
    Udp,
    /// TCP (STUN and ChannelData framed on the stream, ChannelData padded to 4 bytes).
    Tcp,
}

/// What hooks learn about an allocation.
#[derive(Clone, Copy, Debug)]
pub struct AllocationInfo<'a> {
    /// The core that owns the allocation (and its relay socket).
    pub core: usize,
    /// The client's transport address as the server sees it.
    pub client: SocketAddr,
    /// The transport between client and server.
    pub transport: ClientTransport,
    /// The authenticated username.
    pub username: &'a str,
    /// The relayed transport address advertised to the client.
    pub relayed: SocketAddr,
    /// The lifetime granted (or left, for deletions).
    pub lifetime: Duration,
}

/// Why an allocation was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteReason {
    /// A Refresh with LIFETIME 0.
    Refreshed,
    /// Its lifetime ran out.
    Expired,
    /// Its TCP connection to the client closed.
    ConnectionClosed,
    /// The server is stopping.
    Shutdown,
}

/// Why something was discarded (the seed's `OnTURNMessageDiscarded` /
/// `OnTURNChannelDataDiscarded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscardReason {
    /// Neither STUN nor ChannelData.
    NotStun,
    /// STUN that does not parse, or a bad FINGERPRINT (RFC 8489 §6.3: discarded silently).
    Malformed,
    /// A response or an indication the server does not handle.
    Unexpected,
    /// A Send indication or ChannelData from a client without an allocation.
    NoAllocation,
    /// Data to or from a peer without a permission.
    NoPermission,
    /// ChannelData on a channel that is not bound.
    UnboundChannel,
    /// A Send indication without XOR-PEER-ADDRESS or DATA.
    BadIndication,
}

/// A discarded message, for [`DiscardHook`].
#[derive(Clone, Copy, Debug)]
pub struct Discard {
    /// The core that discarded it.
    pub core: usize,
    /// Who sent it (a client, or a peer on a relay socket).
    pub from: SocketAddr,
    /// Why.
    pub reason: DiscardReason,
}

/// The optional callbacks of the server. They run inline on the core that handles the
/// event: keep them short and never block.
#[derive(Clone, Default)]
pub struct StunHooks {
    /// Before an allocation is created (reject with an error code).
    pub before_allocate: Option<BeforeAllocateHook>,
    /// After an allocation was created.
    pub allocation_created: Option<AllocationHook>,
    /// After an allocation was deleted.
    pub allocation_deleted: Option<DeletedHook>,
    /// When a message or datagram is discarded.
    pub discarded: Option<DiscardHook>,
}

impl fmt::Debug for StunHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StunHooks")
            .field("before_allocate", &self.before_allocate.is_some())
            .field("allocation_created", &self.allocation_created.is_some())
            .field("allocation_deleted", &self.allocation_deleted.is_some())
            .field("discarded", &self.discarded.is_some())
            .finish()
    }
}

/// An inclusive UDP port range for relayed addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub min: u16,
    /// Last port (inclusive).
    pub max: u16,
}

impl PortRange {
    /// coturn's default and RFC 8656 §7.2's suggestion: 49152–65535.
    pub const DEFAULT: Self = Self {
        min: 49152,
        max: 65535,
    };

    /// The slice of the range core `core` of `cores` allocates from, so cores never
    /// coordinate: the range is cut into `cores` consecutive pieces, the last taking the
    /// remainder. `None` when the range has fewer ports than `core + 1`.
    pub fn slice(self, core: usize, cores: usize) -> Option<(u16, u16)> {
        let total = usize::from(self.max).checked_sub(usize::from(self.min))? + 1;
        let cores = cores.max(1);
        if total < cores {
            return (core < total).then(|| {
                let p = self.min + core as u16;
                (p, p)
            });
        }
        let per = total / cores;
        let lo = usize::from(self.min) + core * per;
        let hi = if core + 1 >= cores {
            usize::from(self.max)
        } else {
            lo + per - 1
        };
        Some((u16::try_from(lo).ok()?, u16::try_from(hi).ok()?))
    }
}

impl std::str::FromStr for PortRange {
    type Err = StunConfigError;
    /// `"A-B"` (or a single port `"A"`).
    fn from_str(s: &str) -> Result<Self, StunConfigError> {
        let bad = || StunConfigError::BadPortRange;
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let min: u16 = a.trim().parse().map_err(|_| bad())?;
        let max: u16 = b.trim().parse().map_err(|_| bad())?;
        if min == 0 || min > max {
            return Err(bad());
        }
        Ok(Self { min, max })
    }
}

/// A configuration the server cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StunConfigError {
    /// The relay port range is not `A-B` with `0 < A <= B`.
    BadPortRange,
    /// A `--turn-user` is not `USER:PASSWORD`.
    BadUser,
    /// A password (or the realm) contains a character SASLprep prohibits.
    BadPassword,
    /// REALM or SOFTWARE is longer than RFC 8489 allows (763 bytes).
    TextTooLong,
    /// A relay address is unspecified (0.0.0.0 / ::) and no external address is set.
    UnspecifiedRelay,
    /// A lifetime is zero or the default exceeds the maximum.
    BadLifetime,
}

impl fmt::Display for StunConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadPortRange => "relay port range must be A-B with 0 < A <= B <= 65535",
            Self::BadUser => "a TURN user must be given as USER:PASSWORD",
            Self::BadPassword => "a TURN password contains a character SASLprep prohibits",
            Self::TextTooLong => "realm and software must be at most 763 bytes",
            Self::UnspecifiedRelay => {
                "the relay address is unspecified: give --turn-relay-ip (or an external address)"
            }
            Self::BadLifetime => "lifetimes must be at least 1 s and default <= max",
        })
    }
}

impl std::error::Error for StunConfigError {}

/// Everything the STUN/TURN server is configured with. Build one, adjust fields, then make a
/// [`StunService`] from it.
#[derive(Clone)]
pub struct StunConfig {
    /// SOFTWARE in every response (`None`: omitted). Default `"ringwire"`.
    pub software: Option<String>,
    /// FINGERPRINT in every response. Default true.
    pub fingerprint: bool,
    /// The long-term credential realm. Default `"ringwire"`.
    pub realm: String,
    /// Static users: name → password.
    pub users: HashMap<String, String>,
    /// TURN REST shared secret (coturn's `use-auth-secret` / `static-auth-secret`): usernames
    /// `"<expiry unix secs>:<user>"`, password base64(HMAC-SHA1(secret, username)).
    pub rest_secret: Option<Vec<u8>>,
    /// A password lookup for users not in `users` (and when no REST secret matches).
    pub lookup: Option<PasswordLookup>,
    /// The key of the stateless nonces, shared by every core. Random by default.
    pub nonce_key: [u8; 32],
    /// How long a nonce stays valid (then 438 Stale Nonce). Default 600 s.
    pub nonce_ttl: Duration,
    /// Relay port range, split between cores. Default 49152–65535.
    pub relay_ports: PortRange,
    /// Addresses relay sockets bind to, at most one per family (the first of each family
    /// is used). Empty: TURN answers 440 (no relay address for the family).
    pub relay_ips: Vec<IpAddr>,
    /// The address advertised in XOR-RELAYED-ADDRESS instead of the bound IPv4 relay address
    /// (a server behind 1:1 NAT). Default none.
    pub external_ip: Option<IpAddr>,
    /// Allow peers on loopback addresses (127/8, ::1). Default false (403), so the server is
    /// not an open relay into its own host.
    pub allow_loopback_peers: bool,
    /// Allow peers in private, link-local, shared and unique-local ranges (10/8, 172.16/12,
    /// 192.168/16, 169.254/16, 100.64/10, fc00::/7, fe80::/10). Default false (403).
    pub allow_private_peers: bool,
    /// Most allocations one username may hold at once across all cores (486 past it);
    /// 0 = unlimited. Default 0.
    pub user_quota: u32,
    /// Lifetime granted when the client asks for less (or nothing). Default 600 s.
    pub default_lifetime: Duration,
    /// Longest lifetime granted. Default 3600 s.
    pub max_lifetime: Duration,
    /// Permission lifetime, RFC 8656 §9: 300 s.
    pub permission_lifetime: Duration,
    /// Channel binding lifetime, RFC 8656 §12: 600 s.
    pub channel_lifetime: Duration,
    /// How long an expired channel's number and peer stay reserved, RFC 8656 §12: 300 s.
    pub channel_quarantine: Duration,
    /// Most permissions (peer IPs) one allocation holds (508 past it). Default 64.
    pub max_permissions: usize,
    /// Most channels one allocation binds (508 past it). Default 64.
    pub max_channels: usize,
    /// Accept channel numbers 0x4000–0x7FFF (RFC 5766, coturn) instead of RFC 8656's
    /// 0x4000–0x4FFF. coturn's `turnutils_uclient` picks numbers in the wider range.
    /// Default false.
    pub rfc5766_channels: bool,
    /// Redirect Binding and Allocate requests there with 300 Try Alternate (Allocate after
    /// authenticating it). Default none.
    pub alternate_server: Option<SocketAddr>,
    /// Callbacks.
    pub hooks: StunHooks,
    /// The Unix-seconds clock for nonces and REST expiry. Default: the system clock.
    pub unix_clock: Option<UnixClock>,
}

impl Default for StunConfig {
    fn default() -> Self {
        Self {
            software: Some("ringwire".into()),
            fingerprint: true,
            realm: "ringwire".into(),
            users: HashMap::new(),
            rest_secret: None,
            lookup: None,
            nonce_key: super::random_key(),
            nonce_ttl: Duration::from_secs(600),
            relay_ports: PortRange::DEFAULT,
            relay_ips: Vec::new(),
            external_ip: None,
            allow_loopback_peers: false,
            allow_private_peers: false,
            user_quota: 0,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            channel_quarantine: Duration::from_secs(300),
            max_permissions: 64,
            max_channels: 64,
            rfc5766_channels: false,
            alternate_server: None,
            hooks: StunHooks::default(),
            unix_clock: None,
        }
    }
}

impl fmt::Debug for StunConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords, the REST secret and the nonce key are not printed.
        f.debug_struct("StunConfig")
            .field("software", &self.software)
            .field("fingerprint", &self.fingerprint)
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .field("rest_secret", &self.rest_secret.is_some())
            .field("lookup", &self.lookup.is_some())
            .field("nonce_ttl", &self.nonce_ttl)
            .field("relay_ports", &self.relay_ports)
            .field("relay_ips", &self.relay_ips)
            .field("external_ip", &self.external_ip)
            .field("allow_loopback_peers", &self.allow_loopback_peers)
            .field("allow_private_peers", &self.allow_private_peers)
            .field("user_quota", &self.user_quota)
            .field("rfc5766_channels", &self.rfc5766_channels)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("alternate_server", &self.alternate_server)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl StunConfig {
    /// Add a static user from `"USER:PASSWORD"` (the password may contain `:`).
    pub fn add_user(&mut self, spec: &str) -> Result<(), StunConfigError> {
        let (u, p) = spec.split_once(':').ok_or(StunConfigError::BadUser)?;
        if u.is_empty() {
            return Err(StunConfigError::BadUser);
        }
        self.users.insert(u.to_owned(), p.to_owned());
        Ok(())
    }

    /// Whether TURN can authenticate anyone (static users, a REST secret or a lookup).
    pub fn turn_enabled(&self) -> bool {
        !self.users.is_empty() || self.rest_secret.is_some() || self.lookup.is_some()
    }

    /// If no relay address is configured and `listener` has a specific IP, relay from that IP.
    pub fn default_relay_for(&mut self, listener: SocketAddr) {
        if self.relay_ips.is_empty() && !listener.ip().is_unspecified() {
            self.relay_ips.push(listener.ip());
        }
    }
}

/// The configuration plus the state all cores share: the users' precomputed long-term keys
/// and the per-user allocation counts (locked only when an allocation is created or
/// deleted, never per message). Cheap to clone.
#[derive(Clone)]
pub struct StunService {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cfg: StunConfig,
    /// username → MD5 long-term key for the static users.
    pub keys: HashMap<Box<str>, LongTermKey>,
    /// username → allocations held, across cores (only when a quota is set).
    pub quota: Mutex<HashMap<Box<str>, u32>>,
}

impl fmt::Debug for StunService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StunService").field(&self.inner.cfg).finish()
    }
}

impl StunService {
    /// Check the configuration and precompute the static users' keys.
    pub fn new(cfg: StunConfig) -> Result<Self, StunConfigError> {
        if cfg.realm.len() > MAX_TEXT_LEN
            || cfg
                .software
                .as_ref()
                .is_some_and(|s| s.len() > MAX_TEXT_LEN)
        {
            return Err(StunConfigError::TextTooLong);
        }
        if cfg.relay_ports.min == 0 || cfg.relay_ports.min > cfg.relay_ports.max {
            return Err(StunConfigError::BadPortRange);
        }
        let lifetimes = [
            cfg.default_lifetime,
            cfg.max_lifetime,
            cfg.permission_lifetime,
            cfg.channel_lifetime,
        ];
        if lifetimes.iter().any(|d| d.as_secs() == 0) || cfg.default_lifetime > cfg.max_lifetime {
            return Err(StunConfigError::BadLifetime);
        }
        if cfg.relay_ips.iter().any(|ip| ip.is_unspecified()) && cfg.external_ip.is_none() {
            return Err(StunConfigError::UnspecifiedRelay);
        }
        let mut keys = HashMap::new();
        for (u, p) in &cfg.users {
            let k = LongTermKey::md5(u, &cfg.realm, p).map_err(|_| StunConfigError::BadPassword)?;
            keys.insert(u.as_str().into(), k);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                keys,
                quota: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StunConfig {
        &self.inner.cfg
    }

    /// The server plugin for core `core` of `cores`.
    pub fn plugin(&self, core: usize, cores: usize) -> super::StunServer {
        super::StunServer::new(self.clone(), core, cores)
    }

    /// Start a server answering STUN and TURN on UDP and TCP at `addr` (one socket per core
    /// for each). Port 0 picks a port free for both. The relay address defaults to `addr`'s IP.
    pub fn start(
        cfg: StunConfig,
        rt: ringwire_runtime::RuntimeConfig,
        addr: SocketAddr,
    ) -> std::io::Result<(ringwire_runtime::ServerHandle, SocketAddr)> {
        let addr = super::same_port_for_udp_and_tcp(addr)?;
        let mut cfg = cfg;
        cfg.default_relay_for(addr);
        let svc = Self::new(cfg).map_err(std::io::Error::other)?;
        let cores = rt.resolved_threads();
        let mut b = ringwire_runtime::ServerBuilder::new(rt);
        b.tcp(addr);
        b.udp(addr);
        let server = b.start(move |core| svc.plugin(core, cores))?;
        Ok((server, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_slices_cover_the_range() {
        let r = PortRange { min: 100, max: 109 };
        assert_eq!(r.slice(0, 1), Some((100, 109)));
        assert_eq!(r.slice(0, 3), Some((100, 102)));
        assert_eq!(r.slice(1, 3), Some((103, 105)));
        assert_eq!(r.slice(2, 3), Some((106, 109)));
        let tiny = PortRange { min: 5, max: 6 };
        assert_eq!(tiny.slice(0, 4), Some((5, 5)));
        assert_eq!(tiny.slice(1, 4), Some((6, 6)));
        assert_eq!(tiny.slice(2, 4), None);
        assert_eq!(PortRange::DEFAULT.slice(1, 2), Some((57344, 65535)));
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(
            "10-20".parse::<PortRange>(),
            Ok(PortRange { min: 10, max: 20 })
        );
        assert_eq!("7".parse::<PortRange>(), Ok(PortRange { min: 7, max: 7 }));
        assert!("20-10".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("x".parse::<PortRange>().is_err());
    }

    #[test]
    fn users_and_validation() {
        let mut c = StunConfig::default();
        assert!(c.add_user("nocolon").is_err());
        assert!(c.add_user(":p").is_err());
        c.add_user("u:p:with:colons").unwrap();
        assert_eq!(c.users["u"], "p:with:colons");
        assert!(c.turn_enabled());
        let mut bad = c.clone();
        bad.default_lifetime = Duration::from_secs(7200);
        assert_eq!(
            StunService::new(bad).err(),
            Some(StunConfigError::BadLifetime)
        );
        let mut bad = c.clone();
        bad.relay_ips = vec!["0.0.0.0".parse().unwrap()];
        assert_eq!(
            StunService::new(bad).err(),
            Some(StunConfigError::UnspecifiedRelay)
        );
        assert!(StunService::new(c).is_ok());
    }
}
