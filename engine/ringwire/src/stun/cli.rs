//! The `ringwire` subcommands and flags of STUN/TURN: `serve --stun ...` options,
//! `stun-client` and `turn-client`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringwire_stun::RetransmitConfig;

use super::client::{self, TurnClient, TurnConfig};
use super::{StunConfig, StunConfigError, StunService};
use crate::config::{ConfigError, FileConfig};

/// The STUN/TURN flags of `ringwire serve` (each has a TOML key of the same name, dashes
/// become underscores).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StunServeArgs {
    /// STUN/TURN listener: UDP and TCP on the same port (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub stun: Vec<SocketAddr>,
    /// A TURN user, USER:PASSWORD (repeatable).
    #[arg(long = "turn-user", value_name = "USER:PASSWORD")]
    pub turn_user: Vec<String>,
    /// The long-term credential realm (default "ringwire").
    #[arg(long)]
    pub realm: Option<String>,
    /// TURN REST shared secret (time-limited "expiry:user" credentials, as coturn's
    /// use-auth-secret).
    #[arg(long = "turn-secret", value_name = "SECRET")]
    pub turn_secret: Option<String>,
    /// Relay port range A-B, split between cores (default 49152-65535).
    #[arg(long = "turn-relay-ports", value_name = "A-B")]
    pub turn_relay_ports: Option<String>,
    /// Address relay sockets bind to, one per family (repeatable; default: the --stun IP).
    #[arg(long = "turn-relay-ip", value_name = "IP")]
    pub turn_relay_ip: Vec<IpAddr>,
    /// Address advertised as the relayed address (a server behind 1:1 NAT).
    #[arg(long = "turn-external-ip", value_name = "IP")]
    pub turn_external_ip: Option<IpAddr>,
    /// Allow relaying to loopback peers (tests only).
    #[arg(long = "turn-allow-loopback-peers")]
    pub turn_allow_loopback_peers: bool,
    /// Allow relaying to private, link-local and unique-local peers.
    #[arg(long = "turn-allow-private-peers")]
    pub turn_allow_private_peers: bool,
    /// Accept channel numbers up to 0x7FFF (RFC 5766, as coturn) instead of RFC 8656's
    /// 0x4FFF.
    #[arg(long = "turn-rfc5766-channels")]
    pub turn_rfc5766_channels: bool,
    /// Most allocations per username (0 = unlimited).
    #[arg(long = "turn-user-quota", value_name = "N")]
    pub turn_user_quota: Option<u32>,
    /// Longest allocation lifetime granted, in seconds (default 3600).
    #[arg(long = "turn-max-lifetime", value_name = "SECS")]
    pub turn_max_lifetime: Option<u64>,
    /// Answer Binding and Allocate with 300 Try Alternate pointing there.
    #[arg(long = "stun-alternate-server", value_name = "ADDR")]
    pub stun_alternate_server: Option<SocketAddr>,
}

impl StunServeArgs {
    /// Put the flags that were given into `f` (the flags half of the file/flags merge).
    pub fn apply(self, mut f: FileConfig) -> FileConfig {
        f.stun = (!self.stun.is_empty()).then_some(self.stun);
        f.turn_user = (!self.turn_user.is_empty()).then_some(self.turn_user);
        f.realm = self.realm;
        f.turn_secret = self.turn_secret;
        f.turn_relay_ports = self.turn_relay_ports;
        f.turn_relay_ip = (!self.turn_relay_ip.is_empty()).then_some(self.turn_relay_ip);
        f.turn_external_ip = self.turn_external_ip;
        f.turn_allow_loopback_peers = self.turn_allow_loopback_peers.then_some(true);
        f.turn_allow_private_peers = self.turn_allow_private_peers.then_some(true);
        f.turn_rfc5766_channels = self.turn_rfc5766_channels.then_some(true);
        f.turn_user_quota = self.turn_user_quota;
        f.turn_max_lifetime = self.turn_max_lifetime;
        f.stun_alternate_server = self.stun_alternate_server;
        f
    }
}

fn cfg_err(key: &str, e: StunConfigError) -> ConfigError {
    ConfigError(format!("{key}: {e}"))
}

/// The STUN/TURN service a merged configuration describes, with its listener addresses
/// (port 0 resolved to a port free for UDP and TCP); `None` without `stun` listeners.
pub fn stun_service(f: &FileConfig) -> Result<Option<(StunService, Vec<SocketAddr>)>, ConfigError> {
    let Some(addrs) = f.stun.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let addrs = addrs
        .iter()
        .map(|a| super::same_port_for_udp_and_tcp(*a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError(format!("stun: {e}")))?;
    let mut c = StunConfig::default();
    for u in f.turn_user.iter().flatten() {
        c.add_user(u).map_err(|e| cfg_err("turn_user", e))?;
    }
    if let Some(r) = &f.realm {
        c.realm = r.clone();
    }
    c.rest_secret = f.turn_secret.as_ref().map(|s| s.as_bytes().to_vec());
    if let Some(p) = &f.turn_relay_ports {
        c.relay_ports = p.parse().map_err(|e| cfg_err("turn_relay_ports", e))?;
    }
    c.relay_ips = f.turn_relay_ip.clone().unwrap_or_default();
    c.external_ip = f.turn_external_ip;
    c.allow_loopback_peers = f.turn_allow_loopback_peers.unwrap_or(false);
    c.allow_private_peers = f.turn_allow_private_peers.unwrap_or(false);
    c.rfc5766_channels = f.turn_rfc5766_channels.unwrap_or(false);
    c.user_quota = f.turn_user_quota.unwrap_or(0);
    if let Some(m) = f.turn_max_lifetime {
        c.max_lifetime = Duration::from_secs(m);
        c.default_lifetime = c.default_lifetime.min(c.max_lifetime);
    }
    c.alternate_server = f.stun_alternate_server;
    for a in &addrs {
        c.default_relay_for(*a);
    }
    if c.turn_enabled() && c.relay_ips.is_empty() {
        return Err(ConfigError(
            "turn_relay_ip: --stun listens on a wildcard address; give the relay address with \
             --turn-relay-ip"
                .into(),
        ));
    }
    let svc = StunService::new(c).map_err(|e| cfg_err("stun", e))?;
    Ok(Some((svc, addrs)))
}

/// `ringwire stun-client`.
#[derive(clap::Args, Debug)]
pub struct StunClientArgs {
    /// The STUN server, HOST:PORT.
    pub server: String,
    /// Over TCP (one send, 39.5 s timeout) instead of UDP.
    #[arg(long)]
    pub tcp: bool,
    /// Initial retransmission timeout in milliseconds (UDP).
    #[arg(long, default_value_t = 500)]
    pub rto_ms: u64,
    /// Transmissions in total before giving up (UDP; RFC 8489 Rc).
    #[arg(long, default_value_t = 7)]
    pub max_transmissions: u32,
    /// Load mode: send this many Binding requests, closed loop, and print the rate.
    #[arg(long)]
    pub count: Option<u64>,
    /// Load mode: requests in flight.
    #[arg(long, default_value_t = 32)]
    pub window: u64,
    /// Over TLS (TCP; the server's --stun-tls port, usually 5349).
    #[arg(long)]
    pub tls: bool,
    /// TLS: the name the certificate must be valid for (default: the host of SERVER).
    #[arg(long)]
    pub tls_name: Option<String>,
    /// TLS: trust the certificates of this PEM file instead of the Mozilla roots.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// TLS: accept any certificate for any name. For tests only: the connection is encrypted
    /// but not authenticated.
    #[arg(long)]
    pub danger_accept_invalid_certs: bool,
}

fn retransmit(rto_ms: u64, max: u32) -> RetransmitConfig {
    RetransmitConfig {
        rto: Duration::from_millis(rto_ms.max(1)),
        max_transmissions: max.max(1),
        ..RetransmitConfig::DEFAULT
    }
}

/// Run `ringwire stun-client`: prints `mapped-address: IP:PORT`.
pub fn stun_client(a: StunClientArgs) -> ExitCode {
    let server = match client::resolve(&a.server) {
        Ok(s) => s,
        Err(e) => return fail(&format!("{}: {e}", a.server)),
    };
    let rt = retransmit(a.rto_ms, a.max_transmissions);
    if let Some(count) = a.count {
        return match client::binding_load(server, count, a.window, Duration::from_secs(2)) {
            Ok(r) => {
                let secs = r.elapsed.as_secs_f64().max(1e-9);
                println!(
                    "requests: {} responses: {} elapsed: {:.3}s rate: {:.0}/s",
                    r.sent,
                    r.received,
                    secs,
                    r.received as f64 / secs
                );
                if r.received == count {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    let r = if a.tls {
        let host = a.tls_name.clone().unwrap_or_else(|| {
            let h = a
                .server
                .rsplit_once(':')
                .map_or(a.server.as_str(), |(h, _)| h);
            h.trim_start_matches('[').trim_end_matches(']').to_string()
        });
        let opts = ringwire_runtime::tls::TlsClientOptions {
            roots: match &a.tls_ca {
                Some(p) => ringwire_runtime::tls::ClientRoots::CaFile(p.clone()),
                None => ringwire_runtime::tls::ClientRoots::WebPki,
            },
            danger_accept_invalid_certs: a.danger_accept_invalid_certs,
            ..Default::default()
        };
        match ringwire_runtime::tls::client_config(&opts) {
            Ok(cfg) => client::binding_tls(server, &host, cfg, &rt),
            Err(e) => Err(client::ClientError::Tls(e.to_string())),
        }
    } else if a.tcp {
        client::binding_tcp(server, &rt)
    } else {
        std::net::UdpSocket::bind(if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        })
        .map_err(client::ClientError::from)
        .and_then(|s| client::binding_with(&s, server, &rt))
    };
    match r {
        Ok(m) => {
            println!("mapped-address: {m}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// `ringwire turn-client`.
#[derive(clap::Args, Debug)]
pub struct TurnClientArgs {
    /// The TURN server (UDP), HOST:PORT.
    #[arg(long)]
    pub server: String,
    /// Credentials, USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub user: String,
    /// The realm to expect (the client uses the one the server sends).
    #[arg(long)]
    pub realm: Option<String>,
    /// The peer to relay to (it should echo what it gets).
    #[arg(long)]
    pub peer: SocketAddr,
    /// Datagrams to send.
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Bytes per datagram (at least 8).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Datagrams in flight at most.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    /// Give up waiting for echoes after this long without one (ms).
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// LIFETIME to request, in seconds.
    #[arg(long)]
    pub lifetime: Option<u32>,
    /// Pause between datagrams (ms); 0 sends as the window allows.
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Use Send/Data indications instead of a channel.
    #[arg(long)]
    pub send_indication: bool,
    /// Initial retransmission timeout in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub rto_ms: u64,
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("ringwire: {msg}");
    ExitCode::FAILURE
}

const PAYLOAD_MAGIC: &[u8; 4] = b"RWTC";

/// Run `ringwire turn-client`: allocate, permit and bind the peer, send `count` datagrams,
/// count the echoes; prints `relayed-address: IP:PORT` and `received: M/N`.
pub fn turn_client(a: TurnClientArgs) -> ExitCode {
    match run_turn_client(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => fail(&e.to_string()),
    }
}

fn run_turn_client(a: &TurnClientArgs) -> Result<bool, client::ClientError> {
    let server = client::resolve(&a.server)?;
    let (user, pass) = a.user.split_once(':').ok_or(client::ClientError::Rejected(
        ringwire_stun::ErrorCode::BAD_REQUEST,
    ))?;
    let mut cfg = TurnConfig::new(server, user, pass);
    cfg.realm = a.realm.clone();
    cfg.lifetime = a.lifetime;
    cfg.retransmit = retransmit(a.rto_ms, RetransmitConfig::DEFAULT.max_transmissions);
    let mut c = TurnClient::allocate(cfg)?;
    println!("relayed-address: {}", c.relayed_addr());
    c.create_permission(&[a.peer.ip()])?;
    if !a.send_indication {
        let ch = c.channel_bind(a.peer)?;
        eprintln!("channel: {:#06x}", ch.get());
    }
    let n = a.count;
    let size = a.size.max(8);
    let mut seen = vec![false; usize::try_from(n).unwrap_or(0)];
    let (mut next, mut received, mut credit) = (0u64, 0u64, 0u64);
    let mut payload = vec![0u8; size];
    payload[..4].copy_from_slice(PAYLOAD_MAGIC);
    for (i, b) in payload.iter_mut().enumerate().skip(8) {
        *b = i as u8;
    }
    let idle = Duration::from_millis(a.timeout_ms);
    let mut last_progress = Instant::now();
    while received < n {
        while next < n && next - received < a.window.max(1) + credit {
            payload[4..8].copy_from_slice(&(next as u32).to_be_bytes());
            c.send(a.peer, &payload)?;
            next += 1;
            if a.interval_ms > 0 {
                std::thread::sleep(Duration::from_millis(a.interval_ms));
                break;
            }
        }
        match c.recv(Duration::from_millis(100))? {
            Some((from, data)) => {
                if from == a.peer
                    && data.len() == size
                    && data.starts_with(PAYLOAD_MAGIC)
                    && let Some(seq) = data.get(4..8)
                {
                    let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]) as usize;
                    if let Some(s) = seen.get_mut(seq)
                        && !*s
                    {
                        *s = true;
                        received += 1;
                        last_progress = Instant::now();
                    }
                }
            }
            None => {
                if last_progress.elapsed() >= idle {
                    break;
                }
                // Nothing for a while: count one datagram in flight as lost.
                credit += 1;
            }
        }
    }
    println!("received: {received}/{n}");
    // Delete the allocation (Refresh with LIFETIME 0); after a long run this is also where
    // a 438 Stale Nonce gets retried.
    if let Err(e) = c.close() {
        eprintln!("ringwire: deleting the allocation failed: {e}");
        return Ok(false);
    }
    Ok(received == n)
}
